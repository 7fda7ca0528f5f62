//! The plugin's side of the chunk protocol (the seed's `Main`): a plugin is a program the
//! daemon starts; it registers, then is told to start and stop serving buses.
//!
//! Owns: finding the pipes, registering, turning `start`/`stop`/`reconfigure` into calls on a
//! [`BusPlugin`], and the host's services (settings, calls, the plugin registry, channels).
//! Must not touch: anything of the daemon's; a plugin talks to it only through [`Host`].
//!
//! Whatever the plugin writes to stderr (and stdout, when the daemon gave it other descriptors
//! for chunks) lands in the daemon's log, line by line, tagged with the plugin's id.

use std::{
    future::Future,
    os::fd::{FromRawFd, OwnedFd},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::{
    chunk::ChunkCodec,
    conn::{handler, CallError, Connection, Handler, Incoming},
    proto::{
        self, Bus, ChannelOpened, Lifecycle, OpenChannel, PluginInfo, Reconfigure, Registered,
    },
};

/// How long a plugin waits for the daemon to answer one of its calls.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a plugin does when buses come and go. Every method runs in its own task; the daemon may
/// start several buses at once.
pub trait BusPlugin: Send + Sync + 'static {
    /// Start serving `bus`; an `Err` fails `docker network create` with its message.
    fn start(&self, host: &Host, bus: Bus) -> impl Future<Output = Result<(), String>> + Send;
    /// Stop serving `bus` (the network is being removed, or the plugin's bus was restarted).
    fn stop(&self, host: &Host, bus: Bus) -> impl Future<Output = Result<(), String>> + Send;
    /// The plugin's settings changed; [`Host::settings`] has the new values already.
    fn reconfigure(
        &self,
        _host: &Host,
        _settings: Map<String, Value>,
    ) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }
    /// Any other command: one-way messages from the registry and channels, or calls from the host.
    fn message(
        &self,
        _host: &Host,
        cmd: String,
        _buffer: Bytes,
    ) -> impl Future<Output = Result<Bytes, String>> + Send {
        async move { Err(format!("unknown command `{cmd}`")) }
    }
}

/// The daemon, as a plugin sees it.
#[derive(Clone)]
pub struct Host {
    conn: Connection,
    settings: Arc<Mutex<Map<String, Value>>>,
}

impl Host {
    /// The low-level start (the seed's `Register`): connects to the daemon over the descriptors
    /// in `VXBUS_CHUNK_FDS` (else stdin/stdout), serves `handler` for the daemon's requests, and
    /// registers `info`. [`run`] is this plus the [`BusPlugin`] dispatch.
    pub async fn connect(info: &PluginInfo, handler: Handler) -> anyhow::Result<Host> {
        Host::register(open_transport(info, handler)?, info).await
    }

    /// Registers `info` on `conn` and waits for the daemon's answer (the kept settings).
    async fn register(conn: Connection, info: &PluginInfo) -> anyhow::Result<Host> {
        let body = serde_json::to_vec(info)?;
        let answer = conn
            .call(proto::REGISTER, body, CALL_TIMEOUT)
            .await
            .context("registering with vxbus")?;
        let registered: Registered =
            serde_json::from_slice(&answer).context("vxbus's answer to register")?;
        Ok(Host {
            conn,
            settings: Arc::new(Mutex::new(registered.settings)),
        })
    }

    /// The plugin's settings now (typed, defaults filled in).
    pub fn settings(&self) -> Map<String, Value> {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The directory the daemon gave this plugin for its data (`VXBUS_PLUGIN_DATA_DIR`).
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        std::env::var_os(proto::ENV_DATA_DIR)
            .map(PathBuf::from)
            .ok_or_else(|| {
                anyhow!(
                    "{} is not set: was this started by vxbus?",
                    proto::ENV_DATA_DIR
                )
            })
    }

    /// A request to the daemon.
    pub async fn call(&self, cmd: &str, buffer: impl Into<Bytes>) -> Result<Bytes, CallError> {
        self.conn.call(cmd, buffer, CALL_TIMEOUT).await
    }

    /// A one-way message to the daemon.
    pub async fn notify(&self, cmd: &str, buffer: impl Into<Bytes>) -> Result<(), CallError> {
        self.conn.notify(cmd, buffer).await
    }

    /// The well-known names of the plugins connected now (this one included).
    pub async fn plugins(&self) -> anyhow::Result<Vec<String>> {
        let answer = self.call(proto::PLUGINS_LIST, Bytes::new()).await?;
        Ok(serde_json::from_slice(&answer)?)
    }

