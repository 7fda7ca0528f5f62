//! The plugin supervisor against real child processes: `tests/pyplugin`, a plugin written
//! in Python from PROTOCOL.md alone, copied under several ids; and external plugins played by a
//! Unix socket server in the test. No CAN needed: the test plugin never opens a CAN socket.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use std::os::unix::fs::MetadataExt as _;

use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufReader},
    net::UnixListener,
};
use vxbus::supervisor::{PluginError, Prepared, Status, Supervisor, SupervisorConfig};
use vxbus_sdk::{Bus, PluginId};

fn id(text: &str) -> PluginId {
    text.parse().unwrap()
}

/// Generous: a loaded CI machine may take a second or more to start Python.
const TIMEOUT: Duration = Duration::from_secs(5);

struct Bed {
    dir: TempDir,
    supervisor: Arc<Supervisor>,
}

impl Bed {
    /// A plugin directory with the Python plugin under each of `ids`.
    fn new(ids: &[&str]) -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyplugin");
        for id in ids {
            let target = dir.path().join("bundled").join(id);
            std::fs::create_dir_all(&target).unwrap();
            for file in ["plugin.json", "plugin.py"] {
                std::fs::copy(source.join(file), target.join(file)).unwrap();
            }
        }
        std::fs::create_dir_all(dir.path().join("sockets")).unwrap();
        let supervisor = Bed::supervisor(dir.path());
        Bed { dir, supervisor }
    }

    /// A supervisor on `dir` (a second one on the same directory plays a daemon restart).
    fn supervisor(dir: &Path) -> Arc<Supervisor> {
        Supervisor::new(SupervisorConfig {
            bundled_dir: dir.join("bundled"),
            state_dir: dir.join("state"),
            socket_dir: dir.join("sockets"),
            start_timeout: TIMEOUT,
            restart_backoff: Duration::from_millis(20),
        })
    }

    fn add_program(&self, id: &str, script: &str) {
        let target = self.dir.path().join("bundled").join(id);
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("plugin.json"), r#"{"executable": "run.sh"}"#).unwrap();
        let program = target.join("run.sh");
        std::fs::write(&program, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(
            &program,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }

    /// `id` as another name for the bundled plugin `target` (`{"alias_of": target}`).
    fn add_alias(&self, id: &str, target: &str) {
        let dir = self.dir.path().join("bundled").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("plugin.json"),
            serde_json::to_vec(&json!({ "alias_of": target })).unwrap(),
        )
        .unwrap();
    }

    fn events_path(&self, id: &str) -> PathBuf {
        self.dir
            .path()
            .join("state/plugin-data")
            .join(id)
            .join("events.jsonl")
    }

    fn events(&self, id: &str) -> Vec<Value> {
        std::fs::read_to_string(self.events_path(id))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Waits up to 10 s until plugin `id` has recorded `count` events named `event`.
    async fn wait_events(&self, id: &str, event: &str, count: usize) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let found: Vec<Value> = self
                .events(id)
                .into_iter()
                .filter(|e| e["event"] == event)
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "plugin {id}: {count} `{event}` events not seen; events: {:?}",
                self.events(id)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn report(&self, id: &str) -> vxbus::supervisor::PluginReport {
        self.supervisor
            .report()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap()
    }

    async fn bus(
        &self,
        network: &str,
        driver: &str,
        items: &[(&str, &str)],
    ) -> Result<Bus, PluginError> {
        let options: BTreeMap<String, String> = items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let prepared = self.supervisor.prepare(&id(driver), &options).await?;
        Ok(Bus {
            bus_type: "vcan".into(),
            device: "ecu".into(),
            host_device: Some("hbus".into()),
            baudrate: Some(500000),
            baudrate_fd: None,
            txqueuelen: None,
            plugin: prepared.plugin,
            fd: true,
            network_id: network.into(),
            host_interface: "hbus".into(),
        })
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.supervisor.kill_all();
    }
}

#[tokio::test]
async fn start_and_stop_reach_the_plugin_with_typed_options() {
    let bed = Bed::new(&["py"]);
    let bus = bed.bus("net1", "py", &[("count", "3")]).await.unwrap();
    assert_eq!(
        Value::Object(bus.plugin.clone()),
        json!({"driver": "py", "mode": "ok", "peer": null, "count": 3, "label": null})
    );
    bed.supervisor.start(&bus).await.unwrap();
    let start = &bed.wait_events("py", "start", 1).await[0]["message"];
    assert_eq!(
        *start,
        json!({"version": 1, "action": "start", "bus": {
            "type": "vcan", "device": "ecu", "host_device": "hbus", "baudrate": 500000,
            "plugin": {"driver": "py", "mode": "ok", "peer": null, "count": 3, "label": null},
            "fd": true, "network_id": "net1", "host_interface": "hbus"}})
    );
    let report = bed.report("py");
    assert_eq!(
        (report.status, report.networks.clone()),
        (Status::Running, vec!["net1".to_string()])
    );
    assert_eq!(report.info.unwrap().name, "pyplugin");
    bed.supervisor.stop(&bus).await;
    let stop = &bed.wait_events("py", "stop", 1).await[0]["message"];
    assert_eq!(stop["action"], "stop");
    assert_eq!(stop["bus"]["network_id"], "net1");
    assert!(bed.report("py").networks.is_empty());
}

#[tokio::test]
async fn one_process_serves_every_network_that_names_it() {
    let bed = Bed::new(&["py"]);
    for network in ["a", "b", "c"] {
        let bus = bed.bus(network, "py", &[]).await.unwrap();
        bed.supervisor.start(&bus).await.unwrap();
    }
    let starts = bed.wait_events("py", "start", 3).await;
    let pids: std::collections::BTreeSet<_> = starts.iter().map(|e| e["pid"].as_u64()).collect();
    assert_eq!(pids.len(), 1, "{starts:?}");
    assert_eq!(bed.report("py").networks, ["a", "b", "c"]);
}

#[tokio::test]
async fn options_the_schema_refuses_name_the_item_and_the_rule() {
    let bed = Bed::new(&["py"]);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("mode", "boss")],
            "plugin.mode: `boss` is not allowed: one of ok, refuse, hang, crash, deaf (plugin py)",
        ),
        (
            &[("count", "10")],
            "plugin.count: `10` is not allowed: an integer from 0 to 9 (plugin py)",
        ),
        (
            &[("colour", "red")],
            "plugin.colour is not an item of plugin py; its items: count, label, mode, peer",
        ),
    ];
    for (items, expected) in cases {
        let err = bed.bus("n", "py", items).await.unwrap_err();
        assert_eq!(err.to_string(), *expected);
        assert!(err.is_refusal());
    }
    let err = bed.bus("n", "nosuch", &[]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "plugin.driver `nosuch`: no such plugin: not bundled (bundled: py) and no socket {}",
            bed.dir.path().join("sockets/nosuch").display()
        )
    );
}

