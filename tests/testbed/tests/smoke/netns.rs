use nauti_testbed::{Netns, require_root};

#[test]
fn two_namespaces_joined_by_a_veth_reach_each_other() {
    require_root!();
    let a = Netns::new("nta").unwrap();
    let b = Netns::new("ntb").unwrap();
    a.veth_to("v0", &b, "v1").unwrap();
    a.add_addr("v0", "198.18.10.1/30").unwrap();
    b.add_addr("v1", "198.18.10.2/30").unwrap();
    assert!(a.ping("198.18.10.2", 3));
}

#[test]
fn a_dropped_namespace_takes_its_links_and_processes_with_it() {
    require_root!();
    let (name, mut child) = {
        let ns = Netns::new("ntc").unwrap();
        let child = ns.command("sleep").arg("600").spawn().unwrap();
        assert!(nauti_testbed::process::wait_until(
            std::time::Duration::from_secs(5),
            || !ns.pids().is_empty()
        ));
        (ns.name().to_owned(), child)
    };
    let pid = child.id();
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(&name),
        "{name} still listed"
    );
    // The namespace's drop killed it, so reaping it does not block.
    let status = child.try_wait().unwrap();
    assert!(status.is_some(), "process {pid} survived its namespace");
}
