//! The state file's text format: small, line-based, readable with `cat`.
//!
//! ```text
//! nauti-ipam-state 1
//! last 0 10.112.1.7
//! ip 10.112.1.5 3f1c0a…e9 eth0
//! ip 10.112.1.7 88aa01…02 net1
//! ```
//!
//! `last <range set index> <ip>` is the round-robin position of a range set (host-local's
//! `last_reserved_ip.<n>`); `ip <address> <container ID> <interface>` is one allocation with its
//! full owner. Container IDs and interface names are validated at the CNI edge to contain no
//! whitespace, so a space is a safe separator.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

const MAGIC: &str = "nauti-ipam-state 1";

/// One allocation with its full owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The address.
    pub ip: IpAddr,
    /// `CNI_CONTAINERID` of the ADD that allocated it.
    pub container_id: String,
    /// `CNI_IFNAME` of that ADD.
    pub ifname: String,
}

/// Everything a network's folder remembers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreState {
    /// Allocations, in the order they were made.
    pub records: Vec<Record>,
    /// Round-robin position per range set index.
    pub last_reserved: BTreeMap<usize, IpAddr>,
}

impl StoreState {
    /// Renders the state file.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(32 + self.records.len() * 96);
        out.push_str(MAGIC);
        out.push('\n');
        for (idx, ip) in &self.last_reserved {
            let _ = writeln!(out, "last {idx} {ip}");
        }
        for r in &self.records {
            let _ = writeln!(out, "ip {} {} {}", r.ip, r.container_id, r.ifname);
        }
        out
    }

    /// Parses a state file; `Err((line, reason))` names the first bad line (1-based).
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut state = Self::default();
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, MAGIC)) => {}
            Some((_, other)) => return Err((1, format!("expected {MAGIC:?}, found {other:?}"))),
            None => return Ok(state),
        }
        for (i, line) in lines {
            let n = i + 1;
            let mut parts = line.split(' ');
            match (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) {
                (Some("last"), Some(idx), Some(ip), None, None) => {
                    let idx = idx
                        .parse()
                        .map_err(|_| (n, format!("bad range index {idx:?}")))?;
                    let ip = ip.parse().map_err(|_| (n, format!("bad address {ip:?}")))?;
                    state.last_reserved.insert(idx, ip);
                }
                (Some("ip"), Some(ip), Some(cid), Some(ifname), None)
                    if !cid.is_empty() && !ifname.is_empty() =>
                {
                    let ip = ip.parse().map_err(|_| (n, format!("bad address {ip:?}")))?;
                    state.records.push(Record {
                        ip,
                        container_id: cid.to_owned(),
                        ifname: ifname.to_owned(),
                    });
                }
                (Some(""), None, ..) => {}
                _ => return Err((n, format!("unrecognised line {line:?}"))),
            }
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_text() {
        let mut s = StoreState::default();
        s.last_reserved.insert(0, "10.0.0.7".parse().unwrap());
        s.last_reserved.insert(1, "fd00::7".parse().unwrap());
        s.records.push(Record {
            ip: "10.0.0.7".parse().unwrap(),
            container_id: "abc".into(),
            ifname: "eth0".into(),
        });
        assert_eq!(StoreState::parse(&s.render()).unwrap(), s);
    }

    #[test]
    fn empty_file_is_an_empty_state() {
        assert_eq!(StoreState::parse("").unwrap(), StoreState::default());
    }

    #[test]
    fn corrupt_lines_are_reported_with_their_number() {
        let e = StoreState::parse("nauti-ipam-state 1\nip 10.0.0.300 a eth0\n").unwrap_err();
        assert_eq!(e.0, 2);
        let e = StoreState::parse("something else\n").unwrap_err();
        assert_eq!(e.0, 1);
        let e = StoreState::parse("nauti-ipam-state 1\nip 10.0.0.3 a\n").unwrap_err();
        assert_eq!(e.0, 2);
    }
}
