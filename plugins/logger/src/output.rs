//! The logger's file formats: candump log lines (what `candump -l` writes and `canplayer`
//! replays) and pcapng with the SocketCAN link type (what Wireshark and tshark open), each
//! frame encoded as one record.
//!
//! Owns: the bytes of each format. Must not touch sockets, settings or rotation (the recorder
//! in `main.rs` decides when a file ends; [`Output::open`] starts each file whole).

use std::{
    borrow::Cow,
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    time::{Duration, SystemTime},
};

use pcap_file::{
    pcapng::{
        blocks::{
            enhanced_packet::EnhancedPacketBlock,
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
        },
        PcapNgWriter,
    },
    DataLink,
};
use socketcan::{
    frame::{FdFlags, CAN_ERR_FLAG},
    CanAnyFrame, EmbeddedFrame, Frame, Id,
};

/// The file format a network's frames are recorded in (`-o plugin.format=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Candump,
    Pcapng,
}

impl Format {
    /// The values `plugin.format` takes, in the schema's order.
    pub const NAMES: [&'static str; 2] = ["candump", "pcapng"];

    /// The format named `name`; the empty name is the default, candump.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "" | "candump" => Some(Format::Candump),
            "pcapng" => Some(Format::Pcapng),
            _ => None,
        }
    }

    /// The file name's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Candump => "log",
            Format::Pcapng => "pcapng",
        }
    }
}

/// One open recording file.
pub enum Output {
    Candump(BufWriter<File>),
    /// Each block is encoded whole into the encoder's vector, then written to the file in one
    /// piece: the buffered file then only ever ends between blocks, also when the logger is
    /// killed.
    Pcapng {
        encoder: PcapNgWriter<Vec<u8>>,
        file: BufWriter<File>,
    },
}

/// The SocketCAN link type's header before the payload: CAN id with its flags (big-endian), the
/// payload length, the FD flags, two reserved bytes.
const SOCKETCAN_HEADER: usize = 8;
/// Payload bytes kept per frame: what a capture on a SocketCAN interface keeps (the kernel's
/// `struct can_frame` and `struct canfd_frame`), so that readers that tell FD frames by their
/// length (72 bytes) read them too.
const CLASSIC_PAYLOAD: usize = 8;
const FD_PAYLOAD: usize = 64;

impl Output {
    /// Opens `path` for appending in `format`; a pcapng file gets a section header and the
    /// interface `iface` first, so each run of the logger appends a whole section that readers
    /// take on its own (after cutting off a block the last run left half written). Returns the
    /// bytes written, on disk already.
    pub fn open(format: Format, path: &Path, iface: &str) -> Result<(Output, u64), String> {
        if format == Format::Pcapng {
            match trim_partial_block(path) {
                Ok(0) => {}
                Ok(cut) => eprintln!(
                    "{}: cut off {cut} bytes of an unfinished block",
                    path.display()
                ),
                Err(err) => return Err(format!("reading {}: {err}", path.display())),
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(BufWriter::new)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match format {
            Format::Candump => Ok((Output::Candump(file), 0)),
            Format::Pcapng => {
                let failed = |e: pcap_file::PcapError| format!("writing {}: {e}", path.display());
                let mut encoder = PcapNgWriter::new(Vec::new()).map_err(failed)?;
                let interface = InterfaceDescriptionBlock {
                    linktype: DataLink::CAN_SOCKETCAN,
                    snaplen: (SOCKETCAN_HEADER + FD_PAYLOAD) as u32,
                    options: vec![
                        InterfaceDescriptionOption::IfName(Cow::Owned(iface.to_owned())),
                        // 10^-6 s: microseconds, pcapng's default, said outright.
                        InterfaceDescriptionOption::IfTsResol(6),
                    ],
                };
                encoder.write_pcapng_block(interface).map_err(failed)?;
                let header = encoder.get_mut();
                let written = header.len() as u64;
                file.write_all(header)
                    .and_then(|()| file.flush())
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
                header.clear();
                Ok((Output::Pcapng { encoder, file }, written))
            }
        }
    }

    /// `frame`, seen at `when` on `iface`, as one record of this file's format: encoded once,
    /// so that rotation can weigh it before it is [appended](Output::append) (to this file or
    /// the next one of the same format).
    pub fn encode(
        &mut self,
        when: SystemTime,
        iface: &str,
        frame: &CanAnyFrame,
    ) -> Result<Vec<u8>, String> {
        match self {
            Output::Candump(_) => Ok(candump_line(when, iface, frame).into_bytes()),
            Output::Pcapng { encoder, .. } => {
                let since = when
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                let data = socketcan_packet(frame);
                let block = EnhancedPacketBlock {
                    interface_id: 0,
                    // pcap-file writes the Duration's nanosecond count as the block's count of
                    // time units, which the interface declares microseconds (if_tsresol 6): so
                    // the count of microseconds goes in as nanoseconds.
                    timestamp: Duration::from_nanos(since.as_micros() as u64),
                    original_len: data.len() as u32,
                    data: Cow::Owned(data),
                    options: vec![],
                };
                encoder
                    .write_pcapng_block(block)
                    .map_err(|e| e.to_string())?;
                Ok(std::mem::take(encoder.get_mut()))
            }
        }
    }

    /// Appends a record from [`encode`](Output::encode), in one piece.
    pub fn append(&mut self, record: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Candump(file) | Output::Pcapng { file, .. } => file.write_all(record),
        }
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Candump(file) => file.flush(),
            Output::Pcapng { file, .. } => file.flush(),
        }
    }
}

