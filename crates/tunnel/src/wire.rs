//! cannelloni's wire format, written by hand: no crate encodes it. Two framings of one frame
//! encoding:
//!
//! - UDP (cannelloni's protocol version 2): a datagram is a 5-byte header (version 2, op code 0
//!   = data, a sequence number that wraps at 256, the frame count as big-endian u16), then the
//!   frames back to back.
//! - TCP: each side sends `CANNELLONIv1` first, then frames back to back with no header.
//!
//! A frame is the SocketCAN id word (big-endian, with the EFF and RTR flags as the kernel has
//! them), a length byte (the top bit marks CAN FD), for CAN FD a flags byte (BRS, ESI, FDF as
//! the kernel gives them), then the data: none for a remote request, whose length byte is its
//! DLC. `tests/data/` holds bytes recorded from the real cannelloni 2.1.2; `tests/interop.rs`
//! reproduces them.
//!
//! Owns: the bytes. Must not touch sockets or the kernel. Every decoder takes any input: it
//! returns an error, never panics and never reads past the slice (fuzzed in `fuzz/`).

use bytes::{Buf, BufMut, BytesMut};

/// The protocol version of cannelloni's UDP datagrams this format is.
pub const UDP_VERSION: u8 = 2;
/// The op code of a data datagram (cannelloni's others, ACK and NACK, carry no frames).
pub const OP_DATA: u8 = 0;
/// Bytes of a datagram's header.
pub const HEADER_LEN: usize = 5;
/// What each side of a TCP connection sends first.
pub const TCP_HELLO: &[u8; 12] = b"CANNELLONIv1";
/// What a vxbus host sends after the hello on a TCP connection it makes to a configured peer
/// (`tunnel.peers`), so that the vxbus host that accepts it knows a vxbus host is calling and
/// sends it no frame it has from another vxbus host. An error frame's id word, which no
/// cannelloni end sends (it carries no error frames either way), with length 0.
pub const VXBUS_MARK: [u8; 5] = [0x20, b'V', b'X', b'B', 0];
/// [`VXBUS_MARK`] of a vxbus host whose bus has `tunnel.key`: sealed records follow (see
/// [`crate::seal`]).
pub const VXBUS_SEALED_MARK: [u8; 5] = [0x20, b'V', b'X', b'S', 0];
/// The largest datagram vxbus sends: an Ethernet MTU less the IPv4 and UDP headers, so that no
/// datagram is fragmented on the way.
pub const MAX_DATAGRAM: usize = 1472;
/// The largest encoded frame: id, length, flags and 64 bytes of data.
pub const MAX_FRAME_LEN: usize = 4 + 1 + 1 + 64;

/// The length byte's flag that marks a CAN FD frame.
const FD_LEN_FLAG: u8 = 0x80;
/// SocketCAN's id-word flags.
pub const CAN_EFF_FLAG: u32 = 0x8000_0000;
pub const CAN_RTR_FLAG: u32 = 0x4000_0000;
pub const CAN_ERR_FLAG: u32 = 0x2000_0000;
const CAN_EFF_MASK: u32 = 0x1fff_ffff;
const CAN_SFF_MASK: u32 = 0x7ff;

/// The data lengths a CAN FD frame can have.
const FD_LENGTHS: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64];

/// A refused frame or datagram: what the peer sent that vxbus does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("datagram of {0} bytes is shorter than the 5-byte header")]
    ShortHeader(usize),
    #[error("protocol version {0}, not cannelloni's version 2")]
    Version(u8),
    #[error("op code {0} carries no frames (0 = data is the only one vxbus takes)")]
    OpCode(u8),
    #[error("the datagram ends inside frame {0} of those its header counts")]
    Truncated(u16),
    #[error("{0} bytes follow the frames the header counts")]
    Trailing(usize),
    #[error("a classic frame of length {0} (at most 8)")]
    ClassicLength(u8),
    #[error("a CAN FD frame of length {0} (0 to 8, 12, 16, 20, 24, 32, 48 or 64)")]
    FdLength(u8),
    #[error("a CAN FD frame marked as a remote request")]
    FdRemote,
    #[error("an error frame (id word {0:#010x}): error frames are not carried")]
    ErrorFrame(u32),
    #[error("a standard id above 0x7ff (id word {0:#010x})")]
    StandardId(u32),
}

