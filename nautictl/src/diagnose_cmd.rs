//! `nautictl diagnose`: the adapters around [`nautictl::diagnose`]. They read the source pod,
//! its OVN port and binding, the gateway router and the CNF behind its route, the hub's Peers and
//! (for a service name) crossdns's answer, the tunnel routes of the active CNF at each end (with
//! `octopus routes` run in its pod), then hand all of it to the checks and print the hops.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use nauti_api::peer::DEFAULT_PEER_NAMESPACE;
use nauti_api::{Peer, ServiceImport};
use nauti_octopus::routes::InterfaceRoutes;
use nauti_ovn::client::sb;
use nauti_ovn::core::nb::{DB as NB_DB, LOGICAL_SWITCH_PORT};
use nauti_ovn::core::router;
use nauti_ovn::master::core::{gateway_router, gateway_router_port};
use nauti_ovn::{Client, ClientConfig, Condition, Endpoint, Northbound, Operation, TlsArgs};
use nautictl::diagnose::{
    BindingFacts, CNF_POD_KEY, CnfPod, CnfRoutes, CnfRoutesRead, CorednsFacts, CrossdnsState,
    Destination, GatewayFacts, InterfaceFacts, LeaseFacts, POD_INTERFACE, PathEnd, PathFacts,
    RouterRoute, SourcePod, SwitchPort, cluster_of, diagnose, dns, parse_target, pod_of_identity,
};
use nautictl::service_rows;

use crate::{Target, emit, load_config};

/// The Deployment and Lease of the CNF, as the nauti-agent chart names them.
const CNF_NAME: &str = "octopus-member";
/// How `dig_in_pod` words a server that did not answer, as opposed to `dig` not running.
const NO_ANSWER: &str = "no answer from";
/// The nauti-agent chart's global network (`tunnel.cidr`).
const DEFAULT_GLOBAL: &str = "10.112.0.0/12";
/// The CNF container's variable naming its WireGuard interface, and the chart's default name.
const INTERFACE_ENV: &str = "OCTOPUS_WIREGUARD_INTERFACE";
const DEFAULT_INTERFACE: &str = "nauti-wg";
/// The octopus binary in the CNF image (its entrypoint) when the pod names no command.
const DEFAULT_OCTOPUS: &str = "/octopus";

/// The flags of `diagnose`.
#[derive(Debug, clap::Args)]
pub struct DiagnoseArgs {
    /// The source pod, `<namespace>/<pod>`, in the cluster of --kubeconfig/--context.
    #[arg(long, value_name = "NS/POD")]
    pub from: Option<String>,
    /// The destination: a pod `<namespace>/<pod>` (in the cluster of --to-kubeconfig/--to-context)
    /// or a service name `<service>.<namespace>[.svc.hyperos.local]`.
    #[arg(long, value_name = "NS/POD|NAME")]
    pub to: Option<String>,
    /// The source cluster's ID; read from the source pod's nauti.io/logical_switch when absent.
    #[arg(long)]
    pub cluster_id: Option<String>,
    /// Kubeconfig of the destination pod's cluster; --kubeconfig's when absent.
    #[arg(long, value_name = "PATH")]
    pub to_kubeconfig: Option<PathBuf>,
    /// Context of the destination pod's cluster; the source cluster when neither it nor
    /// --to-kubeconfig is given.
    #[arg(long, value_name = "CONTEXT")]
    pub to_context: Option<String>,
    /// Kubeconfig of the hub; --kubeconfig's when absent.
    #[arg(long, value_name = "PATH")]
    pub hub_kubeconfig: Option<PathBuf>,
    /// Context of the hub (its Peers and ServiceImports); with --to, it or --hub-kubeconfig
    /// is needed.
    #[arg(long, value_name = "CONTEXT")]
    pub hub_context: Option<String>,
    /// Namespace of the Peers on the hub.
    #[arg(long, default_value = DEFAULT_PEER_NAMESPACE)]
    pub peer_namespace: String,
    /// The source cluster's OVN northbound database (`tcp:HOST:PORT`, `unix:PATH`, `ssl:HOST:PORT`).
    #[arg(long, value_name = "REMOTE")]
    pub ovn_nb: String,
    /// Its southbound database: where the pod's port is bound. Without it that hop is skipped.
    #[arg(long, value_name = "REMOTE")]
    pub ovn_sb: Option<String>,
    /// How long to wait for an API server's answer, an OVN database or crossdns (e.g. `10s`).
    #[arg(long, default_value = "10s")]
    pub timeout: jiff::SignedDuration,
    /// Client key and certificates for `ssl:` databases.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The global network the gateway router routes to the CNF.
    #[arg(long, default_value = DEFAULT_GLOBAL)]
    pub global_cidr: String,
    /// Namespace of the CNF (Deployment and Lease `octopus-member`) and of crossdns.
    #[arg(long, default_value = "nauti-system")]
    pub nauti_namespace: String,
    /// crossdns's address (`IP` or `IP:PORT`), asked from this machine; the cluster IP of its
    /// Service when absent, asked from the --from pod (with `dig`) when there is one.
    #[arg(long, value_name = "ADDR")]
    pub crossdns: Option<String>,
    /// The cluster's DNS Service (`<namespace>/<name>`), asked from the --from pod whether a
    /// service name resolves through CoreDNS as it does in crossdns.
    #[arg(long, value_name = "NS/NAME", default_value = "kube-system/kube-dns")]
    pub cluster_dns: String,
}