/// Cuts off the end of the pcapng file at `path` if it is a block cut short (a logger killed
/// while writing): the blocks before it are walked by their lengths, in each section's byte
/// order. A file that is not pcapng, or whose blocks do not add up before its end, is left as it
/// is. Returns the bytes cut off.
fn trim_partial_block(path: &Path) -> std::io::Result<u64> {
    /// A section header block's type, the same in either byte order.
    const SECTION_HEADER: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    const LITTLE_ENDIAN_MAGIC: [u8; 4] = [0x4d, 0x3c, 0x2b, 0x1a];
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let (mut at, mut little) = (0usize, true);
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 12) else {
            break; // not even a block's head: cut short
        };
        if head[..4] == SECTION_HEADER {
            little = head[8..12] == LITTLE_ENDIAN_MAGIC;
        } else if at == 0 {
            return Ok(0); // not pcapng: not ours to cut
        }
        let length = [head[4], head[5], head[6], head[7]];
        let length = if little {
            u32::from_le_bytes(length)
        } else {
            u32::from_be_bytes(length)
        } as usize;
        if length < 12 || length % 4 != 0 {
            return Ok(0); // damaged before its end: left alone
        }
        if at + length > bytes.len() {
            break; // the last block, cut short
        }
        at += length;
    }
    if at == 0 || at == bytes.len() {
        return Ok(0);
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(at as u64)?;
    Ok((bytes.len() - at) as u64)
}

/// One line of a candump log: `(SECONDS.MICROS) IFACE ID#DATA`, FD frames as `ID##FLAGSDATA`,
/// remote requests as `ID#R`.
pub fn candump_line(when: SystemTime, iface: &str, frame: &CanAnyFrame) -> String {
    let since = when
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let id = |id: Id| match id {
        Id::Standard(id) => format!("{:03X}", id.as_raw()),
        Id::Extended(id) => format!("{:08X}", id.as_raw()),
    };
    let hex = |data: &[u8]| data.iter().map(|b| format!("{b:02X}")).collect::<String>();
    let body = match frame {
        CanAnyFrame::Normal(f) => format!("{}#{}", id(f.id()), hex(f.data())),
        CanAnyFrame::Remote(f) => format!("{}#R", id(f.id())),
        CanAnyFrame::Error(f) => format!("{:08X}#{}", f.raw_id() | CAN_ERR_FLAG, hex(f.data())),
        CanAnyFrame::Fd(f) => format!(
            "{}##{:X}{}",
            id(f.id()),
            f.flags().bits() & 0x0f,
            hex(f.data())
        ),
    };
    format!(
        "({}.{:06}) {iface} {body}\n",
        since.as_secs(),
        since.subsec_micros()
    )
}

