//! can-gw rules (the kernel's CAN gateway, module `can-gw`) over rtnetlink.
//!
//! Written by hand because no crate encodes them: netlink-packet-route has no AF_CAN route
//! messages. netlink-packet-core frames the messages (header, ACKs, kernel errors) and
//! netlink-sys carries them; this module writes only the can-gw payload. Its layout, from the
//! kernel's `include/uapi/linux/can/gw.h` (the same on 6.1 and later):
//!
//! ```text
//! struct rtcanmsg { __u8 can_family; __u8 gwtype; __u16 flags; };   // 4 bytes, native endian
//! followed by netlink attributes (struct nlattr { __u16 nla_len; __u16 nla_type; } + value,
//! each padded to 4 bytes):
//!   CGW_HANDLED = 7, CGW_DROPPED = 8, CGW_DELETED = 12   __u32 frame counters (dumps only)
//!   CGW_SRC_IF = 9, CGW_DST_IF = 10                      __u32 interface indexes
//! message types: RTM_NEWROUTE = 24 (add; also each rule in a dump), RTM_DELROUTE = 25,
//!                RTM_GETROUTE = 26 (dump), with can_family = AF_CAN (29), gwtype CGW_TYPE_CAN_CAN (1)
//! flags: CGW_FLAGS_CAN_ECHO 0x01, _SRC_TSTAMP 0x02, _IIF_TX_OK 0x04, _FD 0x08
//! ```
//!
//! Without the `can-gw` module the kernel has no AF_CAN route handler: an add or remove fails with
//! EOPNOTSUPP and a dump falls through to the generic route dump (IPv4 and IPv6 routes). Both
//! are reported as [`GwError::NotLoaded`], which names the module and the command that loads it.
//!
//! The kernel deletes the rule whose type, flags, modifications, filter, hop limit and interfaces
//! all equal the request's, so a [`Rule`] is removed by sending it again. A request with both
//! interface indexes 0 would delete every rule on the host: [`CanGw::remove`] refuses to send one.
//!
//! Owns: encoding, decoding and sending can-gw requests. Must not touch: links (see `links`),
//! or any rule it is not asked about.

use std::io;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

const AF_CAN: u8 = 29;
const CGW_TYPE_CAN_CAN: u8 = 1;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const CGW_HANDLED: u16 = 7;
const CGW_DROPPED: u16 = 8;
const CGW_SRC_IF: u16 = 9;
const CGW_DST_IF: u16 = 10;
const CGW_DELETED: u16 = 12;
const RTCANMSG_LEN: usize = 4;
/// An attribute holding a __u32: 4 bytes of nlattr header and 4 of value.
const U32_ATTR_LEN: usize = 8;

/// Flags of a rule (`rtcanmsg.flags`).
pub mod flags {
    /// Loop the routed frame back on the destination, so local sockets there see it.
    pub const ECHO: u16 = 0x01;
    /// Keep the source frame's timestamp.
    pub const SRC_TSTAMP: u16 = 0x02;
    /// Route even when the frame's incoming ifindex equals the destination's. Indexes are per
    /// network namespace, so a container's vxcan end can share one with a host link; without
    /// this the kernel drops such frames silently.
    pub const IIF_TX_OK: u16 = 0x04;
    /// The rule carries CAN FD frames (a rule carries classic or FD frames, never both).
    pub const CAN_FD: u16 = 0x08;
}

/// A CAN-to-CAN routing rule: frames received on `src` are sent on `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub src: u32,
    pub dst: u32,
    pub flags: u16,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} (flags {:#x})", self.src, self.dst, self.flags)
    }
}

/// A rule as the kernel lists it, with its frame counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleStats {
    pub rule: Rule,
    pub handled: u32,
    pub dropped: u32,
    /// Frames not routed because they had already been routed `max_hops` times.
    pub deleted: u32,
    /// The rule has nothing but its interfaces and flags, as every rule vxbus makes. A rule with
    /// more (a filter, frame modifications, a hop limit: someone else's) is listed with `plain`
    /// false: it is not vxbus's, and sending `rule` back would not remove it (the kernel
    /// matches all of a rule's attributes, and answers EINVAL).
    pub plain: bool,
}

