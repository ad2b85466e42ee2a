//! Names that are checked once, where they enter, and carried as types from then on: a MongoDB database or
//! collection name ([`MongoName`]) and a document field path ([`FieldPath`]). Code that holds one never checks it
//! again, and cannot be handed an unchecked string by mistake.

use std::fmt;
use std::ops::Deref;

use crate::config_error::ConfigError;

/// A MongoDB database or collection name: 1 to 120 bytes, none of `/\. "$` or NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MongoName(String);

impl MongoName {
    /// Parses `value`, the value of the variable `variable` (named in the error).
    pub fn parse(variable: &'static str, value: impl Into<String>) -> Result<Self, ConfigError> {
        let value = value.into();
        let bad =
            value.is_empty() || value.len() > 120 || value.chars().any(|c| "/\\. \"$\0".contains(c) || is_invisible(c));
        if bad {
            return Err(ConfigError::Invalid {
                name: variable,
                reason: format!("{value:?} is not a valid MongoDB name"),
            });
        }
        Ok(Self(value))
    }
}

/// A control character (`\n`, `\u{1b}`) or a format character (Unicode category Cf, Unicode 15: the bidirectional
/// overrides such as U+202E, zero-width characters, the soft hyphen): characters that print as nothing, or rewrite
/// what is printed around them. A name may not hold one; stored text shows them escaped.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(u32::from(c),
            0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E | 0x200B..=0x200F
            | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD
            | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// A plain field path (`expires_at`, `meta.exp`): no `$` operator, no empty segment, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    /// Parses `value`, the value of the variable `variable` (named in the error).
    pub fn parse(variable: &'static str, value: impl Into<String>) -> Result<Self, ConfigError> {
        let value = value.into();
        if value.starts_with('$') || value.contains('\0') || value.split('.').any(str::is_empty) {
            return Err(ConfigError::Invalid {
                name: variable,
                reason: format!("{value:?} is not a usable field path"),
            });
        }
        Ok(Self(value))
    }
}

macro_rules! string_like {
    ($($name:ident),*) => {$(
        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// So that a checked name can be a document key (`doc! { &field: 1 }`).
        impl From<&$name> for String {
            fn from(name: &$name) -> String {
                name.0.clone()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    )*};
}

string_like!(MongoName, FieldPath);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(MongoName::parse("V", "jwt_blacklist").unwrap(), "jwt_blacklist");
        for bad in ["", "a.b", "a$b", "a/b", "a b", "a\0b", &"x".repeat(121)] {
            let e = MongoName::parse("V", bad).unwrap_err();
            assert!(e.to_string().starts_with("V is invalid"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn field_paths() {
        assert_eq!(&*FieldPath::parse("F", "meta.exp").unwrap(), "meta.exp");
        for bad in ["$where", "a..b", ".a", "a.", "", "a\0"] {
            assert!(FieldPath::parse("F", bad).is_err(), "{bad:?}");
        }
    }
}