/// A frame as the SocketCAN link type carries it (LINKTYPE_CAN_SOCKETCAN, 227): the id with
/// its EFF/RTR/ERR flags in network byte order, the payload length, the FD flags (CANFD_FDF on
/// every FD frame), two reserved bytes, then the payload padded to 8 or 64 bytes.
pub fn socketcan_packet(frame: &CanAnyFrame) -> Vec<u8> {
    // The id word is the kernel's can_id as socketcan keeps it, flags and all.
    let (len, fd_flags, data, payload): (usize, u8, &[u8], usize) = match frame {
        CanAnyFrame::Normal(f) => (f.data().len(), 0, f.data(), CLASSIC_PAYLOAD),
        CanAnyFrame::Remote(f) => (f.dlc(), 0, &[], CLASSIC_PAYLOAD),
        CanAnyFrame::Error(f) => (f.data().len(), 0, f.data(), CLASSIC_PAYLOAD),
        CanAnyFrame::Fd(f) => (
            f.data().len(),
            (f.flags() | FdFlags::FDF).bits(),
            f.data(),
            FD_PAYLOAD,
        ),
    };
    let word = frame.id_word();
    let mut packet = Vec::with_capacity(SOCKETCAN_HEADER + payload);
    packet.extend_from_slice(&word.to_be_bytes());
    packet.push(len as u8);
    packet.extend_from_slice(&[fd_flags, 0, 0]);
    packet.extend_from_slice(data);
    packet.resize(SOCKETCAN_HEADER + payload, 0);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use socketcan::{CanDataFrame, CanFdFrame, CanRemoteFrame, ExtendedId, StandardId};

    fn std_id(id: u16) -> StandardId {
        StandardId::new(id).unwrap()
    }

    #[test]
    fn lines_are_candump_logs() {
        let when = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let std_id = StandardId::new(0x123).unwrap();
        let classic = CanAnyFrame::Normal(CanDataFrame::new(std_id, &[0xde, 0xad]).unwrap());
        assert_eq!(
            candump_line(when, "vxbn0", &classic),
            "(1700000000.123456) vxbn0 123#DEAD\n"
        );
        let ext =
            CanAnyFrame::Normal(CanDataFrame::new(ExtendedId::new(0x1A0).unwrap(), &[]).unwrap());
        assert_eq!(
            candump_line(when, "h", &ext),
            "(1700000000.123456) h 000001A0#\n"
        );
        let rtr = CanAnyFrame::Remote(CanRemoteFrame::new_remote(std_id, 2).unwrap());
        assert_eq!(
            candump_line(when, "h", &rtr),
            "(1700000000.123456) h 123#R\n"
        );
        let fd = CanAnyFrame::Fd(CanFdFrame::new(std_id, &[1; 12]).unwrap());
        assert_eq!(
            candump_line(when, "h", &fd),
            format!("(1700000000.123456) h 123##4{}\n", "01".repeat(12))
        );
    }

    #[test]
    fn packets_are_the_socketcan_link_types() {
        let classic = CanAnyFrame::Normal(CanDataFrame::new(std_id(0x123), &[0xde, 0xad]).unwrap());
        let mut want = vec![0, 0, 0x01, 0x23, 2, 0, 0, 0, 0xde, 0xad];
        want.resize(16, 0);
        assert_eq!(socketcan_packet(&classic), want);
        let ext = CanDataFrame::new(ExtendedId::new(0x1234567).unwrap(), &[1]).unwrap();
        assert_eq!(
            socketcan_packet(&CanAnyFrame::Normal(ext))[..9],
            [0x81, 0x23, 0x45, 0x67, 1, 0, 0, 0, 1]
        );
        let rtr = CanAnyFrame::Remote(CanRemoteFrame::new_remote(std_id(0x7ff), 3).unwrap());
        assert_eq!(
            socketcan_packet(&rtr)[..8],
            [0x40, 0, 0x07, 0xff, 3, 0, 0, 0]
        );
        let fd = CanAnyFrame::Fd(CanFdFrame::new(std_id(0x10), &[7; 12]).unwrap());
        let packet = socketcan_packet(&fd);
        assert_eq!(
            packet.len(),
            72,
            "an FD frame takes a canfd_frame's 72 bytes"
        );
        assert_eq!(packet[..8], [0, 0, 0, 0x10, 12, FdFlags::FDF.bits(), 0, 0]);
        assert_eq!(packet[8..20], [7; 12]);
    }

    #[test]
    fn a_pcapng_file_has_a_section_per_open_and_microsecond_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.pcapng");
        let when = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let frame = CanAnyFrame::Normal(CanDataFrame::new(std_id(0x42), &[1, 2, 3]).unwrap());
        let mut written = 0;
        for _ in 0..2 {
            let (mut out, header) = Output::open(Format::Pcapng, &path, "vxbn0").unwrap();
            let record = out.encode(when, "vxbn0", &frame).unwrap();
            assert_eq!(record.len(), 48, "a classic frame's packet block");
            out.append(&record).unwrap();
            out.flush().unwrap();
            written += header + record.len() as u64;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, written, "the sizes the recorder counts");
        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let (mut packets, mut sections) = (0, 1);
        while let Some(block) = reader.next_block() {
            match block.unwrap() {
                Block::SectionHeader(_) => sections += 1,
                Block::InterfaceDescription(idb) => {
                    assert_eq!(idb.linktype, DataLink::CAN_SOCKETCAN);
                    assert!(idb
                        .options
                        .contains(&InterfaceDescriptionOption::IfTsResol(6)));
                }
                Block::EnhancedPacket(epb) => {
                    // The reader hands the raw unit count back as nanoseconds: microseconds.
                    assert_eq!(epb.timestamp.as_nanos(), 1_700_000_000_123_456);
                    assert_eq!(epb.data[..11], [0, 0, 0, 0x42, 3, 0, 0, 0, 1, 2, 3]);
                    packets += 1;
                }
                other => panic!("unexpected block {other:?}"),
            }
        }
        assert_eq!((sections, packets), (2, 2));
    }

    #[test]
    fn a_block_left_half_written_is_cut_off_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.pcapng");
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let frame = CanAnyFrame::Normal(CanDataFrame::new(std_id(0x42), &[1]).unwrap());
        let (mut out, _) = Output::open(Format::Pcapng, &path, "vxbn0").unwrap();
        let record = out.encode(when, "vxbn0", &frame).unwrap();
        out.append(&record).unwrap();
        out.flush().unwrap();
        drop(out);
        let whole = std::fs::read(&path).unwrap();
        // A killed logger left 20 bytes of its next block.
        let mut cut = whole.clone();
        cut.extend_from_slice(&whole[whole.len() - 48..whole.len() - 28]);
        std::fs::write(&path, &cut).unwrap();
        assert_eq!(trim_partial_block(&path).unwrap(), 20);
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        assert_eq!(trim_partial_block(&path).unwrap(), 0, "whole blocks stay");
        // The next open appends a readable section after the whole blocks.
        let (mut out, _) = Output::open(Format::Pcapng, &path, "vxbn0").unwrap();
        let record = out.encode(when, "vxbn0", &frame).unwrap();
        out.append(&record).unwrap();
        out.flush().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let mut blocks = 0;
        while let Some(block) = reader.next_block() {
            block.unwrap();
            blocks += 1;
        }
        assert_eq!(blocks, 5, "interface, packet, section, interface, packet");
        // Not pcapng: left alone.
        std::fs::write(&path, b"(1700000000.000000) vxbn0 123#00\n").unwrap();
        assert_eq!(trim_partial_block(&path).unwrap(), 0);
        assert_eq!(trim_partial_block(&dir.path().join("none")).unwrap(), 0);
    }
}
