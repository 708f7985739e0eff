use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use netlink_packet_core::{
    NLA_F_NESTED, NLA_TYPE_MASK, NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NlasIterator,
};
use netlink_packet_generic::GenlMessage;
use netlink_packet_wireguard::{
    WireguardAddressFamily, WireguardAllowedIp, WireguardAllowedIpAttr, WireguardAttribute,
    WireguardCmd, WireguardMessage, WireguardPeer, WireguardPeerAttribute, WireguardTimeSpec,
};

use super::*;
use crate::core::{PeerUpdate, WantedPeer};

const FAMILY: u16 = 0x1d;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The message as the adapter puts it on the wire.
fn to_bytes(message: &WireguardMessage) -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(message.clone());
    genl.set_resolved_family_id(FAMILY);
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    packet.finalize();
    let mut bytes = vec![0; packet.buffer_len()];
    packet.serialize(&mut bytes);
    bytes
}

/// Parses wire bytes back as the adapter does (the check first).
fn from_bytes(bytes: &[u8]) -> Result<WireguardMessage, String> {
    if bytes.len() >= 20 {
        check_attributes(&bytes[20..]).map_err(|e| e.to_string())?;
    }
    let packet = NetlinkMessage::<GenlMessage<WireguardMessage>>::deserialize(bytes)
        .map_err(|e| e.to_string())?;
    match packet.payload {
        NetlinkPayload::InnerMessage(genl) => Ok(genl.payload),
        other => Err(format!("not a WireGuard message: {other:?}")),
    }
}

/// (kind without flags, nested, value) of each attribute.
fn attributes(bytes: &[u8]) -> Vec<(u16, bool, Vec<u8>)> {
    NlasIterator::new(bytes)
        .map(|nla| {
            let nla = nla.unwrap();
            (
                nla.kind() & NLA_TYPE_MASK,
                nla.nested_flag(),
                nla.value().to_vec(),
            )
        })
        .collect()
}

fn full_peer() -> SetPeer {
    SetPeer {
        public_key: [0xaa; 32],
        remove: false,
        update_only: true,
        preshared_key: Some([0xbb; 32]),
        endpoint: Some(addr("192.0.2.7:51820")),
        persistent_keepalive: Some(25),
        replace_allowed_ips: true,
        allowed_ips: vec![net("10.113.0.0/16"), net("fd00:113::/48")],
    }
}

fn full_set() -> SetDevice {
    SetDevice {
        ifname: "wg0".to_owned(),
        private_key: Some([0x11; 32]),
        listen_port: Some(51820),
        fwmark: Some(0x77),
        replace_peers: true,
        peers: vec![full_peer()],
    }
}

