//! octopus's userspace WireGuard device (`octopus wg-device`) against real peers: wireguard-go
//! and a second octopus device, in two network namespaces joined by a veth, both configured and
//! read with Debian's `wg` over their UAPI sockets. Traffic is checked byte for byte; the device's
//! own counters must account for it; garbage at its port and malformed configuration must not
//! hurt it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure here is a test failure"
)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nauti_testbed::names::unique;
use nauti_testbed::wireguard::WgKeys;
use nauti_testbed::{Daemon, Netns, TestDir, peers, require_root};

const PORT: u16 = 51820;
/// Underlay addresses of the two namespaces.
const UNDERLAY: [&str; 2] = ["198.18.30.1", "198.18.30.2"];
/// Tunnel addresses (only inside the namespaces).
const TUNNEL: [&str; 2] = ["10.112.30.1", "10.112.30.2"];
/// WireGuard over IPv4 costs 60 bytes of the 1500-byte veth, and wireguard-go's default is 1420.
const MTU: &str = "1420";
const BIG: usize = 64 << 20;
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Octopus,
    WireguardGo,
}

/// A device process in a namespace, configured with `wg set`; stopped on drop.
struct Device {
    ifname: String,
    netns: String,
    keys: WgKeys,
    daemon: Daemon,
}

impl Device {
    fn start(kind: Kind, ns: &Netns, dir: &TestDir) -> Self {
        let keys = WgKeys::generate().unwrap();
        let (ifname, mut cmd) = match kind {
            Kind::Octopus => {
                let ifname = unique("wgo");
                let key_file = dir.path().join(format!("{ifname}.key"));
                std::fs::write(&key_file, &keys.private).unwrap();
                let mut cmd = ns.command(env!("CARGO_BIN_EXE_octopus"));
                cmd.args(["wg-device", "--interface", &ifname, "--private-key-file"])
                    .arg(&key_file)
                    .args(["--listen-port", &PORT.to_string(), "--mtu", MTU]);
                (ifname, cmd)
            }
            Kind::WireguardGo => {
                let ifname = unique("wgg");
                let cmd = ns.command(&peers::bin("wireguard-go").unwrap().display().to_string());
                (ifname, cmd)
            }
        };
        if kind == Kind::WireguardGo {
            cmd.args(["-f", &ifname]);
        }
        cmd.env("RUST_LOG", "info");
        let mut daemon =
            Daemon::spawn(format!("{kind:?} {ifname}"), cmd, &dir.log(&ifname)).unwrap();
        let socket = socket(&ifname);
        daemon
            .wait_ready(Duration::from_secs(20), || socket.exists())
            .unwrap();
        Self {
            ifname,
            netns: ns.name().to_owned(),
            keys,
            daemon,
        }
    }

    fn wg(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .arg(peers::bin("wg").unwrap())
            .args(args)
            .output()
            .unwrap()
    }

