//! The daemon binary as Docker meets it: a process that serves HTTP on a Unix socket, refuses
//! to start without CAP_NET_ADMIN, and stops cleanly on SIGTERM. No CAN kernel is needed here;
//! what touches CAN or Docker is proven in the VM (tests/e2e).

use std::{
    fs,
    os::unix::{
        fs::{FileTypeExt, PermissionsExt},
        process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use caps::{CapSet, Capability};
use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, Request, StatusCode};
use hyper_util::rt::TokioIo;
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use serde_json::{json, Value};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_vxbus");

/// A daemon started in a temporary directory, with its output (stdout and stderr) in a file.
struct Daemon {
    child: Child,
    dir: TempDir,
}

impl Daemon {
    fn command(dir: &Path) -> Command {
        let log = fs::File::create(dir.join("output.log")).unwrap();
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("VXBUS_SOCKET", dir.join("run/vxbus.sock"))
            .env("VXBUS_STATE_DIR", dir.join("state"))
            .env("VXBUS_PLUGIN_SOCKET_DIR", dir.join("plugins"))
            .env("VXBUS_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        command
    }

    fn spawn_with(configure: impl FnOnce(&mut Command)) -> Daemon {
        Daemon::spawn_in(tempfile::tempdir().unwrap(), configure)
    }

    fn spawn_in(dir: TempDir, configure: impl FnOnce(&mut Command)) -> Daemon {
        let mut command = Daemon::command(dir.path());
        configure(&mut command);
        let child = command.spawn().expect("spawning the vxbus binary");
        Daemon { child, dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/vxbus.sock")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("output.log")).unwrap()
    }

    /// Waits until the socket accepts connections, failing with the daemon's log if it exits.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the daemon exited ({status}) before serving; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no socket after 20 s; log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                self.child.kill().unwrap();
                panic!(
                    "the daemon did not exit within {within:?}; log:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(&self) {
        let pid = Pid::from_raw(self.child.id().try_into().unwrap());
        kill(pid, Signal::SIGTERM).unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Posts like Docker's plugin client: HTTP/1.1, no Content-Type, JSON body.
fn post(socket: &Path, path: &str, body: &str) -> (StatusCode, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::post(path)
            .header("Host", "plugin")
            .header("Accept", "application/vnd.docker.plugins.v1.2+json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).expect("a JSON answer"),
        )
    })
}

/// Whether this process has CAP_NET_ADMIN, which the daemon needs; says so when skipping.
fn net_admin_or_skip() -> bool {
    let have = caps::has_cap(None, CapSet::Effective, Capability::CAP_NET_ADMIN).unwrap();
    if !have {
        eprintln!("skipped: this test process lacks CAP_NET_ADMIN (run the tests as root)");
    }
    have
}

#[test]
fn serves_the_handshake_refuses_the_rest_and_stops_cleanly_on_sigterm() {
    if !net_admin_or_skip() {
        return;
    }
    let mut daemon = Daemon::spawn_with(|_| {});
    daemon.wait_ready();

    let (status, body) = post(&daemon.socket(), "/Plugin.Activate", "");
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"Implements": ["NetworkDriver"]}))
    );

    let create = r#"{"NetworkID":"abc","Options":{"com.docker.network.generic":{"type":"j1939"}}}"#;
    let (status, body) = post(&daemon.socket(), "/NetworkDriver.CreateNetwork", create);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err = body["Err"].as_str().unwrap();
    assert!(
        err.starts_with("option `type`: `j1939` is not allowed"),
        "{err}"
    );

    // The directories the later modules use exist once the daemon is ready.
    assert!(daemon.dir.path().join("state").is_dir());
    assert!(daemon.dir.path().join("plugins").is_dir());

    daemon.terminate();
    let status = daemon.wait_exit(Duration::from_secs(15));
    let log = daemon.log();
    assert!(status.success(), "exit {status} after SIGTERM; log:\n{log}");
    assert!(!daemon.socket().exists(), "the socket was left behind");
    for line in [
        "ready: serving Docker's network driver protocol",
        "received SIGTERM",
        "stopped cleanly",
    ] {
        assert!(log.contains(line), "no `{line}` in the log:\n{log}");
    }
    // A refused call is logged with what it was about.
    assert!(
        log.contains("CreateNetwork of network abc refused: option `type`"),
        "{log}"
    );
    // A kernel without CAN (this test's usual host) is named at start, with the fix.
    if !std::path::Path::new("/proc/net/can").exists() {
        assert!(
            log.contains("not loaded; load them on the host with `modprobe -a"),
            "{log}"
        );
    }
    // The state file is written at start, after reconciling.
    assert!(daemon.dir.path().join("state/state.json").is_file());
}