#[test]
fn every_field_lands_on_the_uapi_attribute_numbers() {
    let messages = set_device_messages(&full_set(), MESSAGE_BUDGET).unwrap();
    assert_eq!(messages.len(), 1);
    let bytes = to_bytes(&messages[0]);
    // nlmsghdr: length, the resolved family as the type, request and ack.
    assert_eq!(
        u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize,
        bytes.len()
    );
    assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), FAMILY);
    // genlmsghdr: WG_CMD_SET_DEVICE = 1, WG_GENL_VERSION = 1.
    assert_eq!((bytes[16], bytes[17]), (1, 1));

    let device = attributes(&bytes[20..]);
    let kinds: Vec<u16> = device.iter().map(|(k, _, _)| *k).collect();
    // IFNAME 2, PRIVATE_KEY 3, LISTEN_PORT 6, FWMARK 7, FLAGS 5, PEERS 8.
    assert_eq!(kinds, [2, 3, 6, 7, 5, 8]);
    assert_eq!(device[0].2, b"wg0\0");
    assert_eq!(device[1].2, [0x11; 32]);
    assert_eq!(device[2].2, 51820u16.to_ne_bytes());
    assert_eq!(device[3].2, 0x77u32.to_ne_bytes());
    assert_eq!(device[4].2, 1u32.to_ne_bytes(), "WGDEVICE_F_REPLACE_PEERS");
    assert!(device[5].1, "the peers are a nest");

    let peers = attributes(&device[5].2);
    assert_eq!(peers.len(), 1);
    let peer = attributes(&peers[0].2);
    let kinds: Vec<u16> = peer.iter().map(|(k, _, _)| *k).collect();
    // PUBLIC_KEY 1, FLAGS 3, PRESHARED_KEY 2, ENDPOINT 4, KEEPALIVE 5, ALLOWEDIPS 9.
    assert_eq!(kinds, [1, 3, 2, 4, 5, 9]);
    assert_eq!(peer[0].2, [0xaa; 32]);
    // WGPEER_F_REPLACE_ALLOWEDIPS 2 | WGPEER_F_UPDATE_ONLY 4.
    assert_eq!(peer[1].2, 6u32.to_ne_bytes());
    assert_eq!(peer[2].2, [0xbb; 32]);
    // struct sockaddr_in: AF_INET, port in network order, address, zero padding.
    let mut sockaddr = vec![2, 0, 0xca, 0x6c, 192, 0, 2, 7];
    sockaddr.extend([0; 8]);
    assert_eq!(peer[3].2, sockaddr);
    assert_eq!(peer[4].2, 25u16.to_ne_bytes());

    let ips = attributes(&peer[5].2);
    assert_eq!(ips.len(), 2);
    // FAMILY 1, IPADDR 2, CIDR_MASK 3.
    let v4 = attributes(&ips[0].2);
    assert_eq!(v4[0], (1, false, 2u16.to_ne_bytes().to_vec()));
    assert_eq!(v4[1], (2, false, vec![10, 113, 0, 0]));
    assert_eq!(v4[2], (3, false, vec![16]));
    let v6 = attributes(&ips[1].2);
    assert_eq!(v6[0], (1, false, 10u16.to_ne_bytes().to_vec()));
    assert_eq!(v6[2], (3, false, vec![48]));
}

#[test]
fn built_messages_survive_emit_and_parse() {
    let messages = set_device_messages(&full_set(), MESSAGE_BUDGET).unwrap();
    for message in &messages {
        assert_eq!(&from_bytes(&to_bytes(message)).unwrap(), message);
    }
    let get = get_device_message("wg0");
    let bytes = to_bytes(&get);
    assert_eq!(bytes[16], 0, "WG_CMD_GET_DEVICE");
    assert_eq!(from_bytes(&bytes).unwrap(), get);
}

#[test]
fn a_removal_sends_only_the_key_and_the_flag() {
    let set = SetDevice {
        ifname: "wg0".to_owned(),
        peers: vec![SetPeer {
            remove: true,
            ..full_peer()
        }],
        ..SetDevice::default()
    };
    let messages = set_device_messages(&set, MESSAGE_BUDGET).unwrap();
    let bytes = to_bytes(&messages[0]);
    let device = attributes(&bytes[20..]);
    assert_eq!(device.len(), 2, "only IFNAME and PEERS");
    let peer = attributes(&attributes(&device[1].2)[0].2);
    assert_eq!(peer.len(), 2);
    // WGPEER_F_REMOVE_ME 1 | WGPEER_F_UPDATE_ONLY 4.
    assert_eq!(peer[1], (3, false, 5u32.to_ne_bytes().to_vec()));
}

