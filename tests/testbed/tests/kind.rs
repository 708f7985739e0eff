//! `deploy/kind/`: what can be checked on a machine without Docker. containerd 2.4 itself reads
//! the kind config's patch (and the node drop-in of `deploy/containerd`) and must put NRI on at the
//! socket the agent chart mounts; the kind clusters' ranges stay clear of the global network; the
//! example workflow runs the demo's steps in the demo's order, and those steps' values pass the
//! charts' schemas through a real `helm template`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use nauti_testbed::{TestDir, peers, repo_root};
use serde_json::Value;

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(path)).expect(path);
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The chart's default NRI socket: where the DaemonSet looks on every node.
fn chart_nri_socket() -> String {
    yaml("deploy/charts/nauti-agent/values.yaml")["nri"]["socketPath"]
        .as_str()
        .expect("nri.socketPath")
        .to_owned()
}

/// `containerd config dump` of a configuration: containerd's own parser, merged with its defaults.
/// Returns the NRI plugin's section; fails on any key containerd does not know.
fn nri_section_as_containerd_reads(dir: &TestDir, name: &str, config: &str) -> String {
    let file = dir.path().join(name);
    std::fs::write(&file, config).unwrap();
    let out = Command::new(peers::bin("containerd").unwrap())
        .arg("--config")
        .arg(&file)
        .args(["config", "dump"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name}: containerd refused it: {stderr}"
    );
    assert!(
        !stderr.contains("unknown key"),
        "{name}: containerd ignores part of it: {stderr}"
    );
    let dump = String::from_utf8(out.stdout).unwrap();
    let start = dump
        .find("[plugins.'io.containerd.nri.v1.nri']")
        .unwrap_or_else(|| panic!("{name}: no NRI section in\n{dump}"));
    let rest = &dump[start..];
    let end = rest[1..].find("\n  [").map_or(rest.len(), |i| i + 1);
    rest[..end].to_owned()
}

fn assert_nri_on_at(section: &str, socket: &str, what: &str) {
    for line in [
        "disable = false".to_owned(),
        "disable_connections = false".to_owned(),
        format!("socket_path = '{socket}'"),
        "plugin_request_timeout = '5s'".to_owned(),
    ] {
        assert!(
            section.lines().any(|l| l.trim() == line),
            "{what}: containerd does not read `{line}` from it:\n{section}"
        );
    }
}

#[test]
fn the_kind_patch_and_the_node_drop_in_put_nri_where_the_chart_looks() {
    let dir = TestDir::new("kind-config").unwrap();
    let kind = yaml("deploy/kind/cluster.yaml");
    assert_eq!(kind["kind"], "Cluster");
    assert_eq!(kind["apiVersion"], "kind.x-k8s.io/v1alpha4");
    let patches = kind["containerdConfigPatches"].as_array().expect("patches");
    assert_eq!(patches.len(), 1, "one patch: {patches:?}");
    let patch = patches[0].as_str().unwrap();
    let socket = chart_nri_socket();
    // kind merges the patch into the node's configuration, version 2 or 3 by node image.
    for version in [2, 3] {
        let section = nri_section_as_containerd_reads(
            &dir,
            &format!("kind-v{version}.toml"),
            &format!("version = {version}\n{patch}\n"),
        );
        assert_nri_on_at(&section, &socket, "deploy/kind/cluster.yaml");
    }
    let drop_in = std::fs::read_to_string(repo_root().join("deploy/containerd/nauti-nri.toml"))
        .expect("drop-in");
    let section = nri_section_as_containerd_reads(&dir, "drop-in.toml", &drop_in);
    assert_nri_on_at(&section, &socket, "deploy/containerd/nauti-nri.toml");
}

fn cidr(text: &str) -> (u32, u32) {
    let (addr, len) = text.split_once('/').expect(text);
    let addr: Ipv4Addr = addr.parse().expect(text);
    let len: u32 = len.parse().expect(text);
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    (u32::from(addr) & mask, mask)
}

fn overlap(a: &str, b: &str) -> bool {
    let ((na, ma), (nb, mb)) = (cidr(a), cidr(b));
    let common = ma & mb;
    na & common == nb & common
}

#[test]
fn the_kind_clusters_ranges_stay_clear_of_the_global_network() {
    let kind = yaml("deploy/kind/cluster.yaml");
    let global = yaml("deploy/charts/nauti/values.yaml")["tunnel"]["cidr"]
        .as_str()
        .expect("tunnel.cidr")
        .to_owned();
    for key in ["podSubnet", "serviceSubnet"] {
        let range = kind["networking"][key].as_str().expect(key);
        assert!(
            !overlap(range, &global),
            "{key} {range} overlaps the global network {global}"
        );
    }
    // The check itself can fail.
    assert!(overlap("10.112.3.0/24", &global));
}

fn steps_script() -> std::path::PathBuf {
    repo_root().join("deploy/kind/steps.sh")
}

/// The steps `steps.sh all` runs, in order, read from the script.
fn demo_steps() -> Vec<String> {
    let script = std::fs::read_to_string(steps_script()).unwrap();
    let line = script
        .lines()
        .find(|l| l.contains("[ \"$1\" = all ] && steps=("))
        .expect("the `all` line of steps.sh");
    let inner = &line[line.find("steps=(").unwrap() + 7..line.rfind(')').unwrap()];
    inner.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_workflow_runs_the_demo_steps_in_order_with_values_the_charts_accept() {
    let workflow = yaml("deploy/kind/ci-workflow.yaml");
    let steps = workflow["jobs"]["demo"]["steps"]
        .as_array()
        .expect("jobs.demo.steps");
    let run: Vec<String> = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .filter_map(|r| r.trim().strip_prefix("deploy/kind/steps.sh "))
        .map(|r| r.trim().to_owned())
        .collect();
    let expected = demo_steps();
    assert!(
        expected.len() >= 8,
        "steps.sh all runs too little: {expected:?}"
    );
    assert_eq!(run, expected, "the workflow's steps are not the demo's");

    let syntax = Command::new("bash")
        .arg("-n")
        .arg(steps_script())
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );

    let helm = peers::bin("helm").unwrap();
    let path = format!(
        "{}:{}",
        helm.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(steps_script())
        .arg("values_check")
        .env("PATH", path)
        .current_dir(Path::new("/"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("values ok"),
        "the demo's values do not render: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
