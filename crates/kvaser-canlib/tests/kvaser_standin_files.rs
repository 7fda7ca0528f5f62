//! The STAND-IN for Kvaser's libraries (`crates/kvaser-standin`) scripted by a file beside the
//! library, recording where that script says, with no environment variables: how a test reaches it inside a
//! managed plugin, whose environment it does not set. Its own test binary, so that the stand-in
//! is loaded fresh in this process.

use std::{path::Path, process::Command, time::Duration};

use kvaser_canlib::Kvaser;
use vxbus_lin::{Checksum, LinId, Role};

#[test]
fn script_beside_the_library_and_record_where_it_says() {
    std::env::remove_var("KVASER_STANDIN_SCRIPT");
    std::env::remove_var("KVASER_STANDIN_RECORD");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--locked", "--quiet", "-p", "kvaser-standin"]);
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    assert!(cargo.status().unwrap().success());
    let built = std::env::current_exe().unwrap();
    let built = built
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("libkvaser_standin.so");

    let dir = tempfile::tempdir().unwrap();
    for name in ["liblinlib.so.1", "libcanlib.so.1"] {
        std::os::unix::fs::symlink(&built, dir.path().join(name)).unwrap();
    }
    let records = tempfile::tempdir().unwrap();
    let log = records.path().join("calls.log");
    std::fs::write(
        dir.path().join("kvaser-standin.json"),
        format!(
            r#"{{"channels": [{{"ean": "73-30130-09999-9", "serial": 5}}], "responses": {{"7": [42]}},
                "record": {:?}}}"#,
            log
        ),
    )
    .unwrap();

    let kvaser = Kvaser::load(dir.path()).unwrap();
    assert_eq!(
        kvaser.channels().unwrap()[0].to_string(),
        "0 = 73-30130-09999-9:5"
    );
    let master = kvaser.open(0, Role::Master).unwrap();
    master.setup(Checksum::Enhanced, 19200).unwrap();
    master.bus_on().unwrap();
    master.request(LinId::new(7).unwrap()).unwrap();
    let answer = master.read(Duration::from_secs(2)).unwrap().unwrap();
    assert_eq!(answer.data, [42]);
    drop(master);
    let record = std::fs::read_to_string(&log).unwrap();
    assert!(
        record.contains("linRequestMessage h=0 id=7 -> 0"),
        "{record}"
    );
    assert!(record.contains("linClose h=0"), "{record}");
}
