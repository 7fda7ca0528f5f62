//! # vxbus-lin: LIN as vxbus sees it
//!
//! The words of a LIN bus that vxbus's LIN plugins share, whatever the hardware: identifiers
//! ([`LinId`], 0 to 63), the node's role ([`Role`]), the checksum model ([`Checksum`]), a frame
//! seen on the bus ([`LinFrame`] with its [`FrameFlags`]), and LIN description files
//! ([`ldf`]: a parser whose every refusal names the line).
//!
//! Owns: LIN's types and LDFs. Must not touch: adapters, their libraries (Kvaser's are behind
//! the `kvaser-canlib` crate, which uses these types), CAN sockets or files: callers hand LDF
//! text in.

use std::fmt;

pub mod ldf;

/// A node's role on the LIN bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Slave,
}

/// The LIN checksum model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// LIN 1.x: over the data bytes only.
    Classic,
    /// LIN 2.x: over the protected identifier and the data.
    Enhanced,
}

/// A LIN identifier, 0 to 63.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinId(u8);

impl LinId {
    pub fn new(id: u32) -> Option<LinId> {
        (id <= 63).then_some(LinId(id as u8))
    }
    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for LinId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02X}", self.0)
    }
}

/// What is known of a frame read from the bus: who sent it and what went wrong. The bits are
/// Kvaser LINlib's `LIN_*` message flags, the de-facto values of LIN tooling (and what a status
/// frame reports, shifted); `kvaser-canlib` checks they equal its bindings'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameFlags(pub u32);

impl FrameFlags {
    /// This node transmitted the frame (or its response).
    pub const TX: u32 = 1;
    /// The frame was received from another node.
    pub const RX: u32 = 2;
    pub const WAKEUP: u32 = 4;
    /// A header that got no response.
    pub const NO_DATA: u32 = 8;
    pub const CHECKSUM_ERROR: u32 = 16;
    pub const PARITY_ERROR: u32 = 32;
    pub const SYNC_ERROR: u32 = 64;
    pub const BIT_ERROR: u32 = 128;

    pub fn transmitted(self) -> bool {
        self.0 & Self::TX != 0
    }
    pub fn no_data(self) -> bool {
        self.0 & Self::NO_DATA != 0
    }
    pub fn wakeup(self) -> bool {
        self.0 & Self::WAKEUP != 0
    }
    /// The errors the frame carries, by name (empty if none).
    pub fn errors(self) -> Vec<&'static str> {
        [
            (Self::NO_DATA, "no data"),
            (Self::CHECKSUM_ERROR, "checksum"),
            (Self::PARITY_ERROR, "parity"),
            (Self::SYNC_ERROR, "sync"),
            (Self::BIT_ERROR, "bit"),
        ]
        .into_iter()
        .filter(|(bit, _)| self.0 & bit != 0)
        .map(|(_, name)| name)
        .collect()
    }
    /// The error bits alone (`NO_DATA` 8 to `BIT_ERROR` 128), shifted down to 1 to 16.
    pub fn error_bits(self) -> u8 {
        ((self.0 >> 3) & 0x1F) as u8
    }
}

/// A frame seen on the LIN bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinFrame {
    pub id: u32,
    pub data: Vec<u8>,
    pub flags: FrameFlags,
    /// When it was seen, in milliseconds (the adapter's clock).
    pub timestamp_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lin_ids_are_0_to_63() {
        assert_eq!(LinId::new(63).map(LinId::get), Some(63));
        assert_eq!(LinId::new(64), None);
        assert_eq!(LinId::new(5).unwrap().to_string(), "0x05");
    }

    #[test]
    fn frame_flags_name_their_errors() {
        let flags =
            FrameFlags(FrameFlags::RX | FrameFlags::CHECKSUM_ERROR | FrameFlags::PARITY_ERROR);
        assert_eq!(flags.errors(), ["checksum", "parity"]);
        assert_eq!(flags.error_bits(), 2 | 4);
        assert!(!flags.transmitted());
        assert!(FrameFlags(FrameFlags::TX).errors().is_empty());
    }
}
