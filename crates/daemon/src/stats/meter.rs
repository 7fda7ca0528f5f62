//! The load meter: one CAN_RAW socket, bound to every CAN interface of the host's namespace,
//! read by a thread of its own, that weighs each frame it sees in bits (`vxbus-busload`) and
//! adds them to a tally per interface index.
//!
//! Owns: that socket, its thread and the tallies. Must not touch: which interface belongs to
//! which bus (the sampler in `stats` decides what a tally counts for), or any frame: the socket
//! only reads, and reads nothing it did not get as every other socket does.
//!
//! Why one socket sees each frame of a bus once (the mesh's rules, `vxbus_dataplane::mesh`): a
//! frame from a container arrives on its vxcan host end (received there, and so seen), and
//! can-gw copies it toward the other members' host ends without ECHO (sent there, not seen
//! again). A bus with a host device gets every copy toward it with ECHO, so every frame of that
//! bus (from a container, from a tunnel or plugin writing on it, from a wire) is seen on the host
//! device; the sampler counts that bus on its host device alone. What it costs per frame: the
//! kernel's delivery to one more socket (a clone of the frame), a share of one `recvmmsg` (up to
//! 64 frames a call; the thread sleeps 20 ms whenever it has emptied the socket, so frames are
//! read in batches and a busy bus does not wake it per frame), a lookup under a lock taken once
//! per call, and the bit count of `vxbus-busload` (a classic frame's bits walked once for
//! stuffing).
//! Frames of CAN interfaces that no bus owns are read and tallied too, then thrown away by the
//! sampler each second: their cost is the same.
//!
//! The socket cannot hold back the bus: when it falls behind, the kernel drops frames from its
//! queue, not from the bus, and says how many (SO_RXQ_OVFL): the meter reports them as missed.

use std::{
    collections::HashMap,
    io,
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::Duration,
};

use nix::sys::socket::{setsockopt, sockopt};
use socketcan::{CanFdSocket, Socket};
use vxbus_busload::{frame_bits, Frame, Stuffing};

/// The socket's receive buffer (the kernel doubles it): thousands of frames at the kernel's
/// charge of about 1 KiB each, far more than a busy bus brings while the thread sleeps.
const RECEIVE_BUFFER: usize = 8 << 20;
/// How long the thread sleeps once it has emptied the socket: frames wait in the socket's
/// queue meanwhile, so the thread wakes 50 times a second at most, not once per frame, and
/// reads them in batches (the bus never waits for it: the kernel queues, or drops and counts).
const POLL: Duration = Duration::from_millis(20);
/// How long the thread waits after a read error before it tries again.
const RETRY: Duration = Duration::from_millis(500);

/// Frames and their bits, as counted on one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    pub frames: u64,
    pub bits: u64,
    /// Of `bits`, those of CAN FD data phases with BRS (sent at the data bit rate).
    pub data_phase_bits: u64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.frames = self.frames.saturating_add(other.frames);
        self.bits = self.bits.saturating_add(other.bits);
        self.data_phase_bits = self.data_phase_bits.saturating_add(other.data_phase_bits);
    }
}

