//! The `octopus` command line: flags (with environment twins) and what each subcommand runs.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Parser, Subcommand};
use ipnet::IpNet;
use nauti_api::core::config::{DEFAULT_CLUSTER_PREFIX_LEN, DEFAULT_GLOBAL_CIDR};
use nauti_api::core::wgkey::parse_wireguard_key;
use nauti_api::daemon::election::{self, LeaseSetting, LeaseSettings};
use nauti_api::daemon::owner::OwnerArgs;
use nauti_api::daemon::{LogArgs, shutdown_on_signals};
use nauti_api::peer::{DEFAULT_PEER_NAMESPACE, DEFAULT_WIREGUARD_PORT};

use crate::controller::claim::ClaimConfig;
use crate::controller::hub::HubConfig;
use crate::controller::local::{CREDENTIAL_SECRET, WIREGUARD_KEY_SECRET};
use crate::controller::member::{LeaveConfig, MemberConfig};
use crate::controller::services::ServicesConfig;
use crate::core::{LocalRole, SlicePolicy};
use crate::gateway::GatewayConfig;
use crate::gateway::file::FileGatewayConfig;
use crate::hub::tokens;
use crate::join::BootstrapToken;
use crate::wg::kernel::{WireGuardBackend, choose_backend, probe_kernel};
use crate::wg::userspace::{Device, DeviceConfig, uapi};

/// Default address of octopus's `/metrics`, `/healthz` and `/readyz`.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9466";

/// Hub and member tunnels (WireGuard) for Nauti.
#[derive(Debug, Parser)]
#[command(name = "octopus", version)]
pub struct Args {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

/// What octopus runs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the userspace WireGuard device in this network namespace until SIGTERM; configure
    /// its peers with `wg set` over its UAPI socket.
    WgDevice(WgDeviceArgs),
    /// Run the hub's controller (approves members, assigns slices, publishes the hub's Peer),
    /// or issue a bootstrap token with `octopus hub issue-token`.
    Hub(Box<HubArgs>),
    /// Run a member's controller (joins the hub once, publishes its Peer, hands its slice to
    /// nauti-ovnmaster), or leave the cluster set with `octopus member leave`.
    Member(Box<MemberArgs>),
    /// Run a gateway from a JSON file of Peers instead of the hub's API: the userspace
    /// WireGuard device with the peers, routes and forwarding the topology wants, re-applied
    /// whenever the file changes (static setups and data-path tests).
    Gateway(Box<GatewayArgs>),
    /// Print, as one line of JSON, the routes the gateway holds on its WireGuard interface in
    /// this network namespace (`{"interface":..,"exists":..,"routes":[..]}`); `nautictl
    /// diagnose` runs it in the CNF pod, whose image has no `ip`.
    Routes(RoutesArgs),
}

/// The flags of `octopus routes`.
#[derive(Debug, clap::Args)]
pub struct RoutesArgs {
    /// The WireGuard interface.
    #[arg(long, env = "OCTOPUS_WIREGUARD_INTERFACE")]
    interface: String,
}

/// The gateway's data path in `octopus hub` and `octopus member`.
#[derive(Debug, clap::Args)]
pub struct DataPathArgs {
    /// Run the WireGuard tunnel in this process on an interface of this name (userspace
    /// device, UAPI socket `/var/run/wireguard/<name>.sock`) and apply the plan to it: peers,
    /// routes to the other clusters' slices and the clusterset block, IPv4 forwarding. Without
    /// it the plan is only logged and exported as metrics.
    #[arg(long, env = "OCTOPUS_WIREGUARD_INTERFACE")]
    wireguard_interface: Option<String>,
    /// MTU of the network the tunnel runs over; the interface gets this minus WireGuard's 60.
    #[arg(long, env = "OCTOPUS_UNDERLAY_MTU", default_value_t = 1500)]
    underlay_mtu: u16,
    /// WireGuard implementation: `kernel` (the kernel module), `userspace` (in-process device
    /// on a TUN interface) or `auto` (the kernel module where the node has it, else userspace).
    #[arg(long, env = "OCTOPUS_WIREGUARD_BACKEND", value_enum, default_value_t)]
    wireguard_backend: WireGuardBackend,
}

