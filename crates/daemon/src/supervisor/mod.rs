//! The supervisor: runs bundled child plugins (one process per plugin id, spawned on first use),
//! tells them and external plugins when a bus they serve starts and stops, restarts crashed
//! children, keeps plugin settings, and relays the plugin registry and channels.
//!
//! Owns: each plugin's status, connection and the buses it serves, and the calls to it. Must
//! not touch: links, gateway rules or the driver's state; the driver tells it what to start and
//! stop. Its parts:
//!
//! - [`manifest`]: bundled plugins' `plugin.json`, aliases resolved.
//! - [`identity`]: the unprivileged user each child runs as, its data directory and devices.
//! - [`spawn`]: a child's process in its sandbox (pipes, user, capabilities, log lines).
//! - [`restart`]: when an exited child starts again (a pure policy).
//! - [`settings_store`]: settings files under `<state dir>/plugin-settings`.
//! - [`registry`]: `plugins.list`, connect/disconnect notices, channels between plugins.
//! - [`external`]: plugins on Unix sockets, with the seed's start/stop JSON.

pub mod external;
pub mod identity;
pub mod manifest;
pub mod registry;
pub mod restart;
pub mod settings_store;
pub mod spawn;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::watch;
use vxbus_sdk::{
    cmd, handler, Bus, CallError, ChunkCodec, ConfigError, Connection, Context, Handler, Incoming,
    Lifecycle, PluginId, PluginInfo, Reconfigure, Registered, INTERFACE_VERSION, LIFECYCLE_VERSION,
};

pub use manifest::DEFAULT_BUNDLED_DIR;
use manifest::{Bundled, Manifest};
pub use restart::MAX_RESTARTS;
use restart::{Decision, RestartPolicy};
use settings_store::SettingsStore;

