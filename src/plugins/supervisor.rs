//! The supervisor: runs bundled child plugins (one process per plugin id, spawned on first use),
//! tells them and external plugins when a bus they serve starts and stops, restarts crashed
//! children, keeps plugin settings, and relays the plugin registry and channels.
//!
//! Owns: child processes (their pipes, capabilities, stderr, exit), each plugin's status and the
//! buses it serves, settings files under `<state dir>/plugin-settings`, and channel ids. Must not
//! touch: links, gateway rules or the driver's state; the driver tells it what to start and stop.

use std::{
    collections::{BTreeMap, HashMap},
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::process::CommandExt as _,
    },
    path::PathBuf,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    sync::watch,
};

use super::{
    chunk::ChunkCodec,
    conn::{handler, CallError, Connection, Incoming},
    external,
    proto::{
        self, Bus, ChannelOpened, Lifecycle, OpenChannel, PluginInfo, PluginName, Reconfigure,
        Registered,
    },
    schema::{ConfigError, Context, Schema},
};

/// Where bundled plugins live in the managed plugin's root filesystem: `<dir>/<id>/plugin.json`.
pub const DEFAULT_BUNDLED_DIR: &str = "/usr/lib/vxbus/plugins";
/// How long a plugin has to register, and to answer `start` or `stop`.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(5);
/// Crashes in a row (each within [`STABLE_RUN`] of its start) before a plugin is marked failed.
pub const MAX_RESTARTS: u32 = 5;
/// A child that ran this long before exiting is restarted with its count of failures reset.
const STABLE_RUN: Duration = Duration::from_secs(30);

/// A bundled plugin's `plugin.json`: a program to run, or `{"alias_of": "ID"}`, another name
/// for the bundled plugin ID (the same process serves both names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The program, relative to the plugin's directory.
    #[serde(default)]
    pub executable: String,
    /// This id is another name for that bundled plugin.
    #[serde(default)]
    pub alias_of: Option<String>,
    /// The capabilities it keeps (`CAP_NET_RAW`, ...); every other one is dropped before it runs.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// Why a plugin could not do what a network asked. Every message names the plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("plugin.driver `{id}`: no such plugin: not bundled (bundled: {bundled}) and no socket {socket}")]
    Unknown {
        id: String,
        bundled: String,
        socket: String,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The plugin answered with an error, or could not be run or reached.
    #[error("plugin {id}: {message}")]
    Failed { id: String, message: String },
}

impl PluginError {
    /// A refusal of what the user asked (400), rather than a failure of the host (500).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, PluginError::Failed { .. })
    }

    fn failed(id: &str, message: impl Into<String>) -> PluginError {
        PluginError::Failed {
            id: id.to_owned(),
            message: message.into(),
        }
    }
}

/// Where the supervisor finds plugins and keeps their files.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    pub bundled_dir: PathBuf,
    /// The host state directory: settings go under `plugin-settings/`, plugin data under `plugin-data/<id>/`.
    pub state_dir: PathBuf,
    /// External plugins' sockets: `<dir>/<id>`.
    pub socket_dir: PathBuf,
    pub start_timeout: Duration,
    /// The first restart's delay; each next one doubles it.
    pub restart_backoff: Duration,
}

/// The first restart's delay in the managed plugin.
pub const DEFAULT_RESTART_BACKOFF: Duration = Duration::from_millis(500);

/// A plugin's status, as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not running (never used, or its last bus stopped and it exited).
    Stopped,
    Starting,
    Running,
    /// Crashed too often; its buses work without it until a new network names it.
    Failed,
}

/// One plugin, for listings.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    pub id: String,
    pub status: Status,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub last_error: Option<String>,
    pub networks: Vec<String>,
    pub info: Option<PluginInfo>,
}

/// What is kept of a plugin's settings between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredSettings {
    schema: Schema,
    values: Map<String, Value>,
}

struct ChildState {
    status: Status,
    conn: Option<Connection>,
    info: Option<PluginInfo>,
    pid: Option<u32>,
    restarts: u32,
    /// Why its last process ended (or could not start), for `vxbus plugins` and refusals.
    last_error: Option<String>,
    /// Why the daemon is ending the current process (killed after a timeout, refused at
    /// registration); added to `last_error` when the process exits, then cleared.
    run_error: Option<String>,
    /// The buses it serves, by network id: replayed after a restart.
    networks: BTreeMap<String, Bus>,
    /// Bumped at each spawn: a late event of an earlier process is ignored.
    generation: u64,
}

