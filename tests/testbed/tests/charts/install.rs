//! `helm install` and `helm upgrade` on a real API server (no pods need to run): the hub's
//! bootstrap token is the one NOTES prints, survives an upgrade, authenticates as a Nauti
//! bootstrapper, and is replaced once spent; CRDs stay after uninstall.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams};
use nauti_testbed::{KubeApi, KubeApiOptions, TestDir, require_root};

use crate::helm::{AGENT_CHART, HUB_CHART, Helm, NAMESPACE, kubectl};

/// The token NOTES.txt printed after "bootstrap token: ".
fn printed_token(notes: &str) -> String {
    let line = notes
        .lines()
        .find(|l| l.contains("with bootstrap token: "))
        .unwrap_or_else(|| panic!("no token line in:\n{notes}"));
    let token = line
        .split("with bootstrap token: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 23, "{token}");
    token
}

/// `<token-id>.<token-secret>` of the one Nauti bootstrap token Secret, and the Secret's uid.
async fn stored_token(secrets: &Api<Secret>) -> (String, String) {
    let list = secrets
        .list(&ListParams::default().labels("nauti.io/bootstrap-token=true"))
        .await
        .unwrap()
        .items;
    assert_eq!(
        list.len(),
        1,
        "{:?}",
        list.iter().map(|s| &s.metadata.name).collect::<Vec<_>>()
    );
    let secret = &list[0];
    assert_eq!(
        secret.type_.as_deref(),
        Some("bootstrap.kubernetes.io/token")
    );
    let data = secret.data.clone().unwrap();
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    assert_eq!(text("usage-bootstrap-authentication"), "true");
    assert_eq!(text("auth-extra-groups"), "system:bootstrappers:nauti");
    let id = text("token-id");
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some(format!("bootstrap-token-{id}").as_str())
    );
    (
        format!("{id}.{}", text("token-secret")),
        secret.metadata.uid.clone().unwrap(),
    )
}