#[tokio::test]
async fn a_refusing_or_silent_plugin_fails_start_with_its_message() {
    let bed = Bed::new(&["py"]);
    let refuse = bed.bus("n1", "py", &[("mode", "refuse")]).await.unwrap();
    assert_eq!(
        bed.supervisor.start(&refuse).await.unwrap_err().to_string(),
        "plugin py: refusing bus ecu on purpose"
    );
    let hang = bed.bus("n2", "py", &[("mode", "hang")]).await.unwrap();
    assert_eq!(
        bed.supervisor.start(&hang).await.unwrap_err().to_string(),
        "plugin py: start: no answer to `start` within 5000 ms"
    );
    // Neither network is recorded as served.
    assert!(bed.report("py").networks.is_empty());
}

#[tokio::test]
async fn a_plugin_that_never_registers_is_killed() {
    let bed = Bed::new(&[]);
    bed.add_program("mute", "echo 'I never register' >&2; exec sleep 60");
    let err = bed.bus("n", "mute", &[]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin mute: did not register within 5000 ms"
    );
    bed.add_program("dies", "exit 3");
    let err = bed.bus("n", "dies", &[]).await.unwrap_err().to_string();
    assert!(
        err.starts_with("plugin dies: did not start: exit status: 3"),
        "{err}"
    );
    // Killed: no process left behind.
    let start = Instant::now();
    while bed.report("mute").pid.is_some() {
        assert!(start.elapsed() < TIMEOUT, "the silent plugin still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_killed_plugin_is_restarted_and_its_buses_started_again() {
    let bed = Bed::new(&["py"]);
    let bus = bed.bus("net1", "py", &[]).await.unwrap();
    bed.supervisor.start(&bus).await.unwrap();
    let first = bed.report("py").pid.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let starts = bed.wait_events("py", "start", 2).await;
    assert_ne!(starts[0]["pid"], starts[1]["pid"]);
    assert_eq!(starts[1]["message"]["bus"]["network_id"], "net1");
    let report = bed.report("py");
    assert_eq!((report.status, report.restarts), (Status::Running, 1));
    assert!(report.last_error.unwrap().contains("signal: 9"));
}

#[tokio::test]
async fn a_plugin_that_keeps_crashing_is_marked_failed() {
    let bed = Bed::new(&["py"]);
    let bus = bed.bus("net1", "py", &[("mode", "crash")]).await.unwrap();
    bed.supervisor.start(&bus).await.unwrap();
    let start = Instant::now();
    while bed.report("py").status != Status::Failed {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not marked failed: {:?}",
            bed.report("py")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Five restarts, then failed; each restart that registered was told to start the bus again.
    assert_eq!(
        bed.report("py").restarts,
        vxbus::supervisor::MAX_RESTARTS + 1
    );
    let starts = bed
        .events("py")
        .iter()
        .filter(|e| e["event"] == "start")
        .count();
    assert!((2..=6).contains(&starts), "{starts} starts");
    // The last error is the last exit, not every exit so far nested in one another.
    let last_error = bed.report("py").last_error.unwrap();
    assert_eq!(last_error.matches("exit").count(), 1, "{last_error}");
    // A new network naming it tries again.
    let ok = bed.bus("net2", "py", &[]).await.unwrap();
    bed.supervisor.start(&ok).await.unwrap();
}

#[tokio::test]
async fn settings_are_kept_and_a_change_reaches_the_running_plugin() {
    let bed = Bed::new(&["py"]);
    bed.bus("n", "py", &[]).await.unwrap();
    assert_eq!(
        bed.wait_events("py", "registered", 1).await[0]["settings"],
        json!({"greeting": "hello"})
    );
    let values = bed
        .supervisor
        .set_setting(&id("py"), "greeting", "hi")
        .await
        .unwrap();
    assert_eq!(Value::Object(values), json!({"greeting": "hi"}));
    assert_eq!(
        bed.wait_events("py", "reconfigure", 1).await[0]["settings"],
        json!({"greeting": "hi"})
    );
    let err = bed
        .supervisor
        .set_setting(&id("py"), "volume", "11")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "volume is not an item of plugin py; its items: greeting"
    );
    // The daemon restarts: the plugin registers again and gets the kept value.
    bed.supervisor.shutdown().await;
    // A stopping daemon closes the pipes: the plugin read end-of-file and exited by itself.
    bed.wait_events("py", "eof", 1).await;
    let again = Bed::supervisor(bed.dir.path());
    again.prepare(&id("py"), &BTreeMap::new()).await.unwrap();
    assert_eq!(
        bed.wait_events("py", "registered", 2).await[1]["settings"],
        json!({"greeting": "hi"})
    );
    again.shutdown().await;
}

#[tokio::test]
async fn a_child_keeps_no_capability_it_did_not_declare() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root, no capabilities to drop");
        return;
    }
    let bed = Bed::new(&["py"]);
    bed.bus("n", "py", &[]).await.unwrap();
    let status = bed.wait_events("py", "registered", 1).await[0]["status"]
        .as_str()
        .unwrap()
        .to_owned();
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = status.lines().find(|l| l.starts_with(set)).unwrap();
        assert_eq!(line, format!("{set}:\t0000000000000000"), "{status}");
    }
    assert!(status.lines().any(|l| l == "NoNewPrivs:\t1"));
    // Nor root's user, group or groups: its own ids, the owner of its data directory alone.
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let uid = vxbus::supervisor::identity::FIRST_ID.to_string();
    assert_eq!(field("Uid:"), [uid.as_str(); 4], "{status}");
    assert_eq!(field("Gid:"), [uid.as_str(); 4], "{status}");
    assert!(field("Groups:").is_empty(), "{status}");
    let data = bed.dir.path().join("state/plugin-data/py");
    let meta = std::fs::metadata(&data).unwrap();
    assert_eq!(
        (meta.uid().to_string(), meta.mode() & 0o777),
        (uid.clone(), 0o700)
    );
}