/// The running meter. Dropping it stops its thread.
pub struct Meter {
    tallies: Arc<Mutex<HashMap<u32, Tally>>>,
    missed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Meter {
    /// Opens the socket and starts reading.
    pub fn start() -> io::Result<Meter> {
        let socket = CanFdSocket::open_iface(0)?;
        // SO_RCVBUFFORCE passes the host's rmem_max (the daemon has CAP_NET_ADMIN); if the
        // kernel refuses it, the default buffer only makes misses likelier, and they are counted.
        let _ = setsockopt(&socket, sockopt::RcvBufForce, &RECEIVE_BUFFER);
        setsockopt(&socket, sockopt::RxqOvfl, &1).map_err(io::Error::from)?;
        socket.set_nonblocking(true)?;
        let tallies = Arc::new(Mutex::new(HashMap::new()));
        let missed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("load meter".into())
            .spawn({
                let (tallies, missed, stop) = (tallies.clone(), missed.clone(), stop.clone());
                move || read(&socket, &tallies, &missed, &stop)
            })?;
        Ok(Meter {
            tallies,
            missed,
            stop,
            thread: Some(thread),
        })
    }

    /// The tallies since the last call, by interface index, and the frames the socket missed
    /// since it opened.
    pub fn take(&self) -> (HashMap<u32, Tally>, u64) {
        let tallies = std::mem::take(&mut *self.tallies.lock().unwrap_or_else(|e| e.into_inner()));
        (tallies, self.missed.load(Relaxed))
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read(
    socket: &CanFdSocket,
    tallies: &Mutex<HashMap<u32, Tally>>,
    missed: &AtomicU64,
    stop: &AtomicBool,
) {
    let mut batch = Batch::new();
    let mut failing = false;
    while !stop.load(Relaxed) {
        match batch.receive(socket.as_raw_fd()) {
            Ok(count) => {
                failing = false;
                if count < BATCH {
                    // The socket is empty: let frames gather.
                    std::thread::sleep(POLL);
                }
                let mut tallies = tallies.lock().unwrap_or_else(|e| e.into_inner());
                for got in batch.received(count) {
                    if let Some(dropped) = got.dropped {
                        missed.fetch_max(u64::from(dropped), Relaxed);
                    }
                    let Some(bits) = weigh(got.bytes) else {
                        continue;
                    };
                    tallies.entry(got.ifindex).or_default().add(Tally {
                        frames: 1,
                        bits: u64::from(bits.total),
                        data_phase_bits: u64::from(bits.data_phase),
                    });
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                std::thread::sleep(POLL)
            }
            Err(err) => {
                if !failing {
                    tracing::error!("load meter: reading its CAN socket: {err}; bus load is not counted while this lasts");
                    failing = true;
                }
                std::thread::sleep(RETRY);
            }
        }
    }
}

/// The size of a classic frame (struct can_frame) and of an FD frame (struct canfd_frame).
const CLASSIC_FRAME: usize = 16;
const FD_FRAME: usize = 72;
/// CANFD_BRS in a canfd_frame's flags.
const BRS: u8 = 0x01;
/// CAN_ERR_FLAG: an error frame (never subscribed to: the socket's error mask is 0).
const ERR_FLAG: u32 = 0x2000_0000;

/// A frame's bits as `canbusload -e` counts them (FD frames as its default mode does), from
/// the bytes the socket gave; `None` for what is not a whole frame.
fn weigh(bytes: &[u8]) -> Option<vxbus_busload::Bits> {
    let id = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
    let len = *bytes.get(4)?;
    if id & ERR_FLAG != 0 {
        return None;
    }
    let frame = match bytes.len() {
        CLASSIC_FRAME => Frame::Classic {
            id,
            len,
            data: bytes.get(8..8 + usize::from(len.min(8)))?,
        },
        FD_FRAME => Frame::Fd {
            id,
            len,
            brs: bytes.get(5)? & BRS != 0,
        },
        _ => return None,
    };
    Some(frame_bits(frame, Stuffing::Exact))
}

/// Frames taken per `recvmmsg`: one call and one lock serve this many.
const BATCH: usize = 64;
/// Room for one control message of a u32 (SO_RXQ_OVFL) and then some, as u64s: the buffer must
/// be aligned as a cmsghdr.
const CONTROL_WORDS: usize = 8;

/// The buffers of one `recvmmsg`: a frame, its source address and its control messages per slot.
struct Batch {
    frames: [[u8; FD_FRAME]; BATCH],
    addresses: [libc::sockaddr_can; BATCH],
    controls: [[u64; CONTROL_WORDS]; BATCH],
    iovecs: [libc::iovec; BATCH],
    headers: [libc::mmsghdr; BATCH],
}

/// One frame of a batch, read.
struct Received<'a> {
    bytes: &'a [u8],
    ifindex: u32,
    /// The socket's drop count (SO_RXQ_OVFL), when the kernel sent it.
    dropped: Option<u32>,
}

impl Batch {
    fn new() -> Box<Batch> {
        // SAFETY: all-zero is a valid value of each of these plain C structs of integers and
        // (null) pointers; the pointers are set before each call, in `receive`.
        Box::new(unsafe { std::mem::zeroed() })
    }

    /// Takes up to [`BATCH`] frames waiting on the CAN socket `fd` (non-blocking); how many.
    /// Written with libc: neither socketcan nor nix hands out a CAN socket's source addresses
    /// with their control messages.
    fn receive(&mut self, fd: libc::c_int) -> io::Result<usize> {
        for slot in 0..BATCH {
            self.iovecs[slot] = libc::iovec {
                iov_base: self.frames[slot].as_mut_ptr().cast(),
                iov_len: FD_FRAME,
            };
            let header = &mut self.headers[slot].msg_hdr;
            header.msg_name = (&raw mut self.addresses[slot]).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_can>() as libc::socklen_t;
            header.msg_iov = &raw mut self.iovecs[slot];
            header.msg_iovlen = 1;
            header.msg_control = self.controls[slot].as_mut_ptr().cast();
            header.msg_controllen = std::mem::size_of::<[u64; CONTROL_WORDS]>() as _;
            header.msg_flags = 0;
            self.headers[slot].msg_len = 0;
        }
        // SAFETY: every pointer in the headers points into `self`, which is boxed and borrowed
        // mutably for the call, with its true length; the kernel writes within those lengths
        // and at most BATCH headers. The socket is non-blocking: no frame is EAGAIN.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                0,
                std::ptr::null_mut(),
            )
        };
        usize::try_from(n)
            .map(|n| n.min(BATCH))
            .map_err(|_| io::Error::last_os_error())
    }

    /// The first `count` frames of the last [`Batch::receive`].
    fn received(&self, count: usize) -> impl Iterator<Item = Received<'_>> {
        (0..count.min(BATCH)).map(move |slot| {
            let header = &self.headers[slot];
            let len = usize::try_from(header.msg_len).unwrap_or(0);
            Received {
                // A frame larger than the buffer (a CAN XL frame) is cut short and flagged:
                // `weigh` takes it for no frame.
                bytes: if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    &[]
                } else {
                    self.frames[slot].get(..len).unwrap_or(&[])
                },
                ifindex: u32::try_from(self.addresses[slot].can_ifindex).unwrap_or(0),
                dropped: rxq_overflow(&header.msg_hdr),
            }
        })
    }
}