/// A can-gw payload.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GwMessage {
    Add(Rule),
    Remove(Rule),
    Dump,
    /// A rule in a dump; `None` for a gateway type other than CAN-to-CAN.
    Listed(Option<RuleStats>),
    /// A route of another address family: the dump was not answered by can-gw.
    Foreign,
}

/// The netlink messages of one datagram from the kernel, each decoded as [`CanGw`] reads its
/// answers: headers, ACKs and errors by netlink-packet-core, can-gw payloads by this module.
fn replies(buffer: &[u8]) -> Result<Vec<NetlinkMessage<GwMessage>>, DecodeError> {
    let mut replies = Vec::new();
    let mut at = 0;
    while let Some(rest) = buffer.get(at..).filter(|rest| !rest.is_empty()) {
        let reply = NetlinkMessage::<GwMessage>::deserialize(rest)
            .map_err(|err| DecodeError(err.to_string()))?;
        let length = reply.header.length as usize;
        if length == 0 {
            return Err(DecodeError("a netlink message of length 0".into()));
        }
        at = at.saturating_add(align4(length));
        replies.push(reply);
    }
    Ok(replies)
}

/// The CAN-to-CAN rules in one datagram of a can-gw dump, decoded as [`CanGw::list`] decodes
/// them. For fuzzing and tests: every malformed datagram must be an error, never a panic or a
/// read beyond `buffer`.
pub fn decode_dump_datagram(buffer: &[u8]) -> Result<Vec<RuleStats>, DecodeError> {
    Ok(replies(buffer)?
        .into_iter()
        .filter_map(|reply| match reply.payload {
            NetlinkPayload::InnerMessage(GwMessage::Listed(stats)) => stats,
            _ => None,
        })
        .collect())
}

/// A can-gw payload that is not what the layout above says.
#[derive(Debug, thiserror::Error)]
#[error("malformed can-gw message: {0}")]
pub struct DecodeError(String);

