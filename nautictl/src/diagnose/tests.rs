#![allow(clippy::unwrap_used, reason = "test code")]

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use nauti_api::peer::PeerStatus;
use nauti_api::testutil::{mk_peer, mk_pod_annotations};
use nauti_ovn::client::sb::BoundChassis;

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

const CNF: &str = "octopus-member-7d9c-abcde";

/// Pod default/web-0 (10.112.1.5, MAC 0a:58:0a:70:01:05, gateway 10.112.0.1) on node-1 in
/// member-1 (10.112.0.0/16) reaching pod default/server of member-2 (10.114.0.0/16), the CNF
/// at 10.112.0.9: every hop healthy.
fn healthy() -> PathFacts {
    PathFacts {
        source_cluster: "member-1".to_owned(),
        source: Some(SourcePod {
            namespace: "default".to_owned(),
            name: "web-0".to_owned(),
            node: "node-1".to_owned(),
            annotations: mk_pod_annotations(),
        }),
        lsp: Some(SwitchPort {
            name: "default_web-0".to_owned(),
            addresses: vec!["0a:58:0a:70:01:05 10.112.1.5".to_owned()],
        }),
        binding: BindingFacts::Row(PortBinding {
            logical_port: "default_web-0".to_owned(),
            chassis: Some(BoundChassis {
                name: "node-1".to_owned(),
                hostname: "box".to_owned(),
            }),
            up: Some(true),
        }),
        gateway: GatewayFacts {
            router: "nauti-member-1-gw".to_owned(),
            router_networks: Some(vec!["10.112.0.1/16".to_owned()]),
            global: "10.112.0.0/12".to_owned(),
            routes: vec![RouterRoute {
                ip_prefix: "10.112.0.0/12".to_owned(),
                nexthop: "10.112.0.9".to_owned(),
                cnf_pod: Some(format!("{CNF}_0badcafe")),
            }],
            cnf_namespace: "nauti-system".to_owned(),
            deployment: Some((1, 1)),
            cnf: Some(CnfPod {
                name: CNF.to_owned(),
                phase: "Running".to_owned(),
                deleting: false,
                address: Some(ip("10.112.0.9")),
            }),
            lease: Some(LeaseFacts {
                namespace: "nauti-system".to_owned(),
                name: "octopus-member".to_owned(),
                holder: Some(format!("{CNF}_0badcafe")),
                renewed: Some(ts("2026-12-04T11:59:59Z")),
                duration_secs: Some(3),
            }),
        },
        destination: Destination::Pod {
            namespace: "default".to_owned(),
            name: "server".to_owned(),
            address: ip("10.114.0.7"),
            cluster_id: "member-2".to_owned(),
        },
        peers: vec![
            ready_peer("member-1", "10.112.0.0/16"),
            ready_peer("member-2", "10.114.0.0/16"),
        ],
        crossdns: None,
        interface: InterfaceFacts::Present {
            mac: Some("0a:58:0a:70:01:05".to_owned()),
            addresses: vec![ip("10.112.1.5")],
        },
        crossdns_state: CrossdnsState::default(),
        coredns: CorednsFacts::NotAsked,
        tunnel_routes: vec![
            cnf_routes("member-1", CNF, Some(&["10.112.0.0/12", "10.114.0.0/16"])),
            cnf_routes(
                "member-2",
                "octopus-member-55f6-vwxyz",
                Some(&["10.112.0.0/12", "10.112.0.0/16"]),
            ),
        ],
    }
}

/// What `octopus routes` printed in CNF pod `pod` of `cluster_id`: `routes` on nauti-wg, or no
/// such interface.
fn cnf_routes(cluster_id: &str, pod: &str, routes: Option<&[&str]>) -> CnfRoutes {
    CnfRoutes {
        cluster_id: cluster_id.to_owned(),
        read: CnfRoutesRead::Listed {
            pod: format!("nauti-system/{pod}"),
            routes: InterfaceRoutes::new(
                "nauti-wg",
                routes.map(|r| r.iter().map(|n| n.parse().unwrap()).collect()),
            ),
        },
    }
}

