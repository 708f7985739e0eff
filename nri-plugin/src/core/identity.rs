//! The name and index a plugin registers under.

use std::fmt;

/// The default plugin name.
pub const DEFAULT_NAME: &str = "nauti";

/// The default index. Plugins are called in ascending index order; Nauti has no ordering needs
/// towards other plugins, so it takes a middle-low slot.
pub const DEFAULT_INDEX: &str = "10";

/// A validated plugin name and index, shown as `<index>-<name>` like the runtime shows plugins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginIdentity {
    name: String,
    index: String,
}

/// A name or index the runtime would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The name is empty.
    #[error("plugin name is empty")]
    EmptyName,
    /// The name has a character outside `[a-zA-Z0-9_.+-]`.
    #[error("plugin name {name:?} contains {bad:?}; only [a-zA-Z0-9_.+-] are allowed")]
    BadName {
        /// The name given.
        name: String,
        /// The first bad character.
        bad: char,
    },
    /// The index is not two decimal digits.
    #[error("plugin index {0:?} must be two digits [0-9][0-9]")]
    BadIndex(String),
}

impl PluginIdentity {
    /// Checks `name` and `index` as the runtime does (`CheckPluginName`, `CheckPluginIndex`).
    pub fn new(name: impl Into<String>, index: impl Into<String>) -> Result<Self, IdentityError> {
        let (name, index) = (name.into(), index.into());
        if name.is_empty() {
            return Err(IdentityError::EmptyName);
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+')))
        {
            return Err(IdentityError::BadName { name, bad });
        }
        if index.len() != 2 || !index.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentityError::BadIndex(index));
        }
        Ok(Self { name, index })
    }

    /// The plugin name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The two-digit index.
    pub fn index(&self) -> &str {
        &self.index
    }
}

impl Default for PluginIdentity {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            index: DEFAULT_INDEX.to_owned(),
        }
    }
}

impl fmt::Display for PluginIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.index, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_identity_is_valid() {
        let default = PluginIdentity::default();
        assert_eq!(
            PluginIdentity::new(DEFAULT_NAME, DEFAULT_INDEX),
            Ok(default.clone())
        );
        assert_eq!(default.to_string(), "10-nauti");
    }

    #[test]
    fn names_and_indexes_are_checked_like_the_runtime_does() {
        assert!(PluginIdentity::new("nauti-dev_1.2+x", "00").is_ok());
        assert_eq!(PluginIdentity::new("", "10"), Err(IdentityError::EmptyName));
        assert_eq!(
            PluginIdentity::new("nau ti", "10"),
            Err(IdentityError::BadName {
                name: "nau ti".into(),
                bad: ' '
            })
        );
        assert_eq!(
            PluginIdentity::new("nauti/x", "10"),
            Err(IdentityError::BadName {
                name: "nauti/x".into(),
                bad: '/'
            })
        );
        for bad in ["1", "100", "a1", "", "1\u{660}"] {
            assert_eq!(
                PluginIdentity::new("nauti", bad),
                Err(IdentityError::BadIndex(bad.into())),
                "{bad:?}"
            );
        }
    }
}