#[tokio::test]
async fn plugins_find_each_other_and_talk_over_relayed_channels() {
    let bed = Bed::new(&["pya", "pyb"]);
    bed.bus("n", "pyb", &[]).await.unwrap();
    let bus = bed.bus("n", "pya", &[("peer", "pyb")]).await.unwrap();
    bed.supervisor.start(&bus).await.unwrap();
    // pyb was running when pya registered: told so.
    assert_eq!(
        bed.wait_events("pyb", "plugins.connected", 1).await[0]["message"],
        json!({"name": "pya"})
    );
    assert_eq!(
        bed.wait_events("pya", "plugins.list", 1).await[0]["names"],
        json!(["pya", "pyb"])
    );
    let opened = &bed.wait_events("pya", "channel.open", 1).await[0]["answer"];
    assert_eq!(opened["peer"], "pyb");
    let channel = opened["channel"].clone();
    assert_eq!(
        bed.wait_events("pyb", "channel.opened", 1).await[0]["message"],
        json!({"channel": channel, "peer": "pya"})
    );
    assert_eq!(
        bed.wait_events("pyb", "channel.data", 1).await[0]["data"],
        "ping"
    );
    assert_eq!(
        bed.wait_events("pya", "channel.data", 1).await[0]["data"],
        "pong"
    );
    // pya goes away: pyb hears of it, and its channel is closed.
    let pid = bed.report("pya").pid.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(
        bed.wait_events("pyb", "channel.close", 1).await[0]["channel"],
        channel
    );
    assert_eq!(
        bed.wait_events("pyb", "plugins.disconnected", 1).await[0]["message"],
        json!({"name": "pya"})
    );
}

