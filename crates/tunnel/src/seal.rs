//! Authenticated encryption between vxbus hosts (`tunnel.key`), for a bus that crosses a network
//! nobody trusts: each UDP datagram to or from a vxbus peer is sealed with XChaCha20-Poly1305
//! (RustCrypto's `chacha20poly1305`) under a pre-shared 256-bit key. Leaves (plain cannelloni)
//! stay plain: they could not read it.
//!
//! A sealed datagram: [`SEALED`] (a first byte cannelloni's decoder drops, as it is not its
//! version 2), the sender's id and the receiver's (8 bytes each: random per run of a tunnel), the
//! 24-byte nonce, then the cannelloni datagram encrypted, with its 16-byte tag; the header is
//! authenticated too. The nonce's first 8 bytes are a counter (the sender's clock in
//! microseconds, kept increasing), the other 16 random.
//!
//! The receiver refuses (the `udp` module applies this):
//! - a datagram addressed to another id: one meant for another host, or for an earlier run of
//!   this one, played to it; or its own, played back to it. A sender learns a peer's id from the
//!   peer's datagrams, and until then sends it only empty datagrams addressed to no one, which
//!   carry no frames and only make themselves known;
//! - a counter it has taken from that sender (by sender id, whatever address it comes from), or
//!   one more than [`REORDER`] older than the newest it has taken (a replay), and, for a sender
//!   it has not heard from, one more than [`MAX_SKEW`] away from its clock, so a recorded
//!   datagram cannot be played back later. This takes the hosts' clocks to agree within a minute
//!   (NTP). A sender's counters rise across its restarts with its clock.
//!
//! Over TCP (a stream between two vxbus hosts that both have the key), what is sealed is a
//! *record*: a 2-byte big-endian length, then the sealed bytes as above. After cannelloni's
//! hello and vxbus's sealed mark, each side sends a hello record from a fresh connection id to
//! [`NO_ONE`], empty; every record after it goes from its sender's connection id to the
//! other's, with counters that rise along the stream. So a record played into another
//! connection (another id), back to its sender, or again (an old counter) is refused, and the
//! connection ends.
//!
//! Owns: the sealed format and the replay window. Must not touch sockets.

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
    XChaCha20Poly1305, XNonce,
};

/// The first byte of a sealed datagram.
pub const SEALED: u8 = 0xe5;
const ID_LEN: usize = 8;
const HEADER_LEN: usize = 1 + 2 * ID_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// What sealing adds to a datagram.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
/// The receiver id of a datagram sent before its receiver's id is known: it may carry no frames.
pub const NO_ONE: u64 = 0;
/// How far a first datagram's counter may be from the receiver's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(60);
/// How much older than the newest one a datagram may be (reordered on the way) and still be
/// taken, once.
pub const REORDER: Duration = Duration::from_secs(1);
/// Counters remembered per sender within [`REORDER`]; below the oldest remembered, refused.
const REMEMBERED: usize = 4096;
/// Senders whose windows are kept; the one heard from least recently goes first.
const SENDERS: usize = 64;

/// A pre-shared key, read from a file of 64 hex digits (`openssl rand -hex 32`).
#[derive(Clone)]
pub struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    #[error("it must hold 64 hex digits (32 random bytes, such as `openssl rand -hex 32` writes)")]
    Format,
    #[error("it is not a regular file")]
    NotAFile,
}

impl Key {
    pub fn from_hex(text: &str) -> Result<Key, KeyError> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::Format);
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            let digits = text.get(2 * i..2 * i + 2).ok_or(KeyError::Format)?;
            *byte = u8::from_str_radix(digits, 16).map_err(|_| KeyError::Format)?;
        }
        Ok(Key(key))
    }

    /// Reads a key file: a regular file (never a FIFO or a device, which could block or never
    /// end), of a key's size. One that others may read is used, with a warning.
    pub fn read(path: &Path) -> Result<Key, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(KeyError::NotAFile);
        }
        if meta.len() > 1024 {
            return Err(KeyError::Format);
        }
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "key file {} can be read by others than its owner: chmod 600 it",
                path.display()
            );
        }
        Key::from_hex(&std::fs::read_to_string(path)?)
    }
}

