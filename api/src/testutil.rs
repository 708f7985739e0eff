//! Fixtures for tests here and in other crates (enable the `testutil` feature as a
//! dev-dependency). Values are fixed so that expected strings can be written in tests.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use crate::core::annotations::{PodNetwork, PodNicType, Route};
use crate::core::config::DEFAULT_GLOBAL_CIDR;
use crate::core::mac::MacAddr;
use crate::peer::{DEFAULT_PEER_NAMESPACE, DEFAULT_WIREGUARD_PORT, Peer, PeerSpec};

/// A valid WireGuard public key (32 bytes of 0x01, base64).
pub const TEST_PUBLIC_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// The cluster subnet of [`mk_pod_network`]: 10.112.0.0/16.
pub const TEST_CLUSTER_SUBNET: IpNet =
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(10, 112, 0, 0), 16));

/// A non-hub, non-public member `Peer` named after `cluster_id`, in the hub's Peer namespace,
/// with a valid key and the given CIDRs.
pub fn mk_peer(cluster_id: impl ToString, cidrs: impl IntoIterator<Item = IpNet>) -> Peer {
    let cluster_id = cluster_id.to_string();
    let mut peer = Peer::new(
        &cluster_id,
        PeerSpec {
            cluster_id: cluster_id.clone(),
            cluster_cidrs: cidrs.into_iter().collect(),
            endpoint: None,
            port: DEFAULT_WIREGUARD_PORT,
            public_key: TEST_PUBLIC_KEY.to_owned(),
            is_hub: false,
            is_public: false,
        },
    );
    peer.metadata.namespace = Some(DEFAULT_PEER_NAMESPACE.to_owned());
    peer
}

/// A hub `Peer` reachable at `endpoint`.
pub fn mk_hub_peer(
    cluster_id: impl ToString,
    cidrs: impl IntoIterator<Item = IpNet>,
    endpoint: impl ToString,
) -> Peer {
    let mut peer = mk_peer(cluster_id, cidrs);
    peer.spec.is_hub = true;
    peer.spec.endpoint = Some(endpoint.to_string());
    peer
}

/// The pod network of pod 10.112.1.5 in cluster subnet 10.112.0.0/16 on switch
/// `nauti-member-1`, gateway 10.112.0.1, one route for the default global CIDR.
pub fn mk_pod_network() -> PodNetwork {
    let ip = IpAddr::V4(Ipv4Addr::new(10, 112, 1, 5));
    let gateway = IpAddr::V4(Ipv4Addr::new(10, 112, 0, 1));
    PodNetwork {
        ip_address: ip,
        mac_address: MacAddr::from_ip(ip),
        cidr: TEST_CLUSTER_SUBNET,
        gateway,
        logical_switch: "nauti-member-1".to_owned(),
        pod_nic_type: PodNicType::VethPair,
        routes: vec![Route {
            dst: DEFAULT_GLOBAL_CIDR,
            gw: gateway,
        }],
        allocated: true,
    }
}

/// [`mk_pod_network`] rendered, plus an unrelated `app` annotation.
pub fn mk_pod_annotations() -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    mk_pod_network().render_into(&mut a);
    a
}
