//! The checks of `nautictl diagnose` as plain functions over what was read along one path, from
//! a source pod to a destination pod or service name. Reading the facts (kube, the OVN
//! northbound and southbound databases, the hub's Peers, crossdns) is an adapter's job; here
//! every hop is decided and worded, so each failure message is unit-tested.
//!
//! The path (README, "The cross-cluster path"): the pod's `eth-nauti` is its port `<ns>_<pod>`
//! on the switch `nauti-<cluster>`; the switch's gateway router `nauti-<cluster>-gw` holds the
//! pod's gateway address and routes the global network through the active CNF pod (the leader
//! of Deployment `octopus-member`, holder of Lease `octopus-member`); the CNF tunnels to the
//! other cluster, whose Peer on the hub is Ready with a recent handshake; each end's CNF routes
//! the other end's slices into its WireGuard interface; a service name resolves in crossdns.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use nauti_api::PodNetwork;
use nauti_api::peer::{Peer, condition};
use nauti_octopus::routes::InterfaceRoutes;
use nauti_ovn::client::sb::PortBinding;

pub mod dns;

/// A WireGuard session's keys expire 180 s after its last handshake (REJECT_AFTER_TIME); an
/// older handshake means no traffic can cross the tunnel until a new one succeeds.
pub const HANDSHAKE_FRESH_SECS: i64 = 180;

/// The `external_ids` key of the gateway route naming the CNF pod that set it (octopus's
/// `claim::POD_KEY`).
pub const CNF_POD_KEY: &str = "nauti.io/cnf-pod";

/// The source pod as read from the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePod {
    pub namespace: String,
    pub name: String,
    /// The node the pod runs on: the chassis its port must be bound to.
    pub node: String,
    /// All of the pod's annotations; the `nauti.io/*` ones are read from them.
    pub annotations: BTreeMap<String, String>,
}

/// The pod's OVN logical switch port in the northbound database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchPort {
    pub name: String,
    /// The `addresses` column, e.g. `["0a:58:0a:70:01:05 10.112.1.5"]`.
    pub addresses: Vec<String>,
}

/// What the southbound database says of the pod's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingFacts {
    /// No southbound database was given: the hop is skipped.
    NotRead,
    /// The southbound database has no `Port_Binding` for the port (northd has not seen it).
    NoRow,
    Row(PortBinding),
}

/// One static route of the gateway router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterRoute {
    pub ip_prefix: String,
    pub nexthop: String,
    /// The lease identity of the CNF that set it (`external_ids:nauti.io/cnf-pod`:
    /// `<pod>_<suffix>`).
    pub cnf_pod: Option<String>,
}

/// A CNF pod as read from the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnfPod {
    pub name: String,
    /// `status.phase`.
    pub phase: String,
    /// Set when the pod is being deleted.
    pub deleting: bool,
    /// Its `nauti.io/ip_address`, the address on its own `eth-nauti`.
    pub address: Option<IpAddr>,
}

/// The CNF's Lease as read from the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFacts {
    pub namespace: String,
    pub name: String,
    /// `holderIdentity`: `<pod>_<suffix>` for octopus.
    pub holder: Option<String>,
    pub renewed: Option<jiff::Timestamp>,
    pub duration_secs: Option<i64>,
}

/// The cluster's gateway router and the CNF its route names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayFacts {
    /// `nauti-<cluster>-gw`.
    pub router: String,
    /// The `networks` of the router's port on the switch (`10.113.0.1/16`); `None` when the
    /// port does not exist.
    pub router_networks: Option<Vec<String>>,
    /// The global network the route to the other clusters covers.
    pub global: String,
    /// Every static route of the router.
    pub routes: Vec<RouterRoute>,
    /// The namespace the CNF runs in.
    pub cnf_namespace: String,
    /// The CNF's Deployment: `(spec.replicas, status.readyReplicas)`; `None` when it is absent.
    pub deployment: Option<(i32, i32)>,
    /// The pod the route names, when it exists.
    pub cnf: Option<CnfPod>,
    /// The CNF's Lease; `None` when it does not exist.
    pub lease: Option<LeaseFacts>,
}

/// Where the path ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// No `--to`: only the source cluster's hops are checked.
    None,
    /// A pod of `cluster_id` at `address`.
    Pod {
        namespace: String,
        name: String,
        address: IpAddr,
        cluster_id: String,
    },
    /// A service name such as `nginx-svc.default.svc.hyperos.local`, exported by `clusters`
    /// (from the ServiceImports on the hub).
    Service { name: String, clusters: Vec<String> },
}

