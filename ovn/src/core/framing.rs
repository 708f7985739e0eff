//! Splits an OVSDB byte stream into JSON texts.
//!
//! OVSDB has no length prefix: JSON-RPC messages are JSON objects sent back to back, possibly
//! separated by whitespace. [`JsonSplitter`] finds where each top-level object ends by tracking
//! nesting depth outside strings (and escapes inside them), so that a `}` inside a string does
//! not end a message. It does not validate the JSON itself: the decoder does that on the
//! complete frame. A frame larger than the configured maximum is an error, so that a peer cannot
//! make us buffer without bound.

use thiserror::Error;

/// Default largest message we accept: OVN northbound dumps of big clusters reach tens of MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Why the byte stream cannot be split into messages. The connection is unusable afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A byte other than whitespace or `{` appeared between two messages.
    #[error("unexpected byte 0x{byte:02x} at offset {offset} between JSON-RPC messages")]
    UnexpectedByte {
        /// The offending byte.
        byte: u8,
        /// Its offset in the stream.
        offset: u64,
    },
    /// A message grew beyond the maximum size before it was complete.
    #[error("JSON-RPC message exceeds the maximum size of {max} bytes")]
    TooLarge {
        /// The configured maximum.
        max: usize,
    },
}

/// Incremental splitter of back-to-back JSON objects.
///
/// Consumed bytes are not shifted out one frame (or one whitespace byte) at a time: `start`
/// marks where the unconsumed bytes begin and the buffer is compacted only once the consumed
/// prefix is at least as long as what remains, so every byte is moved a bounded number of times
/// and splitting is linear in the stream length.
#[derive(Debug)]
pub struct JsonSplitter {
    buf: Vec<u8>,
    /// Index in `buf` of the first byte not yet returned or skipped.
    start: usize,
    /// Index in `buf` up to which the current frame has been scanned.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escape: bool,
    started: bool,
    max: usize,
    /// Stream offset of `buf[start]`, for error messages.
    consumed: u64,
    /// Bytes moved by compaction, so tests can check that splitting stays linear.
    moved: u64,
    failed: Option<FrameError>,
}

impl JsonSplitter {
    /// A splitter that refuses messages larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            depth: 0,
            in_string: false,
            escape: false,
            started: false,
            max,
            consumed: 0,
            moved: 0,
            failed: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Returns the next complete JSON object, `Ok(None)` when more bytes are needed.
    ///
    /// After an error every later call returns the same error: the stream has lost sync.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.scan();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    /// Drops the consumed prefix once it is at least half the buffer: each byte is then moved
    /// at most as often as the buffer doubles past it, so compaction costs O(stream length).
    fn compact(&mut self) {
        if self.start == 0 || self.start * 2 < self.buf.len() {
            return;
        }
        let remaining = self.buf.len() - self.start;
        self.buf.copy_within(self.start.., 0);
        self.buf.truncate(remaining);
        self.moved += remaining as u64;
        self.scanned -= self.start;
        self.start = 0;
    }

    /// Marks `n` bytes at `start` as consumed.
    fn consume(&mut self, n: usize) {
        self.start += n;
        self.consumed += n as u64;
    }

