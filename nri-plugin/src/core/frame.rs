//! The framing of the NRI socket: several logical connections multiplexed over one stream.
//!
//! Every frame is an 8-byte header, then the payload:
//!
//! ```text
//! +----------------------+----------------------+------------------+
//! | conn ID: u32, big-e. | length: u32, big-e.  | length bytes     |
//! +----------------------+----------------------+------------------+
//! ```
//!
//! (containerd/nri `pkg/net/multiplex/mux.go`). Connection 0 is reserved, [`PLUGIN_SERVICE_CONN`]
//! carries the plugin's ttrpc server, [`RUNTIME_SERVICE_CONN`] the runtime's. A payload is at most
//! one ttrpc message (10-byte header + 4 MiB); a writer splits longer writes into several frames,
//! and a reader treats the payloads of one connection as one byte stream.
//!
//! Nothing here does I/O: [`FrameDecoder`] takes bytes as they arrive and hands out whole frames,
//! [`encode_frames`] turns bytes to send into frames. A header announcing more than
//! [`MAX_PAYLOAD`] bytes is an error (the stream has lost its framing, or the peer is not NRI),
//! never an allocation of that size.

use std::fmt;

/// Length of a frame header: connection ID and payload length, 4 bytes each.
pub const HEADER_LEN: usize = 8;

/// The largest payload of one frame: a ttrpc message header (10 bytes) plus the largest ttrpc
/// message (4 MiB), as in `mux.go` (`maxPayloadSize`).
pub const MAX_PAYLOAD: usize = 10 + (4 << 20);

/// Connection 0 is reserved by the protocol; a frame for it is garbage.
pub const RESERVED_CONN: ConnId = ConnId(0);

/// The connection on which the runtime calls the plugin's `Plugin` service (the plugin serves).
pub const PLUGIN_SERVICE_CONN: ConnId = ConnId(1);

/// The connection on which the plugin calls the runtime's `Runtime` service (the plugin is the
/// client: `RegisterPlugin`, `UpdateContainers`).
pub const RUNTIME_SERVICE_CONN: ConnId = ConnId(2);

/// A logical connection's number within the multiplexed stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The logical connection the payload belongs to.
    pub conn: ConnId,
    /// Bytes of that connection's stream (may be empty).
    pub payload: Vec<u8>,
}

/// Why a byte stream is not valid NRI framing. After any of these the stream cannot be resynced:
/// the only sound reaction is to close it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announces a payload longer than any NRI peer sends.
    #[error(
        "frame for connection {conn} announces {len} bytes, more than the limit of {MAX_PAYLOAD}"
    )]
    Oversized {
        /// Connection ID from the header.
        conn: ConnId,
        /// Announced payload length.
        len: u64,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: {have} of {need} bytes received")]
    Truncated {
        /// Bytes of the frame (header included) received before the end.
        have: usize,
        /// Bytes the frame needed (header included; just the header if that was incomplete).
        need: usize,
    },
    /// A frame for the reserved connection 0.
    #[error("frame for the reserved connection 0 ({len} bytes)")]
    ReservedConn {
        /// Announced payload length.
        len: u32,
    },
}

/// Reassembles frames from bytes read off the stream in arbitrary pieces.
///
/// Feed bytes with [`FrameDecoder::extend`], take frames with [`FrameDecoder::next_frame`] until it
/// returns `Ok(None)`, and call [`FrameDecoder::finish`] when the stream ends. Memory use is bounded
/// by one frame plus what was fed and not yet taken: the length is checked before the payload is
/// awaited.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out; dropped from the front lazily.
    start: usize,
    /// Set once an error was returned: the decoder hands out nothing after that.
    failed: bool,
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet handed out as a frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed, or the reason the stream is
    /// garbage. Once an error is returned, every later call returns it again.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let avail = &self.buf[self.start..];
        let Some(header) = avail.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let (conn, len) = parse_header(header);
        if let Err(err) = check_header(conn, len) {
            self.failed = true;
            return Err(err);
        }
        // `check_header` bounds `len` by MAX_PAYLOAD, so this neither overflows nor truncates.
        let need = HEADER_LEN + len as usize;
        if avail.len() < need {
            return Ok(None);
        }
        let payload = avail[HEADER_LEN..need].to_vec();
        self.start += need;
        Ok(Some(Frame { conn, payload }))
    }

    /// Declares the end of the stream: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        let avail = &self.buf[self.start..];
        if avail.is_empty() || self.failed {
            return Ok(());
        }
        let need = match avail.first_chunk::<HEADER_LEN>() {
            Some(header) => HEADER_LEN + parse_header(header).1 as usize,
            None => HEADER_LEN,
        };
        Err(FrameError::Truncated {
            have: avail.len(),
            need,
        })
    }
}

fn parse_header(header: &[u8; HEADER_LEN]) -> (ConnId, u32) {
    let [c0, c1, c2, c3, l0, l1, l2, l3] = *header;
    (
        ConnId(u32::from_be_bytes([c0, c1, c2, c3])),
        u32::from_be_bytes([l0, l1, l2, l3]),
    )
}

fn check_header(conn: ConnId, len: u32) -> Result<(), FrameError> {
    if u64::from(len) > MAX_PAYLOAD as u64 {
        return Err(FrameError::Oversized {
            conn,
            len: u64::from(len),
        });
    }
    if conn == RESERVED_CONN {
        return Err(FrameError::ReservedConn { len });
    }
    Ok(())
}

/// The header of a frame of `len` payload bytes; `len` must be at most [`MAX_PAYLOAD`].
pub fn encode_header(conn: ConnId, len: usize) -> [u8; HEADER_LEN] {
    // Callers keep `len <= MAX_PAYLOAD`, which fits a u32; saturate rather than wrap regardless.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let mut header = [0; HEADER_LEN];
    header[..4].copy_from_slice(&conn.0.to_be_bytes());
    header[4..].copy_from_slice(&len.to_be_bytes());
    header
}

