//! Hub and member tunnels (WireGuard) and multi-cluster service sync.
//!
//! - [`core`]: the decisions (slices, Peer review, topology, peer diff, MTU), pure and
//!   unit-tested.
//! - [`cli`]: the `octopus` command line.
//! - [`controller`]: the running `octopus hub` and `octopus member` controllers.
//! - [`gateway`]: applies the topology plan to the WireGuard device, routes and forwarding.
//! - [`wg`]: WireGuard devices behind one trait; the userspace one runs in-process.
//! - [`join`]: bootstrap tokens, member certificates and credentials (TLS bootstrap).
//! - [`hub`]: the hub's side of joining: tokens, CSR approval and each member's grants.
//! - [`routes`]: `octopus routes`, the tunnel routes of this namespace as JSON.

pub mod cli;
pub mod controller;
pub mod core;
pub mod gateway;
pub mod hub;
pub mod join;
pub mod routes;
pub mod wg;
