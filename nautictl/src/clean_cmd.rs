//! `nautictl clean`: the adapters around [`nautictl::clean`]. They read the cluster (pods,
//! Nodes, the CoreDNS ConfigMap) and, when asked, the OVN northbound database, hand that to the
//! planner, and print or apply its removals one object at a time.

use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use nauti_crossdns::cli::CorefileArgs;
use nauti_crossdns::coredns::{self, CorefileLocation, Outcome};
use nauti_ovn::core::nb::DB as NB_DB;
use nauti_ovn::{Client, ClientConfig, Endpoint, TlsArgs};
use nautictl::clean::{
    Annotated, CorefileSeen, HOST_IFNAME_PREFIX, Observed, Removal, nauti_ovs_ports,
    northbound_ops, parse_northbound, plan, read_northbound, strip_annotations_patch,
};

use crate::{Target, emit};

/// The flags of `clean`.
#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// List what would be removed, one line per object, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The cluster's OVN northbound database (`tcp:HOST:PORT`, `unix:PATH` or `ssl:HOST:PORT`);
    /// Nauti's logical switches, ports and load balancers there are removed too. Without it the
    /// database is not touched.
    #[arg(long, value_name = "REMOTE")]
    pub ovn_nb: Option<String>,
    /// How long to wait for the northbound (and each --ovs-db) database to accept a connection
    /// (e.g. `10s`, `1m`).
    #[arg(long, default_value = "10s")]
    pub ovn_nb_timeout: jiff::SignedDuration,
    /// Client key and certificates for an `ssl:` northbound database.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Leave CoreDNS's Corefile alone (and do not read it): for an identity without rights on
    /// it, such as the chart's uninstall hook, whose crossdns hook takes the block out.
    #[arg(long)]
    pub keep_coredns: bool,
    /// A node's Open vSwitch database (`unix:PATH`, `tcp:HOST:PORT`, `ssl:HOST:PORT`);
    /// repeatable, one per node. The ports nauti-nri made there (its sandbox key in their
    /// external_ids) are removed; others' stay.
    #[arg(long = "ovs-db", value_name = "REMOTE")]
    pub ovs_dbs: Vec<String>,
    /// Also delete the host ends of Nauti's veths (`nti*`) on every Node, which takes each
    /// pod's `eth-nauti` with them: a short-lived privileged host-network pod per Node runs
    /// `ip link del` there (in a dry run it only lists them).
    #[arg(long)]
    pub node_nics: bool,
    /// The image of those pods: it needs `sh` and `ip` (iproute2 or busybox).
    #[arg(long, default_value = "localhost/nauti/tools:bookworm")]
    pub image: String,
    /// The namespace those pods run in.
    #[arg(long, default_value = "default")]
    pub helper_namespace: String,
    /// How long one Node's pod may take, image pull included.
    #[arg(long, default_value = "2m")]
    pub node_nic_timeout: jiff::SignedDuration,
    /// Where CoreDNS's Corefile is.
    #[command(flatten)]
    pub corefile: CorefileArgs,
}

