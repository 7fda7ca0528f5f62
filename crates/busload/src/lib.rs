//! # vxbus-busload: a frame's length on the wire, and a bus's load, as canbusload counts them
//!
//! A virtual bus has no bit rate, but the teams that use vxbus size their real buses by load:
//! the share of each second the frames would keep a physical bus at its declared bit rate busy.
//! This crate counts a frame's bits the way can-utils' `canbusload` counts them
//! ([`frame_bits`], in canbusload's three modes: [`Stuffing`]), and turns the bits of an
//! interval into its load as canbusload does ([`load_percent`]), so that vxbus and
//! `canbusload` agree on the same traffic.
//!
//! The figures are can-utils 2023.03's (Debian's package in the test VM), recorded one frame at
//! a time in each mode, and over seconds of cangen's traffic; the unit tests below hold them.
//! Where that canbusload counts nothing (CAN FD frames in its exact mode), vxbus counts the
//! frame as its default mode does.
//!
//! Owns: that arithmetic (pure functions). Must not touch: sockets or the kernel; the caller
//! hands it what it read.

/// CAN_EFF_FLAG: an extended (29-bit) id.
pub const EFF_FLAG: u32 = 0x8000_0000;
/// CAN_RTR_FLAG: a remote request.
pub const RTR_FLAG: u32 = 0x4000_0000;
const EFF_MASK: u32 = 0x1fff_ffff;
const SFF_MASK: u32 = 0x7ff;

/// How stuff bits are counted (canbusload's options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stuffing {
    /// The stuff bits the frame's own bits cause (`canbusload -e`); CAN FD frames as
    /// [`Stuffing::WorstCase`], which canbusload's exact mode leaves at 0.
    Exact,
    /// A stuff bit for every four bits where stuffing can happen (canbusload's default).
    WorstCase,
    /// None (`canbusload -i`).
    Ignored,
}

/// A frame as the kernel hands it, reduced to what its length depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A classic frame: `id` with its [`EFF_FLAG`] and [`RTR_FLAG`]; `len`, the data length (a
    /// remote request's: the length it asks for); `data`, at most `len` bytes (missing ones
    /// count as zeros, as canbusload counts a remote request's).
    Classic { id: u32, len: u8, data: &'a [u8] },
    /// A CAN FD frame: `id` with its [`EFF_FLAG`], `len` data bytes (0 to 64), `brs` when its
    /// data phase runs at the data bit rate.
    Fd { id: u32, len: u8, brs: bool },
}

/// A frame's bits from the start of frame to the end of the intermission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bits {
    /// Every bit of the frame.
    pub total: u32,
    /// Of those, the bits sent at the data bit rate (a CAN FD frame with BRS; else 0).
    pub data_phase: u32,
}

impl std::ops::AddAssign for Bits {
    fn add_assign(&mut self, other: Bits) {
        self.total = self.total.saturating_add(other.total);
        self.data_phase = self.data_phase.saturating_add(other.data_phase);
    }
}

/// The bit rates a bus declares: the nominal (arbitration) rate, and the data phase's for CAN
/// FD frames with BRS (the nominal one when none is declared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitRates {
    pub nominal: u32,
    pub data: Option<u32>,
}

/// The share of `seconds` that frames of `bits` keep a bus at `rates` busy, in percent:
/// canbusload's formula (data-phase bits at the data rate, the rest at the nominal one), not
/// rounded down to a whole percent as canbusload prints it. 0 for a zero rate or interval.
pub fn load_percent(bits: Bits, rates: BitRates, seconds: f64) -> f64 {
    let nominal = f64::from(rates.nominal);
    let data = rates.data.map_or(nominal, f64::from);
    if nominal <= 0.0 || data <= 0.0 || seconds <= 0.0 {
        return 0.0;
    }
    let arbitration = f64::from(bits.total.saturating_sub(bits.data_phase));
    (arbitration / nominal + f64::from(bits.data_phase) / data) / seconds * 100.0
}