    fn scan(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let mut i = self.scanned.max(self.start);
        while i < self.buf.len() {
            let b = self.buf[i];
            if !self.started {
                match b {
                    // Leading whitespace is skipped right away so it never counts as message size.
                    b' ' | b'\t' | b'\r' | b'\n' => {
                        self.consume(1);
                        i += 1;
                        continue;
                    }
                    b'{' => {
                        self.started = true;
                        self.depth = 1;
                        i += 1;
                        continue;
                    }
                    _ => {
                        return Err(FrameError::UnexpectedByte {
                            byte: b,
                            offset: self.consumed,
                        });
                    }
                }
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        // `started` implies depth >= 1 here, so this cannot underflow.
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            let frame = self.buf[self.start..=i].to_vec();
                            self.consume(frame.len());
                            self.scanned = self.start;
                            self.started = false;
                            return Ok(Some(frame));
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
            if i - self.start > self.max {
                return Err(FrameError::TooLarge { max: self.max });
            }
        }
        self.scanned = i;
        if self.started && self.buffered() > self.max {
            return Err(FrameError::TooLarge { max: self.max });
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(s: &mut JsonSplitter) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(f) = s.next_frame().unwrap() {
            out.push(String::from_utf8(f).unwrap());
        }
        out
    }

    #[test]
    fn back_to_back_objects_come_out_one_by_one() {
        let mut s = JsonSplitter::new(1024);
        s.push(br#"{"a":1}{"b":[1,{"c":2}]}  {"d":null}"#);
        assert_eq!(
            split_all(&mut s),
            vec![r#"{"a":1}"#, r#"{"b":[1,{"c":2}]}"#, r#"{"d":null}"#]
        );
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn braces_and_escaped_quotes_inside_strings_do_not_end_a_frame() {
        let mut s = JsonSplitter::new(1024);
        s.push(br#"{"a":"}{\"}\\"}"#);
        assert_eq!(split_all(&mut s), vec![r#"{"a":"}{\"}\\"}"#]);
    }

    #[test]
    fn a_frame_split_at_every_byte_boundary_is_reassembled() {
        let text = br#"{"method":"echo","params":["x\"}"],"id":"e"} {"id":1}"#;
        for cut in 0..text.len() {
            let mut s = JsonSplitter::new(1024);
            s.push(&text[..cut]);
            let mut got = split_all(&mut s);
            s.push(&text[cut..]);
            got.extend(split_all(&mut s));
            assert_eq!(got.len(), 2, "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte_feeding_yields_the_same_frames() {
        let text = br#"{"x":[{},{"y":"\\\""}]}"#;
        let mut s = JsonSplitter::new(1024);
        let mut got = Vec::new();
        for b in text {
            s.push(&[*b]);
            got.extend(split_all(&mut s));
        }
        assert_eq!(got, vec![String::from_utf8(text.to_vec()).unwrap()]);
    }

    #[test]
    fn garbage_between_messages_is_rejected_with_its_offset() {
        let mut s = JsonSplitter::new(1024);
        s.push(b"{} x{}");
        assert!(s.next_frame().unwrap().is_some());
        assert_eq!(
            s.next_frame(),
            Err(FrameError::UnexpectedByte {
                byte: b'x',
                offset: 3
            })
        );
        // The stream stays failed.
        assert!(s.next_frame().is_err());
    }

    #[test]
    fn an_oversized_message_is_rejected_before_it_completes() {
        let mut s = JsonSplitter::new(16);
        s.push(br#"{"a":"0123456789abcdef"#);
        assert_eq!(s.next_frame(), Err(FrameError::TooLarge { max: 16 }));
    }

    #[test]
    fn a_message_of_exactly_the_maximum_size_is_accepted() {
        let mut s = JsonSplitter::new(9);
        s.push(br#"{"a":123}"#);
        assert_eq!(split_all(&mut s), vec![r#"{"a":123}"#]);
    }

    #[test]
    fn leading_whitespace_does_not_count_towards_the_size_limit() {
        let mut s = JsonSplitter::new(4);
        s.push(b"          \n\n    {}");
        assert_eq!(split_all(&mut s), vec!["{}"]);
    }

    #[test]
    fn a_top_level_array_or_scalar_is_not_a_message() {
        for text in [&b"[1]"[..], b"1", b"\"s\"", b"}"] {
            let mut s = JsonSplitter::new(64);
            s.push(text);
            assert!(matches!(
                s.next_frame(),
                Err(FrameError::UnexpectedByte { .. })
            ));
        }
    }

    /// A long whitespace run and many small frames in one read once cost a shift of the whole
    /// buffer per byte or per frame (quadratic: seconds for this input); now every byte is moved
    /// a bounded number of times.
    #[test]
    fn long_whitespace_runs_and_many_frames_are_split_in_linear_time() {
        let whitespace = 400_000;
        let frames = 100_000;
        let mut text = vec![b' '; whitespace];
        for _ in 0..frames {
            text.extend_from_slice(b"{}\n");
        }
        let started = std::time::Instant::now();
        // One read holding it all, and the same stream in 4 KiB reads.
        for chunk in [text.len(), 4096] {
            let mut s = JsonSplitter::new(16);
            let mut got = 0;
            for piece in text.chunks(chunk) {
                s.push(piece);
                while let Some(frame) = s.next_frame().unwrap() {
                    assert_eq!(frame, b"{}");
                    got += 1;
                }
            }
            assert_eq!(got, frames);
            assert_eq!(s.buffered(), 0, "the trailing newline is skipped");
            assert!(
                s.moved <= text.len() as u64,
                "compaction moved {} bytes for a {}-byte stream",
                s.moved,
                text.len()
            );
        }
        // Backstop only: the quadratic version took seconds here.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn offsets_and_limits_hold_after_compaction() {
        let mut s = JsonSplitter::new(8);
        s.push(b"   {\"a\":1}   ");
        assert_eq!(split_all(&mut s), vec![r#"{"a":1}"#]);
        s.push(b"{\"b\":2} x");
        assert_eq!(split_all_until_error(&mut s), vec![r#"{"b":2}"#]);
        assert_eq!(
            s.next_frame(),
            Err(FrameError::UnexpectedByte {
                byte: b'x',
                offset: 21
            })
        );
        let mut s = JsonSplitter::new(8);
        s.push(b"          {}");
        s.push(b" {\"abcdefgh\"");
        assert_eq!(split_all_until_error(&mut s), vec!["{}"]);
        assert_eq!(s.next_frame(), Err(FrameError::TooLarge { max: 8 }));
    }

    fn split_all_until_error(s: &mut JsonSplitter) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Some(f)) = s.next_frame() {
            out.push(String::from_utf8(f).unwrap());
        }
        out
    }

    #[test]
    fn extra_closing_brackets_inside_a_frame_are_caught() {
        let mut s = JsonSplitter::new(64);
        s.push(b"{]]");
        assert!(s.next_frame().unwrap().is_some());
        assert!(s.next_frame().is_err());
    }
}
