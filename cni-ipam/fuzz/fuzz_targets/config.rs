//! The network configuration parser: any bytes on stdin give a configuration or an error, never
//! a panic, and a configuration that parses yields allocators that can hand out an address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nauti_ipam::OwnerId;
use nauti_ipam::cni::config;

fuzz_target!(|data: &[u8]| {
    let _ = config::peek_version(data);
    if let Ok(conf) = config::parse(data) {
        for mut set in conf.ipam.pools() {
            let owner = OwnerId::new("fuzz", "eth0");
            if let Ok(lease) = set.allocate(owner) {
                assert!(set.contains(lease.address));
                assert_eq!(set.allocate(owner), Ok(lease));
                assert_eq!(set.release(owner), vec![lease.address]);
            }
        }
    }
});
