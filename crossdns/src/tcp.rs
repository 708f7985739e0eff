//! DNS over TCP with bounds on everything a client can hold: at most `max_connections`
//! connections at once (one more is closed at once, so a flood of idle connections costs a
//! fixed amount of memory and never blocks the accept loop), a deadline for each whole query
//! (its length prefix and body, so a client sending nothing or half a message is cut off
//! after the idle time), a largest query (a longer length prefix closes the connection before
//! any of it is buffered), and a deadline for writing each answer (a client that does not
//! read cannot hold a task forever).
//!
//! Queries on one connection are answered one after the other (RFC 7766 allows pipelining,
//! not concurrency), so a connection holds at most one query and one answer in memory.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Header, MessageType, Metadata, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinDecodable;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::dns::Handler;
use crate::metrics::Metrics;
use crate::wire::{encode_response, header_only};

/// The shortest message: a header.
const HEADER_LEN: usize = 12;

/// The largest TCP query accepted: a header, one question (a name of at most 255 bytes) and an
/// OPT record; 4 KiB leaves room for EDNS options and padding (RFC 8467 pads queries to
/// 128-byte blocks). A longer length prefix closes the connection.
pub const MAX_TCP_QUERY: usize = 4096;

/// What bounds the TCP listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connections held at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Time for a whole query to arrive (from the end of the previous answer), and for an
    /// answer to be written.
    pub idle: Duration,
    /// The largest query, in bytes.
    pub max_query: usize,
}

/// Why a connection was closed, as counted in the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The client closed it, or the socket failed.
    Peer,
    /// No whole query within the idle time, or an answer not taken within it.
    Timeout,
    /// A length prefix below a header's size or above the largest query.
    BadLength,
}

impl Closed {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Closed::Peer => "peer",
            Closed::Timeout => "timeout",
            Closed::BadLength => "bad_length",
        }
    }
}

/// The body length a two-byte TCP length prefix announces, if it is one we read: at least a
/// header, at most `max_query`.
pub fn query_length(prefix: [u8; 2], max_query: usize) -> Option<usize> {
    let length = usize::from(u16::from_be_bytes(prefix));
    (HEADER_LEN..=max_query).contains(&length).then_some(length)
}

/// Accepts connections on `listener` until `shutdown`, each answered by a task of its own
/// within `limits`.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    metrics: Arc<Metrics>,
    limits: TcpLimits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        // Finished connections are reaped here, so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off a little instead of spinning.
                debug!(%error, "cannot accept a TCP connection");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.tcp_refused.inc();
            debug!(%peer, "too many TCP connections: closed");
            drop(stream);
            continue;
        };
        let handler = handler.clone();
        let metrics = metrics.clone();
        metrics.tcp_connections.inc();
        connections.spawn(async move {
            let closed = answer_connection(stream, peer, &handler, limits).await;
            metrics.tcp_connections.dec();
            metrics.tcp_closed(closed.label());
            debug!(%peer, reason = closed.label(), "TCP connection closed");
            drop(permit);
        });
    }
    connections.shutdown().await;
}

/// Answers the queries of one connection until it is closed; why it was.
pub async fn answer_connection<S>(
    mut stream: S,
    peer: SocketAddr,
    handler: &Handler,
    limits: TcpLimits,
) -> Closed
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let query = match tokio::time::timeout(
            limits.idle,
            read_query(&mut stream, limits.max_query),
        )
        .await
        {
            Err(_) => return Closed::Timeout,
            Ok(Err(closed)) => return closed,
            Ok(Ok(query)) => query,
        };
        let Some(answer) = answer_query(handler, query, peer).await else {
            // Not a header, or a response: nothing to answer, and nothing worth keeping the
            // connection for.
            return Closed::BadLength;
        };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        // Answers are encoded within 65,535 bytes (the encoder's limit below).
        framed.extend(
            u16::try_from(answer.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        framed.extend(answer);
        match tokio::time::timeout(limits.idle, stream.write_all(&framed)).await {
            Err(_) => return Closed::Timeout,
            Ok(Err(_)) => return Closed::Peer,
            Ok(Ok(())) => {}
        }
    }
}

/// Reads one length-prefixed query (at most `max_query` bytes are ever buffered).
async fn read_query<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_query: usize,
) -> Result<Vec<u8>, Closed> {
    let mut prefix = [0u8; 2];
    stream
        .read_exact(&mut prefix)
        .await
        .map_err(|_| Closed::Peer)?;
    let length = query_length(prefix, max_query).ok_or(Closed::BadLength)?;
    let mut query = vec![0u8; length];
    stream
        .read_exact(&mut query)
        .await
        .map_err(|_| Closed::Peer)?;
    Ok(query)
}

/// The wire answer to `query`: the handler's, or FORMERR with the query's id when it does not
/// decode; `None` when there is no query header or it is a response (never answered).
async fn answer_query(handler: &Handler, query: Vec<u8>, peer: SocketAddr) -> Option<Vec<u8>> {
    let header = Header::from_bytes(&query).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    match Request::from_bytes(query, peer, Protocol::Tcp) {
        Ok(request) => {
            let reply = Reply::default();
            handler
                .handle_request::<_, TokioTime>(&request, reply.clone())
                .await;
            let bytes =
                std::mem::take(&mut *reply.bytes.lock().unwrap_or_else(PoisonError::into_inner));
            Some(bytes)
        }
        Err(error) => {
            debug!(%error, %peer, "a TCP query that does not decode: FORMERR");
            let mut metadata = Metadata::response_from_request(&header.metadata);
            metadata.response_code = ResponseCode::FormErr;
            Some(header_only(metadata))
        }
    }
}