/// One CAN or CAN FD frame as it crosses the tunnel: valid by construction (lengths the kernel
/// takes, no error frames), so it always writes to a CAN socket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The id word: the id, with CAN_EFF_FLAG and CAN_RTR_FLAG.
    id_word: u32,
    /// `Some(flags)` for CAN FD.
    fd_flags: Option<u8>,
    /// The data length, or a remote request's DLC.
    len: u8,
    data: [u8; 64],
}

impl std::fmt::Debug for Frame {
    /// candump's notation: `123#1122`, `1FFFFFFF#R`, `1A0##5AABB`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_extended() {
            write!(f, "{:08X}", self.id())?;
        } else {
            write!(f, "{:03X}", self.id())?;
        }
        match self.fd_flags {
            Some(flags) => write!(f, "##{:X}", flags & 0x0f)?,
            None if self.is_remote() => return write!(f, "#R{}", self.len),
            None => write!(f, "#")?,
        }
        self.data().iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

impl Frame {
    /// A classic data frame, or a remote request if `id_word` has CAN_RTR_FLAG (then `data`'s
    /// length is its DLC and its bytes are not kept).
    pub fn classic(id_word: u32, data: &[u8]) -> Result<Frame, WireError> {
        let len = u8::try_from(data.len()).map_err(|_| WireError::ClassicLength(u8::MAX))?;
        if len > 8 {
            return Err(WireError::ClassicLength(len));
        }
        check_id(id_word)?;
        let mut frame = Frame {
            id_word,
            fd_flags: None,
            len,
            data: [0; 64],
        };
        if id_word & CAN_RTR_FLAG == 0 {
            frame.data[..data.len()].copy_from_slice(data);
        }
        Ok(frame)
    }

    /// A remote request for `dlc` bytes (at most 8).
    pub fn remote(id_word: u32, dlc: u8) -> Result<Frame, WireError> {
        if dlc > 8 {
            return Err(WireError::ClassicLength(dlc));
        }
        check_id(id_word)?;
        Ok(Frame {
            id_word: id_word | CAN_RTR_FLAG,
            fd_flags: None,
            len: dlc,
            data: [0; 64],
        })
    }

    /// A CAN FD frame with its flags byte as the kernel gives it (BRS 0x01, ESI 0x02, FDF 0x04).
    pub fn fd(id_word: u32, flags: u8, data: &[u8]) -> Result<Frame, WireError> {
        let len = u8::try_from(data.len()).map_err(|_| WireError::FdLength(u8::MAX))?;
        if !FD_LENGTHS.contains(&len) {
            return Err(WireError::FdLength(len));
        }
        if id_word & CAN_RTR_FLAG != 0 {
            return Err(WireError::FdRemote);
        }
        check_id(id_word)?;
        let mut frame = Frame {
            id_word,
            fd_flags: Some(flags),
            len,
            data: [0; 64],
        };
        frame.data[..data.len()].copy_from_slice(data);
        Ok(frame)
    }

    /// The id word, flags included.
    pub fn id_word(&self) -> u32 {
        self.id_word
    }

    /// The id without flags.
    pub fn id(&self) -> u32 {
        if self.is_extended() {
            self.id_word & CAN_EFF_MASK
        } else {
            self.id_word & CAN_SFF_MASK
        }
    }

    pub fn is_extended(&self) -> bool {
        self.id_word & CAN_EFF_FLAG != 0
    }

    pub fn is_remote(&self) -> bool {
        self.id_word & CAN_RTR_FLAG != 0
    }

    /// The CAN FD flags byte, `None` for a classic frame.
    pub fn fd_flags(&self) -> Option<u8> {
        self.fd_flags
    }

