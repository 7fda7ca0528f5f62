//! `kvaser-canlib` through the real loading path against the STAND-IN for Kvaser's libraries
//! (`crates/kvaser-standin`: no hardware, no Kvaser code), built here and loaded as
//! `liblinlib.so.1` and `libcanlib.so.1` from a directory, as the plugin loads the real ones.
//! Every operation the plugin uses is exercised, and what reached the "bus" is read back from
//! the stand-in's record.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use kvaser_canlib::{DeviceId, Kvaser, LinError};
use vxbus_lin::{Checksum, LinFrame, LinId, Role};

/// Builds the stand-in (same profile as this test) and returns its path.
fn build_standin() -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--locked", "--quiet", "-p", "kvaser-standin"]);
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("run cargo build -p kvaser-standin");
    assert!(status.success(), "cargo build -p kvaser-standin failed");
    // This test runs as target/<profile>/deps/kvaser_standin-<hash>.
    let profile_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_owned();
    let lib = profile_dir.join("libkvaser_standin.so");
    assert!(lib.exists(), "{} not built", lib.display());
    lib
}

/// A directory holding `file` under both of Kvaser's library names.
fn library_dir(file: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["liblinlib.so.1", "libcanlib.so.1"] {
        std::os::unix::fs::symlink(file, dir.path().join(name)).unwrap();
    }
    dir
}

fn id(n: u32) -> LinId {
    LinId::new(n).unwrap()
}

fn read(channel: &kvaser_canlib::LinChannel) -> LinFrame {
    channel
        .read(Duration::from_secs(2))
        .unwrap()
        .expect("a frame within 2 s")
}

