//! `nautictl`: see and manage a Nauti cluster set from the hub.

mod benchmark_cmd;
mod clean_cmd;
mod diagnose_cmd;
mod rotate_cmd;
mod show_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use nauti_api::peer::DEFAULT_PEER_NAMESPACE;
use nauti_octopus::hub::tokens::issue_token;
use nauti_octopus::join::token::{ISSUER_LABEL, SECRET_NAMESPACE};
use nautictl::{DEFAULT_AGENT_CHART, render_join_instructions, render_tokens, token_row};

/// How long to wait for the API server to accept a connection before calling it down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Set by the kubelet in every container: without a kubeconfig, nautictl then runs as the pod's
/// ServiceAccount.
const IN_CLUSTER_ENV: &str = "KUBERNETES_SERVICE_HOST";

#[derive(Debug, Parser)]
#[command(
    name = "nautictl",
    version,
    about = "See and manage a Nauti cluster set from its hub.",
    after_help = "Examples:\n  \
        nautictl --context hub join-token create --ttl 2h\n  \
        nautictl --kubeconfig hub.kubeconfig show -o json\n  \
        nautictl --context east clean --dry-run\n  \
        nautictl --context east diagnose --from default/client --to default/server --to-context west --hub-context hub --ovn-nb tcp:10.0.0.5:6641\n  \
        nautictl --context east rotate-keys --wait\n  \
        nautictl benchmark --from-cluster east --to-cluster west\n  \
        source <(nautictl completion bash)"
)]
struct Cli {
    /// Kubeconfig file; $KUBECONFIG or ~/.kube/config when absent, as kubectl reads them (inside
    /// a pod without either: the pod's ServiceAccount).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig to use; its current context when absent.
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bootstrap tokens members join the hub with (run against the hub).
    #[command(subcommand)]
    JoinToken(JoinTokenCommand),
    /// The clusters of the set (from the hub's Peers: slices, tunnel state), the services they
    /// export, and for each member given: its gateway pods and the services it imports.
    ///
    /// --kubeconfig/--context name the hub. Each --member-context (a context of the same
    /// kubeconfig) or --member-kubeconfig adds a member: its CNF pods with their nodes, the one
    /// holding the Lease active and the others standby, and the EndpointSlices octopus imported
    /// there with the clusters serving them. A member that does not answer is named on stderr
    /// and the exit code is 1; the rest is still printed.
    #[command(after_help = "Examples:\n  \
        nautictl --context hub show\n  \
        nautictl --context hub show --member-context east --member-context west\n  \
        nautictl --kubeconfig hub.kubeconfig show --member-kubeconfig east.kubeconfig -o json\n  \
        nautictl --context hub show -o yaml")]
    Show(show_cmd::ShowArgs),
    /// Remove Nauti's traces from one cluster (safe to run again).
    ///
    /// Removes Nauti's annotations on every pod and Node, the CoreDNS block crossdns wired,
    /// and (with --ovn-nb) Nauti's OVN logical switches, ports and load balancers. Annotations
    /// of others, `nauti.io/enabled` (the user's opt-out) and OVN rows without Nauti's
    /// external_ids stay. Node-local traces only with their flags: --node-nics deletes the
    /// host ends of Nauti's veths on every Node (each pod's eth-nauti and its routes go with
    /// them) from a short-lived privileged host-network pod, and each --ovs-db removes the
    /// ports nauti-nri made in that node's Open vSwitch database.
    #[command(after_help = "Examples:\n  \
        nautictl --context east clean --dry-run\n  \
        nautictl --context east clean --ovn-nb tcp:10.0.0.5:6641\n  \
        nautictl --context east clean --node-nics --ovs-db unix:/var/run/openvswitch/db.sock\n  \
        nautictl --kubeconfig east.kubeconfig clean --coredns-key Corefile.custom\n  \
        nautictl clean --keep-coredns   # in a pod, as its ServiceAccount (the chart's uninstall hook)")]
    Clean(clean_cmd::CleanArgs),
    /// Check each hop of the path from a pod to a pod or service name, stopping at the first
    /// that fails with its cause; exits 0 when every hop passes, 1 otherwise.
    ///
    /// Hops, in order: the source pod's nauti.io annotations are readable and agree with its OVN
    /// logical switch port (address and MAC); the port is bound on the pod's node (with
    /// --ovn-sb); the pod's own eth-nauti holds that address and MAC (`ip` run in the pod
    /// through the API server); the gateway router holds the pod's gateway and routes the
    /// global network through a CNF pod that exists, runs and holds the Lease; the Peers of
    /// both clusters are Ready on the hub with a recent handshake; the tunnel routes: the
    /// source's active CNF routes the destination cluster's slices into its WireGuard interface
    /// and the destination's (read with --to-context/--to-kubeconfig) the source's (`octopus
    /// routes` run in each CNF pod through the API server); a service name resolves in
    /// crossdns (a stopped crossdns is named) and, asked with `dig` from the pod, through the
    /// cluster's CoreDNS to the same addresses.
    #[command(after_help = "Examples:\n  \
        nautictl --context east diagnose --from default/client --to default/server \\\n      \
        --to-context west --hub-context hub --ovn-nb tcp:10.0.0.5:6641 --ovn-sb tcp:10.0.0.5:6642\n  \
        nautictl --context east diagnose --from default/client --to nginx.web --hub-context hub \\\n      \
        --ovn-nb unix:/run/ovn/ovnnb_db.sock\n  \
        nautictl --context east diagnose --cluster-id east --ovn-nb tcp:10.0.0.5:6641")]
    Diagnose(Box<diagnose_cmd::DiagnoseArgs>),
    /// Give one cluster's gateway a new WireGuard key (run against that cluster).
    ///
    /// Writes a fresh random key into the cluster's key Secret and prints the old and the new
    /// public key. The running octopus switches its tunnel to the new key in place and
    /// publishes it; the other gateways replace the peer on their next pass, so established
    /// connections pause for about one handshake.
    #[command(after_help = "Examples:\n  \
        nautictl --context east rotate-keys\n  \
        nautictl --context east rotate-keys --cluster east --wait --timeout 1m\n  \
        nautictl --context hub rotate-keys --wait   # the hub's own key")]
    RotateKeys(rotate_cmd::RotateArgs),
    /// Measure throughput and latency across the tunnel and inside one cluster.
    ///
    /// Starts a server pod in each cluster and a client pod in the client's cluster, waits for
    /// their global addresses (nauti.io/ip_address), then from the client pings each server and
    /// sends it --size-mib MiB with netcat; prints both paths and their ratio, and deletes the
    /// pods (also on failure or Ctrl-C). Progress goes to stderr.
    #[command(after_help = "Examples:\n  \
        nautictl benchmark --from-cluster east --to-cluster west\n  \
        nautictl --kubeconfig east.kubeconfig benchmark --to-kubeconfig west.kubeconfig --size-mib 16\n  \
        nautictl --context east benchmark --to-cluster west --image registry.example/tools:1 --pings 20")]
    Benchmark(benchmark_cmd::BenchmarkArgs),
    /// Print a shell completion script.
    #[command(after_help = "Examples:\n  \
        source <(nautictl completion bash)\n  \
        nautictl completion zsh > \"${fpath[1]}/_nautictl\"\n  \
        nautictl completion fish > ~/.config/fish/completions/nautictl.fish")]
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum JoinTokenCommand {
    /// Issue a token and print how to install nauti-agent with it.
    #[command(after_help = "Examples:\n  \
        nautictl --context hub join-token create\n  \
        nautictl --context hub join-token create --ttl 30m --hub-url https://hub.example:6443")]
    Create {
        /// How long the token is accepted (e.g. `24h`, `30m`).
        #[arg(long, default_value = "24h")]
        ttl: jiff::SignedDuration,
        /// The hub API URL members use; the kubeconfig's server when absent.
        #[arg(long)]
        hub_url: Option<String>,
        /// Namespace of Nauti on the hub.
        #[arg(long, default_value = DEFAULT_PEER_NAMESPACE)]
        namespace: String,
        /// The nauti-agent chart the printed `helm install` line names.
        #[arg(long, default_value = DEFAULT_AGENT_CHART)]
        agent_chart: String,
    },
    /// List the tokens not used yet (never their secret half).
    #[command(after_help = "Examples:\n  nautictl --context hub join-token list")]
    List,
    /// Delete a token by its ID (the part before the dot).
    #[command(after_help = "Examples:\n  nautictl --context hub join-token delete re51os")]
    Delete {
        /// The token's ID.
        id: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nautictl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Completion { shell } = cli.command {
        // No cluster needed: the script comes from the command line's own definition.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "nautictl", &mut script);
        emit(&String::from_utf8_lossy(&script))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Benchmark(args) = &cli.command {
        // Two clusters: each side loads its own kubeconfig and context.
        benchmark_cmd::run(cli.kubeconfig.as_ref(), cli.context.as_deref(), args).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Show(args) = &cli.command {
        // The hub and each member: several clusters, each with its own config.
        return show_cmd::run(cli.kubeconfig.as_ref(), cli.context.as_deref(), args).await;
    }
    let mut config = load_config(cli.kubeconfig.as_ref(), cli.context.as_deref()).await?;
    if let Command::Diagnose(args) = &cli.command {
        let timeout = diagnose_cmd::timeout(args)?;
        diagnose_cmd::bound_requests(&mut config, timeout);
        let target = Target::new(config)?;
        return diagnose_cmd::run(&target, cli.kubeconfig.as_ref(), args, timeout).await;
    }
    let target = Target::new(config)?;
    run_command(&target, cli.command)
        .await
        .map(|()| ExitCode::SUCCESS)
}

async fn run_command(target: &Target, command: Command) -> anyhow::Result<()> {
    let target = target.clone();
    match command {
        Command::JoinToken(JoinTokenCommand::Create {
            ttl,
            hub_url,
            namespace,
            agent_chart,
        }) => token_create(&target, ttl, hub_url, &namespace, &agent_chart).await,
        Command::JoinToken(JoinTokenCommand::List) => token_list(&target).await,
        Command::JoinToken(JoinTokenCommand::Delete { id }) => token_delete(&target, &id).await,
        Command::Clean(args) => clean_cmd::clean(&target, &args).await,
        Command::RotateKeys(args) => rotate_cmd::rotate_keys(&target, &args).await,
        // Answered in run.
        Command::Completion { .. }
        | Command::Diagnose(_)
        | Command::Benchmark(_)
        | Command::Show(_) => Ok(()),
    }
}

/// Writes a command's result to stdout.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("write to stdout")?;
    stdout.flush().context("write to stdout")
}

/// The cluster's client and the URL it talks to, for error messages.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) client: kube::Client,
    pub(crate) server: String,
}

impl Target {
    pub(crate) fn new(config: kube::Config) -> anyhow::Result<Self> {
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        let client = kube::Client::try_from(config).context("build the Kubernetes client")?;
        Ok(Self { client, server })
    }

    pub(crate) fn unreachable(&self, what: &str) -> String {
        format!("{what} on the API server {}", self.server)
    }
}

pub(crate) async fn load_config(
    path: Option<&PathBuf>,
    context: Option<&str>,
) -> anyhow::Result<kube::Config> {
    let (file, source) = match path {
        Some(path) => (
            Kubeconfig::read_from(path)
                .with_context(|| format!("bad kubeconfig {}", path.display()))?,
            path.display().to_string(),
        ),
        None => match Kubeconfig::read() {
            Ok(file) => (file, "the default kubeconfig".to_owned()),
            // Inside a pod (the chart's uninstall hook): the pod's ServiceAccount.
            Err(_) if context.is_none() && std::env::var_os(IN_CLUSTER_ENV).is_some() => {
                let mut config = kube::Config::incluster()
                    .context("no kubeconfig, and no usable in-cluster ServiceAccount")?;
                config.connect_timeout = Some(CONNECT_TIMEOUT);
                return Ok(config);
            }
            Err(e) => {
                return Err(e).context("no kubeconfig: pass --kubeconfig or set KUBECONFIG");
            }
        },
    };
    if let Some(name) = context
        && !file.contexts.iter().any(|c| c.name == name)
    {
        let known: Vec<&str> = file.contexts.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "unknown context {name:?} in {source} (it has: {})",
            known.join(", ")
        );
    }
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(file, &options)
        .await
        .with_context(|| format!("bad kubeconfig {source}"))?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    Ok(config)
}

