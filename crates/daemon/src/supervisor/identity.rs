//! Who a child plugin runs as: an unprivileged uid and gid of its own, with no supplementary
//! groups, owning its data directory `<state dir>/plugin-data/<id>/` (mode 0700) and nothing
//! else the daemon keeps. So a child cannot rewrite the daemon's state or other plugins'
//! settings or data, connect to the control socket (0600), re-bind Docker's plugin socket, or
//! signal the daemon, even with no capability dropped by mistake.
//!
//! Ids come from [`FIRST_ID`] on. The data directory's owner *is* the record of which plugin
//! has which id: a plugin keeps the id its directory has, a new one takes the lowest id no
//! other directory has. Device nodes a manifest declares (`"devices"`) are given to the
//! plugin's group.
//!
//! Owns: those ids, the data directories' owners and modes, declared devices' groups. Must not
//! touch: processes (spawn runs the child as what this module chose).

use std::{
    collections::BTreeMap,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Mutex,
};

use vxbus_sdk::PluginId;

/// The first uid (and gid) given to a child plugin; far above any system's or user's ids and
/// outside the ranges commonly delegated to user namespaces (100000 on) and systemd's dynamic
/// users (61184 to 65519).
pub const FIRST_ID: u32 = 1_600_000_000;
/// How many plugins can have an id.
pub const IDS: u32 = 65_536;

/// What a child runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// A child's identity and its data directory, ready.
#[derive(Debug)]
pub struct Identity {
    /// `None` when the daemon itself is not root (tests run unprivileged): the child runs as
    /// the daemon's user, which is already unprivileged.
    pub ids: Option<Ids>,
    pub data_dir: PathBuf,
}

/// Choosing ids and changing owners must not interleave between two children starting at once.
static ASSIGN: Mutex<()> = Mutex::new(());

/// Gives plugin `id` its identity: `<data_root>/<id>` created, owned by its ids (a new
/// plugin gets the lowest free id; files left from a run as root are handed over), mode 0700;
/// `data_root` 0711 (others may pass through, not list); every directory on the way to it and
/// to the directories in `reach` (the plugin's own) gets search permission for others (only
/// that: a managed plugin's root directory is 0700, so no other user could run anything).
/// `devices`: the manifest's device patterns (see [`matching_devices`]), whose nodes get the
/// plugin's gid and group read-write.
pub fn prepare(
    data_root: &Path,
    id: &PluginId,
    reach: &[&Path],
    devices: &[String],
) -> Result<Identity, String> {
    let data_dir = data_root.join(id.as_str());
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
        return Ok(Identity {
            ids: None,
            data_dir,
        });
    }
    // To change user, to hand over and set the mode of what the plugin then owns, to signal it.
    for cap in [
        caps::Capability::CAP_SETUID,
        caps::Capability::CAP_SETGID,
        caps::Capability::CAP_CHOWN,
        caps::Capability::CAP_FOWNER,
        caps::Capability::CAP_KILL,
    ] {
        if !caps::has_cap(None, caps::CapSet::Effective, cap).unwrap_or(false) {
            return Err(format!(
                "cannot run the plugin as an unprivileged user: the daemon lacks {cap}"
            ));
        }
    }
    let _assigning = ASSIGN.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
    if !std::fs::symlink_metadata(&data_dir).is_ok_and(|m| m.is_dir()) {
        return Err(format!("{} is not a directory", data_dir.display()));
    }
    passable(data_root, 0o711)?;
    for dir in reach.iter().chain([&data_root]) {
        for ancestor in dir.ancestors() {
            passable(ancestor, 0o001)?;
        }
    }
    let taken = owners(data_root)?;
    let mine = taken.get(id.as_str()).copied().filter(|uid| in_range(*uid));
    let uid = match mine {
        Some(uid) if taken.values().filter(|&&u| u == uid).count() == 1 => uid,
        _ => {
            let uid = (FIRST_ID..FIRST_ID + IDS)
                .find(|uid| !taken.values().any(|u| u == uid))
                .ok_or_else(|| {
                    format!(
                        "all {IDS} plugin user ids are taken in {}",
                        data_root.display()
                    )
                })?;
            hand_over(&data_dir, uid)?;
            tracing::info!(plugin = %id, "plugin {id} runs as uid {uid} (gid {uid}); {} is its own", data_dir.display());
            uid
        }
    };
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("setting the mode of {}: {e}", data_dir.display()))?;
    let ids = Ids { uid, gid: uid };
    for node in matching_devices(devices)? {
        grant(&node, ids.gid)?;
    }
    Ok(Identity {
        ids: Some(ids),
        data_dir,
    })
}

fn in_range(uid: u32) -> bool {
    (FIRST_ID..FIRST_ID + IDS).contains(&uid)
}