#[test]
fn every_operation_the_plugin_uses_through_the_standin() {
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("script.json");
    let record = work.path().join("record.log");
    std::fs::write(
        &script,
        r#"{"channels": [{"ean": "73-30130-01112-1", "serial": 1}, {"ean": "73-30130-00752-9", "serial": 7}],
            "responses": {"32": [1, 2, 3, 4], "33": [5]}, "checksum_errors": [33],
            "headers": [48, 32], "header_period_ms": 5}"#,
    )
    .unwrap();
    // The stand-in reads these when loaded and at each call; this test binary runs this one
    // test that loads it.
    std::env::set_var("KVASER_STANDIN_SCRIPT", &script);
    std::env::set_var("KVASER_STANDIN_RECORD", &record);
    let dir = library_dir(&build_standin());
    let kvaser = Kvaser::load(dir.path()).expect("load the stand-in");

    // Finding the adapter: EAN:serial as RemotiveBus users write it, or a channel number.
    let channels = kvaser.channels().unwrap();
    assert_eq!(
        channels.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["0 = 73-30130-01112-1:1", "1 = 73-30130-00752-9:7"]
    );
    let find = |s: &str| kvaser.find(&s.parse::<DeviceId>().unwrap());
    assert_eq!(find("011121:1"), Ok(0));
    assert_eq!(find("73-30130-00752-9:7"), Ok(1));
    assert_eq!(find("1"), Ok(1));
    let err = find("011121:2").unwrap_err();
    assert!(
        err.contains("no Kvaser channel matches device_id 011121:2; channels found: 0 = 73-30130-01112-1:1, 1 = 73-30130-00752-9:7"),
        "{err}"
    );
    assert!(find("5").is_err());
    assert_eq!(
        kvaser.open(5, Role::Master).unwrap_err(),
        LinError::NotFound
    );

    // Master: publish, request a slave's response, see errors.
    {
        let master = kvaser.open(0, Role::Master).unwrap();
        master.setup(Checksum::Enhanced, 19200).unwrap();
        master.bus_on().unwrap();
        assert_eq!(
            master.setup(Checksum::Classic, 9600),
            Err(LinError::Running)
        );
        assert_eq!(master.update(id(1), &[1]), Err(LinError::SlaveOnly));
        assert_eq!(master.write(id(1), &[0; 9]), Err(LinError::Param));

        master.write(id(16), &[0xDE, 0xAD]).unwrap();
        let echo = read(&master);
        assert_eq!((echo.id, echo.data.as_slice()), (16, &[0xDE, 0xAD][..]));
        assert!(echo.flags.transmitted() && echo.flags.errors().is_empty());

        master.request(id(32)).unwrap();
        let answer = read(&master);
        assert_eq!((answer.id, answer.data.as_slice()), (32, &[1, 2, 3, 4][..]));
        assert!(!answer.flags.transmitted() && answer.flags.errors().is_empty());

        master.request(id(33)).unwrap();
        assert_eq!(read(&master).flags.errors(), ["checksum"]);
        master.request(id(40)).unwrap();
        let silent = read(&master);
        assert!(silent.flags.no_data() && silent.data.is_empty());

        assert_eq!(master.read(Duration::from_millis(20)), Ok(None));
    } // dropped: off the bus, closed

    // Slave: the adapter answers the (simulated) master's headers with the data given.
    {
        let slave = kvaser.open(0, Role::Slave).unwrap();
        slave.setup(Checksum::Classic, 10400).unwrap();
        assert_eq!(slave.write(id(1), &[1]), Err(LinError::MasterOnly));
        assert_eq!(slave.request(id(1)), Err(LinError::MasterOnly));
        slave.update(id(48), &[9, 8]).unwrap();
        slave.bus_on().unwrap();
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let frame = read(&slave);
            seen.push((frame.id, frame.data, frame.flags.transmitted()));
        }
        assert!(seen.contains(&(48, vec![9, 8], true)), "{seen:?}");
        assert!(seen.contains(&(32, vec![1, 2, 3, 4], false)), "{seen:?}");
        slave.clear(id(48)).unwrap();
        slave.bus_off().unwrap();
    }

    let log = std::fs::read_to_string(&record).unwrap();
    let calls: Vec<&str> = log
        .lines()
        .map(|l| l.split_once(' ').unwrap().1)
        .filter(|l| !l.starts_with("lin") || !l.contains("-> -")) // refusals aside
        .collect();
    let expected = [
        "canInitializeLibrary",
        "linInitializeLibrary",
        "linOpenChannel channel=5 master -> notfound",
        "linOpenChannel channel=0 master -> h=0",
        "linSetupLIN h=0 checksum=enhanced flags=3 bps=19200 -> 0",
        "linBusOn h=0",
        "linWriteMessage h=0 id=16 data=DEAD -> 0",
        "linRequestMessage h=0 id=32 -> 0",
        "linRequestMessage h=0 id=33 -> 0",
        "linRequestMessage h=0 id=40 -> 0",
        "linBusOff h=0",
        "linClose h=0",
        "linOpenChannel channel=0 slave -> h=1",
        "linSetupLIN h=1 checksum=classic flags=2 bps=10400 -> 0",
        "linUpdateMessage h=1 id=48 data=0908 -> 0",
        "linBusOn h=1",
        "linClearMessage h=1 id=48 -> 0",
        "linBusOff h=1",
        "linBusOff h=1",
        "linClose h=1",
    ];
    assert_eq!(calls, expected, "the stand-in's record:\n{log}");
}

#[test]
fn a_library_without_a_symbol_is_a_clear_error() {
    // A real shared library that lacks LINlib's functions, built here with the C compiler.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("partial.c");
    std::fs::write(&source, "void canInitializeLibrary(void) {}\n").unwrap();
    let lib = dir.path().join("libpartial.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&source)
        .status()
        .expect("run cc");
    assert!(status.success());
    let libs = library_dir(&lib);
    let err = Kvaser::load(libs.path()).unwrap_err().to_string();
    assert!(err.contains("cannot load Kvaser's libcanlib.so.1"), "{err}");
    assert!(
        err.contains("canGetNumberOfChannels"),
        "names the missing symbol: {err}"
    );
}