impl Destination {
    /// The clusters the path may end in.
    fn cluster_ids(&self) -> Vec<&str> {
        match self {
            Self::None => Vec::new(),
            Self::Pod { cluster_id, .. } => vec![cluster_id],
            Self::Service { clusters, .. } => clusters.iter().map(String::as_str).collect(),
        }
    }
}

/// Everything `diagnose` read along one path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathFacts {
    pub source_cluster: String,
    /// `None` without `--from`: the pod's hops are skipped.
    pub source: Option<SourcePod>,
    /// `None` when the port does not exist in the northbound database.
    pub lsp: Option<SwitchPort>,
    pub binding: BindingFacts,
    pub gateway: GatewayFacts,
    pub destination: Destination,
    /// The Peers of the cluster set, from the hub.
    pub peers: Vec<Peer>,
    /// What crossdns answered for a service name; `None` for no address (no answer, NXDOMAIN,
    /// a timeout).
    pub crossdns: Option<Vec<IpAddr>>,
    /// What the source pod's own network namespace shows of `eth-nauti`.
    pub interface: InterfaceFacts,
    /// Whether crossdns runs: its Deployment and the ready endpoints behind its Service.
    pub crossdns_state: CrossdnsState,
    /// What the cluster's CoreDNS (the kube-dns Service) answered for the service name.
    pub coredns: CorednsFacts,
    /// What the active CNF of each cluster on the path routes into its tunnel: the source's,
    /// then each destination cluster's.
    pub tunnel_routes: Vec<CnfRoutes>,
}

/// The tunnel routes of one cluster's active CNF pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnfRoutes {
    pub cluster_id: String,
    pub read: CnfRoutesRead,
}

/// How reading a CNF's tunnel routes (`octopus routes` in its pod) went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CnfRoutesRead {
    /// Not read, why (no kubeconfig context for the cluster was given).
    NotRead(String),
    /// Could not be read, why (no active CNF pod, the exec failed).
    Unreadable(String),
    /// What `octopus routes` printed in CNF pod `pod` (`<namespace>/<name>`).
    Listed {
        pod: String,
        routes: InterfaceRoutes,
    },
}

/// The pod's second NIC.
pub const POD_INTERFACE: &str = "eth-nauti";

/// What `ip -o link show` and `ip -o addr show` of [`POD_INTERFACE`] said inside the pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InterfaceFacts {
    /// Not read: no source pod, or the pod could not run the command (why).
    #[default]
    NotRead,
    /// The command could not run in the pod (no shell or `ip` in its image, exec refused).
    Unreadable(String),
    /// The pod has no such interface (the command's message).
    Missing(String),
    /// The interface's MAC and addresses.
    Present {
        mac: Option<String>,
        addresses: Vec<IpAddr>,
    },
}

/// Reads `ip -o link show` and `ip -o addr show` output (iproute2's or busybox's) of one
/// interface: its `link/ether` MAC and its `inet`/`inet6` addresses.
pub fn parse_ip_oneline(text: &str) -> InterfaceFacts {
    let mut mac = None;
    let mut addresses = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            match pair[0] {
                "link/ether" => mac = Some(pair[1].to_ascii_lowercase()),
                "inet" | "inet6" => {
                    let address = pair[1].split('/').next().unwrap_or_default();
                    if let Ok(ip) = address.parse() {
                        addresses.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    InterfaceFacts::Present { mac, addresses }
}

/// crossdns's Deployment and Service as the source cluster's API server shows them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CrossdnsState {
    pub namespace: String,
    /// `(spec.replicas, status.readyReplicas)` of Deployment `crossdns`; `None` when absent.
    pub deployment: Option<(i32, i32)>,
    /// Ready endpoints behind Service `crossdns`; `None` when not read.
    pub ready_endpoints: Option<usize>,
}

/// What the cluster's CoreDNS answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorednsFacts {
    /// Not asked (no service name, or no way to ask: why).
    #[default]
    NotAsked,
    /// Could not be asked; why.
    Unasked(String),
    /// Its addresses for the name; `None` for none (NXDOMAIN, SERVFAIL, a timeout: why).
    Answered {
        server: String,
        addresses: Result<Vec<IpAddr>, String>,
    },
}

/// The hops of a path, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hop {
    /// The pod carries a readable, consistent `nauti.io/*` record.
    Annotations,
    /// The pod's logical switch port holds the annotated address and MAC.
    LogicalSwitchPort,
    /// The port is bound to the pod's node's chassis.
    Binding,
    /// The pod's own `eth-nauti` holds the annotated address and MAC.
    Interface,
    /// The gateway router holds the pod's gateway and routes the global network through a
    /// running CNF pod that holds the Lease.
    Gateway,
    /// The Peers of both ends are Valid and Ready with a recent handshake.
    Peer,
    /// Each end's active CNF routes the other end's slices into its WireGuard interface.
    TunnelRoutes,
    /// The service name resolves in crossdns.
    Dns,
    /// The service name resolves through the cluster's CoreDNS to crossdns's addresses.
    CoreDns,
}