/// The bits `frame` takes on the wire, stuff bits counted as `stuffing` says.
pub fn frame_bits(frame: Frame<'_>, stuffing: Stuffing) -> Bits {
    match frame {
        Frame::Classic { id, len, data } => {
            let len = u32::from(len.min(8));
            let extended = id & EFF_FLAG != 0;
            let total = match stuffing {
                Stuffing::Exact => classic_exact(id, len, data),
                Stuffing::WorstCase => (if extended { 80 } else { 55 }) + 10 * len,
                Stuffing::Ignored => (if extended { 67 } else { 47 }) + 8 * len,
            };
            Bits {
                total,
                data_phase: 0,
            }
        }
        Frame::Fd { id, len, brs } => {
            let len = u32::from(len.min(64));
            let extended = id & EFF_FLAG != 0;
            // Above 16 bytes the CRC has 21 bits instead of 17 (and one more fixed stuff bit).
            let long_crc = len > 16;
            let (base, per_byte, data_base, crc) = match stuffing {
                Stuffing::Exact | Stuffing::WorstCase => {
                    (if extended { 80 } else { 57 }, 10, 28, 5)
                }
                Stuffing::Ignored => (if extended { 64 } else { 46 }, 8, 23, 4),
            };
            let extra = if long_crc { crc } else { 0 };
            Bits {
                total: base + per_byte * len + extra,
                data_phase: if brs {
                    data_base + per_byte * len + extra
                } else {
                    0
                },
            }
        }
    }
}

/// The bits after a classic frame's CRC sequence: CRC delimiter, ACK slot, ACK delimiter (3),
/// end of frame (7), intermission (3).
const CLASSIC_TAIL: u32 = 3 + 7 + 3;

/// A classic frame's bits exactly: the frame built bit by bit from the start of frame to the
/// end of its CRC, the stuff bits those cause, and the fixed tail.
fn classic_exact(id: u32, len: u32, data: &[u8]) -> u32 {
    let remote = u32::from(id & RTR_FLAG != 0);
    let mut bits = BitRun::default();
    bits.push(0, 1); // start of frame
    if id & EFF_FLAG != 0 {
        let id = id & EFF_MASK;
        bits.push(id >> 18, 11); // base id
        bits.push(0b11, 2); // SRR, IDE
        bits.push(id & 0x3ffff, 18); // id extension
        bits.push(remote, 1);
        bits.push(0, 2); // r1, r0
    } else {
        bits.push(id & SFF_MASK, 11);
        bits.push(remote, 1);
        bits.push(0, 2); // IDE, r0
    }
    bits.push(len, 4);
    for at in 0..len as usize {
        bits.push(u32::from(data.get(at).copied().unwrap_or(0)), 8);
    }
    let crc = bits.crc15();
    bits.push(crc, 15);
    bits.0.len() as u32 + bits.stuff_bits() + CLASSIC_TAIL
}

/// A frame's bits in the order they are sent, before stuffing.
#[derive(Default)]
struct BitRun(Vec<bool>);

impl BitRun {
    /// Appends the low `width` bits of `value`, most significant first.
    fn push(&mut self, value: u32, width: u32) {
        for at in (0..width).rev() {
            self.0.push(value >> at & 1 == 1);
        }
    }

    /// CAN's CRC-15 (polynomial 0x4599, from 0) over every bit so far.
    fn crc15(&self) -> u32 {
        let mut crc = 0u32;
        for &bit in &self.0 {
            let feedback = bit ^ (crc >> 14 & 1 == 1);
            crc = (crc << 1) & 0x7fff;
            if feedback {
                crc ^= 0x4599;
            }
        }
        crc
    }

