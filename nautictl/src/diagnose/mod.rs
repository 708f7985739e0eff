//! The checks of `nautictl diagnose` as plain functions over what was read along one path, from
//! a source pod to a destination pod or service name. Reading the facts (kube, OVN, the pod's
//! netns, DNS) is an adapter's job; here every hop is decided and worded, so each failure
//! message is unit-tested.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use nauti_api::PodNetwork;
use nauti_api::core::net::parse_canonical_cidr;
use nauti_api::peer::{Peer, condition};

/// A WireGuard session's keys expire 180 s after its last handshake (REJECT_AFTER_TIME); an
/// older handshake means no traffic can cross the tunnel until a new one succeeds.
pub const HANDSHAKE_FRESH_SECS: i64 = 180;

/// The source pod as read from the API server and from inside its network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePod {
    pub namespace: String,
    pub name: String,
    /// The node the pod runs on: the chassis its port must be bound to.
    pub node: String,
    /// All of the pod's annotations; the `nauti.io/*` ones are read from them.
    pub annotations: BTreeMap<String, String>,
    /// The address on `eth-nauti` as seen inside the pod; `None` when there is no `eth-nauti`.
    pub eth_nauti: Option<IpAddr>,
}

/// The pod's OVN logical switch port, as `ovn-nbctl`/`ovn-sbctl` print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalSwitchPort {
    pub name: String,
    /// The `addresses` column, e.g. `["0a:58:0a:70:01:05 10.112.1.5"]`.
    pub addresses: Vec<String>,
    /// The `up` column; `None` when OVN has not set it.
    pub up: Option<bool>,
    /// The hostname of the chassis the southbound Port_Binding names; `None` when unbound.
    pub chassis: Option<String>,
}

/// The cluster's gateway (CNF) port and whether it answered a probe from the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPort {
    pub name: String,
    /// The gateway's address on the cluster subnet, from its port.
    pub address: Option<IpAddr>,
    pub answers: bool,
}

/// The routes on one gateway's WireGuard interface, as `ip route` prints their destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRoutes {
    pub cluster_id: String,
    pub routes: Vec<String>,
}

/// Where the path ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A pod of `cluster_id`.
    Pod {
        namespace: String,
        name: String,
        cluster_id: String,
    },
    /// A service name such as `nginx-svc.default.svc.hyperos.local`, served by `cluster_id`.
    Service { name: String, cluster_id: String },
}

impl Destination {
    fn cluster_id(&self) -> &str {
        match self {
            Self::Pod { cluster_id, .. } | Self::Service { cluster_id, .. } => cluster_id,
        }
    }
}

/// What crossdns and the cluster's CoreDNS answered for the destination name; `None` when a
/// server gave no address (no answer, NXDOMAIN or a timeout).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsAnswers {
    pub crossdns: Option<Vec<IpAddr>>,
    pub coredns: Option<Vec<IpAddr>>,
}

/// Everything `diagnose` read along one path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathFacts {
    pub source_cluster: String,
    pub source: SourcePod,
    /// `None` when the port does not exist in the northbound database.
    pub lsp: Option<LogicalSwitchPort>,
    /// `None` when the cluster has no gateway port.
    pub gateway: Option<GatewayPort>,
    pub destination: Destination,
    /// The Peers of the cluster set, from the hub.
    pub peers: Vec<Peer>,
    /// The source gateway's routes; `None` when they could not be read.
    pub source_routes: Option<GatewayRoutes>,
    /// The destination gateway's routes; `None` when they could not be read.
    pub destination_routes: Option<GatewayRoutes>,
    pub dns: DnsAnswers,
}

/// The hops of a path, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hop {
    /// The pod carries a readable, consistent `nauti.io/*` record.
    Annotations,
    /// The pod has `eth-nauti` with the annotated address.
    EthNauti,
    /// The pod's logical switch port holds that address, is up and bound on the pod's node.
    LogicalSwitchPort,
    /// The cluster's gateway answers.
    Gateway,
    /// The Peers of both ends are Valid and Ready with a recent handshake.
    Peer,
    /// Each gateway routes the other end's slices over WireGuard.
    Routes,
    /// The name resolves in crossdns and through CoreDNS alike.
    Dns,
}

impl Hop {
    /// Every hop, in the order they are checked.
    pub const ALL: [Self; 7] = [
        Self::Annotations,
        Self::EthNauti,
        Self::LogicalSwitchPort,
        Self::Gateway,
        Self::Peer,
        Self::Routes,
        Self::Dns,
    ];

