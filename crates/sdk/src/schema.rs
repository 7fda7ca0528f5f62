//! A plugin's configuration schema (the seed's typed configuration items), and values checked
//! against it: a network's `plugin.*` options, a plugin's settings, and settings kept across a
//! plugin upgrade that changed its schema.
//!
//! Owns: the item model (type, default, description, displayName, minimum, maximum, options,
//! mandatory, readonly, order, length, deprecated), turning text into typed JSON values, every
//! refusal's wording, and the merge rules. Must not touch: files, processes or the wire; callers
//! hand text in and get typed values or a [`ConfigError`] back.
//!
//! As in the seed, a schema's numbers and flags may be written as JSON strings (`"default": "5"`,
//! `"mandatory": "true"`) or as JSON numbers and booleans; both mean the same.

use std::{collections::BTreeMap, fmt};

use serde::{de, Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};

/// An item's type: how its text becomes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemType {
    /// A whole number (JSON number), within `minimum`/`maximum` when given.
    #[serde(rename = "integer")]
    Integer,
    /// A number (JSON number), within `minimum`/`maximum` when given.
    #[serde(rename = "float")]
    Float,
    /// Text, at most `length` characters when given.
    #[serde(rename = "string")]
    String,
    /// Text that is never logged nor shown.
    #[serde(rename = "password")]
    Password,
    /// One of `options`.
    #[serde(rename = "enumeration")]
    Enumeration,
    /// `true` or `false`.
    #[serde(rename = "boolean")]
    Boolean,
    /// A JSON document, passed on parsed.
    #[serde(rename = "JSON")]
    Json,
}

impl fmt::Display for ItemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemType::Integer => "integer",
            ItemType::Float => "float",
            ItemType::String => "string",
            ItemType::Password => "password",
            ItemType::Enumeration => "enumeration",
            ItemType::Boolean => "boolean",
            ItemType::Json => "JSON",
        })
    }
}

/// One configuration item, as a plugin declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Item {
    #[serde(rename = "type")]
    pub kind: ItemType,
    /// The value when none is given, as text (empty: no default).
    #[serde(default, deserialize_with = "text")]
    pub default: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "opt_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub minimum: Option<f64>,
    #[serde(
        default,
        deserialize_with = "opt_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub maximum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flag", skip_serializing_if = "is_false")]
    pub mandatory: bool,
    #[serde(default, deserialize_with = "flag", skip_serializing_if = "is_false")]
    pub readonly: bool,
    #[serde(
        default,
        deserialize_with = "opt_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub order: Option<f64>,
    #[serde(
        default,
        deserialize_with = "opt_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub length: Option<f64>,
    #[serde(default, deserialize_with = "flag", skip_serializing_if = "is_false")]
    pub deprecated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

fn opt_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("`{s}` is not a number"))),
        other => Err(de::Error::custom(format!("{other} is not a number"))),
    }
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" || s.is_empty() => Ok(false),
        other => Err(de::Error::custom(format!("{other} is not true or false"))),
    }
}

/// A plugin's configuration: items by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Schema(pub BTreeMap<String, Item>);

/// A value or a schema that breaks a rule. `prefix` is how the item is named to the user
/// (`plugin.` for a network option, nothing for a setting).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{prefix}{item} is not an item of plugin {plugin}; its items: {known}")]
    Unknown {
        prefix: &'static str,
        item: String,
        plugin: String,
        known: String,
    },
    #[error("{prefix}{item}: `{value}` is not allowed: {rule} (plugin {plugin})")]
    Invalid {
        prefix: &'static str,
        item: String,
        value: String,
        rule: String,
        plugin: String,
    },
    #[error("{prefix}{item} is mandatory for plugin {plugin} and has no value: {description}")]
    Missing {
        prefix: &'static str,
        item: String,
        plugin: String,
        description: String,
    },
    #[error("{prefix}{item} is read-only (plugin {plugin})")]
    ReadOnly {
        prefix: &'static str,
        item: String,
        plugin: String,
    },
    /// The plugin's own schema is wrong (a default that breaks its own rule, an enumeration
    /// without options).
    #[error("plugin {plugin} declares item {item} wrongly: {reason}")]
    BadSchema {
        plugin: String,
        item: String,
        reason: String,
    },
}

