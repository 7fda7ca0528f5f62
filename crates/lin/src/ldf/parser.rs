//! The LDF grammar for the sections the plugin uses (`Nodes`, `Signals`, `Frames`,
//! `Schedule_tables`, the header's definitions); other sections and definitions are skipped
//! whole. Every refusal names the line of the token it stopped at.
//!
//! Owns: tokens to an [`Ldf`]. Must not touch characters (the lexer's) or the checks between
//! sections (the model's).

use std::ops::RangeInclusive;

use crate::LinId;

use super::{
    lexer::{tokenize, Tok},
    Frame, Ldf, LdfError, Master, ScheduleEntry, ScheduleTable, Signal, SignalValue,
};

/// The longest slot a schedule table may have: an hour (a table runs for ever, round and round).
const MAX_DELAY_MS: f64 = 3_600_000.0;

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

    /// A decimal number in `range` (`allowed` says which in words). `inf`, `nan` and numbers too
    /// large for an f64 are refused like any other value out of range: a time or a speed made
    /// of them would panic or spin whoever uses it.
    fn number(&mut self, what: &str, range: RangeInclusive<f64>, allowed: &str) -> Parsed<f64> {
        let w = self.word(what)?;
        match w.parse::<f64>() {
            Ok(n) if n.is_finite() && range.contains(&n) => Ok(n),
            Ok(_) => self.refuse_previous(format!("{what}: `{w}` is not allowed: {allowed}")),
            Err(_) => self.refuse_previous(format!("{what}: `{w}` is not a number")),
        }
    }

    /// `NUMBER ms`, from 1 ms to `max_ms`.
    fn milliseconds(&mut self, what: &str, max_ms: f64) -> Parsed<f64> {
        let n = self.number(what, 1.0..=max_ms, &format!("1 to {max_ms} ms"))?;
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
                    let kbps = self.number("LIN_speed", 1.0..=20.0, "1 to 20 kbps, LIN's range")?;
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
                    let time_base_ms = self.milliseconds("the master's time base", 1000.0)?;
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
            let table_line = self.line();
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
                let delay_ms = self.milliseconds("the delay", MAX_DELAY_MS)?;
                self.punct(';')?;
                entries.push(ScheduleEntry {
                    command,
                    delay_ms,
                    line,
                });
            }
            if entries.is_empty() {
                return Err(LdfError {
                    line: table_line,
                    reason: format!(
                        "schedule table {name} has no entries: a table runs at least one slot"
                    ),
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