    fn wg_ok(&self, args: &[&str]) -> String {
        let out = self.wg(args);
        assert!(
            out.status.success(),
            "wg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Key, port and one peer; address and MTU on the interface, link up.
    fn configure(&self, ns: &Netns, own: usize, peer: &Device) {
        let key_file = socket(&self.ifname).with_extension("test-key");
        std::fs::write(&key_file, &self.keys.private).unwrap();
        let out = self.wg(&[
            "set",
            &self.ifname,
            "listen-port",
            &PORT.to_string(),
            "private-key",
            key_file.to_str().unwrap(),
            "peer",
            &peer.keys.public,
            "endpoint",
            &format!("{}:{PORT}", UNDERLAY[1 - own]),
            "allowed-ips",
            &format!("{}/32", TUNNEL[1 - own]),
        ]);
        let _ = std::fs::remove_file(&key_file);
        assert!(
            out.status.success(),
            "wg set {}: {}",
            self.ifname,
            String::from_utf8_lossy(&out.stderr)
        );
        ns.ip(&["link", "set", &self.ifname, "mtu", MTU, "up"])
            .unwrap();
        ns.add_addr(&self.ifname, &format!("{}/24", TUNNEL[own]))
            .unwrap();
    }

    /// (rx, tx) bytes for `peer` from `wg show <if> transfer`.
    fn transfer(&self, peer: &Device) -> (u64, u64) {
        let shown = self.wg_ok(&["show", &self.ifname, "transfer"]);
        let line = shown
            .lines()
            .find(|l| l.starts_with(&peer.keys.public))
            .unwrap_or_else(|| panic!("{} not in `wg show transfer`: {shown}", peer.keys.public));
        let fields: Vec<&str> = line.split('\t').collect();
        (fields[1].parse().unwrap(), fields[2].parse().unwrap())
    }

    /// Seconds since the epoch of the last handshake with `peer` (0: none).
    fn latest_handshake(&self, peer: &Device) -> u64 {
        let shown = self.wg_ok(&["show", &self.ifname, "latest-handshakes"]);
        shown
            .lines()
            .find(|l| l.starts_with(&peer.keys.public))
            .and_then(|l| l.split('\t').nth(1))
            .map(|t| t.trim().parse().unwrap())
            .unwrap_or(0)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.daemon.stop(Duration::from_secs(5));
        let _ = std::fs::remove_file(socket(&self.ifname));
    }
}

fn socket(ifname: &str) -> PathBuf {
    PathBuf::from("/var/run/wireguard").join(format!("{ifname}.sock"))
}

/// Two namespaces on a veth, a device in each, configured as each other's peer.
struct Tunnel {
    a: Device,
    b: Device,
    ns: [Netns; 2],
}

impl Tunnel {
    fn up(kind_a: Kind, kind_b: Kind, dir: &TestDir) -> Self {
        let ns = [Netns::new("nwa").unwrap(), Netns::new("nwb").unwrap()];
        ns[0].veth_to("ul0", &ns[1], "ul1").unwrap();
        ns[0]
            .add_addr("ul0", &format!("{}/24", UNDERLAY[0]))
            .unwrap();
        ns[1]
            .add_addr("ul1", &format!("{}/24", UNDERLAY[1]))
            .unwrap();
        let a = Device::start(kind_a, &ns[0], dir);
        let b = Device::start(kind_b, &ns[1], dir);
        a.configure(&ns[0], 0, &b);
        b.configure(&ns[1], 1, &a);
        Self { a, b, ns }
    }
}

/// A repeating random block of a prime length, so that a lost, repeated or reordered stretch of
/// the stream cannot line up with the pattern again.
fn pattern() -> Vec<u8> {
    let mut block = vec![0u8; 65_521];
    getrandom::fill(&mut block).unwrap();
    block
}

/// Sends `bytes` of the pattern over TCP from `client` to `addr` served in `server`; the server
/// compares every byte. Returns how many bytes arrived intact, or where the stream went wrong.
fn checked_transfer(
    server: &Netns,
    client: &Netns,
    addr: &str,
    port: u16,
    bytes: usize,
) -> Result<usize, String> {
    let block = std::sync::Arc::new(pattern());
    let listen = SocketAddr::new(addr.parse().unwrap(), port);
    let listener = server
        .run_in(move || TcpListener::bind(listen))
        .unwrap()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let expected = block.clone();
    let receiver = std::thread::spawn(move || -> Result<usize, String> {
        let deadline = Instant::now() + WAIT;
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err("no connection".into());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0usize;
        loop {
            let n = stream
                .read(&mut buf)
                .map_err(|e| format!("read after {total} bytes: {e}"))?;
            if n == 0 {
                return Ok(total);
            }
            for (i, byte) in buf[..n].iter().enumerate() {
                if *byte != expected[(total + i) % expected.len()] {
                    return Err(format!("byte {} differs", total + i));
                }
            }
            total += n;
            if Instant::now() >= deadline {
                return Err(format!("only {total} bytes within {WAIT:?}"));
            }
        }
    });
    let sent = client
        .run_in(move || -> std::io::Result<()> {
            let mut stream = TcpStream::connect_timeout(&listen, WAIT)?;
            stream.set_write_timeout(Some(WAIT))?;
            let mut offset = 0usize;
            while offset < bytes {
                let start = offset % block.len();
                let n = (block.len() - start).min(bytes - offset);
                stream.write_all(&block[start..start + n])?;
                offset += n;
            }
            stream.shutdown(std::net::Shutdown::Write)
        })
        .unwrap();
    let received = receiver.join().unwrap();
    sent.map_err(|e| format!("send: {e}"))?;
    received
}

/// Ping, 64 MiB each way checked byte for byte, counters and the handshake time on both ends.
fn carries_traffic_both_ways(tunnel: &Tunnel) {
    let [ns_a, ns_b] = &tunnel.ns;
    // A (octopus) speaks first and so initiates the handshake; the other tests let a
    // wireguard-go B initiate and our device answer.
    assert!(
        ns_a.ping(TUNNEL[1], 20),
        "no ping from A to B through the tunnel"
    );
    assert!(
        ns_b.ping(TUNNEL[0], 5),
        "no ping from B to A through the tunnel"
    );

    let started = Instant::now();
    assert_eq!(checked_transfer(ns_b, ns_a, TUNNEL[1], 5001, BIG), Ok(BIG));
    eprintln!("A to B: {BIG} bytes in {:?}", started.elapsed());
    let started = Instant::now();
    assert_eq!(checked_transfer(ns_a, ns_b, TUNNEL[0], 5002, BIG), Ok(BIG));
    eprintln!("B to A: {BIG} bytes in {:?}", started.elapsed());

    for (device, peer) in [(&tunnel.a, &tunnel.b), (&tunnel.b, &tunnel.a)] {
        let (rx, tx) = device.transfer(peer);
        assert!(
            tx >= BIG as u64 && rx >= BIG as u64,
            "{}: transfer counters rx {rx} tx {tx} do not account for {BIG} bytes each way",
            device.ifname
        );
        let handshake = device.latest_handshake(peer);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            handshake > 0 && handshake <= now + 1 && now - handshake < 600,
            "{}: latest handshake {handshake}, now {now}",
            device.ifname
        );
    }
}

#[test]
fn octopus_and_wireguard_go_carry_ping_and_64_mib_each_way() {
    require_root!();
    let dir = TestDir::new("wg-octopus-wggo").unwrap();
    let tunnel = Tunnel::up(Kind::Octopus, Kind::WireguardGo, &dir);
    carries_traffic_both_ways(&tunnel);
}

#[test]
fn two_octopus_devices_carry_ping_and_64_mib_each_way() {
    require_root!();
    let dir = TestDir::new("wg-octopus-octopus").unwrap();
    let tunnel = Tunnel::up(Kind::Octopus, Kind::Octopus, &dir);
    carries_traffic_both_ways(&tunnel);
}

/// Datagrams aimed at every parser: random lengths and bytes, and the four WireGuard message
/// types at their exact sizes with random content (receiver indices near the ones in use).
fn garbage(n: usize) -> Vec<Vec<u8>> {
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).unwrap();
    let mut state = u64::from_le_bytes(seed) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let len = match i % 6 {
                0 => 148,                           // handshake initiation
                1 => 92,                            // handshake response
                2 => 64,                            // cookie reply
                3 => 32 + (next() % 1400) as usize, // transport data
                _ => (next() % 1500) as usize,
            };
            let mut datagram: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 6 < 4 && len >= 8 {
                datagram[..4].copy_from_slice(&[(i % 6 + 1) as u8, 0, 0, 0]);
                // Our device hands out indices (peer << 8 | session): small ones are live.
                let receiver = (next() % 0x400) as u32;
                datagram[4..8].copy_from_slice(&receiver.to_le_bytes());
            }
            datagram
        })
        .collect()
}

