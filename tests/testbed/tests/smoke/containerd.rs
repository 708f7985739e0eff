use std::os::unix::net::UnixStream;
use std::path::Path;

use nauti_testbed::{Containerd, Netns, PodSpec, TestDir, require_root};

fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_busybox_pod_runs_through_cri_and_leaves_nothing_behind() {
    require_root!();
    let dir = TestDir::new("ctrd-pod").unwrap();
    let node = Netns::new("ncd").unwrap();
    let ctrd = Containerd::start(&node, &dir).unwrap();

    let pod = ctrd.run_pod(&PodSpec::new("default", "smoke")).unwrap();
    let netns = ctrd.pod_netns(&pod).unwrap().expect("pod has no netns");
    assert!(netns.starts_with(ctrd.state_dir()), "{}", netns.display());
    let container = ctrd
        .run_container(&pod, "sh", &["/bin/sh", "-c", "sleep 3600"])
        .unwrap();
    let addrs = ctrd
        .exec(&container, &["ip", "-4", "-o", "addr", "show", "eth0"])
        .unwrap();
    assert!(
        addrs.contains("10.88.0."),
        "eth0 lacks the primary address: {addrs}"
    );

    ctrd.remove_pod(&pod).unwrap();
    assert!(ctrd.pod_ids().unwrap().is_empty());
    let state = ctrd.state_dir();
    assert!(
        mounts_under(&state).is_empty(),
        "mounts left after removal: {:?}",
        mounts_under(&state)
    );
}

#[test]
fn containerd_exposes_an_nri_socket_that_accepts_connections() {
    require_root!();
    let dir = TestDir::new("ctrd-nri").unwrap();
    let node = Netns::new("ncn").unwrap();
    let ctrd = Containerd::start(&node, &dir).unwrap();
    let stream = UnixStream::connect(ctrd.nri_socket());
    assert!(stream.is_ok(), "{:?}", stream.err());
}

#[test]
fn a_host_network_pod_has_no_network_namespace_of_its_own() {
    require_root!();
    let dir = TestDir::new("ctrd-hostnet").unwrap();
    let node = Netns::new("nch").unwrap();
    let ctrd = Containerd::start(&node, &dir).unwrap();
    let mut spec = PodSpec::new("kube-system", "hostnet");
    spec.host_network = true;
    let pod = ctrd.run_pod(&spec).unwrap();
    assert_eq!(ctrd.pod_netns(&pod).unwrap(), None);
}
