#![allow(clippy::unwrap_used, reason = "test code")]

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use nauti_api::peer::PeerStatus;
use nauti_api::testutil::{mk_peer, mk_pod_annotations};

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

const NOW: &str = "2026-12-04T12:00:00Z";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cond(type_: &str, status: &str, reason: &str) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: format!("{type_} is {reason}"),
        last_transition_time: Time(ts("2026-12-04T00:00:00Z")),
        observed_generation: None,
    }
}

fn ready_peer(cluster_id: &str, slice: &str) -> Peer {
    let mut peer = mk_peer(cluster_id, [slice.parse().unwrap()]);
    peer.spec.endpoint = Some("198.18.0.12".to_owned());
    peer.status = Some(PeerStatus {
        conditions: vec![
            cond(condition::VALID, "True", condition::REASON_VALID),
            cond(condition::READY, "True", condition::REASON_CONNECTED),
        ],
        last_handshake: Some(Time(ts("2026-12-04T11:59:30Z"))),
        latency_ms: Some(1),
        ..PeerStatus::default()
    });
    peer
}

/// Pod default/web-0 (10.112.1.5, gateway 10.112.0.1) in cluster-a (10.112.0.0/16) reaching
/// nginx-svc served by cluster-b (10.114.0.0/16): every hop healthy.
fn healthy() -> PathFacts {
    PathFacts {
        source_cluster: "cluster-a".to_owned(),
        source: SourcePod {
            namespace: "default".to_owned(),
            name: "web-0".to_owned(),
            node: "node-1".to_owned(),
            annotations: mk_pod_annotations(),
            eth_nauti: Some(ip("10.112.1.5")),
        },
        lsp: Some(LogicalSwitchPort {
            name: "default_web-0".to_owned(),
            addresses: vec!["0a:58:0a:70:01:05 10.112.1.5".to_owned()],
            up: Some(true),
            chassis: Some("node-1".to_owned()),
        }),
        gateway: Some(GatewayPort {
            name: "nauti-system_nauti-gateway-0".to_owned(),
            address: Some(ip("10.112.0.1")),
            answers: true,
        }),
        destination: Destination::Service {
            name: "nginx-svc.default.svc.hyperos.local".to_owned(),
            cluster_id: "cluster-b".to_owned(),
        },
        peers: vec![
            ready_peer("cluster-a", "10.112.0.0/16"),
            ready_peer("cluster-b", "10.114.0.0/16"),
        ],
        source_routes: Some(GatewayRoutes {
            cluster_id: "cluster-a".to_owned(),
            routes: vec!["10.114.0.0/16 dev wg-nauti scope link".to_owned()],
        }),
        destination_routes: Some(GatewayRoutes {
            cluster_id: "cluster-b".to_owned(),
            routes: vec![
                "default via 10.0.0.1 dev eth0".to_owned(),
                "10.112.0.0/16 dev wg-nauti scope link".to_owned(),
            ],
        }),
        dns: DnsAnswers {
            crossdns: Some(vec![ip("10.114.3.7")]),
            coredns: Some(vec![ip("10.114.3.7")]),
        },
    }
}

const ALL_HOPS: [Hop; 7] = Hop::ALL;

#[test]
fn a_healthy_path_passes_every_hop() {
    let report = diagnose(&healthy(), ts(NOW));
    assert_eq!(report.failure, None);
    assert_eq!(report.passed, ALL_HOPS);
    assert_eq!(report.exit_code(), 0);
    assert!(report.render().contains("ok    dns"), "{}", report.render());
}

fn peer_mut<'a>(f: &'a mut PathFacts, id: &str) -> &'a mut Peer {
    f.peers
        .iter_mut()
        .find(|p| p.spec.cluster_id == id)
        .unwrap()
}

fn set_condition(peer: &mut Peer, type_: &str, status: &str, reason: &str) {
    let conditions = &mut peer.status.as_mut().unwrap().conditions;
    conditions.retain(|c| c.type_ != type_);
    conditions.push(cond(type_, status, reason));
}

type Breakage = fn(&mut PathFacts);

