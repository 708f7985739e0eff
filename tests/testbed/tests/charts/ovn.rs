//! The OVN pods' scripts, run as the chart renders them with Debian's Open vSwitch and OVN (the
//! packages the OVN image is built from): each container in a mount and PID namespace of its own
//! with its volumes bound where the pod would have them, inside one network namespace standing
//! for a node. OVN central starts on an empty volume and again on the same volume; the chassis
//! finds central by the Service's name and registers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nauti_testbed::process::wait_until;
use nauti_testbed::{Daemon, Netns, TestDir, require_root};
use serde_json::Value;

use crate::helm::{AGENT_CHART, Helm, NAMESPACE};
use crate::values::{agent_seed, write_ca};

const NODE: &str = "charts-node-0";
/// The node's address, in the test range of the underlay (198.18.0.0/15), only in its namespace.
const NODE_IP: &str = "198.18.200.1";

/// Mounts the container's volumes, then runs its command; `/run` is a tmpfs of its own, so
/// nothing it writes under `/var/run` reaches the machine's.
const WRAPPER: &str = r#"set -e
mount -t tmpfs tmpfs /run
for pair in $CHART_MOUNTS; do
  mkdir -p "${pair#*=}"
  mount --bind "${pair%%=*}" "${pair#*=}"
done
mount --bind "$CHART_HOSTS" /etc/hosts
exec "$0" "$@"
"#;

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Starts every container of `workload` (a StatefulSet or DaemonSet) in `netns`; volumes are
/// folders `<volumes>/<volume name>`, shared by the containers of the pod and across pods.
fn start_pod(dir: &TestDir, netns: &Netns, workload: &Value, volumes: &Path) -> Vec<Daemon> {
    let hosts = dir.path().join("hosts");
    // The cluster DNS answer for OVN central's Service: this node (everything runs in it).
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n127.0.0.1 ovn-central.{NAMESPACE}.svc\n"),
    )
    .unwrap();
    let spec = &workload["spec"]["template"]["spec"];
    let mut daemons = Vec::new();
    for container in spec["containers"].as_array().unwrap() {
        let name = container["name"].as_str().unwrap();
        let mut mounts = Vec::new();
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            let volume = mount["name"].as_str().unwrap();
            // The node's kernel modules are only read by the kernel datapath.
            if volume == "modules" {
                continue;
            }
            let source: PathBuf = volumes.join(volume);
            std::fs::create_dir_all(&source).unwrap();
            mounts.push(format!(
                "{}={}",
                source.display(),
                mount["mountPath"].as_str().unwrap()
            ));
        }
        let mut env = BTreeMap::new();
        for var in container["env"].as_array().into_iter().flatten() {
            let key = var["name"].as_str().unwrap().to_owned();
            let value = match (
                &var["value"],
                var["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
            ) {
                (Value::String(v), _) => v.clone(),
                (_, Some("spec.nodeName")) => NODE.to_owned(),
                (_, Some("status.hostIP")) => NODE_IP.to_owned(),
                other => panic!("{name}: {key} from {other:?}"),
            };
            env.insert(key, value);
        }
        let command: Vec<&str> = container["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", netns.name()))
            .args([
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                "/bin/sh",
                "-c",
                WRAPPER,
            ])
            .args(&command)
            .env("CHART_MOUNTS", mounts.join(" "))
            .env("CHART_HOSTS", &hosts)
            .envs(&env);
        daemons.push(Daemon::spawn(name, cmd, &dir.log(name)).unwrap());
    }
    daemons
}

/// Waits until `ready` holds, failing at once, naming it, when a container of `pods` exits.
fn wait_for(pods: &mut [&mut Vec<Daemon>], what: &str, mut ready: impl FnMut() -> bool) {
    let mut exited = None;
    let ok = wait_until(Duration::from_secs(60), || {
        for daemon in pods.iter_mut().flat_map(|p| p.iter_mut()) {
            if !daemon.is_running() {
                exited = Some(daemon.log().display().to_string());
                return true;
            }
        }
        ready()
    });
    if let Some(log) = exited {
        panic!("waiting for {what}: a container exited (log {log})");
    }
    assert!(ok, "{what} did not happen within 60 s");
}

/// An OVSDB client command inside `netns`.
fn ctl(netns: &Netns, tool: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", netns.name()))
        .arg(tool)
        .arg("--timeout=5")
        .args(args)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn ovn_central_and_chassis_scripts_run_with_debians_ovn() {
    require_root!();
    let dir = TestDir::new("charts-ovn").unwrap();
    let helm = Helm::new(&dir);
    let ca = write_ca(&dir);
    let mut values = agent_seed(Path::new(&ca), "cluster1");
    values.extend([
        "--set".to_owned(),
        "ovn.chassis.datapathType=netdev".to_owned(),
    ]);
    let objects = helm.template(AGENT_CHART, &values);
    let central = find(&objects, "StatefulSet", "ovn-central");
    let chassis = find(&objects, "DaemonSet", "ovn-chassis");
    let netns = Netns::new("charts-ovn").unwrap();
    // The node's address (getaddrinfo answers for IPv4 only where a non-loopback IPv4 exists).
    netns
        .ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ])
        .unwrap();
    netns.add_addr("eth0", &format!("{NODE_IP}/24")).unwrap();
    netns.ip(&["link", "set", "eth0", "up"]).unwrap();
    netns.ip(&["link", "set", "eth1", "up"]).unwrap();
    let volumes = dir.sub("volumes").unwrap();
    let nb = "--db=tcp:127.0.0.1:6641";
    let sb = "--db=tcp:127.0.0.1:6642";

    // Central on an empty volume: both databases answer and northd turns a logical switch into
    // a datapath binding.
    let mut central_pod = start_pod(&dir, &netns, central, &volumes);
    wait_for(&mut [&mut central_pod], "the northbound database", || {
        ctl(&netns, "ovn-nbctl", &[nb, "ls-add", "nauti-cluster1"]).is_some()
    });
    let bound = || {
        ctl(
            &netns,
            "ovn-sbctl",
            &[
                sb,
                "--bare",
                "--columns=external_ids",
                "list",
                "datapath_binding",
            ],
        )
        .is_some_and(|out| out.contains("name=nauti-cluster1"))
    };
    wait_for(&mut [&mut central_pod], "northd binding the switch", bound);

    // The chassis finds central by the Service's name and registers under the node's name,
    // with br-int on the datapath the values chose.
    let mut chassis_pod = start_pod(&dir, &netns, chassis, &volumes);
    let registered = || {
        ctl(
            &netns,
            "ovn-sbctl",
            &[sb, "--bare", "--columns=name", "list", "chassis"],
        )
        .is_some_and(|out| out.trim() == NODE)
    };
    wait_for(
        &mut [&mut central_pod, &mut chassis_pod],
        "the chassis registering",
        registered,
    );
    let db = format!(
        "--db=unix:{}",
        volumes.join("ovs-run").join("db.sock").display()
    );
    assert_eq!(
        ctl(
            &netns,
            "ovs-vsctl",
            &[&db, "get", "bridge", "br-int", "datapath_type"]
        )
        .as_deref(),
        Some("netdev\n")
    );
    drop(chassis_pod);

    // A new central pod on the same volume keeps the switch: the databases live on the claim.
    drop(central_pod);
    let mut central_again = start_pod(&dir, &netns, central, &volumes);
    let listed = || {
        ctl(&netns, "ovn-nbctl", &[nb, "ls-list"]).is_some_and(|out| out.contains("nauti-cluster1"))
    };
    wait_for(
        &mut [&mut central_again],
        "the switch after a restart",
        listed,
    );
}
