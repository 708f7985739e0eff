//! The Helm charts `deploy/charts/nauti` (hub) and `deploy/charts/nauti-agent` (member):
//! `helm lint --strict` with good value sets, bad values refused with the schema's message,
//! renders that a real kube-apiserver accepts (`kubectl apply --dry-run=server`), RBAC and CRDs
//! equal to `deploy/rbac` and `deploy/crds`, and the hub's bootstrap token kept across
//! `helm upgrade` on a real API server.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helm;
mod install;
mod ovn;
mod render;
mod values;
