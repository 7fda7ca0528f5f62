//! LIN description files (LDF): the parts the `kvaser-lin` plugin uses, with every refusal
//! naming its line.
//!
//! Owns: reading an LDF's header (protocol version, `LIN_speed`), nodes (the master's time
//! base), signals (sizes, initial values, publishers), frames (identifier, publisher, size,
//! signal offsets) and schedule tables; other sections are skipped whole. Must not touch files,
//! sockets or adapters: callers hand text in and get an [`Ldf`] or an [`LdfError`] back.
//!
//! A small parser written here: the LDF crate on crates.io (`lin-ldf` 0.0.x) reports errors as
//! "Failed to parse Frames section", without a line, and users must be told where their file
//! is wrong.

use std::fmt;

use super::kvaser::{Checksum, LinId};

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
    pub fn parse(text: &str) -> Result<Ldf, LdfError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            ldf: Ldf::default(),
        };
        parser.file()?;
        let ldf = parser.ldf;
        ldf.validate()?;
        Ok(ldf)
    }

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

    fn validate(&self) -> Result<(), LdfError> {
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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Str(s) => write!(f, "\"{s}\""),
            Tok::Punct(c) => write!(f, "`{c}`"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, LdfError> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let start = line;
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        Some('\n') => line += 1,
                        Some('/') if prev == '*' => break,
                        Some(c) => prev = c,
                        None => {
                            return Err(LdfError {
                                line: start,
                                reason: "a comment that is never closed".into(),
                            })
                        }
                    }
                    if prev == '\n' {
                        prev = ' ';
                    }
                }
            }
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\n') | None => {
                            return Err(LdfError {
                                line: start,
                                reason: "a string that is never closed".into(),
                            })
                        }
                        Some(c) => s.push(c),
                    }
                }
                tokens.push((Tok::Str(s), start));
            }
            '{' | '}' | ';' | ':' | ',' | '=' => tokens.push((Tok::Punct(c), line)),
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' => {
                let mut w = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' || n == '.' {
                        w.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push((Tok::Word(w), line));
            }
            other => {
                return Err(LdfError {
                    line,
                    reason: format!("unexpected character `{other}`"),
                })
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    ldf: Ldf,
}

type Parsed<T> = Result<T, LdfError>;

impl Parser {
    fn line(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or(self.tokens.last())
            .map_or(1, |(_, line)| *line)
    }

    fn error<T>(&self, reason: impl Into<String>) -> Parsed<T> {
        Err(LdfError {
            line: self.line(),
            reason: reason.into(),
        })
    }