/// Names the plugin and how its items are shown, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub plugin: &'a str,
    /// `"plugin."` for network options, `""` for settings.
    pub prefix: &'static str,
}

impl Item {
    /// The rule a value breaks, if it breaks one; else the typed value. Empty text is no value.
    fn parse(&self, text: &str) -> Result<Option<Value>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        let number = |n: f64| -> Result<(), String> {
            match (self.minimum, self.maximum) {
                (Some(min), _) if n < min => Err(self.range()),
                (_, Some(max)) if n > max => Err(self.range()),
                _ => Ok(()),
            }
        };
        let value = match self.kind {
            ItemType::Integer => {
                let n: i64 = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("an integer{}", self.range_suffix()))?;
                number(n as f64)?;
                Value::from(n)
            }
            ItemType::Float => {
                let n: f64 = text
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite())
                    .ok_or_else(|| format!("a number{}", self.range_suffix()))?;
                number(n)?;
                Value::Number(Number::from_f64(n).expect("finite"))
            }
            ItemType::String | ItemType::Password => {
                if let Some(length) = self.length {
                    if text.chars().count() as f64 > length {
                        return Err(format!("at most {length} characters"));
                    }
                }
                Value::from(text)
            }
            ItemType::Enumeration => {
                let options = self.options.as_deref().unwrap_or_default();
                if !options.iter().any(|o| o == text) {
                    return Err(format!("one of {}", options.join(", ")));
                }
                Value::from(text)
            }
            ItemType::Boolean => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err("true or false".into()),
            },
            ItemType::Json => {
                serde_json::from_str(text).map_err(|e| format!("a JSON document ({e})"))?
            }
        };
        Ok(Some(value))
    }

    fn range(&self) -> String {
        let what = if self.kind == ItemType::Integer {
            "an integer"
        } else {
            "a number"
        };
        format!("{what}{}", self.range_suffix())
    }

    fn range_suffix(&self) -> String {
        match (self.minimum, self.maximum) {
            (Some(min), Some(max)) => format!(" from {min} to {max}"),
            (Some(min), None) => format!(" of at least {min}"),
            (None, Some(max)) => format!(" of at most {max}"),
            (None, None) => String::new(),
        }
    }

    /// A value for a log or a listing: passwords hidden.
    pub fn shown(&self, value: &Value) -> String {
        match (self.kind, value) {
            (ItemType::Password, _) => "********".into(),
            (_, Value::String(s)) => s.clone(),
            (_, other) => other.to_string(),
        }
    }
}

impl Schema {
    /// Checks the schema itself: enumerations have options, defaults keep their own rules.
    pub fn check(&self, plugin: &str) -> Result<(), ConfigError> {
        for (name, item) in &self.0 {
            let bad = |reason: String| ConfigError::BadSchema {
                plugin: plugin.to_owned(),
                item: name.clone(),
                reason,
            };
            if item.kind == ItemType::Enumeration
                && item.options.as_deref().unwrap_or_default().is_empty()
            {
                return Err(bad("an enumeration needs options".into()));
            }
            if name.is_empty() || name.contains(['=', ' ', '/']) {
                return Err(bad(
                    "an item name is not empty and has no `=`, space or `/`".into(),
                ));
            }
            item.parse(&item.default)
                .map_err(|rule| bad(format!("its default `{}` is not {rule}", item.default)))?;
        }
        Ok(())
    }

    fn known(&self) -> String {
        let names: Vec<&str> = self
            .0
            .iter()
            .filter(|(_, i)| !i.deprecated)
            .map(|(n, _)| n.as_str())
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }

