//! Shared Nauti types: pod annotations, Peer and MCS CRDs, component configuration.