/// Plays an external plugin on `<sockets>/<id>`: answers each message with `answer` (or never,
/// when `None`), and hands back what it received.
fn external(
    bed: &Bed,
    id: &str,
    answer: Option<&'static str>,
) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let listener = UnixListener::bind(bed.dir.path().join("sockets").join(id)).unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut text = String::new();
            BufReader::new(read)
                .read_to_string(&mut text)
                .await
                .unwrap();
            tx.send(serde_json::from_str::<Value>(text.trim()).unwrap())
                .unwrap();
            match answer {
                Some(answer) => write
                    .write_all(format!("{answer}\n").as_bytes())
                    .await
                    .unwrap(),
                None => tokio::time::sleep(Duration::from_secs(30)).await,
            }
        }
    });
    rx
}

#[tokio::test]
async fn external_plugins_get_the_documented_json_on_their_socket() {
    let bed = Bed::new(&[]);
    let mut received = external(&bed, "mypluginid", Some(r#"{"success": true}"#));
    let bus = bed
        .bus("n", "mypluginid", &[("name", "My Can")])
        .await
        .unwrap();
    bed.supervisor.start(&bus).await.unwrap();
    let start = received.recv().await.unwrap();
    assert_eq!(start["version"], 1);
    assert_eq!(start["action"], "start");
    assert_eq!(
        start["bus"]["plugin"],
        json!({"driver": "mypluginid", "name": "My Can"})
    );
    assert_eq!(start["bus"]["baudrate"], 500000);
    bed.supervisor.stop(&bus).await;
    assert_eq!(received.recv().await.unwrap()["action"], "stop");

    let _refusing = external(
        &bed,
        "refuser",
        Some(r#"{"success": false, "error": "no adapter"}"#),
    );
    let bus = bed.bus("n", "refuser", &[]).await.unwrap();
    assert_eq!(
        bed.supervisor.start(&bus).await.unwrap_err().to_string(),
        "plugin refuser: no adapter"
    );

    // A plugin that goes away (or closes) without answering is said to have done so.
    let _quitter = external(&bed, "quitter", Some(""));
    let bus = bed.bus("n", "quitter", &[]).await.unwrap();
    assert_eq!(
        bed.supervisor.start(&bus).await.unwrap_err().to_string(),
        "plugin quitter: start: external plugin quitter closed the connection without an answer"
    );

    let _silent = external(&bed, "silent", None);
    let bus = bed.bus("n", "silent", &[]).await.unwrap();
    assert_eq!(
        bed.supervisor.start(&bus).await.unwrap_err().to_string(),
        "plugin silent: start: no answer from external plugin silent within 5000 ms"
    );
}

#[tokio::test]
async fn settings_kept_from_an_older_schema_are_merged_at_registration() {
    let bed = Bed::new(&["py"]);
    // What an older version of the plugin left: `greeting` was an integer, `volume` is gone now.
    let stored = bed.dir.path().join("state/plugin-settings/py.json");
    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    std::fs::write(
        &stored,
        json!({
            "schema": {
                "greeting": {"type": "integer", "default": "1", "description": "old"},
                "volume": {"type": "integer", "default": "3", "description": "old"}
            },
            "values": {"greeting": 7, "volume": 11}
        })
        .to_string(),
    )
    .unwrap();
    bed.bus("n", "py", &[]).await.unwrap();
    // The type changed: back to the new default; the removed item is dropped.
    assert_eq!(
        bed.wait_events("py", "registered", 1).await[0]["settings"],
        json!({"greeting": "hello"})
    );
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&stored).unwrap()).unwrap();
    assert_eq!(kept["values"], json!({"greeting": "hello"}));
    assert_eq!(kept["schema"]["greeting"]["type"], "string");
}

#[tokio::test]
async fn an_alias_is_the_same_plugin_under_another_name() {
    let bed = Bed::new(&["py"]);
    bed.add_alias("kv", "py");
    let by_alias = bed.bus("net1", "kv", &[("mode", "ok")]).await.unwrap();
    bed.supervisor.start(&by_alias).await.unwrap();
    let by_name = bed.bus("net2", "py", &[]).await.unwrap();
    bed.supervisor.start(&by_name).await.unwrap();
    let starts = bed.wait_events("py", "start", 2).await;
    assert_eq!(
        starts[0]["pid"], starts[1]["pid"],
        "one process for both names"
    );
    assert_eq!(starts[0]["message"]["bus"]["network_id"], "net1");
    let ids: Vec<String> = bed.supervisor.report().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["py"], "the alias is not a second plugin");
    assert_eq!(bed.report("py").networks, ["net1", "net2"]);
    bed.supervisor.stop(&by_alias).await;
    assert_eq!(bed.report("py").networks, ["net2"]);

    // An alias of something that is not a bundled plugin is refused, naming both.
    bed.add_alias("dangling", "nosuch");
    bed.add_alias("chain", "kv");
    for (alias, target) in [("dangling", "nosuch"), ("chain", "kv")] {
        let err = bed.bus("net3", alias, &[]).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "its plugin.json is an alias of `{target}`, which is not a bundled plugin"
            )),
            "{err}"
        );
    }
}