#[test]
fn a_healthy_path_passes_every_hop() {
    let report = diagnose(&healthy(), ts(NOW));
    assert_eq!(report.failure(), None);
    assert_eq!(
        report.passed(),
        [
            Hop::Annotations,
            Hop::LogicalSwitchPort,
            Hop::Binding,
            Hop::Interface,
            Hop::Gateway,
            Hop::Peer,
            Hop::TunnelRoutes
        ]
    );
    assert_eq!(report.exit_code(), 0);
    let text = report.render();
    assert!(
        text.contains(
            "ok    gateway              route 10.112.0.0/12 via 10.112.0.9 on nauti-member-1-gw \
             (CNF pod nauti-system/octopus-member-7d9c-abcde, Running, holds Lease nauti-system/octopus-member)"
        ),
        "{text}"
    );
    assert!(
        text.contains("Peer member-2 Ready, last handshake 30s ago"),
        "{text}"
    );
}

#[test]
fn a_service_destination_resolves_in_crossdns() {
    let mut facts = healthy();
    facts.destination = Destination::Service {
        name: "nginx.default.svc.hyperos.local".to_owned(),
        clusters: vec!["member-2".to_owned()],
    };
    facts.crossdns = Some(vec![ip("10.114.0.7")]);
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(report.passed().last(), Some(&Hop::Dns));
    assert!(
        report
            .render()
            .contains("nginx.default.svc.hyperos.local -> 10.114.0.7 (exported by member-2)"),
        "{}",
        report.render()
    );
    facts.crossdns = None;
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(
        report.failure(),
        Some((
            Hop::Dns,
            "nginx.default.svc.hyperos.local does not resolve in crossdns although member-2 \
             export(s) it: crossdns is down or has not synced; check the crossdns pod and its log"
        ))
    );
    facts.destination = Destination::Service {
        name: "nginx.default.svc.hyperos.local".to_owned(),
        clusters: vec![],
    };
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(
        report.hops[5],
        (
            Hop::Peer,
            Outcome::Skipped("no cluster exports the service".to_owned())
        )
    );
    assert!(
        report
            .failure()
            .unwrap()
            .1
            .contains("no cluster exports it (no ServiceImport on the hub)")
    );
}

#[test]
fn the_pods_own_interface_must_hold_the_annotated_address() {
    let mut facts = healthy();
    assert!(
        diagnose(&facts, ts(NOW))
            .render()
            .contains("ok    interface            eth-nauti in pod default/web-0 holds 0a:58:0a:70:01:05 10.112.1.5"),
        "{}",
        diagnose(&facts, ts(NOW)).render()
    );
    facts.interface = InterfaceFacts::Present {
        mac: Some("0a:58:0a:70:01:05".to_owned()),
        addresses: vec![ip("10.112.1.77")],
    };
    assert_eq!(
        diagnose(&facts, ts(NOW)).failure(),
        Some((
            Hop::Interface,
            "pod default/web-0 is annotated nauti.io/ip_address=10.112.1.5 but its eth-nauti \
             holds 10.112.1.77: the annotation or the interface is stale; delete the pod so \
             nauti-nri plumbs it again"
        ))
    );
    facts.interface = InterfaceFacts::Present {
        mac: Some("0a:58:0a:70:01:06".to_owned()),
        addresses: vec![ip("10.112.1.5")],
    };
    let report = diagnose(&facts, ts(NOW));
    let (hop, cause) = report.failure().unwrap();
    assert_eq!(hop, Hop::Interface);
    assert!(cause.contains("has MAC 0a:58:0a:70:01:06"), "{cause}");
    facts.interface = InterfaceFacts::Missing("ip: can't find device 'eth-nauti'".to_owned());
    let report = diagnose(&facts, ts(NOW));
    let (hop, cause) = report.failure().unwrap();
    assert_eq!(hop, Hop::Interface);
    assert!(
        cause.starts_with("pod default/web-0 has no eth-nauti (ip: can't find device"),
        "{cause}"
    );
    // An image without a shell or `ip`: noted, not failed.
    facts.interface = InterfaceFacts::Unreadable("no sh in the image".to_owned());
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(report.exit_code(), 0);
    assert!(
        report
            .render()
            .contains("skip  interface            eth-nauti could not be read in the pod: no sh"),
        "{}",
        report.render()
    );
}

#[test]
fn ip_output_of_iproute2_and_busybox_is_read() {
    let text = "4: eth-nauti@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 qdisc noqueue \
                state UP \\    link/ether 0a:58:0A:70:01:05 brd ff:ff:ff:ff:ff:ff\n\
                4: eth-nauti    inet 10.112.1.5/16 brd 10.112.255.255 scope global eth-nauti\\       valid_lft forever preferred_lft forever\n\
                4: eth-nauti    inet6 fe80::858:aff:fe70:105/64 scope link \\       valid_lft forever preferred_lft forever\n";
    assert_eq!(
        parse_ip_oneline(text),
        InterfaceFacts::Present {
            mac: Some("0a:58:0a:70:01:05".to_owned()),
            addresses: vec![ip("10.112.1.5"), ip("fe80::858:aff:fe70:105")],
        }
    );
}