/// Appends to `out` the frames that carry `data` on `conn`: one frame per [`MAX_PAYLOAD`] bytes,
/// and one empty frame if `data` is empty.
pub fn encode_frames(conn: ConnId, data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        out.extend_from_slice(&encode_header(conn, 0));
        return;
    }
    for chunk in data.chunks(MAX_PAYLOAD) {
        out.extend_from_slice(&encode_header(conn, chunk.len()));
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(decoder: &mut FrameDecoder) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame);
        }
        frames
    }

    fn mk_frame(conn: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frames(ConnId(conn), payload, &mut out);
        out
    }

    #[test]
    fn header_is_conn_then_length_big_endian() {
        assert_eq!(
            encode_header(ConnId(0x0102_0304), 0x0a0b),
            [1, 2, 3, 4, 0, 0, 0x0a, 0x0b]
        );
    }

    #[test]
    fn frames_round_trip_in_one_piece() {
        let mut bytes = mk_frame(1, b"hello");
        bytes.extend(mk_frame(2, b""));
        bytes.extend(mk_frame(7, &[0xff; 300]));
        let mut decoder = FrameDecoder::new();
        decoder.extend(&bytes);
        let frames = frames_of(&mut decoder);
        assert_eq!(
            frames,
            vec![
                Frame {
                    conn: ConnId(1),
                    payload: b"hello".to_vec()
                },
                Frame {
                    conn: ConnId(2),
                    payload: vec![]
                },
                Frame {
                    conn: ConnId(7),
                    payload: vec![0xff; 300]
                },
            ]
        );
        assert_eq!(decoder.pending(), 0);
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn frames_round_trip_byte_by_byte() {
        let mut bytes = mk_frame(1, b"first");
        bytes.extend(mk_frame(2, b"second"));
        let mut decoder = FrameDecoder::new();
        let mut frames = Vec::new();
        for byte in &bytes {
            decoder.extend(std::slice::from_ref(byte));
            frames.extend(frames_of(&mut decoder));
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].payload, b"first");
        assert_eq!(frames[1].conn, RUNTIME_SERVICE_CONN);
        assert_eq!(frames[1].payload, b"second");
    }

    #[test]
    fn long_writes_split_at_the_payload_limit() {
        let data = vec![0x5a; MAX_PAYLOAD * 2 + 3];
        let mut bytes = Vec::new();
        encode_frames(PLUGIN_SERVICE_CONN, &data, &mut bytes);
        let mut decoder = FrameDecoder::new();
        decoder.extend(&bytes);
        let lens: Vec<usize> = frames_of(&mut decoder)
            .iter()
            .map(|f| f.payload.len())
            .collect();
        assert_eq!(lens, vec![MAX_PAYLOAD, MAX_PAYLOAD, 3]);
    }

    #[test]
    fn a_frame_of_exactly_the_limit_is_accepted() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&encode_header(PLUGIN_SERVICE_CONN, MAX_PAYLOAD));
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.extend(&vec![0; MAX_PAYLOAD]);
        assert_eq!(
            decoder.next_frame().unwrap().unwrap().payload.len(),
            MAX_PAYLOAD
        );
    }

    #[test]
    fn oversized_length_is_rejected_before_the_payload_arrives() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        let err = decoder.next_frame().unwrap_err();
        assert_eq!(
            err,
            FrameError::Oversized {
                conn: ConnId(1),
                len: u64::from(u32::MAX)
            }
        );
        assert!(err.to_string().contains("4294967295 bytes"), "{err}");
        // Sticky: the stream cannot be resynced.
        decoder.extend(&mk_frame(1, b"ok"));
        assert_eq!(decoder.next_frame(), Err(err));
    }

    #[test]
    fn one_byte_over_the_limit_is_oversized() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&encode_header(RUNTIME_SERVICE_CONN, MAX_PAYLOAD + 1));
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::Oversized { .. })
        ));
    }

    #[test]
    fn truncated_payload_is_reported_at_the_end_of_the_stream() {
        let bytes = mk_frame(1, b"0123456789");
        let mut decoder = FrameDecoder::new();
        decoder.extend(&bytes[..12]);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(
            decoder.finish(),
            Err(FrameError::Truncated { have: 12, need: 18 })
        );
    }

    #[test]
    fn truncated_header_is_reported_at_the_end_of_the_stream() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0, 0, 0]);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(
            decoder.finish(),
            Err(FrameError::Truncated { have: 3, need: 8 })
        );
    }

    #[test]
    fn reserved_connection_is_garbage() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&mk_frame(0, b"x"));
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::ReservedConn { len: 1 })
        );
    }

    #[test]
    fn unknown_connection_ids_decode_as_frames() {
        // Routing (and refusing) them is the multiplexer's decision; framing stays intact.
        let mut decoder = FrameDecoder::new();
        decoder.extend(&mk_frame(u32::MAX, b"future"));
        assert_eq!(
            decoder.next_frame().unwrap().unwrap().conn,
            ConnId(u32::MAX)
        );
    }

    #[test]
    fn buffer_is_compacted_as_frames_are_taken() {
        let frame = mk_frame(1, &[1; 1000]);
        let mut decoder = FrameDecoder::new();
        for _ in 0..1000 {
            decoder.extend(&frame);
            assert!(decoder.next_frame().unwrap().is_some());
        }
        assert!(
            decoder.buf.capacity() < 10 * frame.len(),
            "{}",
            decoder.buf.capacity()
        );
    }
}