#[test]
fn a_garbage_flood_at_the_port_neither_crashes_the_device_nor_stops_the_tunnel() {
    require_root!();
    let dir = TestDir::new("wg-garbage").unwrap();
    let mut tunnel = Tunnel::up(Kind::Octopus, Kind::WireguardGo, &dir);
    let [ns_a, ns_b] = &tunnel.ns;
    assert!(
        ns_b.ping(TUNNEL[0], 20),
        "no ping through the tunnel before the flood"
    );

    // The flood comes from the peer's own address and from another one on the underlay: random
    // datagrams and the message types at their sizes, then handshake initiations that are well
    // formed (their MAC is right) but come from keys the device does not know, faster than its
    // handshake limit.
    ns_b.ip(&["addr", "add", "198.18.30.3/24", "dev", "ul1"])
        .unwrap();
    let target: SocketAddr = format!("{}:{PORT}", UNDERLAY[0]).parse().unwrap();
    let device_key = key_bytes(&tunnel.a.keys.public);
    // First the random datagrams alone, so the counters of the device's side show they arrived.
    let rx_before = ns_a.rx_packets("ul0").unwrap();
    let rcvbuf_before = udp_rcvbuf_errors(ns_a);
    let sent = ns_b.run_in(move || send_garbage(target, 6000)).unwrap();
    assert_eq!(sent, 6000, "not every garbage datagram went out");
    let arrived = ns_a.rx_packets("ul0").unwrap() - rx_before;
    assert!(
        arrived >= 6000,
        "only {arrived} packets of the flood reached the device's namespace"
    );
    let dropped = udp_rcvbuf_errors(ns_a) - rcvbuf_before;
    eprintln!(
        "garbage: {sent} sent, {arrived} arrived, {dropped} dropped for a full socket buffer"
    );
    assert!(
        tunnel.a.daemon.is_running(),
        "octopus died under the flood; log {}",
        tunnel.a.daemon.log().display()
    );

    // Then more garbage and the initiations while a transfer runs.
    let flood = {
        let ns_path = ns_b.path();
        std::thread::spawn(move || {
            nauti_testbed::netns::run_in_path(&ns_path, move || {
                let garbage = send_garbage(target, 3000);
                let socket =
                    UdpSocket::bind(("198.18.30.3".parse::<IpAddr>().unwrap(), 0)).unwrap();
                let (initiations, cookies) = handshake_flood(&socket, target, device_key, 400);
                (garbage, initiations, cookies)
            })
            .unwrap()
        })
    };
    let during = checked_transfer(ns_a, ns_b, TUNNEL[0], 5003, 16 << 20);
    let (garbage_sent, initiations, cookies) = flood.join().unwrap();
    assert_eq!(during, Ok(16 << 20), "transfer during the flood");
    assert_eq!(
        (garbage_sent, initiations),
        (3000, 400),
        "flood datagrams sent"
    );
    // More than 100 initiations a second put the device under load: it answers with cookies
    // instead of spending a Diffie-Hellman on each.
    assert!(
        cookies > 0,
        "no cookie reply to {initiations} initiations beyond the handshake limit"
    );
    eprintln!("handshake flood: {initiations} initiations, {cookies} cookie replies");

    assert!(
        tunnel.a.daemon.is_running(),
        "octopus died under the flood; log {}",
        tunnel.a.daemon.log().display()
    );
    assert!(
        ns_b.ping(TUNNEL[0], 5),
        "no ping through the tunnel after the flood"
    );
    assert_eq!(
        checked_transfer(ns_b, ns_a, TUNNEL[1], 5004, 16 << 20),
        Ok(16 << 20),
        "transfer after the flood"
    );
    // Still one peer, the real one, with its endpoint unchanged.
    let peers = tunnel.a.wg_ok(&["show", &tunnel.a.ifname, "endpoints"]);
    assert_eq!(
        peers.trim(),
        format!("{}\t{}:{PORT}", tunnel.b.keys.public, UNDERLAY[1])
    );
}