impl ChildState {
    /// The connection, while the plugin is registered and running.
    fn running_conn(&self) -> Option<Connection> {
        self.conn.clone().filter(|_| self.status == Status::Running)
    }
}

struct Child {
    id: String,
    dir: PathBuf,
    manifest: Manifest,
    state: Mutex<ChildState>,
    /// Told whenever `status` changes.
    changed: watch::Sender<()>,
}

impl Child {
    fn lock(&self) -> std::sync::MutexGuard<'_, ChildState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_status(&self, status: Status) {
        self.lock().status = status;
        self.changed.send_replace(());
    }
}

struct Channel {
    ends: [String; 2],
}

/// The supervisor. Share it in an `Arc`; [`Supervisor::shutdown`] stops every child.
pub struct Supervisor {
    config: SupervisorConfig,
    children: Mutex<BTreeMap<String, Arc<Child>>>,
    channels: Mutex<HashMap<u64, Channel>>,
    next_channel: AtomicU64,
    shutting_down: AtomicBool,
}

/// A plugin ready for a network: the typed `plugin` map for its [`Bus`].
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plugin: Map<String, Value>,
}

impl Prepared {
    /// `driver` and the items as given, as text: what an external plugin gets, and what `stop`
    /// carries when the typed values are not at hand (the plugin may be gone).
    pub fn untyped(driver: &str, options: &BTreeMap<String, String>) -> Prepared {
        let mut plugin = Map::new();
        plugin.insert("driver".into(), Value::from(driver));
        plugin.extend(
            options
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str()))),
        );
        Prepared { plugin }
    }
}