    /// The data length, or a remote request's DLC.
    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The data (none for a remote request).
    pub fn data(&self) -> &[u8] {
        if self.is_remote() {
            &[]
        } else {
            &self.data[..usize::from(self.len)]
        }
    }

    /// The bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        4 + 1 + usize::from(self.fd_flags.is_some()) + self.data().len()
    }

    /// Appends the frame's encoding.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u32(self.id_word);
        match self.fd_flags {
            Some(flags) => {
                out.put_u8(self.len | FD_LEN_FLAG);
                out.put_u8(flags);
            }
            None => out.put_u8(self.len),
        }
        out.put_slice(self.data());
    }

    /// Decodes the frame at the start of `buf`: `Ok(None)` if `buf` ends before the frame
    /// does, else the frame and the bytes it took.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, WireError> {
        let (Some(id), Some(&len_byte)) = (buf.get(..4), buf.get(4)) else {
            return Ok(None);
        };
        let mut id = id;
        let id_word = id.get_u32();
        if len_byte & FD_LEN_FLAG != 0 {
            let len = len_byte & !FD_LEN_FLAG;
            let Some(&flags) = buf.get(5) else {
                return Ok(None);
            };
            if !FD_LENGTHS.contains(&len) {
                return Err(WireError::FdLength(len));
            }
            let end = 6 + usize::from(len);
            let Some(data) = buf.get(6..end) else {
                return Ok(None);
            };
            Ok(Some((Frame::fd(id_word, flags, data)?, end)))
        } else if id_word & CAN_RTR_FLAG != 0 {
            Ok(Some((Frame::remote(id_word, len_byte)?, 5)))
        } else {
            if len_byte > 8 {
                return Err(WireError::ClassicLength(len_byte));
            }
            let end = 5 + usize::from(len_byte);
            let Some(data) = buf.get(5..end) else {
                return Ok(None);
            };
            Ok(Some((Frame::classic(id_word, data)?, end)))
        }
    }
}

fn check_id(id_word: u32) -> Result<(), WireError> {
    if id_word & CAN_ERR_FLAG != 0 {
        return Err(WireError::ErrorFrame(id_word));
    }
    if id_word & CAN_EFF_FLAG == 0 && id_word & CAN_EFF_MASK > CAN_SFF_MASK {
        return Err(WireError::StandardId(id_word));
    }
    Ok(())
}

/// A decoded data datagram: its sequence number and frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub seq: u8,
    pub frames: Vec<Frame>,
}

/// Decodes a UDP datagram. All or nothing: a datagram with one bad frame delivers none.
pub fn decode_datagram(buf: &[u8]) -> Result<Datagram, WireError> {
    let Some(mut header) = buf.get(..HEADER_LEN) else {
        return Err(WireError::ShortHeader(buf.len()));
    };
    let (version, op, seq, count) = (
        header.get_u8(),
        header.get_u8(),
        header.get_u8(),
        header.get_u16(),
    );
    if version != UDP_VERSION {
        return Err(WireError::Version(version));
    }
    if op != OP_DATA {
        return Err(WireError::OpCode(op));
    }
    let mut rest = buf.get(HEADER_LEN..).unwrap_or_default();
    // No more frames than the bytes could hold (5 bytes each at the least).
    let mut frames = Vec::with_capacity(usize::from(count).min(rest.len() / 5));
    for index in 0..count {
        let Some((frame, used)) = Frame::decode(rest)? else {
            return Err(WireError::Truncated(index));
        };
        frames.push(frame);
        rest = rest.get(used..).unwrap_or_default();
    }
    if !rest.is_empty() {
        return Err(WireError::Trailing(rest.len()));
    }
    Ok(Datagram { seq, frames })
}

/// A datagram being filled: frames are pushed until the next would make it longer than
/// `max` bytes, then [`finish`](DatagramBuilder::finish) writes the header's count.
#[derive(Debug)]
pub struct DatagramBuilder {
    buf: BytesMut,
    count: u16,
    max: usize,
}

