//! Record data as the core hands it out, and the sets of records held at one name.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

/// TTL of every answer, in seconds: small, so a resolver follows scaling and failover within
/// seconds (the MCS examples use 4; CoreDNS's `multicluster` plugin defaults to 5).
pub const TTL: u32 = 5;

/// The version of the MCS DNS schema served at `dns-version.clusterset.local` (KEP-1645
/// `specification.md`, "Schema Version").
pub const DNS_SCHEMA_VERSION: &str = "1.0.0";

/// A record type a query asks for, as far as the core distinguishes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Service location.
    Srv,
    /// Text.
    Txt,
    /// Start of authority.
    Soa,
    /// Every type held at the name (`ANY`).
    Any,
    /// Any other type: never held, so the answer is NODATA (or NXDOMAIN).
    Other,
}

/// The zone's start of authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    /// The zone's apex, e.g. `clusterset.local`.
    pub zone: String,
    /// Primary name server: `ns.dns.<zone>`.
    pub mname: String,
    /// Mailbox of the responsible person: `hostmaster.<zone>`.
    pub rname: String,
    /// Bumped on every change of the zone's content.
    pub serial: u32,
    /// Secondaries' refresh interval (s).
    pub refresh: i32,
    /// Secondaries' retry interval (s).
    pub retry: i32,
    /// Secondaries' expiry (s).
    pub expire: i32,
    /// Negative-caching TTL (RFC 2308): the same small TTL as positive answers.
    pub minimum: u32,
}

/// One record's data; the owner name is always the query name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A service location: RFC 2782 priority, weight and port, and the target name (absolute,
    /// without the trailing dot).
    Srv {
        /// Priority (lower first).
        priority: u16,
        /// Weight among equal priorities.
        weight: u16,
        /// The port.
        port: u16,
        /// The target host name.
        target: String,
    },
    /// One text string.
    Txt(String),
    /// The zone's SOA.
    Soa(Soa),
}

/// The records held at one name, by type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordSet {
    /// A records.
    pub a: Vec<RecordData>,
    /// AAAA records.
    pub aaaa: Vec<RecordData>,
    /// SRV records.
    pub srv: Vec<RecordData>,
    /// TXT records.
    pub txt: Vec<RecordData>,
}

impl RecordSet {
    /// The records of `qtype` (all of them for `ANY`).
    pub fn get(&self, qtype: QueryType) -> Cow<'_, [RecordData]> {
        match qtype {
            QueryType::A => Cow::Borrowed(&self.a),
            QueryType::Aaaa => Cow::Borrowed(&self.aaaa),
            QueryType::Srv => Cow::Borrowed(&self.srv),
            QueryType::Txt => Cow::Borrowed(&self.txt),
            QueryType::Any => Cow::Owned(
                [&self.a, &self.aaaa, &self.srv, &self.txt]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
            ),
            QueryType::Soa | QueryType::Other => Cow::Borrowed(&[]),
        }
    }

    /// How many records the set holds.
    pub fn len(&self) -> usize {
        self.a.len() + self.aaaa.len() + self.srv.len() + self.txt.len()
    }

    /// True when the set holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an address record of the address's family.
    pub fn push_address(&mut self, address: std::net::IpAddr) {
        match address {
            std::net::IpAddr::V4(v4) => self.a.push(RecordData::A(v4)),
            std::net::IpAddr::V6(v6) => self.aaaa.push(RecordData::Aaaa(v6)),
        }
    }
}
