//! The plugin's plumbing settings: flags with environment twins.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ipnet::IpNet;

/// What happens to a pod whose second NIC cannot be plumbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailurePolicy {
    /// The sandbox fails to start, with a message naming the cause (the default: a pod that
    /// silently lacks its NIC is worse than one that does not start).
    Fail,
    /// The pod starts without the NIC; the cause is logged and recorded as an Event on the pod.
    Ignore,
}

/// Flags of the pod plumbing (flattened into the `nauti-nri` command line).
#[derive(Debug, Clone, clap::Args)]
pub struct PlumbingArgs {
    /// This node's name (the Node object that carries `nauti.io/node-cidr`).
    #[arg(long, env = "NAUTI_NODE_NAME")]
    pub node_name: Option<String>,
    /// The cluster ID; the logical switch is `nauti-<cluster-id>` unless set explicitly.
    #[arg(long, env = "NAUTI_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// The cluster's logical switch.
    #[arg(long, env = "NAUTI_LOGICAL_SWITCH")]
    pub logical_switch: Option<String>,
    /// The global network, routed through the gateway.
    #[arg(long, env = "NAUTI_GLOBAL_CIDR", default_value = "10.112.0.0/12")]
    pub global_cidr: IpNet,
    /// OVN northbound database, `unix:<path>`, `tcp:<host>:<port>` or `ssl:<host>:<port>`.
    #[arg(
        long,
        env = "NAUTI_OVN_NB",
        default_value = "unix:/var/run/ovn/ovnnb_db.sock"
    )]
    pub ovn_nb: String,
    /// The node's Open vSwitch database, `unix:<path>`, `tcp:<host>:<port>` or
    /// `ssl:<host>:<port>`.
    #[arg(
        long,
        env = "NAUTI_OVS_DB",
        default_value = "unix:/var/run/openvswitch/db.sock"
    )]
    pub ovs_db: String,
    /// Key, certificate and CA for the `ssl:` databases among the two.
    #[command(flatten)]
    pub ovsdb_tls: nauti_ovn::TlsArgs,
    /// The integration bridge.
    #[arg(long, env = "NAUTI_INTEGRATION_BRIDGE", default_value = "br-int")]
    pub integration_bridge: String,
    /// kubeconfig file; in-cluster configuration when absent.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The pod NIC's name.
    #[arg(long, env = "NAUTI_POD_IFNAME", default_value = "eth-nauti")]
    pub pod_ifname: String,
    /// The pod NIC's MTU; derived from the underlay MTU when absent.
    #[arg(long, env = "NAUTI_MTU")]
    pub mtu: Option<u16>,
    /// The node's underlay MTU; the pod NIC gets this minus geneve (58) and WireGuard (60).
    #[arg(long, env = "NAUTI_UNDERLAY_MTU", default_value_t = 1500)]
    pub underlay_mtu: u16,
    /// Leave TX checksum offload on in pods. Turn it off (the default) for OVS on the userspace
    /// datapath, where TCP otherwise fails with bad checksums.
    #[arg(long, env = "NAUTI_TX_CHECKSUM_OFFLOAD", default_value_t = false)]
    pub tx_checksum_offload: bool,
    /// Namespaces whose pods get no second NIC (comma-separated).
    #[arg(long, env = "NAUTI_OPT_OUT_NAMESPACES", value_delimiter = ',')]
    pub opt_out_namespaces: Vec<String>,
    /// Namespaces whose pods may ask (`nauti.io/forwarder: "true"`) for a port without port
    /// security: where the CNF (gateway) pods run (comma-separated).
    #[arg(
        long,
        env = "NAUTI_FORWARDER_NAMESPACES",
        value_delimiter = ',',
        default_value = "nauti-system"
    )]
    pub forwarder_namespaces: Vec<String>,
    /// What happens to a pod whose NIC cannot be plumbed.
    #[arg(long, env = "NAUTI_FAILURE_POLICY", value_enum, default_value = "fail")]
    pub failure_policy: FailurePolicy,
    /// How often the node's ports, OVS interfaces and links are compared with the runtime's
    /// sandboxes (besides after every `Synchronize`), in milliseconds.
    #[arg(long, env = "NAUTI_RECONCILE_INTERVAL_MS", default_value_t = 60_000)]
    pub reconcile_interval_ms: u64,
}

