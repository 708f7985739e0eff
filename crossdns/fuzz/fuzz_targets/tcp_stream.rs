//! crossdns's TCP connection loop over raw bytes: whatever a client sends on one connection
//! (length-prefixed queries, garbage, lengths out of bounds, a message cut short), then closes.
//!
//! Beyond "no panic", the loop must answer exactly the queries a well-behaved reader would have
//! taken, in order and with their ids, each answer framed and decodable as a response, and close
//! for the reason the bytes give: the client left, or a bad length or a message that is no query.
//! Time is paused, so a wait for more bytes ends at once at its deadline instead of hanging.

#![no_main]

mod fixture;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::{Header, Message, MessageType};
use hickory_server::proto::serialize::binary::BinDecodable;
use libfuzzer_sys::fuzz_target;
use nauti_crossdns::tcp::{Closed, MAX_TCP_QUERY, TcpLimits, answer_connection, query_length};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use fixture::HANDLER;

/// The ids of the queries the loop must answer, and why it must close afterwards.
fn expected(mut bytes: &[u8]) -> (Vec<u16>, Closed) {
    let mut ids = Vec::new();
    loop {
        let Some((prefix, rest)) = bytes.split_first_chunk::<2>() else {
            return (ids, Closed::Peer);
        };
        let Some(length) = query_length(*prefix, MAX_TCP_QUERY) else {
            return (ids, Closed::BadLength);
        };
        if rest.len() < length {
            return (ids, Closed::Peer);
        }
        let (query, rest) = rest.split_at(length);
        match Header::from_bytes(query) {
            Ok(header) if header.metadata.message_type == MessageType::Query => {
                ids.push(header.metadata.id);
            }
            _ => return (ids, Closed::BadLength),
        }
        bytes = rest;
    }
}

/// The framed answers, each decoded; panics on a frame that is cut or does not decode.
fn answers(mut bytes: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some((prefix, rest)) = bytes.split_first_chunk::<2>() {
        let length = usize::from(u16::from_be_bytes(*prefix));
        assert!(rest.len() >= length, "an answer cut short");
        let (answer, rest) = rest.split_at(length);
        out.push(Message::from_vec(answer).expect("every answer decodes"));
        bytes = rest;
    }
    assert!(bytes.is_empty(), "a stray byte after the answers");
    out
}

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let limits = TcpLimits {
        max_connections: 1,
        idle: Duration::from_secs(5),
        max_query: MAX_TCP_QUERY,
    };
    let peer = SocketAddr::from(([10, 0, 0, 1], 40000));
    let (closed, written) = runtime.block_on(async {
        // Room for every answer, so that the loop never waits on the reader.
        let (client, server) = tokio::io::duplex(1 << 22);
        let (mut from_server, mut to_server) = tokio::io::split(client);
        let send = async {
            // The loop may close before it read everything: a failed write is part of the game.
            let _ = to_server.write_all(data).await;
            let _ = to_server.shutdown().await;
            to_server
        };
        let receive = async {
            let mut written = Vec::new();
            let _ = from_server.read_to_end(&mut written).await;
            written
        };
        let (closed, _, written) = tokio::join!(
            answer_connection(server, peer, &HANDLER, limits),
            send,
            receive
        );
        (closed, written)
    });
    let (ids, reason) = expected(data);
    assert_eq!(
        closed, reason,
        "closed for another reason than the bytes give"
    );
    let answers = answers(&written);
    let answered: Vec<u16> = answers.iter().map(|a| a.metadata.id).collect();
    assert_eq!(answered, ids, "not one answer per query, in order");
    for answer in &answers {
        assert_eq!(answer.metadata.message_type, MessageType::Response);
    }
});