/// `--timeout`, checked.
pub fn timeout(args: &DiagnoseArgs) -> anyhow::Result<Duration> {
    Duration::try_from(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .with_context(|| format!("--timeout {:#} must be positive", args.timeout))
}

/// Bounds every request to an API server: a frozen one (accepting connections, answering
/// nothing) fails the diagnosis instead of hanging it.
pub fn bound_requests(config: &mut kube::Config, timeout: Duration) {
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
}

/// Runs the checks and prints one line per hop; the exit code says whether a hop failed.
pub async fn run(
    source: &Target,
    kubeconfig: Option<&PathBuf>,
    args: &DiagnoseArgs,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let from = args
        .from
        .as_deref()
        .map(parse_target)
        .transpose()
        .map_err(|e| anyhow!("--from {e}"))?;
    let from = match from {
        None => None,
        Some(PathEnd::Pod { namespace, name }) => Some((namespace, name)),
        Some(PathEnd::Service { .. }) => bail!("--from must be a pod, <namespace>/<pod>"),
    };
    let to = args
        .to
        .as_deref()
        .map(parse_target)
        .transpose()
        .map_err(|e| anyhow!("--to {e}"))?;

    let pod = match &from {
        Some((namespace, name)) => Some(read_source_pod(source, namespace, name).await?),
        None => None,
    };
    let logical_switch = pod
        .as_ref()
        .and_then(|p| p.annotations.get(nauti_api::keys::LOGICAL_SWITCH))
        .cloned();
    let source_cluster = match (&args.cluster_id, &logical_switch) {
        (Some(id), _) => id.clone(),
        (None, Some(switch)) => switch.strip_prefix("nauti-").unwrap_or(switch).to_owned(),
        (None, None) if pod.is_some() => String::new(),
        (None, None) => bail!("without --from, give the source cluster with --cluster-id"),
    };
    let switch = format!("nauti-{source_cluster}");

    let nb = connect(&args.ovn_nb, "--ovn-nb", &args.tls, timeout).await?;
    let northbound = Northbound::new(nb.clone());
    let lsp = match &pod {
        Some(pod) => bounded(timeout, "read the pod's port", find_port(&nb, &switch, pod))
            .await
            .with_context(|| format!("the northbound database at {}", args.ovn_nb))?,
        None => None,
    };
    let binding = match (&args.ovn_sb, &pod) {
        (Some(remote), Some(pod)) => {
            let sb_client = connect(remote, "--ovn-sb", &args.tls, timeout).await?;
            let port = lsp.as_ref().map_or_else(
                || nauti_api::core::port::lsp_name(&pod.namespace, &pod.name),
                |l| l.name.clone(),
            );
            match bounded(
                timeout,
                "read the Port_Binding",
                sb::port_binding(&sb_client, &port),
            )
            .await
            .with_context(|| format!("the southbound database at {remote}"))?
            {
                Some(row) => BindingFacts::Row(row),
                None => BindingFacts::NoRow,
            }
        }
        _ => BindingFacts::NotRead,
    };
    let gateway = read_gateway(source, &northbound, &nb, &switch, args, timeout)
        .await
        .with_context(|| format!("the gateway of cluster {source_cluster}"))?;

    let interface = match &pod {
        Some(pod) => read_interface(source, pod, timeout).await,
        None => InterfaceFacts::NotRead,
    };

    let mut crossdns_state = CrossdnsState::default();
    let mut coredns = CorednsFacts::NotAsked;
    // The destination's cluster, when a context other than the source's names it.
    let mut other_target = None;
    let (destination, peers, crossdns) = match &to {
        None => (Destination::None, Vec::new(), None),
        Some(end) => {
            let hub = hub_target(kubeconfig, args, timeout).await?;
            let peers: Api<Peer> = Api::namespaced(hub.client.clone(), &args.peer_namespace);
            let peers = peers
                .list(&ListParams::default())
                .await
                .map_err(concise)
                .with_context(|| {
                    hub.unreachable(&format!("list the Peers in {}", args.peer_namespace))
                })?
                .items;
            match end {
                PathEnd::Pod { namespace, name } => {
                    let target = destination_target(source, kubeconfig, args, timeout).await?;
                    let address = read_destination_address(&target, namespace, name).await?;
                    if has_to_flags(args) {
                        other_target = Some(target);
                    }
                    let cluster_id = cluster_of(&peers, address).with_context(|| {
                        format!(
                            "pod {namespace}/{name}'s address {address} is in no cluster's slice \
                             (no Peer on the hub has it in its clusterCIDRs)"
                        )
                    })?;
                    let destination = Destination::Pod {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        address,
                        cluster_id,
                    };
                    (destination, peers, None)
                }
                PathEnd::Service {
                    fqdn,
                    namespace,
                    name,
                } => {
                    let imports: Api<ServiceImport> = Api::all(hub.client.clone());
                    let imports = imports
                        .list(&ListParams::default())
                        .await
                        .map_err(concise)
                        .with_context(|| hub.unreachable("list the ServiceImports"))?
                        .items;
                    let clusters = service_rows(&imports)
                        .into_iter()
                        .find(|row| row.namespace == *namespace && row.name == *name)
                        .map(|row| row.clusters)
                        .unwrap_or_default();
                    crossdns_state = read_crossdns_state(source, args).await?;
                    let answers = match (&args.crossdns, &pod) {
                        // The Service's cluster IP is reachable from the pods, not
                        // necessarily from this machine: ask from the source pod.
                        (None, Some(pod)) => {
                            let server = crossdns_address(source, args).await?;
                            match dig_in_pod(source, pod, &server.ip().to_string(), fqdn, timeout)
                                .await
                            {
                                Ok(addresses) => (!addresses.is_empty()).then_some(addresses),
                                Err(e) if format!("{e:#}").contains(NO_ANSWER) => {
                                    eprintln!(
                                        "nautictl: crossdns at {server} for {fqdn}, asked from pod \
                                         {}/{}: {e:#}",
                                        pod.namespace, pod.name
                                    );
                                    None
                                }
                                // No `dig` in the pod's image, or exec refused: ask from here.
                                Err(e) => {
                                    eprintln!(
                                        "nautictl: cannot ask crossdns from pod {}/{} ({e:#}); \
                                         asking {server} from this machine",
                                        pod.namespace, pod.name
                                    );
                                    resolve(server, fqdn, timeout).await
                                }
                            }
                        }
                        _ => {
                            let server = crossdns_address(source, args).await?;
                            resolve(server, fqdn, timeout).await
                        }
                    };
                    coredns = match &pod {
                        Some(pod) if answers.is_some() => {
                            ask_coredns(source, pod, fqdn, args, timeout).await?
                        }
                        Some(_) => CorednsFacts::NotAsked,
                        None => CorednsFacts::Unasked(
                            "no --from pod to ask the cluster's CoreDNS from".to_owned(),
                        ),
                    };
                    if has_to_flags(args) {
                        other_target =
                            Some(destination_target(source, kubeconfig, args, timeout).await?);
                    }
                    let destination = Destination::Service {
                        name: fqdn.clone(),
                        clusters,
                    };
                    (destination, peers, answers)
                }
            }
        }
    };

    let tunnel_routes = read_tunnel_routes(
        source,
        &source_cluster,
        &gateway,
        other_target.as_ref(),
        &destination,
        &peers,
        args,
        timeout,
    )
    .await;
    let facts = PathFacts {
        tunnel_routes,
        source_cluster,
        source: pod,
        lsp,
        binding,
        gateway,
        destination,
        peers,
        crossdns,
        interface,
        crossdns_state,
        coredns,
    };
    let report = diagnose(&facts, jiff::Timestamp::now());
    emit(&report.render())?;
    Ok(match report.failure() {
        None => ExitCode::SUCCESS,
        Some(_) => ExitCode::FAILURE,
    })
}

fn has_to_flags(args: &DiagnoseArgs) -> bool {
    args.to_kubeconfig.is_some() || args.to_context.is_some()
}

/// The tunnel routes of the active CNF at each end of a cross-cluster path: the source's (the
/// pod its gateway router's route names) and the destination cluster's (the holder of its Lease),
/// when `other` is the context of one; an exporting cluster without a context is noted as not
/// read. Nothing is read when the path stays in the source cluster.
#[allow(
    clippy::too_many_arguments,
    reason = "the facts read so far, each once"
)]
async fn read_tunnel_routes(
    source: &Target,
    source_cluster: &str,
    gateway: &GatewayFacts,
    other: Option<&Target>,
    destination: &Destination,
    peers: &[Peer],
    args: &DiagnoseArgs,
    timeout: Duration,
) -> Vec<CnfRoutes> {
    let remote: Vec<&String> = match destination {
        Destination::None => Vec::new(),
        Destination::Pod { cluster_id, .. } => vec![cluster_id],
        Destination::Service { clusters, .. } => clusters.iter().collect(),
    }
    .into_iter()
    .filter(|id| *id != source_cluster)
    .collect();
    if remote.is_empty() {
        return Vec::new();
    }
    let namespace = &args.nauti_namespace;
    let source_read = match &gateway.cnf {
        Some(cnf) => cnf_routes(source, namespace, &cnf.name, timeout).await,
        None => CnfRoutesRead::Unreadable(
            "the gateway router's route names no CNF pod that exists".to_owned(),
        ),
    };
    let mut out = vec![CnfRoutes {
        cluster_id: source_cluster.to_owned(),
        read: source_read,
    }];
    // The other context's cluster: the destination pod's, or the one whose slice holds its
    // active CNF's address.
    let mut other_read = None;
    if let Some(target) = other {
        other_read = Some(match active_cnf(target, namespace).await {
            Ok(pod) => {
                let cluster = match destination {
                    Destination::Pod { cluster_id, .. } => Some(cluster_id.clone()),
                    _ => pod_address(&pod).and_then(|ip| cluster_of(peers, ip)),
                };
                let name = pod.metadata.name.clone().unwrap_or_default();
                (cluster, cnf_routes(target, namespace, &name, timeout).await)
            }
            Err(e) => (
                match destination {
                    Destination::Pod { cluster_id, .. } => Some(cluster_id.clone()),
                    _ => None,
                },
                CnfRoutesRead::Unreadable(format!("{e:#}")),
            ),
        });
    }
    for id in remote {
        let read = match &other_read {
            Some((Some(cluster), read)) if cluster == id => read.clone(),
            _ => CnfRoutesRead::NotRead(format!(
                "no --to-context or --to-kubeconfig names cluster {id}"
            )),
        };
        out.push(CnfRoutes {
            cluster_id: id.clone(),
            read,
        });
    }
    out
}

