//! The gateway's data path without Kubernetes: three `octopus gateway` processes (the hub and
//! two members), each with the userspace WireGuard device in a network namespace of its own,
//! given the same file of Peers as the hub would store them. Each reviews the Peers, plans its
//! topology and applies it: WireGuard peers, routes onto its interface, forwarding.
//!
//! The hub has a public address on a WAN bridge; each member sits on the LAN of its own router
//! namespace, which masquerades it to the WAN (the cluster test-bed's routers). Behind each
//! member gateway a pod namespace holds the cluster's "pod" address, reached over a veth, so
//! traffic between pods crosses both gateways' forwarding.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure here is a test failure"
)]

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nauti_api::Peer;
use nauti_api::peer::PeerSpec;
use nauti_testbed::cluster_bed::plan::ClusterPlan;
use nauti_testbed::cluster_bed::underlay::{Router, Wan};
use nauti_testbed::names::unique;
use nauti_testbed::process::wait_until;
use nauti_testbed::traffic::tcp_transfer;
use nauti_testbed::wireguard::WgKeys;
use nauti_testbed::{Daemon, Netns, TestDir, peers, require_root};

const PORT: u16 = 51820;
/// The hub's public address on the WAN (the routers take .11 and .12).
const HUB_WAN_IP: &str = "198.18.0.2";
/// A stranger on the WAN, for the flood.
const STRANGER_WAN_IP: &str = "198.18.0.99";
const HUB_SLICE: &str = "10.112.0.0/16";
const SLICES: [&str; 2] = ["10.113.0.0/16", "10.114.0.0/16"];
/// The member gateways' addresses towards their pods, and the pods'.
const POD_GATEWAY: [&str; 2] = ["10.113.0.1", "10.114.0.1"];
const POD_IP: [&str; 2] = ["10.113.0.10", "10.114.0.10"];
/// A "pod" address on the hub.
const HUB_POD_IP: &str = "10.112.0.10";
const CLUSTERSET: &str = "10.127.0.0/16";
/// A 1500-byte underlay leaves 1440 for the tunnel; the pods' veths get the same (no Geneve here).
const TUNNEL_MTU: &str = "1440";
const BIG: usize = 64 << 20;
const WAIT: Duration = Duration::from_secs(120);
/// A TCP port the members listen on, on their underlay address.
const UNDERLAY_SERVICE_PORT: u16 = 7000;

/// The beds share the two cores with everything else; one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// One `octopus gateway` process.
struct Gateway {
    cluster: String,
    ifname: String,
    keys: WgKeys,
    daemon: Daemon,
}

impl Gateway {
    /// `wg show <if> <what>` over the device's UAPI socket.
    fn wg_show(&self, what: &str) -> String {
        let out = Command::new(peers::bin("wg").unwrap())
            .args(["show", &self.ifname, what])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "wg show {} {what}: {}",
            self.ifname,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The public keys of the device's peers.
    fn peer_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.wg_show("peers").lines().map(str::to_owned).collect();
        keys.sort();
        keys
    }

    /// (rx, tx) bytes for `peer`; (0, 0) when it is not a peer.
    fn transfer(&self, peer: &Gateway) -> (u64, u64) {
        let shown = self.wg_show("transfer");
        shown
            .lines()
            .find(|l| l.starts_with(&peer.keys.public))
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                (fields[1].parse().unwrap(), fields[2].parse().unwrap())
            })
            .unwrap_or((0, 0))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.daemon.log()).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.daemon.stop(Duration::from_secs(5));
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.ifname));
    }
}

/// What one cluster says about itself in its Peer.
#[derive(Clone)]
struct PeerEntry {
    cluster: String,
    slice: String,
    endpoint: Option<String>,
    public_key: String,
    is_hub: bool,
    is_public: bool,
}

impl PeerEntry {
    fn to_peer(&self) -> Peer {
        Peer::new(
            &self.cluster,
            PeerSpec {
                cluster_id: self.cluster.clone(),
                cluster_cidrs: vec![self.slice.parse().unwrap()],
                endpoint: self.endpoint.clone(),
                port: PORT,
                public_key: self.public_key.clone(),
                is_hub: self.is_hub,
                is_public: self.is_public,
            },
        )
    }
}

