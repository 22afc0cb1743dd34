//! Names that become file or directory names under the data dir: profile and group ids, Ignition
//! file names, asset versions.
//!
//! Anything that ends up in a path goes through [`Id`], so no input can escape the data dir
//! (`../x`, `/abs`, NUL) or hide from directory listings (a leading dot).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::InvalidInput;

/// Longest id accepted; well under every file system's name limit once `.json` is added.
pub const MAX_ID_LEN: usize = 128;

/// A validated id: `[A-Za-z0-9._-]+`, no leading dot, at most [`MAX_ID_LEN`] characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    /// Validates `value`; the error names the value and says what is wrong with it.
    pub fn new(value: &str) -> Result<Id, InvalidInput> {
        match problem(value) {
            None => Ok(Id(value.to_owned())),
            Some(why) => Err(InvalidInput(format!("invalid id {value:?}: {why}"))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id with a suffix appended (`node1` → `node1.ign`), still a valid id if short enough.
    /// Too long, the error is about the id the user gave, not a name they never typed.
    pub fn with_suffix(&self, suffix: &str) -> Result<Id, InvalidInput> {
        let name = format!("{}{suffix}", self.0);
        if name.len() > MAX_ID_LEN {
            return Err(InvalidInput(format!(
                "invalid id {:?}: it is {} bytes long, and with {suffix:?} added for the file \
                 caas derives from it, more than the limit of {MAX_ID_LEN}: use at most {} bytes",
                self.0,
                self.0.len(),
                MAX_ID_LEN.saturating_sub(suffix.len())
            )));
        }
        Id::new(&name)
    }
}

fn problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("it is empty".into());
    }
    if value.len() > MAX_ID_LEN {
        return Some(format!(
            "it is {} bytes long, the limit is {MAX_ID_LEN}",
            value.len()
        ));
    }
    if value.starts_with('.') {
        return Some("it starts with '.'".into());
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "{bad:?} is not allowed (use letters, digits, '.', '_' and '-')"
        ));
    }
    None
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Id {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::new(s)
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Id::new(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["node1", "etcd-0", "flatcar.ign", "a_b", "3227.2.0", "X"] {
            assert_eq!(Id::new(ok).unwrap().as_str(), ok);
        }
        assert!(Id::new(&"a".repeat(MAX_ID_LEN)).is_ok());
    }

    #[test]
    fn rejects_what_could_escape_or_hide() {
        let cases = [
            ("", "it is empty"),
            ("../x", "it starts with '.'"),
            ("/abs", "'/' is not allowed"),
            ("a/b", "'/' is not allowed"),
            ("a\0b", "'\\0' is not allowed"),
            ("has space", "' ' is not allowed"),
            (".hidden", "it starts with '.'"),
            ("é", "'é' is not allowed"),
        ];
        for (value, why) in cases {
            let err = Id::new(value).unwrap_err().to_string();
            assert!(err.contains(why), "{value:?}: {err}");
            assert!(err.contains(&format!("{value:?}")), "{err} names the value");
            assert!(!err.contains('\n'));
        }
        let derived = Id::new(&"a".repeat(MAX_ID_LEN - 1))
            .unwrap()
            .with_suffix(".ign");
        let message = derived.unwrap_err().0;
        assert!(
            message.ends_with("is 127 bytes long, and with \".ign\" added for the file caas derives from it, more than the limit of 128: use at most 124 bytes"),
            "{message}"
        );
        let long = "a".repeat(MAX_ID_LEN + 1);
        assert!(
            Id::new(&long)
                .unwrap_err()
                .to_string()
                .contains("limit is 128")
        );
    }

    proptest! {
        #[test]
        fn a_valid_id_is_one_plain_path_component(value in "\\PC{0,140}") {
            if let Ok(id) = Id::new(&value) {
                let path = std::path::Path::new(id.as_str());
                let mut components = path.components();
                prop_assert!(matches!(components.next(), Some(std::path::Component::Normal(_))));
                prop_assert!(components.next().is_none());
                prop_assert!(!id.as_str().starts_with('.'));
            }
        }
    }
}
