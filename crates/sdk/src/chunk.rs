//! The chunk: one message between the daemon and a child plugin, as bytes on a pipe.
//!
//! Owns: the byte layout (PROTOCOL.md, "Chunk layout"), its limits, and every way input can be
//! malformed, as a [`ChunkError`] that names what was wrong. Must not touch: what commands mean,
//! which thread is waiting for what ([`crate::conn`] does), or processes.
//!
//! ```text
//! threadID \0  direction \0  len of cmd \0  len of buffer \0  cmd  buffer
//! ```
//! The four header fields are ASCII decimal numbers, each ended by a zero byte; `cmd` and
//! `buffer` follow with exactly the lengths given. The seed's layout has no buffer length (its
//! chunks are delimited by the transport); over a pipe one is needed, so it sits with the other
//! lengths, before any variable-length data, and a reader knows a chunk's full size from its header.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// What a chunk is: the `direction` field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `1`: a request; the receiver answers with a response or an error with the same threadID.
    Request = 1,
    /// `2`: the successful answer to a request; `buffer` is the result.
    Response = 2,
    /// `3`: one-way (a notification); no answer is sent, not even for an error.
    Oneway = 3,
    /// `4`: the failed answer to a request; `buffer` is the error message, UTF-8.
    Error = 4,
}

impl Direction {
    fn from_number(n: u64) -> Option<Direction> {
        Some(match n {
            1 => Direction::Request,
            2 => Direction::Response,
            3 => Direction::Oneway,
            4 => Direction::Error,
            _ => return None,
        })
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Request => "request",
            Direction::Response => "response",
            Direction::Oneway => "one-way",
            Direction::Error => "error",
        })
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Chosen by the side that sends a request or one-way; copied into the answer.
    pub thread: u64,
    pub direction: Direction,
    /// The command (like an HTTP path); an answer repeats its request's.
    pub cmd: String,
    /// The payload (like an HTTP body).
    pub buffer: Bytes,
}

/// The longest `cmd`, in bytes.
pub const MAX_CMD_LEN: usize = 255;
/// The default largest `buffer`: 16 MiB.
pub const DEFAULT_MAX_BUFFER: usize = 16 << 20;
/// A header number has at most this many digits (`u64::MAX` has 20).
const MAX_DIGITS: usize = 20;

/// Input that is not a chunk. Each is fatal to the connection: after one, the reader cannot know
/// where the next chunk starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("header field {field}: {reason}")]
    BadNumber { field: &'static str, reason: String },
    #[error("unknown direction {0} (allowed: 1 request, 2 response, 3 one-way, 4 error)")]
    UnknownDirection(u64),
    #[error("cmd is empty")]
    EmptyCmd,
    #[error("cmd is {0} bytes, more than the limit of {MAX_CMD_LEN}")]
    CmdTooLong(u64),
    #[error("cmd is not UTF-8")]
    CmdNotUtf8,
    #[error("buffer is {len} bytes, more than the limit of {limit}")]
    BufferTooLarge { len: u64, limit: usize },
    #[error("the stream ended inside a chunk ({0} bytes of it read)")]
    Truncated(usize),
    #[error("reading failed: {0}")]
    Read(String),
}

impl From<std::io::Error> for ChunkError {
    fn from(err: std::io::Error) -> Self {
        ChunkError::Read(err.to_string())
    }
}

/// Reads and writes chunks; holds the buffer limit.
#[derive(Debug, Clone, Copy)]
pub struct ChunkCodec {
    max_buffer: usize,
}

impl Default for ChunkCodec {
    fn default() -> Self {
        ChunkCodec {
            max_buffer: DEFAULT_MAX_BUFFER,
        }
    }
}

impl ChunkCodec {
    pub fn with_max_buffer(max_buffer: usize) -> ChunkCodec {
        ChunkCodec { max_buffer }
    }
}

impl ChunkCodec {
    /// The largest buffer this codec reads or writes.
    pub fn max_buffer(&self) -> usize {
        self.max_buffer
    }

    /// Whether `chunk` is within the limits a reader enforces.
    pub fn check(&self, chunk: &Chunk) -> Result<(), ChunkError> {
        let cmd_len = chunk.cmd.len();
        if cmd_len == 0 {
            return Err(ChunkError::EmptyCmd);
        }
        if cmd_len > MAX_CMD_LEN {
            return Err(ChunkError::CmdTooLong(cmd_len as u64));
        }
        if chunk.buffer.len() > self.max_buffer {
            return Err(ChunkError::BufferTooLarge {
                len: chunk.buffer.len() as u64,
                limit: self.max_buffer,
            });
        }
        Ok(())
    }
}

