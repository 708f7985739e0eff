//! The active replica's mark: the Lease holder labels its own pod `nauti.io/gateway-active:
//! "true"`, and the gateway Service selects that label. Every healthy replica can then be ready
//! (so `helm install --wait` and rolling updates see them all) while the Service reaches only
//! the one running the tunnel.
//!
//! A leader that is killed cannot take its label off: its container restarts as a standby,
//! which removes the label from its own pod first, and the next leader removes it from every
//! other pod of its component before it labels its own.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

/// The label the gateway Service selects.
pub const ACTIVE_LABEL: &str = "nauti.io/gateway-active";

/// Labels that tell the replicas of one component from other pods of the namespace, in the
/// order they are looked for (the charts' label, then the plain `app` of hand-made manifests).
const COMPONENT_LABELS: [&str; 2] = ["app.kubernetes.io/component", "app"];

/// The merge patch that sets (`true`) or removes (`false`) the label.
pub fn label_patch(active: bool) -> Value {
    let value = if active { json!("true") } else { Value::Null };
    json!({"metadata": {"labels": {ACTIVE_LABEL: value}}})
}

/// The selector of pods of `own_labels`' component that carry the label.
pub fn holders_selector(own_labels: &BTreeMap<String, String>) -> String {
    let mut selector = format!("{ACTIVE_LABEL}=true");
    if let Some((key, value)) = COMPONENT_LABELS
        .iter()
        .find_map(|key| own_labels.get(*key).map(|value| (key, value)))
    {
        selector.push_str(&format!(",{key}={value}"));
    }
    selector
}

/// The pods among `pods` other than `own` that still carry the label.
pub fn stale_holders(pods: &[Pod], own: &str) -> Vec<String> {
    pods.iter()
        .filter_map(|pod| pod.metadata.name.clone())
        .filter(|name| name != own)
        .collect()
}

/// This replica's pod, labelled while it leads.
pub struct ActivePod {
    pods: Api<Pod>,
    name: String,
}

impl ActivePod {
    /// The pod `name` in `namespace`.
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Self {
            pods: Api::namespaced(client, namespace),
            name: name.to_owned(),
        }
    }

    async fn patch(&self, name: &str, active: bool) -> Result<(), kube::Error> {
        self.pods
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&label_patch(active)),
            )
            .await
            .map(drop)
    }

    /// Takes the label off this pod (a restarted former leader, now standing by).
    pub async fn unmark(&self) -> Result<(), kube::Error> {
        match self.patch(&self.name, false).await {
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            other => other,
        }
    }

    /// Takes the label off every other pod of this component, then sets it on this one; the
    /// names of the pods it was taken from.
    pub async fn mark(&self) -> Result<Vec<String>, kube::Error> {
        let own = self.pods.get(&self.name).await?;
        let labels = own.metadata.labels.unwrap_or_default();
        let holders = self
            .pods
            .list(&ListParams::default().labels(&holders_selector(&labels)))
            .await?;
        let stale = stale_holders(&holders.items, &self.name);
        for name in &stale {
            match self.patch(name, false).await {
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                other => other?,
            }
        }
        if labels.get(ACTIVE_LABEL).map(String::as_str) != Some("true") {
            self.patch(&self.name, true).await?;
        }
        Ok(stale)
    }
}

/// How long stepping down may try to take the label off before the lease is released anyway.
const STEP_DOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// This replica's pod when it runs a tunnel and knows its pod's name, with the label taken off
/// (a restarted former leader starts as a standby); a failure there is logged: the next leader
/// takes the label off too.
pub async fn active_pod(
    client: &kube::Client,
    namespace: &str,
    pod_name: Option<&str>,
    runs_tunnel: bool,
) -> Option<ActivePod> {
    let pod = ActivePod::new(client.clone(), namespace, pod_name.filter(|_| runs_tunnel)?);
    if let Err(error) = pod.unmark().await {
        tracing::warn!(pod = %pod.name, %error, "cannot take the {ACTIVE_LABEL} label off this pod");
    }
    Some(pod)
}

/// Labels this pod as the active one; true once done (a failure is logged and retried).
pub async fn take_over(pod: &ActivePod) -> bool {
    match pod.mark().await {
        Ok(stale) => {
            tracing::info!(pod = %pod.name, ?stale, "labelled {ACTIVE_LABEL}: the gateway Service reaches this pod");
            true
        }
        Err(error) => {
            tracing::warn!(pod = %pod.name, %error, "cannot label this pod {ACTIVE_LABEL}; retried");
            false
        }
    }
}

/// Takes the label off on the way out (bounded).
pub async fn step_down(pod: &ActivePod) {
    match tokio::time::timeout(STEP_DOWN_TIMEOUT, pod.unmark()).await {
        Ok(Ok(())) => tracing::info!(pod = %pod.name, "{ACTIVE_LABEL} label taken off"),
        Ok(Err(error)) => {
            tracing::warn!(pod = %pod.name, %error, "cannot take the {ACTIVE_LABEL} label off")
        }
        Err(_) => tracing::warn!(pod = %pod.name, "taking the {ACTIVE_LABEL} label off timed out"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_patch_sets_or_removes_the_label() {
        assert_eq!(
            label_patch(true),
            json!({"metadata": {"labels": {"nauti.io/gateway-active": "true"}}})
        );
        assert_eq!(
            label_patch(false),
            json!({"metadata": {"labels": {"nauti.io/gateway-active": null}}})
        );
    }

    #[test]
    fn holders_are_looked_for_among_the_same_component() {
        assert_eq!(
            holders_selector(&labels(&[
                ("app", "x"),
                ("app.kubernetes.io/component", "octopus-hub")
            ])),
            "nauti.io/gateway-active=true,app.kubernetes.io/component=octopus-hub"
        );
        assert_eq!(
            holders_selector(&labels(&[("app", "octopus-member")])),
            "nauti.io/gateway-active=true,app=octopus-member"
        );
        assert_eq!(
            holders_selector(&labels(&[])),
            "nauti.io/gateway-active=true"
        );
    }

    #[test]
    fn every_holder_but_this_pod_is_stale() {
        let pod = |name: &str| Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        assert_eq!(
            stale_holders(&[pod("gw-a"), pod("gw-b")], "gw-b"),
            vec!["gw-a".to_owned()]
        );
        assert!(stale_holders(&[pod("gw-b")], "gw-b").is_empty());
    }
}