pub async fn clean(target: &Target, args: &CleanArgs) -> anyhow::Result<()> {
    let location = args.corefile.location();
    let northbound = match &args.ovn_nb {
        Some(remote) => Some(connect_northbound(remote, &args.tls, args.ovn_nb_timeout).await?),
        None => None,
    };
    let observed = observe(
        target,
        (!args.keep_coredns).then_some(&location),
        northbound.as_ref(),
    )
    .await?;
    let removals = plan(&observed)?;
    if northbound.is_none() {
        eprintln!("nautictl: no --ovn-nb: OVN northbound rows are left as they are");
    }
    // Node-local traces first: the annotations still say what was plumbed if this is cut short.
    let (mut failures, mut node_local) = (0usize, 0usize);
    if args.node_nics {
        let (found, failed) = node_nics(target, args).await?;
        node_local += found;
        failures += failed;
    }
    for remote in &args.ovs_dbs {
        let (found, failed) = ovs_ports(remote, args).await?;
        node_local += found;
        failures += failed;
    }
    if args.dry_run {
        let mut listing = String::new();
        for removal in &removals {
            listing.push_str(&format!("{removal}\n"));
        }
        emit(&listing)?;
        eprintln!(
            "nautictl: dry run: {} object(s) would be cleaned; nothing was changed",
            removals.len() + node_local
        );
        if failures > 0 {
            bail!("{failures} node-local read(s) failed (see above)");
        }
        return Ok(());
    }
    if removals.is_empty() && failures == 0 && node_local == 0 {
        return emit("nothing of Nauti left to remove\n");
    }
    for removal in removals.iter().filter(|r| !r.is_northbound()) {
        match apply(target, &location, removal).await {
            Ok(Applied::Removed) => emit(&format!("removed {removal}\n"))?,
            Ok(Applied::AlreadyGone) => emit(&format!("already gone {removal}\n"))?,
            Err(e) => {
                failures += 1;
                eprintln!("nautictl: cannot clean {removal}: {e:#}");
            }
        }
    }
    if let Some(client) = &northbound {
        let rows: Vec<&Removal> = removals.iter().filter(|r| r.is_northbound()).collect();
        if !rows.is_empty() {
            let owned: Vec<Removal> = rows.iter().map(|r| (*r).clone()).collect();
            match client.transact(NB_DB, northbound_ops(&owned)).await {
                Ok(_) => {
                    let mut listing = String::new();
                    for removal in rows {
                        listing.push_str(&format!("removed {removal}\n"));
                    }
                    emit(&listing)?;
                }
                Err(e) => {
                    failures += rows.len();
                    eprintln!(
                        "nautictl: cannot delete {} row(s) from the northbound database at {}: {e}",
                        rows.len(),
                        client.endpoint()
                    );
                }
            }
        }
    }
    if failures > 0 {
        bail!(
            "{failures} of {} object(s) were not cleaned (see above); run clean again once the cause is fixed",
            removals.len() + node_local
        );
    }
    Ok(())
}

/// Removes (or, in a dry run, lists) Nauti's ports in one node's Open vSwitch database: how
/// many were found and how many could not be removed.
async fn ovs_ports(remote: &str, args: &CleanArgs) -> anyhow::Result<(usize, usize)> {
    let client = connect_ovsdb(remote, "--ovs-db", &args.tls, args.ovn_nb_timeout)
        .await
        .with_context(|| format!("connect to the Open vSwitch database at {remote}"))?;
    let vswitch = nauti_ovn::OpenVswitch::new(client);
    let interfaces = vswitch
        .list_interfaces()
        .await
        .with_context(|| format!("read the Open vSwitch database at {remote}"))?;
    let mut failures = 0;
    let ports = nauti_ovs_ports(&interfaces);
    for port in &ports {
        if args.dry_run {
            emit(&format!("Open_vSwitch {remote} port {port}\n"))?;
            continue;
        }
        match vswitch.remove_port(port).await {
            Ok(true) => emit(&format!("removed Open_vSwitch {remote} port {port}\n"))?,
            Ok(false) => emit(&format!("already gone Open_vSwitch {remote} port {port}\n"))?,
            Err(e) => {
                failures += 1;
                eprintln!("nautictl: cannot remove port {port} from {remote}: {e}");
            }
        }
    }
    Ok((ports.len(), failures))
}