impl DatagramBuilder {
    /// An empty datagram of at most `max` bytes (at least one frame always fits).
    pub fn new(max: usize) -> DatagramBuilder {
        let max = max.max(HEADER_LEN + MAX_FRAME_LEN);
        let mut buf = BytesMut::with_capacity(max);
        buf.put_slice(&[UDP_VERSION, OP_DATA, 0, 0, 0]);
        DatagramBuilder { buf, count: 0, max }
    }

    /// Whether `frame` fits beside the frames already in.
    pub fn fits(&self, frame: &Frame) -> bool {
        self.count < u16::MAX && self.buf.len() + frame.encoded_len() <= self.max
    }

    /// Adds `frame`; false (and nothing added) if it does not fit.
    pub fn push(&mut self, frame: &Frame) -> bool {
        if !self.fits(frame) {
            return false;
        }
        frame.encode(&mut self.buf);
        self.count += 1;
        true
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The datagram's bytes with sequence number `seq`; the builder is empty again.
    pub fn finish(&mut self, seq: u8) -> BytesMut {
        let mut next = BytesMut::with_capacity(self.max);
        next.put_slice(&[UDP_VERSION, OP_DATA, 0, 0, 0]);
        let mut done = std::mem::replace(&mut self.buf, next);
        done[2] = seq;
        done[3..5].copy_from_slice(&self.count.to_be_bytes());
        self.count = 0;
        done
    }
}

/// The TCP stream's codec after the handshake: frames back to back. A bad frame is an error
/// that ends the connection (the stream cannot be resynchronised).
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamCodec;

impl tokio_util::codec::Decoder for StreamCodec {
    type Item = Frame;
    type Error = StreamError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, StreamError> {
        match Frame::decode(src)? {
            Some((frame, used)) => {
                src.advance(used);
                Ok(Some(frame))
            }
            None => {
                src.reserve(MAX_FRAME_LEN);
                Ok(None)
            }
        }
    }
}

impl tokio_util::codec::Encoder<Frame> for StreamCodec {
    type Error = StreamError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), StreamError> {
        frame.encode(dst);
        Ok(())
    }
}