    /// The stuff bits a sender inserts: one of the other value after each five equal bits (the
    /// stuff bit starting the next run), up to and right after the last bit.
    fn stuff_bits(&self) -> u32 {
        let (mut stuffed, mut run, mut last) = (0, 0, None);
        for &bit in &self.0 {
            if Some(bit) == last {
                run += 1;
            } else {
                (last, run) = (Some(bit), 1);
            }
            if run == 5 {
                stuffed += 1;
                (last, run) = (Some(!bit), 1);
            }
        }
        stuffed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame in cansend's notation (`123#DEAD`, `123#R`, `123##1AABB`) and the bits
    /// canbusload 2023.03 counted for it alone: exact (-e), default, ignored (-i), and the
    /// data-phase bits its default and -i modes counted.
    const RECORDED: &[(&str, [u32; 3], [u32; 2])] = &[
        ("123#", [48, 55, 47], [0, 0]),
        ("123#DEAD", [64, 75, 63], [0, 0]),
        ("123#0000000000000000", [125, 135, 111], [0, 0]),
        ("123#FFFFFFFFFFFFFFFF", [124, 135, 111], [0, 0]),
        ("123#AA55AA55AA55AA55", [112, 135, 111], [0, 0]),
        ("000#00", [59, 65, 55], [0, 0]),
        ("7FF#FF", [60, 65, 55], [0, 0]),
        ("12345678#0102030405060708", [140, 160, 131], [0, 0]),
        ("00000000#0000000000000000", [150, 160, 131], [0, 0]),
        ("7FF#R", [50, 55, 47], [0, 0]),
        ("1FFFFFFF#R", [74, 80, 67], [0, 0]),
        // canbusload's exact mode counted 0 for each FD frame: vxbus's is its default's.
        ("123##0112233445566778899AABBCC", [177, 177, 142], [0, 0]),
        ("12345678##100", [90, 90, 72], [38, 31]),
        ("123##0", [57, 57, 46], [0, 0]),
    ];

    fn parse(text: &str) -> (u32, bool, Option<bool>, Vec<u8>) {
        let (id, rest) = text.split_once('#').unwrap();
        let mut raw = u32::from_str_radix(id, 16).unwrap();
        if id.len() == 8 {
            raw |= EFF_FLAG;
        }
        let hex = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        match rest.strip_prefix('#') {
            Some(fd) => (raw, false, Some(&fd[..1] == "1"), hex(&fd[1..])),
            None if rest == "R" => (raw | RTR_FLAG, true, None, vec![]),
            None => (raw, false, None, hex(rest)),
        }
    }

    #[test]
    fn bits_are_canbusloads() {
        for (text, [exact, worst, ignored], [data_worst, data_ignored]) in RECORDED {
            let (id, _, fd, data) = parse(text);
            let frame = match fd {
                Some(brs) => Frame::Fd {
                    id,
                    len: data.len() as u8,
                    brs,
                },
                None => Frame::Classic {
                    id,
                    len: data.len() as u8,
                    data: &data,
                },
            };
            let got = [Stuffing::Exact, Stuffing::WorstCase, Stuffing::Ignored]
                .map(|mode| frame_bits(frame, mode).total);
            assert_eq!(got, [*exact, *worst, *ignored], "{text}");
            let data_phase = [Stuffing::WorstCase, Stuffing::Ignored]
                .map(|mode| frame_bits(frame, mode).data_phase);
            assert_eq!(
                data_phase,
                [*data_worst, *data_ignored],
                "{text}: data phase"
            );
        }
    }

    #[test]
    fn load_is_canbusloads() {
        // One second of cangen's traffic as canbusload 2023.03 summed and printed it, at
        // 500 kbit/s with a 2 Mbit/s data phase: bits, data-phase bits, the % it printed.
        let rates = BitRates {
            nominal: 500_000,
            data: Some(2_000_000),
        };
        for (total, data_phase, printed) in [(66690, 63935, 3), (66690, 0, 13), (11658, 0, 2)] {
            let bits = Bits { total, data_phase };
            let load = load_percent(bits, rates, 1.0);
            assert_eq!(load.floor() as u32, printed, "{bits:?}: {load}");
        }
        // 95 frames of 64 bytes with BRS, summed here, are the first of those seconds.
        let mut sum = Bits::default();
        for _ in 0..95 {
            sum += frame_bits(
                Frame::Fd {
                    id: 0x123,
                    len: 64,
                    brs: true,
                },
                Stuffing::WorstCase,
            );
        }
        assert_eq!(
            sum,
            Bits {
                total: 66690,
                data_phase: 63935
            }
        );
        assert_eq!(load_percent(sum, rates, 0.0), 0.0);
        let nominal_only = BitRates {
            nominal: 500_000,
            data: None,
        };
        assert!((load_percent(sum, nominal_only, 2.0) - 6.669).abs() < 1e-9);
    }

    #[test]
    fn long_fd_frames_have_the_longer_crc() {
        // 64 bytes with BRS: canbusload counted 702 bits (673 in the data phase), -i 562 (539),
        // whatever the data.
        let frame = Frame::Fd {
            id: 0x123,
            len: 64,
            brs: true,
        };
        assert_eq!(
            frame_bits(frame, Stuffing::WorstCase),
            Bits {
                total: 702,
                data_phase: 673
            }
        );
        assert_eq!(
            frame_bits(frame, Stuffing::Ignored),
            Bits {
                total: 562,
                data_phase: 539
            }
        );
    }
}