fn key(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

#[test]
fn peer_changes_map_onto_flags_and_fields() {
    let changes = [
        PeerChange::Remove(key(1)),
        PeerChange::Update(PeerUpdate {
            public_key: key(2),
            endpoint: Some(addr("198.51.100.2:51820")),
            allowed_ips: Some(vec![net("10.114.0.0/16")]),
            keepalive: Some(None),
        }),
        PeerChange::Update(PeerUpdate {
            public_key: key(3),
            endpoint: None,
            allowed_ips: None,
            keepalive: Some(Some(25)),
        }),
        PeerChange::Add(WantedPeer {
            public_key: key(4),
            endpoint: None,
            allowed_ips: vec![net("10.115.0.0/16")],
            keepalive: Some(0),
        }),
    ];
    let set = set_from_changes("wg-nauti", &changes);
    assert_eq!(set.ifname, "wg-nauti");
    assert_eq!(
        (set.private_key, set.listen_port, set.fwmark),
        (None, None, None)
    );
    assert!(!set.replace_peers, "peers not named stay");
    assert_eq!(
        set.peers,
        [
            SetPeer {
                public_key: [1; 32],
                remove: true,
                ..SetPeer::default()
            },
            SetPeer {
                public_key: [2; 32],
                update_only: true,
                endpoint: Some(addr("198.51.100.2:51820")),
                persistent_keepalive: Some(0),
                replace_allowed_ips: true,
                allowed_ips: vec![net("10.114.0.0/16")],
                ..SetPeer::default()
            },
            SetPeer {
                public_key: [3; 32],
                update_only: true,
                persistent_keepalive: Some(25),
                ..SetPeer::default()
            },
            SetPeer {
                public_key: [4; 32],
                replace_allowed_ips: true,
                allowed_ips: vec![net("10.115.0.0/16")],
                ..SetPeer::default()
            },
        ]
    );
}

/// Every peer of `messages` as (public key, flags, allowed IPs), in order, parsed from bytes.
fn peers_on_the_wire(messages: &[WireguardMessage]) -> Vec<([u8; 32], u32, Vec<IpNet>)> {
    let mut out = Vec::new();
    for message in messages {
        let parsed = from_bytes(&to_bytes(message)).unwrap();
        for attribute in parsed.attributes {
            let WireguardAttribute::Peers(peers) = attribute else {
                continue;
            };
            for peer in peers {
                let mut entry = ([0; 32], 0, Vec::new());
                for a in peer.iter() {
                    match a {
                        WireguardPeerAttribute::PublicKey(k) => entry.0 = *k,
                        WireguardPeerAttribute::Flags(f) => entry.1 = f.bits(),
                        WireguardPeerAttribute::AllowedIps(ips) => {
                            for ip in ips {
                                entry.2.push(parse_allowed_ip(ip).unwrap());
                            }
                        }
                        _ => {}
                    }
                }
                out.push(entry);
            }
        }
    }
    out
}

fn many_nets(count: u32) -> Vec<IpNet> {
    (0..count)
        .map(|i| IpNet::new(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), 24).unwrap())
        .collect()
}

#[test]
fn many_peers_split_over_messages_under_the_budget_in_order() {
    let peers: Vec<SetPeer> = (0..200u8)
        .map(|n| SetPeer {
            public_key: [n; 32],
            endpoint: Some(addr("192.0.2.1:51820")),
            replace_allowed_ips: true,
            allowed_ips: vec![many_nets(200)[usize::from(n)]],
            ..SetPeer::default()
        })
        .collect();
    let set = SetDevice {
        peers: peers.clone(),
        ..full_set()
    };
    let messages = set_device_messages(&set, MESSAGE_BUDGET).unwrap();
    assert!(messages.len() > 1, "200 peers do not fit one page");
    for (i, message) in messages.iter().enumerate() {
        let bytes = to_bytes(message);
        assert!(
            bytes.len() <= MESSAGE_BUDGET,
            "message {i}: {} bytes",
            bytes.len()
        );
        let kinds: Vec<u16> = attributes(&bytes[20..]).iter().map(|a| a.0).collect();
        // The device's settings (and REPLACE_PEERS) only once, at the start.
        let expected: &[u16] = if i == 0 { &[2, 3, 6, 7, 5, 8] } else { &[2, 8] };
        assert_eq!(kinds, expected, "message {i}");
    }
    let wire = peers_on_the_wire(&messages);
    assert_eq!(wire.len(), 200, "no peer split: each fits whole");
    for (sent, peer) in wire.iter().zip(&peers) {
        assert_eq!(sent.0, peer.public_key);
        assert_eq!(sent.2, peer.allowed_ips);
    }
}