impl Hop {
    /// Every hop, in the order they are checked.
    pub const ALL: [Self; 9] = [
        Self::Annotations,
        Self::LogicalSwitchPort,
        Self::Binding,
        Self::Interface,
        Self::Gateway,
        Self::Peer,
        Self::TunnelRoutes,
        Self::Dns,
        Self::CoreDns,
    ];

    /// What the hop checks.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Annotations => "the pod carries a readable, consistent nauti.io/* record",
            Self::LogicalSwitchPort => {
                "the pod's logical switch port holds the annotated address and MAC"
            }
            Self::Binding => "the port is bound (southbound Port_Binding) on the pod's node",
            Self::Interface => "the pod's own eth-nauti holds the annotated address and MAC",
            Self::Gateway => {
                "the gateway router holds the pod's gateway and routes the global network \
                 through a running CNF pod that holds the Lease"
            }
            Self::TunnelRoutes => {
                "each end's active CNF routes the other end's slices into its WireGuard interface"
            }
            Self::Peer => {
                "the Peers of both clusters are Valid and Ready with a handshake under 180s old"
            }
            Self::Dns => "the service name resolves in crossdns",
            Self::CoreDns => {
                "the service name resolves through the cluster's CoreDNS to crossdns's addresses"
            }
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Annotations => "annotations",
            Self::LogicalSwitchPort => "logical switch port",
            Self::Binding => "port binding",
            Self::Interface => "interface",
            Self::Gateway => "gateway",
            Self::TunnelRoutes => "tunnel routes",
            Self::Peer => "peer",
            Self::Dns => "dns",
            Self::CoreDns => "coredns",
        }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one hop went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed; what was seen.
    Ok(String),
    /// Not checked; why.
    Skipped(String),
    /// Failed; the cause, worded for the operator.
    Failed(String),
}

/// The outcome of one `diagnose`: the hops checked, in order, up to the first failure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub hops: Vec<(Hop, Outcome)>,
}

impl Report {
    /// The hop that failed and its message.
    pub fn failure(&self) -> Option<(Hop, &str)> {
        self.hops.iter().find_map(|(hop, outcome)| match outcome {
            Outcome::Failed(message) => Some((*hop, message.as_str())),
            _ => None,
        })
    }

    /// The hops that passed, in order.
    pub fn passed(&self) -> Vec<Hop> {
        self.hops
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Ok(_)))
            .map(|(h, _)| *h)
            .collect()
    }

    /// 0 when no hop failed, 1 when one did.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failure().is_some())
    }

    /// One line per hop: `ok`, `skip` or `FAIL`, the hop and what was seen or why.
    pub fn render(&self) -> String {
        let width = Hop::ALL.iter().map(|h| h.as_str().len()).max().unwrap_or(0);
        let mut out = String::new();
        for (hop, outcome) in &self.hops {
            let (tag, text) = match outcome {
                Outcome::Ok(text) => ("ok", text),
                Outcome::Skipped(text) => ("skip", text),
                Outcome::Failed(text) => ("FAIL", text),
            };
            out.push_str(&format!("{tag:<5} {:<width$}  {text}\n", hop.as_str()));
        }
        out
    }

    fn push(&mut self, hop: Hop, result: CheckResult) -> bool {
        let failed = result.is_err();
        self.hops.push((
            hop,
            match result {
                Ok(text) => Outcome::Ok(text),
                Err(text) => Outcome::Failed(text),
            },
        ));
        !failed
    }

    fn skip(&mut self, hop: Hop, why: impl Into<String>) {
        self.hops.push((hop, Outcome::Skipped(why.into())));
    }
}

