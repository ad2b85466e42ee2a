//! Strings the cleaner did not write itself, read back from storage (a lease's holder, a run record's error, a
//! target's name in a record): how they are checked and how they are shown.
//!
//! Anyone who can write the history collection can write these. Printed raw, a holder of
//! `evil\x1b[31m…\n2026-… INFO sweep finished cleaned=999999` forged a whole line of the text logs, and U+202E
//! (right-to-left override) turned what a terminal showed around. So an identifier is checked where it is read
//! ([`is_request_id`]), and any other stored text is escaped before it reaches a log line, a warning or a terminal
//! ([`printable`]).

use jtc_shared::names::is_invisible;

/// The longest request id the cleaner accepts (FC's are 36 characters, the CLI's 40).
pub const MAX_REQUEST_ID: usize = 128;

/// Whether `id` is a request id as the cleaner makes and accepts them: 1 to [`MAX_REQUEST_ID`] ASCII letters,
/// digits and `-_.:` (FC's `x-fc-request-id`, the CLI's `cli-<uuid>`).
pub fn is_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// `text` with every control character (`\n`, `\u{1b}`) and every format character (Unicode category Cf: the
/// bidirectional overrides, zero-width characters, the soft hyphen; `jtc_shared::names::is_invisible`) escaped as
/// `\u{…}`, so that it prints as one line that reads the way it is stored.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_invisible(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_plain_tokens() {
        assert!(is_request_id("cli-2f9b8c1e-8a55-4a3e-9c1d-0b1c2d3e4f50"));
        assert!(is_request_id("1-6571c1a2-4b2b2f8e1c9d0e7f6a5b4c3d"));
        for bad in ["", "evil\u{1b}[31m", "a\nb", "a b", "\u{202e}abc", &"x".repeat(129)] {
            assert!(!is_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn control_and_format_characters_are_escaped() {
        assert_eq!(printable("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(printable("abc\u{202e}def"), "abc\\u{202e}def");
        assert_eq!(printable("zero\u{200b}width\u{feff}"), "zero\\u{200b}width\\u{feff}");
        assert_eq!(printable("plain, ümlaut, 漢字"), "plain, ümlaut, 漢字");
    }
}
