//! The built `nautictl clean` against a real kube-apiserver and a real OVN northbound
//! `ovsdb-server`: pods and a Node carrying Nauti's annotations, a Corefile wired by crossdns's
//! own code, Nauti's switch, ports and load balancer written by Nauti's own OVSDB client, and
//! an operator's switch, port, load balancer and annotations next to them. A dry run lists every
//! trace and changes nothing; a clean removes exactly those; a second clean finds nothing and
//! succeeds. Then the failures: a bad kubeconfig, an unknown context, an unreachable or
//! misspelt northbound remote, a stopped API server. Then the nauti-agent chart's uninstall
//! hook: `clean --keep-coredns` under the ServiceAccount of `deploy/rbac/nautictl-clean.yaml`,
//! whose admission policy lets it remove Nauti's annotations and nothing more. And the
//! completion scripts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure here is a test failure"
)]

#[path = "../support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{assert_fails_naming, nautictl, stdout_of};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use nauti_api::keys;
use nauti_crossdns::coredns::{self, CorefileLocation, Outcome};
use nauti_ovn::core::router::{RouterPort, StaticRoute};
use nauti_ovn::{
    Client, Endpoint, LbProtocol, LoadBalancer, LogicalSwitch, LogicalSwitchPort, Northbound,
};
use nauti_testbed::kube_api::client_from;
use nauti_testbed::ovn::{NB_SCHEMA, OvsdbServer, RunDir};
use nauti_testbed::{KubeApi, TestDir, require_root};

const KUBEADM_COREFILE: &str = "\
.:53 {
    errors
    health
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
    reload
}
";

fn nbctl(remote: &str, args: &[&str]) -> String {
    let out = Command::new("ovn-nbctl")
        .arg(format!("--db={remote}"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ovn-nbctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `name external_ids` of every row of a northbound table, sorted, as `ovn-nbctl` reads them.
fn nb_rows(remote: &str, table: &str) -> Vec<String> {
    let listed = nbctl(
        remote,
        &[
            "--format=csv",
            "--no-headings",
            "--columns=name,external_ids",
            "list",
            table,
        ],
    );
    let mut rows: Vec<String> = listed.lines().map(str::to_owned).collect();
    rows.sort();
    rows
}

/// What the cluster and the database hold, to compare before and after.
#[derive(Debug, PartialEq, Eq)]
struct State {
    pods: BTreeMap<String, BTreeMap<String, String>>,
    nodes: BTreeMap<String, BTreeMap<String, String>>,
    corefile: String,
    switches: Vec<String>,
    ports: Vec<String>,
    load_balancers: Vec<String>,
    routers: Vec<String>,
    router_ports: Vec<String>,
    static_routes: String,
    operator_switch_lbs: String,
    operator_router_lbs: String,
}

async fn state(client: &kube::Client, remote: &str) -> State {
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| {
            (
                format!(
                    "{}/{}",
                    p.metadata.namespace.unwrap(),
                    p.metadata.name.unwrap()
                ),
                p.metadata.annotations.unwrap_or_default(),
            )
        })
        .collect();
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| {
            (
                n.metadata.name.unwrap(),
                n.metadata.annotations.unwrap_or_default(),
            )
        })
        .collect();
    let corefile = Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
        .get("coredns")
        .await
        .unwrap()
        .data
        .unwrap()["Corefile"]
        .clone();
    State {
        pods,
        nodes,
        corefile,
        switches: nb_rows(remote, "Logical_Switch"),
        ports: nb_rows(remote, "Logical_Switch_Port"),
        load_balancers: nb_rows(remote, "Load_Balancer"),
        routers: nb_rows(remote, "Logical_Router"),
        router_ports: nb_rows(remote, "Logical_Router_Port"),
        static_routes: nbctl(
            remote,
            &[
                "--bare",
                "--columns=ip_prefix",
                "list",
                "Logical_Router_Static_Route",
            ],
        ),
        operator_switch_lbs: nbctl(remote, &["ls-lb-list", "operator-ls"]),
        operator_router_lbs: nbctl(remote, &["lr-lb-list", "operator-lr"]),
    }
}

fn meta(namespace: Option<&str>, name: &str, annotations: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        namespace: namespace.map(str::to_owned),
        name: Some(name.to_owned()),
        annotations: Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..ObjectMeta::default()
    }
}