/// Checks each hop of `facts` in order and stops at the first failure. `now` dates the Lease
/// and the Peers' handshakes. The Peer hop applies only when the destination is in another
/// cluster, the DNS hop only when it is a service name.
pub fn diagnose(facts: &PathFacts, now: jiff::Timestamp) -> Report {
    let mut report = Report::default();
    let network = match &facts.source {
        None => {
            for hop in [
                Hop::Annotations,
                Hop::LogicalSwitchPort,
                Hop::Binding,
                Hop::Interface,
            ] {
                report.skip(hop, "no --from pod");
            }
            None
        }
        Some(pod) => {
            let network = match check_annotations(pod) {
                Ok(network) => network,
                Err(message) => {
                    report.push(Hop::Annotations, Err(message));
                    return report;
                }
            };
            report.push(
                Hop::Annotations,
                Ok(format!(
                    "{}={} {}={} on {}",
                    nauti_api::keys::IP_ADDRESS,
                    network.ip_address,
                    nauti_api::keys::MAC_ADDRESS,
                    network.mac_address,
                    network.logical_switch
                )),
            );
            if !report.push(
                Hop::LogicalSwitchPort,
                check_lsp(pod, facts.lsp.as_ref(), &network),
            ) {
                return report;
            }
            match check_binding(pod, facts.lsp.as_ref(), &facts.binding) {
                Some(result) => {
                    if !report.push(Hop::Binding, result) {
                        return report;
                    }
                }
                None => report.skip(
                    Hop::Binding,
                    "no --ovn-sb: where the port is bound was not read",
                ),
            }
            match check_interface(pod, &facts.interface, &network) {
                Some(result) => {
                    if !report.push(Hop::Interface, result) {
                        return report;
                    }
                }
                None => report.skip(Hop::Interface, interface_skip_reason(&facts.interface)),
            }
            Some(network)
        }
    };
    if !report.push(
        Hop::Gateway,
        check_gateway(
            &facts.source_cluster,
            facts.source.as_ref(),
            network.as_ref(),
            &facts.gateway,
            now,
        ),
    ) {
        return report;
    }
    let remote: Vec<&str> = facts
        .destination
        .cluster_ids()
        .into_iter()
        .filter(|id| *id != facts.source_cluster)
        .collect();
    let cross_cluster = match &facts.destination {
        Destination::None => Err("no --to destination"),
        Destination::Service { clusters, .. } if clusters.is_empty() => {
            Err("no cluster exports the service")
        }
        _ if remote.is_empty() => Err("the destination is in this cluster"),
        _ => Ok(()),
    };
    match cross_cluster {
        Err(why) => {
            report.skip(Hop::Peer, why);
            report.skip(Hop::TunnelRoutes, why);
        }
        Ok(()) => {
            if !report.push(Hop::Peer, check_peers(facts, &remote, now)) {
                return report;
            }
            match check_tunnel_routes(facts, &remote) {
                Ok((seen, not_read)) if seen.is_empty() => {
                    report.skip(Hop::TunnelRoutes, not_read.join("; "));
                }
                Ok((mut seen, not_read)) => {
                    if !not_read.is_empty() {
                        seen.push(format!("not checked: {}", not_read.join("; ")));
                    }
                    report.push(Hop::TunnelRoutes, Ok(seen.join("; ")));
                }
                Err(message) => {
                    report.push(Hop::TunnelRoutes, Err(message));
                    return report;
                }
            }
        }
    }
    if let Destination::Service { name, clusters } = &facts.destination {
        if !report.push(
            Hop::Dns,
            check_dns(
                name,
                facts.crossdns.as_deref(),
                clusters,
                &facts.crossdns_state,
            ),
        ) {
            return report;
        }
        match (&facts.coredns, facts.crossdns.as_deref()) {
            (CorednsFacts::NotAsked, _) => report.skip(Hop::CoreDns, "CoreDNS was not asked"),
            (CorednsFacts::Unasked(why), _) => report.skip(Hop::CoreDns, why.clone()),
            (CorednsFacts::Answered { server, addresses }, crossdns) => {
                report.push(
                    Hop::CoreDns,
                    check_coredns(name, server, addresses, crossdns.unwrap_or_default()),
                );
            }
        }
    }
    report
}

/// What a passing hop saw, or why it failed.
type CheckResult = Result<String, String>;

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

/// The `"MAC IP..."` entry of `addresses` that holds a MAC, split.
fn port_address(lsp: &SwitchPort) -> Option<(String, Vec<IpAddr>)> {
    lsp.addresses.iter().find_map(|entry| {
        let mut words = entry.split_whitespace();
        let mac = words.next()?.to_ascii_lowercase();
        let ips: Vec<IpAddr> = words.filter_map(|w| w.parse().ok()).collect();
        (mac.split(':').count() == 6).then_some((mac, ips))
    })
}

