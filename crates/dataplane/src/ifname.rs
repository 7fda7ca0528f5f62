//! Network interface names as the Linux kernel accepts them.
//!
//! Owns: the naming rules (`dev_valid_name` in the kernel's net/core/dev.c: 1 to 15 bytes,
//! not `.` or `..`, no `/`, `:` or whitespace) plus vxbus's own refusal of `%`, which the
//! kernel treats as a numbering pattern. Must not touch: the kernel; this is validation only.

use std::{fmt, str::FromStr};

/// The kernel's limit, IFNAMSIZ (16) less the terminating NUL.
pub const MAX_LEN: usize = 15;

/// A valid interface name. Constructed only through [`FromStr`] (serde goes through it too), so
/// holding one proves it valid.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

/// Why a string is not a valid interface name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IfNameError {
    #[error("it is empty")]
    Empty,
    #[error("it is {len} bytes long, over the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("`.` and `..` are not interface names")]
    Dots,
    #[error("it contains {0:?}; interface names may not contain `/`, `:`, `%` or whitespace")]
    BadChar(char),
}

/// Checks `name` against the kernel's rules with a length limit of `max` bytes (the daemon
/// checks a device prefix, to which Docker appends a digit, with a limit one shorter).
pub fn check(name: &str, max: usize) -> Result<(), IfNameError> {
    if name.is_empty() {
        return Err(IfNameError::Empty);
    }
    if name.len() > max {
        return Err(IfNameError::TooLong {
            len: name.len(),
            max,
        });
    }
    if name == "." || name == ".." {
        return Err(IfNameError::Dots);
    }
    if let Some(c) = name
        .chars()
        .find(|&c| matches!(c, '/' | ':' | '%') || c.is_whitespace() || c.is_control())
    {
        return Err(IfNameError::BadChar(c));
    }
    Ok(())
}

impl FromStr for IfName {
    type Err = IfNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check(s, MAX_LEN)?;
        Ok(IfName(s.to_owned()))
    }
}

impl TryFrom<String> for IfName {
    type Error = IfNameError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        check(&s, MAX_LEN)?;
        Ok(IfName(s))
    }
}

impl From<IfName> for String {
    fn from(name: IfName) -> String {
        name.0
    }
}

impl IfName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_the_kernel_accepts() {
        for name in [
            "can0",
            "vcan0",
            "slcan0",
            "a",
            "ecu-gw_1.front",
            "x23456789012345",
        ] {
            assert_eq!(name.parse::<IfName>().unwrap().as_str(), name);
        }
    }

    #[test]
    fn refuses_what_the_kernel_refuses() {
        assert_eq!("".parse::<IfName>(), Err(IfNameError::Empty));
        assert_eq!(
            "x234567890123456".parse::<IfName>(),
            Err(IfNameError::TooLong { len: 16, max: 15 })
        );
        assert_eq!(".".parse::<IfName>(), Err(IfNameError::Dots));
        assert_eq!("..".parse::<IfName>(), Err(IfNameError::Dots));
        for (name, bad) in [
            ("a/b", '/'),
            ("can:0", ':'),
            ("can 0", ' '),
            ("can\t0", '\t'),
            ("can%d", '%'),
        ] {
            assert_eq!(
                name.parse::<IfName>(),
                Err(IfNameError::BadChar(bad)),
                "{name:?}"
            );
        }
    }

    #[test]
    fn counts_bytes_not_characters() {
        // The kernel's limit is in bytes: 8 two-byte characters are 16 bytes.
        assert_eq!(
            "éééééééé".parse::<IfName>(),
            Err(IfNameError::TooLong { len: 16, max: 15 })
        );
    }
}