const FIELDS: [&str; 4] = ["threadID", "direction", "len of cmd", "len of buffer"];

/// The number at `src[*at..]` up to its zero byte, or `None` when the zero byte is not there yet.
fn number(src: &[u8], at: &mut usize, field: &'static str) -> Result<Option<u64>, ChunkError> {
    let rest = &src[*at..];
    let bad = |reason: String| ChunkError::BadNumber { field, reason };
    let Some(end) = rest.iter().take(MAX_DIGITS + 1).position(|&b| b == 0) else {
        return if rest.len() > MAX_DIGITS {
            Err(bad(format!("no zero byte within {} bytes", MAX_DIGITS + 1)))
        } else {
            Ok(None)
        };
    };
    let digits = &rest[..end];
    if digits.is_empty() {
        return Err(bad("empty".into()));
    }
    if let Some(&b) = digits.iter().find(|b| !b.is_ascii_digit()) {
        return Err(bad(format!("byte 0x{b:02x} is not a decimal digit")));
    }
    // Only ASCII digits, so from_utf8 cannot fail; parse fails on overflow alone.
    let text = std::str::from_utf8(digits).map_err(|e| bad(e.to_string()))?;
    let n = text
        .parse::<u64>()
        .map_err(|_| bad(format!("{text} does not fit in 64 bits")))?;
    *at += end + 1;
    Ok(Some(n))
}