    /// What the hop checks, for `diagnose --explain`.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Annotations => "the pod carries a readable, consistent nauti.io/* record",
            Self::EthNauti => "the pod has eth-nauti with the annotated address",
            Self::LogicalSwitchPort => {
                "the pod's logical switch port holds that address, is bound on the pod's node and up"
            }
            Self::Gateway => {
                "the cluster's gateway (CNF) port has the annotated address and answers"
            }
            Self::Peer => {
                "the Peers of both clusters are Valid and Ready with a handshake under 180s old"
            }
            Self::Routes => "each gateway routes the other cluster's slices over WireGuard",
            Self::Dns => "the name resolves in crossdns, and through CoreDNS to the same addresses",
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Annotations => "annotations",
            Self::EthNauti => "eth-nauti",
            Self::LogicalSwitchPort => "logical switch port",
            Self::Gateway => "gateway",
            Self::Peer => "peer",
            Self::Routes => "routes",
            Self::Dns => "dns",
        }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hop that failed and why, worded for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub hop: Hop,
    pub message: String,
}

/// The outcome of one `diagnose`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The hops that passed, in order.
    pub passed: Vec<Hop>,
    /// The first hop that failed; the hops after it were not checked.
    pub failure: Option<Failure>,
}

impl Report {
    /// 0 when every hop passed, 1 when one failed.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failure.is_some())
    }

    /// One line per checked hop, `ok` or `FAIL` with the cause.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for hop in &self.passed {
            out.push_str(&format!("ok    {hop}\n"));
        }
        if let Some(f) = &self.failure {
            out.push_str(&format!("FAIL  {}: {}\n", f.hop, f.message));
        }
        out
    }
}

/// Checks each hop of `facts` in order and stops at the first failure. `now` dates the Peers'
/// handshakes. Peer and route hops apply only when the destination is in another cluster, the
/// DNS hop only when it is a service name.
pub fn diagnose(facts: &PathFacts, now: jiff::Timestamp) -> Report {
    let mut report = Report {
        passed: Vec::new(),
        failure: None,
    };
    let pod_network = match check_annotations(&facts.source) {
        Ok(network) => network,
        Err(message) => return report.fail(Hop::Annotations, message),
    };
    report.passed.push(Hop::Annotations);

    let cross_cluster = facts.destination.cluster_id() != facts.source_cluster;
    let checks: [(Hop, bool, CheckResult); 5] = [
        (Hop::EthNauti, true, check_eth_nauti(facts, &pod_network)),
        (Hop::LogicalSwitchPort, true, check_lsp(facts, &pod_network)),
        (Hop::Gateway, true, check_gateway(facts, &pod_network)),
        (Hop::Peer, cross_cluster, check_peers(facts, now)),
        (Hop::Routes, cross_cluster, check_routes(facts)),
    ];
    for (hop, applies, result) in checks {
        if !applies {
            continue;
        }
        match result {
            Ok(()) => report.passed.push(hop),
            Err(message) => return report.fail(hop, message),
        }
    }
    if let Destination::Service { name, .. } = &facts.destination {
        match check_dns(name, &facts.dns) {
            Ok(()) => report.passed.push(Hop::Dns),
            Err(message) => return report.fail(Hop::Dns, message),
        }
    }
    report
}

impl Report {
    fn fail(mut self, hop: Hop, message: String) -> Self {
        self.failure = Some(Failure { hop, message });
        self
    }
}

type CheckResult = Result<(), String>;

fn pod_ref(pod: &SourcePod) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

fn check_annotations(pod: &SourcePod) -> Result<PodNetwork, String> {
    match PodNetwork::try_from_annotations(&pod.annotations) {
        Ok(Some(network)) => Ok(network),
        Ok(None) => Err(format!(
            "pod {} has no nauti.io/* annotations: Nauti did not give it a second NIC; check \
             that it is not annotated nauti.io/enabled=false and see the pod's NautiNicFailed events",
            pod_ref(pod)
        )),
        Err(e) => Err(format!(
            "pod {} has an unusable Nauti record: {e}; delete the pod so nauti-nri plumbs it again",
            pod_ref(pod)
        )),
    }
}

