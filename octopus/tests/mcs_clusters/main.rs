//! Multi-cluster services across real clusters (ClusterBed: a hub and two members behind NAT,
//! installed as `--test crosscluster` installs them): the seed's nginx example exported in east
//! is reached by name and by clusterset IP from a pod in west, through west's own CoreDNS wired
//! to crossdns; the answers follow scaling and pod replacement in east, and an unexport takes
//! the names and west's ServiceImport away. Between the two, on the same bed, the
//! [`phases`] of a headless export, a forged pod address, a frozen hub, an export from both
//! members with a conflict, and invalid exports.
//!
//! crossdns runs in west as a pod (this build's binary mounted into the tools image) under the
//! RBAC of deploy/rbac/crossdns.yaml; `crossdns wire-coredns` and `unwire-coredns` run inside
//! it, so they too work with only that RBAC.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../crosscluster/cluster.rs"]
#[allow(
    dead_code,
    reason = "shared with --test crosscluster, which uses the rest"
)]
mod cluster;
mod mcs;
mod phases;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nauti_testbed::cluster_bed::{ClusterBed, ClusterSpec};
use nauti_testbed::require_root;

use cluster::{Member, deploy_hub, issue_token};
use mcs::{
    DigAnswer, corefile, crossdns_command, crossdns_log, curl, deploy_crossdns,
    deploy_exported_nginx, dig, eventually, install_hub_mcs_crds, pod_nameserver, ready_nginx,
    wait_cnf_ready,
};
use phases::{
    CLUSTERSET_NAME, HYPEROS_NAME, PROPAGATION, Phases, deploy_headless, deploy_invalid_exports,
};

const SRV_NAME: &str = "_http._tcp.nginx-svc.default.svc.clusterset.local";