impl Decoder for ChunkCodec {
    type Item = Chunk;
    type Error = ChunkError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Chunk>, ChunkError> {
        let mut at = 0;
        let mut header = [0u64; 4];
        for (slot, field) in header.iter_mut().zip(FIELDS) {
            match number(src, &mut at, field)? {
                Some(n) => *slot = n,
                None => return Ok(None),
            }
            // Check each field as soon as it is complete: a bad direction or an oversized
            // length is reported without waiting for bytes that may never come.
            match field {
                "direction" if Direction::from_number(*slot).is_none() => {
                    return Err(ChunkError::UnknownDirection(*slot))
                }
                "len of cmd" if *slot == 0 => return Err(ChunkError::EmptyCmd),
                "len of cmd" if *slot > MAX_CMD_LEN as u64 => {
                    return Err(ChunkError::CmdTooLong(*slot))
                }
                "len of buffer" if *slot > self.max_buffer as u64 => {
                    return Err(ChunkError::BufferTooLarge {
                        len: *slot,
                        limit: self.max_buffer,
                    })
                }
                _ => {}
            }
        }
        let [thread, direction, cmd_len, buf_len] = header;
        // Both lengths are within the limits checked above, so this cannot overflow.
        let total = at + cmd_len as usize + buf_len as usize;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(at);
        let cmd = src.split_to(cmd_len as usize);
        let cmd = String::from_utf8(cmd.to_vec()).map_err(|_| ChunkError::CmdNotUtf8)?;
        let buffer = src.split_to(buf_len as usize).freeze();
        Ok(Some(Chunk {
            thread,
            direction: Direction::from_number(direction).expect("checked above"),
            cmd,
            buffer,
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Chunk>, ChunkError> {
        match self.decode(src)? {
            Some(chunk) => Ok(Some(chunk)),
            None if src.is_empty() => Ok(None),
            None => Err(ChunkError::Truncated(src.len())),
        }
    }
}

/// A chunk the writer itself must not send: the same limits as the reader's, so that a peer
/// with the documented limits never sees a protocol error caused by this side.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot send: {0}")]
    Limit(ChunkError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Encoder<Chunk> for ChunkCodec {
    type Error = EncodeError;

    fn encode(&mut self, chunk: Chunk, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.check(&chunk).map_err(EncodeError::Limit)?;
        let cmd_len = chunk.cmd.len();
        let header = format!(
            "{}\0{}\0{}\0{}\0",
            chunk.thread,
            chunk.direction as u8,
            cmd_len,
            chunk.buffer.len()
        );
        dst.reserve(header.len() + cmd_len + chunk.buffer.len());
        dst.put_slice(header.as_bytes());
        dst.put_slice(chunk.cmd.as_bytes());
        dst.put_slice(&chunk.buffer);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(chunk: &Chunk) -> Vec<u8> {
        let mut out = BytesMut::new();
        ChunkCodec::default()
            .encode(chunk.clone(), &mut out)
            .unwrap();
        out.to_vec()
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Chunk>, ChunkError> {
        let mut codec = ChunkCodec::default();
        let mut src = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(chunk) = codec.decode_eof(&mut src)? {
            out.push(chunk);
        }
        Ok(out)
    }

    fn chunk(thread: u64, direction: Direction, cmd: &str, buffer: &[u8]) -> Chunk {
        Chunk {
            thread,
            direction,
            cmd: cmd.into(),
            buffer: Bytes::copy_from_slice(buffer),
        }
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        // PROTOCOL.md's example, byte for byte.
        let bytes = encode(&chunk(7, Direction::Request, "start", b"{}"));
        assert_eq!(bytes, b"7\x001\x005\x002\x00start{}");
        let empty = encode(&chunk(0, Direction::Response, "stop", b""));
        assert_eq!(empty, b"0\x002\x004\x000\x00stop");
    }

    #[test]
    fn malformed_headers_are_named() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"x\x001\x001\x000\x00a",
                "header field threadID: byte 0x78 is not a decimal digit",
            ),
            (b"\x001\x001\x000\x00a", "header field threadID: empty"),
            (
                b"1\x009\x001\x000\x00a",
                "unknown direction 9 (allowed: 1 request, 2 response, 3 one-way, 4 error)",
            ),
            (b"1\x001\x000\x000\x00", "cmd is empty"),
            (
                b"1\x001\x00256\x000\x00",
                "cmd is 256 bytes, more than the limit of 255",
            ),
            (
                b"1\x001\x001\x0016777217\x00",
                "buffer is 16777217 bytes, more than the limit of 16777216",
            ),
            (b"1\x001\x001\x000\x00\xff", "cmd is not UTF-8"),
            (
                b"99999999999999999999\x001\x001\x000\x00a",
                "header field threadID: 99999999999999999999 does not fit in 64 bits",
            ),
            (
                b"123456789012345678901234\x00",
                "header field threadID: no zero byte within 21 bytes",
            ),
            (
                b"-1\x001\x001\x000\x00a",
                "header field threadID: byte 0x2d is not a decimal digit",
            ),
            (
                b"1\x001\x003\x000\x00ab",
                "the stream ended inside a chunk (10 bytes of it read)",
            ),
        ];
        for (bytes, expected) in cases {
            let err = decode_all(bytes).unwrap_err();
            assert_eq!(err.to_string(), *expected, "for {bytes:?}");
        }
    }

    #[test]
    fn limits_are_checked_before_the_data_arrives() {
        // A header announcing a huge buffer is refused at once, not after waiting for 16 MiB.
        let mut src = BytesMut::from(&b"1\x001\x001\x0099999999\x00"[..]);
        assert!(matches!(
            ChunkCodec::default().decode(&mut src),
            Err(ChunkError::BufferTooLarge { .. })
        ));
    }

    #[test]
    fn the_writer_keeps_the_readers_limits() {
        let mut out = BytesMut::new();
        let mut codec = ChunkCodec::with_max_buffer(4);
        let err = codec
            .encode(chunk(1, Direction::Oneway, "x", b"12345"), &mut out)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot send: buffer is 5 bytes, more than the limit of 4"
        );
        let long = "c".repeat(MAX_CMD_LEN + 1);
        assert!(codec
            .encode(chunk(1, Direction::Oneway, &long, b""), &mut out)
            .is_err());
        assert!(out.is_empty());
    }

    fn any_chunk() -> impl Strategy<Value = Chunk> {
        (
            any::<u64>(),
            prop_oneof![
                Just(Direction::Request),
                Just(Direction::Response),
                Just(Direction::Oneway),
                Just(Direction::Error)
            ],
            "[a-z.\\-é]{1,40}",
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(thread, direction, cmd, buffer)| Chunk {
                thread,
                direction,
                cmd,
                buffer: buffer.into(),
            })
    }

    proptest! {
        /// However the stream is cut into reads, the same chunks come out.
        #[test]
        fn every_split_parses_the_same(
            chunks in proptest::collection::vec(any_chunk(), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let bytes: Vec<u8> = chunks.iter().flat_map(encode).collect();
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            cuts.push(bytes.len());
            cuts.sort();
            let mut codec = ChunkCodec::default();
            let mut src = BytesMut::new();
            let mut out = Vec::new();
            let mut from = 0;
            for cut in cuts {
                src.extend_from_slice(&bytes[from..cut]);
                from = cut;
                while let Some(chunk) = codec.decode(&mut src).unwrap() {
                    out.push(chunk);
                }
            }
            prop_assert_eq!(codec.decode_eof(&mut src).unwrap(), None);
            prop_assert_eq!(out, chunks);
        }

        /// Arbitrary bytes never panic the reader; they parse or give an error.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_all(&bytes);
        }
    }
}
