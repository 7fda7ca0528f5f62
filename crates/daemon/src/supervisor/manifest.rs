//! Bundled plugins on disk: `<bundled dir>/<id>/plugin.json`, a program to run with the
//! capabilities it keeps, or `{"alias_of": "ID"}`, another name for a bundled plugin.
//!
//! Owns: reading and checking manifests, following an alias to its plugin (one step: an alias
//! of an alias, or of something not bundled, is refused). Must not touch: processes or their
//! state; the supervisor runs what a manifest names.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use vxbus_sdk::PluginId;

use super::PluginError;

/// Where bundled plugins live in the managed plugin's root filesystem: `<dir>/<id>/plugin.json`.
pub const DEFAULT_BUNDLED_DIR: &str = "/usr/lib/vxbus/plugins";

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
    /// Device nodes it opens (`/dev/leaf*`: every node whose name starts so): given to its
    /// group, read-write, before it runs; it runs as an unprivileged user.
    #[serde(default)]
    pub devices: Vec<String>,
}

/// A plugin to run: its id (an alias resolved), its directory and its manifest.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub id: PluginId,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// The directory of bundled plugins.
#[derive(Debug, Clone)]
pub struct Bundled {
    dir: PathBuf,
}

impl Bundled {
    pub fn new(dir: &Path) -> Bundled {
        Bundled {
            dir: dir.to_owned(),
        }
    }

    /// The ids of every bundled plugin (aliases included), sorted; a directory whose name is
    /// not a plugin id is no plugin.
    pub fn ids(&self) -> Vec<PluginId> {
        let mut ids: Vec<PluginId> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("plugin.json").is_file())
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        ids.sort();
        ids
    }

    /// `<bundled dir>/<id>/plugin.json`, parsed; `None` when there is none (`id` is not bundled).
    fn read(&self, id: &PluginId) -> Result<Option<Manifest>, PluginError> {
        let path = self.dir.join(id.as_str()).join("plugin.json");
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

    /// The plugin `id` names, an alias followed to its plugin; `None` when `id` is not bundled.
    pub fn resolve(&self, id: &PluginId) -> Result<Option<Resolved>, PluginError> {
        let Some(manifest) = self.read(id)? else {
            return Ok(None);
        };
        let (id, manifest) = match manifest.alias_of {
            None => (id.clone(), manifest),
            Some(target) => {
                let target_id = target.parse::<PluginId>().ok();
                let plugin = target_id
                    .as_ref()
                    .and_then(|target| self.read(target).ok().flatten())
                    .filter(|m| m.alias_of.is_none());
                let (Some(target), Some(plugin)) = (target_id, plugin) else {
                    return Err(PluginError::failed(
                        id,
                        format!(
                            "its plugin.json is an alias of `{target}`, which is not a bundled \
                             plugin ({} is missing or is itself an alias)",
                            self.dir.join(&target).join("plugin.json").display()
                        ),
                    ));
                };
                (target, plugin)
            }
        };
        let dir = self.dir.join(id.as_str());
        if manifest.executable.is_empty() {
            return Err(PluginError::failed(
                id.as_str(),
                format!("{} names no executable", dir.join("plugin.json").display()),
            ));
        }
        Ok(Some(Resolved { id, dir, manifest }))
    }
}