/// Why a sealed datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not sealed (a vxbus peer must seal its datagrams when the bus has tunnel.key)")]
    NotSealed,
    #[error("sealed with another key, or changed on the way")]
    Forged,
    #[error("a replay (a counter already taken, or too old)")]
    Replay,
    #[error("its clock is more than a minute from ours")]
    Skew,
    #[error("addressed to another host, or to an earlier run of this one")]
    NotForUs,
    #[error("frames in a datagram addressed to no one")]
    Unaddressed,
}

/// A datagram opened: who sent it, to whom, its counter and the cannelloni datagram inside.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub from: u64,
    pub to: u64,
    pub counter: u64,
    pub plain: Vec<u8>,
}

/// A random id for one run of a tunnel (never [`NO_ONE`]).
pub fn new_id() -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&XChaCha20Poly1305::generate_nonce(&mut OsRng)[..8]);
    u64::from_be_bytes(bytes).max(1)
}

fn now_micros() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_micros()).unwrap_or(u64::MAX)
}

/// Seals datagrams to the peers of one tunnel.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    last: u64,
}

impl Sealer {
    pub fn new(key: &Key) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(&key.0.into()),
            last: 0,
        }
    }

    /// Seals `datagram` from `from` to `to` (or [`NO_ONE`]).
    pub fn seal(&mut self, from: u64, to: u64, datagram: &[u8]) -> Vec<u8> {
        self.last = now_micros().max(self.last + 1);
        let mut nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        nonce[..8].copy_from_slice(&self.last.to_be_bytes());
        let mut out = Vec::with_capacity(OVERHEAD + datagram.len());
        out.push(SEALED);
        out.extend_from_slice(&from.to_be_bytes());
        out.extend_from_slice(&to.to_be_bytes());
        let payload = Payload {
            msg: datagram,
            aad: &out,
        };
        // Encryption fails only for a message longer than the cipher's limit (256 GiB).
        let sealed = self.cipher.encrypt(&nonce, payload).unwrap_or_default();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a sealed datagram: authentic, or an error. Who it is for and whether its counter
    /// is new are the caller's to check (with [`Opener::take`]).
    pub fn open(&self, datagram: &[u8]) -> Result<Opened, OpenError> {
        let (Some(&SEALED), Some(header), Some(nonce), Some(sealed)) = (
            datagram.first(),
            datagram.get(..HEADER_LEN),
            datagram.get(HEADER_LEN..HEADER_LEN + NONCE_LEN),
            datagram.get(HEADER_LEN + NONCE_LEN..),
        ) else {
            return Err(OpenError::NotSealed);
        };
        if sealed.len() < TAG_LEN {
            return Err(OpenError::NotSealed);
        }
        let payload = Payload {
            msg: sealed,
            aad: header,
        };
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| OpenError::Forged)?;
        let word = |bytes: Option<&[u8]>| -> Result<u64, OpenError> {
            let bytes: [u8; 8] = bytes
                .and_then(|b| b.try_into().ok())
                .ok_or(OpenError::Forged)?;
            Ok(u64::from_be_bytes(bytes))
        };
        Ok(Opened {
            from: word(header.get(1..1 + ID_LEN))?,
            to: word(header.get(1 + ID_LEN..HEADER_LEN))?,
            counter: word(nonce.get(..8))?,
            plain,
        })
    }
}

/// The largest sealed record on a TCP stream: what a connection writes at once (64 frames of
/// at most 70 bytes), sealed.
pub const MAX_RECORD: usize = OVERHEAD + 64 * crate::wire::MAX_FRAME_LEN;

