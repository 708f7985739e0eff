//! crossdns: DNS for services exported across clusters.
//!
//! It answers two zones from the ServiceImports and imported EndpointSlices that octopus keeps
//! in the member cluster it runs in: `hyperos.local` (`<svc>.<ns>.svc.hyperos.local`, the ready
//! global endpoints of a service in every cluster) and `clusterset.local`, as KEP-1645's DNS
//! specification describes it.

pub mod core;