/// A child that stops reading its pipe fills it, then the daemon's queue to it: a message that
/// cannot be queued within its time marks the child stuck, and it is killed (before, every
/// later message to it, and the Docker call behind it, waited for room for ever).
#[tokio::test]
async fn a_child_that_stops_reading_its_pipe_is_killed() {
    let bed = Bed::new(&["py"]);
    let deaf = bed.bus("deaf", "py", &[("mode", "deaf")]).await.unwrap();
    let pid = bed.report("py").pid.unwrap();
    // The first start is the last message it reads; the others fill the pipe (64 KiB) and the
    // queue (256 messages), and the ones after wait for room until they give up.
    let starts = (0..800).map(|_| bed.supervisor.start(&deaf));
    let results = tokio::time::timeout(TIMEOUT * 4, futures_util::future::join_all(starts))
        .await
        .expect("every start ends within its timeout, queueing included");
    assert!(results.iter().all(Result::is_err));
    let stalled = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .find(|e| e.to_string().contains("the peer read nothing"));
    assert!(stalled.is_some(), "{:?}", results.last());
    // It read nothing after its first start (its restart, once killed, may have registered
    // again by now: that process's events follow).
    let events: Vec<String> = bed
        .events("py")
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    let deaf = events.iter().position(|e| e == "deaf");
    let after: Vec<&String> = deaf
        .map(|at| {
            events[at + 1..]
                .iter()
                .take_while(|e| *e != "registered")
                .collect()
        })
        .unwrap_or_default();
    assert!(deaf.is_some() && after.is_empty(), "{events:?}");
    let start = Instant::now();
    while bed.report("py").pid == Some(pid) {
        assert!(start.elapsed() < TIMEOUT, "pid {pid} still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last_error = bed.report("py").last_error.unwrap_or_default();
    assert!(
        last_error.contains("it read nothing from its pipe for 5000 ms"),
        "{last_error}"
    );
}

/// `stop` carries the bus as `start` did, typed (`3`), though the driver gives it the options
/// as text (`"3"`): the plugin sees one bus, not two spellings of it.
#[tokio::test]
async fn stop_carries_the_bus_typed_as_start_did() {
    let bed = Bed::new(&["py"]);
    let bus = bed.bus("net1", "py", &[("count", "3")]).await.unwrap();
    bed.supervisor.start(&bus).await.unwrap();
    let options = BTreeMap::from([("count".to_owned(), "3".to_owned())]);
    let as_text = Bus {
        plugin: Prepared::untyped(&id("py"), &options).plugin,
        ..bus.clone()
    };
    assert_eq!(as_text.plugin["count"], "3");
    bed.supervisor.stop(&as_text).await;
    let start = &bed.wait_events("py", "start", 1).await[0]["message"]["bus"];
    let stop = &bed.wait_events("py", "stop", 1).await[0]["message"]["bus"];
    assert_eq!(stop["plugin"]["count"], 3);
    assert_eq!(stop, start);
}

/// A value the running plugin refuses is not kept; two changes at once both stay; a settings
/// file that cannot be read is set aside and the plugin registers with its defaults.
#[tokio::test]
async fn settings_changes_are_kept_only_when_taken_and_none_is_lost() {
    let bed = Bed::new(&["py"]);
    let settings = bed.dir.path().join("state/plugin-settings");
    std::fs::create_dir_all(&settings).unwrap();
    std::fs::write(settings.join("py.json"), "{ not json").unwrap();
    std::fs::write(
        bed.dir.path().join("bundled/py/settings.json"),
        r#"{"greeting": {"type": "string", "default": "hello", "description": "a word"},
            "farewell": {"type": "string", "default": "bye", "description": "another"}}"#,
    )
    .unwrap();
    bed.bus("n", "py", &[]).await.unwrap();
    assert_eq!(
        bed.wait_events("py", "registered", 1).await[0]["settings"],
        json!({"greeting": "hello", "farewell": "bye"})
    );
    assert_eq!(
        std::fs::read_to_string(settings.join("py.json.unreadable")).unwrap(),
        "{ not json"
    );

    let py = id("py");
    let err = bed
        .supervisor
        .set_setting(&py, "greeting", "refuse")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused on purpose"), "{err}");
    assert_eq!(
        Value::Object(bed.supervisor.settings(&py).unwrap()),
        json!({"greeting": "hello", "farewell": "bye"})
    );

    for round in 0..10 {
        let (greeting, farewell) = (format!("hi{round}"), format!("bye{round}"));
        let (a, b) = tokio::join!(
            bed.supervisor.set_setting(&py, "greeting", &greeting),
            bed.supervisor.set_setting(&py, "farewell", &farewell),
        );
        a.unwrap();
        b.unwrap();
        assert_eq!(
            Value::Object(bed.supervisor.settings(&py).unwrap()),
            json!({"greeting": greeting, "farewell": farewell}),
            "round {round}"
        );
    }
}

/// A channel to oneself would bring a plugin's data back to it through the daemon for ever:
/// refused, saying so.
#[tokio::test]
async fn a_plugin_cannot_open_a_channel_to_itself() {
    let bed = Bed::new(&["pya"]);
    let bus = bed.bus("n", "pya", &[("peer", "pya")]).await.unwrap();
    bed.supervisor.start(&bus).await.unwrap();
    let open = &bed.wait_events("pya", "channel.open", 1).await[0];
    assert_eq!(
        open["error"], "plugin pya cannot open a channel to itself",
        "{open}"
    );
}
