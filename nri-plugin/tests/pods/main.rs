//! The plugin end to end against real peers: containerd with NRI, OVN/OVS on the userspace
//! datapath, kube-apiserver; pods started through CRI as a kubelet would start them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod credential;
mod failures;
mod launched;
mod lifecycle;
mod reliability;
mod support;
