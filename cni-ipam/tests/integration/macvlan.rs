//! nauti-ipam as the IPAM of Debian's `macvlan` plugin, on a master link inside a node namespace.

use nauti_testbed::netns::Netns;
use nauti_testbed::require_root;
use nauti_testbed::testdir::TestDir;
use serde_json::json;

use crate::chained::two_pods_reach_each_other;
use crate::util::data_dir;

#[test]
fn pods_on_macvlan_get_addresses_of_the_range_and_reach_each_other() {
    require_root!();
    let dir = TestDir::new("ipam-macvlan").unwrap();
    let node = Netns::new("ipm").unwrap();
    let wire = Netns::new("ipw").unwrap();
    // The master is one end of a veth whose other end sits in another namespace (carrier up);
    // the machine's own interfaces are never touched.
    node.veth_to("mv-master", &wire, "mv-peer").unwrap();
    node.add_addr("mv-master", "198.18.40.1/24").unwrap();
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "nauti-macvlan",
        "type": "macvlan",
        "master": "mv-master",
        "mode": "bridge",
        "ipam": {
            "type": "nauti-ipam",
            "ranges": [[{"subnet": "10.112.41.0/24", "rangeStart": "10.112.41.100",
                         "rangeEnd": "10.112.41.199", "gateway": "10.112.41.1"}]],
            "dataDir": data_dir(&dir),
        },
    });
    two_pods_reach_each_other(&node, "macvlan", &conf, "10.112.41.1");
}