#[test]
fn replaces_a_stale_socket_but_not_another_file() {
    if !net_admin_or_skip() {
        return;
    }
    // A socket file left behind by a daemon that was killed.
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("run/vxbus.sock");
    fs::create_dir_all(stale.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let mut daemon = Daemon::spawn_in(dir, |_| {});
    daemon.wait_ready();
    assert!(fs::symlink_metadata(daemon.socket())
        .unwrap()
        .file_type()
        .is_socket());
    let (status, _) = post(&daemon.socket(), "/Plugin.Activate", "");
    assert_eq!(status, StatusCode::OK);
    assert!(
        daemon.log().contains("removing the stale socket"),
        "{}",
        daemon.log()
    );

    // A regular file where the socket should be is never removed.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("run/vxbus.sock");
    fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    fs::write(&blocker, "keep me").unwrap();
    let mut daemon = Daemon::spawn_in(dir, |_| {});
    let status = daemon.wait_exit(Duration::from_secs(15));
    let log = daemon.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert_eq!(fs::read_to_string(&blocker).unwrap(), "keep me");
    assert!(
        log.contains("is not a socket: refusing to replace it"),
        "{log}"
    );

    // Nor where the control socket goes (it was removed, whatever it was).
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("state/control.sock");
    fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    fs::write(&blocker, "keep me too").unwrap();
    let mut daemon = Daemon::spawn_in(dir, |_| {});
    let status = daemon.wait_exit(Duration::from_secs(15));
    let log = daemon.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert_eq!(fs::read_to_string(&blocker).unwrap(), "keep me too");
    assert!(
        log.contains("control.sock exists and is not a socket: refusing to replace it"),
        "{log}"
    );
}

#[test]
fn a_second_daemon_on_the_same_state_directory_refuses_to_start() {
    if !net_admin_or_skip() {
        return;
    }
    let mut first = Daemon::spawn_with(|_| {});
    first.wait_ready();
    let state = first.dir.path().join("state");
    let mut second = Daemon::spawn_with(|command| {
        command.env("VXBUS_STATE_DIR", &state);
    });
    let status = second.wait_exit(Duration::from_secs(15));
    let log = second.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        log.contains("another vxbus daemon uses the state directory"),
        "{log}"
    );
    // The first one still serves, its control socket untouched.
    let (status, _) = post(&first.socket(), "/Plugin.Activate", "");
    assert_eq!(status, StatusCode::OK);
    assert!(state.join("control.sock").exists());
}

#[test]
fn refuses_to_start_without_cap_net_admin_and_says_how_to_grant_it() {
    let mut daemon = Daemon::spawn_with(|command| {
        // SAFETY: between fork and exec only async-signal-safe calls are allowed; dropping a
        // capability from the bounding set is a single prctl. Root regains the bounding set as
        // its effective set at exec, so the daemon starts without CAP_NET_ADMIN.
        unsafe {
            command.pre_exec(|| {
                caps::drop(None, CapSet::Bounding, Capability::CAP_NET_ADMIN)
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::PermissionDenied))?;
                caps::drop(None, CapSet::Inheritable, Capability::CAP_NET_ADMIN)
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::PermissionDenied))?;
                Ok(())
            });
        }
    });
    let status = daemon.wait_exit(Duration::from_secs(15));
    let log = daemon.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(log.contains("vxbus needs CAP_NET_ADMIN"), "{log}");
    assert!(log.contains("--grant-all-permissions"), "{log}");
    assert!(
        !daemon.socket().exists(),
        "a socket was bound without the capability"
    );
}

#[test]
fn refuses_a_log_level_that_is_not_one_and_names_the_setting() {
    let mut daemon = Daemon::spawn_with(|command| {
        command.env("VXBUS_LOG", "verbose");
    });
    let status = daemon.wait_exit(Duration::from_secs(15));
    let log = daemon.log();
    assert_eq!(status.code(), Some(2), "log:\n{log}");
    assert!(
        log.contains("VXBUS_LOG (--log) `verbose` is not a log level"),
        "{log}"
    );
    assert!(
        log.contains("off, error, warn, info, debug, trace"),
        "{log}"
    );
}

