//! The cross-platform UAPI (`get=1` / `set=1` text protocol on
//! `/var/run/wireguard/<ifname>.sock`), so `wg show` and `wg set` work against the device.
//!
//! Requests are parsed into the same [`PeerChange`]s the peer diff produces. `private_key=`
//! switches the running device to a new key in place (its peers stay and handshake again); the
//! port is fixed for the device's lifetime, so a `set` that would change it is refused.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use ipnet::IpNet;

use super::Shared;
use crate::core::{PeerChange, PeerUpdate, PublicKey, WantedPeer};
use crate::wg::WgError;

/// Where the UAPI socket of `ifname` lives.
pub fn socket_path(ifname: &str) -> PathBuf {
    PathBuf::from("/var/run/wireguard").join(format!("{ifname}.sock"))
}

/// Longest request line accepted; a longer one ends the connection.
const MAX_LINE: usize = 512;
/// Most lines in one request.
const MAX_LINES: usize = 65_536;

pub(crate) fn serve(shared: Arc<Shared>, ifname: &str) -> Result<(), WgError> {
    let path = socket_path(ifname);
    let io = |what: &'static str, path: &PathBuf| {
        let what = format!("{what} {}", path.display());
        move |source| WgError::Io { what, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", &path))?;
    }
    // A socket left by a device of the same name that died is stale.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(io("bind", &path))?;
    std::thread::Builder::new()
        .name("wg-uapi".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(error) = handle(&shared, stream) {
                    tracing::debug!(%error, "UAPI connection ended");
                }
            }
        })
        .map_err(io("start UAPI thread for", &path))?;
    Ok(())
}

fn handle(shared: &Shared, stream: UnixStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some(lines) = read_request(&mut reader)? {
        let reply = match lines.first().map(String::as_str) {
            Some("get=1") => get(shared),
            Some("set=1") => match set(shared, &lines[1..]) {
                Ok(()) => "errno=0\n\n".to_owned(),
                Err(error) => {
                    tracing::warn!(%error, "UAPI set refused");
                    format!("errno={}\n\n", error.errno())
                }
            },
            _ => return Ok(()),
        };
        writer.write_all(reply.as_bytes())?;
    }
    Ok(())
}

/// The lines of one request, up to the empty line that ends it; `None` when the client closed
/// the connection before that. A line longer than [`MAX_LINE`] or a request of more than
/// [`MAX_LINES`] is an error: nothing of it is carried out and the connection ends.
fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<String>>> {
    let too_long =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.by_ref().take(MAX_LINE as u64).read_line(&mut line)?;
        if n == 0 {
            return Ok(None);
        }
        let Some(line) = line.strip_suffix('\n') else {
            if n as u64 == MAX_LINE as u64 {
                return Err(too_long("UAPI line too long"));
            }
            return Ok(None); // the last line of a closed connection
        };
        if line.is_empty() {
            return Ok(Some(lines));
        }
        if lines.len() == MAX_LINES {
            return Err(too_long("UAPI request has too many lines"));
        }
        lines.push(line.to_owned());
    }
}

fn get(shared: &Shared) -> String {
    let mut out = format!(
        "private_key={}\nlisten_port={}\n",
        hex(&shared.identity().static_private.to_bytes()),
        shared.listen_port
    );
    for peer in shared.peers.states() {
        let c = &peer.config;
        out.push_str(&format!("public_key={}\n", hex(c.public_key.as_bytes())));
        if let Some(ep) = c.endpoint {
            out.push_str(&format!("endpoint={ep}\n"));
        }
        let since = peer
            .last_handshake
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        out.push_str(&format!(
            "last_handshake_time_sec={}\nlast_handshake_time_nsec={}\ntx_bytes={}\nrx_bytes={}\npersistent_keepalive_interval={}\n",
            since.as_secs(),
            since.subsec_nanos(),
            peer.tx_bytes,
            peer.rx_bytes,
            c.keepalive.unwrap_or(0)
        ));
        for net in &c.allowed_ips {
            out.push_str(&format!("allowed_ip={net}\n"));
        }
        out.push_str("protocol_version=1\n");
    }
    out.push_str("errno=0\n\n");
    out
}