#[test]
fn an_nginx_exported_in_east_is_reached_by_name_and_clusterset_ip_from_west() {
    require_root!();
    let started = Instant::now();
    let bed = ClusterBed::start(
        "mcs",
        &[
            ClusterSpec::hub("hub", 1),
            ClusterSpec::member("east", 1),
            ClusterSpec::member("west", 1),
        ],
    )
    .unwrap();
    let hub = bed.cluster("hub").unwrap();
    deploy_hub(hub);
    install_hub_mcs_crds(hub);
    let token = issue_token(hub);
    let east = Member::start(&bed, "east", "10.113.0.0/16", &token);
    let west = Member::start(&bed, "west", "10.114.0.0/16", &token);

    // crossdns in west, and west's CoreDNS forwarding both zones to it (its `reload` picks
    // the new Corefile up while the rest starts).
    let original_corefile = corefile(west.cluster());
    let crossdns_ip = deploy_crossdns(west.cluster());
    let wired = crossdns_command(
        west.cluster(),
        &["wire-coredns", "--forward-to", &crossdns_ip],
    );
    let wired_corefile = corefile(west.cluster());
    assert!(
        wired.is_ok() && wired_corefile.contains(&format!("forward . {crossdns_ip}:53")),
        "wire-coredns: {wired:?}\n{wired_corefile}\n{}",
        crossdns_log(west.cluster())
    );

    wait_cnf_ready(east.cluster());
    wait_cnf_ready(west.cluster());
    let bed_ready = started.elapsed();

    let diagnostics = || {
        let imports = west
            .cluster()
            .kubectl(&["get", "serviceimports,endpointslices", "-A", "-o", "wide"])
            .unwrap_or_default();
        let exports = east
            .cluster()
            .kubectl(&["get", "serviceexports", "-A", "-o", "yaml"])
            .unwrap_or_default();
        let balancers = west
            .cluster()
            .central
            .nbctl(&["lb-list"])
            .unwrap_or_default();
        format!(
            "=== east\n{}\n--- serviceexports\n{exports}\n=== west\n{}\n--- imports\n{imports}\n\
             --- load balancers\n{balancers}\n--- crossdns\n{}\n--- Corefile\n{}",
            east.diagnostics(),
            west.diagnostics(),
            crossdns_log(west.cluster()),
            corefile(west.cluster()),
        )
    };

    let exported = Instant::now();
    deploy_exported_nginx(east.cluster(), 2);
    // The later phases' workloads start beside it: a headless StatefulSet in each member
    // (exported from east, not yet from west) and two invalid exports.
    deploy_headless(east.cluster(), 2, true);
    deploy_headless(west.cluster(), 1, false);
    deploy_invalid_exports(east.cluster());
    west.run_pod("client", &["sleep", "3600"]);
    let nameserver = pod_nameserver(&west, "client");
    let ask = |name: &str, record_type: &str| -> Result<DigAnswer, String> {
        dig(&west, "client", &nameserver, name, record_type)
    };
    // Once east's ready pods are as `settled` wants, the A answers of the hyperos.local name
    // from `server` are exactly their addresses: the pods, and how long it took.
    let answers_from = |server: &str, what: &str, settled: &dyn Fn(&BTreeSet<String>) -> bool| {
        let start = Instant::now();
        let names = eventually(what, PROPAGATION, &diagnostics, || {
            let (pods, addresses) = ready_nginx(east.cluster());
            if !settled(&pods) {
                return Err(format!("east's ready pods {pods:?}"));
            }
            let answer = dig(&west, "client", server, HYPEROS_NAME, "A")?;
            if answer.status == "NOERROR" && answer.of_type("A") == addresses {
                Ok(pods)
            } else {
                Err(format!("{answer:?}, east's ready endpoints {addresses:?}"))
            }
        });
        (names, start.elapsed())
    };
    // Through west's CoreDNS, as every pod asks.
    let answers_follow = |what: &str, settled: &dyn Fn(&BTreeSet<String>) -> bool| {
        answers_from(&nameserver, what, settled)
    };

    // Phase 1: by name, through CoreDNS and crossdns, to the pods in east.
    // crossdns itself first (the sync's part), then west's CoreDNS (its `reload` may lag).
    answers_from(&crossdns_ip, "crossdns answers east's pods", &|p| {
        p.len() == 2
    });
    let crossdns_answer = exported.elapsed();
    let (pods, _) = answers_follow("hyperos.local answers east's pods through CoreDNS", &|p| {
        p.len() == 2
    });
    let coredns_answer = exported.elapsed();
    let page = eventually(
        "curl nginx-svc.default.svc.hyperos.local from west",
        Duration::from_secs(60),
        &diagnostics,
        || curl(&west, "client", &format!("http://{HYPEROS_NAME}/")),
    );
    assert!(page.contains("<h1>Welcome to nginx!</h1>"), "{page}");
    let served_by = curl(&west, "client", &format!("http://{HYPEROS_NAME}/hostname"))
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnostics()));
    assert!(
        pods.contains(served_by.trim()),
        "served by {served_by:?}, not one of east's pods {pods:?}"
    );

    // The clusterset name: west's ServiceImport's IP, through west's own CoreDNS.
    let clusterset_ip = eventually(
        "west's ServiceImport has a clusterset IP",
        PROPAGATION,
        &diagnostics,
        || {
            let ip = west
                .cluster()
                .kubectl(&[
                    "get",
                    "serviceimport",
                    "nginx-svc",
                    "-o",
                    "jsonpath={.spec.type} {.spec.ips[0]}",
                ])
                .map_err(|e| e.to_string())?;
            match ip.trim().split_once(' ') {
                Some(("ClusterSetIP", ip)) if !ip.is_empty() => Ok(ip.to_owned()),
                _ => Err(format!("ServiceImport: {ip:?}")),
            }
        },
    );
    assert!(
        clusterset_ip.starts_with("10.127."),
        "clusterset IP {clusterset_ip} outside the block set aside for it"
    );
    let a = eventually(
        "the clusterset name resolves",
        PROPAGATION,
        &diagnostics,
        || {
            let answer = ask(CLUSTERSET_NAME, "A")?;
            (answer.status == "NOERROR" && !answer.answers.is_empty())
                .then_some(answer.clone())
                .ok_or(format!("{answer:?}"))
        },
    );
    assert_eq!(
        a.of_type("A"),
        BTreeSet::from([clusterset_ip.clone()]),
        "{a:?}"
    );
    let srv = ask(SRV_NAME, "SRV").unwrap_or_else(|e| panic!("{e}\n{}", diagnostics()));
    assert_eq!(
        srv.of_type("SRV"),
        BTreeSet::from([format!("0 100 80 {CLUSTERSET_NAME}.")]),
        "{srv:?}"
    );
    let version = ask("dns-version.clusterset.local", "TXT").unwrap();
    assert_eq!(
        version.of_type("TXT"),
        BTreeSet::from(["\"1.0.0\"".to_owned()]),
        "{version:?}"
    );
    // The clusterset IP works: west's switch balances it over east's endpoints.
    let served_by = eventually(
        "curl to the clusterset IP from west",
        Duration::from_secs(30),
        &diagnostics,
        || curl(&west, "client", &format!("http://{clusterset_ip}/hostname")),
    );
    assert!(
        pods.contains(served_by.trim()),
        "the clusterset IP was served by {served_by:?}, not one of east's pods {pods:?}"
    );
    let page = curl(&west, "client", &format!("http://{CLUSTERSET_NAME}/"))
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnostics()));
    assert!(page.contains("<h1>Welcome to nginx!</h1>"), "{page}");
    let phase_one = started.elapsed();
    let phases = Phases {
        hub,
        east: &east,
        west: &west,
        nameserver: nameserver.clone(),
        crossdns_ip: crossdns_ip.clone(),
        diagnostics: &diagnostics,
    };
    let headless_answer = phases.headless();
    let headless_done = started.elapsed();

    // Phase 2: the answers follow east's Deployment.
    let scale = |replicas: u32| {
        east.cluster()
            .kubectl(&[
                "scale",
                "deployment/nginx-app",
                &format!("--replicas={replicas}"),
            ])
            .unwrap();
    };
    scale(3);
    let (pods, scaled_up) = answers_follow("answers follow a scale to 3", &|p| p.len() == 3);
    // The clusterset IP balances over them: a dozen connections reach more than one pod, and
    // only these.
    let spread = eventually(
        "the clusterset IP balances over east's three pods",
        Duration::from_secs(20),
        &diagnostics,
        || {
            let out = west.exec(
                "client",
                &[
                    "sh",
                    "-c",
                    &format!(
                        "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do \
                         curl -sS -m 3 http://{clusterset_ip}/hostname || exit 1; done"
                    ),
                ],
            )?;
            let served: BTreeSet<String> = out.lines().map(|l| l.trim().to_owned()).collect();
            if served.len() >= 2 && served.is_subset(&pods) {
                Ok(served.len())
            } else {
                Err(format!("served by {served:?}, east's pods {pods:?}"))
            }
        },
    );
    let replaced = pods.iter().next().unwrap().clone();
    east.cluster()
        .kubectl(&["delete", "pod", &replaced, "--wait=false"])
        .unwrap();
    let (_, after_delete) = answers_follow("answers follow a deleted pod", &|p| {
        p.len() == 3 && !p.contains(&replaced)
    });
    scale(1);
    let (pods, scaled_down) = answers_follow("answers follow a scale to 1", &|p| p.len() == 1);
    // The load balancer is written in the same pass as the slices crossdns reads: a short
    // wait, and only the remaining pod serves (three tries in a row).
    eventually(
        "the clusterset IP follows the scale down",
        Duration::from_secs(20),
        &diagnostics,
        || {
            for _ in 0..3 {
                let served_by = curl(&west, "client", &format!("http://{clusterset_ip}/hostname"))?;
                if !pods.contains(served_by.trim()) {
                    return Err(format!("served by {served_by:?}, not {pods:?}"));
                }
            }
            Ok(())
        },
    );

    // The later phases, each leaving east's nginx exported and only it.
    phases.forged_annotation();
    let after_outage = phases.hub_outage(&clusterset_ip);
    let both_served = phases.exported_from_both(&clusterset_ip);
    phases.invalid_exports();
    let later_phases = started.elapsed();

    // Unexport: both names go away and so does west's ServiceImport (and its load balancer).
    let unexported = Instant::now();
    east.cluster()
        .kubectl(&["delete", "serviceexport", "nginx-svc"])
        .unwrap();
    eventually(
        "the names go away after the unexport",
        PROPAGATION,
        &diagnostics,
        || {
            let by_name = ask(HYPEROS_NAME, "A")?;
            let clusterset = ask(CLUSTERSET_NAME, "A")?;
            if by_name.status == "NXDOMAIN" && clusterset.status == "NXDOMAIN" {
                Ok(())
            } else {
                Err(format!("{by_name:?} {clusterset:?}"))
            }
        },
    );
    let names_gone = unexported.elapsed();
    eventually(
        "west's ServiceImport is deleted",
        Duration::from_secs(30),
        &diagnostics,
        || {
            let out = west
                .cluster()
                .kubectl(&["get", "serviceimports", "-A", "-o", "name"])
                .map_err(|e| e.to_string())?;
            out.trim().is_empty().then_some(()).ok_or(out)
        },
    );
    eventually(
        "the clusterset IP's load balancer is removed",
        Duration::from_secs(30),
        &diagnostics,
        || {
            let out = west
                .cluster()
                .central
                .nbctl(&["lb-list"])
                .map_err(|e| e.to_string())?;
            (!out.contains(&clusterset_ip)).then_some(()).ok_or(out)
        },
    );

    // unwire-coredns gives back the Corefile as it was.
    crossdns_command(west.cluster(), &["unwire-coredns"])
        .unwrap_or_else(|e| panic!("unwire-coredns: {e}"));
    assert_eq!(corefile(west.cluster()), original_corefile);

    eprintln!(
        "mcs_clusters: bed and Nauti ready in {bed_ready:?}; crossdns answered {crossdns_answer:?} \
         after the export was applied (its pods starting included), west's CoreDNS \
         {coredns_answer:?} after it; phase 1 done at {phase_one:?}; answers followed a scale up in \
         {scaled_up:?} (the clusterset IP then reached {spread} of 3 pods in 12 connections), a deleted pod in {after_delete:?}, a scale down in {scaled_down:?}; \
         names gone {names_gone:?} after the unexport; in all {:?}. Headless names answered \
         {headless_answer:?} after east's StatefulSet was ready (done at {headless_done:?}); \
         east's scale up reached west {after_outage:?} after the hub's API server was back; \
         exported from both, the clusterset IP served {both_served} pods of both clusters; \
         the later phases done at {later_phases:?}",
        started.elapsed()
    );
}