/// Netlink pads messages and attributes to 4 bytes (NLMSG_ALIGN, NLA_ALIGN).
fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// A whole netlink request: header (length filled in) and payload.
fn encode(message: GwMessage, flags: u16, sequence: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = sequence;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

fn put_u32_attr(buffer: &mut [u8], kind: u16, value: u32) {
    buffer[0..2].copy_from_slice(&(U32_ATTR_LEN as u16).to_ne_bytes());
    buffer[2..4].copy_from_slice(&kind.to_ne_bytes());
    buffer[4..8].copy_from_slice(&value.to_ne_bytes());
}

impl NetlinkSerializable for GwMessage {
    fn message_type(&self) -> u16 {
        match self {
            GwMessage::Add(_) | GwMessage::Listed(_) | GwMessage::Foreign => RTM_NEWROUTE,
            GwMessage::Remove(_) => RTM_DELROUTE,
            GwMessage::Dump => RTM_GETROUTE,
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            GwMessage::Add(_) | GwMessage::Remove(_) => RTCANMSG_LEN + 2 * U32_ATTR_LEN,
            GwMessage::Dump | GwMessage::Foreign => RTCANMSG_LEN,
            GwMessage::Listed(_) => RTCANMSG_LEN + 5 * U32_ATTR_LEN,
        }
    }

    fn serialize(&self, buffer: &mut [u8]) {
        let (gwtype, rule, counters) = match self {
            GwMessage::Add(rule) | GwMessage::Remove(rule) => (CGW_TYPE_CAN_CAN, Some(*rule), None),
            GwMessage::Dump => (0, None, None),
            GwMessage::Listed(Some(stats)) => (CGW_TYPE_CAN_CAN, Some(stats.rule), Some(stats)),
            GwMessage::Listed(None) | GwMessage::Foreign => (0, None, None),
        };
        buffer[0] = AF_CAN;
        buffer[1] = gwtype;
        buffer[2..4].copy_from_slice(&rule.map_or(0, |r| r.flags).to_ne_bytes());
        let mut at = RTCANMSG_LEN;
        let mut attr = |kind, value| {
            put_u32_attr(&mut buffer[at..at + U32_ATTR_LEN], kind, value);
            at += U32_ATTR_LEN;
        };
        if let Some(stats) = counters {
            attr(CGW_HANDLED, stats.handled);
            attr(CGW_DROPPED, stats.dropped);
            attr(CGW_DELETED, stats.deleted);
        }
        if let Some(rule) = rule {
            attr(CGW_SRC_IF, rule.src);
            attr(CGW_DST_IF, rule.dst);
        }
    }
}

impl NetlinkDeserializable for GwMessage {
    type Error = DecodeError;

    /// Decodes a rule of a dump (the kernel answers only those with a payload).
    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        if header.message_type != RTM_NEWROUTE {
            return Err(DecodeError(format!(
                "unexpected message type {}",
                header.message_type
            )));
        }
        if payload.len() < RTCANMSG_LEN {
            return Err(DecodeError(format!("a route of {} bytes", payload.len())));
        }
        if payload[0] != AF_CAN {
            return Ok(GwMessage::Foreign);
        }
        if payload[1] != CGW_TYPE_CAN_CAN {
            return Ok(GwMessage::Listed(None));
        }
        let flags = u16::from_ne_bytes([payload[2], payload[3]]);
        let (mut src, mut dst) = (None, None);
        let (mut handled, mut dropped, mut deleted) = (0, 0, 0);
        let mut plain = true;
        let mut rest = &payload[RTCANMSG_LEN..];
        while rest.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
            let kind = u16::from_ne_bytes([rest[2], rest[3]]);
            if len < 4 || len > rest.len() {
                return Err(DecodeError(format!("attribute {kind} has length {len}")));
            }
            let value = &rest[4..len];
            let as_u32 = || -> Result<u32, DecodeError> {
                let bytes = value.try_into().map_err(|_| {
                    DecodeError(format!("attribute {kind} has {} bytes, not 4", value.len()))
                })?;
                Ok(u32::from_ne_bytes(bytes))
            };
            match kind {
                CGW_SRC_IF => src = Some(as_u32()?),
                CGW_DST_IF => dst = Some(as_u32()?),
                CGW_HANDLED => handled = as_u32()?,
                CGW_DROPPED => dropped = as_u32()?,
                CGW_DELETED => deleted = as_u32()?,
                // Filters, modifications, hop limits, ...: vxbus makes none.
                _ => plain = false,
            }
            // The last attribute's padding may be missing.
            rest = rest.get(align4(len)..).unwrap_or_default();
        }
        let (Some(src), Some(dst)) = (src, dst) else {
            return Err(DecodeError(
                "a CAN-to-CAN rule without CGW_SRC_IF or CGW_DST_IF".into(),
            ));
        };
        let rule = Rule { src, dst, flags };
        Ok(GwMessage::Listed(Some(RuleStats {
            rule,
            handled,
            dropped,
            deleted,
            plain,
        })))
    }
}

/// Why a can-gw request failed.
#[derive(Debug, thiserror::Error)]
pub enum GwError {
    #[error("{op}: the kernel refused: {source}")]
    Kernel { op: String, source: io::Error },
    #[error("{op}: netlink: {source}")]
    Io { op: String, source: io::Error },
    #[error("{op}: {source}")]
    Decode { op: String, source: DecodeError },
    #[error(
        "refusing to remove a rule with interface index 0: the kernel would remove every rule"
    )]
    Wildcard,
    #[error(
        "{op}: the kernel's CAN gateway (module can-gw) is not loaded: load it on the host with \
         `modprobe can-gw`"
    )]
    NotLoaded { op: String },
}

/// EOPNOTSUPP: the kernel's answer to an AF_CAN route request when can-gw is not loaded.
const EOPNOTSUPP: i32 = 95;

impl GwError {
    /// The errno the kernel answered with, if it answered with one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            GwError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// How long one read or write on the can-gw socket may wait: the kernel answers at once, so a
/// request that waits this long fails (EAGAIN) rather than holding its caller for ever.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A netlink connection to the kernel's CAN gateway. Requests block briefly (they are
/// answered by the kernel at once, and each wait is bounded by [`REQUEST_TIMEOUT`]); async
/// code uses [`SharedGw`], which runs them off the runtime's workers.
pub struct CanGw {
    socket: Socket,
    sequence: u32,
}

impl CanGw {
    pub fn open() -> io::Result<CanGw> {
        use nix::sys::{socket::sockopt, time::TimeVal};
        use std::os::fd::{AsRawFd as _, BorrowedFd};
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // SAFETY: the descriptor is `socket`'s, open for as long as this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
        let timeout = TimeVal::new(REQUEST_TIMEOUT.as_secs() as _, 0);
        nix::sys::socket::setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)?;
        nix::sys::socket::setsockopt(&fd, sockopt::SendTimeout, &timeout)?;
        Ok(CanGw {
            socket,
            sequence: 0,
        })
    }