    /// Typed values for everything `given` sets and every other item's default; refuses unknown
    /// and read-only items, values that break their item's rule, and mandatory items left empty.
    pub fn resolve(
        &self,
        given: &BTreeMap<String, String>,
        cx: Context<'_>,
    ) -> Result<Map<String, Value>, ConfigError> {
        for name in given.keys() {
            let item = self.0.get(name).ok_or_else(|| ConfigError::Unknown {
                prefix: cx.prefix,
                item: name.clone(),
                plugin: cx.plugin.to_owned(),
                known: self.known(),
            })?;
            if item.readonly {
                return Err(ConfigError::ReadOnly {
                    prefix: cx.prefix,
                    item: name.clone(),
                    plugin: cx.plugin.to_owned(),
                });
            }
        }
        let mut values = Map::new();
        for (name, item) in &self.0 {
            if item.deprecated && !given.contains_key(name) {
                continue;
            }
            let text = given.get(name).unwrap_or(&item.default);
            let value = item.parse(text).map_err(|rule| ConfigError::Invalid {
                prefix: cx.prefix,
                item: name.clone(),
                value: if item.kind == ItemType::Password {
                    "********".into()
                } else {
                    text.clone()
                },
                rule,
                plugin: cx.plugin.to_owned(),
            })?;
            match value {
                Some(value) => {
                    values.insert(name.clone(), value);
                }
                None if item.mandatory => {
                    return Err(ConfigError::Missing {
                        prefix: cx.prefix,
                        item: name.clone(),
                        plugin: cx.plugin.to_owned(),
                        description: item.description.clone(),
                    })
                }
                None => {
                    values.insert(name.clone(), Value::Null);
                }
            }
        }
        Ok(values)
    }

    /// Settings kept from `old` under this (newer) schema, by the seed's merge rules: a stored
    /// value stays when its item still exists with the same type and the value still keeps the
    /// item's rules; new items get their defaults; deprecated and removed items are dropped.
    /// Returns the values and one line per item that did not simply stay.
    pub fn merge(
        &self,
        old_schema: &Schema,
        old: &Map<String, Value>,
        plugin: &str,
    ) -> (Map<String, Value>, Vec<String>) {
        let mut values = Map::new();
        let mut changes = Vec::new();
        for (name, item) in &self.0 {
            if item.deprecated {
                if old.contains_key(name) {
                    changes.push(format!("{name}: dropped (deprecated)"));
                }
                continue;
            }
            let kept = match (old.get(name), old_schema.0.get(name)) {
                (Some(value), Some(old_item)) if old_item.kind == item.kind => {
                    match item.parse(&as_text(value)) {
                        Ok(Some(v)) => Some(v),
                        Ok(None) if !item.mandatory => Some(Value::Null),
                        _ => {
                            changes.push(format!(
                                "{name}: stored value breaks the new rules, back to its default"
                            ));
                            None
                        }
                    }
                }
                (Some(_), Some(old_item)) => {
                    changes.push(format!(
                        "{name}: type changed from {} to {}, back to its default",
                        old_item.kind, item.kind
                    ));
                    None
                }
                _ => {
                    changes.push(format!("{name}: new, set to its default"));
                    None
                }
            };
            let value = match kept {
                Some(value) => value,
                // The schema passed check(), so the default parses.
                None => item
                    .parse(&item.default)
                    .ok()
                    .flatten()
                    .unwrap_or(Value::Null),
            };
            values.insert(name.clone(), value);
        }
        for name in old.keys().filter(|n| !self.0.contains_key(*n)) {
            changes.push(format!("{name}: dropped (no longer an item of {plugin})"));
        }
        (values, changes)
    }

    /// `values` with `item` set from `text` (the user changing a setting).
    pub fn set(
        &self,
        values: &Map<String, Value>,
        item: &str,
        text: &str,
        cx: Context<'_>,
    ) -> Result<Map<String, Value>, ConfigError> {
        let mut given: BTreeMap<String, String> = values
            .iter()
            .filter(|(name, _)| self.0.get(*name).is_some_and(|i| !i.readonly))
            .map(|(name, value)| (name.clone(), as_text(value)))
            .collect();
        given.insert(item.to_owned(), text.to_owned());
        self.resolve(&given, cx)
    }
}

