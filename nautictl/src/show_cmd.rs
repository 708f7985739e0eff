//! `nautictl show`: the adapter around [`nautictl::render_show`]. It reads the hub's Peers and
//! ServiceImports, then each member given by context: the CNF Deployment's pods and Lease and
//! the EndpointSlices octopus imported.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use kube::config::Kubeconfig;
use nauti_api::mcs::{LABEL_MANAGED_BY, MANAGED_BY_NAUTI};
use nauti_api::peer::DEFAULT_PEER_NAMESPACE;
use nauti_api::{Peer, ServiceImport};
use nautictl::show::{ClusterError, MemberView, member_view};
use nautictl::{OutputFormat, ShowReport, cluster_row, render_show, service_rows};

use crate::diagnose_cmd::bound_requests;
use crate::{Target, emit, load_config};

/// The flags of `show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Namespace of the Peers on the hub.
    #[arg(long, default_value = DEFAULT_PEER_NAMESPACE)]
    pub namespace: String,
    /// A member cluster's context in --kubeconfig, to show its gateway pods and imports
    /// (repeatable).
    #[arg(long = "member-context", value_name = "CONTEXT")]
    pub member_contexts: Vec<String>,
    /// A member cluster's kubeconfig, read at its current context (repeatable).
    #[arg(long = "member-kubeconfig", value_name = "PATH")]
    pub member_kubeconfigs: Vec<PathBuf>,
    /// Namespace of the CNF (Deployment and Lease) in the members.
    #[arg(long, default_value = "nauti-system")]
    pub nauti_namespace: String,
    /// Name of the CNF's Deployment and Lease in the members.
    #[arg(long, default_value = "octopus-member")]
    pub cnf_name: String,
    /// How long to wait for an API server's answer (e.g. `10s`).
    #[arg(long, default_value = "10s")]
    pub timeout: jiff::SignedDuration,
}

/// Reads the hub and every member, prints the report, and says whether every cluster answered.
pub async fn run(
    kubeconfig: Option<&PathBuf>,
    context: Option<&str>,
    args: &ShowArgs,
) -> anyhow::Result<ExitCode> {
    let timeout = Duration::try_from(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .with_context(|| format!("--timeout {:#} must be positive", args.timeout))?;
    // Every cluster's config first: a bad kubeconfig or unknown context is the operator's to fix
    // before anything is read.
    let hub = target(kubeconfig, context, timeout).await?;
    let mut members = Vec::new();
    for member in &args.member_contexts {
        let member_target = target(kubeconfig, Some(member), timeout)
            .await
            .with_context(|| format!("member {member}"))?;
        members.push((member.clone(), member_target));
    }
    for path in &args.member_kubeconfigs {
        let member_target = target(Some(path), None, timeout)
            .await
            .with_context(|| format!("member {}", path.display()))?;
        members.push((current_context(path), member_target));
    }

    let mut peers: Vec<Peer> = Api::namespaced(hub.client.clone(), &args.namespace)
        .list(&ListParams::default())
        .await
        .with_context(|| hub.unreachable(&format!("list the Peers in {}", args.namespace)))?
        .items;
    peers.sort_by(|a, b| a.spec.cluster_id.cmp(&b.spec.cluster_id));
    let imports: Vec<ServiceImport> = Api::all(hub.client.clone())
        .list(&ListParams::default())
        .await
        .with_context(|| hub.unreachable("list the ServiceImports"))?
        .items;

    let now = jiff::Timestamp::now();
    let mut views = Vec::new();
    let mut errors = Vec::new();
    for (name, member) in &members {
        match read_member(name, member, args, now).await {
            Ok(view) => views.push(view),
            Err(e) => errors.push(ClusterError {
                context: name.clone(),
                error: format!("{e:#}"),
            }),
        }
    }
    let report = ShowReport {
        clusters: peers.iter().map(cluster_row).collect(),
        services: service_rows(&imports),
        members: views,
        errors,
    };
    emit(&render_show(&report, args.output, now)?)?;
    for error in &report.errors {
        eprintln!("nautictl: cluster {}: {}", error.context, error.error);
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn target(
    path: Option<&PathBuf>,
    context: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Target> {
    let mut config = load_config(path, context).await?;
    bound_requests(&mut config, timeout);
    // A member that does not even accept the connection is reported after --timeout as well.
    config.connect_timeout = Some(timeout);
    Target::new(config)
}

/// The kubeconfig's current context, or its path when it has none.
fn current_context(path: &PathBuf) -> String {
    Kubeconfig::read_from(path)
        .ok()
        .and_then(|k| k.current_context)
        .unwrap_or_else(|| path.display().to_string())
}

async fn read_member(
    name: &str,
    target: &Target,
    args: &ShowArgs,
    now: jiff::Timestamp,
) -> anyhow::Result<MemberView> {
    let namespace = &args.nauti_namespace;
    let cnf = &args.cnf_name;
    let deployment = Api::<Deployment>::namespaced(target.client.clone(), namespace)
        .get_opt(cnf)
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read Deployment {namespace}/{cnf}")))?;
    // The Deployment's own selector: the chart's labels and others' differ.
    let selector = deployment
        .map(|d| d.spec)
        .and_then(|s| s.selector.match_labels)
        .filter(|labels| !labels.is_empty())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        });
    let pods = match selector {
        Some(selector) => {
            Api::<Pod>::namespaced(target.client.clone(), namespace)
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(concise)
                .with_context(|| {
                    target.unreachable(&format!("list the CNF pods ({selector}) in {namespace}"))
                })?
                .items
        }
        None => Vec::new(),
    };
    let lease = Api::<Lease>::namespaced(target.client.clone(), namespace)
        .get_opt(cnf)
        .await
        .map_err(concise)
        .with_context(|| target.unreachable(&format!("read Lease {namespace}/{cnf}")))?;
    let slices = Api::<EndpointSlice>::all(target.client.clone())
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY_NAUTI}")))
        .await
        .map_err(concise)
        .with_context(|| target.unreachable("list the imported EndpointSlices"))?
        .items;
    Ok(member_view(name, lease.as_ref(), &pods, &slices, now))
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
