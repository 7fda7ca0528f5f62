//! The driver's record of what it made: networks (with the options they were created with),
//! their endpoints, and the links each owns. Kept in one JSON file in the host state directory,
//! replaced atomically, so a plugin restart, upgrade or kill finds it whole.
//!
//! Owns: the file's format and its atomic replacement. Must not touch: the kernel or Docker;
//! the driver decides what to record and the reconciler compares it with the kernel.
//!
//! Docker never replays CreateNetwork to a plugin (docs/docker-facts.md), so this file is the only
//! place a network's options survive a restart of the plugin or of dockerd.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{self, Write},
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use vxbus_dataplane::ifname::IfName;

use crate::bus::DevicePrefix;

/// The file's format version; a file with another is refused rather than misread.
pub const FORMAT: u32 = 1;
/// The file's name in the state directory.
pub const FILE_NAME: &str = "state.json";

/// Everything the driver owns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    /// By Docker's network ID.
    pub networks: BTreeMap<String, Network>,
    /// The Swarm's nodes Docker told of (DiscoverNew, less DiscoverDelete), this one among
    /// them: the peers of `tunnel.peers=swarm` tunnels. Kept because Docker tells a plugin
    /// enabled after the Swarm formed only of its own node. Written only when not empty.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub swarm_nodes: BTreeSet<IpAddr>,
}

/// One network (one CAN bus).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// The `-o` options as Docker passed them; the bus spec is derived from them again on load,
    /// so validation has one home (`bus`).
    pub options: Map<String, Value>,
    /// The bus's host device, if it has one.
    pub host_device: Option<HostDevice>,
    /// By Docker's endpoint ID.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Docker deleted it and vxbus's teardown failed half-way: finished at the next check (or
    /// start), never brought back. Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
}

/// The bus's interface on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDevice {
    pub name: IfName,
    /// Whether vxbus created it (a vcan, deleted with the network) or found it (a physical
    /// controller or someone else's vcan, never deleted).
    pub created: bool,
}

/// One member of a bus: a vxcan pair whose peer Docker moves into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The end that stays on the host, where the bus's gateway rules attach.
    pub host_end: IfName,
    /// The end Docker moves into the container (and renames to the network's `device` prefix
    /// plus an index).
    pub peer: IfName,
    /// Between Join and Leave: the peer is in a container. A joined endpoint whose peer is back
    /// on the host lost its container while vxbus was not running (Docker moves the interface
    /// out when it tears a sandbox down, and forgets the endpoint if the driver was away).
    #[serde(default)]
    pub joined: bool,
    /// The interface name the container asked for (Docker 28's per-endpoint `ifname`), which
    /// Join hands Docker as the name's prefix instead of the network's `device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<DevicePrefix>,
}

impl State {
    pub fn new() -> State {
        State {
            format: FORMAT,
            networks: BTreeMap::new(),
            swarm_nodes: BTreeSet::new(),
        }
    }

    /// The network that owns endpoint or host device `name`, if any.
    pub fn owner_of_link(&self, name: &str) -> Option<&str> {
        self.networks.iter().find_map(|(id, network)| {
            let host = network
                .host_device
                .as_ref()
                .is_some_and(|host| host.name.as_str() == name);
            let endpoint = network
                .endpoints
                .values()
                .any(|e| e.host_end.as_str() == name || e.peer.as_str() == name);
            (host || endpoint).then_some(id.as_str())
        })
    }
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn in_dir(dir: &Path) -> StateFile {
        StateFile {
            path: dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state; a missing file is an empty state (the first start).
    pub fn load(&self) -> Result<State> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(State::new()),
            Err(err) => {
                return Err(err).with_context(|| format!("reading {}", self.path.display()))
            }
        };
        let state: State = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", self.path.display()))?;
        anyhow::ensure!(
            state.format == FORMAT,
            "{} has format {}, this vxbus reads format {FORMAT}",
            self.path.display(),
            state.format
        );
        Ok(state)
    }

    /// Replaces the file with `state`: written to a temporary file beside it, synced, renamed
    /// over it, and the directory synced, so a crash leaves the old file or the new, never half.
    pub fn save(&self, state: &State) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(state)?;
        bytes.push(b'\n');
        write_atomically(&self.path, &bytes)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Moves an unreadable file aside (`state.json.unreadable`), so the daemon can start and the
    /// file stays for a person to read.
    pub fn set_aside(&self) -> Result<PathBuf> {
        set_aside(&self.path)
    }

    /// The state files set aside as unreadable that are still there: while one is, what the
    /// kernel holds may be recorded only there, and nothing of it counts as an orphan.
    pub fn set_aside_files(&self) -> Vec<PathBuf> {
        let prefix = format!("{FILE_NAME}.unreadable");
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    }
}

