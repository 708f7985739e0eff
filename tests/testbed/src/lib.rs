//! Real-peer test-bed: containerd with NRI, kube-apiserver, OVN/OVS and WireGuard in network namespaces.