/// The hub, two members behind NAT, their pods, and a gateway in each of the three.
struct Bed {
    gateways: Vec<Gateway>,
    peers_file: PathBuf,
    hub: Netns,
    members: [Netns; 2],
    pods: [Netns; 2],
    routers: [Router; 2],
    wan: Wan,
}

impl Bed {
    fn up(dir: &TestDir) -> Self {
        let bed = unique("gw");
        let wan = Wan::start(&bed).unwrap();
        wan.netns
            .add_addr("br0", &format!("{STRANGER_WAN_IP}/24"))
            .unwrap();
        let hub = Netns::new("gwh").unwrap();
        hub.veth_to("wan0", &wan.netns, "hub0").unwrap();
        wan.netns
            .ip(&["link", "set", "hub0", "master", "br0"])
            .unwrap();
        hub.add_addr("wan0", &format!("{HUB_WAN_IP}/24")).unwrap();
        // No dummy module on this kernel: the hub's "pod" address sits on its loopback.
        hub.add_addr("lo", &format!("{HUB_POD_IP}/32")).unwrap();

        let plans = [ClusterPlan::new(1).unwrap(), ClusterPlan::new(2).unwrap()];
        let routers =
            [0, 1].map(|i| Router::start(&bed, ["a", "b"][i], plans[i], &wan, false).unwrap());
        let members = [0, 1].map(|i| {
            let ns = Netns::new(["gwa", "gwb"][i]).unwrap();
            routers[i].attach(&ns, "m0", "eth0").unwrap();
            ns.add_addr("eth0", &format!("{}/24", plans[i].node_ip(0)))
                .unwrap();
            ns.ip(&["route", "add", "default", "via", &plans[i].router_lan_ip()])
                .unwrap();
            ns
        });
        let pods = [0, 1].map(|i| {
            let pod = Netns::new(["gwpa", "gwpb"][i]).unwrap();
            members[i].veth_to("pod0", &pod, "eth0").unwrap();
            for (ns, link) in [(&members[i], "pod0"), (&pod, "eth0")] {
                ns.ip(&["link", "set", link, "mtu", TUNNEL_MTU]).unwrap();
            }
            members[i]
                .add_addr("pod0", &format!("{}/24", POD_GATEWAY[i]))
                .unwrap();
            pod.add_addr("eth0", &format!("{}/24", POD_IP[i])).unwrap();
            pod.ip(&["route", "add", "default", "via", POD_GATEWAY[i]])
                .unwrap();
            pod
        });

        let peers_file = dir.path().join("peers.json");
        let mut bed = Self {
            gateways: Vec::new(),
            peers_file,
            hub,
            members,
            pods,
            routers,
            wan,
        };
        let keys: Vec<WgKeys> = (0..3).map(|_| WgKeys::generate().unwrap()).collect();
        bed.write_peers(&bed.entries(&keys, false), &[]);
        for (i, cluster) in ["hub", "a", "b"].into_iter().enumerate() {
            let ns = match i {
                0 => &bed.hub,
                n => &bed.members[n - 1],
            };
            let gateway = start_gateway(dir, ns, cluster, keys[i].clone(), &bed.peers_file);
            bed.gateways.push(gateway);
        }
        // Each member routes the others' slices once it has applied the plan.
        for (i, ns) in bed.members.iter().enumerate() {
            let other = SLICES[1 - i];
            let ifname = bed.gateways[i + 1].ifname.clone();
            assert!(
                wait_until(Duration::from_secs(20), || {
                    ns.ip(&["route", "show", "dev", &ifname])
                        .is_ok_and(|r| r.contains(other))
                }),
                "member {i} never routed {other} onto {ifname}"
            );
        }
        bed
    }