    /// Adds `rule`. Needs CAP_NET_ADMIN and the `can-gw` module.
    pub fn add(&mut self, rule: Rule) -> Result<(), GwError> {
        let op = format!("adding can-gw rule {rule}");
        self.request(GwMessage::Add(rule), NLM_F_REQUEST | NLM_F_ACK, &op)
            .map(drop)
    }

    /// Removes the rule equal to `rule`, and no other.
    pub fn remove(&mut self, rule: Rule) -> Result<(), GwError> {
        if rule.src == 0 || rule.dst == 0 {
            return Err(GwError::Wildcard);
        }
        let op = format!("removing can-gw rule {rule}");
        self.request(GwMessage::Remove(rule), NLM_F_REQUEST | NLM_F_ACK, &op)
            .map(drop)
    }

    /// Every CAN-to-CAN rule on the host, with its counters.
    pub fn list(&mut self) -> Result<Vec<RuleStats>, GwError> {
        let op = "listing can-gw rules";
        let listed = self.request(GwMessage::Dump, NLM_F_REQUEST | NLM_F_DUMP, op)?;
        let mut rules = Vec::new();
        for message in listed {
            match message {
                GwMessage::Listed(stats) => rules.extend(stats),
                GwMessage::Foreign => return Err(GwError::NotLoaded { op: op.to_owned() }),
                _ => {}
            }
        }
        Ok(rules)
    }

    /// Sends one request and reads until its ACK (or error), or until a dump's end.
    fn request(
        &mut self,
        message: GwMessage,
        flags: u16,
        op: &str,
    ) -> Result<Vec<GwMessage>, GwError> {
        let io_error = |source| GwError::Io {
            op: op.to_owned(),
            source,
        };
        self.sequence = self.sequence.wrapping_add(1);
        let bytes = encode(message, flags, self.sequence);
        self.socket.send(&bytes, 0).map_err(io_error)?;

        let mut received = Vec::new();
        loop {
            let (buffer, _) = self.socket.recv_from_full().map_err(io_error)?;
            let replies = replies(&buffer).map_err(|source| GwError::Decode {
                op: op.to_owned(),
                source,
            })?;
            for reply in replies {
                if reply.header.sequence_number != self.sequence {
                    continue; // an answer to an earlier request that gave up
                }
                match reply.payload {
                    NetlinkPayload::Error(error) => match error.code {
                        None => return Ok(received), // the ACK
                        Some(code) if -code.get() == EOPNOTSUPP => {
                            return Err(GwError::NotLoaded { op: op.to_owned() })
                        }
                        Some(_) => {
                            return Err(GwError::Kernel {
                                op: op.to_owned(),
                                source: error.to_io(),
                            })
                        }
                    },
                    NetlinkPayload::Done(_) => return Ok(received),
                    NetlinkPayload::InnerMessage(message) => received.push(message),
                    NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
                    _ => {}
                }
            }
        }
    }
}

/// A [`CanGw`] for async code: each request (or batch of them, [`SharedGw::run`]) runs on
/// tokio's blocking pool, one at a time, so a slow kernel answer never holds a runtime worker.
#[derive(Clone)]
pub struct SharedGw(std::sync::Arc<std::sync::Mutex<CanGw>>);

impl SharedGw {
    pub fn open() -> io::Result<SharedGw> {
        Ok(SharedGw(std::sync::Arc::new(std::sync::Mutex::new(
            CanGw::open()?,
        ))))
    }