async fn token_create(
    target: &Target,
    ttl: jiff::SignedDuration,
    hub_url: Option<String>,
    namespace: &str,
    agent_chart: &str,
) -> anyhow::Result<()> {
    if !ttl.is_positive() {
        bail!("--ttl {ttl:#} must be positive");
    }
    let ttl = Duration::try_from(ttl).with_context(|| format!("--ttl {ttl:#} is out of range"))?;
    let token = issue_token(target.client.clone(), ttl)
        .await
        .with_context(|| target.unreachable("issue a bootstrap token"))?;
    // Read the stored Secret back: the expiry printed is the one the hub enforces.
    let secrets: Api<Secret> = Api::namespaced(target.client.clone(), SECRET_NAMESPACE);
    let stored = secrets
        .get(&token.secret_name())
        .await
        .with_context(|| target.unreachable("read back the token Secret"))?;
    let row = token_row(&stored)?;
    let hub_url = hub_url.unwrap_or_else(|| target.server.clone());
    emit(&render_join_instructions(
        &token.to_string(),
        row.expiration,
        &hub_url,
        namespace,
        agent_chart,
    ))
}

async fn token_list(target: &Target) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(target.client.clone(), SECRET_NAMESPACE);
    let list = secrets
        .list(&ListParams::default().labels(&format!("{ISSUER_LABEL}=true")))
        .await
        .with_context(|| target.unreachable("list the bootstrap-token Secrets"))?;
    let mut rows = Vec::new();
    for secret in &list.items {
        rows.push(token_row(secret)?);
    }
    rows.sort_by(|a, b| a.expiration.cmp(&b.expiration).then(a.id.cmp(&b.id)));
    emit(&render_tokens(&rows, jiff::Timestamp::now()))
}

async fn token_delete(target: &Target, id: &str) -> anyhow::Result<()> {
    // A whole token parses only with a valid ID; reuse that check with a dummy secret half.
    let probe = format!("{id}.0000000000000000");
    let token: nauti_octopus::join::BootstrapToken = probe
        .parse()
        .with_context(|| format!("{id:?} is not a token ID (6 characters of [a-z0-9])"))?;
    let secrets: Api<Secret> = Api::namespaced(target.client.clone(), SECRET_NAMESPACE);
    let name = token.secret_name();
    let secret = match secrets.get_opt(&name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => bail!("no token {id} (no Secret {SECRET_NAMESPACE}/{name})"),
        Err(e) => return Err(e).with_context(|| target.unreachable("read the token Secret")),
    };
    // Only Nauti's tokens: kubeadm's or another tool's bootstrap tokens are not ours to delete.
    token_row(&secret).with_context(|| format!("refusing to delete {SECRET_NAMESPACE}/{name}"))?;
    secrets
        .delete(&name, &DeleteParams::default())
        .await
        .with_context(|| target.unreachable("delete the token Secret"))?;
    emit(&format!("token {id} deleted\n"))
}