/// The pod holding the CNF's Lease in the cluster of `target`.
async fn active_cnf(target: &Target, namespace: &str) -> anyhow::Result<Pod> {
    let lease = Api::<Lease>::namespaced(target.client.clone(), namespace)
        .get_opt(CNF_NAME)
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read Lease {namespace}/{CNF_NAME}")))?
        .with_context(|| {
            format!(
                "no Lease {namespace}/{CNF_NAME} on {}: no CNF leads",
                target.server
            )
        })?;
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
        .with_context(|| format!("Lease {namespace}/{CNF_NAME} has no holder: no CNF leads"))?;
    let name = pod_of_identity(&holder);
    Api::<Pod>::namespaced(target.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read CNF pod {namespace}/{name}")))?
        .with_context(|| {
            format!("Lease {namespace}/{CNF_NAME} is held by pod {name}, which does not exist")
        })
}

fn pod_address(pod: &Pod) -> Option<IpAddr> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(nauti_api::keys::IP_ADDRESS)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// `octopus routes` in CNF pod `name`: the pod's own octopus binary (its command, or the image's
/// entrypoint) on the interface its container is given.
async fn cnf_routes(
    target: &Target,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> CnfRoutesRead {
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), namespace);
    let pod = match pods.get_opt(name).await.map_err(concise) {
        Ok(Some(pod)) => pod,
        Ok(None) => {
            return CnfRoutesRead::Unreadable(format!("CNF pod {namespace}/{name} does not exist"));
        }
        Err(e) => {
            return CnfRoutesRead::Unreadable(format!(
                "{}: {e:#}",
                target.unreachable(&format!("read CNF pod {namespace}/{name}"))
            ));
        }
    };
    let container = pod.spec.as_ref().and_then(|s| {
        s.containers
            .iter()
            .find(|c| c.name == "octopus")
            .or_else(|| s.containers.first())
    });
    let binary = container
        .and_then(|c| c.command.as_ref()?.first())
        .filter(|c| c.rsplit('/').next() == Some("octopus"))
        .map_or(DEFAULT_OCTOPUS, String::as_str)
        .to_owned();
    let ifname = container
        .and_then(|c| {
            c.env
                .as_ref()?
                .iter()
                .find(|e| e.name == INTERFACE_ENV)?
                .value
                .clone()
        })
        .unwrap_or_else(|| DEFAULT_INTERFACE.to_owned());
    let command = vec![
        binary,
        "routes".to_owned(),
        "--interface".to_owned(),
        ifname,
    ];
    let pod_ref = format!("{namespace}/{name}");
    match crate::benchmark_cmd::exec(&pods, name, command, timeout).await {
        Ok(out) => match InterfaceRoutes::from_json(&out) {
            Ok(routes) => CnfRoutesRead::Listed {
                pod: pod_ref,
                routes,
            },
            Err(e) => CnfRoutesRead::Unreadable(format!(
                "octopus routes in CNF pod {pod_ref} printed {:?}: {e}",
                out.trim()
            )),
        },
        Err(e) => CnfRoutesRead::Unreadable(format!("octopus routes in CNF pod {pod_ref}: {e:#}")),
    }
}

