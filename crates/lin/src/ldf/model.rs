//! What an LDF says, as the plugin uses it: the header, nodes, signals, frames and schedule
//! tables, with the questions asked of them (a frame by name or id, its initial data, the
//! checksum the protocol version implies) and the checks that tie them together.
//!
//! Owns: the model and its cross-checks (a frame's signals exist and fit, a schedule names
//! frames that exist). Must not touch text: the parser builds the model.

use crate::{Checksum, LinId};

/// Where and why an LDF was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LdfError {
    pub line: usize,
    pub reason: String,
}

/// What the plugin needs of an LDF.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ldf {
    /// `LIN_protocol_version`, e.g. `2.1`.
    pub protocol_version: String,
    /// `LIN_speed` in bit/s.
    pub speed_bps: Option<u32>,
    pub master: Option<Master>,
    pub slaves: Vec<String>,
    pub signals: Vec<Signal>,
    pub frames: Vec<Frame>,
    pub schedule_tables: Vec<ScheduleTable>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Master {
    pub name: String,
    /// The schedule's time base, in milliseconds.
    pub time_base_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub name: String,
    pub size_bits: u32,
    /// The initial value: a scalar, or the bytes of a byte-array signal.
    pub init: SignalValue,
    pub publisher: String,
    pub subscribers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalValue {
    Scalar(u64),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub name: String,
    pub id: LinId,
    pub publisher: String,
    /// Data bytes, 1 to 8.
    pub size: u8,
    /// Each signal's name and its offset in bits from the first data bit.
    pub signals: Vec<(String, u32)>,
    /// Where it is defined.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleTable {
    pub name: String,
    pub entries: Vec<ScheduleEntry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleEntry {
    /// A frame's name, or a diagnostic command (`MasterReq`, `SlaveResp`, `AssignNAD`, ...).
    pub command: String,
    pub delay_ms: f64,
    pub line: usize,
}

impl Ldf {
    pub fn frame(&self, name: &str) -> Option<&Frame> {
        self.frames.iter().find(|f| f.name == name)
    }

    pub fn frame_by_id(&self, id: LinId) -> Option<&Frame> {
        self.frames.iter().find(|f| f.id == id)
    }

    pub fn schedule_table(&self, name: &str) -> Option<&ScheduleTable> {
        self.schedule_tables.iter().find(|t| t.name == name)
    }

    /// The checksum the protocol version implies: classic for LIN 1.x, enhanced otherwise.
    pub fn checksum(&self) -> Checksum {
        if self.protocol_version.starts_with("1.") {
            Checksum::Classic
        } else {
            Checksum::Enhanced
        }
    }

    /// A frame's data with every signal at its initial value (little-endian bit order, as LIN
    /// packs signals); bits no signal covers are 1, as LIN leaves unused bits recessive.
    pub fn initial_data(&self, frame: &Frame) -> Vec<u8> {
        let mut data = vec![0xFFu8; frame.size as usize];
        for (name, offset) in &frame.signals {
            let Some(signal) = self.signals.iter().find(|s| &s.name == name) else {
                continue;
            };
            let bits: Vec<bool> = match &signal.init {
                SignalValue::Scalar(v) => {
                    (0..signal.size_bits).map(|i| (v >> i) & 1 == 1).collect()
                }
                SignalValue::Bytes(bytes) => bytes
                    .iter()
                    .flat_map(|b| (0..8).map(move |i| (b >> i) & 1 == 1))
                    .take(signal.size_bits as usize)
                    .collect(),
            };
            for (i, bit) in bits.into_iter().enumerate() {
                let at = *offset as usize + i;
                if at / 8 < data.len() {
                    let mask = 1u8 << (at % 8);
                    if bit {
                        data[at / 8] |= mask;
                    } else {
                        data[at / 8] &= !mask;
                    }
                }
            }
        }
        data
    }

    pub(super) fn validate(&self) -> Result<(), LdfError> {
        if self.protocol_version.is_empty() {
            return Err(LdfError {
                line: 1,
                reason: "no LIN_protocol_version".into(),
            });
        }
        for frame in &self.frames {
            let err = |reason: String| LdfError {
                line: frame.line,
                reason,
            };
            for (name, offset) in &frame.signals {
                let Some(signal) = self.signals.iter().find(|s| &s.name == name) else {
                    return Err(err(format!(
                        "frame {} carries signal {name}, which Signals does not define",
                        frame.name
                    )));
                };
                if offset + signal.size_bits > u32::from(frame.size) * 8 {
                    return Err(err(format!(
                        "frame {}: signal {name} (offset {offset}, {} bits) does not fit in {} bytes",
                        frame.name, signal.size_bits, frame.size
                    )));
                }
            }
        }
        for table in &self.schedule_tables {
            for entry in &table.entries {
                if self.frame(&entry.command).is_none() && !is_diagnostic_command(&entry.command) {
                    return Err(LdfError {
                        line: entry.line,
                        reason: format!(
                            "schedule table {} names frame {}, which Frames does not define",
                            table.name, entry.command
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Schedule commands that are not frames of the Frames section.
fn is_diagnostic_command(command: &str) -> bool {
    matches!(
        command,
        "MasterReq"
            | "SlaveResp"
            | "AssignNAD"
            | "ConditionalChangeNAD"
            | "DataDump"
            | "SaveConfiguration"
            | "AssignFrameIdRange"
            | "FreeFormat"
            | "AssignFrameId"
            | "UnassignFrameId"
    )
}