async fn create_pod(client: &kube::Client, namespace: &str, name: &str, ann: &[(&str, &str)]) {
    let pod = Pod {
        metadata: meta(Some(namespace), name, ann),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

/// Every annotation `nauti-nri` writes on a pod, as DESIGN.md lists them.
const POD_NETWORK: [(&str, &str); 8] = [
    (keys::IP_ADDRESS, "10.112.0.5"),
    (keys::MAC_ADDRESS, "0a:58:0a:70:00:05"),
    (keys::CIDR, "10.112.0.0/16"),
    (keys::GATEWAY, "10.112.0.1"),
    (keys::LOGICAL_SWITCH, "nauti-east"),
    (keys::POD_NIC_TYPE, "veth-pair"),
    (
        keys::ROUTES,
        r#"[{"dst":"10.112.0.0/12","gw":"10.112.0.1"}]"#,
    ),
    (keys::ALLOCATED, "true"),
];

#[tokio::test]
async fn clean_removes_every_trace_of_nauti_and_nothing_else() {
    require_root!();
    let started = Instant::now();
    let dir = TestDir::new("nautictl-clean").unwrap();
    let api = KubeApi::start(&dir).await.unwrap();
    let client = api.client().await.unwrap();
    let kubeconfig = api.kubeconfig().to_owned();
    api.create_namespace("shop").await.unwrap();

    // Pods: one with every key plus the user's opt-in and another tool's annotation, one with a
    // few keys, one Nauti never touched.
    let mut web: Vec<(&str, &str)> = POD_NETWORK.to_vec();
    web.extend([(keys::ENABLED, "true"), ("example.com/team", "storefront")]);
    create_pod(&client, "default", "web-0", &web).await;
    create_pod(
        &client,
        "shop",
        "cart-1",
        &[(keys::IP_ADDRESS, "10.112.0.6"), (keys::ALLOCATED, "true")],
    )
    .await;
    create_pod(&client, "default", "plain", &[("example.com/team", "ops")]).await;
    let nodes: Api<Node> = Api::all(client.clone());
    for (name, ann) in [
        (
            "n1",
            vec![
                (keys::NODE_CIDR, "10.112.0.0/24"),
                ("example.com/rack", "r1"),
            ],
        ),
        ("n2", vec![("example.com/rack", "r2")]),
    ] {
        let node = Node {
            metadata: meta(None, name, &ann),
            ..Node::default()
        };
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }

    // CoreDNS: kubeadm's Corefile, wired by crossdns's own code.
    wired_coredns(&client).await;

    // OVN: Nauti's rows through Nauti's client, the operator's through ovn-nbctl.
    let run = RunDir::new("nctl").unwrap();
    let server =
        OvsdbServer::start("nb", Path::new(NB_SCHEMA), run.path(), None, &dir.log("nb")).unwrap();
    let remote = server.remote();
    let nb = Northbound::new(
        Client::connect_to(Endpoint::parse(&remote).unwrap())
            .await
            .unwrap(),
    );
    nb.ensure_logical_switch(
        &LogicalSwitch::new("nauti-east")
            .with_subnet("10.112.0.0/16")
            .with_external_id("nauti.io/cluster", "east"),
    )
    .await
    .unwrap();
    let web_port = LogicalSwitchPort::new("default_web-0")
        .with_address("0a:58:0a:70:00:05", &["10.112.0.5"])
        .with_external_id("nauti.io/owner", "pod")
        .with_external_id("pod", "web-0");
    let cnf_port = LogicalSwitchPort::new("nauti-cnf")
        .with_external_id("nauti.io/owner", "cnf")
        .with_external_id("nauti.io/cluster", "east");
    nb.ensure_logical_switch_ports("nauti-east", &[web_port, cnf_port])
        .await
        .unwrap();
    let lb = LoadBalancer::new("mcs_shop_cart_tcp", LbProtocol::Tcp, "octopus")
        .with_vip("10.127.0.10:80", ["10.112.0.6:8080"]);
    nb.ensure_load_balancers("nauti-east", &[lb]).await.unwrap();
    let owned_by_cnf = BTreeMap::from([
        ("nauti.io/owner".to_owned(), "cnf".to_owned()),
        ("nauti.io/cluster".to_owned(), "east".to_owned()),
    ]);
    let gateway_port = RouterPort::new("nauti-east-gw-port", "0a:58:0a:70:00:01", "10.112.0.1/16")
        .with_external_id("nauti.io/owner", "cnf");
    nb.ensure_logical_router("nauti-east-gw", &owned_by_cnf, &[gateway_port])
        .await
        .unwrap();
    nb.set_static_route(
        "nauti-east-gw",
        &StaticRoute::new("10.112.0.0/12", "10.112.0.2").with_external_id("nauti.io/owner", "cnf"),
    )
    .await
    .unwrap();
    nbctl(
        &remote,
        &[
            "ls-add",
            "operator-ls",
            "--",
            "set",
            "Logical_Switch",
            "operator-ls",
            "external_ids:team=infra",
            "--",
            "lsp-add",
            "operator-ls",
            "operator-port",
            "--",
            "lb-add",
            "operator-lb",
            "10.0.0.1:80",
            "10.0.0.2:80",
            "--",
            "ls-lb-add",
            "operator-ls",
            "operator-lb",
        ],
    );
    nbctl(
        &remote,
        &[
            "lr-add",
            "operator-lr",
            "--",
            "lrp-add",
            "operator-lr",
            "operator-lrp",
            "02:00:00:00:00:01",
            "192.0.2.1/24",
            "--",
            "lr-route-add",
            "operator-lr",
            "198.51.100.0/24",
            "192.0.2.254",
            "--",
            "lr-lb-add",
            "operator-lr",
            "operator-lb",
        ],
    );
    // Nauti's load balancer attached to the operator's switch and router too: clean must
    // detach it from both.
    nbctl(&remote, &["ls-lb-add", "operator-ls", "mcs_shop_cart_tcp"]);
    nbctl(&remote, &["lr-lb-add", "operator-lr", "mcs_shop_cart_tcp"]);
    let before = state(&client, &remote).await;
    assert!(before.corefile.contains("# BEGIN nauti-crossdns"));
    assert_eq!(before.switches.len(), 2, "{before:?}");
    assert_eq!(before.ports.len(), 3, "{before:?}");
    assert_eq!(before.load_balancers.len(), 2, "{before:?}");
    assert_eq!(before.routers.len(), 2, "{before:?}");
    assert_eq!(before.router_ports.len(), 2, "{before:?}");
    assert!(before.static_routes.contains("10.112.0.0/12"), "{before:?}");
    // ovn-nbctl cuts names at 16 characters in these tables.
    assert!(before.operator_switch_lbs.contains("mcs_shop_cart_tc"));
    assert!(
        before.operator_router_lbs.contains("mcs_shop_cart_tc"),
        "{}",
        before.operator_router_lbs
    );
    let setup = started.elapsed();

    // Dry run: one line per object, nothing changed.
    let clean_started = Instant::now();
    let dry = nautictl(&kubeconfig, &["clean", "--dry-run", "--ovn-nb", &remote]);
    let listed: BTreeSet<String> = stdout_of(&dry).lines().map(str::to_owned).collect();
    let want: BTreeSet<String> = [
        "Pod default/web-0 annotations nauti.io/allocated,nauti.io/cidr,nauti.io/gateway,nauti.io/ip_address,nauti.io/logical_switch,nauti.io/mac_address,nauti.io/pod_nic_type,nauti.io/routes",
        "Pod shop/cart-1 annotations nauti.io/allocated,nauti.io/ip_address",
        "Node n1 annotations nauti.io/node-cidr",
        "ConfigMap kube-system/coredns key Corefile block # BEGIN nauti-crossdns .. # END nauti-crossdns",
        "Logical_Switch_Port default_web-0 (on switch nauti-east)",
        "Logical_Switch_Port nauti-cnf (on switch nauti-east)",
        "Logical_Router_Port nauti-east-gw-port (on router nauti-east-gw)",
        "Load_Balancer mcs_shop_cart_tcp",
        "Logical_Switch nauti-east",
        "Logical_Router nauti-east-gw",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(listed, want);
    assert!(String::from_utf8_lossy(&dry.stderr).contains("10 object(s) would be cleaned"));
    assert_eq!(
        state(&client, &remote).await,
        before,
        "a dry run changed something"
    );

    // Clean: exactly those go.
    let cleaned = stdout_of(&nautictl(&kubeconfig, &["clean", "--ovn-nb", &remote]));
    let removed: BTreeSet<String> = cleaned
        .lines()
        .map(|l| l.strip_prefix("removed ").unwrap_or(l).to_owned())
        .collect();
    assert_eq!(removed, want, "{cleaned}");
    let clean_time = clean_started.elapsed();
    let after = state(&client, &remote).await;
    assert_eq!(
        after.pods["default/web-0"],
        BTreeMap::from([
            (keys::ENABLED.to_owned(), "true".to_owned()),
            ("example.com/team".to_owned(), "storefront".to_owned()),
        ])
    );
    assert!(after.pods["shop/cart-1"].is_empty(), "{after:?}");
    assert_eq!(after.pods["default/plain"], before.pods["default/plain"]);
    assert_eq!(
        after.nodes["n1"],
        BTreeMap::from([("example.com/rack".to_owned(), "r1".to_owned())])
    );
    assert_eq!(after.nodes["n2"], before.nodes["n2"]);
    assert_eq!(after.corefile, KUBEADM_COREFILE);
    assert_eq!(after.switches, ["operator-ls,{team=infra}"]);
    assert_eq!(after.ports, ["operator-port,{}"]);
    assert_eq!(after.load_balancers, ["operator-lb,{}"]);
    assert_eq!(after.routers, ["operator-lr,{}"]);
    assert_eq!(after.router_ports, ["operator-lrp,{}"]);
    assert_eq!(after.static_routes.trim(), "198.51.100.0/24");
    assert!(
        after.operator_router_lbs.contains("operator-lb")
            && !after.operator_router_lbs.contains("mcs_shop_cart_tc"),
        "{}",
        after.operator_router_lbs
    );
    assert!(
        after.operator_switch_lbs.contains("operator-lb")
            && !after.operator_switch_lbs.contains("mcs_shop_cart_tc"),
        "{}",
        after.operator_switch_lbs
    );

    // Again: nothing to remove, success, nothing changed.
    let again = stdout_of(&nautictl(&kubeconfig, &["clean", "--ovn-nb", &remote]));
    assert_eq!(again, "nothing of Nauti left to remove\n");
    assert_eq!(state(&client, &remote).await, after);

    // A scan finds nothing of Nauti: no key it writes on any object, no row with its
    // external_ids, no crossdns block; and a dry run lists nothing.
    let scan = state(&client, &remote).await;
    for annotations in scan.pods.values().chain(scan.nodes.values()) {
        for key in keys::ALL {
            assert!(!annotations.contains_key(key), "{key} left: {scan:?}");
        }
    }
    for row in scan
        .switches
        .iter()
        .chain(&scan.ports)
        .chain(&scan.load_balancers)
        .chain(&scan.routers)
        .chain(&scan.router_ports)
    {
        assert!(!row.contains("nauti.io/"), "{row}");
    }
    assert!(!scan.corefile.contains("nauti-crossdns"));
    assert_eq!(
        stdout_of(&nautictl(
            &kubeconfig,
            &["clean", "--dry-run", "--ovn-nb", &remote]
        )),
        ""
    );

    // Failures: the cause named, exit code 1, no panic.
    let bad = dir.path().join("bad.kubeconfig");
    std::fs::write(&bad, "clusters: [unclosed").unwrap();
    assert_fails_naming(&nautictl(&bad, &["clean", "--dry-run"]), "bad kubeconfig");
    assert_fails_naming(
        &nautictl(&kubeconfig, &["--context", "nowhere", "clean"]),
        "unknown context \"nowhere\"",
    );
    let missing = format!("unix:{}", run.join("missing.sock").display());
    assert_fails_naming(
        &nautictl(
            &kubeconfig,
            &["clean", "--ovn-nb", &missing, "--ovn-nb-timeout", "1s"],
        ),
        &format!("connect to the OVN northbound database at {missing}"),
    );
    assert_fails_naming(
        &nautictl(&kubeconfig, &["clean", "--ovn-nb", "nb.example:6641"]),
        "--ovn-nb \"nb.example:6641\" is not",
    );
    let saved = dir.path().join("saved.kubeconfig");
    std::fs::copy(&kubeconfig, &saved).unwrap();
    let url = api.url();
    drop(api);
    let down = nautictl(&saved, &["clean"]);
    assert_fails_naming(&down, &url);
    assert_fails_naming(&down, "list the Pods");
    eprintln!(
        "clean test: setup {:.1} s, dry run and clean {:.1} s, total {:.1} s",
        setup.as_secs_f64(),
        clean_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    drop(server);
}

const HOOK_POLICY: &str = "ValidatingAdmissionPolicy 'nauti-nautictl-clean-writes'";

/// Creates kube-system/coredns with kubeadm's Corefile and wires it with crossdns's own code.
async fn wired_coredns(client: &kube::Client) {
    let coredns_cm = ConfigMap {
        metadata: meta(Some("kube-system"), "coredns", &[]),
        data: Some(BTreeMap::from([(
            "Corefile".to_owned(),
            KUBEADM_COREFILE.to_owned(),
        )])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
        .create(&PostParams::default(), &coredns_cm)
        .await
        .unwrap();
    let location = CorefileLocation {
        namespace: "kube-system".into(),
        name: "coredns".into(),
        key: "Corefile".into(),
    };
    let wired = coredns::wire(client, &location, "10.96.0.53:53".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(wired, Outcome::Changed);
}

/// A merge patch of pod `default/name` by `client`: the API server's answer.
async fn patch_pod(
    client: &kube::Client,
    name: &str,
    patch: serde_json::Value,
    dry_run: bool,
) -> Result<(), kube::core::Status> {
    let params = PatchParams {
        dry_run,
        ..PatchParams::default()
    };
    Api::<Pod>::namespaced(client.clone(), "default")
        .patch(name, &params, &Patch::Merge(patch))
        .await
        .map(drop)
        .map_err(|error| match error {
            kube::Error::Api(status) => *status,
            other => panic!("not an answer of the API server: {other}"),
        })
}

/// A 403 whose message contains `why`.
fn assert_refused(answer: Result<(), kube::core::Status>, what: &str, why: &str) {
    let status = answer.expect_err(what);
    assert_eq!(status.code, 403, "{what}: {status:?}");
    assert!(status.message.contains(why), "{what}: {}", status.message);
}

#[tokio::test]
async fn the_uninstall_hook_identity_removes_nauti_annotations_and_nothing_more() {
    require_root!();
    let started = Instant::now();
    let dir = TestDir::new("nautictl-clean-hook").unwrap();
    let api = KubeApi::start(&dir).await.unwrap();
    let admin = api.client().await.unwrap();
    api.create_namespace("nauti-system").await.unwrap();
    api.apply_repo_file("deploy/rbac/nautictl-clean.yaml")
        .unwrap();
    let token = api
        .unbound_token("nauti-system", "nautictl-clean")
        .await
        .unwrap();
    let hook = api.kubeconfig_with_token("nautictl-clean", &token).unwrap();
    let hook_client = client_from(&hook).await.unwrap();

    // Every key clean removes (a key added to keys::ALL but not to the policy fails here), the
    // user's and the chart's own nauti.io keys and another tool's annotation.
    let mut web: Vec<(&str, &str)> = keys::ALL.iter().map(|k| (*k, "x")).collect();
    web.extend([
        (keys::ENABLED, "true"),
        (keys::FORWARDER, "true"),
        ("example.com/team", "storefront"),
    ]);
    create_pod(&admin, "default", "web-0", &web).await;
    create_pod(&admin, "default", "probe", &[(keys::CIDR, "10.112.0.0/16")]).await;
    let node = Node {
        metadata: meta(
            None,
            "n1",
            &[
                (keys::NODE_CIDR, "10.112.0.0/24"),
                ("example.com/rack", "r1"),
            ],
        ),
        ..Node::default()
    };
    Api::<Node>::all(admin.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    wired_coredns(&admin).await;

    // The API server loads a new policy a moment after it is created: wait until a (dry-run)
    // label change by the hook is refused by it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let label = serde_json::json!({"metadata": {"labels": {"app": "probe"}}});
        match patch_pod(&hook_client, "probe", label, true).await {
            Err(status) if status.code == 403 && status.message.contains(HOOK_POLICY) => break,
            other => assert!(
                Instant::now() < deadline,
                "the policy is not enforced: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The hook's identity has no rights on CoreDNS's ConfigMap: without --keep-coredns clean
    // stops at reading it, and says so.
    let denied = nautictl(&hook, &["clean"]);
    assert_fails_naming(&denied, "read ConfigMap kube-system/coredns key Corefile");
    assert_fails_naming(&denied, "forbidden");

    // As the chart runs it: annotations go, the Corefile stays for crossdns's own hook.
    let cleaned = stdout_of(&nautictl(&hook, &["clean", "--keep-coredns"]));
    assert!(
        cleaned.contains("removed Pod default/web-0 annotations nauti.io/allocated,")
            && cleaned.contains("removed Pod default/probe annotations nauti.io/cidr")
            && cleaned.contains("removed Node n1 annotations nauti.io/node-cidr"),
        "{cleaned}"
    );
    let web_0 = Api::<Pod>::namespaced(admin.clone(), "default")
        .get("web-0")
        .await
        .unwrap();
    assert_eq!(
        web_0.metadata.annotations.unwrap(),
        BTreeMap::from([
            (keys::ENABLED.to_owned(), "true".to_owned()),
            (keys::FORWARDER.to_owned(), "true".to_owned()),
            ("example.com/team".to_owned(), "storefront".to_owned()),
        ])
    );
    let n1 = Api::<Node>::all(admin.clone()).get("n1").await.unwrap();
    assert_eq!(
        n1.metadata.annotations.unwrap(),
        BTreeMap::from([("example.com/rack".to_owned(), "r1".to_owned())])
    );
    let corefile = Api::<ConfigMap>::namespaced(admin.clone(), "kube-system")
        .get("coredns")
        .await
        .unwrap()
        .data
        .unwrap()["Corefile"]
        .clone();
    assert!(corefile.contains("# BEGIN nauti-crossdns"), "{corefile}");
    assert_eq!(
        stdout_of(&nautictl(&hook, &["clean", "--keep-coredns"])),
        "nothing of Nauti left to remove\n"
    );

    // Nothing more: another annotation, the user's opt-out, a label, a new annotation, a delete.
    let null = |key: &str| serde_json::json!({"metadata": {"annotations": {key: null}}});
    assert_refused(
        patch_pod(&hook_client, "web-0", null("example.com/team"), false).await,
        "removing another tool's annotation",
        "may only remove the annotations Nauti writes",
    );
    for kept in [keys::ENABLED, keys::FORWARDER] {
        assert_refused(
            patch_pod(&hook_client, "web-0", null(kept), false).await,
            &format!("removing {kept}"),
            "may only remove the annotations Nauti writes",
        );
    }
    assert_refused(
        patch_pod(
            &hook_client,
            "web-0",
            serde_json::json!({"metadata": {"annotations": {keys::IP_ADDRESS: "10.112.0.9"}}}),
            false,
        )
        .await,
        "adding a nauti.io annotation",
        "not add or change any",
    );
    assert_refused(
        patch_pod(
            &hook_client,
            "web-0",
            serde_json::json!({"metadata": {"labels": {"app": "hijacked"}}}),
            false,
        )
        .await,
        "a label change",
        "may change only annotations",
    );
    let deleted = Api::<Pod>::namespaced(hook_client.clone(), "default")
        .delete("web-0", &DeleteParams::default())
        .await;
    match deleted {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("the hook deleted a pod: {other:?}"),
    }
    eprintln!("hook test: total {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn completion_scripts_name_every_subcommand() {
    let script = |shell: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_nautictl"))
            .args(["completion", shell])
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap();
        stdout_of(&out)
    };
    let bash = script("bash");
    assert!(bash.contains("complete -F _nautictl"), "{bash}");
    for sub in ["join-token", "show", "clean", "completion"] {
        assert!(bash.contains(sub), "{sub} not in the bash script");
    }
    assert!(bash.contains("--dry-run") && bash.contains("--ovn-nb"));
    assert!(script("zsh").starts_with("#compdef nautictl"));
    assert!(script("fish").contains("complete -c nautictl"));
    let unknown = Command::new(env!("CARGO_BIN_EXE_nautictl"))
        .args(["completion", "cmd.exe"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}