/// Why a TCP stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio_util::codec::Decoder;

    #[test]
    fn a_frame_that_stops_short_asks_for_more() {
        let mut buf = BytesMut::new();
        Frame::fd(0x1a0, 0x05, &[1; 12]).unwrap().encode(&mut buf);
        for cut in 0..buf.len() {
            assert_eq!(Frame::decode(&buf[..cut]), Ok(None), "cut at {cut}");
        }
        let mut codec = StreamCodec;
        let mut partial = BytesMut::from(&buf[..7]);
        assert!(codec.decode(&mut partial).unwrap().is_none());
        partial.extend_from_slice(&buf[7..]);
        assert_eq!(codec.decode(&mut partial).unwrap().unwrap().len(), 12);
        assert!(partial.is_empty());
    }

    #[test]
    fn what_the_kernel_would_refuse_is_refused() {
        assert_eq!(
            Frame::classic(0x123, &[0; 9]),
            Err(WireError::ClassicLength(9))
        );
        assert_eq!(Frame::fd(0x123, 4, &[0; 9]), Err(WireError::FdLength(9)));
        assert_eq!(
            Frame::classic(0x800, &[]),
            Err(WireError::StandardId(0x800))
        );
        assert_eq!(
            Frame::classic(CAN_ERR_FLAG | 4, &[0; 8]),
            Err(WireError::ErrorFrame(CAN_ERR_FLAG | 4))
        );
        assert_eq!(
            Frame::fd(CAN_RTR_FLAG | 1, 4, &[]),
            Err(WireError::FdRemote)
        );
        // On the wire: a classic length 9, an FD length 9.
        assert_eq!(
            Frame::decode(&[0, 0, 1, 0x23, 9]),
            Err(WireError::ClassicLength(9))
        );
        assert_eq!(
            Frame::decode(&[0, 0, 1, 0x23, 0x89, 4]),
            Err(WireError::FdLength(9))
        );
    }

    #[test]
    fn a_datagram_is_all_or_nothing() {
        let ok = [2, 0, 7, 0, 1, 0, 0, 1, 0x23, 1, 0x11];
        assert_eq!(decode_datagram(&ok).unwrap().frames.len(), 1);
        assert_eq!(decode_datagram(&ok[..4]), Err(WireError::ShortHeader(4)));
        assert_eq!(decode_datagram(&ok[..10]), Err(WireError::Truncated(0)));
        let mut two = ok.to_vec();
        two[4] = 2;
        assert_eq!(decode_datagram(&two), Err(WireError::Truncated(1)));
        let mut trailing = ok.to_vec();
        trailing.push(0);
        assert_eq!(decode_datagram(&trailing), Err(WireError::Trailing(1)));
        // A count of 65535 over a few bytes reserves no more than the bytes could hold.
        assert_eq!(
            decode_datagram(&[2, 0, 0, 0xff, 0xff]),
            Err(WireError::Truncated(0))
        );
    }

    #[test]
    fn a_builder_stops_at_its_size() {
        let frame = Frame::fd(0x1a1, 5, &[0xab; 64]).unwrap();
        let mut builder = DatagramBuilder::new(MAX_DATAGRAM);
        let mut pushed = 0;
        while builder.push(&frame) {
            pushed += 1;
        }
        // (1472 - 5) / 70 = 20 frames of 70 bytes.
        assert_eq!(pushed, 20);
        let bytes = builder.finish(9);
        assert!(bytes.len() <= MAX_DATAGRAM);
        let datagram = decode_datagram(&bytes).unwrap();
        assert_eq!((datagram.seq, datagram.frames.len()), (9, 20));
        assert!(builder.is_empty());
        assert_eq!(builder.finish(10).len(), HEADER_LEN);
    }

    fn any_frame() -> impl Strategy<Value = Frame> {
        let classic = (0u32..0x800, proptest::collection::vec(any::<u8>(), 0..=8))
            .prop_map(|(id, data)| Frame::classic(id, &data).unwrap());
        let extended = (
            0u32..0x2000_0000,
            proptest::collection::vec(any::<u8>(), 0..=8),
        )
            .prop_map(|(id, data)| Frame::classic(id | CAN_EFF_FLAG, &data).unwrap());
        let remote = (0u32..0x800, 0u8..=8).prop_map(|(id, dlc)| Frame::remote(id, dlc).unwrap());
        let fd = (0u32..0x800, 0usize..16, 0u8..8, any::<[u8; 64]>()).prop_map(
            |(id, len, flags, data)| {
                let len = usize::from(FD_LENGTHS[len]);
                Frame::fd(id, flags, &data[..len]).unwrap()
            },
        );
        prop_oneof![classic, extended, remote, fd]
    }

    proptest! {
        #[test]
        fn datagrams_round_trip(frames in proptest::collection::vec(any_frame(), 0..40), seq: u8) {
            let mut builder = DatagramBuilder::new(65_000);
            for frame in &frames {
                prop_assert!(builder.push(frame));
            }
            let decoded = decode_datagram(&builder.finish(seq)).unwrap();
            prop_assert_eq!(decoded, Datagram { seq, frames });
        }

        #[test]
        fn streams_round_trip_whatever_the_cuts(
            frames in proptest::collection::vec(any_frame(), 0..20),
            cut in 1usize..50,
        ) {
            let mut all = BytesMut::new();
            frames.iter().for_each(|frame| frame.encode(&mut all));
            let mut codec = StreamCodec;
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in all.chunks(cut) {
                buf.extend_from_slice(chunk);
                while let Some(frame) = codec.decode(&mut buf).unwrap() {
                    out.push(frame);
                }
            }
            prop_assert_eq!(out, frames);
        }

        #[test]
        fn decoders_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_datagram(&bytes);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = StreamCodec.decode(&mut buf) {}
        }
    }
}
