//! The user name: parsed once where it comes in, with its Unicode policy.

use super::UserError;

/// Longest accepted user name, in bytes.
pub const MAX_USERNAME_BYTES: usize = 128;

/// A user name, checked once where it comes in (`/login`, `add-user`, `revoke-user`).
///
/// Lookalike names are one name, or no name: the text is NFKC-normalised (fullwidth `ａｌｉｃｅ` is `alice`) and
/// lower-cased (`Alice` is `alice`), so `revoke-user alice` covers every way of typing it, and logs show the one
/// canonical form. Names with control characters, format characters (zero-width spaces and joiners, bidi
/// overrides and isolates, soft hyphens, byte-order marks) or surrounding spaces are refused, and so are names
/// whose letters mix scripts (a Cyrillic `с` in a Latin `aliсe`): each script alone is fine. 1 to 128 bytes,
/// normalised.
///
/// Users added before names were normalised keep working: the name as typed is kept too, and a login looks up
/// both forms ([`UserStore::check_credentials`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username {
    canonical: String,
    typed: String,
}

impl Username {
    /// Parses a user name.
    pub fn parse(name: &str) -> Result<Self, UserError> {
        use unicode_normalization::UnicodeNormalization;
        if name.trim().is_empty() {
            return Err(UserError::InvalidName("it is empty"));
        }
        if name.chars().any(|c| c.is_control() || is_format(c)) {
            return Err(UserError::InvalidName("control, zero-width or bidi characters"));
        }
        if name.trim() != name {
            return Err(UserError::InvalidName("surrounding spaces"));
        }
        let canonical: String = name.nfkc().collect::<String>().to_lowercase();
        if canonical.len() > MAX_USERNAME_BYTES || name.len() > MAX_USERNAME_BYTES {
            return Err(UserError::InvalidName("it is longer than 128 bytes"));
        }
        if canonical.chars().any(|c| c.is_control() || is_format(c)) || canonical.trim() != canonical {
            return Err(UserError::InvalidName("control, zero-width or bidi characters"));
        }
        if mixes_scripts(&canonical) {
            return Err(UserError::InvalidName("its letters mix scripts (a lookalike of another name)"));
        }
        Ok(Self { canonical, typed: name.to_string() })
    }

    /// The canonical name: what new users are stored under, what logs and rate limits use.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The name exactly as it was typed (for users stored before names were normalised).
    pub fn typed(&self) -> &str {
        &self.typed
    }
}

/// Unicode's format characters (general category Cf) that can hide in a name: soft hyphen, Arabic and Syriac
/// marks, the Mongolian vowel separator, zero-width space, joiners and direction marks, bidi embeddings,
/// overrides and isolates, invisible operators, the byte-order mark, interlinear annotation and tags.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// True when the letters of `name` belong to more than one script (Common and Inherited characters, such as
/// digits, punctuation and combining marks, belong to any).
fn mixes_scripts(name: &str) -> bool {
    use unicode_script::{Script, UnicodeScript};
    let mut seen: Option<Script> = None;
    for script in name.chars().map(|c| c.script()) {
        if matches!(script, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        match seen {
            None => seen = Some(script),
            Some(first) if first != script => return true,
            Some(_) => {}
        }
    }
    false
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookalike_names_are_one_name_or_none() {
        for same in ["Alice", "ALICE", "ａｌｉｃｅ", "Ａｌｉｃｅ"] {
            assert_eq!(Username::parse(same).unwrap().as_str(), "alice", "{same}");
        }
        assert_eq!(Username::parse("Alice").unwrap().typed(), "Alice");
        // A Cyrillic с (U+0441) among Latin letters.
        assert!(Username::parse("ali\u{0441}e").is_err());
        for hidden in
            ["al\u{200B}ice", "alice\u{202E}", "\u{2066}alice", "al\u{00AD}ice", "\u{FEFF}alice", "al\u{200D}ice"]
        {
            assert!(Username::parse(hidden).is_err(), "{hidden:?}");
        }
        // One script at a time is fine, digits and punctuation go with any.
        for fine in ["алиса", "josé", "李雷", "bob_2", "o'brien"] {
            assert!(Username::parse(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(Username::parse("alice").unwrap().as_str(), "alice");
        assert!(Username::parse("").is_err());
        assert!(Username::parse(" alice").is_err());
        assert!(Username::parse("al\nice").is_err());
        assert!(Username::parse(&"a".repeat(129)).is_err());
    }
}