impl DataPathArgs {
    fn gateway(&self, policy: &SlicePolicy) -> anyhow::Result<Option<GatewayConfig>> {
        let Some(ifname) = &self.wireguard_interface else {
            return Ok(None);
        };
        // `kernel` without the module stops here with the reason, before anything else runs.
        let backend = choose_backend(self.wireguard_backend, probe_kernel, true)
            .context("--wireguard-backend")?;
        tracing::info!(ifname, ?backend, "WireGuard backend");
        let (mut config, mtu) =
            GatewayConfig::derive(ifname, self.underlay_mtu, policy).context("--underlay-mtu")?;
        config.backend = backend;
        tracing::info!(
            ifname,
            tunnel_mtu = mtu.tunnel_mtu,
            pod_mtu = mtu.pod_mtu,
            reason = %mtu.reason,
            "MTUs"
        );
        Ok(Some(config))
    }
}

/// Lease `octopus hub` replicas elect their leader on, in the hub cluster.
pub const DEFAULT_HUB_LEASE: &str = "octopus-hub";
/// Lease `octopus member` replicas elect their leader on, in their own cluster.
pub const DEFAULT_MEMBER_LEASE: &str = "octopus-member";

/// Leader election among replicas (`octopus hub`, `octopus member`): only the Lease holder acts.
#[derive(Debug, clap::Args)]
pub struct LeaseArgs {
    /// Name of the Lease replicas elect their leader on (default: `octopus-hub` for the hub,
    /// `octopus-member` for a member; RBAC grants only these names).
    #[arg(long, env = "OCTOPUS_LEASE_NAME")]
    lease_name: Option<String>,
    /// Namespace of the Lease (default: --namespace, where RBAC grants it; a member's Lease
    /// is in its own cluster).
    #[arg(long, env = "OCTOPUS_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// How long a leader's lease lasts without renewal (whole seconds, at least 1s).
    #[arg(long, env = "OCTOPUS_LEASE_DURATION", default_value = "15s")]
    lease_duration: jiff::SignedDuration,
    /// How often the leader renews, and a standby looks at, the lease.
    #[arg(long, env = "OCTOPUS_LEASE_RENEW_INTERVAL", default_value = "5s")]
    lease_renew_interval: jiff::SignedDuration,
    /// This replica's identity in the lease (default: $POD_NAME or the host name, plus a random
    /// suffix so a restarted replica never mistakes its predecessor's lease for its own).
    #[arg(long, env = "OCTOPUS_LEASE_IDENTITY")]
    lease_identity: Option<String>,
    /// This replica's pod (in --namespace; default: $POD_NAME): the leader labels it
    /// `nauti.io/gateway-active`, which the gateway Service selects; without one no pod is
    /// labelled.
    #[arg(long, env = "OCTOPUS_POD_NAME")]
    pod_name: Option<String>,
}

impl LeaseArgs {
    /// --pod-name, else the `POD_NAME` the Deployments set from the downward API.
    fn pod_name(&self) -> Option<String> {
        self.pod_name
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .filter(|name| !name.is_empty())
    }
}

impl LeaseArgs {
    /// The settings, on the Lease `default_name` in `default_namespace` unless the flags name
    /// others.
    fn settings(
        self,
        default_name: &str,
        default_namespace: &str,
    ) -> anyhow::Result<LeaseSettings> {
        let identity = self
            .lease_identity
            .unwrap_or_else(|| election::default_identity("octopus"));
        LeaseSettings::new(
            self.lease_name.as_deref().unwrap_or(default_name),
            self.lease_namespace.as_deref().unwrap_or(default_namespace),
            identity,
            std_duration("--lease-duration", self.lease_duration)?,
            std_duration("--lease-renew-interval", self.lease_renew_interval)?,
        )
        .map_err(|e| {
            let flag = match e.setting {
                LeaseSetting::Duration => "--lease-duration",
                LeaseSetting::RenewInterval => "--lease-renew-interval",
                LeaseSetting::Identity => "--lease-identity",
            };
            anyhow::anyhow!("{flag}: {}", e.reason)
        })
    }
}

/// Flags of `octopus gateway`.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// Interface name; also names the UAPI socket, so unique on the machine.
    #[arg(long, env = "OCTOPUS_WIREGUARD_INTERFACE")]
    interface: String,
    /// File holding the private key as `wg genkey` prints it.
    #[arg(long, env = "OCTOPUS_WG_PRIVATE_KEY_FILE")]
    private_key_file: PathBuf,
    /// UDP port to listen on.
    #[arg(long, env = "OCTOPUS_WG_PORT", default_value_t = DEFAULT_WIREGUARD_PORT)]
    wg_port: u16,
    /// This cluster's ID; its own Peer in the file is skipped.
    #[arg(long, env = "OCTOPUS_CLUSTER_ID")]
    cluster_id: String,
    /// This gateway is the hub's.
    #[arg(long, env = "OCTOPUS_HUB")]
    hub: bool,
    /// Every other cluster can dial this gateway (two public members peer directly); only
    /// when the file holds no Peer of this cluster, whose `isPublic` decides otherwise.
    #[arg(long, env = "OCTOPUS_PUBLIC")]
    public: bool,
    /// JSON array of Peers (slices filled in), read again when it changes.
    #[arg(long, env = "OCTOPUS_PEERS_FILE")]
    peers_file: PathBuf,
    /// Clusters that joined, comma-separated; a Peer of any other is refused. All when absent.
    #[arg(long, env = "OCTOPUS_JOINED", value_delimiter = ',')]
    joined: Option<Vec<String>>,
    /// MTU of the network the tunnel runs over; the interface gets this minus WireGuard's 60.
    #[arg(long, env = "OCTOPUS_UNDERLAY_MTU", default_value_t = 1500)]
    underlay_mtu: u16,
    #[command(flatten)]
    slices: SliceArgs,
}