fn check_eth_nauti(facts: &PathFacts, network: &PodNetwork) -> CheckResult {
    let pod = &facts.source;
    match pod.eth_nauti {
        None => Err(format!(
            "pod {} has no eth-nauti: the NRI plugin did not plumb it; see the pod's NautiNicFailed events",
            pod_ref(pod)
        )),
        Some(inside) if inside != network.ip_address => Err(format!(
            "pod {} is annotated {}={} but its eth-nauti has {inside}: the annotation is forged \
             or stale; delete the pod so nauti-nri plumbs it again",
            pod_ref(pod),
            nauti_api::keys::IP_ADDRESS,
            network.ip_address
        )),
        Some(_) => Ok(()),
    }
}

fn lsp_has_address(lsp: &LogicalSwitchPort, ip: IpAddr) -> bool {
    lsp.addresses
        .iter()
        .flat_map(|entry| entry.split_whitespace())
        .any(|word| word.parse::<IpAddr>() == Ok(ip))
}

fn check_lsp(facts: &PathFacts, network: &PodNetwork) -> CheckResult {
    let pod = &facts.source;
    let Some(lsp) = &facts.lsp else {
        return Err(format!(
            "pod {} has no logical switch port {} on {}: nauti-nri did not create it or it was \
             removed; delete the pod so it is plumbed again",
            pod_ref(pod),
            nauti_api::core::port::lsp_name(&pod.namespace, &pod.name),
            network.logical_switch
        ));
    };
    if !lsp_has_address(lsp, network.ip_address) {
        return Err(format!(
            "logical switch port {} holds [{}], not the annotated {}={} of pod {}: the \
             annotation is forged or stale; delete the pod so nauti-nri plumbs it again",
            lsp.name,
            lsp.addresses.join(", "),
            nauti_api::keys::IP_ADDRESS,
            network.ip_address,
            pod_ref(pod)
        ));
    }
    match &lsp.chassis {
        None => {
            return Err(format!(
                "logical switch port {} is not bound to any chassis: ovn-controller on node {} \
                 did not claim it; check the OVS interface's external_ids:iface-id and \
                 ovn-controller's log on {}",
                lsp.name, pod.node, pod.node
            ));
        }
        Some(chassis) if *chassis != pod.node => {
            return Err(format!(
                "logical switch port {} is bound on chassis {chassis}, but pod {} runs on {}: a \
                 stale port of an older sandbox holds it; delete the pod so it is plumbed again",
                lsp.name,
                pod_ref(pod),
                pod.node
            ));
        }
        Some(_) => {}
    }
    if lsp.up != Some(true) {
        return Err(format!(
            "logical switch port {} is bound on {} but not up: ovn-controller has not installed \
             its flows; see ovn-controller's log on {}",
            lsp.name, pod.node, pod.node
        ));
    }
    Ok(())
}

fn check_gateway(facts: &PathFacts, network: &PodNetwork) -> CheckResult {
    let cluster = &facts.source_cluster;
    let Some(gateway) = &facts.gateway else {
        return Err(format!(
            "cluster {cluster} has no gateway port: the CNF is not running; check the \
             nauti-gateway deployment (is it scaled to 0?)"
        ));
    };
    if let Some(address) = gateway.address
        && address != network.gateway
    {
        return Err(format!(
            "pod {} routes via {}={} but the gateway port {} of cluster {cluster} has {address}: \
             the annotation is stale; delete the pod so nauti-nri plumbs it again",
            pod_ref(&facts.source),
            nauti_api::keys::GATEWAY,
            network.gateway,
            gateway.name
        ));
    }
    if !gateway.answers {
        return Err(format!(
            "gateway {} of cluster {cluster} ({}) does not answer from pod {}: the CNF pod is \
             down or its port is not up; check the nauti-gateway pod and its logs",
            gateway.name,
            network.gateway,
            pod_ref(&facts.source)
        ));
    }
    Ok(())
}

fn find_peer<'a>(peers: &'a [Peer], cluster_id: &str) -> Option<&'a Peer> {
    peers.iter().find(|p| p.spec.cluster_id == cluster_id)
}