fn service_facts() -> PathFacts {
    let mut facts = healthy();
    facts.destination = Destination::Service {
        name: "nginx.default.svc.hyperos.local".to_owned(),
        clusters: vec!["member-2".to_owned()],
    };
    facts.crossdns_state = CrossdnsState {
        namespace: "nauti-system".to_owned(),
        deployment: Some((1, 1)),
        ready_endpoints: Some(1),
    };
    facts
}

#[test]
fn a_stopped_crossdns_is_named() {
    let mut facts = service_facts();
    facts.crossdns_state.deployment = Some((0, 0));
    facts.crossdns_state.ready_endpoints = Some(0);
    assert_eq!(
        diagnose(&facts, ts(NOW)).failure(),
        Some((
            Hop::Dns,
            "nginx.default.svc.hyperos.local does not resolve: crossdns is stopped (Deployment \
             nauti-system/crossdns has 0 replica(s): scaled to 0) although member-2 export(s) \
             it; scale Deployment nauti-system/crossdns up or see why its pod is gone"
        ))
    );
    facts.crossdns_state.deployment = Some((1, 1));
    let report = diagnose(&facts, ts(NOW));
    assert!(
        report.failure().unwrap().1.contains(
            "crossdns is stopped (Service nauti-system/crossdns has no ready endpoint: its pod \
             is gone or not ready)"
        ),
        "{}",
        report.render()
    );
    facts.crossdns_state.deployment = Some((1, 0));
    let report = diagnose(&facts, ts(NOW));
    assert!(
        report
            .failure()
            .unwrap()
            .1
            .contains("Deployment nauti-system/crossdns has 1 replica(s), 0 ready"),
        "{}",
        report.render()
    );
}

#[test]
fn coredns_must_answer_as_crossdns_does() {
    let mut facts = service_facts();
    facts.crossdns = Some(vec![ip("10.114.0.8"), ip("10.114.0.7")]);
    let answered = |addresses: Result<Vec<IpAddr>, String>| CorednsFacts::Answered {
        server: "10.96.0.10".to_owned(),
        addresses,
    };
    facts.coredns = answered(Ok(vec![ip("10.114.0.7"), ip("10.114.0.8")]));
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    assert_eq!(report.passed().last(), Some(&Hop::CoreDns));
    assert!(
        report.render().contains(
            "ok    coredns              nginx.default.svc.hyperos.local -> 10.114.0.7, 10.114.0.8 \
             through CoreDNS at 10.96.0.10, as crossdns"
        ),
        "{}",
        report.render()
    );
    facts.coredns = answered(Ok(vec![ip("10.114.0.7")]));
    let (hop, cause) = diagnose(&facts, ts(NOW))
        .failure()
        .map(|(h, c)| (h, c.to_owned()))
        .unwrap();
    assert_eq!(hop, Hop::CoreDns);
    assert_eq!(
        cause,
        "CoreDNS at 10.96.0.10 answers nginx.default.svc.hyperos.local with 10.114.0.7 but \
         crossdns with 10.114.0.7, 10.114.0.8: CoreDNS forwards the zone elsewhere or serves a \
         stale cache"
    );
    facts.coredns = answered(Err("status NXDOMAIN".to_owned()));
    let report = diagnose(&facts, ts(NOW));
    assert!(
        report.failure().unwrap().1.contains(
            "does not resolve through CoreDNS at 10.96.0.10 (status NXDOMAIN) although crossdns \
             answers 10.114.0.7, 10.114.0.8: CoreDNS is not wired to crossdns"
        ),
        "{}",
        report.render()
    );
    facts.coredns = CorednsFacts::Unasked("no --from pod to ask from".to_owned());
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(report.exit_code(), 0);
    assert_eq!(
        report.hops.last(),
        Some(&(
            Hop::CoreDns,
            Outcome::Skipped("no --from pod to ask from".to_owned())
        ))
    );
}

#[test]
fn without_a_southbound_database_the_binding_is_skipped_with_a_note() {
    let mut facts = healthy();
    facts.binding = BindingFacts::NotRead;
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(report.exit_code(), 0);
    assert!(
        report
            .render()
            .contains("skip  port binding         no --ovn-sb"),
        "{}",
        report.render()
    );
}

