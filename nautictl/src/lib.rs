//! Operator CLI for Nauti.
