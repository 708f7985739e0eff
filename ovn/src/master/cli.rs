//! The `nauti-ovnmaster` command line: flags (each with an environment twin), their checks, and
//! logging. The binary parses [`Args`] and hands them to [`super::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use nauti_api::NetworkConfig;
use nauti_api::daemon::LogArgs;
use nauti_api::daemon::owner::OwnerArgs;

use super::MasterError;
use super::core::ClusterNetwork;
use crate::client::{Endpoint, TlsArgs, TlsError, TlsFiles};
use nauti_api::daemon::election::{self, LeaseSetting, LeaseSettings};

/// The cluster controller of Nauti: the cluster's logical switch and gateway port in the OVN
/// northbound database, a block of the cluster subnet for each Node, and garbage collection
/// of the ports of deleted pods. Replicas elect a leader on a Lease; only the leader writes.
#[derive(Clone, Debug, Parser)]
#[command(name = "nauti-ovnmaster", version, about)]
pub struct Args {
    /// Kubeconfig file; without it the in-cluster service account or $KUBECONFIG is used.
    #[arg(long, env = "NAUTI_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// The OVN northbound database (`unix:PATH`, `tcp:HOST:PORT` or `ssl:HOST:PORT`).
    #[arg(
        long,
        env = "NAUTI_OVN_NB",
        default_value = "unix:/var/run/ovn/ovnnb_db.sock"
    )]
    pub ovn_nb: String,

    /// Key, certificate and CA for an `ssl:` northbound database.
    #[command(flatten)]
    pub ovsdb_tls: TlsArgs,

    /// This cluster's ID (a DNS-1123 label, the name of its Peer on the hub).
    #[arg(long, env = "NAUTI_CLUSTER_ID")]
    pub cluster_id: String,

    /// The whole multi-cluster network.
    #[arg(long, env = "NAUTI_GLOBAL_CIDR", default_value = "10.112.0.0/12")]
    pub global_cidr: IpNet,

    /// This cluster's slice of the global CIDR, as assigned by the hub.
    #[arg(long, env = "NAUTI_CLUSTER_SUBNET")]
    pub cluster_subnet: Option<IpNet>,

    /// Prefix length of each node's block of the cluster subnet.
    #[arg(long, env = "NAUTI_NODE_BLOCK_PREFIX", default_value_t = 24)]
    pub node_block_prefix: u8,

    /// Name of the cluster's logical switch (default `nauti-<cluster-id>`).
    #[arg(long, env = "NAUTI_LOGICAL_SWITCH")]
    pub logical_switch: Option<String>,

    /// How long a pod port must stay without its pod before it is removed (e.g. `60s`, `500ms`).
    #[arg(long, env = "NAUTI_GC_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub gc_grace: Duration,

    /// How often everything is reconciled even without a change being watched.
    #[arg(long, env = "NAUTI_RESYNC_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub resync_interval: Duration,

    /// Name of the Lease replicas elect their leader on.
    #[arg(long, env = "NAUTI_LEASE_NAME", default_value = "nauti-ovnmaster")]
    pub lease_name: String,

    /// Namespace of the Lease.
    #[arg(long, env = "NAUTI_LEASE_NAMESPACE", default_value = "nauti-system")]
    pub lease_namespace: String,

    /// How long a leader's lease lasts without renewal (whole seconds, at least 1s).
    #[arg(long, env = "NAUTI_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// How often the leader renews, and a standby looks at, the lease.
    #[arg(long, env = "NAUTI_LEASE_RENEW_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub lease_renew_interval: Duration,

    /// This replica's identity in the lease (default: $POD_NAME or the host name, plus a random
    /// suffix so a restarted replica never mistakes its predecessor's lease for its own).
    #[arg(long, env = "NAUTI_LEASE_IDENTITY")]
    pub lease_identity: Option<String>,

    /// Address of the HTTP endpoint serving `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "NAUTI_METRICS_ADDR", default_value = "0.0.0.0:9464")]
    pub metrics_addr: SocketAddr,

    /// The Deployment that owns this daemon's Lease.
    #[command(flatten)]
    pub owner: OwnerArgs,

    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Everything the controller needs, checked.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The cluster's network and names.
    pub network: ClusterNetwork,
    /// The northbound database.
    pub ovn_nb: Endpoint,
    /// Its TLS files, for `ssl:`.
    pub ovn_nb_tls: Option<TlsFiles>,
    /// Kubeconfig file, if not in-cluster / $KUBECONFIG.
    pub kubeconfig: Option<PathBuf>,
    /// Leader election.
    pub lease: LeaseSettings,
    /// Garbage-collection grace period.
    pub gc_grace: Duration,
    /// Periodic full reconcile.
    pub resync_interval: Duration,
    /// Metrics and health endpoint.
    pub metrics_addr: SocketAddr,
    /// The Deployment that owns the Lease.
    pub owner: OwnerArgs,
}