/// How slices of the global CIDR are carved; the hub and every member must agree.
#[derive(Debug, clap::Args)]
pub struct SliceArgs {
    /// The whole multi-cluster network.
    #[arg(long, env = "OCTOPUS_GLOBAL_CIDR", default_value_t = DEFAULT_GLOBAL_CIDR)]
    global_cidr: IpNet,
    /// Prefix length of the slice each cluster gets (the top one is kept for clusterset IPs).
    #[arg(long, env = "OCTOPUS_SLICE_PREFIX", default_value_t = DEFAULT_CLUSTER_PREFIX_LEN)]
    slice_prefix: u8,
}

impl SliceArgs {
    fn policy(&self) -> anyhow::Result<SlicePolicy> {
        SlicePolicy::new(self.global_cidr, self.slice_prefix, None)
            .context("--global-cidr / --slice-prefix")
    }
}

/// Flags of `octopus hub`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct HubArgs {
    #[command(subcommand)]
    action: Option<HubAction>,
    #[command(flatten)]
    run: HubRunArgs,
}

/// What `octopus hub` can do besides running.
#[derive(Debug, Subcommand)]
pub enum HubAction {
    /// Create a new random bootstrap token and print it as JSON with the hub's URL and CA, for
    /// `octopus member --token-file`, `--hub-url` and `--hub-ca-file`.
    IssueToken(IssueTokenArgs),
}

/// Flags of `octopus hub` (running).
#[derive(Debug, clap::Args)]
pub struct HubRunArgs {
    /// Kubeconfig of the hub cluster; in-cluster configuration when absent.
    #[arg(long, env = "OCTOPUS_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the Peers, and of the hub's key and slice ConfigMap.
    #[arg(long, env = "OCTOPUS_NAMESPACE", default_value = DEFAULT_PEER_NAMESPACE)]
    namespace: String,
    /// The hub cluster's ID (its Peer's name).
    #[arg(long, env = "OCTOPUS_CLUSTER_ID", required = true)]
    cluster_id: Option<String>,
    /// Host name or IP where members reach the hub's WireGuard gateway.
    #[arg(long, env = "OCTOPUS_ENDPOINT", required = true)]
    endpoint: Option<String>,
    /// UDP port of the hub's WireGuard gateway.
    #[arg(long, env = "OCTOPUS_WG_PORT", default_value_t = DEFAULT_WIREGUARD_PORT)]
    wg_port: u16,
    /// A specific slice for the hub cluster; the lowest free one when absent.
    #[arg(long, env = "OCTOPUS_CLUSTER_CIDR")]
    cluster_cidr: Option<IpNet>,
    /// Secret (in --namespace) holding the gateway's WireGuard private key; created once.
    #[arg(long, env = "OCTOPUS_WG_KEY_SECRET", default_value = WIREGUARD_KEY_SECRET)]
    wg_key_secret: String,
    #[command(flatten)]
    slices: SliceArgs,
    #[command(flatten)]
    data_path: DataPathArgs,
    #[command(flatten)]
    lease: LeaseArgs,
    #[command(flatten)]
    owner: OwnerArgs,
    /// Address of the HTTP endpoint serving `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "OCTOPUS_METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR)]
    metrics_addr: SocketAddr,
}

/// Flags of `octopus hub issue-token`.
#[derive(Debug, clap::Args)]
pub struct IssueTokenArgs {
    /// Kubeconfig of the hub cluster; in-cluster configuration when absent.
    #[arg(long, env = "OCTOPUS_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// How long the token is accepted (e.g. `24h`, `30m`).
    #[arg(long, env = "OCTOPUS_TOKEN_TTL", default_value = "24h")]
    ttl: jiff::SignedDuration,
    /// The hub API URL members use; the kubeconfig's server when absent.
    #[arg(long, env = "OCTOPUS_HUB_URL")]
    hub_url: Option<String>,
    /// PEM file of the hub API's CA members trust; the kubeconfig's CA when absent.
    #[arg(long, env = "OCTOPUS_HUB_CA_FILE")]
    hub_ca_file: Option<PathBuf>,
}