#[test]
fn a_peer_with_many_allowed_ips_continues_in_the_next_messages() {
    let nets = many_nets(1000);
    let set = SetDevice {
        ifname: "wg0".to_owned(),
        peers: vec![
            SetPeer {
                allowed_ips: nets.clone(),
                ..full_peer()
            },
            SetPeer {
                public_key: [0xcc; 32],
                allowed_ips: vec![net("10.200.0.0/16")],
                ..SetPeer::default()
            },
        ],
        ..SetDevice::default()
    };
    let messages = set_device_messages(&set, MESSAGE_BUDGET).unwrap();
    assert!(messages.len() >= 3, "1000 allowed IPs take several pages");
    assert!(messages.iter().all(|m| to_bytes(m).len() <= MESSAGE_BUDGET));
    let wire = peers_on_the_wire(&messages);
    // The first piece replaces; the continuations only add, under the key alone.
    assert_eq!(wire[0].1, 6);
    let pieces: Vec<_> = wire.iter().filter(|p| p.0 == [0xaa; 32]).collect();
    assert!(pieces.len() >= 3);
    assert!(pieces[1..].iter().all(|p| p.1 == 0));
    let sent: Vec<IpNet> = pieces.iter().flat_map(|p| p.2.clone()).collect();
    assert_eq!(sent, nets);
    assert_eq!(wire.last().unwrap().0, [0xcc; 32]);
    assert_eq!(wire.last().unwrap().2, [net("10.200.0.0/16")]);
    // A dump split the same way reads back as one peer with every allowed IP.
    let dump: Vec<WireguardMessage> = messages
        .iter()
        .map(|m| WireguardMessage {
            cmd: WireguardCmd::GetDevice,
            attributes: m.attributes.clone(),
        })
        .chain([WireguardMessage {
            cmd: WireguardCmd::GetDevice,
            attributes: vec![
                WireguardAttribute::PublicKey([9; 32]),
                WireguardAttribute::ListenPort(1),
            ],
        }])
        .collect();
    let state = parse_device_dump(&dump).unwrap();
    assert_eq!(state.peers.len(), 2);
    assert_eq!(state.peers[0].config.allowed_ips, nets);
}

#[test]
fn requests_that_cannot_be_sent_are_errors() {
    for bad in ["", "sixteen-bytes-xx", "wg\0x"] {
        let set = SetDevice {
            ifname: bad.to_owned(),
            ..full_set()
        };
        assert_eq!(
            set_device_messages(&set, MESSAGE_BUDGET),
            Err(BuildError::InterfaceName(bad.to_owned()))
        );
    }
    assert_eq!(
        set_device_messages(&full_set(), 100),
        Err(BuildError::BudgetTooSmall {
            budget: 100,
            peer: PublicKey([0xaa; 32])
        })
    );
    // Without peers, any budget sends the device settings.
    let set = SetDevice {
        peers: Vec::new(),
        ..full_set()
    };
    assert_eq!(set_device_messages(&set, 0).unwrap().len(), 1);
}

fn allowed(family: WireguardAddressFamily, ip: &str, cidr: u8) -> WireguardAllowedIp {
    WireguardAllowedIp(vec![
        WireguardAllowedIpAttr::Family(family),
        WireguardAllowedIpAttr::IpAddr(ip.parse().unwrap()),
        WireguardAllowedIpAttr::Cidr(cidr),
    ])
}