/// Adds search permission for others to `dir` (it may have been made 0700), keeping the rest.
fn passable(dir: &Path, at_least: u32) -> Result<(), String> {
    let mode = std::fs::metadata(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .permissions()
        .mode();
    if mode & at_least != at_least {
        std::fs::set_permissions(
            dir,
            std::fs::Permissions::from_mode((mode | at_least) & 0o7777),
        )
        .map_err(|e| format!("letting plugins pass through {}: {e}", dir.display()))?;
        tracing::info!(
            "{} made passable for plugins (mode {:o})",
            dir.display(),
            (mode | at_least) & 0o777
        );
    }
    Ok(())
}

/// Each data directory's owner, by directory name.
fn owners(data_root: &Path) -> Result<BTreeMap<String, u32>, String> {
    let entries = std::fs::read_dir(data_root)
        .map_err(|e| format!("listing {}: {e}", data_root.display()))?;
    let mut owners = BTreeMap::new();
    for entry in entries.flatten() {
        if let (Ok(meta), Some(name)) = (entry.metadata(), entry.file_name().to_str()) {
            if meta.is_dir() {
                owners.insert(name.to_owned(), meta.uid());
            }
        }
    }
    Ok(owners)
}

/// Makes `uid` (and the same gid) the owner of `dir` and everything in it, symbolic links
/// themselves rather than what they point at.
fn hand_over(dir: &Path, uid: u32) -> Result<(), String> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid))
        .map_err(|e| format!("handing {} to uid {uid}: {e}", dir.display()))?;
    let entries = std::fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => hand_over(&path, uid)?,
            _ => std::os::unix::fs::lchown(&path, Some(uid), Some(uid))
                .map_err(|e| format!("handing {} to uid {uid}: {e}", path.display()))?,
        }
    }
    Ok(())
}

/// The character devices `patterns` name: an absolute path, or one ending in `*` for every
/// node in that directory whose name starts with what precedes the `*` (`/dev/leaf*`). A
/// pattern that matches nothing is no error (the adapter may not be plugged in).
pub fn matching_devices(patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut nodes = Vec::new();
    for pattern in patterns {
        let path = Path::new(pattern);
        if !path.is_absolute() || pattern.contains("..") {
            return Err(format!(
                "plugin.json: device `{pattern}` is not an absolute path (such as /dev/leaf*)"
            ));
        }
        let candidates: Vec<PathBuf> = match pattern.strip_suffix('*') {
            None => vec![path.to_owned()],
            Some(prefix) => {
                let prefix = Path::new(prefix);
                let (Some(dir), Some(start)) = (prefix.parent(), prefix.file_name()) else {
                    continue;
                };
                let start = start.to_string_lossy().into_owned();
                std::fs::read_dir(dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&start))
                    .map(|e| e.path())
                    .collect()
            }
        };
        for node in candidates {
            let is_char_device = std::fs::symlink_metadata(&node)
                .map(|m| m.file_type().is_char_device())
                .unwrap_or(false);
            if is_char_device && !nodes.contains(&node) {
                nodes.push(node);
            }
        }
    }
    nodes.sort();
    Ok(nodes)
}

/// Gives device `node` to group `gid`, readable and writable by it.
fn grant(node: &Path, gid: u32) -> Result<(), String> {
    std::os::unix::fs::lchown(node, None, Some(gid))
        .map_err(|e| format!("giving device {} to gid {gid}: {e}", node.display()))?;
    let mode = std::fs::symlink_metadata(node)
        .map_err(|e| format!("reading {}: {e}", node.display()))?
        .permissions()
        .mode();
    std::fs::set_permissions(
        node,
        std::fs::Permissions::from_mode((mode | 0o060) & 0o7777),
    )
    .map_err(|e| format!("letting gid {gid} use {}: {e}", node.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_patterns_must_be_absolute_and_match_only_character_devices() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("leaf-file"), "").unwrap();
        let err = matching_devices(&["dev/leaf*".into()]).unwrap_err();
        assert!(err.contains("`dev/leaf*` is not an absolute path"), "{err}");
        assert!(matching_devices(&["/dev/../etc/passwd".into()]).is_err());
        // A regular file is no device; a missing directory or node matches nothing.
        let pattern = format!("{}/leaf*", dir.path().display());
        assert_eq!(matching_devices(&[pattern]).unwrap(), Vec::<PathBuf>::new());
        assert!(
            matching_devices(&["/nonexistent/leaf*".into(), "/nonexistent/x".into()])
                .unwrap()
                .is_empty()
        );
        // /dev/null is one, by its full path and by a prefix.
        assert_eq!(
            matching_devices(&["/dev/null".into(), "/dev/nul*".into()]).unwrap(),
            [PathBuf::from("/dev/null")]
        );
    }
}
