//! Plugin settings on disk: `<state dir>/plugin-settings/<id>.json`, each file the plugin's
//! settings schema and its values, so that values survive restarts and upgrades of the plugin
//! and of vxbus, and are merged when a plugin registers with a changed schema.
//!
//! Owns: those files (written atomically) and what a registration does to them. Must not touch:
//! processes or connections; the supervisor sends `reconfigure` itself.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vxbus_sdk::{Context, ItemType, PluginId, Schema};

/// What is kept of a plugin's settings between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredSettings {
    pub schema: Schema,
    pub values: Map<String, Value>,
}

impl StoredSettings {
    /// The values with passwords hidden: for showing.
    pub fn shown(&self) -> Map<String, Value> {
        self.values
            .iter()
            .map(|(name, value)| {
                let shown = match self.schema.0.get(name) {
                    Some(item) if item.kind == ItemType::Password => Value::from(item.shown(value)),
                    _ => value.clone(),
                };
                (name.clone(), shown)
            })
            .collect()
    }
}

/// The directory of settings files.
#[derive(Debug, Clone)]
pub struct SettingsStore {
    dir: PathBuf,
}

impl SettingsStore {
    /// The store under the host state directory.
    pub fn new(state_dir: &std::path::Path) -> SettingsStore {
        SettingsStore {
            dir: state_dir.join("plugin-settings"),
        }
    }

    fn path(&self, id: &PluginId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Plugin `id`'s settings as kept; `None` when it never registered here.
    pub fn load(&self, id: &PluginId) -> Result<Option<StoredSettings>, String> {
        let path = self.path(id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(format!("{}: {err}", path.display())),
        }
    }

    pub fn save(&self, id: &PluginId, stored: &StoredSettings) -> Result<(), String> {
        let path = self.path(id);
        let bytes = serde_json::to_vec_pretty(stored).expect("settings serialize");
        // Only the daemon reads them: plugins run as other users (identity.rs).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .and_then(|()| {
                std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            })
            .and_then(|()| crate::state::write_atomically(&path, &bytes))
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Plugin `id` registered with settings `schema`: the kept values merged into it (same
    /// type kept, new items defaulted, deprecated and removed items dropped; each change
    /// logged), or its defaults the first time. The result is kept and returned. A kept file
    /// that cannot be read is set aside (never overwritten), logged, and the defaults used: a
    /// corrupt file must not keep the plugin from registering for ever.
    pub fn register(&self, id: &PluginId, schema: &Schema) -> Result<Map<String, Value>, String> {
        let kept = match self.load(id) {
            Ok(kept) => kept,
            Err(err) => {
                let aside = crate::state::set_aside(&self.path(id))
                    .map_err(|e| format!("{err}; and {e:#}"))?;
                tracing::error!(plugin = %id, "plugin {id} settings: {err}: starting from the \
                    defaults; the unreadable file is kept as {}", aside.display());
                None
            }
        };
        let values = match kept {
            Some(stored) => {
                let (values, changes) = schema.merge(&stored.schema, &stored.values, id.as_str());
                for change in changes {
                    tracing::info!(plugin = %id, "plugin {id} settings: {change}");
                }
                values
            }
            None => schema
                .resolve(
                    &BTreeMap::new(),
                    Context {
                        plugin: id.as_str(),
                        prefix: "",
                    },
                )
                .map_err(|e| e.to_string())?,
        };
        self.save(
            id,
            &StoredSettings {
                schema: schema.clone(),
                values: values.clone(),
            },
        )?;
        Ok(values)
    }
}