fn check_lsp(pod: &SourcePod, lsp: Option<&SwitchPort>, network: &PodNetwork) -> CheckResult {
    let Some(lsp) = lsp else {
        return Err(format!(
            "pod {} has no logical switch port {} on {}: nauti-nri did not create it or it was \
             removed; delete the pod so it is plumbed again",
            pod_ref(pod),
            nauti_api::core::port::lsp_name(&pod.namespace, &pod.name),
            network.logical_switch
        ));
    };
    let Some((mac, ips)) = port_address(lsp) else {
        return Err(format!(
            "logical switch port {} has no MAC and address ([{}]): it is not a pod port; \
             delete the pod so nauti-nri plumbs it again",
            lsp.name,
            lsp.addresses.join(", ")
        ));
    };
    if !ips.contains(&network.ip_address) {
        let held = ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "pod {} is annotated {}={} but its logical switch port {} holds {held}: the \
             annotation is forged or stale; delete the pod so nauti-nri plumbs it again",
            pod_ref(pod),
            nauti_api::keys::IP_ADDRESS,
            network.ip_address,
            lsp.name
        ));
    }
    let annotated_mac = network.mac_address.to_string();
    if mac != annotated_mac {
        return Err(format!(
            "pod {} is annotated {}={annotated_mac} but its logical switch port {} holds \
             {mac}: the annotation is forged or stale; delete the pod so nauti-nri plumbs it again",
            pod_ref(pod),
            nauti_api::keys::MAC_ADDRESS,
            lsp.name
        ));
    }
    Ok(format!("{} holds {mac} {}", lsp.name, network.ip_address))
}

/// `None` when the southbound database was not read.
fn check_binding(
    pod: &SourcePod,
    lsp: Option<&SwitchPort>,
    binding: &BindingFacts,
) -> Option<CheckResult> {
    let port = lsp.map_or_else(
        || nauti_api::core::port::lsp_name(&pod.namespace, &pod.name),
        |l| l.name.clone(),
    );
    let node = &pod.node;
    Some(match binding {
        BindingFacts::NotRead => return None,
        BindingFacts::NoRow => Err(format!(
            "logical switch port {port} has no Port_Binding in the southbound database: \
             ovn-northd has not translated it; check that ovn-northd runs"
        )),
        BindingFacts::Row(PortBinding { chassis: None, .. }) => Err(format!(
            "logical switch port {port} is not bound to any chassis: ovn-controller on node \
             {node} did not claim it; check the OVS interface's external_ids:iface-id and \
             ovn-controller's log on {node}"
        )),
        BindingFacts::Row(PortBinding {
            chassis: Some(chassis),
            ..
        }) if chassis.name != *node && chassis.hostname != *node => Err(format!(
            "logical switch port {port} is bound on chassis {} ({}), but pod {} runs on \
             {node}: a stale port of an older sandbox holds it; delete the pod so it is \
             plumbed again",
            chassis.name,
            chassis.hostname,
            pod_ref(pod)
        )),
        BindingFacts::Row(PortBinding {
            chassis: Some(_),
            up: Some(false),
            ..
        }) => Err(format!(
            "logical switch port {port} is bound on {node} but not up: ovn-controller has not \
             installed its flows; see ovn-controller's log on {node}"
        )),
        BindingFacts::Row(PortBinding {
            chassis: Some(chassis),
            ..
        }) => Ok(format!("{port} bound on chassis {}", chassis.name)),
    })
}

/// The address of a router port network such as `10.113.0.1/16`.
fn network_address(network: &str) -> Option<IpAddr> {
    network.split('/').next()?.parse().ok()
}

/// The pod of a lease identity: octopus's is `<pod>_<suffix>` (a pod name has no `_`).
pub fn pod_of_identity(identity: &str) -> &str {
    identity.split_once('_').map_or(identity, |(pod, _)| pod)
}

/// Whether the Lease is held by `identity` and not expired at `now`.
fn lease_held_by(lease: &LeaseFacts, identity: &str, now: jiff::Timestamp) -> Result<(), String> {
    let lease_ref = format!("Lease {}/{}", lease.namespace, lease.name);
    let holder = lease.holder.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Err(format!("{lease_ref} has no holder: no CNF leads"));
    }
    if holder != identity {
        return Err(format!(
            "{lease_ref} is held by {holder}, not by {identity}: the route names a CNF that no \
             longer leads, and the leader has not taken the route over; see the leader's log"
        ));
    }
    if let (Some(renewed), Some(duration)) = (lease.renewed, lease.duration_secs) {
        let age = now.as_second() - renewed.as_second();
        if age > duration {
            return Err(format!(
                "{lease_ref} held by {holder} expired {}s ago (renewed {} ago, lasts {duration}s): \
                 the CNF stopped renewing it; see its log",
                age - duration,
                crate::age(renewed, now)
            ));
        }
    }
    Ok(())
}