#[test]
fn each_broken_fact_fails_its_hop_and_stops_there() {
    let cases: &[(&str, Breakage, Hop, &str)] = &[
        (
            "no annotations",
            |f| {
                f.source
                    .annotations
                    .retain(|k, _| !k.starts_with("nauti.io/"))
            },
            Hop::Annotations,
            "pod default/web-0 has no nauti.io/* annotations: Nauti did not give it a second NIC",
        ),
        (
            "half-written annotations",
            |f| {
                f.source.annotations.remove(nauti_api::keys::ROUTES);
            },
            Hop::Annotations,
            "pod default/web-0 has an unusable Nauti record: annotation nauti.io/routes is missing",
        ),
        (
            "no eth-nauti",
            |f| f.source.eth_nauti = None,
            Hop::EthNauti,
            "pod default/web-0 has no eth-nauti: the NRI plugin did not plumb it; see the pod's NautiNicFailed events",
        ),
        (
            "annotation forged against the pod's address",
            |f| {
                f.source
                    .annotations
                    .insert(nauti_api::keys::IP_ADDRESS.into(), "10.112.1.9".into());
            },
            Hop::EthNauti,
            "pod default/web-0 is annotated nauti.io/ip_address=10.112.1.9 but its eth-nauti has 10.112.1.5: the annotation is forged or stale",
        ),
        (
            "no logical switch port",
            |f| f.lsp = None,
            Hop::LogicalSwitchPort,
            "pod default/web-0 has no logical switch port default_web-0 on nauti-member-1",
        ),
        (
            "annotation and eth-nauti forged against the port",
            |f| {
                f.source
                    .annotations
                    .insert(nauti_api::keys::IP_ADDRESS.into(), "10.112.1.9".into());
                f.source.eth_nauti = Some(ip("10.112.1.9"));
            },
            Hop::LogicalSwitchPort,
            "logical switch port default_web-0 holds [0a:58:0a:70:01:05 10.112.1.5], not the annotated nauti.io/ip_address=10.112.1.9 of pod default/web-0: the annotation is forged or stale",
        ),
        (
            "port unbound",
            |f| f.lsp.as_mut().unwrap().chassis = None,
            Hop::LogicalSwitchPort,
            "logical switch port default_web-0 is not bound to any chassis: ovn-controller on node node-1 did not claim it",
        ),
        (
            "port bound on another node",
            |f| f.lsp.as_mut().unwrap().chassis = Some("node-2".into()),
            Hop::LogicalSwitchPort,
            "logical switch port default_web-0 is bound on chassis node-2, but pod default/web-0 runs on node-1",
        ),
        (
            "port down",
            |f| f.lsp.as_mut().unwrap().up = Some(false),
            Hop::LogicalSwitchPort,
            "logical switch port default_web-0 is bound on node-1 but not up",
        ),
        (
            "CNF scaled to 0",
            |f| f.gateway = None,
            Hop::Gateway,
            "cluster cluster-a has no gateway port: the CNF is not running; check the nauti-gateway deployment (is it scaled to 0?)",
        ),
        (
            "gateway annotation stale",
            |f| f.gateway.as_mut().unwrap().address = Some(ip("10.112.0.2")),
            Hop::Gateway,
            "pod default/web-0 routes via nauti.io/gateway=10.112.0.1 but the gateway port nauti-system_nauti-gateway-0 of cluster cluster-a has 10.112.0.2",
        ),
        (
            "gateway silent",
            |f| f.gateway.as_mut().unwrap().answers = false,
            Hop::Gateway,
            "gateway nauti-system_nauti-gateway-0 of cluster cluster-a (10.112.0.1) does not answer from pod default/web-0",
        ),
        (
            "destination never joined",
            |f| f.peers.retain(|p| p.spec.cluster_id != "cluster-b"),
            Hop::Peer,
            "cluster cluster-b has no Peer on the hub: it has not joined",
        ),
        (
            "peer without status",
            |f| peer_mut(f, "cluster-a").status = None,
            Hop::Peer,
            "Peer cluster-a has no status yet",
        ),
        (
            "peer invalid",
            |f| {
                set_condition(
                    peer_mut(f, "cluster-b"),
                    condition::VALID,
                    "False",
                    condition::REASON_CIDR_CONFLICT,
                )
            },
            Hop::Peer,
            "Peer cluster-b is not Valid: CIDRConflict: Valid is CIDRConflict; fix its spec",
        ),
        (
            "peer not answering",
            |f| {
                let peer = peer_mut(f, "cluster-b");
                set_condition(
                    peer,
                    condition::READY,
                    "False",
                    condition::REASON_NOT_ANSWERING,
                );
                peer.status.as_mut().unwrap().last_handshake =
                    Some(Time(ts("2026-12-04T11:53:00Z")));
            },
            Hop::Peer,
            "Peer cluster-b is not Ready: NotAnswering, last handshake 7m ago; check cluster-b's gateway and that UDP reaches 198.18.0.12:51820",
        ),
        (
            "peer ready but handshake stale",
            |f| {
                peer_mut(f, "cluster-b")
                    .status
                    .as_mut()
                    .unwrap()
                    .last_handshake = Some(Time(ts("2026-12-04T11:56:00Z")));
            },
            Hop::Peer,
            "Peer cluster-b is Ready but its tunnel is stale: last handshake 4m ago (keys expire after 180s)",
        ),
        (
            "route deleted on the source gateway",
            |f| f.source_routes.as_mut().unwrap().routes.clear(),
            Hop::Routes,
            "gateway of cluster-a has no route to 10.114.0.0/16 (cluster-b's slice)",
        ),
        (
            "route deleted on the destination gateway",
            |f| {
                f.destination_routes.as_mut().unwrap().routes.remove(1);
            },
            Hop::Routes,
            "gateway of cluster-b has no route to 10.112.0.0/16 (cluster-a's slice)",
        ),
        (
            "destination routes unreadable",
            |f| f.destination_routes = None,
            Hop::Routes,
            "the routes of the gateway of cluster-b could not be read",
        ),
        (
            "crossdns stopped",
            |f| f.dns.crossdns = None,
            Hop::Dns,
            "nginx-svc.default.svc.hyperos.local does not resolve in crossdns",
        ),
        (
            "CoreDNS not wired",
            |f| f.dns.coredns = Some(vec![]),
            Hop::Dns,
            "nginx-svc.default.svc.hyperos.local resolves in crossdns but not through CoreDNS: the Corefile is not wired; run crossdns wire-coredns",
        ),
        (
            "CoreDNS answers otherwise",
            |f| f.dns.coredns = Some(vec![ip("10.96.0.9")]),
            Hop::Dns,
            "nginx-svc.default.svc.hyperos.local resolves to [10.114.3.7] in crossdns but to [10.96.0.9] through CoreDNS",
        ),
    ];
    for (name, breakage, hop, message) in cases {
        let mut facts = healthy();
        breakage(&mut facts);
        let report = diagnose(&facts, ts(NOW));
        let failure = report
            .failure
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no failure"));
        assert_eq!(failure.hop, *hop, "{name}: {}", failure.message);
        assert!(
            failure.message.starts_with(message),
            "{name}: {:?} does not start with {message:?}",
            failure.message
        );
        let before: Vec<Hop> = ALL_HOPS.iter().copied().take_while(|h| h != hop).collect();
        assert_eq!(
            report.passed, before,
            "{name}: later hops must not be reported"
        );
        assert_eq!(report.exit_code(), 1, "{name}");
        assert!(
            report
                .render()
                .ends_with(&format!("FAIL  {hop}: {}\n", failure.message)),
            "{name}"
        );
    }
}