/// `plain` sealed from `from` to `to` as a TCP record: its length, then the sealed bytes.
fn record(sealer: &mut Sealer, from: u64, to: u64, plain: &[u8]) -> Vec<u8> {
    let sealed = sealer.seal(from, to, plain);
    let len = u16::try_from(sealed.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + sealed.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&sealed);
    out
}

/// One side of a sealed TCP connection, before the hellos: its own fresh id. After the
/// hellos each side sends an empty record, addressed to the other's id: a hello recorded and
/// played again gets no further, as its player cannot seal that record.
pub struct StreamHandshake {
    key: Key,
    /// This side's id, held among the tunnel's own until the connection ends.
    mine: OwnId,
    /// Seals the hello and then every record, so the counters rise along the stream.
    sealer: Sealer,
}

/// The connection ids of one tunnel's sealed TCP connections, handshaking or open: a hello
/// from one of them is the tunnel's own, crossed over from another of its connections.
#[derive(Clone, Default)]
pub struct OwnIds(std::sync::Arc<std::sync::Mutex<BTreeSet<u64>>>);

impl OwnIds {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh id, among the own ones until the returned holder is dropped.
    fn claim(&self) -> OwnId {
        let id = new_id();
        self.lock().insert(id);
        OwnId {
            ids: self.clone(),
            id,
        }
    }
}

/// One connection's id among its tunnel's [`OwnIds`]; dropping it (the handshake failed, or the
/// connection ended) forgets the id.
struct OwnId {
    ids: OwnIds,
    id: u64,
}

impl Drop for OwnId {
    fn drop(&mut self) {
        self.ids.lock().remove(&self.id);
    }
}

impl StreamHandshake {
    pub fn new(key: &Key, own: &OwnIds) -> StreamHandshake {
        StreamHandshake {
            key: key.clone(),
            mine: own.claim(),
            sealer: Sealer::new(key),
        }
    }

    /// This side's hello record.
    pub fn hello(&mut self) -> Vec<u8> {
        record(&mut self.sealer, self.mine.id, NO_ONE, &[])
    }

    /// Takes the other side's hello record (without its length): the two halves of the
    /// connection, sealing what goes out and opening what comes in.
    pub fn take_hello(self, sealed: &[u8]) -> Result<(StreamSealer, StreamOpener), OpenError> {
        let opened = self.sealer.open(sealed)?;
        if opened.to != NO_ONE || !opened.plain.is_empty() || opened.from == NO_ONE {
            return Err(OpenError::NotForUs);
        }
        if self.mine.ids.lock().contains(&opened.from) {
            // Our own hello, played back to us, or crossed over from another of our
            // connections.
            return Err(OpenError::NotForUs);
        }
        let theirs = opened.from;
        let opener = StreamOpener {
            opener: Sealer::new(&self.key),
            mine: self.mine.id,
            theirs,
            last: opened.counter,
        };
        // The id now belongs to the sealer, whose drop forgets it.
        let sealer = StreamSealer {
            sealer: self.sealer,
            mine: self.mine,
            theirs,
        };
        Ok((sealer, opener))
    }
}

/// Seals what one side of a TCP connection writes.
pub struct StreamSealer {
    sealer: Sealer,
    mine: OwnId,
    theirs: u64,
}

impl StreamSealer {
    /// `plain` (frames in cannelloni's stream format) as a record.
    pub fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        record(&mut self.sealer, self.mine.id, self.theirs, plain)
    }
}

/// Opens what one side of a TCP connection reads.
pub struct StreamOpener {
    opener: Sealer,
    mine: u64,
    theirs: u64,
    last: u64,
}

impl StreamOpener {
    /// A record's sealed bytes (without its length) opened: frames in cannelloni's stream
    /// format, or why the record is refused.
    pub fn open(&mut self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let opened = self.opener.open(sealed)?;
        if opened.from != self.theirs || opened.to != self.mine {
            return Err(OpenError::NotForUs);
        }
        if opened.counter <= self.last {
            return Err(OpenError::Replay);
        }
        self.last = opened.counter;
        Ok(opened.plain)
    }
}