    /// The Peers of the hub and both members; public members give their LAN address.
    fn entries(&self, keys: &[WgKeys], members_public: bool) -> Vec<PeerEntry> {
        let mut entries = vec![PeerEntry {
            cluster: "hub".into(),
            slice: HUB_SLICE.into(),
            endpoint: Some(HUB_WAN_IP.into()),
            public_key: keys[0].public.clone(),
            is_hub: true,
            is_public: true,
        }];
        for i in 0..2 {
            entries.push(PeerEntry {
                cluster: ["a", "b"][i].into(),
                slice: SLICES[i].into(),
                endpoint: members_public.then(|| ClusterPlan::new(i as u8 + 1).unwrap().node_ip(0)),
                public_key: keys[i + 1].public.clone(),
                is_hub: false,
                is_public: members_public,
            });
        }
        entries
    }

    /// What the devices and namespaces look like, for a failure message.
    fn diagnose(&self, gateways: &[Gateway]) -> String {
        let mut out = String::new();
        for g in gateways {
            out.push_str(&format!("{}: {}\n", g.cluster, g.wg_show("dump")));
        }
        for ns in [&self.hub, &self.members[0], &self.members[1], &self.pods[0]] {
            out.push_str(&format!(
                "{}: {}{}\n",
                ns.name(),
                ns.ip(&["route"]).unwrap_or_default(),
                ns.ip(&["-s", "link"]).unwrap_or_default()
            ));
        }
        out
    }

    /// Replaces the Peers file at once (rename), so no gateway reads half of it.
    fn write_peers(&self, entries: &[PeerEntry], extra: &[Peer]) {
        let mut all: Vec<Peer> = entries.iter().map(PeerEntry::to_peer).collect();
        all.extend(extra.iter().cloned());
        let tmp = self.peers_file.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&all).unwrap()).unwrap();
        std::fs::rename(&tmp, &self.peers_file).unwrap();
    }

    /// 64 MiB from pod A to pod B by B's global address; the byte count that arrived.
    fn pod_transfer(&self, port: u16, bytes: usize) -> usize {
        tcp_transfer(
            &self.pods[1],
            &self.pods[0],
            POD_IP[1].parse().unwrap(),
            port,
            bytes,
            WAIT,
        )
        .unwrap()
    }
}

fn start_gateway(dir: &TestDir, ns: &Netns, cluster: &str, keys: WgKeys, file: &Path) -> Gateway {
    let ifname = unique("wgw");
    let key_file = dir.path().join(format!("{ifname}.key"));
    std::fs::write(&key_file, &keys.private).unwrap();
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_octopus"));
    cmd.args(["gateway", "--interface", &ifname, "--private-key-file"])
        .arg(&key_file)
        .args(["--cluster-id", cluster, "--peers-file"])
        .arg(file)
        .args(["--joined", "hub,a,b"]);
    if cluster == "hub" {
        cmd.arg("--hub");
    }
    cmd.env("RUST_LOG", "info");
    let mut daemon = Daemon::spawn(
        format!("gateway {cluster}"),
        cmd,
        &dir.log(&format!("gateway-{cluster}")),
    )
    .unwrap();
    let socket = PathBuf::from(format!("/var/run/wireguard/{ifname}.sock"));
    daemon
        .wait_ready(Duration::from_secs(20), || socket.exists())
        .unwrap();
    Gateway {
        cluster: cluster.to_owned(),
        ifname,
        keys,
        daemon,
    }
}

fn keys_of(gateways: &[Gateway]) -> Vec<WgKeys> {
    gateways.iter().map(|g| g.keys.clone()).collect()
}

/// A TCP listener on `addr` inside `ns` that accepts (and drops) connections until `stop`.
fn listen(ns: &Netns, addr: SocketAddr) -> TcpListener {
    ns.run_in(move || TcpListener::bind(addr)).unwrap().unwrap()
}

/// Whether a TCP connection from `ns` to `addr` is established within 3 s.
fn connects(ns: &Netns, addr: SocketAddr) -> bool {
    ns.run_in(move || TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok())
        .unwrap()
}