#[test]
fn a_pod_in_the_same_cluster_skips_tunnel_and_dns_hops() {
    let mut facts = healthy();
    facts.destination = Destination::Pod {
        namespace: "default".into(),
        name: "db-0".into(),
        cluster_id: "cluster-a".into(),
    };
    // Broken tunnel facts do not matter inside one cluster.
    facts.peers.clear();
    facts.dns = DnsAnswers::default();
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(report.failure, None);
    assert_eq!(
        report.passed,
        [
            Hop::Annotations,
            Hop::EthNauti,
            Hop::LogicalSwitchPort,
            Hop::Gateway
        ]
    );
}

#[test]
fn a_pod_in_another_cluster_checks_the_tunnel_but_not_dns() {
    let mut facts = healthy();
    facts.destination = Destination::Pod {
        namespace: "default".into(),
        name: "db-0".into(),
        cluster_id: "cluster-b".into(),
    };
    facts.dns = DnsAnswers::default();
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(report.failure, None);
    assert_eq!(report.passed, ALL_HOPS[..6]);
}

#[test]
fn every_hop_is_explained_in_order() {
    let text: Vec<String> = Hop::ALL
        .iter()
        .map(|h| format!("{h}: {}", h.describe()))
        .collect();
    assert!(
        text[1].starts_with("eth-nauti: the pod has eth-nauti"),
        "{text:?}"
    );
    assert!(Hop::ALL.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_wider_route_covers_a_slice() {
    assert!(routes_cover(
        &["10.112.0.0/12 dev wg-nauti".into()],
        "10.114.0.0/16"
    ));
    assert!(!routes_cover(
        &["10.112.0.0/16 dev wg-nauti".into()],
        "10.114.0.0/16"
    ));
    assert!(!routes_cover(
        &["10.114.0.1 dev wg-nauti".into()],
        "10.114.0.0/16"
    ));
}