/// Splits a TCP stream into sealed records (their sealed bytes, without the length); one
/// longer than [`MAX_RECORD`] or too short to be sealed ends the stream.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordCodec;

impl tokio_util::codec::Decoder for RecordCodec {
    type Item = bytes::BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut bytes::BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        let Some(len) = src
            .get(..2)
            .and_then(|len| <[u8; 2]>::try_from(len).ok())
            .map(|len| usize::from(u16::from_be_bytes(len)))
        else {
            return Ok(None);
        };
        if !(OVERHEAD..=MAX_RECORD).contains(&len) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a sealed record of {len} bytes (from {OVERHEAD} to {MAX_RECORD})"),
            ));
        }
        if src.len() < 2 + len {
            src.reserve(2 + len - src.len());
            return Ok(None);
        }
        let mut record = src.split_to(2 + len);
        Ok(Some(record.split_off(2)))
    }
}

/// One sender's replay window: the newest counter taken, and those taken within [`REORDER`] of it.
#[derive(Default)]
pub struct Opener {
    highest: Option<u64>,
    taken: BTreeSet<u64>,
}

impl Opener {
    /// Takes `counter` if it is new and not too old; authenticated datagrams only come here.
    fn take_at(&mut self, counter: u64, now: u64) -> Result<(), OpenError> {
        let reorder = u64::try_from(REORDER.as_micros()).unwrap_or(u64::MAX);
        let Some(highest) = self.highest else {
            let skew = u64::try_from(MAX_SKEW.as_micros()).unwrap_or(u64::MAX);
            if counter.abs_diff(now) > skew {
                return Err(OpenError::Skew);
            }
            self.highest = Some(counter);
            self.taken.insert(counter);
            return Ok(());
        };
        let too_old = counter <= highest.saturating_sub(reorder)
            || (self.taken.len() >= REMEMBERED
                && self.taken.first().is_some_and(|&oldest| counter < oldest));
        if too_old || !self.taken.insert(counter) {
            return Err(OpenError::Replay);
        }
        if counter > highest {
            self.highest = Some(counter);
            let floor = counter.saturating_sub(reorder);
            self.taken = self.taken.split_off(&floor.saturating_add(1));
        }
        while self.taken.len() > REMEMBERED {
            self.taken.pop_first();
        }
        Ok(())
    }
}

/// The replay windows of the senders heard from, by sender id: a sender that restarts has a new
/// id (and a first datagram near our clock), and a datagram played back from another peer's
/// address meets its own sender's window.
#[derive(Default)]
pub struct Openers {
    by_id: HashMap<u64, (Opener, u64)>,
    uses: u64,
}

impl Openers {
    /// Takes `counter` from sender `from` if it is new, now.
    pub fn take(&mut self, from: u64, counter: u64) -> Result<(), OpenError> {
        self.take_at(from, counter, now_micros())
    }

    fn take_at(&mut self, from: u64, counter: u64, now: u64) -> Result<(), OpenError> {
        self.uses += 1;
        if !self.by_id.contains_key(&from) && self.by_id.len() >= SENDERS {
            let stalest = self
                .by_id
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id);
            if let Some(id) = stalest {
                self.by_id.remove(&id);
            }
        }
        let (opener, used) = self.by_id.entry(from).or_default();
        *used = self.uses;
        opener.take_at(counter, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: char) -> Key {
        Key::from_hex(&byte.to_string().repeat(64)).unwrap()
    }

