//! What a cluster operator checks first: nodes, a Deployment, exec, a Service, DNS.

use std::time::{Duration, Instant};

use nauti_testbed::cluster_bed::Cluster;
use nauti_testbed::cluster_bed::images::{
    NGINX_IMAGE, TOOLS_IMAGE, nauti_archives_dir, nauti_image,
};

/// Every node of the cluster is registered and Ready.
pub fn every_node_is_ready(cluster: &Cluster, expected: usize) {
    let out = cluster
        .kubectl(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        ])
        .unwrap();
    let nodes: Vec<&str> = out.lines().collect();
    assert_eq!(nodes.len(), expected, "{}: nodes {nodes:?}", cluster.name);
    for node in nodes {
        assert!(
            node.ends_with("=True"),
            "{}: node not Ready: {node}",
            cluster.name
        );
    }
}

/// A Deployment of 4 nginx replicas spreads over both nodes and runs; `kubectl exec` works; the
/// Service answers through kube-proxy from a pod on the other node; CoreDNS resolves its name.
pub fn deployment_spreads_and_serves(cluster: &Cluster) {
    let name = &cluster.name;
    let labels = serde_json::json!({"app": "web"});
    cluster
        .apply(&serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "topologySpreadConstraints": [{
                            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": labels},
                        }],
                        "containers": [{"name": "nginx", "image": NGINX_IMAGE,
                                        "imagePullPolicy": "IfNotPresent",
                                        "ports": [{"containerPort": 80}]}],
                    },
                },
            },
        }))
        .unwrap();
    cluster
        .apply(&serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 80}]},
        }))
        .unwrap();
    cluster
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"])
        .unwrap_or_else(|e| panic!("{name}: web never rolled out: {e}"));

    let pods = cluster
        .kubectl(&[
            "get", "pods", "-l", "app=web", "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase}{\"\\n\"}{end}",
        ])
        .unwrap();
    let pods: Vec<(String, String, String)> = pods
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect();
    assert_eq!(pods.len(), 4, "{name}: pods {pods:?}");
    assert!(
        pods.iter().all(|p| p.2 == "Running"),
        "{name}: not all Running: {pods:?}"
    );
    let first_node = &cluster.nodes[0].name;
    let second_node = &cluster.nodes[1].name;
    let on = |node: &str| pods.iter().filter(|p| p.1 == node).count();
    assert_eq!(
        (on(first_node), on(second_node)),
        (2, 2),
        "{name}: not spread: {pods:?}"
    );

    // A client on the first node; the answer must come from a backend on the second.
    cluster
        .apply(&serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "client", "namespace": "default"},
            "spec": {
                "nodeName": first_node,
                "containers": [{"name": "tools", "image": TOOLS_IMAGE,
                                "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}],
            },
        }))
        .unwrap();
    cluster
        .kubectl(&[
            "wait",
            "--for=condition=Ready",
            "pod/client",
            "--timeout=60s",
        ])
        .unwrap_or_else(|e| panic!("{name}: client pod not ready: {e}"));
    let exec = cluster
        .kubectl(&["exec", "client", "--", "cat", "/etc/hostname"])
        .unwrap_or_else(|e| panic!("{name}: kubectl exec failed: {e}"));
    assert_eq!(exec.trim(), "client", "{name}: exec ran elsewhere");
    let cluster_ip = cluster
        .kubectl(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"])
        .unwrap();
    let remote: Vec<&str> = pods
        .iter()
        .filter(|p| &p.1 == second_node)
        .map(|p| p.0.as_str())
        .collect();
    let url = format!("http://{cluster_ip}/hostname");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answers = Vec::new();
    while Instant::now() < deadline {
        let answer = cluster
            .kubectl(&["exec", "client", "--", "curl", "-sf", "-m", "3", &url])
            .unwrap_or_default();
        let answer = answer.trim().to_owned();
        if remote.contains(&answer.as_str()) {
            answers.push(answer);
            break;
        }
        answers.push(answer);
    }
    assert!(
        answers.iter().any(|a| remote.contains(&a.as_str())),
        "{name}: no answer from a backend on {second_node} through {cluster_ip}: {answers:?}"
    );
    let page = cluster
        .kubectl(&[
            "exec",
            "client",
            "--",
            "curl",
            "-sf",
            "-m",
            "3",
            &format!("http://{cluster_ip}/"),
        ])
        .unwrap();
    assert!(page.contains("Welcome to nginx"), "{name}: page {page}");

    let fqdn = "web.default.svc.cluster.local";
    let resolved = cluster
        .kubectl(&[
            "exec", "client", "--", "dig", "+short", "+time=2", "+tries=3", fqdn,
        ])
        .unwrap_or_else(|e| panic!("{name}: dig {fqdn} failed: {e}"));
    assert_eq!(
        resolved.trim(),
        cluster_ip,
        "{name}: {fqdn} resolved to {resolved:?}"
    );
}

/// Once `tests/peers/build-nauti-images.sh` has built Nauti's images (`make test` does, before the
/// tests), every node has them: a pod of `nauti-nri` runs its `--help` to completion. Without
/// them the check fails under `NAUTI_REQUIRE_ROOT=1` and is skipped loudly elsewhere.
pub fn nauti_image_runs(cluster: &Cluster) {
    if !nauti_archives_dir().join("nauti-nri.oci.tar").is_file() {
        let missing = format!(
            "no Nauti images in {} (tests/peers/build-nauti-images.sh builds them)",
            nauti_archives_dir().display()
        );
        assert!(!nauti_testbed::root::root_required(), "{missing}");
        eprintln!("not checked: {missing}");
        return;
    }
    let name = &cluster.name;
    cluster
        .apply(&serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "nauti-nri-help", "namespace": "default"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "nri", "image": nauti_image("nauti-nri"),
                                "imagePullPolicy": "IfNotPresent", "args": ["--help"]}],
            },
        }))
        .unwrap();
    cluster
        .kubectl(&[
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "pod/nauti-nri-help",
            "--timeout=60s",
        ])
        .unwrap_or_else(|e| panic!("{name}: the nauti-nri image did not run: {e}"));
    let logs = cluster.kubectl(&["logs", "nauti-nri-help"]).unwrap();
    assert!(
        logs.contains("Usage: nauti-nri"),
        "{name}: nauti-nri printed {logs}"
    );
}
