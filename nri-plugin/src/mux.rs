//! The multiplexer: one NRI socket carried as two byte streams, one per logical connection.
//!
//! [`Mux::start`] takes the socket (any `AsyncRead + AsyncWrite`) and returns one in-process
//! byte stream for [`PLUGIN_SERVICE_CONN`] and one for [`RUNTIME_SERVICE_CONN`]. ttrpc-rust runs on
//! those streams as if each were a socket of its own. Tasks pump bytes both ways, using
//! [`crate::core::frame`] for the framing:
//!
//! * socket → streams: frames are decoded and their payloads written to the stream of their
//!   connection. A frame for a connection ID other than 1 and 2 is dropped with a warning, as the
//!   upstream multiplexer drops frames of connections nobody opened: the framing around it is
//!   intact, and a newer runtime may open more connections than we know. Garbage (an oversized
//!   length, the reserved connection 0, the socket ending inside a frame) ends the multiplexer
//!   with [`MuxEnd::Garbage`]: a stream that lost its framing cannot be resynced.
//! * streams → socket: whatever ttrpc writes goes out as frames of at most 64 KiB, each written
//!   whole under a lock so frames of the two connections never interleave.
//!
//! When the multiplexer ends (the peer closed, garbage, an I/O error or [`MuxHandle::close`]) the
//! socket is closed and both streams see end-of-file, which ends the ttrpc client and server on
//! them. In-process streams (rather than a socketpair per connection) keep this free of file
//! descriptors and of `unsafe`.

use std::io;
use std::sync::{Arc, Mutex as StdMutex};

use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf,
};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::core::frame::{
    ConnId, FrameDecoder, FrameError, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN, encode_frames,
};

/// Bytes buffered in each in-process stream before the writer waits for the reader.
const STREAM_BUFFER: usize = 256 * 1024;

/// Largest payload this side puts in one frame (the protocol allows up to 4 MiB + 10 B).
const WRITE_CHUNK: usize = 64 * 1024;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Why a multiplexer ended.
#[derive(Clone, Debug, thiserror::Error)]
pub enum MuxEnd {
    /// The peer closed the socket between frames.
    #[error("the peer closed the NRI connection")]
    PeerClosed,
    /// The peer sent something that is not NRI framing.
    #[error("garbage on the NRI connection: {0}")]
    Garbage(#[from] FrameError),
    /// Reading the socket failed.
    #[error("reading the NRI connection failed: {0}")]
    Read(Arc<io::Error>),
    /// Writing the socket failed.
    #[error("writing to the NRI connection failed: {0}")]
    Write(Arc<io::Error>),
    /// This side closed it ([`MuxHandle::close`] or drop).
    #[error("closed by the plugin")]
    Closed,
}

/// The two logical connections of a multiplexed socket.
#[derive(Debug)]
pub struct MuxStreams {
    /// Connection 1: the plugin's ttrpc service (a plugin serves it, a runtime is its client).
    pub plugin_service: DuplexStream,
    /// Connection 2: the runtime's ttrpc service (a runtime serves it, a plugin is its client).
    pub runtime_service: DuplexStream,
}

/// Controls a running multiplexer; dropping it closes the socket.
#[derive(Debug)]
pub struct MuxHandle {
    cancel: CancellationToken,
    end: watch::Receiver<Option<MuxEnd>>,
    _tasks: JoinSet<()>,
}

/// Entry point; see the module documentation.
#[derive(Debug)]
pub struct Mux;

/// Records the first reason to end, then stops every task.
#[derive(Clone)]
struct Ender {
    cancel: CancellationToken,
    end: Arc<StdMutex<Option<watch::Sender<Option<MuxEnd>>>>>,
}

impl Ender {
    fn end(&self, reason: MuxEnd) {
        let sender = self
            .end
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(sender) = sender {
            sender.send_replace(Some(reason));
        }
        self.cancel.cancel();
    }
}

impl Mux {
    /// Starts pumping `trunk`; must be called inside a tokio runtime.
    pub fn start<S>(trunk: S) -> (MuxHandle, MuxStreams)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (trunk_rd, trunk_wr) = tokio::io::split(trunk);
        let trunk_wr = Arc::new(Mutex::new(trunk_wr));
        let (plugin_app, plugin_mux) = tokio::io::duplex(STREAM_BUFFER);
        let (runtime_app, runtime_mux) = tokio::io::duplex(STREAM_BUFFER);
        let (plugin_rd, plugin_wr) = tokio::io::split(plugin_mux);
        let (runtime_rd, runtime_wr) = tokio::io::split(runtime_mux);

        let cancel = CancellationToken::new();
        let (end_tx, end_rx) = watch::channel(None);
        let ender = Ender {
            cancel: cancel.clone(),
            end: Arc::new(StdMutex::new(Some(end_tx))),
        };

        let mut tasks = JoinSet::new();
        tasks.spawn(demux(trunk_rd, plugin_wr, runtime_wr, ender.clone()));
        tasks.spawn(uplink(
            PLUGIN_SERVICE_CONN,
            plugin_rd,
            trunk_wr.clone(),
            ender.clone(),
        ));
        tasks.spawn(uplink(RUNTIME_SERVICE_CONN, runtime_rd, trunk_wr, ender));

