//! DNS over UDP without a task or a channel per query: each socket's task receives a datagram,
//! has the [`Handler`] work out the answer and sends it, all in line. hickory's own UDP loop
//! spawns a task per request and hands every response back to the receiving task through a
//! channel, and those wake-ups cost more than the answer itself (TCP has its own bounded loop, [`crate::tcp`]).
//!
//! What hickory's server does before its handler runs is kept: a datagram shorter than a
//! header is dropped, one that does not decode gets FORMERR with its id, responses are never
//! answered (no reflection), nor are sources on port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Header, MessageType, Metadata, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinDecodable;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::dns::Handler;
use crate::wire::{encode_response, header_only};

/// The largest datagram read: anything longer is cut, and then fails to decode.
const MAX_DATAGRAM: usize = 65_535;

/// Answers the queries arriving on `socket` until `shutdown`.
pub async fn serve(socket: UdpSocket, handler: Handler, shutdown: CancellationToken) {
    let socket = Arc::new(socket);
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => received,
            () = shutdown.cancelled() => return,
        };
        match received {
            Ok((len, src)) if src.port() != 0 => {
                answer(&handler, &socket, &buffer[..len], src).await;
            }
            Ok(_) => {}
            // Per-datagram errors (an ICMP unreachable for an earlier answer): the socket is
            // still good.
            Err(error) => {
                debug!(%error, "cannot receive a datagram");
                tokio::task::yield_now().await;
            }
        }
    }
}

async fn answer(handler: &Handler, socket: &Arc<UdpSocket>, datagram: &[u8], src: SocketAddr) {
    let Ok(header) = Header::from_bytes(datagram) else {
        return;
    };
    if header.metadata.message_type == MessageType::Response {
        return;
    }
    match Request::from_bytes(datagram.to_vec(), src, Protocol::Udp) {
        Ok(request) => {
            let reply = Reply {
                socket: socket.clone(),
                dst: src,
            };
            handler
                .handle_request::<_, TokioTime>(&request, reply)
                .await;
        }
        Err(error) => {
            debug!(%error, %src, "a query that does not decode: FORMERR");
            let mut metadata = Metadata::response_from_request(&header.metadata);
            metadata.response_code = ResponseCode::FormErr;
            let bytes = header_only(metadata);
            if let Err(error) = socket.send_to(&bytes, src).await {
                debug!(%error, %src, "cannot send FORMERR");
            }
        }
    }
}

/// Encodes a response within the size the query allows and sends it to the querier.
#[derive(Clone)]
struct Reply {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for Reply {
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
        // RFC 1035 4.2.1: 512 bytes without EDNS; the encoder truncates at a record boundary
        // and sets TC.
        let limit = response.edns().map_or(512, |edns| edns.max_payload());
        let (bytes, info) = encode_response(response, limit);
        self.socket.send_to(&bytes, self.dst).await?;
        Ok(info)
    }
}