#[test]
fn pods_reach_each_other_through_the_hub_across_nat_then_directly_once_both_are_public() {
    require_root!();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TestDir::new("gateway-hub-spoke").unwrap();
    let mut bed = Bed::up(&dir);
    let gateways = std::mem::take(&mut bed.gateways);
    let [hub, a, b] = &gateways[..] else {
        panic!("three gateways");
    };

    // The topology each gateway applied: the hub a peer per member, each member only the hub.
    let mut members = vec![a.keys.public.clone(), b.keys.public.clone()];
    members.sort();
    assert_eq!(hub.peer_keys(), members, "the hub's peers");
    assert_eq!(a.peer_keys(), vec![hub.keys.public.clone()], "A's peers");
    assert_eq!(b.peer_keys(), vec![hub.keys.public.clone()], "B's peers");
    let routes = bed.members[0]
        .ip(&["route", "show", "dev", &a.ifname])
        .unwrap();
    for wanted in [HUB_SLICE, SLICES[1], CLUSTERSET] {
        assert!(
            routes.contains(wanted),
            "A's routes lack {wanted}: {routes}"
        );
    }
    assert!(
        !routes.contains(SLICES[0]),
        "A routes its own slice away: {routes}"
    );
    let link = bed.members[0]
        .ip(&["link", "show", "dev", &a.ifname])
        .unwrap();
    assert!(link.contains(&format!("mtu {TUNNEL_MTU}")), "{link}");
    for ns in [&bed.hub, &bed.members[0], &bed.members[1]] {
        let forwarding = ns.exec("cat", &["/proc/sys/net/ipv4/ip_forward"]).unwrap();
        assert_eq!(forwarding.trim(), "1", "forwarding in {}", ns.name());
    }

    // Pod A reaches pod B and the hub's pod by their global addresses.
    assert!(
        bed.pods[0].ping(POD_IP[1], 20),
        "pod A cannot ping pod B\n{}",
        bed.diagnose(&gateways)
    );
    assert!(bed.pods[1].ping(POD_IP[0], 5), "pod B cannot ping pod A");
    assert!(
        bed.pods[0].ping(HUB_POD_IP, 5),
        "pod A cannot ping the hub's pod"
    );

    // 64 MiB from A to B, through the hub: its counters carry every byte in from A, out to B.
    let (hub_rx_a, _) = hub.transfer(a);
    let (_, hub_tx_b) = hub.transfer(b);
    let started = Instant::now();
    assert_eq!(bed.pod_transfer(5001, BIG), BIG);
    eprintln!(
        "A to B through the hub: {BIG} bytes in {:?}",
        started.elapsed()
    );
    let rx_a = hub.transfer(a).0 - hub_rx_a;
    let tx_b = hub.transfer(b).1 - hub_tx_b;
    assert!(
        rx_a >= BIG as u64 && tx_b >= BIG as u64,
        "the hub carried {rx_a} bytes from A and {tx_b} to B for {BIG} sent"
    );
    assert!(a.transfer(b) == (0, 0) && b.transfer(a) == (0, 0));

    // The members sit behind NAT: even with a route to a member's LAN, the hub cannot open a
    // connection to its underlay address (nor to its router's public address).
    let member_addr: SocketAddr = format!(
        "{}:{UNDERLAY_SERVICE_PORT}",
        ClusterPlan::new(1).unwrap().node_ip(0)
    )
    .parse()
    .unwrap();
    let _listener = listen(&bed.members[0], member_addr);
    let lan_a = ClusterPlan::new(1).unwrap().lan_cidr();
    let router_a = ClusterPlan::new(1).unwrap().router_wan_ip();
    bed.hub
        .ip(&["route", "replace", &lan_a, "via", &router_a])
        .unwrap();
    assert!(
        !connects(&bed.hub, member_addr),
        "the hub opened a connection to member A's {member_addr} through its NAT"
    );
    let public_addr: SocketAddr = format!("{router_a}:{UNDERLAY_SERVICE_PORT}")
        .parse()
        .unwrap();
    assert!(!connects(&bed.hub, public_addr));

    // Both members become public: their routers let the WAN in, every side routes the LANs,
    // and their Peers say so. They now peer directly and the hub carries none of their traffic.
    let plans = [ClusterPlan::new(1).unwrap(), ClusterPlan::new(2).unwrap()];
    for (i, plan) in plans.iter().enumerate() {
        let other = plans[1 - i];
        bed.routers[i].set_public(true).unwrap();
        bed.routers[i]
            .route(&other.lan_cidr(), &other.router_wan_ip())
            .unwrap();
        bed.hub
            .ip(&[
                "route",
                "replace",
                &plan.lan_cidr(),
                "via",
                &plan.router_wan_ip(),
            ])
            .unwrap();
    }
    assert!(
        connects(&bed.hub, member_addr),
        "A's LAN is public now, yet the hub cannot connect to {member_addr}"
    );
    bed.write_peers(&bed.entries(&keys_of(&gateways), true), &[]);
    assert!(
        wait_until(Duration::from_secs(20), || {
            a.peer_keys().contains(&b.keys.public) && b.peer_keys().contains(&a.keys.public)
        }),
        "A and B never peered directly: A {:?}, B {:?}",
        a.peer_keys(),
        b.peer_keys()
    );
    assert!(
        bed.pods[0].ping(POD_IP[1], 20),
        "no ping A to B once direct"
    );
    let hub_before = (hub.transfer(a), hub.transfer(b));
    let direct_before = a.transfer(b).1;
    let started = Instant::now();
    assert_eq!(bed.pod_transfer(5002, BIG), BIG);
    eprintln!("A to B directly: {BIG} bytes in {:?}", started.elapsed());
    let hub_after = (hub.transfer(a), hub.transfer(b));
    let hub_grew = (hub_after.0.0 - hub_before.0.0)
        + (hub_after.0.1 - hub_before.0.1)
        + (hub_after.1.0 - hub_before.1.0)
        + (hub_after.1.1 - hub_before.1.1);
    assert!(
        hub_grew < 1 << 20,
        "the hub still carried {hub_grew} bytes of a direct transfer"
    );
    let direct = a.transfer(b).1 - direct_before;
    assert!(
        direct >= BIG as u64,
        "A sent only {direct} bytes directly to B"
    );
    eprintln!("hub counters grew by {hub_grew} bytes during the direct transfer");
}

