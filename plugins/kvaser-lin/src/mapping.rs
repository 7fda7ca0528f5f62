//! How CAN frames on a vxbus bus and LIN frames on the adapter map onto each other: a pure
//! function each way, so the plugin's loops only move frames and the rules are tested here.
//!
//! Owns: the mapping's rules (below, and in the README). Must not touch sockets or adapters.
//!
//! - LIN identifier N (0 to 63) is CAN standard identifier N, both ways. Other CAN frames
//!   (extended identifiers, identifiers above 63, more than 8 data bytes) are not LIN's.
//! - Master: a CAN data frame publishes its data for that LIN id (header and response by the
//!   master); a CAN frame with no data (DLC 0) or a remote request sends the header only, and
//!   the slave's response comes back onto the CAN bus.
//! - Slave: a CAN data frame sets the response the adapter gives when the master sends that
//!   header; a frame with no data (or a remote request) withdraws it.
//! - LIN frames the adapter sees from other nodes go onto the CAN bus with their data; frames it
//!   transmitted itself do not (their data came from the bus). A LIN frame with an error
//!   (no response, checksum, parity, sync, bit) becomes a status frame instead: CAN identifier
//!   `status_id`, data `[LIN id, error bits, errors so far (u32, little-endian)]`, error bits
//!   1 no data, 2 checksum, 4 parity, 8 sync, 16 bit.

use vxbus_lin::{LinFrame, LinId, Role};

/// What a CAN frame from the bus asks of the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToLin {
    /// Master: header and this response.
    Publish(LinId, Vec<u8>),
    /// Master: header only; the slave answers.
    Header(LinId),
    /// Slave: answer this header with this data from now on.
    Respond(LinId, Vec<u8>),
    /// Slave: stop answering this header.
    Withdraw(LinId),
    /// Not a LIN frame; why, for a debug log.
    NotLin(&'static str),
}

/// A CAN frame as the mapping sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanIn<'a> {
    pub id: u32,
    pub extended: bool,
    pub remote: bool,
    pub data: &'a [u8],
}

/// The adapter's part in what a CAN frame from the bus asks.
pub fn to_lin(role: Role, frame: CanIn) -> ToLin {
    if frame.extended {
        return ToLin::NotLin("extended identifier");
    }
    let Some(id) = LinId::new(frame.id) else {
        return ToLin::NotLin("identifier above 63");
    };
    if frame.data.len() > 8 {
        return ToLin::NotLin("more than 8 data bytes");
    }
    let no_data = frame.remote || frame.data.is_empty();
    match (role, no_data) {
        (Role::Master, true) => ToLin::Header(id),
        (Role::Master, false) => ToLin::Publish(id, frame.data.to_vec()),
        (Role::Slave, true) => ToLin::Withdraw(id),
        (Role::Slave, false) => ToLin::Respond(id, frame.data.to_vec()),
    }
}

/// A CAN frame for the bus: a standard identifier and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanOut {
    pub id: u16,
    pub data: Vec<u8>,
}

