//! The tunnel's side of the bus: one CAN socket on the bus's host interface. Frames it writes
//! reach every other member through the bus's can-gw rules; it reads what the others send, but
//! never its own frames (no CAN_RAW_RECV_OWN_MSGS), so a frame from a peer is not read back.
//!
//! Owns: converting between SocketCAN frames and [`Frame`], and what a failed read means
//! ([`Flow`]). Must not touch the peers.

use std::{io, time::Duration};

use socketcan::{
    frame::FdFlags, tokio::CanFdSocket, CanAnyFrame, CanDataFrame, CanFdFrame, CanRemoteFrame,
    EmbeddedFrame, ExtendedId, Frame as _, Id, SocketOptions, StandardId,
};

use crate::{
    stats::TunnelCounters,
    tunnel::Every,
    wire::{Frame, CAN_EFF_FLAG},
};

pub(crate) struct BusSocket {
    socket: CanFdSocket,
}

impl BusSocket {
    pub fn open(interface: &str) -> io::Result<BusSocket> {
        let socket = CanFdSocket::open(interface)?;
        // A burst on the bus must wait in the socket while the tunnel sends datagrams, not be
        // dropped by the kernel: the default buffer holds a few hundred frames.
        let size = crate::RECEIVE_BUFFER_BYTES;
        if socket
            .set_socket_option(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size)
            .is_err()
        {
            let _ = socket.set_socket_option(libc::SOL_SOCKET, libc::SO_RCVBUF, &size);
        }
        Ok(BusSocket { socket })
    }

    /// The next frame from the bus; `None` for one the tunnel does not carry (an error frame).
    pub async fn read(&self) -> io::Result<Option<Frame>> {
        Ok(from_socketcan(&self.socket.read_frame().await?))
    }

    /// A frame if one is waiting: `Err` with `WouldBlock` if none.
    pub fn try_read(&self) -> io::Result<Option<Frame>> {
        Ok(from_socketcan(&self.socket.try_read_frame()?))
    }

    pub async fn write(&self, frame: &Frame) -> io::Result<()> {
        let frame = to_socketcan(frame)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a CAN frame"))?;
        self.socket.write_frame(&frame).await
    }

    /// Writes a frame from a far end to the bus (counted in `counters`): whether it may go on
    /// to the other far ends. A frame the bus does not carry (CAN FD on a classic bus: the
    /// kernel answers EINVAL) goes nowhere; one the bus could not take now (a full queue) still
    /// goes to the others.
    pub async fn write_from_far_end(&self, frame: &Frame, counters: &TunnelCounters) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        match self.write(frame).await {
            Ok(()) => {
                counters.bus_tx_frames.fetch_add(1, Relaxed);
                true
            }
            Err(err) => {
                counters.bus_tx_errors.fetch_add(1, Relaxed);
                let not_carried = err.kind() == io::ErrorKind::InvalidInput
                    || err.raw_os_error() == Some(libc::EINVAL);
                !not_carried
            }
        }
    }
}

/// What a tunnel does after a read from the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read on.
    Go,
    /// The read failed: wait, then read again.
    Pause,
    /// The interface is gone: the tunnel ends, and the daemon's check starts it again once the
    /// interface is back.
    Gone,
}

/// What a failed read of the bus means.
pub(crate) async fn bus_failed(name: &str, err: &std::io::Error, log: &mut Every) -> Flow {
    if err.raw_os_error() == Some(libc::ENODEV) {
        tracing::error!(
            "network {name}: tunnel: the bus's interface is gone ({err}); the tunnel stops"
        );
        return Flow::Gone;
    }
    log.warn(name, format_args!("reading the bus failed: {err}"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    Flow::Pause
}

fn from_socketcan(frame: &CanAnyFrame) -> Option<Frame> {
    let frame = match frame {
        CanAnyFrame::Normal(f) => Frame::classic(f.id_word(), f.data()),
        CanAnyFrame::Remote(f) => Frame::remote(f.id_word(), u8::try_from(f.dlc()).ok()?),
        CanAnyFrame::Fd(f) => Frame::fd(f.id_word(), f.flags().bits(), f.data()),
        CanAnyFrame::Error(_) => return None,
    };
    frame.ok()
}

fn to_socketcan(frame: &Frame) -> Option<CanAnyFrame> {
    let id = if frame.id_word() & CAN_EFF_FLAG != 0 {
        Id::Extended(ExtendedId::new(frame.id())?)
    } else {
        Id::Standard(StandardId::new(u16::try_from(frame.id()).ok()?)?)
    };
    Some(match frame.fd_flags() {
        Some(flags) => {
            CanFdFrame::with_flags(id, frame.data(), FdFlags::from_bits_truncate(flags))?.into()
        }
        None if frame.is_remote() => {
            CanRemoteFrame::new_remote(id, usize::from(frame.len()))?.into()
        }
        None => CanDataFrame::new(id, frame.data())?.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CAN_RTR_FLAG;

    #[test]
    fn frames_convert_both_ways() {
        let frames = [
            Frame::classic(0x123, &[0x11, 0x22]).unwrap(),
            Frame::classic(CAN_EFF_FLAG | 0x1fff_ffff, &[0xde, 0xad]).unwrap(),
            Frame::classic(CAN_EFF_FLAG | 1, &[1]).unwrap(),
            Frame::remote(CAN_RTR_FLAG | 0x321, 8).unwrap(),
            Frame::fd(0x1a0, 0x05, &[7; 12]).unwrap(),
        ];
        for frame in frames {
            let back = from_socketcan(&to_socketcan(&frame).unwrap()).unwrap();
            // socketcan sets FDF on every FD frame, as the kernel does on receipt.
            let expected = match frame.fd_flags() {
                Some(flags) => Frame::fd(frame.id_word(), flags | 0x04, frame.data()).unwrap(),
                None => frame,
            };
            assert_eq!(back, expected);
        }
    }
}