fn check_gateway(
    cluster: &str,
    pod: Option<&SourcePod>,
    network: Option<&PodNetwork>,
    gateway: &GatewayFacts,
    now: jiff::Timestamp,
) -> CheckResult {
    let router = &gateway.router;
    let Some(networks) = &gateway.router_networks else {
        return Err(format!(
            "gateway router {router} of cluster {cluster} has no port on its switch: \
             nauti-ovnmaster has not made it; check that nauti-ovnmaster runs"
        ));
    };
    if let (Some(pod), Some(network)) = (pod, network)
        && !networks
            .iter()
            .any(|n| network_address(n) == Some(network.gateway))
    {
        return Err(format!(
            "pod {} routes via {}={} but gateway router {router} holds [{}]: the annotation \
             is forged or stale; delete the pod so nauti-nri plumbs it again",
            pod_ref(pod),
            nauti_api::keys::GATEWAY,
            network.gateway,
            networks.join(", ")
        ));
    }
    let global = &gateway.global;
    let Some(route) = gateway.routes.iter().find(|r| r.ip_prefix == *global) else {
        return Err(format!(
            "gateway router {router} has no route to {global} (the global network): traffic \
             to the other clusters has no way out; the active octopus-member sets this route on \
             every pass, so check that it runs and see its log"
        ));
    };
    let route_text = format!("route {global} via {} on {router}", route.nexthop);
    let cnf_namespace = &gateway.cnf_namespace;
    let deployment = match gateway.deployment {
        None => "Deployment octopus-member does not exist".to_owned(),
        Some((replicas, ready)) => format!(
            "Deployment octopus-member has {replicas} replica(s), {ready} ready{}",
            if replicas == 0 { " (scaled to 0?)" } else { "" }
        ),
    };
    let Some(identity) = &route.cnf_pod else {
        return Err(format!(
            "{route_text} names no CNF pod (no external_ids:{CNF_POD_KEY}): it was set by \
             hand, not by octopus-member; {deployment}"
        ));
    };
    let pod_name = pod_of_identity(identity);
    let cnf_ref = format!("CNF pod {cnf_namespace}/{pod_name}");
    let Some(cnf) = gateway.cnf.as_ref().filter(|c| c.name == pod_name) else {
        return Err(format!(
            "{route_text} names {cnf_ref}, which does not exist: the CNF is gone and no other \
             took over; {deployment}"
        ));
    };
    if cnf.phase != "Running" || cnf.deleting {
        let state = if cnf.deleting {
            format!("{}, being deleted", cnf.phase)
        } else {
            cnf.phase.clone()
        };
        return Err(format!(
            "{route_text} names {cnf_ref}, which is not running ({state}); {deployment}"
        ));
    }
    if let Some(address) = cnf.address
        && route.nexthop.parse::<IpAddr>() != Ok(address)
    {
        return Err(format!(
            "{route_text} but {cnf_ref} has {}={address}: the route is stale; the leader \
             resets it on its next pass",
            nauti_api::keys::IP_ADDRESS
        ));
    }
    let Some(lease) = &gateway.lease else {
        return Err(format!(
            "{route_text} names {cnf_ref}, but Lease {cnf_namespace}/octopus-member does not \
             exist: no CNF leads"
        ));
    };
    lease_held_by(lease, identity, now).map_err(|e| format!("{route_text}: {e}"))?;
    Ok(format!(
        "{route_text} ({cnf_ref}, Running, holds Lease {}/{})",
        lease.namespace, lease.name
    ))
}

/// Each cluster on the path whose CNF routes were read must route the other end's slices (the
/// source: every destination cluster's; a destination: the source's) into its WireGuard
/// interface, each slice as a route of its own as the gateway's plan sets it (the clusterset
/// block covering it does not count: its absence means the plan is not applied). The Peers were
/// checked before: a cluster without one is not looked at. What each read CNF routes, and why
/// the others were not read.
fn check_tunnel_routes(
    facts: &PathFacts,
    remote: &[&str],
) -> Result<(Vec<String>, Vec<String>), String> {
    let source = facts.source_cluster.as_str();
    let mut seen = Vec::new();
    let mut not_read = Vec::new();
    for end in std::iter::once(source).chain(remote.iter().copied()) {
        let others: Vec<&str> = if end == source {
            remote.to_vec()
        } else {
            vec![source]
        };
        let Some(cnf) = facts.tunnel_routes.iter().find(|c| c.cluster_id == end) else {
            not_read.push(format!("cluster {end}'s CNF was not read"));
            continue;
        };
        let (pod, routes) = match &cnf.read {
            CnfRoutesRead::NotRead(why) => {
                not_read.push(format!("cluster {end}: {why}"));
                continue;
            }
            CnfRoutesRead::Unreadable(why) => {
                return Err(format!(
                    "cannot read the tunnel routes of cluster {end}'s active CNF: {why}"
                ));
            }
            CnfRoutesRead::Listed { pod, routes } => (pod, routes),
        };
        let ifname = &routes.interface;
        if !routes.exists {
            return Err(format!(
                "cluster {end}'s CNF pod {pod} has no interface {ifname}: its tunnel is not up; \
                 see the pod's log"
            ));
        }
        let mut routed = Vec::new();
        for other in others {
            let slices = find_peer(&facts.peers, other).map_or(&[][..], |p| &p.spec.cluster_cidrs);
            for slice in slices {
                if !routes.routes.contains(&slice.trunc()) {
                    return Err(format!(
                        "cluster {end}'s CNF pod {pod} has no route to {slice} (cluster {other}'s \
                         slice) on {ifname} (it routes: {}): traffic to {other} does not enter \
                         the tunnel; the CNF puts the route back on its next pass, else see its \
                         log",
                        net_list(&routes.routes)
                    ));
                }
                routed.push(format!("{slice} ({other})"));
            }
        }
        seen.push(format!(
            "{end}'s CNF pod {pod} routes {} into {ifname}",
            routed.join(", ")
        ));
    }
    Ok((seen, not_read))
}