/// On every Node, a privileged host-network pod deletes (or lists) the host ends of Nauti's
/// veths: how many links were found and on how many Nodes that failed.
async fn node_nics(target: &Target, args: &CleanArgs) -> anyhow::Result<(usize, usize)> {
    let limit = Duration::try_from(args.node_nic_timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .with_context(|| {
            format!(
                "--node-nic-timeout {:#} must be positive",
                args.node_nic_timeout
            )
        })?;
    let nodes = Api::<Node>::all(target.client.clone())
        .list_metadata(&ListParams::default())
        .await
        .map_err(concise)
        .with_context(|| target.unreachable("list the Nodes"))?
        .items;
    let (mut found, mut failures) = (0, 0);
    for node in nodes.iter().filter_map(|n| n.metadata.name.as_deref()) {
        match node_pod(target, args, node, limit).await {
            Ok(links) => {
                found += links.len();
                for link in links {
                    let line = if args.dry_run {
                        format!("Node {node} link {link}\n")
                    } else {
                        format!("removed Node {node} link {link}\n")
                    };
                    emit(&line)?;
                }
            }
            Err(e) => {
                failures += 1;
                eprintln!("nautictl: cannot clean the links of Node {node}: {e:#}");
            }
        }
    }
    Ok((found, failures))
}

/// Runs the helper pod on `node` and returns the links it listed or deleted; deletes the pod.
async fn node_pod(
    target: &Target,
    args: &CleanArgs,
    node: &str,
    limit: Duration,
) -> anyhow::Result<Vec<String>> {
    let action = if args.dry_run {
        "echo \"$l\"".to_owned()
    } else {
        "$ip link del \"$l\" && echo \"$l\"".to_owned()
    };
    // busybox's `ip` lists the same way; /sys/class/net is the host's with host networking.
    let script = format!(
        "if command -v ip >/dev/null 2>&1; then ip=ip; else ip='busybox ip'; fi; \
         for l in $(ls /sys/class/net); do case \"$l\" in {HOST_IFNAME_PREFIX}*) {action} || exit 1;; esac; done"
    );
    let suffix = jiff::Timestamp::now().as_millisecond() % 100_000;
    let name = format!(
        "nauti-clean-{}-{suffix}",
        node.chars().take(40).collect::<String>()
    )
    .to_ascii_lowercase();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "nautictl-clean"}},
        "spec": {
            "nodeName": node,
            "hostNetwork": true,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "clean", "image": args.image, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "securityContext": {"privileged": true},
            }],
        },
    }))
    .context("build the helper pod")?;
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &args.helper_namespace);
    pods.create(&kube::api::PostParams::default(), &pod)
        .await
        .map_err(concise)
        .with_context(|| {
            target.unreachable(&format!("create pod {}/{name}", args.helper_namespace))
        })?;
    let outcome = wait_finished(&pods, &name, limit).await;
    let logs = pods
        .logs(&name, &kube::api::LogParams::default())
        .await
        .unwrap_or_default();
    let deleted = pods
        .delete(&name, &kube::api::DeleteParams::default().grace_period(0))
        .await;
    if let Err(e) = deleted {
        eprintln!(
            "nautictl: pod {}/{name} is left: {}",
            args.helper_namespace,
            concise(e)
        );
    }
    match outcome? {
        true => Ok(logs
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(HOST_IFNAME_PREFIX))
            .map(str::to_owned)
            .collect()),
        false => bail!(
            "pod {}/{name} ({}) failed: {}",
            args.helper_namespace,
            args.image,
            logs.trim()
        ),
    }
}