    /// Opens a channel to the plugin registered as `name`; data then flows with
    /// [`Host::send`] and arrives as `channel.data` messages.
    pub async fn open_channel(&self, name: &str) -> anyhow::Result<u64> {
        let body = serde_json::to_vec(&OpenChannel {
            to: name.to_owned(),
        })?;
        let answer = self.call(proto::CHANNEL_OPEN, body).await?;
        Ok(serde_json::from_slice::<ChannelOpened>(&answer)?.channel)
    }

    /// Sends bytes on a channel.
    pub async fn send(&self, channel: u64, data: &[u8]) -> Result<(), CallError> {
        self.notify(proto::CHANNEL_DATA, proto::channel_data(channel, data))
            .await
    }

    /// Closes a channel; the other end gets `channel.close`.
    pub async fn close_channel(&self, channel: u64) -> Result<(), CallError> {
        self.notify(proto::CHANNEL_CLOSE, channel.to_string()).await
    }

    /// Waits until the daemon closes the connection (it stopped, or stops this plugin).
    pub async fn closed(&self) -> Arc<str> {
        self.conn.closed().await
    }
}

/// stdin and stdout as non-blocking pipe ends, when they are pipes (as when vxbus starts a
/// plugin without `VXBUS_CHUNK_FDS`): reads and writes go through the runtime's epoll instead of
/// a blocking thread per read.
pub fn stdio_pipes() -> std::io::Result<(
    tokio::net::unix::pipe::Receiver,
    tokio::net::unix::pipe::Sender,
)> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok((
        tokio::net::unix::pipe::Receiver::from_owned_fd(stdin)?,
        tokio::net::unix::pipe::Sender::from_owned_fd(stdout)?,
    ))
}

fn parse_fds(text: &str) -> anyhow::Result<(i32, i32)> {
    let bad = || anyhow!("{} is `{text}`, not READ_FD,WRITE_FD", proto::ENV_CHUNK_FDS);
    let (read, write) = text.split_once(',').ok_or_else(bad)?;
    Ok((
        read.trim().parse().map_err(|_| bad())?,
        write.trim().parse().map_err(|_| bad())?,
    ))
}

/// The connection to the daemon over the descriptors in `VXBUS_CHUNK_FDS` (else stdin/stdout),
/// serving `handler` for the daemon's requests.
fn open_transport(info: &PluginInfo, handler: Handler) -> anyhow::Result<Connection> {
    let id = std::env::var(proto::ENV_PLUGIN_ID).unwrap_or_else(|_| info.name.clone());
    let codec = ChunkCodec::default();
    let peer = format!("vxbus (as plugin {id})");
    let conn = match std::env::var(proto::ENV_CHUNK_FDS) {
        Ok(fds) => {
            let (read, write) = parse_fds(&fds)?;
            // SAFETY: the daemon opened these descriptors for this process and nothing else
            // here uses them; each is owned once.
            let (read, write) =
                unsafe { (OwnedFd::from_raw_fd(read), OwnedFd::from_raw_fd(write)) };
            let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(read)
                .context("VXBUS_CHUNK_FDS read end")?;
            let writer = tokio::net::unix::pipe::Sender::from_owned_fd(write)
                .context("VXBUS_CHUNK_FDS write end")?;
            Connection::spawn(peer, reader, writer, codec, handler)
        }
        Err(_) => match stdio_pipes() {
            Ok((reader, writer)) => Connection::spawn(peer, reader, writer, codec, handler),
            // Not pipes (a terminal, a file): tokio's stdio, which reads on a blocking thread.
            Err(_) => Connection::spawn(
                peer,
                tokio::io::stdin(),
                tokio::io::stdout(),
                codec,
                handler,
            ),
        },
    };
    Ok(conn)
}

/// Runs a plugin until the daemon closes the connection: registers `info`, then answers
/// `start`, `stop` and `reconfigure` with `plugin`'s methods.
pub async fn run<P: BusPlugin>(info: PluginInfo, plugin: P) -> anyhow::Result<()> {
    let opened = info.clone();
    serve(info, plugin, move |handler| {
        open_transport(&opened, handler)
    })
    .await
}

/// [`run`] on the connection `open` makes.
async fn serve<P: BusPlugin>(
    info: PluginInfo,
    plugin: P,
    open: impl FnOnce(Handler) -> anyhow::Result<Connection>,
) -> anyhow::Result<()> {
    let plugin = Arc::new(plugin);
    // The daemon counts the plugin registered once it has answered `register`, so its first
    // `start` can arrive before that answer has been read here: requests wait for the `Host`.
    let (host_tx, host_rx) = tokio::sync::watch::channel::<Option<Host>>(None);
    let dispatch = handler(move |incoming: Incoming| {
        let plugin = plugin.clone();
        let mut host_rx = host_rx.clone();
        async move {
            let host = host_rx
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|host| host.clone())
                .ok_or("registration failed")?;
            dispatch(&*plugin, &host, incoming).await
        }
    });
    let host = Host::register(open(dispatch)?, &info).await?;
    host_tx.send_replace(Some(host.clone()));
    let reason = host.closed().await;
    eprintln!(
        "{}: connection to vxbus closed ({reason}); exiting",
        info.name
    );
    Ok(())
}

