use base64::Engine as _;

use super::*;
use crate::testutil::{TEST_PUBLIC_KEY, mk_hub_peer, mk_peer};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn member() -> Peer {
    mk_peer("member-1", [net("10.112.0.0/16")])
}

#[test]
fn a_well_formed_member_peer_is_valid() {
    assert_eq!(member().validate(), Ok(()));
    let hub = mk_hub_peer(
        "hub",
        [net("10.113.0.0/16"), net("fd00:112::/48")],
        "203.0.113.10",
    );
    assert_eq!(hub.validate(), Ok(()));
}

#[test]
fn peer_serializes_with_camel_case_upstream_style_names() {
    let mut peer = mk_hub_peer("hub", [net("10.113.0.0/16")], "hub.example.com");
    peer.status = Some(PeerStatus {
        latency_ms: Some(3),
        ..PeerStatus::default()
    });
    let json = serde_json::to_value(&peer).unwrap();
    assert_eq!(json["apiVersion"], "nauti.io/v1alpha1");
    assert_eq!(json["kind"], "Peer");
    assert_eq!(json["metadata"]["namespace"], DEFAULT_PEER_NAMESPACE);
    let spec = &json["spec"];
    assert_eq!(spec["clusterID"], "hub");
    assert_eq!(spec["clusterCIDRs"], serde_json::json!(["10.113.0.0/16"]));
    assert_eq!(spec["endpoint"], "hub.example.com");
    assert_eq!(spec["port"], 51820);
    assert_eq!(spec["publicKey"], TEST_PUBLIC_KEY);
    assert_eq!(spec["isHub"], true);
    assert_eq!(spec["isPublic"], false);
    assert_eq!(json["status"]["latencyMs"], 3);
    let back: Peer = serde_json::from_value(json).unwrap();
    assert_eq!(back, peer);
}

#[test]
fn port_and_flags_default_when_omitted() {
    let spec: PeerSpec = serde_json::from_value(serde_json::json!({
        "clusterID": "m",
        "clusterCIDRs": ["10.112.0.0/16"],
        "publicKey": TEST_PUBLIC_KEY,
    }))
    .unwrap();
    assert_eq!(spec.port, DEFAULT_WIREGUARD_PORT);
    assert!(!spec.is_hub && !spec.is_public && spec.endpoint.is_none());
}

#[test]
fn status_reads_rfc3339_handshake_and_standard_conditions() {
    let status: PeerStatus = serde_json::from_value(serde_json::json!({
        "lastHandshake": "2026-11-24T23:48:00Z",
        "latencyMs": 12,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "HandshakeRecent", "message": "",
            "lastTransitionTime": "2026-11-24T23:48:00Z", "observedGeneration": 4,
        }],
    }))
    .unwrap();
    let ready = status.condition(condition::READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.observed_generation),
        ("True", Some(4))
    );
    assert!(status.condition(condition::VALID).is_none());
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["lastHandshake"], "2026-11-24T23:48:00Z");
}

#[test]
fn a_64_character_cluster_id_is_refused() {
    let id = "a".repeat(64);
    let mut peer = member();
    peer.spec.cluster_id = id.clone();
    let err = peer.validate().unwrap_err();
    assert_eq!(
        err,
        PeerError::ClusterId {
            value: id.clone(),
            source: LabelError::TooLong { len: 64 }
        }
    );
    assert!(
        err.to_string()
            .starts_with(&format!("spec.clusterID \"{id}\" is 64 characters long")),
        "{err}"
    );
    peer.spec.cluster_id = "a".repeat(63);
    assert_eq!(peer.spec.validate(), Ok(()));
}

#[test]
fn an_upper_case_cluster_id_is_refused() {
    let mut peer = member();
    peer.spec.cluster_id = "Member-1".to_owned();
    let err = peer.spec.validate().unwrap_err();
    assert!(matches!(
        err,
        PeerError::ClusterId {
            source: LabelError::BadChar { found: 'M' },
            ..
        }
    ));
    assert!(err.to_string().contains("\"Member-1\""), "{err}");
}

