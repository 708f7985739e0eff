//! The decisions octopus makes, as plain functions over plain data: no sockets, no netlink, no
//! Kubernetes client. The adapters (`wg`, and the controllers that will feed this module) turn
//! what they read into these types and apply what comes out.
//!
//! - [`slices`]: which part of the global CIDR each cluster gets.
//! - [`review`]: which `Peer`s are usable, and why the others are not.
//! - [`topology`]: the WireGuard peers and routes a gateway wants, from its role and the Peers.
//! - [`diff`]: the smallest set of changes that takes a device from what it has to what is wanted.
//! - [`mtu`]: the MTUs of the tunnel and of the pods' second NIC, with the reason.
//! - [`mcs`]: multi-cluster services: what a member exports, and the import every member keeps.
//! - [`tunnel`]: a peer's tunnel status (`Ready`, last handshake, bytes) from the device's counters.
//! - [`icmp`]: the echo packets of the hub's latency probe, and the median of its round trips.
//! - [`queue`]: the keys a controller has to reconcile, each once, never twice at a time.

pub mod diff;
pub mod icmp;
pub mod key;
pub mod mcs;
pub mod mtu;
pub mod queue;
pub mod review;
pub mod slices;
pub mod topology;
pub mod tunnel;

pub use diff::{DevicePeer, PeerChange, PeerUpdate, RouteDiff, diff_peers, diff_routes};
pub use key::{KeyError, PublicKey};
pub use mtu::{MtuPlan, MtuPlanError, MtuReason, plan_mtu};
pub use review::{PeerRejection, PeerVerdict, ValidPeer, review_peers};
pub use slices::{SliceClaim, SliceError, SlicePolicy};
pub use topology::{LocalRole, TopologyPlan, WantedPeer, plan_topology};
pub use tunnel::{
    TunnelSample, TunnelStatus, WritePacing, WrittenStatus, should_write, tunnel_status,
};