/// Flags of `octopus member`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct MemberArgs {
    #[command(subcommand)]
    action: Option<MemberAction>,
    #[command(flatten)]
    run: MemberRunArgs,
}

/// What `octopus member` can do besides running.
#[derive(Debug, Subcommand)]
pub enum MemberAction {
    /// Leave the cluster set: delete this cluster's Peer on the hub, wait for the hub to revoke
    /// its grants, delete the stored credential.
    Leave(LeaveArgs),
}

/// Flags of `octopus member` (running).
#[derive(Debug, clap::Args)]
pub struct MemberRunArgs {
    /// Kubeconfig of this member's own cluster; in-cluster configuration when absent.
    #[arg(long, env = "OCTOPUS_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Namespace (in this cluster) of the key, the credential and the slice ConfigMap.
    #[arg(long, env = "OCTOPUS_NAMESPACE", default_value = "nauti-system")]
    namespace: String,
    /// The hub's API server URL.
    #[arg(long, env = "OCTOPUS_HUB_URL", required = true)]
    hub_url: Option<String>,
    /// PEM file of the hub API server's CA.
    #[arg(long, env = "OCTOPUS_HUB_CA_FILE", required = true)]
    hub_ca_file: Option<PathBuf>,
    /// Namespace of the Peers on the hub.
    #[arg(long, env = "OCTOPUS_HUB_NAMESPACE", default_value = DEFAULT_PEER_NAMESPACE)]
    hub_namespace: String,
    /// File holding the bootstrap token; used only when no credential is stored yet.
    #[arg(long, env = "OCTOPUS_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The bootstrap token itself (prefer --token-file; the environment keeps it off `ps`).
    #[arg(
        long,
        env = "OCTOPUS_BOOTSTRAP_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// This cluster's ID (its Peer's name), a DNS-1123 label unique in the cluster set.
    #[arg(long, env = "OCTOPUS_CLUSTER_ID", required = true)]
    cluster_id: Option<String>,
    /// Secret (in --namespace) holding the credential on the hub.
    #[arg(long, env = "OCTOPUS_CREDENTIAL_SECRET", default_value = CREDENTIAL_SECRET)]
    credential_secret: String,
    /// Secret (in --namespace) holding the gateway's WireGuard private key; created once.
    #[arg(long, env = "OCTOPUS_WG_KEY_SECRET", default_value = WIREGUARD_KEY_SECRET)]
    wg_key_secret: String,
    /// Host name or IP where other clusters reach this gateway; absent behind NAT.
    #[arg(long, env = "OCTOPUS_ENDPOINT")]
    endpoint: Option<String>,
    /// UDP port of this gateway.
    #[arg(long, env = "OCTOPUS_WG_PORT", default_value_t = DEFAULT_WIREGUARD_PORT)]
    wg_port: u16,
    /// Every other cluster can dial --endpoint (two public members peer directly).
    #[arg(long, env = "OCTOPUS_PUBLIC", requires = "endpoint")]
    public: bool,
    /// A specific slice to ask the hub for; the lowest free one when absent.
    #[arg(long, env = "OCTOPUS_CLUSTER_CIDR")]
    cluster_cidr: Option<IpNet>,
    #[command(flatten)]
    slices: SliceArgs,
    /// Lifetime of the certificate asked for (renewed two thirds into it; at least 10m).
    #[arg(long, env = "OCTOPUS_CREDENTIAL_LIFETIME", default_value = "24h")]
    credential_lifetime: jiff::SignedDuration,
    #[command(flatten)]
    data_path: DataPathArgs,
    /// With --wireguard-interface and --ovn-nb, this pod's NIC on the cluster's logical switch:
    /// the leader makes its address the next hop of the cluster's gateway router.
    #[arg(long, env = "OCTOPUS_POD_INTERFACE", default_value = "eth-nauti")]
    pod_interface: String,
    #[command(flatten)]
    services: ServicesArgs,
    #[command(flatten)]
    lease: LeaseArgs,
    #[command(flatten)]
    owner: OwnerArgs,
    /// Address of the HTTP endpoint serving `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "OCTOPUS_METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR)]
    metrics_addr: SocketAddr,
}

