//! `crossdns wire-coredns` / `unwire-coredns` against a real kube-apiserver, under the RBAC of
//! `deploy/rbac/crossdns.yaml`, with a real CoreDNS loading the edited Corefile through its
//! `reload` plugin: `dig` through CoreDNS gets crossdns's answers while wired, and stops getting
//! them once unwired.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ObjectMeta, PostParams};
use nauti_api::ServiceImport;
use nauti_api::mcs::ServiceImportType;
use nauti_testbed::process::wait_until;
use nauti_testbed::{Daemon, KubeApi, TestDir, peers};

use super::{
    NS, answers, apply_rbac, crossdns_kubeconfig, dig, endpoint, import, slice, start_crossdns,
    status,
};

/// How long CoreDNS may take to load a changed Corefile (`reload 2s 1s`: at most 3 s).
const RELOAD: Duration = Duration::from_secs(15);

/// CoreDNS's own Corefile: one root block that answers every name with `whoami`, and `reload`.
fn base_corefile(port: u16) -> String {
    format!(".:{port} {{\n    errors\n    reload 2s 1s\n    whoami\n}}\n")
}

fn config_map(name: &str, corefile: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("kube-system".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "Corefile".to_owned(),
            corefile.to_owned(),
        )])),
        ..ConfigMap::default()
    }
}