fn net_list(nets: &[impl fmt::Display]) -> String {
    if nets.is_empty() {
        return "nothing".to_owned();
    }
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn find_peer<'a>(peers: &'a [Peer], cluster_id: &str) -> Option<&'a Peer> {
    peers.iter().find(|p| p.spec.cluster_id == cluster_id)
}

/// The cluster whose slice holds `address`, from the Peers' `clusterCIDRs`.
pub fn cluster_of(peers: &[Peer], address: IpAddr) -> Option<String> {
    peers
        .iter()
        .find(|p| p.spec.cluster_cidrs.iter().any(|c| c.contains(&address)))
        .map(|p| p.spec.cluster_id.clone())
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
        Some(at) if now.as_second() - at.as_second() <= HANDSHAKE_FRESH_SECS => {
            Ok(format!("Peer {id} Ready, {handshake_text}"))
        }
        _ => Err(format!(
            "Peer {id} is Ready but its tunnel is stale: {handshake_text} (keys expire after \
             {HANDSHAKE_FRESH_SECS}s); check {id}'s gateway and that UDP reaches {endpoint}"
        )),
    }
}

fn check_peers(facts: &PathFacts, destinations: &[&str], now: jiff::Timestamp) -> CheckResult {
    let mut seen = Vec::new();
    for cluster_id in
        std::iter::once(facts.source_cluster.as_str()).chain(destinations.iter().copied())
    {
        let Some(peer) = find_peer(&facts.peers, cluster_id) else {
            return Err(format!(
                "cluster {cluster_id} has no Peer on the hub: it has not joined; run \
                 nautictl join-token create and install nauti-agent there"
            ));
        };
        seen.push(check_peer(peer, now)?);
    }
    Ok(seen.join("; "))
}

fn check_dns(
    name: &str,
    answers: Option<&[IpAddr]>,
    clusters: &[String],
    state: &CrossdnsState,
) -> CheckResult {
    match answers.filter(|a| !a.is_empty()) {
        None if clusters.is_empty() => Err(format!(
            "{name} does not resolve in crossdns, and no cluster exports it (no ServiceImport \
             on the hub): create a ServiceExport for it in the cluster that serves it"
        )),
        None => Err(match crossdns_stopped(state) {
            Some(cause) => format!(
                "{name} does not resolve: crossdns is stopped ({cause}) although {} export(s) \
                 it; scale Deployment {}/crossdns up or see why its pod is gone",
                clusters.join(", "),
                state.namespace
            ),
            None => format!(
                "{name} does not resolve in crossdns although {} export(s) it: crossdns is down or \
                 has not synced; check the crossdns pod and its log",
                clusters.join(", ")
            ),
        }),
        Some(addresses) => Ok(format!(
            "{name} -> {} (exported by {})",
            address_list(addresses),
            clusters.join(", ")
        )),
    }
}

/// Why crossdns is not running, when its Deployment or Service says so.
fn crossdns_stopped(state: &CrossdnsState) -> Option<String> {
    let ns = &state.namespace;
    match (state.deployment, state.ready_endpoints) {
        (Some((0, _)), _) => Some(format!(
            "Deployment {ns}/crossdns has 0 replica(s): scaled to 0"
        )),
        (Some((want, 0)), _) => Some(format!(
            "Deployment {ns}/crossdns has {want} replica(s), 0 ready"
        )),
        (_, Some(0)) => Some(format!(
            "Service {ns}/crossdns has no ready endpoint: its pod is gone or not ready"
        )),
        _ => None,
    }
}