/// The SO_RXQ_OVFL count among the control messages `message` holds, if any.
fn rxq_overflow(message: &libc::msghdr) -> Option<u32> {
    let mut dropped = None;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled, within the length
    // it set in `message` (msg_controllen); the SO_RXQ_OVFL payload is a u32, read unaligned.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SO_RXQ_OVFL
            {
                dropped = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(header).cast::<u32>(),
                ));
            }
            header = libc::CMSG_NXTHDR(message, header);
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_weighed_from_the_kernels_layout() {
        // 123#1122 as a can_frame: id, len 2, padding, data.
        let mut classic = [0u8; CLASSIC_FRAME];
        classic[..4].copy_from_slice(&0x123u32.to_ne_bytes());
        classic[4] = 2;
        classic[8] = 0x11;
        classic[9] = 0x22;
        let expected = frame_bits(
            Frame::Classic {
                id: 0x123,
                len: 2,
                data: &[0x11, 0x22],
            },
            Stuffing::Exact,
        );
        assert_eq!(weigh(&classic), Some(expected));
        // An FD frame with BRS: its data phase counts.
        let mut fd = [0u8; FD_FRAME];
        fd[..4].copy_from_slice(&(0x1234_5678 | vxbus_busload::EFF_FLAG).to_ne_bytes());
        fd[4] = 64;
        fd[5] = BRS;
        let bits = weigh(&fd).unwrap();
        assert!(
            bits.data_phase > 0 && bits.total > bits.data_phase,
            "{bits:?}"
        );
        // Error frames, and anything not a whole frame, weigh nothing.
        let mut error = classic;
        error[..4].copy_from_slice(&ERR_FLAG.to_ne_bytes());
        assert_eq!(weigh(&error), None);
        assert_eq!(weigh(&classic[..10]), None);
        assert_eq!(weigh(&[]), None);
        // A length beyond 8 in a classic frame reads only the 8 data bytes there are.
        classic[4] = 15;
        assert!(weigh(&classic).is_some());
    }
}
