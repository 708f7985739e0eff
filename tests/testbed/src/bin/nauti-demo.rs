//! `make demo`: one Nauti node on real peers (kube-apiserver, OVN/OVS, containerd with NRI), the
//! `nauti-nri` plugin in it, two pods started through CRI; prints what each pod got and shows
//! traffic between them over the OVN logical switch.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nauti_testbed::node_bed::{NODE_BLOCK, NodeBed, SWITCH, nic_in};
use nauti_testbed::traffic::tcp_transfer_between;

type DemoResult<T> = Result<T, Box<dyn std::error::Error>>;

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match demo().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn demo() -> DemoResult<()> {
    let plugin: PathBuf = std::env::var_os("NAUTI_NRI_BIN")
        .map(PathBuf::from)
        .ok_or("NAUTI_NRI_BIN must name the nauti-nri binary (make demo sets it)")?;
    let started = Instant::now();
    say(
        "== starting one node: kube-apiserver, OVN central + chassis, containerd with NRI, nauti-nri",
    );
    let bed = NodeBed::start("demo", plugin, &[]).await?;
    say(format!(
        "   ready in {:.1}s; logical switch {SWITCH}, this node's block {NODE_BLOCK}",
        started.elapsed().as_secs_f64()
    ));

    let mut pods = Vec::new();
    for name in ["alpha", "beta"] {
        let pod = bed.run_pod(name, &[]).await?;
        let container = bed
            .ctrd
            .run_container(&pod, "sh", &["/bin/sh", "-c", "sleep 3600"])?;
        let annotations = bed.annotations_when_allocated(name).await?;
        let (inet, mac) = nic_in(&bed.ctrd, &container)?;
        let annotated = annotations
            .get("nauti.io/ip_address")
            .cloned()
            .unwrap_or_else(|| "(none)".into());
        say(format!("== pod default/{name}"));
        say(format!("   nauti.io/ip_address  = {annotated}"));
        say(format!(
            "   nauti.io/mac_address = {}",
            annotations
                .get("nauti.io/mac_address")
                .map_or("(none)", String::as_str)
        ));
        say(format!(
            "   nauti.io/routes      = {}",
            annotations
                .get("nauti.io/routes")
                .map_or("(none)", String::as_str)
        ));
        say(format!(
            "   eth-nauti in the pod: {} (MAC {mac})",
            inet.split_whitespace().nth(3).unwrap_or("?")
        ));
        pods.push((pod, container, annotated));
    }

    let (alpha, beta) = (&pods[0], &pods[1]);
    say(format!("== ping from alpha to beta ({}) over OVN", beta.2));
    let mut answered = false;
    for _ in 0..10 {
        if let Ok(out) = bed
            .ctrd
            .exec(&alpha.1, &["ping", "-c", "3", "-W", "2", &beta.2])
        {
            for line in out.lines().filter(|l| !l.trim().is_empty()) {
                say(format!("   {line}"));
            }
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !answered {
        return Err("alpha could not ping beta".into());
    }

    let bytes = 64 * 1024 * 1024;
    let server = bed.ctrd.pod_netns(&beta.0)?.ok_or("beta has no netns")?;
    let client = bed.ctrd.pod_netns(&alpha.0)?.ok_or("alpha has no netns")?;
    let t0 = Instant::now();
    let got = tcp_transfer_between(
        &server,
        &client,
        beta.2.parse()?,
        5201,
        bytes,
        Duration::from_secs(60),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    say(format!(
        "== TCP alpha -> beta: {} MiB in {secs:.2}s ({:.0} Mbit/s, userspace datapath)",
        got / (1024 * 1024),
        got as f64 * 8.0 / secs / 1e6
    ));
    say("== tearing down (pods, plugin, containerd, OVN, kube-apiserver, namespaces)");
    Ok(())
}