/// Runs the host-side `vxbus` command against `daemon`'s control socket: (success, stdout+stderr).
fn ctl(daemon: &Daemon, args: &[&str]) -> (bool, String) {
    let output = Command::new(BIN)
        .env_clear()
        .env("VXBUS_STATE_DIR", daemon.dir.path().join("state"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// One raw request line to `daemon`'s control socket, as another program could send it, and
/// the daemon's answer.
fn control_request(daemon: &Daemon, line: &str) -> Value {
    use std::io::{BufRead, Write};
    let socket = daemon.dir.path().join("state/control.sock");
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut answer)
        .unwrap();
    serde_json::from_str(&answer).unwrap()
}

/// The Python test plugin (tests/pyplugin) bundled as `id` under `<dir>/bundled`; its source
/// directory.
fn bundle(dir: &Path, id: &str) -> PathBuf {
    let bundled = dir.join("bundled").join(id);
    fs::create_dir_all(&bundled).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyplugin");
    for file in ["plugin.json", "plugin.py"] {
        fs::copy(source.join(file), bundled.join(file)).unwrap();
    }
    source
}

impl Daemon {
    /// A daemon, ready, running the plugins bundled in `<dir>/bundled`.
    fn with_plugins(dir: TempDir) -> Daemon {
        let plugin_dir = dir.path().join("bundled");
        let mut daemon = Daemon::spawn_in(dir, |command| {
            command
                .env("VXBUS_PLUGIN_DIR", &plugin_dir)
                .env("PATH", std::env::var_os("PATH").unwrap());
        });
        daemon.wait_ready();
        daemon
    }
}

/// A child plugin runs as a user of its own (uid 0 kept its way to everything the daemon
/// has): from inside it, the daemon's state, another plugin's settings and data, the control
/// socket, Docker's plugin socket and the daemon's process are all out of reach, while its own
/// data directory is its to write.
#[test]
fn a_plugin_cannot_touch_the_daemon_its_state_or_another_plugin() {
    if !net_admin_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path(), "py");
    bundle(dir.path(), "intruder");
    let mut daemon = Daemon::with_plugins(dir);
    let root = daemon.dir.path().to_owned();
    let (ok, out) = ctl(&daemon, &["set", "py", "greeting=hi"]);
    assert!(ok, "{out}");
    let state = root.join("state/state.json");
    assert!(state.exists(), "the daemon keeps no state.json yet");
    let state_before = fs::read(&state).unwrap();
    let path = |p: &str| root.join(p).display().to_string();
    let attacks = json!([
        ["write", path("state/state.json")],
        ["read", path("state/plugin-settings/py.json")],
        ["write", path("state/plugin-settings/py.json")],
        ["write", path("state/plugin-data/py/events.jsonl")],
        ["connect", path("state/control.sock")],
        ["connect", path("run/vxbus.sock")],
        ["rebind", path("run/vxbus.sock")],
        ["kill", daemon.child.id().to_string()],
        ["write", path("state/plugin-data/intruder/mine")],
    ]);
    fs::write(
        root.join("bundled/intruder/attacks.json"),
        attacks.to_string(),
    )
    .unwrap();
    let (ok, out) = ctl(&daemon, &["set", "intruder", "greeting=x"]);
    assert!(ok, "{out}");
    let events = fs::read_to_string(root.join("state/plugin-data/intruder/events.jsonl")).unwrap();
    let results = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "attacks")
        .unwrap_or_else(|| panic!("no attacks recorded: {events}"))["results"]
        .clone();
    let outcome: Vec<String> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}: {}",
                r[0].as_str().unwrap(),
                r[1].as_str().unwrap(),
                r[2].as_str().unwrap()
            )
        })
        .collect();
    let expected: Vec<String> = attacks
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let result = match (i, a[0].as_str().unwrap()) {
                (8, _) => "ok",
                (_, "kill") => "EPERM",
                _ => "EACCES",
            };
            format!(
                "{} {}: {result}",
                a[0].as_str().unwrap(),
                a[1].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(outcome, expected);
    assert_eq!(fs::read(&state).unwrap(), state_before);
    let (ok, out) = ctl(&daemon, &["settings", "py"]);
    assert_eq!((ok, out.as_str()), (true, "greeting = hi\n"));
    let (status, _) = post(&daemon.socket(), "/Plugin.Activate", "{}");
    assert_eq!(status, StatusCode::OK);
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon died"
    );

    // A change of user clears the parent-death signal: it is set after, so a plugin still
    // dies with a daemon that is killed outright (this one never reads its pipe, so only the
    // signal ends it).
    let sleeper = root.join("bundled/sleeper");
    fs::create_dir_all(&sleeper).unwrap();
    fs::write(sleeper.join("plugin.json"), r#"{"executable": "run.sh"}"#).unwrap();
    fs::write(
        sleeper.join("run.sh"),
        "#!/bin/sh\necho $$ >\"$VXBUS_PLUGIN_DATA_DIR/pid\"\nexec sleep 1000\n",
    )
    .unwrap();
    fs::set_permissions(sleeper.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let pid_file = root.join("state/plugin-data/sleeper/pid");
    let setter = {
        let state = root.join("state");
        thread::spawn(move || {
            Command::new(BIN)
                .env_clear()
                .env("VXBUS_STATE_DIR", state)
                .args(["set", "sleeper", "x=1"])
                .output()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(pid) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the sleeper did not start");
        thread::sleep(Duration::from_millis(20));
    };
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let _ = setter.join();
    let deadline = Instant::now() + Duration::from_secs(5);
    while kill(Pid::from_raw(pid), None).is_ok() {
        if Instant::now() > deadline {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            panic!("plugin process {pid} outlived the killed daemon");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn host_commands_list_plugins_and_change_settings_through_the_control_socket() {
    if !net_admin_or_skip() {
        return;
    }
    // The Python test plugin as the one bundled plugin.
    let dir = tempfile::tempdir().unwrap();
    let source = bundle(dir.path(), "py");
    let mut daemon = Daemon::with_plugins(dir);
    let control = daemon.dir.path().join("state/control.sock");
    let meta = fs::symlink_metadata(&control).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "the control socket's mode"
    );

    // A client that sends nothing holds up no other, and is let go after 5 s; a request line
    // longer than 64 KiB is refused, not read on.
    let silent = std::os::unix::net::UnixStream::connect(&control).unwrap();
    let (ok, out) = ctl(&daemon, &["networks"]);
    assert!(ok, "{out}");
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut rest = Vec::new();
    let read = std::io::Read::read_to_end(&mut &silent, &mut rest);
    assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
    let long = format!(r#"{{"cmd":"networks","pad":"{}"}}"#, "x".repeat(70_000));
    let answer = control_request(&daemon, &long);
    assert_eq!(
        answer["error"], "a request longer than 65536 bytes",
        "{answer}"
    );

    let (ok, out) = ctl(&daemon, &["plugins"]);
    assert!(ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("py ") && l.contains("stopped")),
        "{out}"
    );

    // Changing a setting runs the plugin (its schema comes from it) and keeps the value.
    let (ok, out) = ctl(&daemon, &["set", "py", "greeting=hi"]);
    assert!(ok, "{out}");
    assert_eq!(out, "greeting = hi\n");
    let (ok, out) = ctl(&daemon, &["settings", "py"]);
    assert_eq!((ok, out.as_str()), (true, "greeting = hi\n"));
    let (ok, out) = ctl(&daemon, &["--json", "plugins"]);
    assert!(ok, "{out}");
    let plugins: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plugins[0]["status"], "running");
    assert_eq!(
        plugins[0]["info"]["settings"]["greeting"]["default"],
        "hello"
    );

    let (ok, out) = ctl(&daemon, &["set", "py", "volume=11"]);
    assert!(!ok);
    assert_eq!(
        out,
        "vxbus: volume is not an item of plugin py; its items: greeting\n"
    );
    let (ok, out) = ctl(&daemon, &["set", "py", "greeting"]);
    assert_eq!(
        (ok, out.as_str()),
        (false, "vxbus: `greeting` is not ITEM=VALUE\n")
    );
    let (ok, out) = ctl(&daemon, &["networks"]);
    assert!(ok, "{out}");
    assert!(out.starts_with("NETWORK"), "{out}");

    // A plugin id that is a path is refused where the request is read, by the host-side
    // command and by the daemon itself: no manifest is read outside the bundled directory and
    // nothing it names is run (here a copy of the test plugin one level up).
    let decoy = daemon.dir.path().join("decoy");
    fs::create_dir_all(&decoy).unwrap();
    for file in ["plugin.json", "plugin.py"] {
        fs::copy(source.join(file), decoy.join(file)).unwrap();
    }
    let (ok, out) = ctl(&daemon, &["settings", "../decoy"]);
    assert!(
        !ok && out.contains("`../decoy` is not a plugin id"),
        "{out}"
    );
    for request in [
        r#"{"cmd":"set","plugin":"../decoy","assignment":"greeting=x"}"#,
        r#"{"cmd":"settings","plugin":"/tmp/x"}"#,
    ] {
        let answer = control_request(&daemon, request);
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("not a control request: ") && error.contains("is not a plugin id"),
            "{request}: {answer}"
        );
    }
    let (ok, out) = ctl(&daemon, &["--json", "plugins"]);
    assert!(ok, "{out}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // The child dies with the daemon.
    let pid = plugins[0]["pid"].as_i64().unwrap() as i32;
    daemon.terminate();
    assert!(daemon.wait_exit(Duration::from_secs(15)).success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while kill(Pid::from_raw(pid), None).is_ok() {
        assert!(
            Instant::now() < deadline,
            "plugin process {pid} outlived the daemon"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !daemon.dir.path().join("state/control.sock").exists(),
        "control socket left behind"
    );
    let (ok, out) = ctl(&daemon, &["plugins"]);
    assert!(!ok && out.contains("is the vxbus plugin enabled"), "{out}");
}