/// Runs a one-shot crossdns command as crossdns's service account.
fn crossdns_command(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crossdns"))
        .env_remove("KUBECONFIG")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn corefile_of(api: &Api<ConfigMap>) -> (String, String) {
    let config_map = api.get("coredns").await.unwrap();
    let version = config_map.metadata.resource_version.clone().unwrap();
    let corefile = config_map.data.unwrap()["Corefile"].clone();
    (corefile, version)
}

/// What the kubelet does for CoreDNS's pod: the ConfigMap's Corefile lands in its file.
async fn project(api: &Api<ConfigMap>, file: &PathBuf) -> String {
    let (corefile, _) = corefile_of(api).await;
    std::fs::write(file, &corefile).unwrap();
    corefile
}

fn dig_through_until(server: SocketAddr, what: &str, check: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let ok = wait_until(RELOAD, || {
        last = dig(server, "web.shop.svc.clusterset.local", "A", &[]);
        check(&last)
    });
    assert!(ok, "CoreDNS never {what}; last answer:\n{last}");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_coredns_makes_a_real_coredns_forward_both_zones_and_unwire_undoes_it() {
    let dir = TestDir::new("crossdns-coredns").unwrap();
    let kube = KubeApi::start(&dir).await.unwrap();
    kube.install_crds(&nauti_testbed::kube_api::repo_crds())
        .await
        .unwrap();
    for namespace in ["nauti-system", "kube-system", NS] {
        kube.create_namespace(namespace).await.unwrap();
    }
    let admin = kube.client().await.unwrap();
    apply_rbac(&admin).await;
    let kubeconfig = crossdns_kubeconfig(&kube);

    // crossdns, answering one clusterset service.
    let pp = PostParams::default();
    Api::<ServiceImport>::namespaced(admin.clone(), NS)
        .create(
            &pp,
            &import("web", ServiceImportType::ClusterSetIP, &["10.127.0.10"]),
        )
        .await
        .unwrap();
    Api::<EndpointSlice>::namespaced(admin.clone(), NS)
        .create(
            &pp,
            &slice(
                "web-east",
                "web",
                "east",
                "IPv4",
                vec![endpoint("10.113.0.5", None, true)],
            ),
        )
        .await
        .unwrap();
    let mut crossdns = start_crossdns(&dir, &kubeconfig);
    let ready = wait_until(Duration::from_secs(10), || {
        answers(
            &dig(crossdns.dns, "web.shop.svc.clusterset.local", "A", &[]),
            "A",
        ) == ["10.127.0.10"]
    });
    assert!(ready, "crossdns never answered");

    // CoreDNS with its own Corefile, from the ConfigMap, and a second ConfigMap that is not
    // CoreDNS's.
    let coredns_port = nauti_testbed::names::free_port().unwrap();
    let coredns: SocketAddr = format!("127.0.0.1:{coredns_port}").parse().unwrap();
    let base = base_corefile(coredns_port);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), "kube-system");
    config_maps
        .create(&pp, &config_map("coredns", &base))
        .await
        .unwrap();
    config_maps
        .create(&pp, &config_map("other", &base))
        .await
        .unwrap();
    let corefile_path = dir.path().join("Corefile");
    project(&config_maps, &corefile_path).await;
    let mut cmd = Command::new(peers::bin("coredns").unwrap());
    cmd.arg("-conf").arg(&corefile_path);
    let mut coredns_daemon = Daemon::spawn("coredns", cmd, &dir.log("coredns")).unwrap();
    coredns_daemon
        .wait_ready(Duration::from_secs(20), || {
            status(&dig(coredns, "probe.example", "A", &[])) == "NOERROR"
        })
        .unwrap();
    let out = dig(coredns, "web.shop.svc.clusterset.local", "A", &[]);
    assert!(answers(&out, "A").is_empty(), "not wired yet:\n{out}");

    // Wire: one marked block on CoreDNS's port, forwarding to crossdns.
    let forward_to = crossdns.dns.to_string();
    let wired = crossdns_command(&kubeconfig, &["wire-coredns", "--forward-to", &forward_to]);
    assert!(wired.status.success(), "{}", stderr(&wired));
    let (corefile, version) = corefile_of(&config_maps).await;
    assert!(
        corefile.starts_with(&base),
        "the rest is untouched:\n{corefile}"
    );
    assert!(
        corefile.contains(&format!(
            "hyperos.local:{coredns_port} clusterset.local:{coredns_port} {{\n    errors\n    forward . {forward_to}\n}}\n# END nauti-crossdns\n"
        )),
        "{corefile}"
    );
    // Again: nothing to write, the ConfigMap keeps its version.
    let again = crossdns_command(&kubeconfig, &["wire-coredns", "--forward-to", &forward_to]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(corefile_of(&config_maps).await.1, version, "idempotent");

    // CoreDNS reloads it: both zones now come from crossdns, through CoreDNS.
    project(&config_maps, &corefile_path).await;
    let out = dig_through_until(coredns, "forwarded to crossdns", |o| {
        answers(o, "A") == ["10.127.0.10"]
    });
    assert_eq!(status(&out), "NOERROR", "{out}");
    let out = dig(coredns, "web.shop.svc.hyperos.local", "A", &[]);
    assert_eq!(answers(&out, "A"), ["10.113.0.5"], "{out}");
    let out = dig(coredns, "nope.shop.svc.clusterset.local", "A", &[]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    let out = dig(
        coredns,
        "_http._tcp.web.shop.svc.clusterset.local",
        "SRV",
        &[],
    );
    assert_eq!(
        answers(&out, "SRV"),
        ["0 100 80 web.shop.svc.clusterset.local."],
        "{out}"
    );

    // Someone edits the root block meanwhile; unwiring keeps their edit and drops only ours.
    let mut edited = config_maps.get("coredns").await.unwrap();
    let theirs = base.replace("    whoami\n", "    whoami\n    log\n");
    let with_block = corefile.replacen(&base, &theirs, 1);
    edited
        .data
        .as_mut()
        .unwrap()
        .insert("Corefile".into(), with_block);
    config_maps.replace("coredns", &pp, &edited).await.unwrap();
    let unwired = crossdns_command(&kubeconfig, &["unwire-coredns"]);
    assert!(unwired.status.success(), "{}", stderr(&unwired));
    let (corefile, version) = corefile_of(&config_maps).await;
    assert_eq!(corefile, theirs, "exactly their Corefile is left");
    let again = crossdns_command(&kubeconfig, &["unwire-coredns"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(corefile_of(&config_maps).await.1, version, "idempotent");
    project(&config_maps, &corefile_path).await;
    dig_through_until(coredns, "stopped forwarding", |o| {
        status(o) == "NOERROR" && answers(o, "A").is_empty()
    });

    // A Corefile it cannot read is left alone, with the reason.
    let mut broken = config_maps.get("coredns").await.unwrap();
    let unreadable = format!("{theirs}example.org {{\n    whoami\n");
    broken
        .data
        .as_mut()
        .unwrap()
        .insert("Corefile".into(), unreadable.clone());
    config_maps.replace("coredns", &pp, &broken).await.unwrap();
    let (_, version) = corefile_of(&config_maps).await;
    let refused = crossdns_command(&kubeconfig, &["wire-coredns", "--forward-to", &forward_to]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(
            "ConfigMap kube-system/coredns key Corefile is left alone: line 7: the block opened here is not closed"
        ),
        "{}",
        stderr(&refused)
    );
    assert_eq!(corefile_of(&config_maps).await, (unreadable, version));

    // Least privilege: any other ConfigMap is out of reach.
    let denied = crossdns_command(
        &kubeconfig,
        &[
            "wire-coredns",
            "--forward-to",
            &forward_to,
            "--coredns-configmap",
            "other",
        ],
    );
    assert!(!denied.status.success());
    assert!(
        stderr(&denied).contains("cannot read ConfigMap kube-system/other")
            && stderr(&denied).contains("forbidden"),
        "{}",
        stderr(&denied)
    );
    assert_eq!(
        config_maps.get("other").await.unwrap().data.unwrap()["Corefile"],
        base
    );

    assert!(coredns_daemon.is_running(), "CoreDNS died");
    assert!(crossdns.daemon.is_running(), "crossdns died");
}
