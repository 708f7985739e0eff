//! `nautictl benchmark`: the adapters around [`nautictl::benchmark`]. Starts a server pod in each
//! cluster and a client pod in the first, runs ping and a netcat transfer in the client (exec
//! through the API server) to both servers' global addresses, prints the two paths and deletes
//! the pods, also when a step fails or on Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use kube::config::Kubeconfig;
use nautictl::benchmark::{
    POD_LABEL, POD_LABEL_VALUE, PathResult, SERVER_PORT, mbit_per_s, parse_elapsed, parse_ping,
    ping_command, render_benchmark, server_command, throughput_script,
};
use tokio::io::AsyncReadExt;

use crate::{Target, emit, load_config};

/// The test-bed's tools image: busybox and Debian's nc.openbsd.
const DEFAULT_IMAGE: &str = "localhost/nauti/tools:bookworm";

/// The flags of `benchmark`.
#[derive(Debug, clap::Args)]
pub struct BenchmarkArgs {
    /// Context of the client's cluster (also the same-cluster reference); --context, or the
    /// kubeconfig's current context, when absent.
    #[arg(long, value_name = "CONTEXT")]
    pub from_cluster: Option<String>,
    /// Context of the remote server's cluster.
    #[arg(long, value_name = "CONTEXT")]
    pub to_cluster: Option<String>,
    /// Kubeconfig holding --to-cluster; --kubeconfig's when absent.
    #[arg(long, value_name = "PATH")]
    pub to_kubeconfig: Option<PathBuf>,
    /// Namespace of the benchmark pods in both clusters.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Image of the pods: busybox applets and /usr/bin/nc.openbsd.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// MiB sent on each path.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub size_mib: u64,
    /// Pings on each path (one a second).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub pings: u32,
    /// How long the pods may take to run and get their global address (e.g. `2m`).
    #[arg(long, default_value = "2m")]
    pub timeout: jiff::SignedDuration,
}

/// One cluster of the benchmark and its label in the output.
struct Side {
    target: Target,
    label: String,
}

/// The pods created so far; [`PodGuard::release`] deletes them. Dropped unreleased (a panic),
/// it names what is left behind.
struct PodGuard {
    pods: Vec<(Api<Pod>, String, String)>,
    released: bool,
}

impl PodGuard {
    fn new() -> Self {
        Self {
            pods: Vec::new(),
            released: false,
        }
    }