impl Supervisor {
    pub fn new(config: SupervisorConfig) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            config,
            children: Mutex::new(BTreeMap::new()),
            channels: Mutex::new(HashMap::new()),
            next_channel: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
        })
    }

    fn bundled_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.config.bundled_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("plugin.json").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids
    }

    /// `<bundled dir>/<id>/plugin.json`, parsed; `None` when there is none (`id` is not bundled).
    fn manifest(&self, id: &str) -> Result<Option<Manifest>, PluginError> {
        let path = self.config.bundled_dir.join(id).join("plugin.json");
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(PluginError::failed(
                    id,
                    format!("reading {}: {err}", path.display()),
                ))
            }
        };
        serde_json::from_slice(&text).map(Some).map_err(|e| {
            PluginError::failed(
                id,
                format!("{} is not a plugin manifest: {e}", path.display()),
            )
        })
    }

    /// The child for a bundled `id`, read from its manifest the first time; an alias gives its
    /// plugin's child.
    fn child(&self, id: &str) -> Result<Option<Arc<Child>>, PluginError> {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(child) = children.get(id) {
            return Ok(Some(child.clone()));
        }
        let Some(manifest) = self.manifest(id)? else {
            return Ok(None);
        };
        let (id, manifest) =
            match manifest.alias_of {
                None => (id.to_owned(), manifest),
                Some(target) => {
                    let plain_name =
                        !target.is_empty() && !target.contains('/') && !target.starts_with('.');
                    let plugin = plain_name
                        .then(|| self.manifest(&target).ok().flatten())
                        .flatten()
                        .filter(|m| m.alias_of.is_none());
                    let Some(plugin) = plugin else {
                        return Err(PluginError::failed(
                            id,
                            format!(
                            "its plugin.json is an alias of `{target}`, which is not a bundled \
                             plugin ({} is missing or is itself an alias)",
                            self.config.bundled_dir.join(&target).join("plugin.json").display()
                        ),
                        ));
                    };
                    if let Some(child) = children.get(&target) {
                        return Ok(Some(child.clone()));
                    }
                    (target, plugin)
                }
            };
        let dir = self.config.bundled_dir.join(&id);
        if manifest.executable.is_empty() {
            return Err(PluginError::failed(
                &id,
                format!("{} names no executable", dir.join("plugin.json").display()),
            ));
        }
        let child = Arc::new(Child {
            id: id.clone(),
            dir,
            manifest,
            state: Mutex::new(ChildState {
                status: Status::Stopped,
                conn: None,
                info: None,
                pid: None,
                restarts: 0,
                last_error: None,
                run_error: None,
                networks: BTreeMap::new(),
                generation: 0,
            }),
            changed: watch::Sender::new(()),
        });
        children.insert(id, child.clone());
        Ok(Some(child))
    }

    fn socket(&self, id: &str) -> PathBuf {
        self.config.socket_dir.join(id)
    }

    /// Makes sure the plugin `id` can serve a network with `options` (`plugin.*` items, prefix
    /// removed): a bundled one runs and accepts them (typed against its schema); an external
    /// one has its socket. Nothing is started for the network yet.
    pub async fn prepare(
        self: &Arc<Self>,
        id: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Prepared, PluginError> {
        let Some(child) = self.child(id)? else {
            if !self.socket(id).exists() {
                return Err(PluginError::Unknown {
                    id: id.to_owned(),
                    bundled: match self.bundled_ids() {
                        ids if ids.is_empty() => "none".into(),
                        ids => ids.join(", "),
                    },
                    socket: self.socket(id).display().to_string(),
                });
            }
            return Ok(Prepared::untyped(id, options));
        };
        let (_, info) = self.ensure_running(&child).await?;
        let typed = info.config.resolve(
            options,
            Context {
                plugin: id,
                prefix: "plugin.",
            },
        )?;
        let mut prepared = Prepared::untyped(id, &BTreeMap::new());
        prepared.plugin.extend(typed);
        Ok(prepared)
    }

    /// Tells the bus's plugin to start serving it, waiting up to the start timeout.
    pub async fn start(self: &Arc<Self>, bus: &Bus) -> Result<(), PluginError> {
        let id = driver_of(bus);
        let message = lifecycle("start", bus);
        match self.child(id)? {
            Some(child) => {
                let (conn, _) = self.ensure_running(&child).await?;
                self.call_lifecycle(&child, &conn, proto::START, &message)
                    .await?;
                child
                    .lock()
                    .networks
                    .insert(bus.network_id.clone(), bus.clone());
                tracing::info!(plugin = %id, "plugin {id} started serving network {}", bus.network_id);
                Ok(())
            }
            None => self.send_external(id, &message).await,
        }
    }

    async fn send_external(&self, id: &str, message: &Lifecycle) -> Result<(), PluginError> {
        external::send(&self.socket(id), id, message, self.config.start_timeout)
            .await
            .map_err(|message| PluginError::failed(id, message))
    }

    /// Tells the bus's plugin to stop serving it: best effort, failures logged.
    pub async fn stop(self: &Arc<Self>, bus: &Bus) {
        let id = driver_of(bus);
        let message = lifecycle("stop", bus);
        let result = match self.child(id) {
            Ok(Some(child)) => {
                let conn = {
                    let mut state = child.lock();
                    state.networks.remove(&bus.network_id);
                    state.running_conn()
                };
                match conn {
                    Some(conn) => {
                        self.call_lifecycle(&child, &conn, proto::STOP, &message)
                            .await
                    }
                    None => Err(PluginError::failed(id, "not running; nothing to tell")),
                }
            }
            Ok(None) => self.send_external(id, &message).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => {
                tracing::info!(plugin = %id, "plugin {id} stopped serving network {}", bus.network_id)
            }
            Err(err) => {
                tracing::warn!(plugin = %id, "stop of network {}: {err}; the network is removed anyway", bus.network_id)
            }
        }
    }

    async fn call_lifecycle(
        &self,
        child: &Child,
        conn: &Connection,
        cmd: &str,
        message: &Lifecycle,
    ) -> Result<(), PluginError> {
        match conn
            .call(cmd, json(message), self.config.start_timeout)
            .await
        {
            Ok(_) => Ok(()),
            Err(CallError::Remote(message)) => Err(PluginError::failed(&child.id, message)),
            Err(err) => Err(PluginError::failed(&child.id, format!("{cmd}: {err}"))),
        }
    }

    /// Starts the child if it does not run, and waits until it has registered.
    async fn ensure_running(
        self: &Arc<Self>,
        child: &Arc<Child>,
    ) -> Result<(Connection, PluginInfo), PluginError> {
        let mut changed = child.changed.subscribe();
        // Running or Starting: the loop below waits for (or finds) the registration.
        let spawn = {
            let mut state = child.lock();
            let idle = matches!(state.status, Status::Stopped | Status::Failed);
            if idle {
                // A new use of a failed plugin tries again, from a clean count.
                if state.status == Status::Failed {
                    state.restarts = 0;
                }
                state.status = Status::Starting;
            }
            idle
        };
        if spawn {
            if let Err(message) = self.spawn(child) {
                child.lock().last_error = Some(message.clone());
                child.set_status(Status::Stopped);
                return Err(PluginError::failed(&child.id, message));
            }
        }
        let deadline = tokio::time::Instant::now() + self.config.start_timeout;
        loop {
            {
                let state = child.lock();
                match state.status {
                    Status::Running => {
                        if let (Some(conn), Some(info)) = (&state.conn, &state.info) {
                            return Ok((conn.clone(), info.clone()));
                        }
                    }
                    Status::Starting => {}
                    Status::Stopped | Status::Failed => {
                        let why = state.last_error.clone().unwrap_or_else(|| "exited".into());
                        return Err(PluginError::failed(
                            &child.id,
                            format!("did not start: {why}"),
                        ));
                    }
                }
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                let message = format!(
                    "did not register within {} ms",
                    self.config.start_timeout.as_millis()
                );
                self.kill(child, &message);
                return Err(PluginError::failed(&child.id, message));
            }
        }
    }

    /// Kills the child's current process (its monitor then sees it exit).
    fn kill(&self, child: &Child, why: &str) {
        let mut state = child.lock();
        state.run_error = Some(why.to_owned());
        if let Some(pid) = state.pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(conn) = state.conn.take() {
            conn.close(why.to_owned());
        }
    }

    /// Spawns the child's process and its monitor. The status is `Starting` until it registers.
    fn spawn(self: &Arc<Self>, child: &Arc<Child>) -> Result<(), String> {
        let program = child.dir.join(&child.manifest.executable);
        let keep = capabilities(&child.manifest.capabilities)?;
        let data_dir = self.config.state_dir.join("plugin-data").join(&child.id);
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
        // Two pipes: the child reads chunks on fd 3 and writes them on fd 4; its stdout and
        // stderr are only for logs.
        let (to_child_r, to_child_w) = pipe()?;
        let (from_child_r, from_child_w) = pipe()?;
        let (to_child_r, from_child_w) = (above_four(to_child_r)?, above_four(from_child_w)?);
        let (child_r, child_w) = (to_child_r.as_raw_fd(), from_child_w.as_raw_fd());
        let drop_caps = drop_list(&keep)?;
        let mut command = tokio::process::Command::new(&program);
        command
            .current_dir(&child.dir)
            .env(proto::ENV_CHUNK_FDS, "3,4")
            .env(proto::ENV_PLUGIN_ID, &child.id)
            .env(proto::ENV_DATA_DIR, &data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: only async-signal-safe calls (dup2, prctl, capset) between fork and exec; the
        // lists they use were built before the fork.
        unsafe {
            command
                .as_std_mut()
                .pre_exec(move || child_setup(child_r, child_w, &drop_caps));
        }
        let mut process = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        drop((to_child_r, from_child_w));
        let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(from_child_r)
            .map_err(|e| e.to_string())?;
        let writer =
            tokio::net::unix::pipe::Sender::from_owned_fd(to_child_w).map_err(|e| e.to_string())?;
        let generation = {
            let mut state = child.lock();
            state.generation += 1;
            state.run_error = None;
            state.pid = process.id();
            state.generation
        };
        for (stream, name) in [
            (
                process
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
                "stderr",
            ),
            (
                process
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
                "stdout",
            ),
        ] {
            if let Some(stream) = stream {
                tokio::spawn(forward_lines(child.id.clone(), name, stream));
            }
        }
        let conn = Connection::spawn(
            format!("plugin {}", child.id),
            reader,
            writer,
            ChunkCodec::default(),
            self.host_handler(child.clone(), generation),
        );
        child.lock().conn = Some(conn.clone());
        tracing::info!(plugin = %child.id, "plugin {} spawned (pid {}), keeping capabilities: {}", child.id,
            process.id().unwrap_or(0), if child.manifest.capabilities.is_empty() { "none".into() } else { child.manifest.capabilities.join(", ") });
        let supervisor = self.clone();
        let child = child.clone();
        let started = Instant::now();
        tokio::spawn(async move {
            let status = process.wait().await;
            conn.close(format!("plugin {} exited", child.id));
            supervisor
                .exited(
                    &child,
                    generation,
                    started,
                    status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|e| e.to_string()),
                )
                .await;
        });
        Ok(())
    }

    /// A child's process exited: restart it with backoff while it serves buses.
    async fn exited(
        self: &Arc<Self>,
        child: &Arc<Child>,
        generation: u64,
        started: Instant,
        how: String,
    ) {
        let (networks, restarts) = {
            let mut state = child.lock();
            if state.generation != generation {
                return;
            }
            state.pid = None;
            state.conn = None;
            let was = std::mem::replace(&mut state.status, Status::Stopped);
            if self.shutting_down.load(Ordering::SeqCst) {
                drop(state);
                child.changed.send_replace(());
                return;
            }
            let error = match state.run_error.take() {
                Some(why) => format!("{how} ({why})"),
                None => how.clone(),
            };
            state.last_error = Some(error);
            if started.elapsed() >= STABLE_RUN {
                state.restarts = 0;
            }
            if was == Status::Running || !state.networks.is_empty() {
                state.restarts += 1;
            }
            (state.networks.clone(), state.restarts)
        };
        self.disconnected(&child.id).await;
        child.changed.send_replace(());
        tracing::warn!(plugin = %child.id, "plugin {} exited: {how}", child.id);
        if networks.is_empty() {
            return;
        }
        if restarts > MAX_RESTARTS {
            tracing::error!(plugin = %child.id, "plugin {} failed {} times in a row: marked failed; its networks ({}) keep working without it",
                child.id, restarts - 1, networks.keys().cloned().collect::<Vec<_>>().join(", "));
            child.set_status(Status::Failed);
            return;
        }
        let delay = self.config.restart_backoff * (1 << (restarts - 1).min(MAX_RESTARTS));
        tracing::info!(plugin = %child.id, "restarting plugin {} in {} ms (restart {restarts} of at most {MAX_RESTARTS})",
            child.id, delay.as_millis());
        tokio::time::sleep(delay).await;
        if self.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        self.replay(child).await;
    }

    /// Runs the child again and sends `start` for each bus it serves.
    async fn replay(self: &Arc<Self>, child: &Arc<Child>) {
        if let Err(err) = self.ensure_running(child).await {
            tracing::warn!(plugin = %child.id, "{err}");
            return;
        }
        let networks = child.lock().networks.clone();
        for bus in networks.values() {
            if let Err(err) = self.start(bus).await {
                tracing::warn!(plugin = %child.id, "restarting network {} on plugin {}: {err}", bus.network_id, child.id);
            }
        }
    }

    /// At daemon start: the bus existed before; start its plugin for it again. Failures are
    /// logged: the bus itself works without its plugin.
    pub async fn resume(self: &Arc<Self>, bus: Bus) {
        let id = driver_of(&bus).to_owned();
        if let Err(err) = self.start(&bus).await {
            tracing::warn!(plugin = %id, "network {}: its plugin did not start again: {err}", bus.network_id);
            if let Ok(Some(child)) = self.child(&id) {
                // Remember the bus: a later restart of the plugin serves it.
                child.lock().networks.insert(bus.network_id.clone(), bus);
            }
        }
    }

    /// Stops every child (the daemon is stopping): closes each one's pipes, so that it reads
    /// end-of-file and exits on its own (the SDK does, and the logger flushes its file), waits up
    /// to 2 s, then kills what is left.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let children = self.all_children();
        for child in &children {
            if let Some(conn) = child.lock().conn.clone() {
                conn.close("vxbus is stopping");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && children.iter().any(|c| c.lock().pid.is_some()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill_all();
    }

    /// Kills every child now (and stops restarting them). Children also die with the daemon on
    /// their own (parent-death signal).
    pub fn kill_all(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for child in self.all_children() {
            if child.lock().pid.is_some() {
                self.kill(&child, "vxbus is stopping");
            }
        }
    }

    fn all_children(&self) -> Vec<Arc<Child>> {
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Every plugin known, bundled ones included.
    pub fn report(&self) -> Vec<PluginReport> {
        for id in self.bundled_ids() {
            let _ = self.child(&id);
        }
        let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children
            .values()
            .map(|child| {
                let state = child.lock();
                PluginReport {
                    id: child.id.clone(),
                    status: state.status.clone(),
                    pid: state.pid,
                    restarts: state.restarts,
                    last_error: state.last_error.clone(),
                    networks: state.networks.keys().cloned().collect(),
                    info: state.info.clone(),
                }
            })
            .collect()
    }

    fn settings_path(&self, id: &str) -> PathBuf {
        self.config
            .state_dir
            .join("plugin-settings")
            .join(format!("{id}.json"))
    }

    fn load_settings(&self, id: &str) -> Result<Option<StoredSettings>, String> {
        let path = self.settings_path(id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(format!("{}: {err}", path.display())),
        }
    }

    fn save_settings(&self, id: &str, stored: &StoredSettings) -> Result<(), String> {
        let path = self.settings_path(id);
        let bytes = serde_json::to_vec_pretty(stored).expect("settings serialize");
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| crate::state::write_atomically(&path, &bytes))
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Changes one setting of plugin `id`: checked against its schema, kept on disk, and sent to
    /// the running plugin as `reconfigure`. Returns the new settings.
    pub async fn set_setting(
        self: &Arc<Self>,
        id: &str,
        item: &str,
        text: &str,
    ) -> Result<Map<String, Value>, PluginError> {
        let child = self.child(id)?.ok_or_else(|| {
            PluginError::failed(
                id,
                "is not a bundled plugin; only bundled plugins have settings",
            )
        })?;
        // The schema comes from the plugin itself: run it if it never ran here.
        self.ensure_running(&child).await?;
        let mut stored = self
            .load_settings(id)
            .map_err(|m| PluginError::failed(id, m))?
            .unwrap_or_default();
        stored.values = stored.schema.set(
            &stored.values,
            item,
            text,
            Context {
                plugin: id,
                prefix: "",
            },
        )?;
        self.save_settings(id, &stored)
            .map_err(|m| PluginError::failed(id, m))?;
        let conn = child.lock().conn.clone();
        if let Some(conn) = conn {
            let body = json(&Reconfigure {
                settings: stored.values.clone(),
            });
            conn.call(proto::RECONFIGURE, body, self.config.start_timeout)
                .await
                .map_err(|e| PluginError::failed(id, format!("reconfigure: {e}")))?;
        }
        let shown = stored
            .schema
            .0
            .get(item)
            .map(|i| i.shown(&stored.values[item]))
            .unwrap_or_default();
        tracing::info!(plugin = %id, "plugin {id}: setting {item} = {shown}");
        Ok(stored.values)
    }

    /// The plugin's settings now, as stored (empty when it never registered here), passwords
    /// hidden: for showing.
    pub fn settings(&self, id: &str) -> Result<Map<String, Value>, PluginError> {
        let stored = self
            .load_settings(id)
            .map_err(|m| PluginError::failed(id, m))?
            .unwrap_or_default();
        Ok(stored
            .values
            .iter()
            .map(|(name, value)| {
                let shown = match stored.schema.0.get(name) {
                    Some(item) if item.kind == super::schema::ItemType::Password => {
                        Value::from(item.shown(value))
                    }
                    _ => value.clone(),
                };
                (name.clone(), shown)
            })
            .collect())
    }

    /// Answers what a child asks the daemon.
    fn host_handler(self: &Arc<Self>, child: Arc<Child>, generation: u64) -> super::conn::Handler {
        let supervisor = Arc::downgrade(self);
        handler(move |incoming: Incoming| {
            let supervisor = supervisor.upgrade();
            let child = child.clone();
            async move {
                let supervisor = supervisor.ok_or("vxbus is stopping")?;
                supervisor.from_child(&child, generation, incoming).await
            }
        })
    }

    async fn from_child(
        self: &Arc<Self>,
        child: &Arc<Child>,
        generation: u64,
        incoming: Incoming,
    ) -> Result<Bytes, String> {
        match incoming.cmd.as_str() {
            proto::REGISTER => {
                let info: PluginInfo = serde_json::from_slice(&incoming.buffer)
                    .map_err(|e| format!("register: bad plugin information: {e}"))?;
                let settings = self.register(child, generation, info, incoming.conn.clone()).await.inspect_err(|message| {
                    tracing::error!(plugin = %child.id, "plugin {} refused at registration: {message}", child.id);
                    child.lock().run_error = Some(message.clone());
                })?;
                Ok(json(&Registered { settings }))
            }
            proto::PLUGINS_LIST => Ok(json(&self.connected_names())),
            proto::CHANNEL_OPEN => {
                let OpenChannel { to } = serde_json::from_slice(&incoming.buffer)
                    .map_err(|e| format!("channel.open: {e}"))?;
                let target = self
                    .running_conn(&to)
                    .ok_or_else(|| format!("no plugin `{to}` is connected"))?;
                let channel = self.next_channel.fetch_add(1, Ordering::Relaxed);
                self.channels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        channel,
                        Channel {
                            ends: [child.id.clone(), to.clone()],
                        },
                    );
                let opened = ChannelOpened {
                    channel,
                    peer: child.id.clone(),
                };
                target
                    .notify(proto::CHANNEL_OPENED, json(&opened))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(json(&ChannelOpened { channel, peer: to }))
            }
            proto::CHANNEL_DATA | proto::CHANNEL_CLOSE => {
                let channel = if incoming.cmd == proto::CHANNEL_DATA {
                    proto::parse_channel_data(&incoming.buffer)?.0
                } else {
                    proto::parse_channel(&incoming.buffer)?
                };
                let other = {
                    let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
                    let ends = match channels.get(&channel) {
                        Some(c) if c.ends.contains(&child.id) => c.ends.clone(),
                        _ => {
                            return Err(format!(
                                "channel {channel} is not open for plugin {}",
                                child.id
                            ))
                        }
                    };
                    if incoming.cmd == proto::CHANNEL_CLOSE {
                        channels.remove(&channel);
                    }
                    if ends[0] == child.id {
                        ends[1].clone()
                    } else {
                        ends[0].clone()
                    }
                };
                let conn = self
                    .running_conn(&other)
                    .ok_or_else(|| format!("plugin {other} is gone"))?;
                conn.notify(&incoming.cmd, incoming.buffer)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Bytes::new())
            }
            other => Err(format!("unknown command `{other}`")),
        }
    }

    /// A child registered: check its information, merge its settings, mark it running.
    async fn register(
        self: &Arc<Self>,
        child: &Arc<Child>,
        generation: u64,
        info: PluginInfo,
        conn: Connection,
    ) -> Result<Map<String, Value>, String> {
        if info.interface != proto::INTERFACE_VERSION {
            return Err(format!(
                "written to interface {}; this vxbus speaks interface {}",
                info.interface,
                proto::INTERFACE_VERSION
            ));
        }
        info.config.check(&child.id).map_err(|e| e.to_string())?;
        info.settings.check(&child.id).map_err(|e| e.to_string())?;
        let stored = self.load_settings(&child.id)?;
        let values = match &stored {
            Some(stored) => {
                let (values, changes) =
                    info.settings
                        .merge(&stored.schema, &stored.values, &child.id);
                for change in changes {
                    tracing::info!(plugin = %child.id, "plugin {} settings: {change}", child.id);
                }
                values
            }
            None => info
                .settings
                .resolve(
                    &BTreeMap::new(),
                    Context {
                        plugin: &child.id,
                        prefix: "",
                    },
                )
                .map_err(|e| e.to_string())?,
        };
        self.save_settings(
            &child.id,
            &StoredSettings {
                schema: info.settings.clone(),
                values: values.clone(),
            },
        )?;
        {
            let mut state = child.lock();
            if state.generation != generation {
                return Err("registered after being replaced".into());
            }
            tracing::info!(plugin = %child.id, "plugin {} registered: {} {} (type {}, interface {})",
                child.id, info.name, info.version, info.kind, info.interface);
            state.info = Some(info);
            state.conn = Some(conn);
        }
        child.set_status(Status::Running);
        self.broadcast(&child.id, proto::PLUGINS_CONNECTED).await;
        Ok(values)
    }

    fn running_conn(&self, id: &str) -> Option<Connection> {
        let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        let conn = children.get(id)?.lock().running_conn();
        conn
    }

    fn connected_names(&self) -> Vec<String> {
        let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children
            .values()
            .filter(|c| c.lock().status == Status::Running)
            .map(|c| c.id.clone())
            .collect()
    }

    /// Tells every other running plugin that `id` connected or disconnected.
    async fn broadcast(&self, id: &str, cmd: &str) {
        let others: Vec<Connection> = {
            let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
            children
                .values()
                .filter(|c| c.id != id)
                .filter_map(|c| c.lock().running_conn())
                .collect()
        };
        let body = json(&PluginName {
            name: id.to_owned(),
        });
        for conn in others {
            let _ = conn.notify(cmd, body.clone()).await;
        }
    }

    /// A child went away: close its channels and tell the others.
    async fn disconnected(&self, id: &str) {
        let closed: Vec<(u64, String)> = {
            let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<u64> = channels
                .iter()
                .filter(|(_, c)| c.ends.iter().any(|e| e == id))
                .map(|(n, _)| *n)
                .collect();
            ids.into_iter()
                .filter_map(|n| {
                    channels
                        .remove(&n)
                        .map(|c| (n, c.ends.into_iter().find(|e| e != id).unwrap_or_default()))
                })
                .collect()
        };
        for (channel, other) in closed {
            if let Some(conn) = self.running_conn(&other) {
                let _ = conn.notify(proto::CHANNEL_CLOSE, channel.to_string()).await;
            }
        }
        self.broadcast(id, proto::PLUGINS_DISCONNECTED).await;
    }
}

/// A message's JSON body. Every message type here serializes (no maps with non-string keys).
fn json<T: Serialize>(message: &T) -> Bytes {
    serde_json::to_vec(message)
        .expect("a message serializes")
        .into()
}

fn driver_of(bus: &Bus) -> &str {
    bus.plugin
        .get("driver")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn lifecycle(action: &str, bus: &Bus) -> Lifecycle {
    Lifecycle {
        version: proto::LIFECYCLE_VERSION,
        action: action.into(),
        bus: bus.clone(),
    }
}

async fn forward_lines(id: String, stream_name: &'static str, stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "vxbus::plugin", plugin = %id, stream = stream_name, "{line}");
    }
}

/// A pipe whose ends are closed on exec (the child gets its copies by dup2).
fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"))
}