/// A dump shaped as the kernel sends it (wg_get_device_dump's attributes).
fn kernel_dump() -> WireguardMessage {
    WireguardMessage {
        cmd: WireguardCmd::GetDevice,
        attributes: vec![
            WireguardAttribute::ListenPort(51820),
            WireguardAttribute::Fwmark(0),
            WireguardAttribute::IfIndex(7),
            WireguardAttribute::IfName("wg0".to_owned()),
            WireguardAttribute::PrivateKey([0x11; 32]),
            WireguardAttribute::PublicKey([0x22; 32]),
            WireguardAttribute::Peers(vec![
                WireguardPeer(vec![
                    WireguardPeerAttribute::PublicKey([0xaa; 32]),
                    WireguardPeerAttribute::PresharedKey([0; 32]),
                    WireguardPeerAttribute::LastHandshake(WireguardTimeSpec {
                        seconds: 1_700_000_000,
                        nano_seconds: 5,
                    }),
                    WireguardPeerAttribute::PersistentKeepalive(25),
                    WireguardPeerAttribute::TxBytes(1234),
                    WireguardPeerAttribute::RxBytes(5678),
                    WireguardPeerAttribute::ProtocolVersion(1),
                    WireguardPeerAttribute::Endpoint(addr("[2001:db8::7]:40001")),
                    WireguardPeerAttribute::AllowedIps(vec![
                        allowed(WireguardAddressFamily::Ipv4, "10.113.0.0", 16),
                        allowed(WireguardAddressFamily::Ipv6, "fd00:113::", 48),
                    ]),
                ]),
                WireguardPeer(vec![
                    WireguardPeerAttribute::PublicKey([0xbb; 32]),
                    WireguardPeerAttribute::LastHandshake(WireguardTimeSpec::default()),
                    WireguardPeerAttribute::PersistentKeepalive(0),
                    WireguardPeerAttribute::TxBytes(0),
                    WireguardPeerAttribute::RxBytes(0),
                ]),
            ]),
        ],
    }
}

#[test]
fn a_dump_maps_onto_the_device_state_field_by_field() {
    let parsed = from_bytes(&to_bytes(&kernel_dump())).unwrap();
    assert_eq!(parsed, kernel_dump());
    let state = parse_device_dump(&[parsed]).unwrap();
    assert_eq!(
        state,
        DeviceState {
            public_key: PublicKey([0x22; 32]),
            listen_port: 51820,
            peers: vec![
                PeerState {
                    config: DevicePeer {
                        public_key: PublicKey([0xaa; 32]),
                        endpoint: Some(addr("[2001:db8::7]:40001")),
                        allowed_ips: vec![net("10.113.0.0/16"), net("fd00:113::/48")],
                        keepalive: Some(25),
                    },
                    last_handshake: Some(SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5)),
                    rx_bytes: 5678,
                    tx_bytes: 1234,
                },
                PeerState {
                    config: DevicePeer {
                        public_key: PublicKey([0xbb; 32]),
                        endpoint: None,
                        allowed_ips: Vec::new(),
                        keepalive: None,
                    },
                    last_handshake: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                },
            ],
        }
    );
}

fn with_peer(peer: Vec<WireguardPeerAttribute>) -> WireguardMessage {
    WireguardMessage {
        cmd: WireguardCmd::GetDevice,
        attributes: vec![
            WireguardAttribute::PublicKey([0x22; 32]),
            WireguardAttribute::ListenPort(1),
            WireguardAttribute::Peers(vec![WireguardPeer(peer)]),
        ],
    }
}