/// What goes onto the CAN bus for a frame the adapter read; `errors` counts error frames so
/// far, this one included. A frame whose identifier is not a LIN one (above 63: the adapter's
/// library said so, not LIN) or that carries more than 8 bytes goes nowhere.
pub fn to_can(frame: &LinFrame, status_id: u16, errors: u32) -> Option<CanOut> {
    if frame.flags.wakeup() || frame.data.len() > 8 {
        return None;
    }
    let id = LinId::new(frame.id)?;
    let bits = frame.flags.error_bits();
    if bits != 0 {
        let mut data = vec![id.get(), bits];
        data.extend_from_slice(&errors.to_le_bytes());
        return Some(CanOut {
            id: status_id,
            data,
        });
    }
    if frame.flags.transmitted() {
        return None;
    }
    Some(CanOut {
        id: id.get().into(),
        data: frame.data.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vxbus_lin::FrameFlags;

    fn can(id: u32, data: &[u8]) -> CanIn<'_> {
        CanIn {
            id,
            extended: false,
            remote: false,
            data,
        }
    }

    fn lin(n: u32) -> LinId {
        LinId::new(n).unwrap()
    }

    #[test]
    fn master_publishes_data_and_sends_headers_for_empty_frames() {
        assert_eq!(
            to_lin(Role::Master, can(0x10, &[1, 2])),
            ToLin::Publish(lin(0x10), vec![1, 2])
        );
        assert_eq!(
            to_lin(Role::Master, can(0x20, &[])),
            ToLin::Header(lin(0x20))
        );
        let remote = CanIn {
            remote: true,
            ..can(0x21, &[])
        };
        assert_eq!(to_lin(Role::Master, remote), ToLin::Header(lin(0x21)));
    }

    #[test]
    fn slave_sets_and_withdraws_responses() {
        assert_eq!(
            to_lin(Role::Slave, can(5, &[9])),
            ToLin::Respond(lin(5), vec![9])
        );
        assert_eq!(to_lin(Role::Slave, can(5, &[])), ToLin::Withdraw(lin(5)));
    }

    #[test]
    fn frames_that_are_not_lin() {
        assert_eq!(
            to_lin(Role::Master, can(64, &[1])),
            ToLin::NotLin("identifier above 63")
        );
        let extended = CanIn {
            extended: true,
            ..can(1, &[1])
        };
        assert_eq!(
            to_lin(Role::Master, extended),
            ToLin::NotLin("extended identifier")
        );
        assert_eq!(
            to_lin(Role::Slave, can(1, &[0; 12])),
            ToLin::NotLin("more than 8 data bytes")
        );
    }

    fn frame(id: u32, data: &[u8], flags: u32) -> LinFrame {
        LinFrame {
            id,
            data: data.to_vec(),
            flags: FrameFlags(flags),
            timestamp_ms: 0,
        }
    }

    #[test]
    fn responses_from_other_nodes_go_onto_the_bus_our_own_do_not() {
        let answer = frame(0x20, &[1, 2, 3], FrameFlags::RX);
        assert_eq!(
            to_can(&answer, 0x7F0, 0),
            Some(CanOut {
                id: 0x20,
                data: vec![1, 2, 3]
            })
        );
        assert_eq!(to_can(&frame(0x10, &[1], FrameFlags::TX), 0x7F0, 0), None);
        assert_eq!(
            to_can(
                &frame(0, &[], FrameFlags::RX | FrameFlags::WAKEUP),
                0x7F0,
                0
            ),
            None
        );
    }

    #[test]
    fn errors_become_status_frames() {
        let bad = frame(0x21, &[5], FrameFlags::RX | FrameFlags::CHECKSUM_ERROR);
        assert_eq!(
            to_can(&bad, 0x7F0, 3),
            Some(CanOut {
                id: 0x7F0,
                data: vec![0x21, 2, 3, 0, 0, 0]
            })
        );
        let silent = frame(0x22, &[], FrameFlags::RX | FrameFlags::NO_DATA);
        assert_eq!(to_can(&silent, 0x100, 1).unwrap().data[..2], [0x22, 1]);
        let all = FrameFlags(
            FrameFlags::NO_DATA
                | FrameFlags::CHECKSUM_ERROR
                | FrameFlags::PARITY_ERROR
                | FrameFlags::SYNC_ERROR
                | FrameFlags::BIT_ERROR,
        );
        assert_eq!(all.error_bits(), 31);
    }

    /// What the adapter's library reports is not trusted to be LIN: an identifier above 63 (a
    /// CAN identifier above 0x7FF panicked the plugin) or more than 8 bytes goes nowhere.
    #[test]
    fn frames_that_are_not_lin_are_not_put_on_the_bus() {
        for id in [64, 0x7FF, 0x1234, u32::MAX] {
            assert_eq!(
                to_can(&frame(id, &[1], FrameFlags::RX), 0x7F0, 0),
                None,
                "{id}"
            );
            let bad = frame(id, &[], FrameFlags::RX | FrameFlags::NO_DATA);
            assert_eq!(to_can(&bad, 0x7F0, 1), None, "{id}");
        }
        assert_eq!(to_can(&frame(5, &[0; 9], FrameFlags::RX), 0x7F0, 0), None);
    }
}
