//! The query path of crossdns: raw bytes, as they arrive in a datagram or a TCP frame, decoded
//! by hickory the way the server does, then through crossdns's request handler over an index
//! holding a ClusterSetIP service, a headless service too big for one datagram, and the
//! version record. The first byte picks UDP or TCP; the rest is the packet.
//!
//! Beyond "no panic", every response must encode (a failure would turn into SERVFAIL), fit the
//! UDP size the request allows, decode again, and carry the request's id.

#![no_main]

mod fixture;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Message, MessageType};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use libfuzzer_sys::fuzz_target;

use fixture::{HANDLER, MAX_UDP_PAYLOAD};

/// Encodes the response as the server would and keeps the bytes.
#[derive(Clone)]
struct Capture {
    protocol: Protocol,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // What hickory's own ResponseHandle does (MessageResponse::encode).
        let limit = match self.protocol {
            Protocol::Udp => response.edns().map_or(512, |edns| edns.max_payload()),
            _ => u16::MAX,
        };
        let mut bytes = Vec::new();
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(limit);
        let info = response.destructive_emit(&mut encoder);
        assert!(info.is_ok(), "the response does not encode: {info:?}");
        assert!(
            bytes.len() <= usize::from(limit),
            "{} > {limit}",
            bytes.len()
        );
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(bytes);
        info.map_err(NetError::from)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, packet)) = data.split_first() else {
        return;
    };
    let protocol = if selector & 1 == 0 {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    let src = SocketAddr::from(([10, 0, 0, 1], 5353));
    // Packets hickory cannot decode never reach the handler (the server answers FORMERR or
    // drops them itself), and neither do responses.
    let Ok(request) = Request::from_bytes(packet.to_vec(), src, protocol) else {
        return;
    };
    if request.metadata.message_type == MessageType::Response {
        return;
    }
    let capture = Capture {
        protocol,
        sent: Arc::default(),
    };
    futures::executor::block_on(HANDLER.handle_request::<_, TokioTime>(&request, capture.clone()));
    let sent = capture.sent.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(sent.len(), 1, "one response per request");
    let response = Message::from_vec(&sent[0]).expect("our response decodes");
    assert_eq!(response.metadata.id, request.metadata.id);
    assert_eq!(response.metadata.message_type, MessageType::Response);
    if let Some(edns) = &response.edns {
        assert!(edns.max_payload() <= MAX_UDP_PAYLOAD && edns.max_payload() >= 512);
    }
});