/// Flags of `octopus member` for multi-cluster services.
#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    /// The cluster's OVN northbound database (`unix:PATH`, `tcp:HOST:PORT`, `ssl:HOST:PORT`),
    /// where the pods' global addresses are read; without it nothing is exported.
    #[arg(long, env = "OCTOPUS_OVN_NB")]
    ovn_nb: Option<String>,
    /// The cluster's logical switch (default `nauti-<cluster-id>`, as nauti-ovnmaster names it).
    #[arg(long, env = "OCTOPUS_OVN_LOGICAL_SWITCH")]
    ovn_logical_switch: Option<String>,
    /// Private key (PEM) for an `ssl:` --ovn-nb.
    #[arg(long, env = "OCTOPUS_OVSDB_PRIVATE_KEY")]
    ovsdb_private_key: Option<PathBuf>,
    /// Certificate (PEM) for that key.
    #[arg(long, env = "OCTOPUS_OVSDB_CERTIFICATE")]
    ovsdb_certificate: Option<PathBuf>,
    /// CA certificate (PEM) the OVSDB server's certificate must chain to.
    #[arg(long, env = "OCTOPUS_OVSDB_CA_CERT")]
    ovsdb_ca_cert: Option<PathBuf>,
}

impl ServicesArgs {
    fn config(self) -> anyhow::Result<ServicesConfig> {
        let ovn_nb = self
            .ovn_nb
            .map(|remote| {
                nauti_ovn::Endpoint::parse(&remote).with_context(|| {
                    format!("--ovn-nb {remote:?} is not unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT")
                })
            })
            .transpose()?;
        let tls = nauti_ovn::TlsArgs {
            private_key: self.ovsdb_private_key,
            certificate: self.ovsdb_certificate,
            ca_cert: self.ovsdb_ca_cert,
        }
        .files()
        .context("the OVSDB TLS files")?;
        if matches!(ovn_nb, Some(nauti_ovn::Endpoint::Ssl(_))) && tls.is_none() {
            anyhow::bail!(
                "an ssl: --ovn-nb needs --ovsdb-private-key, --ovsdb-certificate and --ovsdb-ca-cert"
            );
        }
        Ok(ServicesConfig {
            ovn_nb,
            ovn_nb_tls: tls,
            logical_switch: self.ovn_logical_switch,
        })
    }
}

/// Flags of `octopus member leave`.
#[derive(Debug, clap::Args)]
pub struct LeaveArgs {
    /// Kubeconfig of this member's own cluster; in-cluster configuration when absent.
    #[arg(long, env = "OCTOPUS_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Namespace (in this cluster) of the credential.
    #[arg(long, env = "OCTOPUS_NAMESPACE", default_value = "nauti-system")]
    namespace: String,
    /// Namespace of the Peers on the hub.
    #[arg(long, env = "OCTOPUS_HUB_NAMESPACE", default_value = DEFAULT_PEER_NAMESPACE)]
    hub_namespace: String,
    /// This cluster's ID.
    #[arg(long, env = "OCTOPUS_CLUSTER_ID")]
    cluster_id: String,
    /// Secret (in --namespace) holding the credential on the hub.
    #[arg(long, env = "OCTOPUS_CREDENTIAL_SECRET", default_value = CREDENTIAL_SECRET)]
    credential_secret: String,
    /// How long to wait for the hub to release this cluster's Peer (and, with
    /// --stop-deployment, for that Deployment's pods to go).
    #[arg(long, env = "OCTOPUS_LEAVE_TIMEOUT", default_value = "60s")]
    timeout: jiff::SignedDuration,
    /// Deployment (in --namespace) running `octopus member`: scaled to 0 replicas, and its pods
    /// waited out, before the Peer is deleted, so that it cannot publish the Peer again. A
    /// missing Deployment is skipped.
    #[arg(long, env = "OCTOPUS_STOP_DEPLOYMENT")]
    stop_deployment: Option<String>,
}

/// Flags of `octopus wg-device`.
#[derive(Debug, clap::Args)]
pub struct WgDeviceArgs {
    /// Interface name; also names the UAPI socket `/var/run/wireguard/<name>.sock`, which is
    /// machine-wide, so it must be unique on the machine.
    #[arg(long, env = "OCTOPUS_WG_INTERFACE")]
    interface: String,
    /// File holding the private key as `wg genkey` prints it.
    #[arg(long, env = "OCTOPUS_WG_PRIVATE_KEY_FILE")]
    private_key_file: PathBuf,
    /// UDP port to listen on.
    #[arg(long, env = "OCTOPUS_WG_LISTEN_PORT", default_value_t = nauti_api::peer::DEFAULT_WIREGUARD_PORT)]
    listen_port: u16,
    /// MTU of the interface (underlay minus WireGuard's 60 bytes over IPv4).
    #[arg(long, env = "OCTOPUS_WG_MTU", default_value_t = 1440)]
    mtu: u16,
}