/// A typed value back as the text a user would write.
fn as_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> Schema {
        let schema: Schema = serde_json::from_value(v).unwrap();
        schema.check("lin").unwrap();
        schema
    }

    fn lin() -> Schema {
        schema(json!({
            "host_mode": {"type": "enumeration", "options": ["master", "slave"], "default": "",
                          "description": "LIN role", "mandatory": "true", "order": "1"},
            "base_tick_ms": {"type": "integer", "default": "5", "minimum": "1", "maximum": 1000,
                             "description": "schedule tick"},
            "gain": {"type": "float", "default": 1.5, "description": "a float"},
            "verbose": {"type": "boolean", "default": "false", "description": "log frames"},
            "name": {"type": "string", "default": "", "length": "8", "description": "for logs"},
            "secret": {"type": "password", "default": "", "description": "a password"},
            "map": {"type": "JSON", "default": "{}", "description": "a JSON map"},
            "version": {"type": "string", "default": "2", "readonly": true, "description": "fixed"},
            "old": {"type": "string", "default": "x", "deprecated": "true", "description": "gone"}
        }))
    }

    const NET: Context<'static> = Context {
        plugin: "lin",
        prefix: "plugin.",
    };

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_fill_what_was_not_given_and_values_are_typed() {
        let values = lin()
            .resolve(
                &given(&[("host_mode", "slave"), ("gain", "2"), ("map", "[1]")]),
                NET,
            )
            .unwrap();
        assert_eq!(
            Value::Object(values),
            json!({"host_mode": "slave", "base_tick_ms": 5, "gain": 2.0, "verbose": false, "name": null,
                   "secret": null, "map": [1], "version": "2"})
        );
    }

    #[test]
    fn every_refusal_names_the_item_and_the_rule() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("host_mode", "master"), ("bogus", "1")],
             "plugin.bogus is not an item of plugin lin; its items: base_tick_ms, gain, host_mode, map, name, secret, verbose, version"),
            (&[], "plugin.host_mode is mandatory for plugin lin and has no value: LIN role"),
            (&[("host_mode", "boss")], "plugin.host_mode: `boss` is not allowed: one of master, slave (plugin lin)"),
            (&[("host_mode", "master"), ("base_tick_ms", "0")],
             "plugin.base_tick_ms: `0` is not allowed: an integer from 1 to 1000 (plugin lin)"),
            (&[("host_mode", "master"), ("base_tick_ms", "5ms")],
             "plugin.base_tick_ms: `5ms` is not allowed: an integer from 1 to 1000 (plugin lin)"),
            (&[("host_mode", "master"), ("gain", "inf")], "plugin.gain: `inf` is not allowed: a number (plugin lin)"),
            (&[("host_mode", "master"), ("verbose", "yes")], "plugin.verbose: `yes` is not allowed: true or false (plugin lin)"),
            (&[("host_mode", "master"), ("name", "123456789")],
             "plugin.name: `123456789` is not allowed: at most 8 characters (plugin lin)"),
            (&[("host_mode", "master"), ("secret", "")], ""),
            (&[("host_mode", "master"), ("version", "3")], "plugin.version is read-only (plugin lin)"),
        ];
        for (pairs, expected) in cases {
            match lin().resolve(&given(pairs), NET) {
                Ok(_) => assert_eq!(*expected, "", "{pairs:?} was accepted"),
                Err(err) => assert_eq!(err.to_string(), *expected, "for {pairs:?}"),
            }
        }
        let err = lin()
            .resolve(&given(&[("host_mode", "master"), ("map", "{")]), NET)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("plugin.map: `{` is not allowed: a JSON document ("),
            "{err}"
        );
    }

    #[test]
    fn passwords_are_never_shown() {
        let schema = schema(
            json!({"pin": {"type": "password", "default": "", "length": 4, "description": "pin"}}),
        );
        let err = schema
            .resolve(&given(&[("pin", "123456")]), NET)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin.pin: `********` is not allowed: at most 4 characters (plugin lin)"
        );
        assert_eq!(schema.0["pin"].shown(&json!("1234")), "********");
    }

    #[test]
    fn a_schema_that_breaks_its_own_rules_is_refused() {
        for (bad, reason) in [
            (
                json!({"a": {"type": "enumeration", "default": "", "description": ""}}),
                "an enumeration needs options",
            ),
            (
                json!({"a": {"type": "integer", "default": "7", "maximum": 5, "description": ""}}),
                "its default `7` is not an integer of at most 5",
            ),
            (
                json!({"a b": {"type": "string", "default": "", "description": ""}}),
                "an item name is not empty and has no `=`, space or `/`",
            ),
        ] {
            let schema: Schema = serde_json::from_value(bad).unwrap();
            let err = schema.check("p").unwrap_err().to_string();
            assert!(err.ends_with(reason), "{err}");
        }
        // Unknown types and properties are refused when the schema is read.
        assert!(serde_json::from_value::<Schema>(
            json!({"a": {"type": "IPV9", "default": "", "description": ""}})
        )
        .is_err());
        assert!(serde_json::from_value::<Schema>(
            json!({"a": {"type": "string", "default": "", "description": "", "colour": 1}})
        )
        .is_err());
    }

    #[test]
    fn merge_keeps_same_typed_values_adds_new_items_drops_deprecated_and_removed() {
        let old = schema(json!({
            "keep": {"type": "integer", "default": "1", "description": ""},
            "retyped": {"type": "integer", "default": "1", "description": ""},
            "narrowed": {"type": "integer", "default": "1", "description": ""},
            "deprecated_now": {"type": "string", "default": "a", "description": ""},
            "removed": {"type": "string", "default": "a", "description": ""}
        }));
        let new = schema(json!({
            "keep": {"type": "integer", "default": "2", "description": ""},
            "retyped": {"type": "string", "default": "s", "description": ""},
            "narrowed": {"type": "integer", "default": "3", "maximum": 5, "description": ""},
            "deprecated_now": {"type": "string", "default": "a", "deprecated": true, "description": ""},
            "added": {"type": "boolean", "default": "true", "description": ""}
        }));
        let stored =
            json!({"keep": 9, "retyped": 9, "narrowed": 9, "deprecated_now": "b", "removed": "b"});
        let (values, changes) = new.merge(&old, stored.as_object().unwrap(), "p");
        assert_eq!(
            Value::Object(values),
            json!({"keep": 9, "retyped": "s", "narrowed": 3, "added": true})
        );
        assert_eq!(
            changes,
            [
                "added: new, set to its default",
                "deprecated_now: dropped (deprecated)",
                "narrowed: stored value breaks the new rules, back to its default",
                "retyped: type changed from integer to string, back to its default",
                "removed: dropped (no longer an item of p)",
            ]
        );
    }

    #[test]
    fn set_changes_one_item_and_checks_it() {
        let settings = Context {
            plugin: "lin",
            prefix: "",
        };
        let values = lin()
            .resolve(&given(&[("host_mode", "master")]), settings)
            .unwrap();
        let changed = lin().set(&values, "base_tick_ms", "10", settings).unwrap();
        assert_eq!(changed["base_tick_ms"], json!(10));
        assert_eq!(changed["host_mode"], json!("master"));
        let err = lin()
            .set(&values, "base_tick_ms", "0", settings)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "base_tick_ms: `0` is not allowed: an integer from 1 to 1000 (plugin lin)"
        );
        assert_eq!(
            lin()
                .set(&values, "version", "9", settings)
                .unwrap_err()
                .to_string(),
            "version is read-only (plugin lin)"
        );
    }
}