async fn dispatch<P: BusPlugin>(
    plugin: &P,
    host: &Host,
    incoming: Incoming,
) -> Result<Bytes, String> {
    let lifecycle = |buffer: &[u8]| {
        serde_json::from_slice::<Lifecycle>(buffer)
            .map_err(|e| format!("{}: bad message: {e}", incoming.cmd))
    };
    match incoming.cmd.as_str() {
        proto::START => plugin
            .start(host, lifecycle(&incoming.buffer)?.bus)
            .await
            .map(|()| Bytes::new()),
        proto::STOP => plugin
            .stop(host, lifecycle(&incoming.buffer)?.bus)
            .await
            .map(|()| Bytes::new()),
        proto::RECONFIGURE => {
            let Reconfigure { settings } = serde_json::from_slice(&incoming.buffer)
                .map_err(|e| format!("reconfigure: bad message: {e}"))?;
            *host.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings.clone();
            plugin
                .reconfigure(host, settings)
                .await
                .map(|()| Bytes::new())
        }
        _ => plugin.message(host, incoming.cmd, incoming.buffer).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Bus, Lifecycle};

    /// Records the buses it is told to start.
    struct Recorder(tokio::sync::mpsc::UnboundedSender<String>);

    impl BusPlugin for Recorder {
        async fn start(&self, _host: &Host, bus: Bus) -> Result<(), String> {
            let _ = self.0.send(bus.network_id);
            Ok(())
        }
        async fn stop(&self, _host: &Host, _bus: Bus) -> Result<(), String> {
            Ok(())
        }
    }

    fn bus(network_id: &str) -> Bus {
        Bus {
            bus_type: "vcan".into(),
            device: "can".into(),
            host_device: None,
            baudrate: None,
            baudrate_fd: None,
            txqueuelen: None,
            plugin: Map::new(),
            fd: true,
            network_id: network_id.into(),
            host_interface: "vxbn0".into(),
        }
    }

    /// The daemon may send `start` as soon as it has answered `register`, and the two cross on
    /// the pipes. Here the daemon goes further: it sends `start` before it answers, and answers
    /// 200 ms later. The plugin must hold the request until its registration is done, then serve it.
    #[tokio::test]
    async fn a_request_that_overtakes_the_register_answer_waits_for_it() {
        let (daemon_io, plugin_io) = tokio::io::duplex(64 * 1024);
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
        let answer_tx = Arc::new(Mutex::new(Some(answer_tx)));
        let daemon_handler = handler(move |incoming: Incoming| {
            let answer_tx = answer_tx.clone();
            async move {
                assert_eq!(incoming.cmd, proto::REGISTER);
                let conn = incoming.conn.clone();
                tokio::spawn(async move {
                    let start = Lifecycle {
                        version: 1,
                        action: "start".into(),
                        bus: bus("net1"),
                    };
                    let body = serde_json::to_vec(&start).unwrap();
                    let result = conn.call(proto::START, body, Duration::from_secs(5)).await;
                    let sender = answer_tx.lock().unwrap().take();
                    let _ = sender.map(|s| s.send(result));
                });
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(Bytes::from(
                    serde_json::to_vec(&Registered {
                        settings: Map::new(),
                    })
                    .unwrap(),
                ))
            }
        });
        let (read, write) = tokio::io::split(daemon_io);
        let daemon =
            Connection::spawn("plugin", read, write, ChunkCodec::default(), daemon_handler);
        let info = PluginInfo {
            name: "recorder".into(),
            version: "0.1.0".into(),
            kind: "bus".into(),
            interface: proto::INTERFACE_VERSION.into(),
            config: Default::default(),
            settings: Default::default(),
        };
        let plugin = tokio::spawn(serve(info, Recorder(started_tx), move |handler| {
            let (read, write) = tokio::io::split(plugin_io);
            Ok(Connection::spawn(
                "daemon",
                read,
                write,
                ChunkCodec::default(),
                handler,
            ))
        }));
        let answer = tokio::time::timeout(Duration::from_secs(5), answer_rx)
            .await
            .expect("an answer to start within 5 s")
            .unwrap();
        assert_eq!(answer, Ok(Bytes::new()), "start was refused");
        assert_eq!(started_rx.recv().await.as_deref(), Some("net1"));
        daemon.close("test over");
        tokio::time::timeout(Duration::from_secs(5), plugin)
            .await
            .expect("the plugin ends when the daemon closes")
            .unwrap()
            .unwrap();
    }
}