/// Random datagrams and WireGuard message types at their sizes, from a stranger on the WAN,
/// until `stop` is set or `count` went out.
fn send_garbage(from: IpAddr, target: SocketAddr, count: usize, stop: &AtomicBool) -> usize {
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).unwrap();
    let mut state = u64::from_le_bytes(seed) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let socket = UdpSocket::bind((from, 0)).unwrap();
    (0..count)
        .take_while(|_| !stop.load(Ordering::Relaxed))
        .filter(|i| {
            let len = match i % 5 {
                0 => 148,
                1 => 92,
                2 => 64,
                3 => 32 + (next() % 1400) as usize,
                _ => (next() % 1500) as usize,
            };
            let mut datagram: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 5 < 4 && len >= 8 {
                datagram[..4].copy_from_slice(&[(i % 5 + 1) as u8, 0, 0, 0]);
                datagram[4..8].copy_from_slice(&((next() % 0x400) as u32).to_le_bytes());
            }
            socket.send_to(&datagram, target).is_ok()
        })
        .count()
}

#[test]
fn bad_peers_are_refused_by_review_and_a_garbage_flood_at_the_hub_does_not_stop_traffic() {
    require_root!();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TestDir::new("gateway-bad-input").unwrap();
    let bed = Bed::up(&dir);
    let [hub, a, _] = &bed.gateways[..] else {
        panic!("three gateways");
    };
    assert!(
        bed.pods[0].ping(POD_IP[1], 20),
        "no ping A to B at the start"
    );

    // A Peer with a malformed key, one with an endpoint that is no host name, and one of a
    // cluster that never joined: each is refused, with its reason in every gateway's log,
    // and nobody's peers or traffic change.
    let stranger = WgKeys::generate().unwrap();
    let bad = |cluster: &str, slice: &str, endpoint: &str, key: &str| {
        PeerEntry {
            cluster: cluster.into(),
            slice: slice.into(),
            endpoint: Some(endpoint.into()),
            public_key: key.into(),
            is_hub: false,
            is_public: true,
        }
        .to_peer()
    };
    let extra = [
        bad("c", "10.115.0.0/16", "198.18.0.50", "not-a-key"),
        bad("d", "10.116.0.0/16", "no such host!", &stranger.public),
        bad("e", "10.117.0.0/16", "198.18.0.51", &stranger.public),
    ];
    let before: Vec<Vec<String>> = bed.gateways.iter().map(Gateway::peer_keys).collect();
    bed.write_peers(&bed.entries(&keys_of(&bed.gateways), false), &extra);
    let refusals = [
        ("c", "spec.publicKey"),
        ("d", "spec.endpoint"),
        ("e", "has not joined"),
    ];
    for gateway in &bed.gateways {
        let named = |log: &str, (peer, cause): (&str, &str)| {
            log.lines().any(|l| {
                l.contains("Peer refused")
                    && l.contains(&format!("peer={peer} "))
                    && l.contains(cause)
            })
        };
        assert!(
            wait_until(Duration::from_secs(10), || {
                let log = gateway.log_text();
                refusals.iter().all(|r| named(&log, *r))
            }),
            "{}'s log does not name every refused Peer with its cause:\n{}",
            gateway.cluster,
            gateway.log_text()
        );
    }
    let after: Vec<Vec<String>> = bed.gateways.iter().map(Gateway::peer_keys).collect();
    assert_eq!(before, after, "a refused Peer changed some gateway's peers");
    let routes = bed.members[0]
        .ip(&["route", "show", "dev", &a.ifname])
        .unwrap();
    for refused in ["10.115.", "10.116.", "10.117."] {
        assert!(!routes.contains(refused), "A routes {refused}: {routes}");
    }
    assert!(
        bed.pods[0].ping(POD_IP[1], 10),
        "no ping A to B after the bad Peers"
    );

    // A garbage flood at the hub's port from a stranger on the WAN, while A sends B 64 MiB
    // through the hub: the transfer completes and the hub's device keeps running.
    let target: SocketAddr = format!("{HUB_WAN_IP}:{PORT}").parse().unwrap();
    let from: IpAddr = STRANGER_WAN_IP.parse().unwrap();
    let wan = bed.wan.netns.path();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flood = stop.clone();
    let flood = std::thread::spawn(move || {
        nauti_testbed::netns::run_in_path(&wan, move || {
            send_garbage(from, target, 5_000_000, &stop_flood)
        })
        .unwrap()
    });
    let (hub_rx_a, _) = hub.transfer(a);
    let wan_rx_before = bed.hub.rx_packets("wan0").unwrap();
    let started = Instant::now();
    let arrived = bed.pod_transfer(5003, BIG);
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().unwrap();
    assert_eq!(arrived, BIG);
    eprintln!(
        "A to B through the hub under a flood of {sent} garbage datagrams: {BIG} bytes in {took:?}"
    );
    assert!(sent >= 10_000, "only {sent} garbage datagrams went out");
    let wan_rx = bed.hub.rx_packets("wan0").unwrap() - wan_rx_before;
    assert!(
        wan_rx >= sent as u64,
        "the hub's namespace received {wan_rx} packets, fewer than the {sent} of the flood"
    );
    assert!(
        hub.transfer(a).0 - hub_rx_a >= BIG as u64,
        "the transfer did not go through the hub"
    );
    assert!(
        bed.pods[1].ping(POD_IP[0], 5),
        "no ping B to A after the flood"
    );
    assert!(
        hub.log_text().lines().all(|l| !l.contains("panicked")),
        "the hub's gateway panicked"
    );

    // Drift is repaired: a route deleted by hand is back within one resync (10 s).
    bed.members[0]
        .ip(&["route", "del", SLICES[1], "dev", &a.ifname])
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || {
            bed.members[0]
                .ip(&["route", "show", "dev", &a.ifname])
                .is_ok_and(|r| r.contains(SLICES[1]))
        }),
        "the route to B's slice deleted on A never came back"
    );
    assert!(
        bed.pods[0].ping(POD_IP[1], 5),
        "no ping A to B after the repair"
    );
}