fn address_list(addresses: &[IpAddr]) -> String {
    let mut sorted = addresses.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_coredns(
    name: &str,
    server: &str,
    answers: &Result<Vec<IpAddr>, String>,
    crossdns: &[IpAddr],
) -> CheckResult {
    let want = address_list(crossdns);
    match answers {
        Err(why) => Err(format!(
            "{name} does not resolve through CoreDNS at {server} ({why}) although crossdns \
             answers {want}: CoreDNS is not wired to crossdns; run crossdns wire-coredns"
        )),
        Ok(addresses) if addresses.is_empty() => Err(format!(
            "{name} does not resolve through CoreDNS at {server} although crossdns answers \
             {want}: CoreDNS is not wired to crossdns; run crossdns wire-coredns"
        )),
        Ok(addresses) if address_list(addresses) != want => Err(format!(
            "CoreDNS at {server} answers {name} with {} but crossdns with {want}: CoreDNS \
             forwards the zone elsewhere or serves a stale cache",
            address_list(addresses)
        )),
        Ok(_) => Ok(format!(
            "{name} -> {want} through CoreDNS at {server}, as crossdns"
        )),
    }
}

/// `None` when the interface was not read (the hop is skipped).
fn check_interface(
    pod: &SourcePod,
    facts: &InterfaceFacts,
    network: &PodNetwork,
) -> Option<CheckResult> {
    match facts {
        InterfaceFacts::NotRead | InterfaceFacts::Unreadable(_) => None,
        InterfaceFacts::Missing(message) => Some(Err(format!(
            "pod {} has no {POD_INTERFACE} ({}): nauti-nri did not plumb its second NIC or it \
             was removed; delete the pod so it is plumbed again",
            pod_ref(pod),
            message.trim()
        ))),
        InterfaceFacts::Present { mac, addresses } => {
            if !addresses.contains(&network.ip_address) {
                let held = if addresses.is_empty() {
                    "no address".to_owned()
                } else {
                    address_list(addresses)
                };
                return Some(Err(format!(
                    "pod {} is annotated {}={} but its {POD_INTERFACE} holds {held}: the \
                     annotation or the interface is stale; delete the pod so nauti-nri plumbs it \
                     again",
                    pod_ref(pod),
                    nauti_api::keys::IP_ADDRESS,
                    network.ip_address
                )));
            }
            let annotated_mac = network.mac_address.to_string();
            if let Some(mac) = mac
                && *mac != annotated_mac
            {
                return Some(Err(format!(
                    "pod {} is annotated {}={annotated_mac} but its {POD_INTERFACE} has MAC \
                     {mac}: delete the pod so nauti-nri plumbs it again",
                    pod_ref(pod),
                    nauti_api::keys::MAC_ADDRESS
                )));
            }
            Some(Ok(format!(
                "{POD_INTERFACE} in pod {} holds {} {}",
                pod_ref(pod),
                mac.as_deref().unwrap_or("(no MAC shown)"),
                network.ip_address
            )))
        }
    }
}

fn interface_skip_reason(facts: &InterfaceFacts) -> String {
    match facts {
        InterfaceFacts::Unreadable(why) => {
            format!("{POD_INTERFACE} could not be read in the pod: {why}")
        }
        _ => format!("{POD_INTERFACE} was not read"),
    }
}

/// The zone crossdns serves (`<service>.<namespace>.svc.<zone>`).
pub const CLUSTERSET_ZONE: &str = "hyperos.local";

/// What `--from`/`--to` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathEnd {
    /// `<namespace>/<pod>`.
    Pod { namespace: String, name: String },
    /// `<service>.<namespace>.svc.hyperos.local`.
    Service {
        fqdn: String,
        namespace: String,
        name: String,
    },
}

/// Parses `--to`: `<namespace>/<pod>`, or a service as `<service>.<namespace>` or its full name
/// `<service>.<namespace>.svc.hyperos.local` (a trailing dot is allowed).
pub fn parse_target(text: &str) -> Result<PathEnd, String> {
    if let Some((namespace, name)) = text.split_once('/') {
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(format!("{text:?} is not <namespace>/<pod>"));
        }
        return Ok(PathEnd::Pod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    }
    let bare = text.trim_end_matches('.');
    let short = bare
        .strip_suffix(&format!(".svc.{CLUSTERSET_ZONE}"))
        .unwrap_or(bare);
    match short.split('.').collect::<Vec<_>>().as_slice() {
        [name, namespace] if !name.is_empty() && !namespace.is_empty() => Ok(PathEnd::Service {
            fqdn: format!("{name}.{namespace}.svc.{CLUSTERSET_ZONE}"),
            namespace: (*namespace).to_owned(),
            name: (*name).to_owned(),
        }),
        _ => Err(format!(
            "{text:?} is neither <namespace>/<pod> nor a service name \
             <service>.<namespace>[.svc.{CLUSTERSET_ZONE}]"
        )),
    }
}

#[cfg(test)]
mod tests;
