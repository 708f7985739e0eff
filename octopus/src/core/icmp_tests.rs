use std::time::Duration;

use super::*;

/// An IPv4 packet from 10.113.0.1 carrying `icmp`, as a raw socket hands it over.
fn ipv4_around(icmp: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + icmp.len()).unwrap();
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0, 0, 64, 1, 0, 0, 10, 113, 0, 1, 10, 112, 0, 1]);
    packet.extend_from_slice(icmp);
    packet
}

/// The reply a peer's kernel makes of `request`: the type turned, the checksum redone.
fn reply_to(request: &[u8]) -> Vec<u8> {
    let mut reply = request.to_vec();
    reply[0] = 0;
    reply[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(&reply);
    reply[2..4].copy_from_slice(&sum.to_be_bytes());
    reply
}

#[test]
fn the_checksum_is_rfc_1071s() {
    // RFC 1071's worked example: the sum of these words is 0xddf2, its complement 0x220d.
    assert_eq!(
        checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
        0x220d
    );
    // An odd last byte counts as the high byte of a word.
    assert_eq!(checksum(&[0x01]), !0x0100);
    assert_eq!(checksum(&[]), 0xffff);
}

#[test]
fn an_ipv4_echo_request_is_laid_out_and_checksummed() {
    let packet = echo_request(Family::V4, 0x1234, 7, b"nauti");
    assert_eq!(&packet[..2], &[8, 0], "type 8, code 0");
    assert_eq!(&packet[4..8], &[0x12, 0x34, 0, 7]);
    assert_eq!(&packet[8..], b"nauti");
    assert_eq!(checksum(&packet), 0, "a valid checksum sums to zero");
}

#[test]
fn an_icmpv6_echo_request_leaves_the_checksum_to_the_kernel() {
    let packet = echo_request(Family::V6, 0xbeef, 1, &[]);
    assert_eq!(packet, [128, 0, 0, 0, 0xbe, 0xef, 0, 1]);
}

#[test]
fn a_reply_behind_its_ipv4_header_is_matched_by_identifier_and_sequence() {
    let request = echo_request(Family::V4, 0x1234, 7, b"payload");
    let reply = parse_echo_reply(Family::V4, &ipv4_around(&reply_to(&request))).unwrap();
    assert_eq!(
        reply,
        EchoReply {
            identifier: 0x1234,
            sequence: 7
        }
    );
}

#[test]
fn ipv4_options_are_skipped_by_the_header_length() {
    let request = echo_request(Family::V4, 9, 3, &[]);
    let mut packet = ipv4_around(&reply_to(&request));
    // IHL 6: four bytes of options (NOPs) before the ICMP message.
    packet[0] = 0x46;
    packet.splice(20..20, [1, 1, 1, 1]);
    let total = u16::try_from(packet.len()).unwrap();
    packet[2..4].copy_from_slice(&total.to_be_bytes());
    let reply = parse_echo_reply(Family::V4, &packet).unwrap();
    assert_eq!((reply.identifier, reply.sequence), (9, 3));
}

#[test]
fn trailing_bytes_past_the_ipv4_total_length_are_not_the_message() {
    let request = echo_request(Family::V4, 9, 3, b"abcd");
    let mut packet = ipv4_around(&reply_to(&request));
    packet.extend_from_slice(&[0xff; 3]);
    assert!(parse_echo_reply(Family::V4, &packet).is_ok());
}

#[test]
fn an_icmpv6_reply_comes_without_an_ip_header() {
    let packet = [129, 0, 0x12, 0x34, 0xbe, 0xef, 0, 5, 1, 2];
    let reply = parse_echo_reply(Family::V6, &packet).unwrap();
    assert_eq!((reply.identifier, reply.sequence), (0xbeef, 5));
}

#[test]
fn other_icmp_messages_are_not_replies() {
    // Another process's echo request, seen by every raw socket.
    let request = echo_request(Family::V4, 1, 1, &[]);
    assert_eq!(
        parse_echo_reply(Family::V4, &ipv4_around(&request)),
        Err(IcmpError::NotEchoReply { type_: 8, code: 0 })
    );
    // Destination unreachable.
    let mut unreachable = vec![3, 1, 0, 0, 0, 0, 0, 0];
    let sum = checksum(&unreachable);
    unreachable[2..4].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(
        parse_echo_reply(Family::V4, &ipv4_around(&unreachable)),
        Err(IcmpError::NotEchoReply { type_: 3, code: 1 })
    );
    assert_eq!(
        parse_echo_reply(Family::V6, &[128, 0, 0, 0, 0, 1, 0, 1]),
        Err(IcmpError::NotEchoReply {
            type_: 128,
            code: 0
        })
    );
}

#[test]
fn a_corrupted_reply_is_refused() {
    let request = echo_request(Family::V4, 0x1234, 7, b"payload");
    let mut packet = ipv4_around(&reply_to(&request));
    let last = packet.len() - 1;
    packet[last] ^= 0x40;
    assert_eq!(
        parse_echo_reply(Family::V4, &packet),
        Err(IcmpError::Checksum)
    );
}

#[test]
fn garbage_and_truncated_packets_are_refused_without_panic() {
    let request = echo_request(Family::V4, 0x1234, 7, b"payload");
    let whole = ipv4_around(&reply_to(&request));
    // Every prefix of a good reply short of its ICMP header, and the empty packet.
    for len in 0..20 + ECHO_HEADER_LEN {
        assert!(
            parse_echo_reply(Family::V4, &whole[..len]).is_err(),
            "{len} bytes"
        );
    }
    for len in 0..ECHO_HEADER_LEN {
        assert!(parse_echo_reply(Family::V6, &[129; 8][..len]).is_err());
    }
    // Not IPv4, not ICMP, a header length below the minimum or beyond the packet.
    let mut ipv6 = whole.clone();
    ipv6[0] = 0x65;
    assert_eq!(parse_echo_reply(Family::V4, &ipv6), Err(IcmpError::NotIcmp));
    let mut udp = whole.clone();
    udp[9] = 17;
    assert_eq!(parse_echo_reply(Family::V4, &udp), Err(IcmpError::NotIcmp));
    let mut short_ihl = whole.clone();
    short_ihl[0] = 0x44;
    assert_eq!(
        parse_echo_reply(Family::V4, &short_ihl),
        Err(IcmpError::NotIcmp)
    );
    let mut long_ihl = whole.clone();
    long_ihl[0] = 0x4f;
    assert!(
        parse_echo_reply(Family::V4, &long_ihl).is_err(),
        "60 header bytes in 35"
    );
    // A total length that cuts into the ICMP header.
    let mut cut = whole;
    cut[2..4].copy_from_slice(&24u16.to_be_bytes());
    assert!(matches!(
        parse_echo_reply(Family::V4, &cut),
        Err(IcmpError::Truncated { .. })
    ));
    // Every byte value in every position of a short packet: an error or a reply, no panic.
    for len in 0..32 {
        for byte in [0u8, 0x45, 0xff] {
            let _ = parse_echo_reply(Family::V4, &vec![byte; len]);
            let _ = parse_echo_reply(Family::V6, &vec![byte; len]);
        }
    }
}

#[test]
fn the_median_of_an_odd_and_an_even_count() {
    let ms = Duration::from_millis;
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[ms(5)]), Some(ms(5)));
    assert_eq!(
        median(&[ms(9), ms(1), ms(4)]),
        Some(ms(4)),
        "an outlier aside"
    );
    assert_eq!(median(&[ms(4), ms(2), ms(8), ms(6)]), Some(ms(5)));
}

#[test]
fn round_trips_round_to_the_nearest_millisecond() {
    assert_eq!(round_ms(Duration::from_micros(400)), 0);
    assert_eq!(round_ms(Duration::from_micros(500)), 1);
    assert_eq!(round_ms(Duration::from_micros(12_499)), 12);
    assert_eq!(round_ms(Duration::MAX), u64::MAX, "saturates");
}

#[test]
fn only_a_latency_change_beyond_both_bounds_counts() {
    let t = LatencyThreshold::default();
    assert!(!latency_moved(None, None, t));
    assert!(latency_moved(None, Some(0), t), "a first measure");
    assert!(latency_moved(Some(3), None, t), "no reply any more");
    assert!(!latency_moved(Some(0), Some(1), t), "1 ms is noise");
    assert!(latency_moved(Some(0), Some(2), t));
    assert!(!latency_moved(Some(50), Some(60), t), "20 % is noise");
    assert!(latency_moved(Some(50), Some(61), t));
    assert!(latency_moved(Some(50), Some(39), t), "down as well as up");
    assert!(!latency_moved(Some(u64::MAX), Some(u64::MAX - 2), t));
}