/// Runs the chosen subcommand.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let _sink = args.log.init().context("set up logging")?;
    match args.command {
        Command::WgDevice(wg) => wg_device(wg).await,
        Command::Hub(hub_args) => match *hub_args {
            HubArgs {
                action: Some(HubAction::IssueToken(issue)),
                ..
            } => issue_token(issue).await,
            HubArgs { action: None, run } => hub(run).await,
        },
        Command::Member(member_args) => match *member_args {
            MemberArgs {
                action: Some(MemberAction::Leave(leave)),
                ..
            } => member_leave(leave).await,
            MemberArgs { action: None, run } => member(run).await,
        },
        Command::Gateway(gateway_args) => gateway(*gateway_args).await,
        Command::Routes(routes) => {
            let found = crate::routes::read(&routes.interface)
                .await
                .with_context(|| format!("list the routes of {}", routes.interface))?;
            writeln!(std::io::stdout(), "{}", found.to_json()).context("write to stdout")
        }
    }
}

fn std_duration(flag: &str, d: jiff::SignedDuration) -> anyhow::Result<Duration> {
    Duration::try_from(d).with_context(|| format!("{flag} {d:#} must not be negative"))
}

/// A flag clap already required (`required = true` is lifted only for the subcommands).
fn required<T>(value: Option<T>, flag: &str) -> anyhow::Result<T> {
    value.with_context(|| format!("{flag} is required"))
}

/// A cluster ID names a Peer, a namespace and a certificate: a DNS-1123 label.
fn cluster_id(value: Option<String>) -> anyhow::Result<String> {
    let id = required(value, "--cluster-id")?;
    nauti_api::core::names::validate_dns1123_label(&id)
        .with_context(|| format!("--cluster-id {id:?}"))?;
    Ok(id)
}

async fn hub(args: HubRunArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signals().context("install signal handlers")?;
    let policy = args.slices.policy()?;
    let gateway = args.data_path.gateway(&policy)?;
    let pod_name = args.lease.pod_name();
    let lease = gateway_lease(
        args.lease.settings(DEFAULT_HUB_LEASE, &args.namespace)?,
        gateway.is_some(),
    );
    let config = HubConfig {
        kubeconfig: args.kubeconfig,
        owner: args.owner,
        namespace: args.namespace,
        cluster_id: cluster_id(args.cluster_id)?,
        gateway,
        policy,
        endpoint: required(args.endpoint, "--endpoint")?,
        port: args.wg_port,
        requested: args.cluster_cidr,
        key_secret: args.wg_key_secret,
        metrics_addr: args.metrics_addr,
        lease,
        pod_name,
    };
    crate::controller::hub::run(config, shutdown).await
}

/// A replica running the tunnel keeps leading while its API server does not answer: an API
/// outage stops changes, never traffic.
fn gateway_lease(lease: LeaseSettings, runs_tunnel: bool) -> LeaseSettings {
    if runs_tunnel {
        lease.keeping_while_unreachable()
    } else {
        lease
    }
}

/// What `octopus hub issue-token` prints.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct IssuedToken {
    token: String,
    expiration: String,
    #[serde(rename = "hubURL")]
    hub_url: String,
    #[serde(rename = "hubCA")]
    hub_ca: String,
}

async fn issue_token(args: IssueTokenArgs) -> anyhow::Result<()> {
    let ttl = std_duration("--ttl", args.ttl)?;
    let config = match &args.kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("load kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig given and no in-cluster service account")?,
    };
    let hub_url = args.hub_url.clone().unwrap_or_else(|| {
        config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned()
    });
    let hub_ca = match &args.hub_ca_file {
        Some(path) => read_text(path)?,
        None => config
            .root_cert
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|der| pem("CERTIFICATE", der))
            .collect(),
    };
    anyhow::ensure!(
        !hub_ca.is_empty(),
        "the kubeconfig names no CA for the hub; pass --hub-ca-file"
    );
    let client = kube::Client::try_from(config).context("build the Kubernetes client")?;
    let token = tokens::issue_token(client, ttl).await?;
    let expiration = jiff::Timestamp::now()
        .checked_add(args.ttl)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let out = IssuedToken {
        token: token.to_string(),
        expiration,
        hub_url,
        hub_ca,
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &out)?;
    writeln!(stdout)?;
    Ok(())
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

