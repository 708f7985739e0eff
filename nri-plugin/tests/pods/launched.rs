//! The plugin as containerd launches it itself: no arguments, no environment, its settings in the
//! plugin configuration file containerd passes in `Configure`.

use nauti_testbed::require_root;

use crate::support::{NODE_BLOCK, nic_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_containerd_launches_is_configured_by_its_file_and_plumbs_pods() {
    require_root!();
    let mut bed = crate::support::start_without_plugin("nri-launched").await;
    bed.install_launched_plugin().unwrap();

    let pod = bed.run_pod("launched", &[]).await.unwrap();
    let c = bed
        .ctrd
        .run_container(&pod, "sh", &["/bin/sh", "-c", "sleep 3600"])
        .unwrap();
    let net = crate::support::annotated(&bed, "launched").await;
    let block: ipnet::IpNet = NODE_BLOCK.parse().unwrap();
    assert!(block.contains(&net.ip_address), "{}", net.ip_address);
    let (addr, mac) = nic_in(&bed, &c);
    assert!(
        addr.contains(&format!("inet {}/16", net.ip_address)),
        "{addr}"
    );
    assert_eq!(mac, net.mac_address.to_string());

    // Its stderr leads nowhere; the log file named in the configuration has its lines.
    let log = std::fs::read_to_string(bed.launched_plugin_log()).unwrap();
    assert!(log.contains("configured by the runtime"), "{log}");
    assert!(log.contains("second NIC plumbed"), "{log}");
}
