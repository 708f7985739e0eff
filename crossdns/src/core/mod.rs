//! The pure core of crossdns: an index of the names of imported services, fed with plain views
//! of ServiceImports and EndpointSlices, answering a query name and type with
//! [`Answer`]`::{Records, NoData, NxDomain, NotOurZone, NotSynced}`. No sockets, no runtime, no
//! Kubernetes client: the DNS adapter ([`crate::dns`]) picks the response codes and the
//! Kubernetes adapter ([`crate::kube`]) feeds it.
//!
//! ```text
//!   ServiceImport ─┐                      hyperos.local     <svc>.<ns>.svc          A/AAAA (ready endpoints)
//!                  ├─► Index ─► lookup ─► clusterset.local  <svc>.<ns>.svc          A/AAAA, SRV
//!   EndpointSlice ─┘                                        _<port>._<proto>.<svc>… SRV
//!    (per cluster)                                          <host>.<cluster>.<svc>… A/AAAA (headless)
//!                                                           dns-version             TXT
//! ```

mod index;
mod model;
mod name;
mod records;
mod service;

pub use index::{Answer, Index};
pub use model::{EndpointView, ImportKind, ImportView, PortView, ServiceKey, SliceKey, SliceView};
pub use name::{QueryName, Zone};
pub use records::{DNS_SCHEMA_VERSION, QueryType, RecordData, RecordSet, Soa, TTL};
pub use service::{ClustersetNames, ServiceNames};

#[cfg(test)]
mod tests;