fn check_peer(peer: &Peer, now: jiff::Timestamp) -> CheckResult {
    let id = &peer.spec.cluster_id;
    let Some(status) = &peer.status else {
        return Err(format!(
            "Peer {id} has no status yet: its agent has not reported; check nauti-agent in {id}"
        ));
    };
    if let Some(valid) = status.condition(condition::VALID)
        && valid.status != "True"
    {
        return Err(format!(
            "Peer {id} is not Valid: {}: {}; fix its spec",
            valid.reason, valid.message
        ));
    }
    let handshake = status.last_handshake.as_ref().map(|t| t.0);
    let handshake_text = match handshake {
        Some(at) => format!("last handshake {} ago", crate::age(at, now)),
        None => "never a handshake".to_owned(),
    };
    let endpoint = peer
        .spec
        .endpoint
        .as_ref()
        .map(|e| format!("{e}:{}", peer.spec.port))
        .unwrap_or_else(|| "its endpoint".to_owned());
    match status.condition(condition::READY) {
        Some(ready) if ready.status == "True" => {}
        other => {
            let reason = other.map_or("no Ready condition", |c| c.reason.as_str());
            return Err(format!(
                "Peer {id} is not Ready: {reason}, {handshake_text}; check {id}'s gateway and \
                 that UDP reaches {endpoint}"
            ));
        }
    }
    match handshake {
        Some(at) if now.as_second() - at.as_second() <= HANDSHAKE_FRESH_SECS => Ok(()),
        _ => Err(format!(
            "Peer {id} is Ready but its tunnel is stale: {handshake_text} (keys expire after \
             {HANDSHAKE_FRESH_SECS}s); check {id}'s gateway and that UDP reaches {endpoint}"
        )),
    }
}

fn check_peers(facts: &PathFacts, now: jiff::Timestamp) -> CheckResult {
    for cluster_id in [
        facts.source_cluster.as_str(),
        facts.destination.cluster_id(),
    ] {
        let Some(peer) = find_peer(&facts.peers, cluster_id) else {
            return Err(format!(
                "cluster {cluster_id} has no Peer on the hub: it has not joined; run \
                 nautictl join-token create and install nauti-agent there"
            ));
        };
        check_peer(peer, now)?;
    }
    Ok(())
}

/// Whether some route of `routes` (`ip route` lines, destination first) covers `slice`. Lines
/// that do not start with a canonical CIDR are ignored: they cannot cover a slice.
fn routes_cover(routes: &[String], slice: &str) -> bool {
    let Ok(slice) = parse_canonical_cidr(slice) else {
        return false;
    };
    routes
        .iter()
        .filter_map(|r| r.split_whitespace().next())
        .filter_map(|r| parse_canonical_cidr(r).ok())
        .any(|route| route.contains(&slice))
}

fn check_routes(facts: &PathFacts) -> CheckResult {
    let source = facts.source_cluster.as_str();
    let destination = facts.destination.cluster_id();
    for (from, to, routes) in [
        (source, destination, &facts.source_routes),
        (destination, source, &facts.destination_routes),
    ] {
        let Some(routes) = routes else {
            return Err(format!(
                "the routes of the gateway of {from} could not be read: check that its CNF pod runs"
            ));
        };
        // check_peers ran first, so both Peers exist; a missing one has no slices to route.
        let slices = find_peer(&facts.peers, to)
            .map(|p| p.spec.cluster_cidrs.clone())
            .unwrap_or_default();
        for slice in slices {
            if !routes_cover(&routes.routes, &slice.to_string()) {
                return Err(format!(
                    "gateway of {from} has no route to {slice} ({to}'s slice): its tunnel agent \
                     did not install it; see the gateway's logs in {from}"
                ));
            }
        }
    }
    Ok(())
}

fn sorted(addresses: &[IpAddr]) -> Vec<IpAddr> {
    let mut out = addresses.to_vec();
    out.sort();
    out.dedup();
    out
}

fn list(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_dns(name: &str, dns: &DnsAnswers) -> CheckResult {
    let crossdns = dns.crossdns.as_deref().filter(|a| !a.is_empty());
    let coredns = dns.coredns.as_deref().filter(|a| !a.is_empty());
    match (crossdns, coredns) {
        (None, _) => Err(format!(
            "{name} does not resolve in crossdns: the service is not exported or crossdns is \
             down; check its ServiceExport and the crossdns pod"
        )),
        (Some(_), None) => Err(format!(
            "{name} resolves in crossdns but not through CoreDNS: the Corefile is not wired; \
             run crossdns wire-coredns"
        )),
        (Some(cross), Some(core)) if sorted(cross) != sorted(core) => Err(format!(
            "{name} resolves to [{}] in crossdns but to [{}] through CoreDNS: CoreDNS answers \
             from another zone or a stale cache; check the Corefile's forward for the zone",
            list(&sorted(cross)),
            list(&sorted(core))
        )),
        (Some(_), Some(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests;
