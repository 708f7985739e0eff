//! OVSDB client and the cluster logical-switch controller of Nauti.