async fn member(args: MemberRunArgs) -> anyhow::Result<()> {
    let token_text = match (&args.token_file, &args.token) {
        (Some(path), _) => Some(read_text(path)?),
        (None, Some(text)) => Some(text.clone()),
        (None, None) => None,
    };
    let token = token_text
        .map(|t| t.parse::<BootstrapToken>())
        .transpose()
        .context("the bootstrap token")?;
    let hub_ca_file = required(args.hub_ca_file, "--hub-ca-file")?;
    let policy = args.slices.policy()?;
    let pod_name = args.lease.pod_name();
    let lease = args.lease.settings(DEFAULT_MEMBER_LEASE, &args.namespace)?;
    let gateway = args.data_path.gateway(&policy)?;
    let lease = gateway_lease(lease, gateway.is_some());
    let services = args.services.config()?;
    let cluster_id = cluster_id(args.cluster_id)?;
    let claim = match (&gateway, &services.ovn_nb) {
        (Some(_), Some(nb)) => Some(ClaimConfig {
            nb: nb.clone(),
            tls: services.ovn_nb_tls.clone(),
            logical_switch: services
                .logical_switch
                .clone()
                .unwrap_or_else(|| format!("nauti-{cluster_id}")),
            pod_interface: args.pod_interface,
            global: policy.global(),
            pod_name: lease.identity.clone(),
        }),
        _ => None,
    };
    let config = MemberConfig {
        gateway,
        claim,
        kubeconfig: args.kubeconfig,
        namespace: args.namespace,
        hub_url: required(args.hub_url, "--hub-url")?,
        hub_ca_pem: read_text(&hub_ca_file)?,
        hub_namespace: args.hub_namespace,
        token,
        cluster_id,
        credential_secret: args.credential_secret,
        key_secret: args.wg_key_secret,
        endpoint: args.endpoint,
        port: args.wg_port,
        is_public: args.public,
        requested: args.cluster_cidr,
        policy,
        credential_lifetime: std_duration("--credential-lifetime", args.credential_lifetime)?,
        metrics_addr: args.metrics_addr,
        services,
        lease,
        pod_name,
        owner: args.owner,
    };
    let shutdown = shutdown_on_signals().context("install signal handlers")?;
    crate::controller::member::run(config, shutdown).await
}

async fn member_leave(args: LeaveArgs) -> anyhow::Result<()> {
    crate::controller::member::leave(LeaveConfig {
        kubeconfig: args.kubeconfig,
        namespace: args.namespace,
        hub_namespace: args.hub_namespace,
        cluster_id: args.cluster_id,
        credential_secret: args.credential_secret,
        timeout: std_duration("--timeout", args.timeout)?,
        stop_deployment: args.stop_deployment,
    })
    .await
}

fn read_private_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read the private key file {}", path.display()))?;
    parse_wireguard_key(text.trim()).with_context(|| {
        format!(
            "the private key in {} is not a WireGuard key",
            path.display()
        )
    })
}

async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let private_key = read_private_key(&args.private_key_file)?;
    let policy = args.slices.policy()?;
    let (gateway, mtu) = GatewayConfig::derive(&args.interface, args.underlay_mtu, &policy)
        .context("--underlay-mtu")?;
    tracing::info!(tunnel_mtu = mtu.tunnel_mtu, pod_mtu = mtu.pod_mtu, reason = %mtu.reason, "MTUs");
    let config = FileGatewayConfig {
        gateway,
        private_key,
        listen_port: args.wg_port,
        local: LocalRole {
            cluster_id: args.cluster_id,
            is_hub: args.hub,
            is_public: args.public || args.hub,
        },
        peers_file: args.peers_file,
        policy,
        joined: args.joined.map(|j| j.into_iter().collect()),
    };
    let shutdown = shutdown_on_signals().context("install signal handlers")?;
    crate::gateway::file::run(config, shutdown).await?;
    Ok(())
}

