//! Value sets, `helm lint --strict` of the good ones, and the messages of the bad ones.

use std::path::Path;

use nauti_testbed::TestDir;
use nauti_testbed::pki::TestCa;

use crate::helm::{AGENT_CHART, HUB_CHART, Helm};

/// The seed's token shape.
pub const TOKEN: &str = "re51os.131tn13kek2iaqoz";

fn set(pairs: &[&str]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|p| ["--set".to_owned(), (*p).to_owned()])
        .collect()
}

/// Hub value sets that must lint and render: the seed's command first.
pub fn hub_good() -> Vec<(&'static str, Vec<String>)> {
    vec![
        (
            "seed",
            set(&[
                "tunnel.endpoint=10.115.217.212",
                "tunnel.cidr=10.112.0.0/12",
            ]),
        ),
        (
            "host name, own hub URL, no expiry, another cluster ID and slice",
            set(&[
                "tunnel.endpoint=hub.example.org",
                "hub.hubURL=https://api.hub.example.org:443",
                "bootstrapToken.ttl=",
                "cluster.clusterID=hub-1",
                "cluster.clusterCIDR=10.112.0.0/16",
                "tunnel.cidr=10.112.0.0/12",
                "tunnel.port=4500",
                "gateway.enabled=false",
            ]),
        ),
        (
            "IPv6 global network, no token (GitOps)",
            set(&[
                "tunnel.endpoint=2001:db8::10",
                "tunnel.cidr=fd00:112::/48",
                "tunnel.slicePrefix=64",
                "bootstrapToken.enabled=false",
                "images.tag=v0.1.0",
                "octopus.image.repository=registry.example.org/nauti/octopus",
                "gateway.service.type=ClusterIP",
                "gateway.service.externalIPs={2001:db8::10}",
            ]),
        ),
    ]
}

/// The PEM of a CA, written into the test's folder for `--set-file hub.caCert=...`.
pub fn write_ca(dir: &TestDir) -> String {
    let ca = TestCa::new("charts-test-hub-ca").unwrap();
    let path = dir.path().join("hub-ca.crt");
    std::fs::write(&path, &ca.cert_pem).unwrap();
    path.display().to_string()
}

/// The seed's member values plus the token and CA the hub's install prints.
pub fn agent_seed(ca_file: &Path, cluster_id: &str) -> Vec<String> {
    let mut values = set(&[
        "hub.hubURL=https://10.115.217.212:6443",
        &format!("cluster.clusterID={cluster_id}"),
        &format!("hub.bootstrapToken={TOKEN}"),
    ]);
    values.extend([
        "--set-file".to_owned(),
        format!("hub.caCert={}", ca_file.display()),
    ]);
    values
}

/// Member value sets that must lint and render.
pub fn agent_good(ca_file: &Path) -> Vec<(&'static str, Vec<String>)> {
    let with = |extra: &[&str]| {
        let mut v = agent_seed(ca_file, "cluster1");
        v.extend(set(extra));
        v
    };
    vec![
        ("seed", agent_seed(ca_file, "cluster1")),
        (
            "existing OVN and the nodes' own Open vSwitch",
            with(&[
                "ovn.northbound=tcp:10.0.0.5:6641",
                "ovn.southbound=tcp:10.0.0.5:6642",
                "ovn.central.enabled=false",
                "ovn.chassis.enabled=false",
            ]),
        ),
        (
            "public member with its own slice, fixed crossdns IP, userspace datapath, no hooks",
            with(&[
                "tunnel.endpoint=203.0.113.7",
                "tunnel.public=true",
                "tunnel.port=31820",
                "cluster.clusterCIDR=10.113.0.0/16",
                "crossdns.service.clusterIP=10.96.0.11",
                "ovn.chassis.datapathType=netdev",
                "ovn.central.storage.storageClassName=local-storage",
                "cleanup.enabled=false",
                "crossdns.wireCoreDNS=false",
                "nri.failurePolicy=ignore",
            ]),
        ),
        (
            "token and CA from an existing Secret (GitOps)",
            set(&[
                "hub.hubURL=https://hub.example.org:6443",
                "cluster.clusterID=cluster2",
                "hub.existingSecret=nauti-hub-join",
            ]),
        ),
        (
            "node paths of their own (k3s's containerd, Open vSwitch under /run)",
            with(&[
                "nri.socketPath=/run/k3s/containerd/nri/nri.sock",
                "nri.netnsDir=/run/netns",
                "ovs.runDir=/run/openvswitch",
                "ovs.dbSocket=conf.sock",
            ]),
        ),
    ]
}

#[test]
fn both_charts_lint_strict_with_every_good_value_set() {
    let dir = TestDir::new("charts-lint").unwrap();
    let helm = Helm::new(&dir);
    let ca = write_ca(&dir);
    let mut linted = 0;
    for (chart, sets) in [
        (HUB_CHART, hub_good()),
        (AGENT_CHART, agent_good(Path::new(&ca))),
    ] {
        for (name, values) in sets {
            let mut args = vec!["lint", "--strict", chart];
            args.extend(values.iter().map(String::as_str));
            let out = helm.ok(&args);
            assert!(
                out.contains("1 chart(s) linted, 0 chart(s) failed"),
                "{chart} ({name}):\n{out}"
            );
            linted += 1;
        }
    }
    assert_eq!(linted, 8);
}

/// A value set that must be refused, and what the refusal must say.
struct Bad {
    chart: &'static str,
    values: Vec<String>,
    message: &'static str,
}