#[test]
fn dumps_that_do_not_describe_a_device_are_errors() {
    assert_eq!(parse_device_dump(&[]), Err(ParseError::Empty));
    let set = WireguardMessage {
        cmd: WireguardCmd::SetDevice,
        ..kernel_dump()
    };
    assert_eq!(parse_device_dump(&[set]), Err(ParseError::Command(1)));
    let keyless = WireguardMessage {
        cmd: WireguardCmd::GetDevice,
        attributes: vec![WireguardAttribute::ListenPort(1)],
    };
    assert!(matches!(
        parse_device_dump(&[keyless]),
        Err(ParseError::Missing(m)) if m.starts_with("WGDEVICE_A_PUBLIC_KEY")
    ));
    let portless = WireguardMessage {
        cmd: WireguardCmd::GetDevice,
        attributes: vec![WireguardAttribute::PublicKey([1; 32])],
    };
    assert_eq!(
        parse_device_dump(&[portless]),
        Err(ParseError::Missing("WGDEVICE_A_LISTEN_PORT"))
    );
    let anonymous = with_peer(vec![WireguardPeerAttribute::RxBytes(1)]);
    assert_eq!(
        parse_device_dump(&[anonymous]),
        Err(ParseError::Missing("WGPEER_A_PUBLIC_KEY"))
    );
    let long_prefix = with_peer(vec![
        WireguardPeerAttribute::PublicKey([1; 32]),
        WireguardPeerAttribute::AllowedIps(vec![allowed(
            WireguardAddressFamily::Ipv4,
            "10.0.0.0",
            33,
        )]),
    ]);
    assert!(matches!(
        parse_device_dump(&[long_prefix]),
        Err(ParseError::AllowedIp { cidr: 33, .. })
    ));
    let wrong_family = with_peer(vec![
        WireguardPeerAttribute::PublicKey([1; 32]),
        WireguardPeerAttribute::AllowedIps(vec![allowed(
            WireguardAddressFamily::Ipv6,
            "10.0.0.0",
            8,
        )]),
    ]);
    assert!(matches!(
        parse_device_dump(&[wrong_family]),
        Err(ParseError::AllowedIp {
            family: Some(10),
            ..
        })
    ));
    for (seconds, nano_seconds) in [(-1, 0), (1, -1), (1, 1_000_000_000)] {
        let bad_time = with_peer(vec![
            WireguardPeerAttribute::PublicKey([1; 32]),
            WireguardPeerAttribute::LastHandshake(WireguardTimeSpec {
                seconds,
                nano_seconds,
            }),
        ]);
        assert!(matches!(
            parse_device_dump(&[bad_time]),
            Err(ParseError::HandshakeTime { .. })
        ));
    }
}

#[test]
fn an_empty_prefix_length_is_refused_before_the_parser_sees_it() {
    // Hand-made: PEERS { peer { ALLOWEDIPS { ip { CIDR_MASK with no byte } } } }.
    let cidr = [4u8, 0, 3, 0];
    let ip = [&[8u8, 0, 0, 0x80][..], &cidr].concat();
    let ips = [&[12u8, 0, 9, 0x80][..], &ip].concat();
    let peer = [&[16u8, 0, 0, 0x80][..], &ips].concat();
    let peers = [&[20u8, 0, 8, 0x80][..], &peer].concat();
    assert_eq!(usize::from(peers[0]), peers.len());
    assert!(matches!(
        check_attributes(&peers),
        Err(ParseError::Malformed(m)) if m.contains("CIDR_MASK")
    ));
    // The same with its byte passes.
    let cidr = [5u8, 0, 3, 0, 24, 0, 0, 0];
    let ip = [&[12u8, 0, 0, 0x80][..], &cidr].concat();
    let ips = [&[16u8, 0, 9, 0x80][..], &ip].concat();
    let peer = [&[20u8, 0, 0, 0x80][..], &ips].concat();
    let peers = [&[24u8, 0, 8, 0x80][..], &peer].concat();
    assert_eq!(check_attributes(&peers), Ok(()));
    assert_eq!(u16::from_ne_bytes([peers[2], peers[3]]), 8 | NLA_F_NESTED);
}

#[test]
fn corrupted_bytes_give_errors_not_panics() {
    let bytes = to_bytes(&kernel_dump());
    let mut parsed = 0;
    for position in 0..bytes.len() {
        for value in [0u8, 1, 3, 0x7f, 0xff] {
            let mut corrupt = bytes.clone();
            corrupt[position] = value;
            if let Ok(message) = from_bytes(&corrupt) {
                let _ = parse_device_dump(&[message]);
                parsed += 1;
            }
        }
        let _ = from_bytes(&bytes[..position]);
    }
    // Most single-byte changes (key bytes, counters) still parse; the loop ran through them.
    assert!(
        parsed > bytes.len(),
        "{parsed} of {} parsed",
        bytes.len() * 5
    );
}