    /// Refuses the token just read: the error names its line.
    fn refuse_previous<T>(&mut self, reason: impl Into<String>) -> Parsed<T> {
        self.pos -= 1;
        self.error(reason)
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn next(&mut self, what: &str) -> Parsed<Tok> {
        match self.tokens.get(self.pos) {
            Some((t, _)) => {
                self.pos += 1;
                Ok(t.clone())
            }
            None => self.error(format!("the file ends where {what} should be")),
        }
    }

    fn punct(&mut self, c: char) -> Parsed<()> {
        match self.next(&format!("`{c}`"))? {
            Tok::Punct(p) if p == c => Ok(()),
            other => self.refuse_previous(format!("expected `{c}`, found {other}")),
        }
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    fn word(&mut self, what: &str) -> Parsed<String> {
        match self.next(what)? {
            Tok::Word(w) => Ok(w),
            other => self.refuse_previous(format!("expected {what}, found {other}")),
        }
    }

    fn string(&mut self, what: &str) -> Parsed<String> {
        match self.next(what)? {
            Tok::Str(s) => Ok(s),
            other => self.refuse_previous(format!("expected {what} in quotes, found {other}")),
        }
    }

    fn integer(&mut self, what: &str) -> Parsed<u64> {
        let w = self.word(what)?;
        let parsed = match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => w.parse(),
        };
        match parsed {
            Ok(n) => Ok(n),
            Err(_) => self.refuse_previous(format!("{what}: `{w}` is not an integer")),
        }
    }

    fn number(&mut self, what: &str) -> Parsed<f64> {
        let w = self.word(what)?;
        match w.parse() {
            Ok(n) => Ok(n),
            Err(_) => self.refuse_previous(format!("{what}: `{w}` is not a number")),
        }
    }

    /// `NUMBER ms`
    fn milliseconds(&mut self, what: &str) -> Parsed<f64> {
        let n = self.number(what)?;
        match self.word("`ms`")?.as_str() {
            "ms" => Ok(n),
            other => self.refuse_previous(format!("{what}: unit `{other}`, expected ms")),
        }
    }

    /// Skips a `{ ... }` block, nested blocks included.
    fn skip_block(&mut self) -> Parsed<()> {
        let start = self.line();
        self.punct('{')?;
        let mut depth = 1;
        while depth > 0 {
            match self.tokens.get(self.pos) {
                Some((Tok::Punct('{'), _)) => depth += 1,
                Some((Tok::Punct('}'), _)) => depth -= 1,
                Some(_) => {}
                None => {
                    return Err(LdfError {
                        line: start,
                        reason: "a `{` that is never closed".into(),
                    })
                }
            }
            self.pos += 1;
        }
        Ok(())
    }

    fn file(&mut self) -> Parsed<()> {
        if self.word("LIN_description_file").ok().as_deref() != Some("LIN_description_file") {
            self.pos = 0;
            return self.error("not an LDF: it must begin with `LIN_description_file ;`");
        }
        self.punct(';')?;
        while let Some(tok) = self.peek().cloned() {
            let Tok::Word(keyword) = tok else {
                return self.error(format!("expected a section or a definition, found {tok}"));
            };
            self.pos += 1;
            match keyword.as_str() {
                "LIN_protocol_version" => {
                    self.punct('=')?;
                    self.ldf.protocol_version = self.string("the protocol version")?;
                    self.punct(';')?;
                }
                "LIN_speed" => {
                    self.punct('=')?;
                    let kbps = self.number("LIN_speed")?;
                    match self.word("`kbps`")?.as_str() {
                        "kbps" => {}
                        other => {
                            return self.error(format!("LIN_speed: unit `{other}`, expected kbps"))
                        }
                    }
                    self.ldf.speed_bps = Some((kbps * 1000.0).round() as u32);
                    self.punct(';')?;
                }
                "Nodes" => self.nodes()?,
                "Signals" => self.signals()?,
                "Frames" => self.frames()?,
                "Schedule_tables" => self.schedule_tables()?,
                _ if self.is_punct('=') => {
                    // Other definitions: LIN_language_version, Channel_name, ...
                    while !self.is_punct(';') {
                        self.next("`;`")?;
                    }
                    self.punct(';')?;
                }
                _ if self.is_punct('{') => self.skip_block()?,
                _ => {
                    return self.refuse_previous(format!("unknown definition `{keyword}`"));
                }
            }
        }
        Ok(())
    }

    /// `Nodes { Master: NAME, TIME_BASE ms, JITTER ms ; Slaves: NAME, ... ; }`
    fn nodes(&mut self) -> Parsed<()> {
        self.punct('{')?;
        while !self.is_punct('}') {
            let kind = self.word("Master or Slaves")?;
            self.punct(':')?;
            match kind.as_str() {
                "Master" => {
                    let name = self.word("the master's name")?;
                    self.punct(',')?;
                    let time_base_ms = self.milliseconds("the master's time base")?;
                    while !self.is_punct(';') {
                        self.next("`;`")?;
                    }
                    self.ldf.master = Some(Master { name, time_base_ms });
                }
                "Slaves" => loop {
                    let name = self.word("a slave's name")?;
                    self.ldf.slaves.push(name);
                    if !self.is_punct(',') {
                        break;
                    }
                    self.punct(',')?;
                },
                other => {
                    self.pos -= 2;
                    return self.error(format!("Nodes: `{other}` is neither Master nor Slaves"));
                }
            }
            self.punct(';')?;
        }
        self.punct('}')
    }

    /// `Signals { NAME: SIZE, INIT, PUBLISHER, SUBSCRIBER, ... ; }`, INIT a number or `{ BYTES }`
    fn signals(&mut self) -> Parsed<()> {
        self.punct('{')?;
        while !self.is_punct('}') {
            let name = self.word("a signal's name")?;
            self.punct(':')?;
            let size = self.integer("the signal's size")?;
            if !(1..=64).contains(&size) {
                return self
                    .refuse_previous(format!("signal {name}: size {size} is not 1 to 64 bits"));
            }
            self.punct(',')?;
            let init = if self.is_punct('{') {
                self.punct('{')?;
                let mut bytes = Vec::new();
                loop {
                    let b = self.integer("an initial byte")?;
                    bytes.push(u8::try_from(b).or_else(|_| {
                        self.error(format!("signal {name}: initial byte {b} is over 255"))
                    })?);
                    if self.is_punct('}') {
                        break;
                    }
                    self.punct(',')?;
                }
                self.punct('}')?;
                SignalValue::Bytes(bytes)
            } else {
                SignalValue::Scalar(self.integer("the signal's initial value")?)
            };
            self.punct(',')?;
            let publisher = self.word("the signal's publisher")?;
            let mut subscribers = Vec::new();
            while self.is_punct(',') {
                self.punct(',')?;
                subscribers.push(self.word("a subscriber")?);
            }
            self.punct(';')?;
            self.ldf.signals.push(Signal {
                name,
                size_bits: size as u32,
                init,
                publisher,
                subscribers,
            });
        }
        self.punct('}')
    }

    /// `Frames { NAME: ID, PUBLISHER, SIZE { SIGNAL, OFFSET ; ... } }`
    fn frames(&mut self) -> Parsed<()> {
        self.punct('{')?;
        while !self.is_punct('}') {
            let line = self.line();
            let name = self.word("a frame's name")?;
            self.punct(':')?;
            let id = self.integer("the frame's identifier")?;
            let Some(id) = u32::try_from(id).ok().and_then(LinId::new) else {
                return self
                    .refuse_previous(format!("frame {name}: identifier {id} is not 0 to 63"));
            };
            self.punct(',')?;
            let publisher = self.word("the frame's publisher")?;
            self.punct(',')?;
            let size = self.integer("the frame's size")?;
            if !(1..=8).contains(&size) {
                return self
                    .refuse_previous(format!("frame {name}: size {size} is not 1 to 8 bytes"));
            }
            self.punct('{')?;
            let mut signals = Vec::new();
            while !self.is_punct('}') {
                let signal = self.word("a signal's name")?;
                self.punct(',')?;
                let offset = self.integer("the signal's offset")?;
                // A LIN frame has at most 64 bits; whether the signal fits is checked later.
                let Some(offset) = u32::try_from(offset).ok().filter(|o| *o < 64) else {
                    return self.refuse_previous(format!(
                        "frame {name}: signal {signal} at bit {offset} is beyond a LIN frame's 64 bits"
                    ));
                };
                self.punct(';')?;
                signals.push((signal, offset));
            }
            self.punct('}')?;
            self.ldf.frames.push(Frame {
                name,
                id,
                publisher,
                size: size as u8,
                signals,
                line,
            });
        }
        self.punct('}')
    }

    /// `Schedule_tables { NAME { COMMAND delay N ms ; ... } }`; a command may carry a block.
    fn schedule_tables(&mut self) -> Parsed<()> {
        self.punct('{')?;
        while !self.is_punct('}') {
            let name = self.word("a schedule table's name")?;
            self.punct('{')?;
            let mut entries = Vec::new();
            while !self.is_punct('}') {
                let line = self.line();
                let command = self.word("a frame or command")?;
                if self.is_punct('{') {
                    self.skip_block()?;
                }
                match self.word("`delay`")?.as_str() {
                    "delay" => {}
                    other => {
                        return self.refuse_previous(format!(
                            "schedule table {name}: expected `delay` after {command}, found `{other}`"
                        ));
                    }
                }
                let delay_ms = self.milliseconds("the delay")?;
                self.punct(';')?;
                entries.push(ScheduleEntry {
                    command,
                    delay_ms,
                    line,
                });
            }
            self.punct('}')?;
            self.ldf
                .schedule_tables
                .push(ScheduleTable { name, entries });
        }
        self.punct('}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOOR: &str = r#"
// A door module: the master publishes the switch state, the slave answers with its status.
LIN_description_file ;
LIN_protocol_version = "2.1" ;
LIN_language_version = "2.1" ;
LIN_speed = 19.2 kbps ;
Channel_name = "door" ;

Nodes {
  Master: BCM, 5 ms, 0.1 ms ;
  Slaves: Door ;
}

Signals {
  Switch: 8, 0, BCM, Door ;
  Window: 4, 5, BCM, Door ;
  Status: 16, {0x34, 0x12}, Door, BCM ;
}

Frames {
  SwitchFrame: 0x10, BCM, 2 {
    Switch, 0 ;
    Window, 8 ;
  }
  StatusFrame: 32, Door, 2 {
    Status, 0 ;
  }
}

Node_attributes {
  Door { LIN_protocol = "2.1" ; configured_NAD = 0x10 ; }
}

Schedule_tables {
  Normal {
    SwitchFrame delay 10 ms ;
    StatusFrame delay 20 ms ;
  }
  Diag {
    MasterReq delay 10 ms ;
    AssignNAD { Door } delay 10 ms ;
  }
}
"#;

    #[test]
    fn the_sections_the_plugin_uses() {
        let ldf = Ldf::parse(DOOR).unwrap();
        assert_eq!(ldf.protocol_version, "2.1");
        assert_eq!(ldf.speed_bps, Some(19200));
        assert_eq!(
            ldf.master,
            Some(Master {
                name: "BCM".into(),
                time_base_ms: 5.0
            })
        );
        assert_eq!(ldf.slaves, ["Door"]);
        assert_eq!(ldf.checksum(), Checksum::Enhanced);
        let status = ldf.frame("StatusFrame").unwrap();
        assert_eq!(
            (status.id.get(), status.size, status.publisher.as_str()),
            (32, 2, "Door")
        );
        assert_eq!(
            ldf.frame_by_id(LinId::new(0x10).unwrap()).unwrap().name,
            "SwitchFrame"
        );
        let normal = ldf.schedule_table("Normal").unwrap();
        let entries: Vec<_> = normal
            .entries
            .iter()
            .map(|e| (e.command.as_str(), e.delay_ms, e.line))
            .collect();
        assert_eq!(
            entries,
            [("SwitchFrame", 10.0, 36), ("StatusFrame", 20.0, 37)]
        );
        assert_eq!(ldf.schedule_table("Diag").unwrap().entries.len(), 2);
    }

    #[test]
    fn initial_data_packs_signals_at_their_offsets() {
        let ldf = Ldf::parse(DOOR).unwrap();
        // Switch (8 bits, 0) in byte 0; Window (4 bits, 5) in byte 1's low nibble, the rest 1s.
        assert_eq!(
            ldf.initial_data(ldf.frame("SwitchFrame").unwrap()),
            [0x00, 0xF5]
        );
        assert_eq!(
            ldf.initial_data(ldf.frame("StatusFrame").unwrap()),
            [0x34, 0x12]
        );
    }

    #[test]
    fn lin_1x_means_classic_checksums() {
        let ldf = Ldf::parse(&DOOR.replace(
            "LIN_protocol_version = \"2.1\"",
            "LIN_protocol_version = \"1.3\"",
        ))
        .unwrap();
        assert_eq!(ldf.checksum(), Checksum::Classic);
    }

    #[test]
    fn refusals_name_the_line_and_the_reason() {
        let cases = [
            (
                "LIN_speed = 19.2 kbps ;",
                "LIN_speed = fast kbps ;",
                6,
                "LIN_speed: `fast` is not a number",
            ),
            (
                "StatusFrame: 32,",
                "StatusFrame: 64,",
                25,
                "frame StatusFrame: identifier 64 is not 0 to 63",
            ),
            (
                "Door, 2 {\n    Status",
                "Door, 9 {\n    Status",
                25,
                "frame StatusFrame: size 9 is not 1 to 8 bytes",
            ),
            (
                "    Status, 0 ;",
                "    Status, 4294967296 ;",
                26,
                "frame StatusFrame: signal Status at bit 4294967296 is beyond a LIN frame's 64 bits",
            ),
            (
                "    Status, 0 ;",
                "    Speed, 0 ;",
                25,
                "frame StatusFrame carries signal Speed, which Signals does not define",
            ),
            (
                "    StatusFrame delay 20 ms ;",
                "    StatusFrme delay 20 ms ;",
                37,
                "schedule table Normal names frame StatusFrme, which Frames does not define",
            ),
            (
                "SwitchFrame delay 10 ms",
                "SwitchFrame delay 10 s",
                36,
                "the delay: unit `s`, expected ms",
            ),
            (
                "  Window: 4, 5, BCM, Door ;",
                "  Window: 4, 5, BCM Door ;",
                16,
                "expected `;`, found `Door`",
            ),
            (
                "Nodes {",
                "Nodes {{",
                9,
                "expected Master or Slaves, found `{`",
            ),
            // An unknown section is skipped (LDFs have many); what it should have defined is missed.
            (
                "Signals {",
                "Signalz {",
                21,
                "frame SwitchFrame carries signal Switch, which Signals does not define",
            ),
        ];
        for (from, to, line, reason) in cases {
            assert!(DOOR.contains(from), "{from}");
            let err = Ldf::parse(&DOOR.replace(from, to)).unwrap_err();
            assert_eq!(err.line, line, "{to}: {err}");
            assert!(err.reason.contains(reason), "{to}: {err}");
        }
        let err = Ldf::parse("hello").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: not an LDF: it must begin with `LIN_description_file ;`"
        );
        let err = Ldf::parse(&DOOR.replace(
            "Nodes {",
            "/* never closed
Nodes {",
        ))
        .unwrap_err();
        assert_eq!(
            (err.line, err.reason.as_str()),
            (9, "a comment that is never closed")
        );
        let err = Ldf::parse(&DOOR[..DOOR.len() - 3]).unwrap_err();
        assert!(err.reason.contains("the file ends"), "{err}");
    }
}