    #[test]
    fn sealed_datagrams_open_only_with_the_key_and_say_who_and_when() {
        let mut sealer = Sealer::new(&key('a'));
        let other = Sealer::new(&key('b'));
        let datagram = [2, 0, 0, 0, 1, 0, 0, 1, 0x23, 1, 0x11];
        let sealed = sealer.seal(7, 9, &datagram);
        assert_eq!(sealed.len(), datagram.len() + OVERHEAD);
        assert_eq!(sealed[0], SEALED);
        let opened = sealer.open(&sealed).unwrap();
        assert_eq!(
            (opened.from, opened.to, &opened.plain[..]),
            (7, 9, &datagram[..])
        );
        assert!(opened.counter.abs_diff(now_micros()) < 10_000_000);
        assert!(
            sealer.seal(7, 9, &datagram) != sealed,
            "a new nonce each time"
        );
        assert_eq!(other.open(&sealed), Err(OpenError::Forged));
        // The ids are authenticated: a datagram readdressed does not open.
        let mut readdressed = sealed.clone();
        readdressed[16] ^= 1;
        assert_eq!(sealer.open(&readdressed), Err(OpenError::Forged));
        let mut changed = sealed.clone();
        changed[60] ^= 1;
        assert_eq!(sealer.open(&changed), Err(OpenError::Forged));
        assert_eq!(sealer.open(&datagram), Err(OpenError::NotSealed));
        assert_eq!(sealer.open(&sealed[..40]), Err(OpenError::NotSealed));
        assert_ne!(new_id(), NO_ONE);
    }

    #[test]
    fn the_window_takes_late_datagrams_once() {
        let mut openers = Openers::default();
        let now = 1_000_000_000_000;
        let ms = 1000;
        assert_eq!(openers.take_at(7, now, now), Ok(()));
        assert_eq!(openers.take_at(7, now + 5 * ms, now), Ok(()));
        assert_eq!(
            openers.take_at(7, now + 2 * ms, now),
            Ok(()),
            "late by 3 ms"
        );
        assert_eq!(
            openers.take_at(7, now + 2 * ms, now),
            Err(OpenError::Replay)
        );
        assert_eq!(
            openers.take_at(7, now + 5 * ms, now),
            Err(OpenError::Replay)
        );
        assert_eq!(openers.take_at(7, now + 2000 * ms, now), Ok(()));
        assert_eq!(
            openers.take_at(7, now + 900 * ms, now),
            Err(OpenError::Replay),
            "older than the window"
        );
        assert_eq!(
            openers.take_at(7, now + 1500 * ms, now),
            Ok(()),
            "late by 0.5 s"
        );
        // Another sender has a window of its own; one far from the clock is a recording.
        assert_eq!(openers.take_at(8, now + 5 * ms, now), Ok(()));
        let skew = u64::try_from(MAX_SKEW.as_micros()).unwrap();
        assert_eq!(
            openers.take_at(9, now - skew - 1, now),
            Err(OpenError::Skew)
        );
    }

    #[test]
    fn senders_beyond_the_limit_push_out_the_stalest() {
        let mut openers = Openers::default();
        let now = 1_000_000_000_000;
        for id in 0..SENDERS as u64 + 10 {
            assert_eq!(openers.take_at(id, now, now), Ok(()));
        }
        assert_eq!(openers.by_id.len(), SENDERS);
        let mut one = Opener::default();
        for i in 0..REMEMBERED as u64 + 10 {
            assert_eq!(one.take_at(now + i, now), Ok(()));
        }
        assert!(one.taken.len() <= REMEMBERED);
    }

    #[test]
    fn key_files_are_64_hex_digits() {
        assert!(Key::from_hex(&format!("{}\n", "0f".repeat(32))).is_ok());
        for bad in ["", "0f", &"0g".repeat(32), &"0f".repeat(33)] {
            assert!(matches!(Key::from_hex(bad), Err(KeyError::Format)), "{bad}");
        }
    }

    /// The hello records of two fresh connection sides, exchanged.
    fn connected(key: &Key) -> ((StreamSealer, StreamOpener), (StreamSealer, StreamOpener)) {
        let (own_a, own_b) = (OwnIds::default(), OwnIds::default());
        let (mut a, mut b) = (
            StreamHandshake::new(key, &own_a),
            StreamHandshake::new(key, &own_b),
        );
        let (hello_a, hello_b) = (a.hello(), b.hello());
        let a = a.take_hello(&hello_b[2..]).unwrap();
        let b = b.take_hello(&hello_a[2..]).unwrap();
        (a, b)
    }

