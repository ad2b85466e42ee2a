//! Keeping secrets out of messages that quote someone else's text (a driver error, an API's error body).
//!
//! Two passes, because neither is enough alone: known secret values (a password, a key, the `Basic` token built
//! from a URL's user and password) are replaced wherever they appear, and the values of credential-bearing header
//! names (`Authorization`, `Cookie`, `apiKey`, ...) are replaced whatever they hold, since a server that echoes
//! our request headers may also echo ones we did not know were secret (a proxy's cookie, a gateway's token).

/// What replaces a secret.
pub const MASK: &str = "****";

/// Header and field names whose values are credentials, compared without case.
const CREDENTIAL_NAMES: [&str; 8] =
    ["proxy-authorization", "authorization", "set-cookie", "cookie", "apikey", "api-key", "x-api-key", "api_key"];

/// Every known secret value removed from `text`, then every credential header value.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    // Longest first, so a secret that contains another is removed whole.
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let known = secrets.iter().fold(text.to_string(), |t, s| t.replace(s, MASK));
    scrub_credential_values(&known)
}

/// `%XX` escapes decoded (bytes that are not UTF-8 are kept as they were).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// Replaces the value after every credential name: `Authorization: Basic x`, `"apiKey":"x"`, `cookie=x`.
fn scrub_credential_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while pos < text.len() {
        let next = CREDENTIAL_NAMES
            .iter()
            .filter_map(|name| lower[pos..].find(name).map(|at| (pos + at, name.len())))
            .min_by_key(|&(at, len)| (at, std::cmp::Reverse(len)));
        let Some((at, len)) = next else { break };
        let mut cursor = at + len;
        let rest = &text[cursor..];
        // An optional closing quote, then `:` or `=`, then optional spaces: only then is it a name with a value.
        let skipped = rest.len() - rest.trim_start_matches(['"', '\'']).len();
        let after_quote = &rest[skipped..];
        let after_sep = after_quote.trim_start_matches([' ', '\t']);
        let Some(value) = after_sep.strip_prefix([':', '=']) else {
            out.push_str(&text[pos..cursor]);
            pos = cursor;
            continue;
        };
        cursor += rest.len() - value.len();
        let value_trimmed = value.trim_start_matches([' ', '\t']);
        cursor += value.len() - value_trimmed.len();
        let end = match value_trimmed.chars().next() {
            Some(q @ ('"' | '\'')) => {
                cursor += 1;
                value_trimmed[1..].find(q).map_or(text.len(), |e| cursor + e)
            }
            _ => value_trimmed.find(['\n', '\r', ',', '}', '&', ';']).map_or(text.len(), |e| cursor + e),
        };
        out.push_str(&text[pos..cursor]);
        if end > cursor {
            out.push_str(MASK);
        }
        pos = end;
    }
    out.push_str(&text[pos.min(text.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_go_longest_first() {
        assert_eq!(scrub("auth with hunter2 failed", &["hunter2", ""]), "auth with **** failed");
        assert_eq!(scrub("ab abc", &["ab", "abc"]), "**** ****");
    }

    #[test]
    fn credential_header_values_go_whatever_they_are() {
        let cases = [
            (r#"{"authorization":"Basic dTpw","x":1}"#, r#"{"authorization":"****","x":1}"#),
            ("Authorization: Bearer abc.def\nHost: h", "Authorization: ****\nHost: h"),
            (r#"{"apiKey": "k1", "api-key":"k2"}"#, r#"{"apiKey": "****", "api-key":"****"}"#),
            ("cookie=sid=1; path=/", "cookie=****; path=/"),
            ("headers: {Cookie: a=b}", "headers: {Cookie: ****}"),
            ("the apikey header is missing", "the apikey header is missing"),
            (r#"'X-Api-Key': 'zz'"#, r#"'X-Api-Key': '****'"#),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub(input, &[]), expected, "{input}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%2"), "a@b%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%ff"), "%ff");
    }
}