        let handle = MuxHandle {
            cancel,
            end: end_rx,
            _tasks: tasks,
        };
        let streams = MuxStreams {
            plugin_service: plugin_app,
            runtime_service: runtime_app,
        };
        (handle, streams)
    }
}

impl MuxHandle {
    /// Waits until the multiplexer ends and says why.
    pub async fn ended(&mut self) -> MuxEnd {
        match self.end.wait_for(Option::is_some).await {
            Ok(end) => end.clone().unwrap_or(MuxEnd::Closed),
            // The sender is gone only once every task stopped.
            Err(_) => MuxEnd::Closed,
        }
    }

    /// Closes the socket and both streams.
    pub fn close(&self) {
        self.cancel.cancel();
    }
}

impl Drop for MuxHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Socket → streams.
async fn demux<R, W>(
    mut trunk: ReadHalf<R>,
    mut plugin: WriteHalf<W>,
    mut runtime: WriteHalf<W>,
    ender: Ender,
) where
    R: AsyncRead + AsyncWrite,
    W: AsyncRead + AsyncWrite,
{
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0; READ_CHUNK];
    let reason = 'pump: loop {
        let read = tokio::select! {
            () = ender.cancel.cancelled() => break 'pump MuxEnd::Closed,
            read = trunk.read(&mut buf) => read,
        };
        let n = match read {
            Ok(0) => match decoder.finish() {
                Ok(()) => break 'pump MuxEnd::PeerClosed,
                Err(err) => break 'pump MuxEnd::Garbage(err),
            },
            Ok(n) => n,
            Err(err) => break 'pump MuxEnd::Read(Arc::new(err)),
        };
        decoder.extend(&buf[..n]);
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(err) => break 'pump MuxEnd::Garbage(err),
            };
            let stream = match frame.conn {
                PLUGIN_SERVICE_CONN => &mut plugin,
                RUNTIME_SERVICE_CONN => &mut runtime,
                ConnId(conn) => {
                    warn!(
                        conn,
                        bytes = frame.payload.len(),
                        "dropping a frame for an unknown NRI connection"
                    );
                    continue;
                }
            };
            let written = tokio::select! {
                () = ender.cancel.cancelled() => break 'pump MuxEnd::Closed,
                written = stream.write_all(&frame.payload) => written,
            };
            if let Err(err) = written {
                // The ttrpc side of this connection is gone; the session is ending anyway.
                debug!(conn = %frame.conn, error = %err, "dropping a frame for a closed stream");
            }
        }
    };
    match &reason {
        MuxEnd::Garbage(err) => warn!(error = %err, "closing the NRI connection: garbage frame"),
        MuxEnd::Read(err) => warn!(error = %err, "closing the NRI connection: read failed"),
        other => debug!(reason = %other, "NRI connection ended"),
    }
    ender.end(reason);
    // Dropping the stream halves here gives both ttrpc ends end-of-file.
}