impl Args {
    /// Checks the flags and turns them into [`Settings`].
    pub fn settings(&self) -> Result<Settings, MasterError> {
        let mut config = NetworkConfig::new(&self.cluster_id);
        config.global_cidr = self.global_cidr;
        config.cluster_subnet = self.cluster_subnet;
        config.node_block_prefix_len = self.node_block_prefix;
        let network = ClusterNetwork::new(&config, self.logical_switch.clone())?;
        let ovn_nb = Endpoint::parse(&self.ovn_nb).ok_or_else(|| MasterError::BadEndpoint {
            value: self.ovn_nb.clone(),
        })?;
        let ovn_nb_tls = self.ovsdb_tls.files()?;
        if matches!(ovn_nb, Endpoint::Ssl(_)) && ovn_nb_tls.is_none() {
            return Err(TlsError::NotConfigured {
                endpoint: ovn_nb.to_string(),
            }
            .into());
        }
        let identity = self
            .lease_identity
            .clone()
            .unwrap_or_else(|| election::default_identity("nauti-ovnmaster"));
        let lease = LeaseSettings::new(
            &self.lease_name,
            &self.lease_namespace,
            identity,
            self.lease_duration,
            self.lease_renew_interval,
        )
        .map_err(|e| MasterError::BadFlag {
            flag: match e.setting {
                LeaseSetting::Duration => "--lease-duration",
                LeaseSetting::RenewInterval => "--lease-renew-interval",
                LeaseSetting::Identity => "--lease-identity",
            },
            reason: e.reason,
        })?;
        if self.resync_interval.is_zero() {
            return Err(MasterError::BadFlag {
                flag: "--resync-interval",
                reason: "must be longer than zero".into(),
            });
        }
        Ok(Settings {
            network,
            ovn_nb,
            ovn_nb_tls,
            kubeconfig: self.kubeconfig.clone(),
            lease,
            gc_grace: self.gc_grace,
            resync_interval: self.resync_interval,
            metrics_addr: self.metrics_addr,
            owner: self.owner.clone(),
        })
    }

    /// Installs the global tracing subscriber (stderr, text or JSON).
    pub fn init_tracing(&self) -> Result<(), MasterError> {
        self.log.init()?;
        Ok(())
    }
}

/// Parses `90s`, `1500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 500ms, 15s, 2m)"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        Args::try_parse_from(["nauti-ovnmaster"].iter().chain(extra)).unwrap()
    }

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").unwrap_err().contains("\"soon\""));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn defaults_follow_the_design() {
        let a = args(&[
            "--cluster-id",
            "member-1",
            "--cluster-subnet",
            "10.113.0.0/16",
        ]);
        let s = a.settings().unwrap();
        assert_eq!(s.network.switch, "nauti-member-1");
        assert_eq!(s.network.node_prefix, 24);
        assert_eq!(s.gc_grace, Duration::from_secs(60));
        assert_eq!(s.lease.name, "nauti-ovnmaster");
        assert_eq!(s.lease.namespace, "nauti-system");
        assert_eq!(s.lease.duration, Duration::from_secs(15));
        assert_eq!(s.lease.renew_interval, Duration::from_secs(5));
        assert_eq!(s.metrics_addr.port(), 9464);
        assert_eq!(
            s.ovn_nb,
            Endpoint::Unix("/var/run/ovn/ovnnb_db.sock".into())
        );
    }

    #[test]
    fn bad_flags_are_named_in_the_error() {
        let no_subnet = args(&["--cluster-id", "member-1"]).settings().unwrap_err();
        assert!(
            no_subnet.to_string().contains("--cluster-subnet"),
            "{no_subnet}"
        );
        let bad_nb = args(&[
            "--cluster-id",
            "member-1",
            "--cluster-subnet",
            "10.113.0.0/16",
            "--ovn-nb",
            "udp:x:1",
        ])
        .settings()
        .unwrap_err();
        assert!(bad_nb.to_string().contains("udp:x:1"), "{bad_nb}");
        let bad_lease = args(&[
            "--cluster-id",
            "member-1",
            "--cluster-subnet",
            "10.113.0.0/16",
            "--lease-duration",
            "2s",
            "--lease-renew-interval",
            "2s",
        ])
        .settings()
        .unwrap_err();
        assert!(
            bad_lease.to_string().contains("--lease-renew-interval"),
            "{bad_lease}"
        );
    }

    #[test]
    fn an_ssl_northbound_takes_the_three_tls_files() {
        let base = [
            "--cluster-id",
            "member-1",
            "--cluster-subnet",
            "10.113.0.0/16",
            "--ovn-nb",
            "ssl:ovn-central.example:6641",
        ];
        let bare = args(&base).settings().unwrap_err();
        assert!(
            matches!(bare, MasterError::Tls(TlsError::NotConfigured { .. })),
            "{bare}"
        );
        let partial = args(&[&base[..], &["--ovsdb-ca-cert", "/ca.pem"]].concat())
            .settings()
            .unwrap_err();
        assert!(
            partial.to_string().contains("--ovsdb-private-key"),
            "{partial}"
        );
        let full = [
            &base[..],
            &[
                "--ovsdb-private-key",
                "/k.pem",
                "--ovsdb-certificate",
                "/c.pem",
                "--ovsdb-ca-cert",
                "/ca.pem",
            ],
        ]
        .concat();
        let s = args(&full).settings().unwrap();
        assert_eq!(s.ovn_nb, Endpoint::Ssl("ovn-central.example:6641".into()));
        assert_eq!(
            s.ovn_nb_tls.map(|f| f.ca_cert),
            Some(PathBuf::from("/ca.pem"))
        );
    }

    #[test]
    fn every_flag_has_an_environment_twin() {
        use clap::CommandFactory as _;
        let command = Args::command();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("--{id} has no env twin"));
            assert!(
                env.to_string_lossy().starts_with("NAUTI_"),
                "--{id}: {env:?}"
            );
        }
    }

    #[test]
    fn identities_differ_between_incarnations() {
        assert_ne!(
            election::default_identity("x"),
            election::default_identity("x")
        );
    }
}
