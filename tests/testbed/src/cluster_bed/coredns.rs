//! CoreDNS as clusters run it: a Deployment in `kube-system` behind the `kube-dns` Service, with
//! the read-only RBAC of the `system:coredns` ClusterRole. It answers for the cluster's domain
//! only: there is no upstream to forward to, and nothing may leave the machine.

use super::images::COREDNS_IMAGE;
use super::plan::{CLUSTER_DOMAIN, ClusterPlan};

/// The Corefile: the `kubernetes` plugin for the cluster domain and reverse zones, health and
/// readiness endpoints, a cache.
pub fn corefile() -> String {
    format!(
        ".:53 {{\n    errors\n    health :8080\n    ready :8181\n    \
         kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n        pods insecure\n        \
         fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n    }}\n    cache 30\n    loop\n    \
         reload\n    loadbalance\n}}\n"
    )
}

/// Every object of the DNS add-on, as one `List` for `kubectl apply`.
pub fn manifests(plan: &ClusterPlan) -> serde_json::Value {
    let labels = serde_json::json!({"k8s-app": "kube-dns"});
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "coredns", "namespace": "kube-system"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "system:coredns"},
             "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                 "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                 "verbs": ["list", "watch"]},
             ]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "system:coredns"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
             "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "coredns", "namespace": "kube-system"},
             "data": {"Corefile": corefile()}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
             "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        "dnsPolicy": "Default",
                        "containers": [{
                            "name": "coredns",
                            "image": COREDNS_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [
                                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                            ],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181},
                                               "periodSeconds": 2},
                            "livenessProbe": {"httpGet": {"path": "/health", "port": 8080},
                                              "periodSeconds": 10, "failureThreshold": 5},
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": true}],
                            "resources": {"requests": {"cpu": "10m", "memory": "20Mi"},
                                          "limits": {"memory": "100Mi"}},
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
             }},
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
             "spec": {
                "clusterIP": plan.dns_ip(),
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
             }},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_service_sits_at_the_planned_address() {
        let list = manifests(&ClusterPlan::new(1).unwrap());
        let service = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "Service")
            .unwrap();
        assert_eq!(service["spec"]["clusterIP"], "10.97.0.10");
    }

    #[test]
    fn the_corefile_has_no_upstream() {
        let text = corefile();
        assert!(text.contains("kubernetes cluster.local"));
        assert!(!text.contains("forward"));
    }
}
