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

mod lexer;
mod model;
mod parser;

pub use model::{Frame, Ldf, LdfError, Master, ScheduleEntry, ScheduleTable, Signal, SignalValue};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checksum, LinId};

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
            // Times and speeds that would panic (inf, nan, too large for a Duration), spin (0)
            // or make no sense (negative) for whoever runs the table.
            (
                "SwitchFrame delay 10 ms",
                "SwitchFrame delay 0 ms",
                36,
                "the delay: `0` is not allowed: 1 to 3600000 ms",
            ),
            (
                "SwitchFrame delay 10 ms",
                "SwitchFrame delay -5 ms",
                36,
                "the delay: `-5` is not allowed: 1 to 3600000 ms",
            ),
            (
                "SwitchFrame delay 10 ms",
                "SwitchFrame delay inf ms",
                36,
                "the delay: `inf` is not allowed",
            ),
            (
                "SwitchFrame delay 10 ms",
                "SwitchFrame delay nan ms",
                36,
                "the delay: `nan` is not allowed",
            ),
            (
                "SwitchFrame delay 10 ms",
                "SwitchFrame delay 1e400 ms",
                36,
                "the delay: `1e400` is not allowed",
            ),
            (
                "LIN_speed = 19.2 kbps ;",
                "LIN_speed = 1e10 kbps ;",
                6,
                "LIN_speed: `1e10` is not allowed: 1 to 20 kbps, LIN's range",
            ),
            (
                "LIN_speed = 19.2 kbps ;",
                "LIN_speed = -19.2 kbps ;",
                6,
                "LIN_speed: `-19.2` is not allowed",
            ),
            (
                "Master: BCM, 5 ms",
                "Master: BCM, NaN ms",
                10,
                "the master's time base: `NaN` is not allowed: 1 to 1000 ms",
            ),
            (
                "  Diag {\n    MasterReq delay 10 ms ;\n    AssignNAD { Door } delay 10 ms ;\n  }",
                "  Diag {\n  }",
                39,
                "schedule table Diag has no entries",
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