/// Sends `count` garbage datagrams to `target`, alternately from the peer's address and from
/// another one; returns how many went out.
fn send_garbage(target: SocketAddr, count: usize) -> usize {
    let datagrams = garbage(count);
    let sockets = [UNDERLAY[1], "198.18.30.3"]
        .map(|from| UdpSocket::bind((from.parse::<IpAddr>().unwrap(), 0)).unwrap());
    datagrams
        .iter()
        .enumerate()
        .filter(|(i, datagram)| sockets[i % 2].send_to(datagram, target).is_ok())
        .count()
}

/// Datagrams a namespace's UDP sockets dropped for a full receive buffer.
fn udp_rcvbuf_errors(ns: &Netns) -> u64 {
    let snmp = ns.exec("cat", &["/proc/net/snmp"]).unwrap();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = udp.next().unwrap().split_whitespace().collect();
    let values: Vec<&str> = udp.next().unwrap().split_whitespace().collect();
    let at = names.iter().position(|n| *n == "RcvbufErrors").unwrap();
    values[at].parse().unwrap()
}

/// Sends `count` handshake initiations to `target`, each from a fresh unknown key with a valid
/// MAC for the device's key; returns how many went out and how many cookie replies came back.
fn handshake_flood(
    socket: &UdpSocket,
    target: SocketAddr,
    device_key: [u8; 32],
    count: usize,
) -> (usize, usize) {
    use boringtun::noise::{Tunn, TunnResult};
    use boringtun::x25519::{PublicKey, StaticSecret};
    // Made first and sent in one burst, so that their rate does not depend on how fast this
    // machine makes keys.
    let mut buf = vec![0u8; 256];
    let initiations: Vec<Vec<u8>> = (0..count)
        .filter_map(|i| {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).unwrap();
            let mut tunn = Tunn::new(
                StaticSecret::from(secret),
                PublicKey::from(device_key),
                None,
                None,
                i as u32,
                None,
            );
            match tunn.format_handshake_initiation(&mut buf, true) {
                TunnResult::WriteToNetwork(init) => Some(init.to_vec()),
                _ => None,
            }
        })
        .collect();
    let sent = initiations
        .iter()
        .filter(|init| socket.send_to(init, target).is_ok())
        .count();
    // Cookie replies (type 3) arrive within moments; count what came back.
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut cookies = 0;
    while let Ok(n) = socket.recv(&mut buf) {
        if n == 64 && buf[0] == 3 {
            cookies += 1;
        }
    }
    (sent, cookies)
}

