//! The containerd NRI plugin that gives every pod its Nauti NIC.
