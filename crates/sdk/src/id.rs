//! A plugin's id: its well-known name (`-o plugin.driver=ID`, `vxbus set ID ...`, the registry's
//! names), which the daemon also uses as a file name (`<bundled dir>/ID/plugin.json`, the
//! external socket `<socket dir>/ID`, `plugin-settings/ID.json`, `plugin-data/ID/`).
//!
//! Owns: what an id may be. Must not touch: files; holding a [`PluginId`] proves only that it
//! is safe as one path component.

use std::{fmt, str::FromStr};

/// A valid plugin id: 1 to 64 of `a-z`, `0-9`, `_`, `-`, `.`, starting with a letter or a digit,
/// no `..`. Made only by parsing (serde goes through it too), so it can never name `../x` or
/// `/tmp/x`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct PluginId(String);

/// What a plugin id may be, for messages.
pub const PLUGIN_ID_RULE: &str =
    "a plugin id: 1 to 64 of a-z, 0-9, `_`, `-`, `.`, starting with a letter or digit";

/// A string that is not a plugin id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not {PLUGIN_ID_RULE}")]
pub struct BadPluginId(pub String);

impl PluginId {
    /// The id as text (also what `*id` gives).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `s` follows [`PLUGIN_ID_RULE`].
    fn allowed(s: &str) -> bool {
        let char_allowed =
            |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b);
        (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.bytes().all(char_allowed)
            && !s.contains("..")
    }
}

impl FromStr for PluginId {
    type Err = BadPluginId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PluginId::allowed(s)
            .then(|| PluginId(s.to_owned()))
            .ok_or_else(|| BadPluginId(s.to_owned()))
    }
}

impl TryFrom<String> for PluginId {
    type Error = BadPluginId;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PluginId> for String {
    fn from(id: PluginId) -> String {
        id.0
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An id is read as the string it is (it is used as one: in paths, messages, registry names).
impl std::ops::Deref for PluginId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PluginId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_single_safe_path_components() {
        for good in ["logger", "kvaser-lin", "kvaser", "my_plugin.v2", "0x"] {
            assert_eq!(good.parse::<PluginId>().unwrap().as_str(), good);
        }
        let long = "a".repeat(65);
        for bad in [
            "", "../x", "/tmp/x", "a/b", ".hidden", "a..b", "Logger", "-x", "ü", "a b", &long,
        ] {
            let err = bad.parse::<PluginId>().unwrap_err();
            assert_eq!(err.to_string(), format!("`{bad}` is not {PLUGIN_ID_RULE}"));
        }
        // JSON goes through the same check.
        assert!(serde_json::from_str::<PluginId>(r#""../../x""#).is_err());
        assert_eq!(
            serde_json::from_str::<PluginId>(r#""logger""#).unwrap(),
            "logger".parse::<PluginId>().unwrap()
        );
    }
}