/// How long a plugin has to register, and to answer `start` or `stop`.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(5);

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

    pub(crate) fn failed(id: impl std::fmt::Display, message: impl Into<String>) -> PluginError {
        PluginError::Failed {
            id: id.to_string(),
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

struct ChildState {
    status: Status,
    conn: Option<Connection>,
    info: Option<PluginInfo>,
    pid: Option<u32>,
    restarts: RestartPolicy,
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
    id: PluginId,
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

/// The supervisor. Share it in an `Arc`; [`Supervisor::shutdown`] stops every child.
pub struct Supervisor {
    config: SupervisorConfig,
    bundled: Bundled,
    settings: SettingsStore,
    /// Held across each change of a plugin's settings (read, tell the plugin, keep), so that
    /// two changes at once cannot lose one of them.
    settings_changes: tokio::sync::Mutex<()>,
    children: Mutex<BTreeMap<String, Arc<Child>>>,
    channels: Mutex<registry::Channels>,
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
    pub fn untyped(driver: &PluginId, options: &BTreeMap<String, String>) -> Prepared {
        let mut plugin = Map::new();
        plugin.insert("driver".into(), Value::from(driver.as_str()));
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
            bundled: Bundled::new(&config.bundled_dir),
            settings: SettingsStore::new(&config.state_dir),
            settings_changes: tokio::sync::Mutex::new(()),
            config,
            children: Mutex::new(BTreeMap::new()),
            channels: Mutex::new(registry::Channels::default()),
            shutting_down: AtomicBool::new(false),
        })
    }

    /// The child for a bundled `id`, read from its manifest the first time; an alias gives its
    /// plugin's child.
    fn child(&self, id: &PluginId) -> Result<Option<Arc<Child>>, PluginError> {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(child) = children.get(id.as_str()) {
            return Ok(Some(child.clone()));
        }
        let Some(plugin) = self.bundled.resolve(id)? else {
            return Ok(None);
        };
        if let Some(child) = children.get(plugin.id.as_str()) {
            return Ok(Some(child.clone()));
        }
        let child = Arc::new(Child {
            id: plugin.id.clone(),
            dir: plugin.dir,
            manifest: plugin.manifest,
            state: Mutex::new(ChildState {
                status: Status::Stopped,
                conn: None,
                info: None,
                pid: None,
                restarts: RestartPolicy::new(self.config.restart_backoff),
                last_error: None,
                run_error: None,
                networks: BTreeMap::new(),
                generation: 0,
            }),
            changed: watch::Sender::new(()),
        });
        children.insert(plugin.id.to_string(), child.clone());
        Ok(Some(child))
    }

    fn socket(&self, id: &PluginId) -> PathBuf {
        self.config.socket_dir.join(id.as_str())
    }

    /// Makes sure the plugin `id` can serve a network with `options` (`plugin.*` items, prefix
    /// removed): a bundled one runs and accepts them (typed against its schema); an external
    /// one has its socket. Nothing is started for the network yet.
    pub async fn prepare(
        self: &Arc<Self>,
        id: &PluginId,
        options: &BTreeMap<String, String>,
    ) -> Result<Prepared, PluginError> {
        let Some(child) = self.child(id)? else {
            if !self.socket(id).exists() {
                let bundled: Vec<String> =
                    self.bundled.ids().iter().map(PluginId::to_string).collect();
                return Err(PluginError::Unknown {
                    id: id.to_string(),
                    bundled: match bundled.join(", ") {
                        ids if ids.is_empty() => "none".into(),
                        ids => ids,
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
                plugin: id.as_str(),
                prefix: "plugin.",
            },
        )?;
        let mut prepared = Prepared::untyped(id, &BTreeMap::new());
        prepared.plugin.extend(typed);
        Ok(prepared)
    }

    /// Tells the bus's plugin to start serving it, waiting up to the start timeout.
    pub async fn start(self: &Arc<Self>, bus: &Bus) -> Result<(), PluginError> {
        let id = &driver_of(bus)?;
        let message = lifecycle("start", bus);
        match self.child(id)? {
            Some(child) => {
                let (conn, _) = self.ensure_running(&child).await?;
                self.call_lifecycle(&child, &conn, cmd::START, &message)
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

    async fn send_external(&self, id: &PluginId, message: &Lifecycle) -> Result<(), PluginError> {
        external::send(
            &self.socket(id),
            id.as_str(),
            message,
            self.config.start_timeout,
        )
        .await
        .map_err(|message| PluginError::failed(id.as_str(), message))
    }

    /// Tells the bus's plugin to stop serving it: best effort, failures logged.
    pub async fn stop(self: &Arc<Self>, bus: &Bus) {
        let id = match driver_of(bus) {
            Ok(id) => id,
            Err(err) => {
                tracing::warn!("stop of network {}: {err}", bus.network_id);
                return;
            }
        };
        let id = &id;
        let message = lifecycle("stop", bus);
        let result = match self.child(id) {
            Ok(Some(child)) => {
                let (started, conn) = {
                    let mut state = child.lock();
                    (state.networks.remove(&bus.network_id), state.running_conn())
                };
                match conn {
                    Some(conn) => {
                        // The bus as `start` carried it, typed; what the caller gave (the
                        // options as text) only when the plugin never started it here.
                        let message = started
                            .map(|bus| lifecycle("stop", &bus))
                            .unwrap_or(message);
                        self.call_lifecycle(&child, &conn, cmd::STOP, &message)
                            .await
                    }
                    None => Err(PluginError::failed(
                        id.as_str(),
                        "not running; nothing to tell",
                    )),
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
            Err(err) => {
                self.kill_if_stalled(child, &err);
                Err(PluginError::failed(&child.id, format!("{cmd}: {err}")))
            }
        }
    }

    /// A child that read nothing from its pipe for as long as a message may wait is stuck, not
    /// slow: it is killed, so that it restarts (for the buses it serves) instead of holding up
    /// every message to it.
    fn kill_if_stalled(&self, child: &Child, err: &CallError) {
        if let CallError::Stalled { timeout, .. } = err {
            let why = format!(
                "it read nothing from its pipe for {} ms",
                timeout.as_millis()
            );
            tracing::error!(plugin = %child.id, "plugin {}: {why}: killed", child.id);
            self.kill(child, &why);
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
                    state.restarts.reset();
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
        let program_dir = program.parent().unwrap_or(&child.dir);
        let identity = identity::prepare(
            &self.config.state_dir.join("plugin-data"),
            &child.id,
            &[&child.dir, program_dir],
            &child.manifest.devices,
        )?;
        let spawn::Spawned {
            mut process,
            reader,
            writer,
        } = spawn::spawn(&spawn::Program {
            path: &program,
            dir: &child.dir,
            id: &child.id,
            data_dir: &identity.data_dir,
            ids: identity.ids,
            capabilities: &child.manifest.capabilities,
        })?;
        let generation = {
            let mut state = child.lock();
            state.generation += 1;
            state.run_error = None;
            state.pid = process.id();
            state.generation
        };
        let conn = Connection::spawn(
            format!("plugin {}", child.id),
            reader,
            writer,
            ChunkCodec::default(),
            self.host_handler(child.clone(), generation),
        );
        child.lock().conn = Some(conn.clone());
        let user = identity.ids.map_or_else(
            || "the daemon's user".to_owned(),
            |ids| format!("uid {}", ids.uid),
        );
        tracing::info!(plugin = %child.id, "plugin {} spawned (pid {}) as {user}, keeping capabilities: {}", child.id,
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
        let (networks, decision) = {
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
            let serves_buses = !state.networks.is_empty();
            let decision =
                state
                    .restarts
                    .on_exit(started.elapsed(), was == Status::Running, serves_buses);
            (state.networks.clone(), decision)
        };
        self.disconnected(&child.id).await;
        child.changed.send_replace(());
        tracing::warn!(plugin = %child.id, "plugin {} exited: {how}", child.id);
        match decision {
            Decision::Idle => {}
            Decision::GiveUp { failures } => {
                tracing::error!(plugin = %child.id, "plugin {} failed {failures} times in a row: marked failed; its networks ({}) keep working without it",
                    child.id, networks.keys().cloned().collect::<Vec<_>>().join(", "));
                child.set_status(Status::Failed);
            }
            Decision::Restart { delay, attempt } => {
                tracing::info!(plugin = %child.id, "restarting plugin {} in {} ms (restart {attempt} of at most {MAX_RESTARTS})",
                    child.id, delay.as_millis());
                tokio::time::sleep(delay).await;
                if self.shutting_down.load(Ordering::SeqCst) {
                    return;
                }
                self.replay(child).await;
            }
        }
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
        if let Err(err) = self.start(&bus).await {
            tracing::warn!(
                "network {}: its plugin did not start again: {err}",
                bus.network_id
            );
            let child = driver_of(&bus).and_then(|id| self.child(&id));
            if let Ok(Some(child)) = child {
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
        for id in self.bundled.ids() {
            let _ = self.child(&id);
        }
        let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children
            .values()
            .map(|child| {
                let state = child.lock();
                PluginReport {
                    id: child.id.to_string(),
                    status: state.status.clone(),
                    pid: state.pid,
                    restarts: state.restarts.count(),
                    last_error: state.last_error.clone(),
                    networks: state.networks.keys().cloned().collect(),
                    info: state.info.clone(),
                }
            })
            .collect()
    }

    /// Changes one setting of plugin `id`: checked against its schema, kept on disk, and sent to
    /// the running plugin as `reconfigure`. Returns the new settings.
    pub async fn set_setting(
        self: &Arc<Self>,
        id: &PluginId,
        item: &str,
        text: &str,
    ) -> Result<Map<String, Value>, PluginError> {
        let child = self.child(id)?.ok_or_else(|| {
            PluginError::failed(
                id.as_str(),
                "is not a bundled plugin; only bundled plugins have settings",
            )
        })?;
        // The schema comes from the plugin itself: run it if it never ran here.
        self.ensure_running(&child).await?;
        let _change = self.settings_changes.lock().await;
        let mut stored = self
            .settings
            .load(id)
            .map_err(|m| PluginError::failed(id, m))?
            .unwrap_or_default();
        stored.values = stored.schema.set(
            &stored.values,
            item,
            text,
            Context {
                plugin: id.as_str(),
                prefix: "",
            },
        )?;
        // The running plugin first: a value it refuses is not kept.
        let conn = child.lock().conn.clone();
        if let Some(conn) = conn {
            let body = json(&Reconfigure {
                settings: stored.values.clone(),
            });
            conn.call(cmd::RECONFIGURE, body, self.config.start_timeout)
                .await
                .map_err(|e| {
                    self.kill_if_stalled(&child, &e);
                    PluginError::failed(id, format!("reconfigure: {e}"))
                })?;
        }
        self.settings
            .save(id, &stored)
            .map_err(|m| PluginError::failed(id, m))?;
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
    pub fn settings(&self, id: &PluginId) -> Result<Map<String, Value>, PluginError> {
        let stored = self
            .settings
            .load(id)
            .map_err(|m| PluginError::failed(id, m))?
            .unwrap_or_default();
        Ok(stored.shown())
    }

    /// Answers what a child asks the daemon.
    fn host_handler(self: &Arc<Self>, child: Arc<Child>, generation: u64) -> Handler {
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
            cmd::REGISTER => {
                let info: PluginInfo = serde_json::from_slice(&incoming.buffer)
                    .map_err(|e| format!("register: bad plugin information: {e}"))?;
                let settings = self.register(child, generation, info, incoming.conn.clone()).await.inspect_err(|message| {
                    tracing::error!(plugin = %child.id, "plugin {} refused at registration: {message}", child.id);
                    child.lock().run_error = Some(message.clone());
                })?;
                Ok(json(&Registered { settings }))
            }
            _ => self.relay(child, incoming).await,
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
        if info.interface != INTERFACE_VERSION {
            return Err(format!(
                "written to interface {}; this vxbus speaks interface {INTERFACE_VERSION}",
                info.interface,
            ));
        }
        info.config.check(&child.id).map_err(|e| e.to_string())?;
        info.settings.check(&child.id).map_err(|e| e.to_string())?;
        let values = {
            let _change = self.settings_changes.lock().await;
            self.settings.register(&child.id, &info.settings)?
        };
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
        self.broadcast(&child.id, cmd::PLUGINS_CONNECTED).await;
        Ok(values)
    }
}

/// A message's JSON body. Every message type here serializes (no maps with non-string keys).
pub(crate) fn json<T: Serialize>(message: &T) -> Bytes {
    serde_json::to_vec(message)
        .expect("a message serializes")
        .into()
}

/// The plugin a bus names (`plugin.driver`, checked again: a [`Bus`] is plain data).
fn driver_of(bus: &Bus) -> Result<PluginId, PluginError> {
    let driver = bus.plugin.get("driver").and_then(Value::as_str);
    driver.unwrap_or_default().parse().map_err(|err| {
        PluginError::failed(driver.unwrap_or("(none)"), format!("plugin.driver: {err}"))
    })
}

fn lifecycle(action: &str, bus: &Bus) -> Lifecycle {
    Lifecycle {
        version: LIFECYCLE_VERSION,
        action: action.into(),
        bus: bus.clone(),
    }
}
