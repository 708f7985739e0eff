//! The hub side: bootstrap tokens, approval of members' certificate requests with the RBAC
//! that goes with an approved member, and the `Peer` controller.
//!
//! - [`assign`]: which slice each Peer holds (pure), and the placeholder for none.
//! - [`tokens`]: issue a bootstrap token as a `kube-system` Secret.
//! - [`approval`]: which CSRs the hub approves (pure), and the loop that acts on them.
//! - [`grants`]: the namespace, Role and RoleBindings of one member (pure objects + apply).

pub mod approval;
pub mod assign;
pub mod grants;
pub mod tokens;