    /// Runs `work` with the connection on the blocking pool.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut CanGw) -> Result<T, GwError> + Send + 'static,
    ) -> Result<T, GwError> {
        let gw = self.0.clone();
        tokio::task::spawn_blocking(move || {
            // A panic in an earlier batch leaves the socket as usable as before.
            let mut gw = gw.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut gw)
        })
        .await
        .unwrap_or_else(|joined| {
            Err(GwError::Io {
                op: "a can-gw request".into(),
                source: io::Error::other(joined.to_string()),
            })
        })
    }

    pub async fn list(&self) -> Result<Vec<RuleStats>, GwError> {
        self.run(CanGw::list).await
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn an_add_request_is_the_bytes_of_the_kernel_layout() {
        let rule = Rule {
            src: 5,
            dst: 0x0102_0304,
            flags: flags::ECHO | flags::IIF_TX_OK | flags::CAN_FD,
        };
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            // struct nlmsghdr: length 36, type RTM_NEWROUTE (24), flags REQUEST|ACK (0x5), seq 7, pid 0
            36, 0, 0, 0,  24, 0,  0x05, 0,  7, 0, 0, 0,  0, 0, 0, 0,
            // struct rtcanmsg: AF_CAN (29), CGW_TYPE_CAN_CAN (1), flags ECHO|IIF_TX_OK|FD (0x0d)
            29, 1, 0x0d, 0,
            // nlattr CGW_SRC_IF (9), len 8, ifindex 5
            8, 0, 9, 0,  5, 0, 0, 0,
            // nlattr CGW_DST_IF (10), len 8, ifindex 0x01020304
            8, 0, 10, 0,  4, 3, 2, 1,
        ];
        assert_eq!(
            encode(GwMessage::Add(rule), NLM_F_REQUEST | NLM_F_ACK, 7),
            expected
        );
    }

    #[test]
    fn a_remove_request_differs_only_in_its_type() {
        let rule = Rule {
            src: 2,
            dst: 3,
            flags: flags::ECHO,
        };
        let add = encode(GwMessage::Add(rule), NLM_F_REQUEST | NLM_F_ACK, 1);
        let mut remove = encode(GwMessage::Remove(rule), NLM_F_REQUEST | NLM_F_ACK, 1);
        assert_eq!(&remove[4..6], &[25, 0]); // RTM_DELROUTE
        remove[4] = 24;
        assert_eq!(remove, add);
    }

    #[test]
    fn a_dump_request_is_a_bare_af_can_rtcanmsg() {
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            // length 20, RTM_GETROUTE (26), flags REQUEST|DUMP (0x301), seq 3
            20, 0, 0, 0,  26, 0,  0x01, 0x03,  3, 0, 0, 0,  0, 0, 0, 0,
            29, 0, 0, 0,
        ];
        assert_eq!(
            encode(GwMessage::Dump, NLM_F_REQUEST | NLM_F_DUMP, 3),
            expected
        );
    }

    fn header(message_type: u16) -> NetlinkHeader {
        let mut header = NetlinkHeader::default();
        header.message_type = message_type;
        header
    }

    #[test]
    fn decodes_a_listed_rule_as_the_kernel_writes_it() {
        // As cgw_put_job writes it: counters first, an unknown attribute (CGW_LIM_HOPS, a __u8
        // padded to 4) that must be skipped, then the interfaces.
        #[rustfmt::skip]
        let payload: Vec<u8> = vec![
            29, 1, 0x05, 0,
            8, 0, 7, 0,  100, 0, 0, 0,     // CGW_HANDLED 100
            8, 0, 8, 0,  1, 0, 0, 0,       // CGW_DROPPED 1
            8, 0, 12, 0, 2, 0, 0, 0,       // CGW_DELETED 2
            5, 0, 13, 0, 1, 0, 0, 0,       // CGW_LIM_HOPS 1 (len 5, padded)
            8, 0, 9, 0,  3, 0, 0, 0,       // CGW_SRC_IF 3
            8, 0, 10, 0, 4, 0, 0, 0,       // CGW_DST_IF 4
        ];
        let listed = GwMessage::deserialize(&header(RTM_NEWROUTE), &payload).unwrap();
        let rule = Rule {
            src: 3,
            dst: 4,
            flags: flags::ECHO | flags::IIF_TX_OK,
        };
        let stats = RuleStats {
            rule,
            handled: 100,
            dropped: 1,
            deleted: 2,
            // A hop limit: someone else's rule (vxbus sets none).
            plain: false,
        };
        assert_eq!(listed, GwMessage::Listed(Some(stats)));
    }

    #[test]
    fn encoding_and_decoding_a_listed_rule_round_trip() {
        let stats = RuleStats {
            rule: Rule {
                src: 9,
                dst: 11,
                flags: 0x0d,
            },
            handled: 7,
            dropped: 0,
            deleted: 3,
            plain: true,
        };
        let message = GwMessage::Listed(Some(stats));
        let mut payload = vec![0; message.buffer_len()];
        message.serialize(&mut payload);
        assert_eq!(
            GwMessage::deserialize(&header(RTM_NEWROUTE), &payload).unwrap(),
            message
        );
    }

    #[test]
    fn refuses_malformed_payloads_without_panicking() {
        for payload in [
            &[][..],
            &[29, 1, 0],                            // shorter than an rtcanmsg
            &[29, 1, 0, 0, 8, 0, 9, 0, 3, 0, 0, 0], // no CGW_DST_IF
            &[29, 1, 0, 0, 9, 0, 9, 0, 3, 0, 0, 0], // attribute longer than the payload
            &[29, 1, 0, 0, 3, 0, 9, 0],             // attribute shorter than its header
            &[29, 1, 0, 0, 6, 0, 9, 0, 3, 0, 0, 0, 8, 0, 10, 0, 1, 0, 0, 0], // __u32 of 2 bytes
        ] {
            assert!(
                GwMessage::deserialize(&header(RTM_NEWROUTE), payload).is_err(),
                "{payload:?}"
            );
        }
        assert!(GwMessage::deserialize(&header(RTM_DELROUTE), &[29, 1, 0, 0]).is_err());
        // The last attribute without its padding: read, not over-read.
        let unpadded = [
            29, 1, 0, 0, 8, 0, 9, 0, 3, 0, 0, 0, 8, 0, 10, 0, 4, 0, 0, 0, 5, 0, 13, 0, 1,
        ];
        let listed = GwMessage::deserialize(&header(RTM_NEWROUTE), &unpadded).unwrap();
        assert!(matches!(listed, GwMessage::Listed(Some(s)) if s.rule.dst == 4 && !s.plain));
        // A route of another family (can-gw not loaded) is reported, not refused.
        let ipv4_route = [2, 32, 0, 0, 254, 3, 1, 0];
        assert_eq!(
            GwMessage::deserialize(&header(RTM_NEWROUTE), &ipv4_route).unwrap(),
            GwMessage::Foreign
        );
        // Another gateway type is listed as nothing, not an error.
        assert_eq!(
            GwMessage::deserialize(&header(RTM_NEWROUTE), &[29, 2, 0, 0]).unwrap(),
            GwMessage::Listed(None)
        );
    }

    #[test]
    fn a_dump_datagram_of_several_rules_decodes_and_a_broken_one_is_refused() {
        let stats = |src| RuleStats {
            rule: Rule {
                src,
                dst: 11,
                flags: flags::IIF_TX_OK,
            },
            handled: 1,
            dropped: 2,
            deleted: 3,
            plain: true,
        };
        const NLM_F_MULTI: u16 = 2;
        let mut datagram = encode(GwMessage::Listed(Some(stats(9))), NLM_F_MULTI, 4);
        datagram.extend(encode(GwMessage::Listed(Some(stats(10))), NLM_F_MULTI, 4));
        assert_eq!(
            decode_dump_datagram(&datagram).unwrap(),
            [stats(9), stats(10)]
        );
        for cut in [1, 5, 17, datagram.len() - 1] {
            assert!(
                decode_dump_datagram(&datagram[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // A header claiming 4 GiB, and one claiming 0 bytes.
        let mut huge = datagram.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(decode_dump_datagram(&huge).is_err());
        let mut empty = datagram;
        empty[..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(decode_dump_datagram(&empty).is_err());
    }

    #[test]
    fn removing_a_wildcard_rule_is_refused_before_reaching_the_kernel() {
        let mut gw = CanGw::open().unwrap();
        for rule in [
            Rule {
                src: 0,
                dst: 3,
                flags: 0,
            },
            Rule {
                src: 3,
                dst: 0,
                flags: 0,
            },
        ] {
            assert!(matches!(gw.remove(rule), Err(GwError::Wildcard)));
        }
    }
}