/// Moves the file at `path` aside, to `<name>.unreadable` or, when that is taken (an earlier
/// one), `<name>.unreadable.1`, `.2`, ...: a file set aside is never overwritten.
pub fn set_aside(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let free = (0..1000)
        .map(|n| match n {
            0 => path.with_file_name(format!("{name}.unreadable")),
            n => path.with_file_name(format!("{name}.unreadable.{n}")),
        })
        .find(|candidate| fs::symlink_metadata(candidate).is_err())
        .with_context(|| format!("no free name to move {} aside", path.display()))?;
    fs::rename(path, &free).with_context(|| format!("moving {} aside", path.display()))?;
    Ok(free)
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one, never a part:
/// a temporary file in the same directory, fsync, rename over `path`, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|err| err.error)?;
    fs::File::open(dir)?.sync_all()
}

/// The first 12 characters of a Docker id, as `docker network ls` shows them and logs name a
/// network (characters, not bytes: an id from the record is not trusted to be ASCII).
pub fn short_id(id: &str) -> &str {
    id.char_indices().nth(12).map_or(id, |(end, _)| &id[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut state = State::new();
        state.swarm_nodes.insert("10.0.0.2".parse().unwrap());
        let mut options = Map::new();
        options.insert("device".into(), Value::String("ecu".into()));
        let mut network = Network {
            options,
            host_device: Some(HostDevice {
                name: "hbus".parse().unwrap(),
                created: true,
            }),
            endpoints: BTreeMap::new(),
            deleting: false,
        };
        network.endpoints.insert(
            "e1".into(),
            Endpoint {
                host_end: "vxbh0123456789".parse().unwrap(),
                peer: "vxbc0123456789".parse().unwrap(),
                joined: true,
                ifname: Some("gw_body".parse().unwrap()),
            },
        );
        state.networks.insert("n1".into(), network);
        state
    }

    #[test]
    fn a_missing_file_is_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::in_dir(dir.path());
        assert_eq!(file.load().unwrap(), State::new());
    }

    #[test]
    fn saves_and_loads_back_leaving_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::in_dir(dir.path());
        file.save(&sample()).unwrap();
        file.save(&sample()).unwrap();
        assert_eq!(file.load().unwrap(), sample());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [FILE_NAME]);
    }

    #[test]
    fn an_endpoint_without_an_asked_name_reads_and_writes_as_before_the_field() {
        let mut state = sample();
        let endpoint = state
            .networks
            .get_mut("n1")
            .unwrap()
            .endpoints
            .get_mut("e1")
            .unwrap();
        endpoint.ifname = None;
        let text = serde_json::to_string(&state).unwrap();
        assert!(!text.contains("ifname"), "{text}");
        let read: State = serde_json::from_str(&text).unwrap();
        assert_eq!(read, state);
        let named = serde_json::to_string(&sample()).unwrap();
        assert!(named.contains(r#""ifname":"gw_body""#), "{named}");
        let bad = named.replace(r#""ifname":"gw_body""#, r#""ifname":"a/b""#);
        assert!(serde_json::from_str::<State>(&bad).is_err());
    }

    #[test]
    fn refuses_invalid_names_and_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::in_dir(dir.path());
        let text = serde_json::to_string(&sample()).unwrap();
        fs::write(file.path(), text.replace("hbus", "a/b")).unwrap();
        let err = format!("{:#}", file.load().unwrap_err());
        assert!(err.contains("parsing") && err.contains("`/`"), "{err}");
        fs::write(file.path(), text.replace("\"format\":1", "\"format\":9")).unwrap();
        let err = format!("{:#}", file.load().unwrap_err());
        assert!(err.contains("format 9"), "{err}");
        let aside = file.set_aside().unwrap();
        assert!(aside.ends_with("state.json.unreadable"));
        assert_eq!(file.load().unwrap(), State::new());
        // A second unreadable file does not replace the first one set aside.
        fs::write(&file.path, "{ not json").unwrap();
        let second = file.set_aside().unwrap();
        assert!(second.ends_with("state.json.unreadable.1"), "{second:?}");
        assert_eq!(file.set_aside_files(), [aside.clone(), second]);
        assert!(fs::read_to_string(&aside).unwrap().contains("\"format\":9"));
    }

    #[test]
    fn finds_the_owner_of_a_link() {
        let state = sample();
        assert_eq!(state.owner_of_link("hbus"), Some("n1"));
        assert_eq!(state.owner_of_link("vxbc0123456789"), Some("n1"));
        assert_eq!(state.owner_of_link("eth0"), None);
    }
}