/// One stream → socket.
async fn uplink<W, T>(
    conn: ConnId,
    mut stream: ReadHalf<W>,
    trunk: Arc<Mutex<WriteHalf<T>>>,
    ender: Ender,
) where
    W: AsyncRead + AsyncWrite,
    T: AsyncRead + AsyncWrite,
{
    let mut buf = vec![0; WRITE_CHUNK];
    let mut frame = Vec::with_capacity(WRITE_CHUNK + 8);
    loop {
        let read = tokio::select! {
            () = ender.cancel.cancelled() => return,
            read = stream.read(&mut buf) => read,
        };
        let n = match read {
            // The ttrpc end of this connection closed; the other connection may go on.
            Ok(0) | Err(_) => {
                debug!(%conn, "stream closed by its ttrpc end");
                return;
            }
            Ok(n) => n,
        };
        frame.clear();
        encode_frames(conn, &buf[..n], &mut frame);
        let written = tokio::select! {
            () = ender.cancel.cancelled() => return,
            written = async {
                let mut trunk = trunk.lock().await;
                trunk.write_all(&frame).await?;
                trunk.flush().await
            } => written,
        };
        if let Err(err) = written {
            warn!(%conn, error = %err, "closing the NRI connection: write failed");
            ender.end(MuxEnd::Write(Arc::new(err)));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::timeout;

    use super::*;
    use crate::core::frame::encode_header;

    const LIMIT: Duration = Duration::from_secs(5);

    fn mk_frame(conn: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frames(ConnId(conn), payload, &mut out);
        out
    }

    #[tokio::test]
    async fn payloads_reach_the_stream_of_their_connection() {
        let (peer, trunk) = tokio::io::duplex(4096);
        let (_handle, mut streams) = Mux::start(trunk);
        let (_, mut peer_wr) = tokio::io::split(peer);
        let mut bytes = mk_frame(2, b"to-runtime");
        bytes.extend(mk_frame(1, b"to-plugin"));
        peer_wr.write_all(&bytes).await.unwrap();

        let mut got = [0; 9];
        timeout(LIMIT, streams.plugin_service.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"to-plugin");
        let mut got = [0; 10];
        timeout(LIMIT, streams.runtime_service.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"to-runtime");
    }

    #[tokio::test]
    async fn stream_writes_go_out_as_frames_of_their_connection() {
        let (peer, trunk) = tokio::io::duplex(4096);
        let (_handle, mut streams) = Mux::start(trunk);
        streams.runtime_service.write_all(b"hello").await.unwrap();
        let (mut peer_rd, _) = tokio::io::split(peer);
        let mut got = [0; 13];
        timeout(LIMIT, peer_rd.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.to_vec(), mk_frame(2, b"hello"));
    }

    #[tokio::test]
    async fn unknown_connection_frames_are_dropped_and_the_rest_flows() {
        let (peer, trunk) = tokio::io::duplex(4096);
        let (mut handle, mut streams) = Mux::start(trunk);
        let (_, mut peer_wr) = tokio::io::split(peer);
        let mut bytes = mk_frame(9, b"future");
        bytes.extend(mk_frame(1, b"ok"));
        peer_wr.write_all(&bytes).await.unwrap();
        let mut got = [0; 2];
        timeout(LIMIT, streams.plugin_service.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"ok");
        drop(peer_wr);
        assert!(matches!(
            timeout(LIMIT, handle.ended()).await.unwrap(),
            MuxEnd::PeerClosed
        ));
    }

    #[tokio::test]
    async fn oversized_frame_closes_the_connection_and_both_streams() {
        let (peer, trunk) = tokio::io::duplex(4096);
        let (mut handle, mut streams) = Mux::start(trunk);
        let (mut peer_rd, mut peer_wr) = tokio::io::split(peer);
        peer_wr
            .write_all(&encode_header(ConnId(1), usize::MAX))
            .await
            .unwrap();
        let end = timeout(LIMIT, handle.ended()).await.unwrap();
        assert!(
            matches!(end, MuxEnd::Garbage(FrameError::Oversized { .. })),
            "{end:?}"
        );
        let mut rest = Vec::new();
        assert_eq!(
            timeout(LIMIT, streams.plugin_service.read_to_end(&mut rest))
                .await
                .unwrap()
                .unwrap(),
            0
        );
        assert_eq!(
            timeout(LIMIT, streams.runtime_service.read_to_end(&mut rest))
                .await
                .unwrap()
                .unwrap(),
            0
        );
        // The socket is closed towards the peer too.
        assert_eq!(
            timeout(LIMIT, peer_rd.read_to_end(&mut rest))
                .await
                .unwrap()
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn socket_ending_inside_a_frame_is_garbage() {
        let (peer, trunk) = tokio::io::duplex(4096);
        let (mut handle, _streams) = Mux::start(trunk);
        let (_, mut peer_wr) = tokio::io::split(peer);
        peer_wr
            .write_all(&mk_frame(1, b"0123456789")[..12])
            .await
            .unwrap();
        drop(peer_wr);
        let end = timeout(LIMIT, handle.ended()).await.unwrap();
        assert!(
            matches!(
                end,
                MuxEnd::Garbage(FrameError::Truncated { have: 12, need: 18 })
            ),
            "{end:?}"
        );
    }

    #[tokio::test]
    async fn reserved_connection_zero_is_garbage() {
        let (peer, trunk) = tokio::io::duplex(4096);
        let (mut handle, _streams) = Mux::start(trunk);
        let (_, mut peer_wr) = tokio::io::split(peer);
        peer_wr.write_all(&mk_frame(0, b"x")).await.unwrap();
        let end = timeout(LIMIT, handle.ended()).await.unwrap();
        assert!(
            matches!(end, MuxEnd::Garbage(FrameError::ReservedConn { .. })),
            "{end:?}"
        );
    }

    #[tokio::test]
    async fn close_ends_with_closed_and_closes_the_socket() {
        let (peer, trunk) = tokio::io::duplex(4096);
        let (mut handle, _streams) = Mux::start(trunk);
        handle.close();
        assert!(matches!(
            timeout(LIMIT, handle.ended()).await.unwrap(),
            MuxEnd::Closed
        ));
        let (mut peer_rd, _peer_wr) = tokio::io::split(peer);
        let mut rest = Vec::new();
        assert_eq!(
            timeout(LIMIT, peer_rd.read_to_end(&mut rest))
                .await
                .unwrap()
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn large_writes_arrive_whole_through_two_multiplexers() {
        // Two multiplexers back to back, as plugin and runtime: 3 MiB each way on both connections.
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (_ha, mut sa) = Mux::start(a);
        let (_hb, mut sb) = Mux::start(b);
        let data: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let send = async {
            sa.plugin_service.write_all(&data).await.unwrap();
            sa.runtime_service.write_all(&data).await.unwrap();
        };
        let recv = async {
            let mut got = vec![0; expected.len()];
            sb.plugin_service.read_exact(&mut got).await.unwrap();
            assert!(got == expected);
            sb.runtime_service.read_exact(&mut got).await.unwrap();
            assert!(got == expected);
        };
        timeout(Duration::from_secs(30), async { tokio::join!(send, recv) })
            .await
            .unwrap();
    }
}
