//! The plugin's credential on the real API server: the ServiceAccount of `deploy/rbac/nri.yaml`
//! with a token bound to its pod on the node may change `nauti.io/*` annotations of pods on that
//! node and nothing else; the admission policy of that file refuses the rest with 403.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use nauti_testbed::kube_api::client_from;
use nauti_testbed::node_bed::NODE;
use nauti_testbed::require_root;

use crate::support::Bed;

const POLICY: &str = "ValidatingAdmissionPolicy 'nauti-nri-pod-writes'";
const ONLY_NAUTI_ANNOTATIONS: &str = "may change only nauti.io/* annotations of a pod";

/// Creates Pod `namespace/name`, scheduled to `node` (or to none), as an administrator.
async fn pod_on(bed: &Bed, namespace: &str, name: &str, node: Option<&str>) {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "sh", "image": nauti_testbed::containerd::BUSYBOX_IMAGE}],
        },
    }))
    .unwrap();
    Api::<Pod>::namespaced(bed.kube.client().await.unwrap(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

/// A merge patch of `namespace/name` as the identity of `kubeconfig` (the plugin writes merge
/// patches): the API server's answer.
async fn patch_as(
    kubeconfig: &std::path::Path,
    namespace: &str,
    name: &str,
    patch: serde_json::Value,
) -> Result<Pod, kube::core::Status> {
    patch_with(kubeconfig, namespace, name, Patch::Merge(patch)).await
}

async fn patch_with(
    kubeconfig: &std::path::Path,
    namespace: &str,
    name: &str,
    patch: Patch<serde_json::Value>,
) -> Result<Pod, kube::core::Status> {
    let client = client_from(kubeconfig).await.unwrap();
    Api::<Pod>::namespaced(client, namespace)
        .patch(name, &PatchParams::default(), &patch)
        .await
        .map_err(|error| match error {
            kube::Error::Api(status) => *status,
            other => panic!("not an answer of the API server: {other}"),
        })
}

/// Asserts a 403 from the plugin's admission policy whose message says `why`.
fn assert_refused(answer: Result<Pod, kube::core::Status>, what: &str, why: &str) {
    match answer {
        Ok(_) => panic!("{what}: allowed"),
        Err(status) => {
            assert_eq!(status.code, 403, "{what}: {status:?}");
            assert!(
                status.message.contains(POLICY),
                "{what}: {}",
                status.message
            );
            assert!(status.message.contains(why), "{what}: {}", status.message);
        }
    }
}

fn annotation(key: &str, value: &str) -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": {key: value}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_identity_changes_only_nauti_annotations_of_pods_on_its_node() {
    require_root!();
    let bed = crate::support::start_without_plugin("nri-credential").await;
    let plugin = bed.plugin_identity.kubeconfig.clone();
    pod_on(&bed, "default", "mine", Some(NODE)).await;
    pod_on(&bed, "default", "elsewhere", Some("node-2")).await;
    pod_on(&bed, "default", "unscheduled", None).await;
    bed.kube.create_namespace("kube-system").await.unwrap();
    pod_on(&bed, "kube-system", "proxy", Some(NODE)).await;

    // Allowed: its own annotations on a pod of its node, written, changed and removed.
    let patched = patch_as(
        &plugin,
        "default",
        "mine",
        annotation("nauti.io/ip-address", "10.112.1.9"),
    )
    .await
    .expect("a nauti.io annotation on a pod of the plugin's node");
    assert_eq!(
        patched.metadata.annotations.unwrap()["nauti.io/ip-address"],
        "10.112.1.9"
    );
    patch_as(
        &plugin,
        "default",
        "mine",
        serde_json::json!({"metadata": {"annotations": {"nauti.io/ip-address": null}}}),
    )
    .await
    .expect("removing a nauti.io annotation");

    assert_refused(
        patch_as(
            &plugin,
            "default",
            "mine",
            serde_json::json!({"metadata": {"labels": {"app": "hijacked"}}}),
        )
        .await,
        "a label change",
        ONLY_NAUTI_ANNOTATIONS,
    );
    assert_refused(
        // Strategic: merged into the container of that name, the one change pod validation lets
        // through on a running pod.
        patch_with(
            &plugin,
            "default",
            "mine",
            Patch::Strategic(
                serde_json::json!({"spec": {"containers": [{"name": "sh", "image": "evil:1"}]}}),
            ),
        )
        .await,
        "an image change",
        ONLY_NAUTI_ANNOTATIONS,
    );
    assert_refused(
        patch_as(
            &plugin,
            "default",
            "mine",
            annotation("example.com/owner", "nauti"),
        )
        .await,
        "an annotation outside nauti.io",
        ONLY_NAUTI_ANNOTATIONS,
    );
    assert_refused(
        patch_as(
            &plugin,
            "default",
            "elsewhere",
            annotation("nauti.io/ip-address", "10.112.2.9"),
        )
        .await,
        "a pod on another node",
        "only change pods on the node its token is bound to (node-1), not on node-2",
    );
    assert_refused(
        patch_as(
            &plugin,
            "default",
            "unscheduled",
            annotation("nauti.io/ip-address", "10.112.1.10"),
        )
        .await,
        "a pod on no node",
        "not on no node",
    );
    assert_refused(
        patch_as(
            &plugin,
            "kube-system",
            "proxy",
            annotation("nauti.io/ip-address", "10.112.1.11"),
        )
        .await,
        "a kube-system pod on the plugin's node",
        "may not change pods in kube-system",
    );

    // The same ServiceAccount with a token bound to no pod names no node: it changes nothing.
    let unbound = bed
        .kube
        .unbound_token(&bed.plugin_identity.namespace, &bed.plugin_identity.account)
        .await
        .unwrap();
    let unbound = bed.kube.kubeconfig_with_token("unbound", &unbound).unwrap();
    assert_refused(
        patch_as(
            &unbound,
            "default",
            "mine",
            annotation("nauti.io/ip-address", "10.112.1.12"),
        )
        .await,
        "a token bound to no pod",
        "bound to (none)",
    );

    // A token bound to a Node (for a plugin containerd launches, which has no pod) names that
    // node: node-2's token may annotate node-2's pod and not node-1's.
    let nodes: Api<Node> = Api::all(bed.kube.client().await.unwrap());
    let node_2: Node =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "node-2"}})).unwrap();
    let node_2 = nodes.create(&PostParams::default(), &node_2).await.unwrap();
    let node_2_token = bed
        .kube
        .node_bound_token(
            &bed.plugin_identity.namespace,
            &bed.plugin_identity.account,
            &node_2,
        )
        .await
        .unwrap();
    let node_2_plugin = bed
        .kube
        .kubeconfig_with_token("node-2", &node_2_token)
        .unwrap();
    patch_as(
        &node_2_plugin,
        "default",
        "elsewhere",
        annotation("nauti.io/ip-address", "10.112.2.9"),
    )
    .await
    .expect("a node-bound token on its node's pod");
    assert_refused(
        patch_as(
            &node_2_plugin,
            "default",
            "mine",
            annotation("nauti.io/ip-address", "10.112.2.10"),
        )
        .await,
        "a node-bound token on another node's pod",
        "bound to (node-2), not on node-1",
    );

    // Nothing refused was written.
    let mine = Api::<Pod>::namespaced(bed.kube.client().await.unwrap(), "default")
        .get("mine")
        .await
        .unwrap();
    assert_eq!(mine.metadata.labels.unwrap()["app"], "mine");
    assert_eq!(
        mine.spec.unwrap().containers[0].image.as_deref(),
        Some(nauti_testbed::containerd::BUSYBOX_IMAGE)
    );
    let annotations = mine.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("example.com/owner")
            && !annotations.contains_key("nauti.io/ip-address"),
        "{annotations:?}"
    );
}