async fn wg_device(args: WgDeviceArgs) -> anyhow::Result<()> {
    let private_key = read_private_key(&args.private_key_file)?;
    let shutdown = shutdown_on_signals().context("install signal handlers")?;
    let device = Device::start(&DeviceConfig {
        ifname: args.interface.clone(),
        private_key,
        listen_port: args.listen_port,
        mtu: args.mtu,
    })?;
    device.serve_uapi(&args.interface)?;
    tracing::info!(public_key = %device.public_key(), "serving UAPI on {}", uapi::socket_path(&args.interface).display());
    shutdown.cancelled().await;
    let _ = std::fs::remove_file(uapi::socket_path(&args.interface));
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn every_flag_has_an_environment_twin() {
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_positional() {
                    continue;
                }
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                // The owner flag is every daemon's (nauti_api::daemon::owner), under one name.
                assert!(
                    env.as_deref()
                        .is_some_and(|e| e.starts_with("OCTOPUS_") || e == "NAUTI_OWNER_DEPLOYMENT"),
                    "{path} --{id}: {env:?}"
                );
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        let cmd = Args::command();
        for name in ["hub", "member"] {
            check(cmd.find_subcommand(name).unwrap(), name);
        }
    }

    #[test]
    fn defaults_and_subcommands_parse() {
        let args = Args::try_parse_from(["octopus", "hub", "issue-token", "--ttl", "2h"]).unwrap();
        let Command::Hub(hub_args) = args.command else {
            panic!("not hub");
        };
        let HubArgs {
            action: Some(HubAction::IssueToken(issue)),
            ..
        } = *hub_args
        else {
            panic!("not issue-token");
        };
        assert_eq!(issue.ttl, jiff::SignedDuration::from_hours(2));

        let args = Args::try_parse_from([
            "octopus",
            "hub",
            "--cluster-id",
            "hub",
            "--endpoint",
            "198.18.0.1",
        ])
        .unwrap();
        let Command::Hub(hub_args) = args.command else {
            panic!("not hub");
        };
        let HubArgs { action: None, run } = *hub_args else {
            panic!("not running the hub");
        };
        assert_eq!(run.namespace, "nauti-system");
        assert_eq!(run.slices.global_cidr, DEFAULT_GLOBAL_CIDR);
        assert_eq!(run.slices.slice_prefix, 16);
        assert_eq!(run.metrics_addr.to_string(), DEFAULT_METRICS_ADDR);
        let lease = run
            .lease
            .settings(DEFAULT_HUB_LEASE, &run.namespace)
            .unwrap();
        assert_eq!(lease.name, "octopus-hub");
        assert_eq!(lease.namespace, "nauti-system");
        assert_eq!(lease.duration, Duration::from_secs(15));
        assert_eq!(lease.renew_interval, Duration::from_secs(5));
        assert!(!lease.identity.is_empty());

        assert!(
            Args::try_parse_from(["octopus", "hub"]).is_err(),
            "--cluster-id is required"
        );
        assert!(
            Args::try_parse_from(["octopus", "member", "leave", "--cluster-id", "a"]).is_ok(),
            "leave needs no hub URL"
        );
        assert!(
            Args::try_parse_from(["octopus", "member", "--cluster-id", "a"]).is_err(),
            "running needs the hub URL"
        );

        let member = |extra: &[&str]| {
            let mut argv = vec![
                "octopus",
                "member",
                "--cluster-id",
                "a",
                "--hub-url",
                "https://198.18.0.1:6443",
                "--hub-ca-file",
                "/dev/null",
            ];
            argv.extend_from_slice(extra);
            let Command::Member(member_args) = Args::try_parse_from(argv).unwrap().command else {
                panic!("not member");
            };
            let MemberArgs { action: None, run } = *member_args else {
                panic!("not running the member");
            };
            run.lease
                .settings(DEFAULT_MEMBER_LEASE, &run.namespace)
                .unwrap()
        };
        let lease = member(&[]);
        assert_eq!(lease.name, "octopus-member");
        assert_eq!(lease.namespace, "nauti-system");
        assert_eq!(lease.duration, Duration::from_secs(15));
        let lease = member(&["--namespace", "gw-system", "--lease-duration", "9s"]);
        assert_eq!(lease.name, "octopus-member");
        assert_eq!(
            lease.namespace, "gw-system",
            "the Lease follows --namespace"
        );
        assert_eq!(lease.duration, Duration::from_secs(9));
    }

    #[test]
    fn a_leave_stops_a_deployment_only_when_named() {
        let leave = |extra: &[&str]| {
            let mut argv = vec!["octopus", "member", "leave", "--cluster-id", "a"];
            argv.extend_from_slice(extra);
            let Command::Member(member_args) = Args::try_parse_from(argv).unwrap().command else {
                panic!("not member");
            };
            let MemberArgs {
                action: Some(MemberAction::Leave(leave)),
                ..
            } = *member_args
            else {
                panic!("not leaving");
            };
            leave
        };
        assert_eq!(leave(&[]).stop_deployment, None);
        assert_eq!(
            leave(&["--stop-deployment", "octopus-member"])
                .stop_deployment
                .as_deref(),
            Some("octopus-member")
        );
    }

    #[test]
    fn pem_wraps_at_64_columns() {
        let text = pem("CERTIFICATE", &[0u8; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
    }
}
