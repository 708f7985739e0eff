//! The index of names: fed with imports and slices (`apply`, `delete`, `reset`), asked with
//! a query name and type. Each change recomputes only the service it touches, so a query never
//! waits for more than a map lookup.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use super::model::{ImportView, ServiceKey, SliceKey, SliceView};
use super::name::{QueryName, Zone};
use super::records::{DNS_SCHEMA_VERSION, QueryType, RecordData, RecordSet, Soa, TTL};
use super::service::{ClustersetNames, ServiceNames};

/// The label under the apex that holds services (`<svc>.<ns>.svc.<zone>`).
const SVC_LABEL: &str = "svc";
/// The label of the schema version record (`dns-version.clusterset.local`).
const DNS_VERSION_LABEL: &str = "dns-version";

/// What the index says about a query. The DNS adapter picks the response code from it
/// (NOERROR, NOERROR with SOA, NXDOMAIN with SOA, REFUSED, SERVFAIL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    /// The name holds records of the type asked for.
    Records(Cow<'a, [RecordData]>),
    /// The name exists, without records of that type (NODATA).
    NoData(&'a Soa),
    /// No such name in the zone.
    NxDomain(&'a Soa),
    /// The name is outside every zone served.
    NotOurZone,
    /// The name is ours but the index has not seen a full list of imports and slices yet, so
    /// it cannot tell (SERVFAIL, so resolvers try again rather than cache a wrong negative).
    NotSynced,
}

/// The index of every name crossdns answers.
#[derive(Debug)]
pub struct Index {
    imports: HashMap<ServiceKey, ImportView>,
    slices: HashMap<SliceKey, SliceView>,
    slices_of: HashMap<ServiceKey, BTreeSet<SliceKey>>,
    /// Namespace → service name → names, for lookups by borrowed labels.
    services: HashMap<String, HashMap<String, ServiceNames>>,
    /// Services per namespace whose name exists in `clusterset.local` (for the empty
    /// non-terminals `<ns>.svc` and `svc`, which answer NODATA rather than NXDOMAIN).
    clusterset_per_namespace: HashMap<String, usize>,
    soa: [Soa; 2],
    dns_version: RecordSet,
    imports_synced: bool,
    slices_synced: bool,
    records: usize,
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}

impl Index {
    /// An empty index that has not synced yet.
    pub fn new() -> Self {
        let mut dns_version = RecordSet::default();
        dns_version
            .txt
            .push(RecordData::Txt(DNS_SCHEMA_VERSION.to_owned()));
        Self {
            imports: HashMap::new(),
            slices: HashMap::new(),
            slices_of: HashMap::new(),
            services: HashMap::new(),
            clusterset_per_namespace: HashMap::new(),
            soa: Zone::ALL.map(soa_of),
            dns_version,
            imports_synced: false,
            slices_synced: false,
            records: 0,
        }
    }

    // === feeding ===

    /// Adds or replaces the import of `key`.
    pub fn apply_import(&mut self, key: ServiceKey, import: ImportView) {
        if self.imports.get(&key) == Some(&import) {
            return;
        }
        self.imports.insert(key.clone(), import);
        self.refresh(&key);
    }

    /// Removes the import of `key`: its names go away (its slices are kept, should it come back).
    pub fn delete_import(&mut self, key: &ServiceKey) {
        if self.imports.remove(key).is_some() {
            self.refresh(key);
        }
    }

    /// Replaces every import with `imports` (after a full list) and marks imports synced.
    pub fn reset_imports(&mut self, imports: impl IntoIterator<Item = (ServiceKey, ImportView)>) {
        let fresh: HashMap<_, _> = imports.into_iter().collect();
        let stale: Vec<ServiceKey> = self
            .imports
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        for key in &stale {
            self.delete_import(key);
        }
        for (key, import) in fresh {
            self.apply_import(key, import);
        }
        self.imports_synced = true;
    }

    /// Adds or replaces the slice `key`.
    pub fn apply_slice(&mut self, key: SliceKey, slice: SliceView) {
        if self.slices.get(&key) == Some(&slice) {
            return;
        }
        let service = slice.service.clone();
        if let Some(old) = self.slices.insert(key.clone(), slice)
            && old.service != service
        {
            self.unlink_slice(&key, &old.service);
            self.refresh(&old.service);
        }
        self.slices_of
            .entry(service.clone())
            .or_default()
            .insert(key);
        self.refresh(&service);
    }

    /// Removes the slice `key`.
    pub fn delete_slice(&mut self, key: &SliceKey) {
        if let Some(old) = self.slices.remove(key) {
            self.unlink_slice(key, &old.service);
            self.refresh(&old.service);
        }
    }

    /// Replaces every slice with `slices` (after a full list) and marks slices synced.
    pub fn reset_slices(&mut self, slices: impl IntoIterator<Item = (SliceKey, SliceView)>) {
        let fresh: HashMap<_, _> = slices.into_iter().collect();
        let stale: Vec<SliceKey> = self
            .slices
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        for key in &stale {
            self.delete_slice(key);
        }
        for (key, slice) in fresh {
            self.apply_slice(key, slice);
        }
        self.slices_synced = true;
    }

    fn unlink_slice(&mut self, key: &SliceKey, service: &ServiceKey) {
        if let Some(set) = self.slices_of.get_mut(service) {
            set.remove(key);
            if set.is_empty() {
                self.slices_of.remove(service);
            }
        }
    }

    /// Recomputes the names of one service after its import or one of its slices changed.
    fn refresh(&mut self, key: &ServiceKey) {
        let old = self
            .services
            .get_mut(&key.namespace)
            .and_then(|names| names.remove(&key.name));
        if let Some(old) = &old {
            self.forget(key, old);
        }
        let Some(import) = self.imports.get(key) else {
            if self
                .services
                .get(&key.namespace)
                .is_some_and(HashMap::is_empty)
            {
                self.services.remove(&key.namespace);
            }
            self.bump_serials();
            return;
        };
        let slices = self
            .slices_of
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|slice| self.slices.get(slice));
        let names = ServiceNames::build(key, import, slices);
        self.records += names.record_count();
        if names.exists_in(Zone::Clusterset) {
            *self
                .clusterset_per_namespace
                .entry(key.namespace.clone())
                .or_default() += 1;
        }
        if old.as_ref() != Some(&names) {
            self.bump_serials();
        }
        self.services
            .entry(key.namespace.clone())
            .or_default()
            .insert(key.name.clone(), names);
    }

    fn forget(&mut self, key: &ServiceKey, old: &ServiceNames) {
        self.records -= old.record_count();
        if old.exists_in(Zone::Clusterset)
            && let Some(count) = self.clusterset_per_namespace.get_mut(&key.namespace)
        {
            *count -= 1;
            if *count == 0 {
                self.clusterset_per_namespace.remove(&key.namespace);
            }
        }
    }

    fn bump_serials(&mut self) {
        for soa in &mut self.soa {
            soa.serial = soa.serial.wrapping_add(1);
        }
    }

    // === asking ===

    /// True once both imports and slices have been listed in full.
    pub fn is_synced(&self) -> bool {
        self.imports_synced && self.slices_synced
    }

    /// Records held (answers of every name, SOA and version records aside).
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// The SOA of `zone`.
    pub fn soa(&self, zone: Zone) -> &Soa {
        match zone {
            Zone::Hyperos => &self.soa[0],
            Zone::Clusterset => &self.soa[1],
        }
    }

    /// Answers `qname`/`qtype`; `None` for `qname` means a name outside our zones.
    pub fn lookup(&self, qname: Option<&QueryName>, qtype: QueryType) -> Answer<'_> {
        let Some(qname) = qname else {
            return Answer::NotOurZone;
        };
        if !self.is_synced() {
            return Answer::NotSynced;
        }
        let soa = self.soa(qname.zone);
        match self.node(qname) {
            Node::Missing => Answer::NxDomain(soa),
            Node::Apex if matches!(qtype, QueryType::Soa | QueryType::Any) => {
                Answer::Records(Cow::Owned(vec![RecordData::Soa(soa.clone())]))
            }
            Node::Apex | Node::Empty => Answer::NoData(soa),
            Node::Records(set) => {
                let records = set.get(qtype);
                if records.is_empty() {
                    Answer::NoData(soa)
                } else {
                    Answer::Records(records)
                }
            }
        }
    }

    /// Finds the node of `qname` in its zone.
    fn node(&self, qname: &QueryName) -> Node<'_> {
        let labels: Vec<&str> = qname.below_apex.iter().map(String::as_str).collect();
        let zone = qname.zone;
        match labels.as_slice() {
            [] => Node::Apex,
            [DNS_VERSION_LABEL] if zone == Zone::Clusterset => Node::Records(&self.dns_version),
            [SVC_LABEL] => self.present(self.any_service_in(zone, None)),
            [SVC_LABEL, ns] => self.present(self.any_service_in(zone, Some(ns))),
            [SVC_LABEL, ns, svc, rest @ ..] => {
                let Some(names) = self.services.get(*ns).and_then(|n| n.get(*svc)) else {
                    return Node::Missing;
                };
                match zone {
                    Zone::Hyperos => match rest {
                        [] => Node::Records(&names.hyperos),
                        _ => Node::Missing,
                    },
                    Zone::Clusterset => match &names.clusterset {
                        Some(names) => clusterset_node(names, rest),
                        None => Node::Missing,
                    },
                }
            }
            _ => Node::Missing,
        }
    }

    fn present(&self, exists: bool) -> Node<'_> {
        if exists { Node::Empty } else { Node::Missing }
    }

    fn any_service_in(&self, zone: Zone, namespace: Option<&str>) -> bool {
        match (zone, namespace) {
            (Zone::Hyperos, None) => !self.services.is_empty(),
            (Zone::Hyperos, Some(ns)) => self.services.contains_key(ns),
            (Zone::Clusterset, None) => !self.clusterset_per_namespace.is_empty(),
            (Zone::Clusterset, Some(ns)) => self.clusterset_per_namespace.contains_key(ns),
        }
    }
}