/// The API server's own message for a refusal, the error itself for anything else.
fn concise(error: kube::Error) -> anyhow::Error {
    match error {
        kube::Error::Api(status) => {
            anyhow!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => anyhow::Error::new(other),
    }
}

async fn bounded<T, E>(
    timeout: Duration,
    what: &str,
    work: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result.with_context(|| what.to_owned()),
        Err(_) => bail!("{what}: no answer within {timeout:?}"),
    }
}

async fn connect(
    remote: &str,
    flag: &str,
    tls: &TlsArgs,
    timeout: Duration,
) -> anyhow::Result<Client> {
    let endpoint = Endpoint::parse(remote).with_context(|| {
        format!("{flag} {remote:?} is not tcp:HOST:PORT, unix:PATH or ssl:HOST:PORT")
    })?;
    let mut config = ClientConfig::new(endpoint);
    config.connect_timeout = timeout;
    config.tls = tls.files().with_context(|| format!("{flag} TLS files"))?;
    Client::connect(config)
        .await
        .with_context(|| format!("connect to the OVN database at {remote} ({flag})"))
}

async fn read_source_pod(
    target: &Target,
    namespace: &str,
    name: &str,
) -> anyhow::Result<SourcePod> {
    let pod = Api::<Pod>::namespaced(target.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read pod {namespace}/{name}")))?
        .with_context(|| {
            format!(
                "no pod {namespace}/{name} in the source cluster ({})",
                target.server
            )
        })?;
    Ok(SourcePod {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        node: pod.spec.and_then(|s| s.node_name).unwrap_or_default(),
        annotations: pod.metadata.annotations.unwrap_or_default(),
    })
}

/// The pod's port: `<ns>_<pod>`, or a port of the switch whose external_ids name the pod (a
/// port named after its sandbox).
async fn find_port(
    nb: &Client,
    switch: &str,
    pod: &SourcePod,
) -> Result<Option<SwitchPort>, nauti_ovn::Error> {
    let name = nauti_api::core::port::lsp_name(&pod.namespace, &pod.name);
    let results = nb
        .transact(
            NB_DB,
            vec![Operation::select(
                LOGICAL_SWITCH_PORT,
                vec![Condition::eq("name", name.as_str())],
                &["name", "addresses"],
            )],
        )
        .await?;
    let row_port = |row: &nauti_ovn::Row| SwitchPort {
        name: row
            .get("name")
            .and_then(nauti_ovn::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        addresses: row
            .get("addresses")
            .map(nauti_ovn::Value::strings)
            .unwrap_or_default(),
    };
    if let Some(row) = results
        .first()
        .and_then(|r| r.rows.as_ref())
        .and_then(|rows| rows.first())
    {
        return Ok(Some(row_port(row)));
    }
    let ports = Northbound::new(nb.clone())
        .list_logical_switch_ports(switch)
        .await?;
    use nauti_api::core::port::external_ids::{NAMESPACE, POD};
    Ok(ports
        .into_iter()
        .find(|p| {
            p.external_ids.get(POD) == Some(&pod.name)
                && p.external_ids.get(NAMESPACE) == Some(&pod.namespace)
        })
        .map(|p| SwitchPort {
            name: p.name,
            addresses: p.addresses,
        }))
}

async fn read_gateway(
    target: &Target,
    northbound: &Northbound,
    nb: &Client,
    switch: &str,
    args: &DiagnoseArgs,
    timeout: Duration,
) -> anyhow::Result<GatewayFacts> {
    let router_name = gateway_router(switch);
    let port_name = gateway_router_port(switch);
    let snapshot = router::parse_router(
        &router_name,
        &bounded(
            timeout,
            "read the gateway router",
            nb.transact(NB_DB, router::read_router(&router_name, &[&port_name])),
        )
        .await?,
    )
    .with_context(|| format!("read logical router {router_name}"))?;
    let router_networks = snapshot
        .ports
        .first()
        .and_then(Option::as_ref)
        .map(|(_, port)| port.networks.clone());
    let routes: Vec<RouterRoute> = bounded(
        timeout,
        "read the gateway router's routes",
        northbound.list_static_routes(&router_name),
    )
    .await?
    .into_iter()
    .map(|r| RouterRoute {
        cnf_pod: r.external_ids.get(CNF_POD_KEY).cloned(),
        ip_prefix: r.ip_prefix,
        nexthop: r.nexthop,
    })
    .collect();

    let namespace = &args.nauti_namespace;
    let deployment = Api::<Deployment>::namespaced(target.client.clone(), namespace)
        .get_opt(CNF_NAME)
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read Deployment {namespace}/{CNF_NAME}")))?
        .map(|d| {
            (
                d.spec.replicas.unwrap_or(1),
                d.status.and_then(|s| s.ready_replicas).unwrap_or(0),
            )
        });
    let named = routes
        .iter()
        .find(|r| r.ip_prefix == args.global_cidr)
        .and_then(|r| r.cnf_pod.clone());
    let cnf = match named.as_deref().map(pod_of_identity) {
        Some(name) => Api::<Pod>::namespaced(target.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(concise)
            .with_context(|| target.unreachable(&format!("read CNF pod {namespace}/{name}")))?
            .map(|pod| CnfPod {
                name: name.to_owned(),
                phase: pod
                    .status
                    .and_then(|s| s.phase)
                    .unwrap_or_else(|| "Unknown".to_owned()),
                deleting: pod.metadata.deletion_timestamp.is_some(),
                address: pod
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(nauti_api::keys::IP_ADDRESS))
                    .and_then(|ip| ip.parse().ok()),
            }),
        None => None,
    };
    let lease = Api::<Lease>::namespaced(target.client.clone(), namespace)
        .get_opt(CNF_NAME)
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read Lease {namespace}/{CNF_NAME}")))?
        .map(|lease| {
            let spec = lease.spec.unwrap_or_default();
            LeaseFacts {
                namespace: namespace.clone(),
                name: CNF_NAME.to_owned(),
                holder: spec.holder_identity,
                renewed: spec.renew_time.map(|t| t.0),
                duration_secs: spec.lease_duration_seconds.map(i64::from),
            }
        });
    Ok(GatewayFacts {
        router: router_name,
        router_networks,
        global: args.global_cidr.clone(),
        routes,
        cnf_namespace: namespace.clone(),
        deployment,
        cnf,
        lease,
    })
}

async fn client_for(
    path: Option<&PathBuf>,
    context: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Target> {
    let mut config = load_config(path, context).await?;
    bound_requests(&mut config, timeout);
    Target::new(config)
}

async fn hub_target(
    kubeconfig: Option<&PathBuf>,
    args: &DiagnoseArgs,
    timeout: Duration,
) -> anyhow::Result<Target> {
    if args.hub_kubeconfig.is_none() && args.hub_context.is_none() {
        bail!("--to needs the hub's Peers: give --hub-context (or --hub-kubeconfig)");
    }
    client_for(
        args.hub_kubeconfig.as_ref().or(kubeconfig),
        args.hub_context.as_deref(),
        timeout,
    )
    .await
    .context("the hub")
}

async fn destination_target(
    source: &Target,
    kubeconfig: Option<&PathBuf>,
    args: &DiagnoseArgs,
    timeout: Duration,
) -> anyhow::Result<Target> {
    if args.to_kubeconfig.is_none() && args.to_context.is_none() {
        return Ok(source.clone());
    }
    client_for(
        args.to_kubeconfig.as_ref().or(kubeconfig),
        args.to_context.as_deref(),
        timeout,
    )
    .await
    .context("the destination cluster")
}

async fn read_destination_address(
    target: &Target,
    namespace: &str,
    name: &str,
) -> anyhow::Result<IpAddr> {
    let pod = Api::<Pod>::namespaced(target.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read pod {namespace}/{name}")))?
        .with_context(|| {
            format!(
                "no pod {namespace}/{name} in the destination cluster ({}); give its cluster \
                 with --to-context or --to-kubeconfig",
                target.server
            )
        })?;
    let text = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(nauti_api::keys::IP_ADDRESS))
        .with_context(|| {
            format!(
                "destination pod {namespace}/{name} has no {}: Nauti did not plumb it",
                nauti_api::keys::IP_ADDRESS
            )
        })?;
    text.parse().with_context(|| {
        format!(
            "destination pod {namespace}/{name} has {}={text:?}, not an address",
            nauti_api::keys::IP_ADDRESS
        )
    })
}

/// `--crossdns`, or the cluster IP of the crossdns Service of the source cluster.
async fn crossdns_address(target: &Target, args: &DiagnoseArgs) -> anyhow::Result<SocketAddr> {
    if let Some(text) = &args.crossdns {
        return text
            .parse::<SocketAddr>()
            .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
            .with_context(|| format!("--crossdns {text:?} is not IP or IP:PORT"));
    }
    let namespace = &args.nauti_namespace;
    let service = Api::<Service>::namespaced(target.client.clone(), namespace)
        .get_opt("crossdns")
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read Service {namespace}/crossdns")))?
        .with_context(|| {
            format!("no Service {namespace}/crossdns: is crossdns installed? (or give --crossdns)")
        })?;
    let ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .with_context(|| format!("Service {namespace}/crossdns has no cluster IP"))?;
    Ok(SocketAddr::new(ip, 53))
}

/// crossdns's A and AAAA answers for `name`; `None` when it gave no address, did not answer
/// within `timeout`, or answered with an error (printed to stderr).
async fn resolve(server: SocketAddr, name: &str, timeout: Duration) -> Option<Vec<IpAddr>> {
    let mut all = Vec::new();
    for qtype in [dns::TYPE_A, dns::TYPE_AAAA] {
        match query(server, name, qtype, timeout).await {
            Ok(mut addresses) => all.append(&mut addresses),
            Err(e) => eprintln!("nautictl: crossdns at {server} for {name}: {e:#}"),
        }
    }
    (!all.is_empty()).then_some(all)
}

async fn query(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> anyhow::Result<Vec<IpAddr>> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.context("bind")?;
    socket.connect(server).await.context("connect")?;
    // Any id will do: the socket is connected to the server alone.
    let id = u16::try_from(std::process::id() & 0xffff).unwrap_or(1);
    let question = dns::encode_query(id, name, qtype)?;
    socket.send(&question).await.context("send")?;
    let mut buf = vec![0u8; 4096];
    let len = tokio::time::timeout(timeout, socket.recv(&mut buf))
        .await
        .map_err(|_| anyhow!("no answer within {timeout:?}"))?
        .context("receive")?;
    Ok(dns::decode_addresses(&buf[..len], id)?)
}

/// `ip -o link` and `ip -o addr` of `eth-nauti`, run in the pod through the API server
/// (iproute2's `ip`, or busybox's when the image has only that).
async fn read_interface(target: &Target, pod: &SourcePod, timeout: Duration) -> InterfaceFacts {
    let script = format!(
        "if command -v ip >/dev/null 2>&1; then ip=ip; else ip='busybox ip'; fi; \
         $ip -o link show dev {POD_INTERFACE} && $ip -o addr show dev {POD_INTERFACE}"
    );
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &pod.namespace);
    let command = vec!["sh".to_owned(), "-c".to_owned(), script];
    match crate::benchmark_cmd::exec(&pods, &pod.name, command, timeout).await {
        Ok(out) => nautictl::diagnose::parse_ip_oneline(&out),
        Err(e) => {
            let message = format!("{e:#}");
            if message.contains("can't find device")
                || message.contains("does not exist")
                || message.contains("Cannot find device")
            {
                InterfaceFacts::Missing(message.rsplit("): ").next().unwrap_or(&message).to_owned())
            } else {
                InterfaceFacts::Unreadable(message)
            }
        }
    }
}

/// The A and AAAA answers of `server` for `name`, asked with `dig` from the pod.
async fn dig_in_pod(
    target: &Target,
    pod: &SourcePod,
    server: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<IpAddr>> {
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &pod.namespace);
    let command = [
        "dig",
        "+short",
        "+time=2",
        "+tries=1",
        &format!("@{server}"),
        name,
        "A",
        name,
        "AAAA",
    ]
    .map(str::to_owned)
    .to_vec();
    // Two questions of at most 2 s each, and the exec's own round trips.
    // dig exits 9 when no server answered: the server's failure, not the exec's.
    let silent = |text: &str| {
        [
            "connection timed out",
            "no servers could be reached",
            "connection refused",
        ]
        .iter()
        .any(|m| text.contains(m))
    };
    let out = match crate::benchmark_cmd::exec(
        &pods,
        &pod.name,
        command,
        timeout + Duration::from_secs(4),
    )
    .await
    {
        Ok(out) => out,
        Err(e) if silent(&format!("{e:#}")) => bail!("{NO_ANSWER} {server}"),
        Err(e) => return Err(e),
    };
    if silent(&out) {
        bail!("{NO_ANSWER} {server}");
    }
    Ok(out
        .lines()
        .filter_map(|l| l.trim().parse::<IpAddr>().ok())
        .collect())
}

/// The cluster's CoreDNS (the `--cluster-dns` Service) asked from the pod.
async fn ask_coredns(
    target: &Target,
    pod: &SourcePod,
    name: &str,
    args: &DiagnoseArgs,
    timeout: Duration,
) -> anyhow::Result<CorednsFacts> {
    let Some((namespace, service)) = args.cluster_dns.split_once('/') else {
        bail!(
            "--cluster-dns {:?} is not <namespace>/<name>",
            args.cluster_dns
        );
    };
    let found = Api::<Service>::namespaced(target.client.clone(), namespace)
        .get_opt(service)
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read Service {namespace}/{service}")))?;
    let Some(ip) = found
        .and_then(|s| s.spec)
        .and_then(|s| s.cluster_ip)
        .filter(|ip| ip.parse::<IpAddr>().is_ok())
    else {
        return Ok(CorednsFacts::Unasked(format!(
            "no Service {namespace}/{service} with a cluster IP: the cluster's DNS was not asked"
        )));
    };
    let server = format!("{ip} (Service {namespace}/{service})");
    Ok(match dig_in_pod(target, pod, &ip, name, timeout).await {
        Ok(addresses) => CorednsFacts::Answered {
            server,
            addresses: Ok(addresses),
        },
        Err(e) if format!("{e:#}").contains(NO_ANSWER) => CorednsFacts::Answered {
            server,
            addresses: Err("no answer".to_owned()),
        },
        Err(e) => CorednsFacts::Unasked(format!(
            "dig could not run in pod {}/{}: {e:#}",
            pod.namespace, pod.name
        )),
    })
}

/// crossdns's Deployment and the ready endpoints of its Service in the source cluster.
async fn read_crossdns_state(
    target: &Target,
    args: &DiagnoseArgs,
) -> anyhow::Result<CrossdnsState> {
    let namespace = &args.nauti_namespace;
    let deployment = Api::<Deployment>::namespaced(target.client.clone(), namespace)
        .get_opt("crossdns")
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read Deployment {namespace}/crossdns")))?
        .map(|d| {
            (
                d.spec.replicas.unwrap_or(1),
                d.status.and_then(|s| s.ready_replicas).unwrap_or(0),
            )
        });
    let slices = Api::<EndpointSlice>::namespaced(target.client.clone(), namespace)
        .list(&ListParams::default().labels("kubernetes.io/service-name=crossdns"))
        .await
        .map_err(concise)
        .with_context(|| {
            target.unreachable(&format!("list the EndpointSlices of {namespace}/crossdns"))
        })?
        .items;
    let ready = slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .count();
    Ok(CrossdnsState {
        namespace: namespace.clone(),
        deployment,
        ready_endpoints: Some(ready),
    })
}
