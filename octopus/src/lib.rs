//! Hub and member tunnels (WireGuard) and multi-cluster service sync.