#[test]
fn without_from_and_to_only_the_gateway_is_checked() {
    let mut facts = healthy();
    facts.source = None;
    facts.destination = Destination::None;
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(report.passed(), [Hop::Gateway]);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(
        report.hops.last(),
        Some(&(
            Hop::TunnelRoutes,
            Outcome::Skipped("no --to destination".to_owned())
        ))
    );
}

#[test]
fn a_destination_in_the_same_cluster_skips_the_peers() {
    let mut facts = healthy();
    facts.destination = Destination::Pod {
        namespace: "default".to_owned(),
        name: "neighbour".to_owned(),
        address: ip("10.112.1.9"),
        cluster_id: "member-1".to_owned(),
    };
    // Even a broken Peer does not matter within one cluster.
    facts.peers.clear();
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(report.exit_code(), 0);
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
                    .as_mut()
                    .unwrap()
                    .annotations
                    .retain(|k, _| !k.starts_with("nauti.io/"))
            },
            Hop::Annotations,
            "pod default/web-0 has no nauti.io/* annotations: Nauti did not give it a second NIC",
        ),
        (
            "half-written annotations",
            |f| {
                f.source
                    .as_mut()
                    .unwrap()
                    .annotations
                    .remove(nauti_api::keys::ROUTES);
            },
            Hop::Annotations,
            "pod default/web-0 has an unusable Nauti record: annotation nauti.io/routes is missing",
        ),
        (
            "no port",
            |f| f.lsp = None,
            Hop::LogicalSwitchPort,
            "pod default/web-0 has no logical switch port default_web-0 on nauti-member-1",
        ),
        (
            "forged address",
            |f| {
                f.source.as_mut().unwrap().annotations.insert(
                    nauti_api::keys::IP_ADDRESS.to_owned(),
                    "10.112.1.77".to_owned(),
                );
            },
            Hop::LogicalSwitchPort,
            "pod default/web-0 is annotated nauti.io/ip_address=10.112.1.77 but its logical \
             switch port default_web-0 holds 10.112.1.5: the annotation is forged or stale",
        ),
        (
            "forged MAC",
            |f| {
                f.source.as_mut().unwrap().annotations.insert(
                    nauti_api::keys::MAC_ADDRESS.to_owned(),
                    "0a:58:0a:70:01:99".to_owned(),
                );
            },
            Hop::LogicalSwitchPort,
            "pod default/web-0 is annotated nauti.io/mac_address=0a:58:0a:70:01:99 but its \
             logical switch port default_web-0 holds 0a:58:0a:70:01:05",
        ),
        (
            "port without a MAC",
            |f| f.lsp.as_mut().unwrap().addresses = vec!["unknown".to_owned()],
            Hop::LogicalSwitchPort,
            "logical switch port default_web-0 has no MAC and address ([unknown])",
        ),
        (
            "no Port_Binding",
            |f| f.binding = BindingFacts::NoRow,
            Hop::Binding,
            "logical switch port default_web-0 has no Port_Binding in the southbound database",
        ),
        (
            "unbound",
            |f| {
                if let BindingFacts::Row(b) = &mut f.binding {
                    b.chassis = None;
                }
            },
            Hop::Binding,
            "logical switch port default_web-0 is not bound to any chassis: ovn-controller on \
             node node-1 did not claim it",
        ),
        (
            "bound elsewhere",
            |f| {
                if let BindingFacts::Row(b) = &mut f.binding {
                    b.chassis = Some(BoundChassis {
                        name: "node-2".into(),
                        hostname: "other".into(),
                    });
                }
            },
            Hop::Binding,
            "logical switch port default_web-0 is bound on chassis node-2 (other), but pod \
             default/web-0 runs on node-1",
        ),
        (
            "not up",
            |f| {
                if let BindingFacts::Row(b) = &mut f.binding {
                    b.up = Some(false);
                }
            },
            Hop::Binding,
            "logical switch port default_web-0 is bound on node-1 but not up",
        ),
        (
            "no router port",
            |f| f.gateway.router_networks = None,
            Hop::Gateway,
            "gateway router nauti-member-1-gw of cluster member-1 has no port on its switch",
        ),
        (
            "forged gateway",
            |f| f.gateway.router_networks = Some(vec!["10.112.0.254/16".into()]),
            Hop::Gateway,
            "pod default/web-0 routes via nauti.io/gateway=10.112.0.1 but gateway router \
             nauti-member-1-gw holds [10.112.0.254/16]",
        ),
        (
            "route deleted",
            |f| f.gateway.routes.clear(),
            Hop::Gateway,
            "gateway router nauti-member-1-gw has no route to 10.112.0.0/12 (the global network)",
        ),
        (
            "route set by hand",
            |f| f.gateway.routes[0].cnf_pod = None,
            Hop::Gateway,
            "route 10.112.0.0/12 via 10.112.0.9 on nauti-member-1-gw names no CNF pod",
        ),
        (
            "CNF scaled to 0",
            |f| {
                f.gateway.cnf = None;
                f.gateway.deployment = Some((0, 0));
            },
            Hop::Gateway,
            "route 10.112.0.0/12 via 10.112.0.9 on nauti-member-1-gw names CNF pod \
             nauti-system/octopus-member-7d9c-abcde, which does not exist: the CNF is gone and \
             no other took over; Deployment octopus-member has 0 replica(s), 0 ready (scaled to 0?)",
        ),
        (
            "CNF pending",
            |f| f.gateway.cnf.as_mut().unwrap().phase = "Pending".into(),
            Hop::Gateway,
            "which is not running (Pending)",
        ),
        (
            "CNF terminating",
            |f| f.gateway.cnf.as_mut().unwrap().deleting = true,
            Hop::Gateway,
            "which is not running (Running, being deleted)",
        ),
        (
            "stale next hop",
            |f| f.gateway.cnf.as_mut().unwrap().address = Some(ip("10.112.0.10")),
            Hop::Gateway,
            "has nauti.io/ip_address=10.112.0.10: the route is stale",
        ),
        (
            "no lease",
            |f| f.gateway.lease = None,
            Hop::Gateway,
            "Lease nauti-system/octopus-member does not exist: no CNF leads",
        ),
        (
            "lease held by another",
            |f| {
                f.gateway.lease.as_mut().unwrap().holder =
                    Some("octopus-member-other_12345678".into())
            },
            Hop::Gateway,
            "Lease nauti-system/octopus-member is held by octopus-member-other_12345678, not by \
             octopus-member-7d9c-abcde_0badcafe",
        ),
        (
            "lease held by a newer incarnation of the same pod",
            |f| f.gateway.lease.as_mut().unwrap().holder = Some(format!("{CNF}_12345678")),
            Hop::Gateway,
            "is held by octopus-member-7d9c-abcde_12345678, not by octopus-member-7d9c-abcde_0badcafe",
        ),
        (
            "lease expired",
            |f| f.gateway.lease.as_mut().unwrap().renewed = Some(ts("2026-12-04T11:59:50Z")),
            Hop::Gateway,
            "held by octopus-member-7d9c-abcde_0badcafe expired 7s ago (renewed 10s ago, lasts 3s)",
        ),
        (
            "destination never joined",
            |f| f.peers.retain(|p| p.spec.cluster_id != "member-2"),
            Hop::Peer,
            "cluster member-2 has no Peer on the hub: it has not joined",
        ),
        (
            "destination not Ready",
            |f| {
                set_condition(
                    peer_mut(f, "member-2"),
                    condition::READY,
                    "False",
                    condition::REASON_NOT_ANSWERING,
                )
            },
            Hop::Peer,
            "Peer member-2 is not Ready: NotAnswering, last handshake 30s ago; check member-2's \
             gateway and that UDP reaches 198.18.0.12:51820",
        ),
        (
            "stale handshake",
            |f| {
                peer_mut(f, "member-2")
                    .status
                    .as_mut()
                    .unwrap()
                    .last_handshake = Some(Time(ts("2026-12-04T11:55:00Z")))
            },
            Hop::Peer,
            "Peer member-2 is Ready but its tunnel is stale: last handshake 5m ago",
        ),
        (
            "source not Valid",
            |f| {
                set_condition(
                    peer_mut(f, "member-1"),
                    condition::VALID,
                    "False",
                    "Overlap",
                )
            },
            Hop::Peer,
            "Peer member-1 is not Valid: Overlap: Valid is Overlap; fix its spec",
        ),
    ];
    for (what, breakage, hop, message) in cases {
        let mut facts = healthy();
        breakage(&mut facts);
        let report = diagnose(&facts, ts(NOW));
        let (failed, text) = report.failure().unwrap_or_else(|| {
            panic!("{what}: no failure in\n{}", report.render());
        });
        assert_eq!(failed, *hop, "{what}: {text}");
        assert!(text.contains(message), "{what}:\n{text}\nwants\n{message}");
        assert_eq!(report.exit_code(), 1, "{what}");
        // The hops before passed (or were skipped), none after was checked.
        let (last, _) = report.hops.last().unwrap();
        assert_eq!(last, hop, "{what}: checking went on after the failure");
        assert!(
            report.render().ends_with(&format!("{text}\n")),
            "{what}: {}",
            report.render()
        );
    }
}

