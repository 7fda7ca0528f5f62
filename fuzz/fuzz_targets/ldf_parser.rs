//! Fuzzes the LIN description file parser with any text. Never a panic; an LDF it accepts is
//! safe for the plugin that runs it: every schedule slot lasts a finite, positive time that a
//! `Duration` holds, the bit rate is positive, and every frame's initial data has its size.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vxbus_lin::ldf::Ldf;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(ldf) = Ldf::parse(text) else { return };
    for table in &ldf.schedule_tables {
        assert!(!table.entries.is_empty(), "table {} is empty", table.name);
        for entry in &table.entries {
            let delay = Duration::try_from_secs_f64(entry.delay_ms / 1000.0);
            assert!(delay.is_ok_and(|d| !d.is_zero()), "delay {}", entry.delay_ms);
        }
    }
    assert!(ldf.speed_bps.is_none_or(|bps| bps > 0));
    if let Some(master) = &ldf.master {
        assert!(master.time_base_ms.is_finite() && master.time_base_ms > 0.0);
    }
    for frame in &ldf.frames {
        assert_eq!(ldf.initial_data(frame).len(), usize::from(frame.size));
    }
    let _ = ldf.checksum();
});