#[test]
fn a_31_byte_public_key_is_refused() {
    let mut peer = member();
    peer.spec.public_key = base64::engine::general_purpose::STANDARD.encode([9u8; 31]);
    let err = peer.validate().unwrap_err();
    assert!(
        matches!(
            err,
            PeerError::PublicKey {
                source: KeyError::Length { len: 31 },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("decodes to 31 bytes"), "{err}");
    peer.spec.public_key = "!!!".to_owned();
    assert!(matches!(
        peer.validate(),
        Err(PeerError::PublicKey {
            source: KeyError::Base64 { .. },
            ..
        })
    ));
}

#[test]
fn overlapping_cluster_cidrs_are_refused() {
    let mut peer = member();
    peer.spec.cluster_cidrs = vec![
        net("10.112.0.0/16"),
        net("10.113.0.0/16"),
        net("10.112.128.0/17"),
    ];
    let err = peer.validate().unwrap_err();
    assert_eq!(
        err,
        PeerError::OverlappingCidrs {
            first: net("10.112.0.0/16"),
            second: net("10.112.128.0/17")
        }
    );
    assert_eq!(
        err.to_string(),
        "spec.clusterCIDRs 10.112.0.0/16 and 10.112.128.0/17 overlap"
    );
    peer.spec.cluster_cidrs = vec![net("10.112.0.0/16"), net("10.112.0.0/16")];
    assert!(matches!(
        peer.validate(),
        Err(PeerError::OverlappingCidrs { .. })
    ));
    peer.spec.cluster_cidrs = vec![];
    assert_eq!(peer.validate(), Err(PeerError::NoClusterCidrs));
}

#[test]
fn a_non_canonical_cluster_cidr_is_refused_with_its_index() {
    let peer: Peer = serde_json::from_value(serde_json::json!({
        "apiVersion": "nauti.io/v1alpha1", "kind": "Peer",
        "metadata": {"name": "member-1"},
        "spec": {"clusterID": "member-1", "clusterCIDRs": ["fd00:112::/48", "10.112.0.1/16"], "publicKey": TEST_PUBLIC_KEY},
    }))
    .unwrap();
    let err = peer.validate().unwrap_err();
    assert!(
        matches!(err, PeerError::ClusterCidr { index: 1, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "spec.clusterCIDRs[1] 10.112.0.1/16: host bits are set; the canonical form is 10.112.0.0/16"
    );
}

#[test]
fn hubs_and_public_members_need_a_reachable_endpoint() {
    let mut peer = mk_hub_peer("hub", [net("10.113.0.0/16")], "hub.example.com");
    peer.spec.endpoint = None;
    assert_eq!(
        peer.validate(),
        Err(PeerError::EndpointRequired { role: "isHub" })
    );
    peer.spec.is_hub = false;
    peer.spec.is_public = true;
    assert_eq!(
        peer.validate(),
        Err(PeerError::EndpointRequired { role: "isPublic" })
    );
    for bad in ["[fd00::1]", "hub.example.com:51820", "Hub.Example.com", ""] {
        peer.spec.endpoint = Some(bad.to_owned());
        assert!(
            matches!(peer.validate(), Err(PeerError::Endpoint { .. })),
            "{bad}"
        );
    }
    for good in ["fd00::1", "192.0.2.1", "hub-1.example.com"] {
        peer.spec.endpoint = Some(good.to_owned());
        assert_eq!(peer.validate(), Ok(()), "{good}");
    }
}

#[test]
fn port_zero_is_refused() {
    let mut peer = member();
    peer.spec.port = 0;
    assert_eq!(peer.validate(), Err(PeerError::Port));
}

#[test]
fn a_peer_must_be_named_after_its_cluster_id() {
    let mut peer = member();
    peer.metadata.name = Some("other".to_owned());
    assert_eq!(
        peer.validate(),
        Err(PeerError::NameMismatch {
            name: "other".to_owned(),
            cluster_id: "member-1".to_owned()
        })
    );
    assert_eq!(peer.spec.validate(), Ok(()));
}