/// One raw UAPI request; the reply's text.
fn uapi(ifname: &str, request: &str) -> String {
    let mut stream = UnixStream::connect(socket(ifname)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // The reply ends with an empty line; the device keeps the connection open for more.
    while !reply.ends_with(b"\n\n") {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(reply).unwrap()
}

#[test]
fn a_malformed_public_key_is_refused_and_changes_nothing() {
    require_root!();
    let dir = TestDir::new("wg-bad-key").unwrap();
    let tunnel = Tunnel::up(Kind::Octopus, Kind::WireguardGo, &dir);
    let device = &tunnel.a;
    let dump = || device.wg_ok(&["show", &device.ifname, "dump"]);
    let before = dump();
    assert!(before.contains(&tunnel.b.keys.public), "{before}");

    // `wg` itself refuses a key that is not 32 bytes of base64.
    let out = device.wg(&[
        "set",
        &device.ifname,
        "peer",
        "bm90LWEta2V5",
        "allowed-ips",
        "10.112.31.0/24",
    ]);
    assert!(!out.status.success(), "wg set with a short key succeeded");

    // The device refuses one that `wg` would not send: the whole request, also its valid part.
    let fresh = WgKeys::generate().unwrap();
    let fresh_hex = hex(&fresh.public);
    for bad in [
        "zz".repeat(32),
        "ab".repeat(31),
        format!("{}0", "ab".repeat(32)),
        "é".repeat(32),
        String::new(),
    ] {
        let reply = uapi(
            &device.ifname,
            &format!(
                "set=1\npublic_key={fresh_hex}\nallowed_ip=10.112.31.0/24\npublic_key={bad}\nallowed_ip=10.112.32.0/24\n\n"
            ),
        );
        assert_eq!(reply, "errno=22\n\n", "set with public_key={bad:?}");
    }
    // An over-long line ends the connection unanswered, the valid part of its request unapplied.
    let reply = uapi(
        &device.ifname,
        &format!(
            "set=1\npublic_key={fresh_hex}\nallowed_ip=10.112.31.0/24\nallowed_ip=10.112.32.0/24{}\n\n",
            " ".repeat(600)
        ),
    );
    assert_eq!(reply, "", "answer to a request with an over-long line");
    assert_eq!(dump(), before, "a refused set changed the device");

    // The socket still serves, and a well-formed request still works.
    let reply = uapi(
        &device.ifname,
        &format!("set=1\npublic_key={fresh_hex}\nallowed_ip=10.112.31.0/24\n\n"),
    );
    assert_eq!(reply, "errno=0\n\n");
    assert!(dump().contains(&fresh.public));
    assert!(
        tunnel.ns[1].ping(TUNNEL[0], 10),
        "tunnel broken after the refused sets"
    );
}

/// A base64 WireGuard key's bytes.
fn key_bytes(base64_key: &str) -> [u8; 32] {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(base64_key)
        .unwrap()
        .try_into()
        .unwrap()
}

/// A base64 WireGuard key as the UAPI's hex.
fn hex(base64_key: &str) -> String {
    key_bytes(base64_key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn wg_set_changes_to_a_live_peer_take_effect() {
    require_root!();
    let dir = TestDir::new("wg-set").unwrap();
    let tunnel = Tunnel::up(Kind::Octopus, Kind::WireguardGo, &dir);
    let (device, peer) = (&tunnel.a, &tunnel.b);
    let [ns_a, _] = &tunnel.ns;
    let ifname = device.ifname.as_str();
    assert!(ns_a.ping(TUNNEL[1], 20), "no ping before any change");

    // A persistent keepalive makes a new tunnel state for the peer; traffic goes on after a new
    // handshake.
    device.wg_ok(&[
        "set",
        ifname,
        "peer",
        &peer.keys.public,
        "persistent-keepalive",
        "1",
    ]);
    let shown = device.wg_ok(&["show", ifname, "persistent-keepalive"]);
    assert_eq!(shown.trim(), format!("{}\t1", peer.keys.public));
    assert!(
        ns_a.ping(TUNNEL[1], 10),
        "no ping after the keepalive changed"
    );

    // Replacing the allowed IPs takes the peer's address away from it: nothing is routed to it.
    device.wg_ok(&[
        "set",
        ifname,
        "peer",
        &peer.keys.public,
        "allowed-ips",
        "10.112.33.0/24",
    ]);
    let shown = device.wg_ok(&["show", ifname, "allowed-ips"]);
    assert_eq!(
        shown.trim(),
        format!("{}\t10.112.33.0/24", peer.keys.public)
    );
    assert!(
        !ns_a.ping(TUNNEL[1], 2),
        "ping went through without an allowed IP"
    );
    device.wg_ok(&[
        "set",
        ifname,
        "peer",
        &peer.keys.public,
        "allowed-ips",
        &format!("{}/32", TUNNEL[1]),
    ]);
    assert!(
        ns_a.ping(TUNNEL[1], 10),
        "no ping after the allowed IP came back"
    );

    // Removing the peer stops the traffic; adding it again restores it.
    device.wg_ok(&["set", ifname, "peer", &peer.keys.public, "remove"]);
    assert_eq!(device.wg_ok(&["show", ifname, "peers"]).trim(), "");
    assert!(!ns_a.ping(TUNNEL[1], 2), "ping went through a removed peer");
    device.wg_ok(&[
        "set",
        ifname,
        "peer",
        &peer.keys.public,
        "endpoint",
        &format!("{}:{PORT}", UNDERLAY[1]),
        "allowed-ips",
        &format!("{}/32", TUNNEL[1]),
    ]);
    assert!(
        ns_a.ping(TUNNEL[1], 10),
        "no ping after the peer was added again"
    );
    assert_eq!(
        checked_transfer(&tunnel.ns[1], ns_a, TUNNEL[1], 5005, 4 << 20),
        Ok(4 << 20)
    );
}

#[test]
fn the_device_learns_and_follows_a_peer_endpoint_from_its_packets() {
    require_root!();
    let dir = TestDir::new("wg-roam").unwrap();
    let tunnel = Tunnel::up(Kind::Octopus, Kind::WireguardGo, &dir);
    let (device, peer) = (&tunnel.a, &tunnel.b);
    let [ns_a, ns_b] = &tunnel.ns;
    let ifname = device.ifname.as_str();
    let endpoints = || device.wg_ok(&["show", ifname, "endpoints"]);

    // Like a hub for a member behind NAT: the peer is known by key only.
    device.wg_ok(&["set", ifname, "peer", &peer.keys.public, "remove"]);
    device.wg_ok(&[
        "set",
        ifname,
        "peer",
        &peer.keys.public,
        "allowed-ips",
        &format!("{}/32", TUNNEL[1]),
    ]);
    assert_eq!(endpoints().trim(), format!("{}\t(none)", peer.keys.public));
    assert!(
        !ns_a.ping(TUNNEL[1], 1),
        "ping to a peer with no endpoint went through"
    );

    // The peer speaks first; its handshake tells the device where it is.
    assert!(ns_b.ping(TUNNEL[0], 20), "no ping from the peer");
    assert_eq!(
        endpoints().trim(),
        format!("{}\t{}:{PORT}", peer.keys.public, UNDERLAY[1])
    );
    assert!(
        ns_a.ping(TUNNEL[1], 5),
        "no ping back to the learned endpoint"
    );

    // The peer moves to another address and port (as behind a NAT that rebinds): the device
    // follows its authenticated packets there.
    ns_b.ip(&["addr", "del", &format!("{}/24", UNDERLAY[1]), "dev", "ul1"])
        .unwrap();
    ns_b.ip(&["addr", "add", "198.18.30.9/24", "dev", "ul1"])
        .unwrap();
    peer.wg_ok(&["set", &peer.ifname, "listen-port", "51999"]);
    assert!(
        ns_b.ping(TUNNEL[0], 20),
        "no ping from the peer after it moved"
    );
    assert_eq!(
        endpoints().trim(),
        format!("{}\t198.18.30.9:51999", peer.keys.public)
    );
    assert_eq!(
        checked_transfer(ns_b, ns_a, TUNNEL[1], 5006, 4 << 20),
        Ok(4 << 20),
        "transfer to the moved peer"
    );
}
