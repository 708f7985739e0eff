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
    Annotated, CorefileSeen, Observed, Removal, northbound_ops, parse_northbound, plan,
    read_northbound, strip_annotations_patch,
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
    /// How long to wait for the northbound database to accept a connection (e.g. `10s`, `1m`).
    #[arg(long, default_value = "10s")]
    pub ovn_nb_timeout: jiff::SignedDuration,
    /// Client key and certificates for an `ssl:` northbound database.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Leave CoreDNS's Corefile alone (and do not read it): for an identity without rights on
    /// it, such as the chart's uninstall hook, whose crossdns hook takes the block out.
    #[arg(long)]
    pub keep_coredns: bool,
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
    if args.dry_run {
        let mut listing = String::new();
        for removal in &removals {
            listing.push_str(&format!("{removal}\n"));
        }
        emit(&listing)?;
        eprintln!(
            "nautictl: dry run: {} object(s) would be cleaned; nothing was changed",
            removals.len()
        );
        return Ok(());
    }
    if removals.is_empty() {
        return emit("nothing of Nauti left to remove\n");
    }
    let mut failures = 0usize;
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
            removals.len()
        );
    }
    Ok(())
}

async fn connect_northbound(
    remote: &str,
    tls: &TlsArgs,
    timeout: jiff::SignedDuration,
) -> anyhow::Result<Client> {
    let timeout = Duration::try_from(timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .with_context(|| format!("--ovn-nb-timeout {timeout:#} must be positive"))?;
    let endpoint = Endpoint::parse(remote).with_context(|| {
        format!("--ovn-nb {remote:?} is not tcp:HOST:PORT, unix:PATH or ssl:HOST:PORT")
    })?;
    let mut config = ClientConfig::new(endpoint);
    config.connect_timeout = timeout;
    config.tls = tls.files().context("--ovn-nb TLS files")?;
    Client::connect(config)
        .await
        .with_context(|| format!("connect to the OVN northbound database at {remote}"))
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
