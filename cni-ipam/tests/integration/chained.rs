//! Running a reference main plugin (bridge, macvlan) inside a "node" namespace with nauti-ipam as
//! its IPAM, for pods that are namespaces too.

use std::io::Write;
use std::process::Stdio;

use nauti_testbed::netns::Netns;
use serde_json::Value;

use crate::util::{Reply, cni_path};

/// Runs `/usr/lib/cni/<plugin>` inside `node` for `pod`.
pub fn exec_main_plugin(
    node: &Netns,
    plugin: &str,
    command: &str,
    pod: &Netns,
    conf: &Value,
) -> Reply {
    let mut cmd = node.command(&format!("/usr/lib/cni/{plugin}"));
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", pod.name())
        .env("CNI_NETNS", pod.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn reference plugin");
    if let Some(mut s) = child.stdin.take() {
        s.write_all(conf.to_string().as_bytes())
            .expect("write config");
    }
    Reply::from_output(child.wait_with_output().expect("wait reference plugin"))
}

/// The address the pod's eth0 carries, as `ip -o -4 addr` shows it.
pub fn pod_has_address(pod: &Netns, cidr: &str) -> bool {
    pod.ip(&["-o", "addr", "show", "dev", "eth0"])
        .map(|out| out.contains(&format!("inet {cidr}")))
        .unwrap_or(false)
}

/// ADD for two pods, check addresses and reachability, then DEL both and check the store is empty.
pub fn two_pods_reach_each_other(node: &Netns, plugin: &str, conf: &Value, subnet_prefix: &str) {
    let pod_a = Netns::new("ipa").expect("pod a netns");
    let pod_b = Netns::new("ipb").expect("pod b netns");
    let mut addrs = Vec::new();
    for pod in [&pod_a, &pod_b] {
        let r = exec_main_plugin(node, plugin, "ADD", pod, conf);
        assert!(r.success, "{plugin} ADD failed: {} {}", r.raw, r.stderr);
        let out = r.stdout.expect("result");
        let cidr = out["ips"][0]["address"]
            .as_str()
            .expect("address")
            .to_owned();
        assert!(
            cidr.starts_with(subnet_prefix),
            "{cidr} not in {subnet_prefix}*"
        );
        assert!(pod_has_address(pod, &cidr), "{} lacks {cidr}", pod.name());
        addrs.push(cidr.split('/').next().unwrap_or_default().to_owned());
    }
    assert_ne!(addrs[0], addrs[1]);
    assert!(pod_a.ping(&addrs[1], 3), "pod a cannot reach {}", addrs[1]);
    assert!(pod_b.ping(&addrs[0], 3), "pod b cannot reach {}", addrs[0]);
    for pod in [&pod_a, &pod_b] {
        let mut check = conf.clone();
        check["prevResult"] = serde_json::json!({"cniVersion": conf["cniVersion"], "ips": []});
        let r = exec_main_plugin(node, plugin, "DEL", pod, conf);
        assert!(r.success, "{plugin} DEL failed: {} {}", r.raw, r.stderr);
        // DEL twice is fine.
        let r = exec_main_plugin(node, plugin, "DEL", pod, conf);
        assert!(
            r.success,
            "{plugin} second DEL failed: {} {}",
            r.raw, r.stderr
        );
    }
}