/// The settings after validation.
#[derive(Debug, Clone)]
pub struct PlumbingSettings {
    pub node_name: String,
    pub cluster_id: String,
    pub logical_switch: String,
    pub global_cidr: IpNet,
    pub ovn_nb: String,
    pub ovs_db: String,
    pub ovsdb_tls: Option<nauti_ovn::TlsFiles>,
    pub integration_bridge: String,
    pub kubeconfig: Option<PathBuf>,
    pub pod_ifname: String,
    pub mtu: u32,
    pub tx_checksum_offload: bool,
    pub opt_out_namespaces: BTreeSet<String>,
    pub forwarder_namespaces: BTreeSet<String>,
    pub failure_policy: FailurePolicy,
    pub reconcile_interval: std::time::Duration,
}

/// A setting that cannot work, named.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--cluster-id `{value}`: {reason}")]
    ClusterId { value: String, reason: String },
    #[error("--pod-ifname `{0}`: must be 1 to 15 bytes without `/` or whitespace")]
    PodIfname(String),
    #[error("--global-cidr {0}: host bits set (did you mean {1}?)")]
    GlobalCidr(IpNet, IpNet),
    #[error("MTU: {0}")]
    Mtu(#[from] nauti_api::MtuError),
    #[error("--node-name must not be empty")]
    NodeName,
    #[error(
        "{0} is required (a flag, its environment twin, or a key of the runtime's plugin configuration)"
    )]
    Missing(&'static str),
    #[error("plugin configuration from the runtime: {0}")]
    RuntimeConfig(String),
    #[error(transparent)]
    OvsdbTls(#[from] nauti_ovn::TlsError),
}

#[cfg(test)]
impl PlumbingArgs {
    /// Settings from plumbing flags alone, for unit tests.
    pub(crate) fn parse_settings(flags: &[&str]) -> PlumbingSettings {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            plumbing: PlumbingArgs,
        }
        let argv = std::iter::once("test").chain(flags.iter().copied());
        <Only as clap::Parser>::try_parse_from(argv)
            .unwrap()
            .plumbing
            .settings()
            .unwrap()
    }
}

impl PlumbingArgs {
    /// Validates the flags and derives what is not given.
    pub fn settings(self) -> Result<PlumbingSettings, SettingsError> {
        let cluster_id = self
            .cluster_id
            .clone()
            .ok_or(SettingsError::Missing("--cluster-id"))?;
        nauti_api::core::names::validate_dns1123_label(&cluster_id).map_err(|e| {
            SettingsError::ClusterId {
                value: cluster_id.clone(),
                reason: e.to_string(),
            }
        })?;
        let node_name = self
            .node_name
            .clone()
            .ok_or(SettingsError::Missing("--node-name"))?;
        if node_name.is_empty() {
            return Err(SettingsError::NodeName);
        }
        let name = &self.pod_ifname;
        if name.is_empty()
            || name.len() > crate::nic::IFNAME_MAX
            || name.contains('/')
            || name.chars().any(char::is_whitespace)
        {
            return Err(SettingsError::PodIfname(name.clone()));
        }
        if self.global_cidr.trunc() != self.global_cidr {
            return Err(SettingsError::GlobalCidr(
                self.global_cidr,
                self.global_cidr.trunc(),
            ));
        }
        let family = if self.global_cidr.addr().is_ipv4() {
            nauti_api::IpFamily::V4
        } else {
            nauti_api::IpFamily::V6
        };
        let mtu = nauti_api::MtuConfig {
            underlay_mtu: self.underlay_mtu,
            tunnel_family: nauti_api::IpFamily::V4,
            pod_mtu: self.mtu,
        }
        .pod_mtu(family)?;
        let ovsdb_tls = self.ovsdb_tls.files()?;
        Ok(PlumbingSettings {
            logical_switch: self
                .logical_switch
                .unwrap_or_else(|| format!("nauti-{cluster_id}")),
            node_name,
            cluster_id,
            global_cidr: self.global_cidr,
            ovn_nb: self.ovn_nb,
            ovs_db: self.ovs_db,
            ovsdb_tls,
            integration_bridge: self.integration_bridge,
            kubeconfig: self.kubeconfig,
            pod_ifname: self.pod_ifname,
            mtu: u32::from(mtu),
            tx_checksum_offload: self.tx_checksum_offload,
            opt_out_namespaces: self.opt_out_namespaces.into_iter().collect(),
            forwarder_namespaces: self
                .forwarder_namespaces
                .into_iter()
                .filter(|ns| !ns.is_empty())
                .collect(),
            failure_policy: self.failure_policy,
            reconcile_interval: std::time::Duration::from_millis(
                self.reconcile_interval_ms.max(100),
            ),
        })
    }
}