/// Waits until the pod has succeeded (`true`) or failed (`false`), at most `limit`.
async fn wait_finished(pods: &Api<Pod>, name: &str, limit: Duration) -> anyhow::Result<bool> {
    let start = std::time::Instant::now();
    loop {
        let phase = pods
            .get_opt(name)
            .await
            .map_err(concise)?
            .and_then(|p| p.status)
            .and_then(|s| s.phase)
            .unwrap_or_default();
        match phase.as_str() {
            "Succeeded" => return Ok(true),
            "Failed" => return Ok(false),
            _ if start.elapsed() >= limit => {
                bail!("pod {name} is still {phase:?} after {limit:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn connect_northbound(
    remote: &str,
    tls: &TlsArgs,
    timeout: jiff::SignedDuration,
) -> anyhow::Result<Client> {
    connect_ovsdb(remote, "--ovn-nb", tls, timeout)
        .await
        .with_context(|| format!("connect to the OVN northbound database at {remote}"))
}

/// A client of the OVSDB server at `remote` (given by `flag`).
async fn connect_ovsdb(
    remote: &str,
    flag: &str,
    tls: &TlsArgs,
    timeout: jiff::SignedDuration,
) -> anyhow::Result<Client> {
    let timeout = Duration::try_from(timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .with_context(|| format!("--ovn-nb-timeout {timeout:#} must be positive"))?;
    let endpoint = Endpoint::parse(remote).with_context(|| {
        format!("{flag} {remote:?} is not tcp:HOST:PORT, unix:PATH or ssl:HOST:PORT")
    })?;
    let mut config = ClientConfig::new(endpoint);
    config.connect_timeout = timeout;
    config.tls = tls.files().with_context(|| format!("{flag} TLS files"))?;
    Ok(Client::connect(config).await?)
}

async fn observe(
    target: &Target,
    coredns: Option<&CorefileLocation>,
    northbound: Option<&Client>,
) -> anyhow::Result<Observed> {
    let pods = Api::<Pod>::all(target.client.clone())
        .list_metadata(&ListParams::default())
        .await
        .map_err(concise)
        .with_context(|| target.unreachable("list the Pods of every namespace"))?
        .items
        .into_iter()
        .map(|pod| annotated(pod.metadata))
        .collect();
    let nodes = Api::<Node>::all(target.client.clone())
        .list_metadata(&ListParams::default())
        .await
        .map_err(concise)
        .with_context(|| target.unreachable("list the Nodes"))?
        .items
        .into_iter()
        .map(|node| annotated(node.metadata))
        .collect();
    let corefile = match coredns {
        Some(location) => read_corefile(target, location).await?,
        None => None,
    };
    let northbound = match northbound {
        Some(client) => {
            let results = client
                .transact(NB_DB, read_northbound())
                .await
                .with_context(|| {
                    format!("read the northbound database at {}", client.endpoint())
                })?;
            Some(parse_northbound(&results)?)
        }
        None => None,
    };
    Ok(Observed {
        pods,
        nodes,
        corefile,
        northbound,
    })
}

async fn read_corefile(
    target: &Target,
    location: &CorefileLocation,
) -> anyhow::Result<Option<CorefileSeen>> {
    let config_maps: Api<ConfigMap> = Api::namespaced(target.client.clone(), &location.namespace);
    Ok(config_maps
        .get_opt(&location.name)
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read {location}")))?
        .and_then(|cm| cm.data)
        .and_then(|mut data| data.remove(&location.key))
        .map(|text| CorefileSeen {
            location: location.to_string(),
            text,
        }))
}

fn annotated(meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Annotated {
    Annotated {
        namespace: meta.namespace,
        name: meta.name.unwrap_or_default(),
        annotations: meta.annotations.unwrap_or_default(),
    }
}

/// The API server's own message for a refusal (the rest of its Status repeats it), the error
/// itself for anything else (a connection that failed, a timeout).
fn concise(error: kube::Error) -> anyhow::Error {
    match error {
        kube::Error::Api(status) => {
            anyhow::anyhow!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => anyhow::Error::new(other),
    }
}

enum Applied {
    Removed,
    /// Someone else (the object's deletion, a concurrent clean) was faster.
    AlreadyGone,
}

/// Applies one removal held by the API server.
async fn apply(
    target: &Target,
    location: &CorefileLocation,
    removal: &Removal,
) -> anyhow::Result<Applied> {
    let patched = match removal {
        Removal::PodAnnotations {
            namespace,
            name,
            keys,
        } => Api::<Pod>::namespaced(target.client.clone(), namespace)
            .patch_metadata(
                name,
                &PatchParams::default(),
                &Patch::Merge(strip_annotations_patch(keys)),
            )
            .await
            .map(drop),
        Removal::NodeAnnotations { name, keys } => Api::<Node>::all(target.client.clone())
            .patch_metadata(
                name,
                &PatchParams::default(),
                &Patch::Merge(strip_annotations_patch(keys)),
            )
            .await
            .map(drop),
        Removal::CorednsBlock { .. } => {
            return match coredns::unwire(&target.client, location).await {
                Ok(Outcome::Changed) => Ok(Applied::Removed),
                Ok(Outcome::Unchanged) => Ok(Applied::AlreadyGone),
                Err(e) => Err(anyhow::Error::new(e).context(target.unreachable("unwire"))),
            };
        }
        Removal::LogicalSwitchPort { .. }
        | Removal::LoadBalancer { .. }
        | Removal::LogicalSwitch { .. }
        | Removal::LogicalRouterPort { .. }
        | Removal::LogicalRouter { .. } => {
            bail!("a northbound row goes in the northbound transaction")
        }
    };
    match patched {
        Ok(_) => Ok(Applied::Removed),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Applied::AlreadyGone),
        Err(e) => Err(concise(e).context(target.unreachable("patch"))),
    }
}
