//! Global-CIDR address management for Nauti and a chained CNI IPAM plugin.