/// The plugin configuration a runtime passes in `Configure` (for a plugin it launches, the file
/// `<plugin_config_path>/<index>-<name>.conf`) as command-line flags: a YAML (or JSON) mapping
/// from flag names without the dashes to values, e.g.
///
/// ```yaml
/// node-name: node-1
/// cluster-id: east
/// ovn-nb: tcp:10.0.0.5:6641
/// opt-out-namespaces: [kube-system, monitoring]
/// tx-checksum-offload: true
/// ```
///
/// Scalars become `--key value`; `true` becomes `--key` alone and `false` or null leaves the
/// flag out; a list becomes one comma-separated value. Flags come in key order (the order of
/// flags does not matter to the parser). Empty text is no flags. Whether a key is
/// a known flag is left to the command-line parser, which names the unknown one.
pub fn runtime_config_flags(config: &str) -> Result<Vec<String>, SettingsError> {
    use serde_json::Value;
    let bad = |reason: String| SettingsError::RuntimeConfig(reason);
    if config.trim().is_empty() {
        return Ok(Vec::new());
    }
    let map = match serde_saphyr::from_str::<Value>(config).map_err(|e| bad(e.to_string()))? {
        Value::Object(map) => map,
        Value::Null => return Ok(Vec::new()),
        _ => return Err(bad("expected a mapping of flag names to values".into())),
    };
    let scalar = |key: &str, value: &Value| -> Result<String, SettingsError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(bad(format!(
                "`{key}`: expected a string, number or boolean"
            ))),
        }
    };
    let mut flags = Vec::new();
    for (key, value) in &map {
        if key.is_empty()
            || key.starts_with('-')
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(bad(format!(
                "key `{key}` is not a flag name (lower-case words joined by dashes)"
            )));
        }
        let flag = format!("--{key}");
        match value {
            Value::Null | Value::Bool(false) => {}
            Value::Bool(true) => flags.push(flag),
            Value::Array(items) => {
                let parts = items
                    .iter()
                    .map(|item| scalar(key, item))
                    .collect::<Result<Vec<_>, _>>()?;
                flags.push(format!("{flag}={}", parts.join(",")));
            }
            other => flags.push(format!("{flag}={}", scalar(key, other)?)),
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_becomes_flags() {
        let flags = runtime_config_flags(
            "node-name: node-1\ncluster-id: east\nunderlay-mtu: 9000\n\
             opt-out-namespaces: [kube-system, monitoring]\ntx-checksum-offload: true\n\
             log-only: false\nmtu: null\n",
        )
        .unwrap();
        assert_eq!(
            flags,
            [
                "--cluster-id=east",
                "--node-name=node-1",
                "--opt-out-namespaces=kube-system,monitoring",
                "--tx-checksum-offload",
                "--underlay-mtu=9000",
            ]
        );
    }

    #[test]
    fn json_and_empty_configurations_are_accepted() {
        assert_eq!(
            runtime_config_flags(r#"{"node-name": "n", "mtu": 1400}"#).unwrap(),
            ["--mtu=1400", "--node-name=n"]
        );
        assert!(runtime_config_flags("").unwrap().is_empty());
        assert!(runtime_config_flags("  \n").unwrap().is_empty());
        assert!(runtime_config_flags("~").unwrap().is_empty());
    }

    #[test]
    fn a_value_starting_with_dashes_stays_a_value() {
        // `--key=value` keeps a value like `--x` from being read as another flag.
        assert_eq!(
            runtime_config_flags("node-name: --log-only").unwrap(),
            ["--node-name=--log-only"]
        );
    }

    #[test]
    fn bad_configurations_are_named() {
        for (config, expect) in [
            ("[a, b]", "expected a mapping"),
            ("node-name: {a: b}", "`node-name`"),
            ("--node-name: x", "not a flag name"),
            ("Node_Name: x", "not a flag name"),
            ("node-name: [a, {b: c}]", "`node-name`"),
            ("node-name: 'unterminated", "plugin configuration"),
        ] {
            let err = runtime_config_flags(config).unwrap_err().to_string();
            assert!(err.contains(expect), "{config}: {err}");
            assert!(
                err.starts_with("plugin configuration from the runtime"),
                "{err}"
            );
        }
    }
}