/// `fd` moved to a number of at least 10, so that the child's dup2 to 3 and 4 cannot clobber it.
fn above_four(fd: OwnedFd) -> Result<OwnedFd, String> {
    use std::os::fd::FromRawFd;
    let high = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))
        .map_err(|e| format!("moving a pipe end: {e}"))?;
    // SAFETY: fcntl returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}

fn capabilities(names: &[String]) -> Result<Vec<caps::Capability>, String> {
    names
        .iter()
        .map(|name| {
            name.parse::<caps::Capability>()
                .map_err(|_| format!("plugin.json names an unknown capability `{name}`"))
        })
        .collect()
}

/// The capabilities to drop from the child's bounding set: every one it did not declare, when
/// this process may drop them; none when it has none to pass on (unprivileged tests).
fn drop_list(keep: &[caps::Capability]) -> Result<Vec<u32>, String> {
    let permitted = caps::read(None, caps::CapSet::Permitted).map_err(|e| e.to_string())?;
    let can_drop = caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SETPCAP)
        .unwrap_or(false);
    let extra = permitted.iter().any(|c| !keep.contains(c));
    if !can_drop {
        return if extra && nix::unistd::geteuid().is_root() {
            Err(
                "cannot drop the capabilities the plugin did not declare: CAP_SETPCAP is missing"
                    .into(),
            )
        } else {
            Ok(Vec::new())
        };
    }
    Ok(caps::all()
        .into_iter()
        .filter(|c| !keep.contains(c))
        .map(|c| u32::from(c.index()))
        .collect())
}

/// Runs in the child between fork and exec.
fn child_setup(read_fd: i32, write_fd: i32, drop_caps: &[u32]) -> std::io::Result<()> {
    use nix::libc;
    let check = |ret: libc::c_int| {
        if ret < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: plain syscalls on descriptors and this process's own attributes.
    unsafe {
        // Both sources are above 4 (above_four), so neither dup2 overwrites the other's source.
        check(libc::dup2(read_fd, 3))?;
        check(libc::dup2(write_fd, 4))?;
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        for &cap in drop_caps {
            // EINVAL: a capability this kernel does not have; nothing to drop.
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0
                && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        check(libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ))?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
    }
    // Inheritable capabilities would survive exec for root; clear them.
    caps::clear(None, caps::CapSet::Inheritable).map_err(|e| std::io::Error::other(e.to_string()))
}