#[test]
fn bad_values_are_refused_with_a_message_naming_the_value() {
    let dir = TestDir::new("charts-bad-values").unwrap();
    let helm = Helm::new(&dir);
    let ca = write_ca(&dir);
    let ca = Path::new(&ca);
    let agent = |extra: &[&str]| {
        let mut v = agent_seed(ca, "cluster1");
        v.extend(set(extra));
        v
    };
    let cases = [
        Bad {
            chart: HUB_CHART,
            values: set(&["tunnel.cidr=10.112.0.0/12"]),
            message: "at '/tunnel': missing property 'endpoint'",
        },
        Bad {
            chart: HUB_CHART,
            values: set(&[
                "tunnel.endpoint=10.115.217.212",
                "tunnel.cidr=10.112.0.0/33",
            ]),
            message: "at '/tunnel/cidr': '10.112.0.0/33' does not match pattern",
        },
        Bad {
            chart: HUB_CHART,
            values: set(&["tunnel.endpoint=10.115.217.212", "tunnel.cidr=10.112.0.0"]),
            message: "at '/tunnel/cidr': '10.112.0.0' does not match pattern",
        },
        Bad {
            chart: HUB_CHART,
            values: set(&[
                "tunnel.endpoint=10.115.217.212",
                "tunnel.cidr=10.300.0.0/12",
            ]),
            message: "at '/tunnel/cidr': '10.300.0.0/12' does not match pattern",
        },
        Bad {
            chart: HUB_CHART,
            values: set(&["tunnel.endpoint=10.115.217.212", "cluster.clusterID=Hub_1"]),
            message: "at '/cluster/clusterID': 'Hub_1' does not match pattern",
        },
        Bad {
            chart: HUB_CHART,
            values: set(&[
                "tunnel.endpoint=10.115.217.212",
                "hub.hubURL=http://10.115.217.212:6443",
            ]),
            message: "at '/hub/hubURL': 'http://10.115.217.212:6443' does not match pattern '^https://",
        },
        Bad {
            chart: HUB_CHART,
            values: set(&["tunnel.endpoint=https://10.115.217.212"]),
            message: "at '/tunnel/endpoint': 'https://10.115.217.212' does not match pattern",
        },
        Bad {
            chart: AGENT_CHART,
            values: agent(&["cluster.clusterID=Cluster1"]),
            message: "at '/cluster/clusterID': 'Cluster1' does not match pattern",
        },
        Bad {
            chart: AGENT_CHART,
            values: agent(&["cluster.clusterID=cluster.one"]),
            message: "at '/cluster/clusterID': 'cluster.one' does not match pattern",
        },
        Bad {
            chart: AGENT_CHART,
            values: agent(&[&format!("cluster.clusterID={}", "c".repeat(64))]),
            message: "at '/cluster/clusterID': 'cccc",
        },
        Bad {
            chart: AGENT_CHART,
            values: agent(&["hub.hubURL=http://10.115.217.212:6443"]),
            message: "at '/hub/hubURL': 'http://10.115.217.212:6443' does not match pattern '^https://",
        },
        Bad {
            chart: AGENT_CHART,
            values: agent(&["tunnel.cidr=10.112.0.0/12/3"]),
            message: "at '/tunnel/cidr': '10.112.0.0/12/3' does not match pattern",
        },
        Bad {
            chart: AGENT_CHART,
            values: set(&["hub.hubURL=https://10.115.217.212:6443"]),
            message: "at '/cluster': missing property 'clusterID'",
        },
        Bad {
            chart: AGENT_CHART,
            values: set(&["cluster.clusterID=cluster1"]),
            message: "at '/hub': missing property 'hubURL'",
        },
        Bad {
            chart: AGENT_CHART,
            values: agent(&["hub.bootstrapToken=re51os"]),
            message: "at '/hub/bootstrapToken'",
        },
        Bad {
            chart: AGENT_CHART,
            values: agent(&["ovs.runDir=run/openvswitch"]),
            message: "at '/ovs/runDir': 'run/openvswitch' does not match pattern '^/'",
        },
        Bad {
            chart: AGENT_CHART,
            values: agent(&["ovs.dbSocket=../db.sock"]),
            message: "at '/ovs/dbSocket': '../db.sock' does not match pattern",
        },
        Bad {
            chart: AGENT_CHART,
            values: agent(&["gateway.interface=nauti-wireguard0"]),
            message: "at '/gateway/interface': 'nauti-wireguard0' does not match pattern",
        },
        // Contradictions between values are the templates' to refuse.
        Bad {
            chart: AGENT_CHART,
            values: set(&[
                "hub.hubURL=https://10.115.217.212:6443",
                "cluster.clusterID=cluster1",
            ]),
            message: "nauti-agent: set hub.bootstrapToken and hub.caCert",
        },
        Bad {
            chart: AGENT_CHART,
            values: agent(&["ovn.northbound=tcp:10.0.0.5:6641"]),
            message: "nauti-agent: an existing OVN needs both ovn.northbound and ovn.southbound",
        },
        Bad {
            chart: AGENT_CHART,
            values: agent(&["tunnel.public=true"]),
            message: "nauti-agent: tunnel.public needs tunnel.endpoint",
        },
    ];
    for case in &cases {
        let mut args = vec!["template", "nauti-test", case.chart];
        args.extend(case.values.iter().map(String::as_str));
        let out = helm.fails(&args);
        assert!(
            out.contains(case.message),
            "{} {:?}: expected {:?} in:\n{out}",
            case.chart,
            case.values,
            case.message
        );
        // `helm lint` reports a template's `fail` as information; the schema's refusals fail it.
        if !case.message.starts_with("at '") {
            continue;
        }
        let mut lint = vec!["lint", "--strict", case.chart];
        lint.extend(case.values.iter().map(String::as_str));
        let out = helm.fails(&lint);
        assert!(
            out.contains("1 chart(s) failed"),
            "lint {} {:?}:\n{out}",
            case.chart,
            case.values
        );
    }
}
