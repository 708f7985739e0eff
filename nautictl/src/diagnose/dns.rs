//! A DNS question for A and AAAA records and the addresses of its answer, as bytes: enough to
//! ask crossdns whether a name resolves, without a resolver of the machine in the way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record type A.
pub const TYPE_A: u16 = 1;
/// Record type AAAA.
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const HEADER_LEN: usize = 12;

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("{0:?} is not a DNS name")]
    BadName(String),
    #[error("the answer is cut short")]
    Truncated,
    #[error("the answer is for another query (id {got}, asked {want})")]
    OtherId { got: u16, want: u16 },
    #[error("the server answered {0}")]
    Rcode(&'static str),
}

/// The query for `name`'s records of `qtype` with `id`, recursion desired.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&[0; 6]); // AN, NS, AR counts
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))
            .ok_or_else(|| DnsError::BadName(name.to_owned()))?;
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, DnsError> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::Truncated)
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(bytes: &[u8], mut at: usize) -> Result<usize, DnsError> {
    loop {
        let len = *bytes.get(at).ok_or(DnsError::Truncated)?;
        match len {
            0 => return Ok(at + 1),
            // A pointer ends the name where it stands.
            l if l & 0xc0 == 0xc0 => return Ok(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

/// The A and AAAA addresses of the answer to query `id`; empty for NXDOMAIN or no records.
pub fn decode_addresses(bytes: &[u8], id: u16) -> Result<Vec<IpAddr>, DnsError> {
    if bytes.len() < HEADER_LEN {
        return Err(DnsError::Truncated);
    }
    let got = u16_at(bytes, 0)?;
    if got != id {
        return Err(DnsError::OtherId { got, want: id });
    }
    match u16_at(bytes, 2)? & 0x000f {
        0 | 3 => {}
        1 => return Err(DnsError::Rcode("FORMERR")),
        2 => return Err(DnsError::Rcode("SERVFAIL")),
        5 => return Err(DnsError::Rcode("REFUSED")),
        _ => return Err(DnsError::Rcode("an error")),
    }
    let questions = u16_at(bytes, 4)?;
    let answers = u16_at(bytes, 6)?;
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = skip_name(bytes, at)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        at = skip_name(bytes, at)?;
        let rtype = u16_at(bytes, at)?;
        let length = usize::from(u16_at(bytes, at + 8)?);
        let data = bytes
            .get(at + 10..at + 10 + length)
            .ok_or(DnsError::Truncated)?;
        match (rtype, data.len()) {
            (TYPE_A, 4) => out.push(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (TYPE_AAAA, 16) => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(data);
                out.push(IpAddr::V6(Ipv6Addr::from(octets)));
            }
            _ => {}
        }
        at += 10 + length;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    /// The answer crossdns gives: the question echoed, a CNAME-free A record with a pointer
    /// to the question's name.
    fn answer(id: u16, rcode: u8, records: &[[u8; 4]]) -> Vec<u8> {
        let mut query = encode_query(id, "nginx.web.svc.hyperos.local", TYPE_A).unwrap();
        query[2] = 0x81;
        query[3] = 0x80 | rcode;
        query[7] = u8::try_from(records.len()).unwrap();
        for ip in records {
            query.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
            query.extend_from_slice(ip);
        }
        query
    }

    #[test]
    fn a_query_is_laid_out_as_rfc_1035_says() {
        let q = encode_query(0x1234, "a.bc.", TYPE_A).unwrap();
        assert_eq!(
            q,
            [
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 2, b'b', b'c', 0, 0, 1, 0, 1
            ]
        );
        assert!(encode_query(1, "a..b", TYPE_A).is_err());
        assert!(encode_query(1, &"x".repeat(64), TYPE_A).is_err());
    }

    #[test]
    fn answers_give_their_addresses() {
        let two = answer(7, 0, &[[10, 114, 0, 7], [10, 114, 0, 8]]);
        assert_eq!(
            decode_addresses(&two, 7).unwrap(),
            [
                "10.114.0.7".parse::<IpAddr>().unwrap(),
                "10.114.0.8".parse().unwrap()
            ]
        );
        assert!(decode_addresses(&answer(7, 3, &[]), 7).unwrap().is_empty());
        assert_eq!(
            decode_addresses(&answer(7, 2, &[]), 7),
            Err(DnsError::Rcode("SERVFAIL"))
        );
        assert_eq!(
            decode_addresses(&two, 8),
            Err(DnsError::OtherId { got: 7, want: 8 })
        );
        assert_eq!(
            decode_addresses(&two[..two.len() - 2], 7),
            Err(DnsError::Truncated)
        );
    }
}