    #[test]
    fn stream_records_open_once_in_their_connection_only() {
        let key = Key::from_hex(&"ab".repeat(32)).unwrap();
        let ((mut a_out, mut a_in), (mut b_out, mut b_in)) = connected(&key);
        let first = a_out.seal(b"frames");
        assert_eq!(
            u16::from_be_bytes([first[0], first[1]]) as usize,
            first.len() - 2
        );
        assert_eq!(b_in.open(&first[2..]).unwrap(), b"frames");
        // Again: a replay. Back to its sender: not for it.
        assert_eq!(b_in.open(&first[2..]), Err(OpenError::Replay));
        assert_eq!(a_in.open(&first[2..]), Err(OpenError::NotForUs));
        assert_eq!(a_in.open(&b_out.seal(b"back")[2..]).unwrap(), b"back");
        // Into another connection between the same hosts: other ids.
        let ((_, mut c_in), _) = connected(&key);
        assert_eq!(c_in.open(&a_out.seal(b"x")[2..]), Err(OpenError::NotForUs));
        // Another key; a hello played back to its sender.
        let other = Key::from_hex(&"cd".repeat(32)).unwrap();
        let stranger = StreamHandshake::new(&other, &OwnIds::default()).hello();
        let side = StreamHandshake::new(&key, &OwnIds::default());
        assert_eq!(
            side.take_hello(&stranger[2..]).err(),
            Some(OpenError::Forged)
        );
        let mut side = StreamHandshake::new(&key, &OwnIds::default());
        let own = side.hello();
        assert_eq!(side.take_hello(&own[2..]).err(), Some(OpenError::NotForUs));
    }

    #[test]
    fn a_hello_crossed_over_from_another_own_connection_is_refused() {
        let key = Key::from_hex(&"ab".repeat(32)).unwrap();
        // Two connections of this process, each given the other's hello by a go-between.
        let own = OwnIds::default();
        let (mut one, mut two) = (
            StreamHandshake::new(&key, &own),
            StreamHandshake::new(&key, &own),
        );
        let (hello_one, hello_two) = (one.hello(), two.hello());
        assert_eq!(
            one.take_hello(&hello_two[2..]).err(),
            Some(OpenError::NotForUs)
        );
        // Connection one is gone now (its id forgotten), so two would take its hello; but no
        // first record from one to two will ever be sealed, and the handshake ends there.
        let _ = (two, hello_one);
    }

    #[test]
    fn records_are_split_from_the_stream_and_bounded() {
        use tokio_util::codec::Decoder;
        let key = Key::from_hex(&"ab".repeat(32)).unwrap();
        let ((mut out, _), (_, mut into)) = connected(&key);
        let mut stream = bytes::BytesMut::new();
        stream.extend_from_slice(&out.seal(b"one"));
        stream.extend_from_slice(&out.seal(b"two"));
        let whole = stream.clone();
        let mut codec = RecordCodec;
        for cut in 0..whole.len() {
            let mut part = bytes::BytesMut::from(&whole[..cut]);
            let mut opened = Vec::new();
            while let Some(record) = codec.decode(&mut part).unwrap() {
                opened.push(record);
            }
            assert!(opened.len() <= 2, "cut at {cut}");
        }
        let first = codec.decode(&mut stream).unwrap().unwrap();
        let second = codec.decode(&mut stream).unwrap().unwrap();
        assert_eq!(into.open(&first).unwrap(), b"one");
        assert_eq!(into.open(&second).unwrap(), b"two");
        assert!(codec.decode(&mut stream).unwrap().is_none());
        for len in [0u16, (OVERHEAD - 1) as u16, (MAX_RECORD + 1) as u16] {
            let mut bad = bytes::BytesMut::from(&len.to_be_bytes()[..]);
            assert!(codec.decode(&mut bad).is_err(), "{len}");
        }
    }
}