#[test]
fn clusters_are_found_by_their_slices() {
    let peers = healthy().peers;
    assert_eq!(
        cluster_of(&peers, ip("10.114.3.4")).as_deref(),
        Some("member-2")
    );
    assert_eq!(cluster_of(&peers, ip("10.120.0.1")), None);
}

#[test]
fn targets_are_pods_or_service_names() {
    assert_eq!(
        parse_target("default/server"),
        Ok(PathEnd::Pod {
            namespace: "default".into(),
            name: "server".into()
        })
    );
    let nginx = PathEnd::Service {
        fqdn: "nginx.web.svc.hyperos.local".into(),
        namespace: "web".into(),
        name: "nginx".into(),
    };
    assert_eq!(parse_target("nginx.web"), Ok(nginx.clone()));
    assert_eq!(parse_target("nginx.web.svc.hyperos.local."), Ok(nginx));
    for bad in ["default/", "/x", "a/b/c", "nginx", "a.b.c.d"] {
        assert!(parse_target(bad).is_err(), "{bad}");
    }
}

#[test]
fn both_ends_cnfs_must_route_the_other_ends_slices_into_their_tunnel() {
    let mut facts = healthy();
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(
        report.hops.last(),
        Some(&(
            Hop::TunnelRoutes,
            Outcome::Ok(
                "member-1's CNF pod nauti-system/octopus-member-7d9c-abcde routes 10.114.0.0/16 \
                 (member-2) into nauti-wg; member-2's CNF pod nauti-system/octopus-member-55f6-vwxyz \
                 routes 10.112.0.0/16 (member-1) into nauti-wg"
                    .to_owned()
            )
        ))
    );

    // The destination's CNF lost its route to the source's slice: the clusterset block that
    // still covers it does not count.
    facts.tunnel_routes[1] = cnf_routes(
        "member-2",
        "octopus-member-55f6-vwxyz",
        Some(&["10.112.0.0/12"]),
    );
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(
        report.failure(),
        Some((
            Hop::TunnelRoutes,
            "cluster member-2's CNF pod nauti-system/octopus-member-55f6-vwxyz has no route to \
             10.112.0.0/16 (cluster member-1's slice) on nauti-wg (it routes: 10.112.0.0/12): \
             traffic to member-1 does not enter the tunnel; the CNF puts the route back on its \
             next pass, else see its log"
        ))
    );
    assert_eq!(report.hops.len(), Hop::ALL.len() - 2, "{}", report.render());

    // The source's CNF has no WireGuard interface at all.
    facts.tunnel_routes[0] = cnf_routes("member-1", CNF, None);
    assert_eq!(
        diagnose(&facts, ts(NOW)).failure(),
        Some((
            Hop::TunnelRoutes,
            "cluster member-1's CNF pod nauti-system/octopus-member-7d9c-abcde has no interface \
             nauti-wg: its tunnel is not up; see the pod's log"
        ))
    );

    // The exec failed.
    facts.tunnel_routes[0].read = CnfRoutesRead::Unreadable("exec refused".to_owned());
    assert_eq!(
        diagnose(&facts, ts(NOW)).failure(),
        Some((
            Hop::TunnelRoutes,
            "cannot read the tunnel routes of cluster member-1's active CNF: exec refused"
        ))
    );
}

#[test]
fn a_cnf_without_a_context_is_noted_and_all_unread_skips_the_hop() {
    let mut facts = healthy();
    facts.tunnel_routes[1].read = CnfRoutesRead::NotRead("no --to-context for it".to_owned());
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(report.exit_code(), 0);
    let Some((Hop::TunnelRoutes, Outcome::Ok(text))) = report.hops.last() else {
        panic!("{}", report.render());
    };
    assert!(
        text.ends_with("into nauti-wg; not checked: cluster member-2: no --to-context for it"),
        "{text}"
    );
    facts.tunnel_routes.clear();
    let report = diagnose(&facts, ts(NOW));
    assert_eq!(report.exit_code(), 0);
    assert_eq!(
        report.hops.last(),
        Some(&(
            Hop::TunnelRoutes,
            Outcome::Skipped(
                "cluster member-1's CNF was not read; cluster member-2's CNF was not read"
                    .to_owned()
            )
        ))
    );
}
