//! nauti-ipam as the IPAM of Debian's `bridge` plugin.

use nauti_testbed::netns::Netns;
use nauti_testbed::require_root;
use nauti_testbed::testdir::TestDir;
use serde_json::json;

use crate::chained::two_pods_reach_each_other;
use crate::util::data_dir;

#[test]
fn pods_on_a_bridge_get_addresses_of_the_range_and_reach_each_other() {
    require_root!();
    let dir = TestDir::new("ipam-bridge").unwrap();
    // The bridge lives in a namespace of its own, never in the machine's.
    let node = Netns::new("ipn").unwrap();
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "nauti-bridge",
        "type": "bridge",
        "bridge": "nbr0",
        "isGateway": false,
        "ipMasq": false,
        "ipam": {
            "type": "nauti-ipam",
            "ranges": [[{"subnet": "10.112.40.0/24", "gateway": "10.112.40.1"}]],
            "dataDir": data_dir(&dir),
        },
    });
    two_pods_reach_each_other(&node, "bridge", &conf, "10.112.40.");
    let state = std::fs::read_to_string(data_dir(&dir).join("nauti-bridge").join("state.0"))
        .unwrap_or_default()
        + &std::fs::read_to_string(data_dir(&dir).join("nauti-bridge").join("state.1"))
            .unwrap_or_default();
    assert!(
        state.contains("nauti-ipam-slot"),
        "the plugin wrote its store"
    );
}