/// A `set` request the device does not carry out.
#[derive(Debug, thiserror::Error)]
pub enum UapiError {
    /// A line that is not `key=value` or has a bad value.
    #[error("bad UAPI line {line:?}: {why}")]
    Invalid {
        /// The line.
        line: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A change the device cannot make while running.
    #[error("{0} is fixed for the device's lifetime; restart it to change it")]
    Fixed(&'static str),
    /// Applying the changes failed.
    #[error(transparent)]
    Apply(#[from] WgError),
}

impl UapiError {
    fn errno(&self) -> i32 {
        match self {
            Self::Invalid { .. } => 22, // EINVAL
            Self::Fixed(_) => 95,       // EOPNOTSUPP
            Self::Apply(_) => 5,        // EIO
        }
    }
}

/// One peer's section of a `set` request.
#[derive(Default)]
struct PeerSection {
    key: Option<PublicKey>,
    remove: bool,
    update_only: bool,
    endpoint: Option<SocketAddr>,
    keepalive: Option<Option<u16>>,
    replace_allowed_ips: bool,
    allowed_ips: Vec<IpNet>,
}

fn set(shared: &Shared, lines: &[String]) -> Result<(), UapiError> {
    let mut sections: Vec<PeerSection> = Vec::new();
    let mut replace_peers = false;
    let mut private_key = None;
    for line in lines {
        let invalid = |why| UapiError::Invalid {
            line: line.clone(),
            why,
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| invalid("not key=value"))?;
        let current = sections.last_mut();
        match (key, current) {
            ("private_key", None) => {
                let key = unhex(value).ok_or_else(|| invalid("not a 64-digit hex key"))?;
                // `wg` clears a key with zeros; a running gateway always needs one.
                if key == [0; 32] {
                    return Err(invalid("the device cannot run without a private key"));
                }
                private_key = Some(key);
            }
            ("listen_port", None) => {
                let port: u16 = value.parse().map_err(|_| invalid("not a port"))?;
                if port != shared.listen_port {
                    return Err(UapiError::Fixed("listen_port"));
                }
            }
            ("fwmark", None) => {
                if value != "0" {
                    return Err(UapiError::Fixed("fwmark"));
                }
            }
            ("replace_peers", None) => replace_peers = value == "true",
            ("public_key", _) => sections.push(PeerSection {
                key: Some(PublicKey(
                    unhex(value).ok_or_else(|| invalid("not a 64-digit hex key"))?,
                )),
                ..PeerSection::default()
            }),
            ("remove", Some(p)) => p.remove = value == "true",
            ("update_only", Some(p)) => p.update_only = value == "true",
            ("preshared_key", Some(_)) => {
                if unhex(value) != Some([0; 32]) {
                    return Err(UapiError::Fixed("preshared_key"));
                }
            }
            ("endpoint", Some(p)) => {
                let ep: SocketAddr = value.parse().map_err(|_| invalid("not ip:port"))?;
                if ep.is_ipv6() {
                    return Err(UapiError::Apply(WgError::EndpointFamily(ep)));
                }
                p.endpoint = Some(ep);
            }
            ("persistent_keepalive_interval", Some(p)) => {
                let k: u16 = value
                    .parse()
                    .map_err(|_| invalid("not a number of seconds"))?;
                p.keepalive = Some((k != 0).then_some(k));
            }
            ("replace_allowed_ips", Some(p)) => p.replace_allowed_ips = value == "true",
            ("allowed_ip", Some(p)) => {
                let net: IpNet = value.parse().map_err(|_| invalid("not a CIDR"))?;
                p.allowed_ips.push(net.trunc());
            }
            ("protocol_version", Some(_)) => {
                if value != "1" {
                    return Err(invalid("only protocol version 1 exists"));
                }
            }
            _ => return Err(invalid("unknown key here")),
        }
    }
    let mut changes = Vec::new();
    if replace_peers {
        let keep: Vec<PublicKey> = sections.iter().filter_map(|s| s.key).collect();
        for peer in shared.peers.all() {
            if !keep.contains(&peer.public_key) {
                changes.push(PeerChange::Remove(peer.public_key));
            }
        }
    }
    let existing: BTreeMap<PublicKey, Vec<IpNet>> = shared
        .peers
        .states()
        .into_iter()
        .map(|p| (p.config.public_key, p.config.allowed_ips))
        .collect();
    for s in sections {
        let Some(key) = s.key else { continue };
        if s.remove {
            changes.push(PeerChange::Remove(key));
            continue;
        }
        match existing.get(&key) {
            Some(old) => {
                let allowed_ips = if s.replace_allowed_ips {
                    Some(s.allowed_ips)
                } else if s.allowed_ips.is_empty() {
                    None
                } else {
                    let mut all = old.clone();
                    all.extend(s.allowed_ips.into_iter().filter(|n| !old.contains(n)));
                    Some(all)
                };
                changes.push(PeerChange::Update(PeerUpdate {
                    public_key: key,
                    endpoint: s.endpoint,
                    allowed_ips,
                    keepalive: s.keepalive,
                }));
            }
            None if s.update_only => {}
            None => changes.push(PeerChange::Add(WantedPeer {
                public_key: key,
                endpoint: s.endpoint,
                allowed_ips: s.allowed_ips,
                keepalive: s.keepalive.flatten(),
            })),
        }
    }
    // The key first, as `wg` orders it: peers added in the same request get the new one.
    if let Some(key) = private_key
        && shared.set_private_key(&key)
    {
        tracing::info!("UAPI set a new private key");
    }
    shared.apply(&changes)?;
    Ok(())
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use boringtun::x25519::{PublicKey as XPublicKey, StaticSecret};

    #[test]
    fn requests_end_at_an_empty_line_and_overlong_ones_are_refused() {
        let mut two = "get=1\n\nset=1\nlisten_port=1\n\n".as_bytes();
        assert_eq!(
            read_request(&mut two).unwrap(),
            Some(vec!["get=1".to_owned()])
        );
        assert_eq!(
            read_request(&mut two).unwrap(),
            Some(vec!["set=1".to_owned(), "listen_port=1".to_owned()])
        );
        assert_eq!(read_request(&mut two).unwrap(), None);
        // A request cut off before its empty line is never carried out.
        assert_eq!(
            read_request(&mut "set=1\nlisten_port=1".as_bytes()).unwrap(),
            None
        );
        let long = format!("set=1\nallowed_ip={}\n\n", "1".repeat(MAX_LINE));
        assert!(read_request(&mut long.as_bytes()).is_err());
        let many = format!("set=1\n{}\n", "remove=true\n".repeat(MAX_LINES));
        assert!(read_request(&mut many.as_bytes()).is_err());
    }

    fn lines(request: &[&str]) -> Vec<String> {
        request.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn private_key_switches_a_live_device_and_keeps_its_peers() {
        let shared = Shared::for_tests([1; 32]);
        let peer = hex(&[9; 32]);
        set(
            &shared,
            &lines(&[
                &format!("public_key={peer}"),
                "endpoint=127.0.0.1:51999",
                "allowed_ip=10.113.0.0/16",
            ]),
        )
        .unwrap();
        let before = shared.identity().static_public.to_bytes();

        // The same key changes nothing; another one is taken, peers and port stay.
        set(
            &shared,
            &lines(&[&format!("private_key={}", hex(&[1; 32]))]),
        )
        .unwrap();
        assert_eq!(shared.identity().static_public.to_bytes(), before);
        set(
            &shared,
            &lines(&[&format!("private_key={}", hex(&[2; 32]))]),
        )
        .unwrap();
        let after = shared.identity().static_public.to_bytes();
        assert_ne!(after, before);
        assert_eq!(
            after,
            XPublicKey::from(&StaticSecret::from([2; 32])).to_bytes()
        );
        let shown = get(&shared);
        assert!(
            shown.contains(&format!("private_key={}\n", hex(&[2; 32]))),
            "{shown}"
        );
        assert!(shown.contains(&format!("public_key={peer}\nendpoint=127.0.0.1:51999\n")));
        assert!(shown.contains("allowed_ip=10.113.0.0/16\n"), "{shown}");
        assert!(shown.contains(&format!("listen_port={}\n", shared.listen_port)));

        // A device cannot run without a key; a port change is still refused.
        assert!(matches!(
            set(
                &shared,
                &lines(&[&format!("private_key={}", hex(&[0; 32]))])
            ),
            Err(UapiError::Invalid { .. })
        ));
        assert!(matches!(
            set(&shared, &lines(&["listen_port=1"])),
            Err(UapiError::Fixed("listen_port"))
        ));
        assert_eq!(shared.identity().static_public.to_bytes(), after);
    }

    #[test]
    fn hex_keys_round_trip_and_bad_ones_are_refused() {
        let key = [0xab; 32];
        assert_eq!(unhex(&hex(&key)), Some(key));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex(&"zz".repeat(32)), None);
        assert_eq!(unhex(&"é".repeat(32)), None);
    }
}
