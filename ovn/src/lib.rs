//! Nauti's OVSDB client and the typed OVN/OVS operations built on it.
//!
//! Nauti drives OVN over the OVSDB management protocol (RFC 7047) itself: no `ovn-nbctl` or
//! `ovs-vsctl` in any product path.
//!
//! ```text
//!   core (no I/O)                               client (tokio)
//!   ─────────────                               ──────────────
//!   framing  bytes → JSON frames               Client: one task per connection
//!   rpc      frames ↔ JSON-RPC messages          ├─ requests / responses (transact, get_schema…)
//!   value    OVSDB atoms, sets, maps, uuids      ├─ echo keep-alive both ways
//!   schema   database schemas, type checks       ├─ monitors → Cache (update / update2)
//!   ops      operations, conditions, results     ├─ reconnect with backoff, monitors re-sent
//!   cache    monitor notifications → rows        └─ unix:, tcp:, ssl: (TLS, client certificate)
//!   nb, lb, vswitch  wanted rows → operations   Northbound / OpenVswitch: ensure / remove
//! ```

pub mod client;
pub mod core;
pub mod master;

pub use client::{
    Client, ClientConfig, ConnState, Endpoint, Error, Monitor, MonitorRequest, Northbound,
    OpenVswitch, PendingTransact, TlsArgs, TlsError, TlsFile, TlsFiles,
};
pub use core::cache::Cache;
pub use core::error::{ErrorKind, ServerError};
pub use core::lb::{LbProtocol, LoadBalancer};
pub use core::nb::{LogicalSwitch, LogicalSwitchPort};
pub use core::ops::{Condition, Function, Mutation, Mutator, Operation, OperationResult};
pub use core::schema::DatabaseSchema;
pub use core::value::{Atom, Row, Uuid, Value};
pub use core::vswitch::OvsPort;
