//! The service half on the bed: crossdns as a pod of a member (this build's binary mounted into
//! the tools image, as octopus is), the seed's nginx example, and the client side of a test:
//! `dig` and `curl` from a pod, the endpoints a name must answer with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nauti_testbed::cluster_bed::Cluster;
use nauti_testbed::cluster_bed::images::{NGINX_IMAGE, TOOLS_IMAGE};
use serde_json::{Value, json};

use crate::cluster::{Member, NAMESPACE};

/// Labels of the nginx example's pods.
pub const NGINX_LABEL: &str = "app=nginx";
const CROSSDNS_METRICS_PORT: u16 = 9465;

/// The crossdns binary of this build, beside octopus's.
fn crossdns_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_octopus")).with_file_name("crossdns");
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p nauti-crossdns --bins`)",
        path.display()
    );
    path
}

/// Polls `attempt` every 500 ms until it gives a value or `timeout` passes; then panics with
/// its last error and what `diagnostics` gathers.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    diagnostics: &dyn Fn() -> String,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        let last = match attempt() {
            Ok(value) => return value,
            Err(error) => error,
        };
        if start.elapsed() >= timeout {
            panic!(
                "timed out after {timeout:?}: {what}\nlast: {last}\n{}",
                diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until the member's CNF (`octopus-member`) has a ready pod: the leader, joined, its
/// services sync started. (Written here so that this test depends on no more of
/// `crosscluster/cluster.rs` than installing the bed.)
pub fn wait_cnf_ready(cluster: &Cluster) {
    eventually(
        &format!("{}: octopus-member ready", cluster.name),
        Duration::from_secs(180),
        &|| {
            cluster
                .kubectl(&["get", "pods", "-A", "-o", "wide"])
                .unwrap_or_default()
        },
        || {
            let ready = cluster
                .kubectl(&[
                    "get",
                    "deployment",
                    "-n",
                    NAMESPACE,
                    "octopus-member",
                    "-o",
                    "jsonpath={.status.readyReplicas}",
                ])
                .map_err(|e| e.to_string())?;
            (ready.trim() == "1").then_some(()).ok_or(ready)
        },
    );
}

/// The MCS CRDs on the hub: each member publishes its exports there as ServiceImports and
/// EndpointSlices in its own namespace (`--test crosscluster` installs only the Peers).
pub fn install_hub_mcs_crds(hub: &Cluster) {
    for crd in [
        "serviceexports.multicluster.x-k8s.io.yaml",
        "serviceimports.multicluster.x-k8s.io.yaml",
    ] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/crds")
            .join(crd);
        hub.kubectl(&["apply", "--server-side", "-f", &path.display().to_string()])
            .unwrap_or_else(|e| panic!("hub: apply {crd}: {e}"));
    }
}

/// crossdns in `cluster` under the ServiceAccount and RBAC of deploy/rbac/crossdns.yaml, behind
/// a Service; returns the Service's cluster IP.
pub fn deploy_crossdns(cluster: &Cluster) -> String {
    let rbac = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac/crossdns.yaml");
    cluster
        .kubectl(&["apply", "--server-side", "-f", &rbac.display().to_string()])
        .unwrap_or_else(|e| panic!("{}: apply crossdns RBAC: {e}", cluster.name));
    let binary = crossdns_binary();
    let labels = json!({"app": "crossdns"});
    let container = json!({
        "name": "crossdns", "image": TOOLS_IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["/nauti/crossdns"],
        "env": [
            {"name": "NAUTI_DNS_ADDR", "value": "0.0.0.0:53"},
            {"name": "NAUTI_METRICS_ADDR", "value": format!("0.0.0.0:{CROSSDNS_METRICS_PORT}")},
            {"name": "NAUTI_UDP_SOCKETS", "value": "1"},
        ],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
        ],
        "volumeMounts": [{"name": "bin", "mountPath": "/nauti", "readOnly": true}],
        // Ready after its first full sync: before it, queries get SERVFAIL.
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": CROSSDNS_METRICS_PORT},
                           "periodSeconds": 1},
    });
    cluster
        .apply(&json!({
            "apiVersion": "v1", "kind": "List",
            "items": [
                {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "crossdns", "namespace": NAMESPACE},
                 "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {
                        "serviceAccountName": "crossdns",
                        "terminationGracePeriodSeconds": 2,
                        "containers": [container],
                        "volumes": [{"name": "bin", "hostPath": {
                            "path": binary.parent().unwrap(), "type": "Directory"}}],
                    }},
                 }},
                {"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "crossdns", "namespace": NAMESPACE},
                 "spec": {"selector": labels, "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                 ]}},
            ],
        }))
        .unwrap();
    cluster
        .kubectl(&[
            "rollout",
            "status",
            "-n",
            NAMESPACE,
            "deployment/crossdns",
            "--timeout=120s",
        ])
        .unwrap_or_else(|e| {
            panic!(
                "{}: crossdns never became ready: {e}\n{}",
                cluster.name,
                crossdns_log(cluster)
            )
        });
    cluster
        .kubectl(&[
            "get",
            "service",
            "-n",
            NAMESPACE,
            "crossdns",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .unwrap()
        .trim()
        .to_owned()
}

/// `crossdns <command> ...` run inside the crossdns pod, under its own ServiceAccount.
pub fn crossdns_command(cluster: &Cluster, command: &[&str]) -> Result<String, String> {
    let mut args = vec![
        "exec",
        "-n",
        NAMESPACE,
        "deployment/crossdns",
        "--",
        "/nauti/crossdns",
    ];
    args.extend(command);
    cluster.kubectl(&args).map_err(|e| e.to_string())
}

/// The cluster's Corefile.
pub fn corefile(cluster: &Cluster) -> String {
    cluster
        .kubectl(&[
            "get",
            "configmap",
            "-n",
            "kube-system",
            "coredns",
            "-o",
            "jsonpath={.data.Corefile}",
        ])
        .unwrap()
}

pub fn crossdns_log(cluster: &Cluster) -> String {
    cluster
        .kubectl(&["logs", "-n", NAMESPACE, "deployment/crossdns", "--tail=60"])
        .unwrap_or_else(|e| e.to_string())
}

/// The seed's `examples/nginx-deploy.yaml` (Deployment `nginx-app`, Service `nginx-svc` on port
/// 80), with the bed's nginx image (its `/hostname` names the serving pod) and a
/// `multicluster.x-k8s.io/v1beta1` ServiceExport of the Service.
pub fn deploy_exported_nginx(cluster: &Cluster, replicas: u32) {
    let labels = json!({"app": "nginx"});
    cluster
        .apply(&json!({
            "apiVersion": "v1", "kind": "List",
            "items": [
                {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "nginx-app", "namespace": "default"},
                 "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {
                        "terminationGracePeriodSeconds": 2,
                        "containers": [{"name": "nginx", "image": NGINX_IMAGE,
                                        "imagePullPolicy": "IfNotPresent",
                                        "ports": [{"containerPort": 80}]}],
                    }},
                 }},
                {"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "nginx-svc", "namespace": "default"},
                 "spec": {"selector": labels, "ports": [
                    {"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"},
                 ]}},
                {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
                 "metadata": {"name": "nginx-svc", "namespace": "default"}},
            ],
        }))
        .unwrap();
}

/// The ready, not terminating pods of the nginx example: (names, `nauti.io/ip_address`es).
/// A pod without its address yet counts as not ready.
pub fn ready_nginx(cluster: &Cluster) -> (BTreeSet<String>, BTreeSet<String>) {
    let pods = ready_pods(cluster, NGINX_LABEL);
    (
        pods.keys().cloned().collect(),
        pods.values().cloned().collect(),
    )
}

/// The ready, not terminating pods with `label`: name -> `nauti.io/ip_address` (without a
/// prefix length). A pod without its address yet counts as not ready.
pub fn ready_pods(cluster: &Cluster, label: &str) -> BTreeMap<String, String> {
    let out = cluster
        .kubectl(&["get", "pods", "-l", label, "-o", "json"])
        .unwrap_or_default();
    let list: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    let mut pods = BTreeMap::new();
    for pod in list["items"].as_array().into_iter().flatten() {
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let address = pod["metadata"]["annotations"]["nauti.io/ip_address"].as_str();
        if !ready || pod["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        if let Some(address) = address {
            // The annotation may carry a prefix length.
            let ip = address.split('/').next().unwrap_or(address);
            pods.insert(
                pod["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                ip.to_owned(),
            );
        }
    }
    pods
}

/// What `dig` said: the rcode and the answer section's (type, data) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigAnswer {
    pub status: String,
    pub answers: Vec<(String, String)>,
}

impl DigAnswer {
    /// The data of the answers of one type, as a set.
    pub fn of_type(&self, record_type: &str) -> BTreeSet<String> {
        self.answers
            .iter()
            .filter(|(t, _)| t == record_type)
            .map(|(_, data)| data.clone())
            .collect()
    }
}

/// Parses `dig +noall +comments +answer`.
pub fn parse_dig(text: &str) -> Option<DigAnswer> {
    let status = text.lines().find_map(|line| {
        let (_, rest) = line.split_once("status: ")?;
        Some(rest.split(',').next()?.trim().to_owned())
    })?;
    let answers = text
        .lines()
        .filter(|line| !line.starts_with(';') && !line.trim().is_empty())
        .filter_map(|line| {
            // name TTL class type data...
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 5).then(|| (fields[3].to_owned(), fields[4..].join(" ")))
        })
        .collect();
    Some(DigAnswer { status, answers })
}

/// `dig` from `pod` against `server` (no retries: the caller polls).
pub fn dig(
    member: &Member<'_>,
    pod: &str,
    server: &str,
    name: &str,
    record_type: &str,
) -> Result<DigAnswer, String> {
    let out = member.exec(
        pod,
        &[
            "dig",
            "+noall",
            "+comments",
            "+answer",
            "+time=2",
            "+tries=1",
            &format!("@{server}"),
            name,
            record_type,
        ],
    )?;
    parse_dig(&out).ok_or_else(|| format!("dig printed no status:\n{out}"))
}

/// The nameserver of the pod's resolv.conf (the cluster's CoreDNS).
pub fn pod_nameserver(member: &Member<'_>, pod: &str) -> String {
    let resolv = member.exec(pod, &["cat", "/etc/resolv.conf"]).unwrap();
    resolv
        .lines()
        .find_map(|l| l.strip_prefix("nameserver ").map(|s| s.trim().to_owned()))
        .unwrap_or_else(|| panic!("no nameserver in {pod}'s resolv.conf:\n{resolv}"))
}

/// `curl` of `url` from `pod`: the body.
pub fn curl(member: &Member<'_>, pod: &str, url: &str) -> Result<String, String> {
    member.exec(pod, &["curl", "-sS", "-m", "5", url])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dig_output_is_read_as_status_and_typed_answers() {
        let text = ";; Got answer:\n\
            ;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4242\n\
            ;; flags: qr aa rd; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 1\n\
            \n\
            nginx-svc.default.svc.hyperos.local. 5 IN A\t10.113.0.5\n\
            nginx-svc.default.svc.hyperos.local. 5 IN A\t10.113.0.6\n\
            _http._tcp.nginx-svc.default.svc.clusterset.local. 5 IN SRV 0 100 80 nginx-svc.default.svc.clusterset.local.\n";
        let answer = parse_dig(text).unwrap();
        assert_eq!(answer.status, "NOERROR");
        assert_eq!(
            answer.of_type("A"),
            BTreeSet::from(["10.113.0.5".to_owned(), "10.113.0.6".to_owned()])
        );
        assert_eq!(
            answer.of_type("SRV"),
            BTreeSet::from(["0 100 80 nginx-svc.default.svc.clusterset.local.".to_owned()])
        );
        let missing =
            parse_dig(";; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 1\n").unwrap();
        assert_eq!(missing.status, "NXDOMAIN");
        assert!(missing.answers.is_empty());
        assert_eq!(
            parse_dig(";; connection timed out; no servers could be reached\n"),
            None
        );
    }
}