/// A node of a zone's tree as a lookup finds it.
enum Node<'a> {
    Missing,
    Apex,
    /// An empty non-terminal: the name exists because names below it do.
    Empty,
    Records(&'a RecordSet),
}

/// Below `<svc>.<ns>.svc.clusterset.local`: `rest` is the labels after the service's, from
/// the service outwards (`[<clusterid>, <hostname>]` or `[_<proto>, _<port>]`).
fn clusterset_node<'a>(names: &'a ClustersetNames, rest: &[&str]) -> Node<'a> {
    let nested =
        |map: &'a HashMap<String, HashMap<String, RecordSet>>, outer: &str, inner: Option<&str>| {
            match (map.get(outer), inner) {
                (None, _) => Node::Missing,
                (Some(_), None) => Node::Empty,
                (Some(inner_map), Some(label)) => match inner_map.get(label) {
                    Some(set) => Node::Records(set),
                    None => Node::Missing,
                },
            }
        };
    match rest {
        [] => Node::Records(&names.service),
        [outer] if outer.starts_with('_') => nested(&names.ports, outer, None),
        [outer, inner] if outer.starts_with('_') => nested(&names.ports, outer, Some(inner)),
        [cluster] => nested(&names.hosts, cluster, None),
        [cluster, host] => nested(&names.hosts, cluster, Some(host)),
        _ => Node::Missing,
    }
}

fn soa_of(zone: Zone) -> Soa {
    let apex = zone.apex();
    Soa {
        zone: apex.to_owned(),
        mname: format!("ns.dns.{apex}"),
        rname: format!("hostmaster.{apex}"),
        serial: 1,
        refresh: 7200,
        retry: 1800,
        expire: 86400,
        minimum: TTL,
    }
}