    /// Deletes every pod and waits (bounded) until they are gone.
    async fn release(mut self) -> anyhow::Result<()> {
        self.released = true;
        let mut failures = Vec::new();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        for (api, cluster, name) in &self.pods {
            progress(&format!("deleting pod {name} in {cluster}"));
            match api.delete(name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => failures.push(format!("delete pod {name} in {cluster}: {e}")),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for (api, cluster, name) in &self.pods {
            loop {
                match api.get_opt(name).await {
                    Ok(None) => break,
                    Ok(Some(_)) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Ok(Some(_)) => {
                        failures.push(format!("pod {name} in {cluster} still there after 60s"));
                        break;
                    }
                    Err(e) => {
                        failures.push(format!("read pod {name} in {cluster}: {e}"));
                        break;
                    }
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            bail!("cleaning up: {}", failures.join("; "))
        }
    }
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        if !self.released && !self.pods.is_empty() {
            let names: Vec<&str> = self.pods.iter().map(|(_, _, n)| n.as_str()).collect();
            eprintln!("nautictl: benchmark pods left behind: {}", names.join(", "));
        }
    }
}

fn progress(line: &str) {
    eprintln!("benchmark: {line}");
}

/// Runs the benchmark and prints the table; the pods are deleted whatever happens.
pub async fn run(
    kubeconfig: Option<&PathBuf>,
    context: Option<&str>,
    args: &BenchmarkArgs,
) -> anyhow::Result<()> {
    let timeout = Duration::try_from(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .with_context(|| format!("--timeout {:#} must be positive", args.timeout))?;
    if context.is_some() && args.from_cluster.is_some() {
        bail!("give the client's cluster with --from-cluster or --context, not both");
    }
    if args.to_cluster.is_none() && args.to_kubeconfig.is_none() {
        bail!("give the remote cluster with --to-cluster (or --to-kubeconfig)");
    }
    let from_context = args.from_cluster.as_deref().or(context);
    let from = side(kubeconfig, from_context, "the client's cluster").await?;
    let to = side(
        args.to_kubeconfig.as_ref().or(kubeconfig),
        args.to_cluster.as_deref(),
        "the remote cluster",
    )
    .await?;

    let mut guard = PodGuard::new();
    let outcome = tokio::select! {
        outcome = measure(&from, &to, args, timeout, &mut guard) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    let cleaned = guard.release().await;
    let table = outcome?;
    cleaned?;
    emit(&table)
}

async fn side(path: Option<&PathBuf>, context: Option<&str>, what: &str) -> anyhow::Result<Side> {
    let config = load_config(path, context).await.context(what.to_owned())?;
    let target = Target::new(config).context(what.to_owned())?;
    let label = context
        .map(str::to_owned)
        .or_else(|| current_context(path))
        .unwrap_or_else(|| target.server.clone());
    Ok(Side { target, label })
}

/// The kubeconfig's current context, to name the cluster in the output.
fn current_context(path: Option<&PathBuf>) -> Option<String> {
    let file = match path {
        Some(path) => Kubeconfig::read_from(path).ok()?,
        None => Kubeconfig::read().ok()?,
    };
    file.current_context.filter(|c| !c.is_empty())
}

async fn measure(
    from: &Side,
    to: &Side,
    args: &BenchmarkArgs,
    timeout: Duration,
    guard: &mut PodGuard,
) -> anyhow::Result<String> {
    let run = run_id();
    let remote_server = format!("nauti-bench-server-{run}");
    let local_server = format!("nauti-bench-local-{run}");
    let client = format!("nauti-bench-client-{run}");
    let sleep = ["sleep", "3600"].map(str::to_owned).to_vec();
    create_pod(to, args, &remote_server, server_command(SERVER_PORT), guard).await?;
    create_pod(
        from,
        args,
        &local_server,
        server_command(SERVER_PORT),
        guard,
    )
    .await?;
    create_pod(from, args, &client, sleep, guard).await?;

    let remote_ip = wait_running(to, &args.namespace, &remote_server, timeout).await?;
    let local_ip = wait_running(from, &args.namespace, &local_server, timeout).await?;
    wait_running(from, &args.namespace, &client, timeout).await?;

    let pods: Api<Pod> = Api::namespaced(from.target.client.clone(), &args.namespace);
    let cross = measure_path(
        &pods,
        &client,
        format!("cross-cluster ({} -> {})", from.label, to.label),
        &remote_ip,
        args,
    )
    .await?;
    let same = measure_path(
        &pods,
        &client,
        format!("same cluster ({})", from.label),
        &local_ip,
        args,
    )
    .await?;
    Ok(render_benchmark(&cross, &same))
}

/// A short suffix that keeps concurrent runs' pod names apart.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{:x}", (nanos ^ std::process::id()) & 0xff_ffff)
}

async fn create_pod(
    side: &Side,
    args: &BenchmarkArgs,
    name: &str,
    command: Vec<String>,
    guard: &mut PodGuard,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(side.target.client.clone(), &args.namespace);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(args.namespace.clone()),
            labels: Some(BTreeMap::from([(
                POD_LABEL.to_owned(),
                POD_LABEL_VALUE.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            termination_grace_period_seconds: Some(0),
            restart_policy: Some("Never".to_owned()),
            containers: vec![Container {
                name: "main".to_owned(),
                image: Some(args.image.clone()),
                image_pull_policy: Some("IfNotPresent".to_owned()),
                command: Some(command),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    progress(&format!(
        "creating pod {}/{name} in {}",
        args.namespace, side.label
    ));
    pods.create(&PostParams::default(), &pod)
        .await
        .with_context(|| {
            side.target
                .unreachable(&format!("create pod {}/{name}", args.namespace))
        })?;
    guard.pods.push((pods, side.label.clone(), name.to_owned()));
    Ok(())
}

/// Waits until the pod runs and carries its global address; returns the address.
async fn wait_running(
    side: &Side,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let pods: Api<Pod> = Api::namespaced(side.target.client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    loop {
        let pod = pods.get(name).await.with_context(|| {
            side.target
                .unreachable(&format!("read pod {namespace}/{name}"))
        })?;
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let address = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(nauti_api::keys::IP_ADDRESS))
            .filter(|ip| !ip.is_empty())
            .cloned();
        match (phase.as_str(), address) {
            ("Running", Some(address)) => {
                progress(&format!(
                    "pod {namespace}/{name} in {} runs at {address}",
                    side.label
                ));
                return Ok(address);
            }
            ("Failed" | "Succeeded", _) => {
                bail!(
                    "pod {namespace}/{name} in {} ended ({phase}) before the benchmark",
                    side.label
                )
            }
            (_, address) if Instant::now() >= deadline => bail!(
                "pod {namespace}/{name} in {} not ready within {timeout:?}: phase {phase:?}, {}",
                side.label,
                match address {
                    Some(a) => format!("address {a}"),
                    None => format!("no {} annotation", nauti_api::keys::IP_ADDRESS),
                }
            ),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn measure_path(
    pods: &Api<Pod>,
    client: &str,
    name: String,
    address: &str,
    args: &BenchmarkArgs,
) -> anyhow::Result<PathResult> {
    warm_up(pods, client, &name, address).await?;
    progress(&format!("{name}: {} pings to {address}", args.pings));
    let ping_limit = Duration::from_secs(u64::from(args.pings) + 30);
    let ping_out = exec(pods, client, ping_command(address, args.pings), ping_limit)
        .await
        .with_context(|| format!("{name}: ping {address}"))?;
    let ping = parse_ping(&ping_out).with_context(|| format!("{name}: ping {address}"))?;

    let bytes = args.size_mib * 1024 * 1024;
    progress(&format!(
        "{name}: sending {} MiB to {address}:{SERVER_PORT}",
        args.size_mib
    ));
    let script = throughput_script(address, SERVER_PORT, bytes, 10);
    let send_limit = Duration::from_secs(120 + args.size_mib);
    let out = exec(
        pods,
        client,
        vec!["sh".to_owned(), "-c".to_owned(), script],
        send_limit,
    )
    .await
    .with_context(|| format!("{name}: send to {address}:{SERVER_PORT}"))?;
    let elapsed = parse_elapsed(&out).with_context(|| format!("{name}: time the transfer"))?;
    let result = PathResult {
        name,
        mbit_per_s: mbit_per_s(bytes, elapsed),
        ping,
    };
    progress(&format!(
        "{}: {:.1} Mbit/s ({elapsed:?}), {:.3} ms",
        result.name, result.mbit_per_s, result.ping.average_ms
    ));
    Ok(result)
}

/// Pings until one answer comes back (bounded): a tunnel comes up with its first packets, and
/// its handshake is not what the benchmark measures.
async fn warm_up(pods: &Api<Pod>, client: &str, name: &str, address: &str) -> anyhow::Result<()> {
    const ATTEMPTS: u32 = 15;
    progress(&format!("{name}: waiting for {address} to answer pings"));
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let command = ["busybox", "ping", "-c", "1", "-W", "2", address]
            .map(str::to_owned)
            .to_vec();
        match exec(pods, client, command, Duration::from_secs(30)).await {
            Ok(out) if parse_ping(&out).is_ok() => return Ok(()),
            Ok(out) => last = out,
            Err(e) => last = format!("{e:#}"),
        }
    }
    bail!("{name}: {address} answered none of {ATTEMPTS} pings from {client}; last: {last}")
}

/// Runs `command` in the pod's container through the API server; its stdout when it exits 0.
pub(crate) async fn exec(
    pods: &Api<Pod>,
    pod: &str,
    command: Vec<String>,
    limit: Duration,
) -> anyhow::Result<String> {
    let work = async {
        let params = AttachParams::default()
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut process = pods
            .exec(pod, command, &params)
            .await
            .with_context(|| format!("exec in pod {pod}"))?;
        let mut stdout = process.stdout().context("no stdout stream")?;
        let mut stderr = process.stderr().context("no stderr stream")?;
        let status = process.take_status().context("no status stream")?;
        let mut out = String::new();
        let mut err = String::new();
        let (read_out, read_err) = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        );
        read_out.context("read the command's stdout")?;
        read_err.context("read the command's stderr")?;
        let status = status.await;
        process.join().await.context("finish the exec stream")?;
        match status {
            Some(s) if s.status.as_deref() == Some("Success") => Ok(out),
            Some(s) => bail!(
                "the command failed ({}): {}{}",
                s.message.unwrap_or_default(),
                err.trim(),
                if out.trim().is_empty() {
                    String::new()
                } else {
                    format!(" (stdout: {})", out.trim())
                }
            ),
            None => bail!("no exit status from the command; stderr: {}", err.trim()),
        }
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| anyhow!("no end within {limit:?}"))?
}