#[tokio::test]
async fn hub_token_is_printed_kept_across_upgrade_and_replaced_once_spent() {
    require_root!();
    let dir = TestDir::new("charts-install").unwrap();
    let helm = Helm::new(&dir);
    let kube = KubeApi::start_with(
        &dir,
        KubeApiOptions {
            bootstrap_token_auth: true,
        },
    )
    .await
    .unwrap();
    let kubeconfig = kube.kubeconfig().display().to_string();
    let secrets: Api<Secret> = Api::namespaced(kube.client().await.unwrap(), "kube-system");

    // The seed's command.
    let notes = helm.ok(&[
        "install",
        "nauti",
        HUB_CHART,
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--kubeconfig",
        &kubeconfig,
        "--set",
        "tunnel.endpoint=10.115.217.212",
        "--set",
        "tunnel.cidr=10.112.0.0/12",
    ]);
    let token = printed_token(&notes);
    let (stored, uid) = stored_token(&secrets).await;
    assert_eq!(
        stored, token,
        "NOTES printed another token than the Secret holds"
    );
    let install_line = format!(
        "--set hub.hubURL=https://10.115.217.212:6443 --set cluster.clusterID=cluster1 \\\n--set hub.bootstrapToken={token} --set-file hub.caCert=nauti-hub-ca.crt"
    );
    assert!(notes.contains("helm install nauti-agent "), "{notes}");
    assert!(notes.contains(&install_line), "{notes}");

    // The token is a working bootstrap token that may create a certificate request and no
    // more (the API server's authenticator reads the Secret through an informer: bounded wait).
    // A kubeconfig with the token alone (no client certificate to authenticate instead).
    let as_token = kube.kubeconfig_with_token("bootstrapper", &token).unwrap();
    let can = |verb_resource: &[&str]| {
        let mut args = vec!["auth", "can-i"];
        args.extend(verb_resource);
        std::process::Command::new(nauti_testbed::peers::bin("kubectl").unwrap())
            .arg("--kubeconfig")
            .arg(&as_token)
            .args(&args)
            .output()
            .unwrap()
    };
    let mut allowed = false;
    for _ in 0..40 {
        let out = can(&["create", "certificatesigningrequests.certificates.k8s.io"]);
        if String::from_utf8_lossy(&out.stdout).trim() == "yes" {
            allowed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(allowed, "the printed token may not create a CSR");
    for denied in [
        &["get", "secrets", "-n", "kube-system"][..],
        &["create", "peers.nauti.io", "-n", NAMESPACE][..],
        &["list", "certificatesigningrequests.certificates.k8s.io"][..],
    ] {
        let out = can(denied);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "no",
            "{denied:?}"
        );
    }

    // An upgrade renders with `lookup`: the same token, the same Secret.
    let notes = helm.ok(&[
        "upgrade",
        "nauti",
        HUB_CHART,
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
        "--reuse-values",
        "--set",
        "octopus.log=debug",
    ]);
    assert_eq!(
        printed_token(&notes),
        token,
        "the upgrade printed a new token"
    );
    assert_eq!(stored_token(&secrets).await, (token.clone(), uid.clone()));
    let hub_deployment = kubectl(
        kube.kubeconfig(),
        &[
            "get",
            "deployment",
            "octopus-hub",
            "-n",
            NAMESPACE,
            "-o",
            "json",
        ],
    );
    assert!(
        hub_deployment.contains("\"debug\""),
        "the upgrade did not apply"
    );

    // Once a member has joined, octopus deletes the token: the next upgrade makes a new one.
    let (id, _) = token.split_once('.').unwrap();
    secrets
        .delete(&format!("bootstrap-token-{id}"), &DeleteParams::default())
        .await
        .unwrap();
    let notes = helm.ok(&[
        "upgrade",
        "nauti",
        HUB_CHART,
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
        "--reuse-values",
    ]);
    let fresh = printed_token(&notes);
    assert_ne!(fresh, token, "a spent token came back");
    assert_eq!(stored_token(&secrets).await.0, fresh);

    // A member installs with what the hub printed (this API server stands in for its cluster).
    let ca_file = dir.path().join("nauti-hub-ca.crt");
    std::fs::write(&ca_file, kube.ca_pem()).unwrap();
    let ca_arg = format!("hub.caCert={}", ca_file.display());
    let token_arg = format!("hub.bootstrapToken={fresh}");
    let agent_args = [
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
        "--set",
        "hub.hubURL=https://10.115.217.212:6443",
        "--set",
        "cluster.clusterID=cluster1",
        "--set",
        &token_arg,
        "--set-file",
        &ca_arg,
    ];
    let mut install = vec!["install", "nauti-agent", AGENT_CHART];
    install.extend(agent_args);
    let notes = helm.ok(&install);
    assert!(
        notes.contains("cluster cluster1 joins the hub at https://10.115.217.212:6443"),
        "{notes}"
    );
    let mut upgrade = vec!["upgrade", "nauti-agent", AGENT_CHART];
    upgrade.extend(agent_args);
    helm.ok(&upgrade);
    let hub_secret = kubectl(
        kube.kubeconfig(),
        &[
            "get",
            "secret",
            "nauti-hub",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.data.token}",
        ],
    );
    assert_eq!(hub_secret, base64_of(&fresh));
    for object in [
        "daemonset/nauti-nri",
        "daemonset/ovn-chassis",
        "statefulset/ovn-central",
        "deployment/octopus-member",
        "deployment/nauti-ovnmaster",
        "deployment/crossdns",
    ] {
        kubectl(kube.kubeconfig(), &["get", object, "-n", NAMESPACE]);
    }

    let before = objects_of_release(&kube, "nauti-agent");
    for made in [
        "daemonset.apps/nauti-nri",
        "clusterrole.rbac.authorization.k8s.io/nauti-nri",
        "validatingadmissionpolicy.admissionregistration.k8s.io/nauti-nri-pod-writes",
        "role.rbac.authorization.k8s.io/nauti-crossdns-coredns",
    ] {
        assert!(
            before.lines().any(|l| l == made),
            "{made} not in:\n{before}"
        );
    }
    // Uninstalling the agent removes every object it made (its pre-delete Jobs need pods, so
    // they are skipped here: no kubelet runs them).
    helm.ok(&[
        "uninstall",
        "nauti-agent",
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
        "--no-hooks",
        "--wait",
    ]);
    assert_eq!(objects_of_release(&kube, "nauti-agent"), "");

    // Uninstalling the hub keeps the CRDs (and the Peers in them); its token goes.
    helm.ok(&[
        "uninstall",
        "nauti",
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
    ]);
    let crds: Api<CustomResourceDefinition> = Api::all(kube.client().await.unwrap());
    assert!(crds.get_opt("peers.nauti.io").await.unwrap().is_some());
    let left = secrets
        .list(&ListParams::default().labels("nauti.io/bootstrap-token=true"))
        .await
        .unwrap()
        .items;
    assert!(left.is_empty(), "the token outlived the release");
    assert_eq!(objects_of_release(&kube, "nauti"), "");
}

/// Every object left of a release's kinds, in every namespace, one `kind/name` a line.
fn objects_of_release(kube: &KubeApi, release: &str) -> String {
    kubectl(
        kube.kubeconfig(),
        &[
            "get",
            "deployments,daemonsets,statefulsets,jobs,services,configmaps,secrets,serviceaccounts,\
             roles,rolebindings,clusterroles,clusterrolebindings,\
             validatingadmissionpolicies,validatingadmissionpolicybindings",
            "--all-namespaces",
            "-l",
            &format!("app.kubernetes.io/instance={release}"),
            "-o",
            "name",
        ],
    )
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