/// Encodes the handler's response into a buffer the connection then writes under its deadline.
#[derive(Clone, Default)]
struct Reply {
    bytes: Arc<Mutex<Vec<u8>>>,
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
        let (bytes, info) = encode_response(response, u16::MAX);
        *self.bytes.lock().unwrap_or_else(PoisonError::into_inner) = bytes;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use tokio::io::duplex;

    use super::*;
    use crate::core::Index;

    const LIMITS: TcpLimits = TcpLimits {
        max_connections: 4,
        idle: Duration::from_millis(200),
        max_query: MAX_TCP_QUERY,
    };

    fn handler() -> Handler {
        Handler::new(
            Arc::new(RwLock::new(Index::new())),
            Arc::new(Metrics::new()),
            1232,
        )
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    /// A query for `web.shop.svc.clusterset.local` A with `id`, with its length prefix.
    fn framed_query(id: u16) -> Vec<u8> {
        let mut query = Vec::new();
        query.extend(id.to_be_bytes());
        query.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in ["web", "shop", "svc", "clusterset", "local"] {
            query.push(u8::try_from(label.len()).unwrap());
            query.extend(label.as_bytes());
        }
        query.extend([0, 0, 1, 0, 1]);
        let mut framed = u16::try_from(query.len()).unwrap().to_be_bytes().to_vec();
        framed.extend(query);
        framed
    }

    #[test]
    fn a_length_prefix_is_read_only_between_a_header_and_the_largest_query() {
        assert_eq!(query_length([0, 12], 4096), Some(12));
        assert_eq!(query_length([0x10, 0], 4096), Some(4096));
        assert_eq!(query_length([0, 11], 4096), None, "shorter than a header");
        assert_eq!(query_length([0, 0], 4096), None);
        assert_eq!(query_length([0x10, 1], 4096), None, "one byte too many");
        assert_eq!(query_length([0xff, 0xff], 4096), None);
        assert_eq!(Closed::BadLength.label(), "bad_length");
    }

    #[tokio::test]
    async fn pipelined_queries_are_answered_in_turn_then_the_idle_connection_is_closed() {
        let (mut client, server) = duplex(1 << 16);
        let handler = handler();
        let serving =
            tokio::spawn(async move { answer_connection(server, peer(), &handler, LIMITS).await });
        let mut both = framed_query(7);
        both.extend(framed_query(8));
        client.write_all(&both).await.unwrap();
        for id in [7u16, 8] {
            let mut prefix = [0u8; 2];
            client.read_exact(&mut prefix).await.unwrap();
            let mut answer = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
            client.read_exact(&mut answer).await.unwrap();
            assert_eq!(u16::from_be_bytes([answer[0], answer[1]]), id);
            assert_eq!(answer[2] & 0x80, 0x80, "a response");
            // Not synced yet: SERVFAIL.
            assert_eq!(answer[3] & 0x0f, 2);
        }
        assert_eq!(serving.await.unwrap(), Closed::Timeout);
    }

    #[tokio::test]
    async fn half_a_query_is_cut_off_after_the_idle_time() {
        let (mut client, server) = duplex(1 << 16);
        let handler = handler();
        let started = tokio::time::Instant::now();
        let serving =
            tokio::spawn(async move { answer_connection(server, peer(), &handler, LIMITS).await });
        let query = framed_query(9);
        client.write_all(&query[..10]).await.unwrap();
        assert_eq!(serving.await.unwrap(), Closed::Timeout);
        assert!(
            started.elapsed() < LIMITS.idle * 3,
            "{:?}",
            started.elapsed()
        );
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "no answer to half a query: {rest:?}");
    }

    #[tokio::test]
    async fn an_oversized_length_prefix_closes_at_once() {
        let (mut client, server) = duplex(1 << 16);
        let handler = handler();
        let serving =
            tokio::spawn(async move { answer_connection(server, peer(), &handler, LIMITS).await });
        client.write_all(&[0xff, 0xff, 1, 2, 3]).await.unwrap();
        let closed = tokio::time::timeout(LIMITS.idle / 2, serving)
            .await
            .expect("closed before the idle time")
            .unwrap();
        assert_eq!(closed, Closed::BadLength);
    }

    #[tokio::test]
    async fn a_frame_that_does_not_decode_gets_formerr_with_its_id() {
        let (mut client, server) = duplex(1 << 16);
        let handler = handler();
        let serving =
            tokio::spawn(async move { answer_connection(server, peer(), &handler, LIMITS).await });
        // A header announcing one question, and none.
        client
            .write_all(&[0, 12, 0x20, 0x05, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        let mut answer = [0u8; 14];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer[..4], &[0, 12, 0x20, 0x05]);
        assert_eq!(answer[5] & 0x0f, 1, "FORMERR");
        drop(client);
        assert_eq!(serving.await.unwrap(), Closed::Peer);
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed_and_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let limits = TcpLimits {
            max_connections: 2,
            idle: Duration::from_secs(5),
            max_query: MAX_TCP_QUERY,
        };
        let server = tokio::spawn(serve(
            listener,
            handler(),
            metrics.clone(),
            limits,
            shutdown.clone(),
        ));
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf))
            .await
            .expect("the third connection is closed at once");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert_eq!(metrics.tcp_refused.get(), 1);
        assert_eq!(metrics.tcp_connections.get(), 2);
        // A held connection still gets its answer.
        held[0].write_all(&framed_query(5)).await.unwrap();
        let mut prefix = [0u8; 2];
        held[0].read_exact(&mut prefix).await.unwrap();
        shutdown.cancel();
        server.await.unwrap();
    }
}
