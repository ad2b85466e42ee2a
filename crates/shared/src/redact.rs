//! Keeping secrets out of messages that quote someone else's text (a driver error, an API's error body).
//!
//! Two passes, because neither is enough alone: known secret values (a password, a key, the `Basic` token built
//! from a URL's user and password) are replaced wherever they appear, and the values of credential-bearing header
//! names (`Authorization`, `Cookie`, `apiKey`, ...) are replaced whatever they hold, since a server that echoes
//! our request headers may also echo ones we did not know were secret (a proxy's cookie, a gateway's token).
//!
//! Each binary registers its secrets once at start ([`register`]); from then on every log line is scrubbed of them
//! on its way out (see `telemetry`), and every message built from someone else's text goes through [`scrub`] or
//! [`scrub_registered`]. One scrubber, whatever the path.

use std::sync::{PoisonError, RwLock};

/// The secrets of this process, registered at start.
static REGISTERED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// The shortest secret that is scrubbed, whatever it is (a user name, a password, a key): shorter ones are pieces
/// of common words that would blank out half a message and say little on their own. One rule for every secret:
/// a one-letter user name in `CLEANUP_PUSHGATEWAY_URL` once turned every JSON log line into
/// `{"tim****stamp":…}`, which no longer parsed, and the Log Service alert on "sweep finished" never fired.
pub const MIN_SCRUBBED_NAME: usize = 3;

/// Adds `secrets` to the ones every log line and [`scrub_registered`] remove, each with its base64 forms (an API
/// that echoes a key encoded): ones shorter than [`MIN_SCRUBBED_NAME`] are ignored.
pub fn register(secrets: impl IntoIterator<Item = String>) {
    use base64::Engine;
    let mut registered = REGISTERED.write().unwrap_or_else(PoisonError::into_inner);
    for secret in secrets.into_iter().filter(|s| s.len() >= MIN_SCRUBBED_NAME) {
        let encoded = [
            base64::engine::general_purpose::STANDARD.encode(&secret),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&secret),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&secret),
        ];
        for value in std::iter::once(secret).chain(encoded) {
            if !registered.contains(&value) {
                registered.push(value);
            }
        }
    }
}

/// [`scrub`] with every registered secret.
pub fn scrub_registered(text: &str) -> String {
    let registered = REGISTERED.read().unwrap_or_else(PoisonError::into_inner);
    let secrets: Vec<&str> = registered.iter().map(String::as_str).collect();
    scrub(text, &secrets)
}

/// What replaces a secret.
pub const MASK: &str = "****";

/// Header and field names whose values are credentials, compared without case.
const CREDENTIAL_NAMES: [&str; 8] =
    ["proxy-authorization", "authorization", "set-cookie", "cookie", "apikey", "api-key", "x-api-key", "api_key"];

/// Every known secret value of at least [`MIN_SCRUBBED_NAME`] bytes removed from `text`, in any ASCII case (an
/// API that echoes a key upper-cased), then every credential header value.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    // Longest first, so a secret that contains another is removed whole.
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| s.len() >= MIN_SCRUBBED_NAME).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let known = secrets.iter().fold(text.to_string(), |t, s| replace_ignoring_ascii_case(&t, s));
    scrub_credential_values(&known)
}

/// `text` with every occurrence of `secret`, compared without ASCII case, replaced by [`MASK`].
fn replace_ignoring_ascii_case(text: &str, secret: &str) -> String {
    let (haystack, needle) = (text.as_bytes(), secret.as_bytes());
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut i) = (0, 0);
    while i + needle.len() <= haystack.len() {
        // Matches start and end on char boundaries: the secret is valid UTF-8 and ASCII case folding keeps lengths.
        if haystack[i..i + needle.len()].eq_ignore_ascii_case(needle) && text.is_char_boundary(i) {
            out.push_str(&text[copied..i]);
            out.push_str(MASK);
            i += needle.len();
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The secrets an http(s) URL carries in its user-info part, as they may come back: raw, percent-decoded, and as
/// the `Basic` token an HTTP client builds from them (`MONGODB_API_URL`).
pub fn url_credentials(url: &str) -> Vec<String> {
    use base64::Engine;
    let Ok(parsed) = url::Url::parse(url) else { return Vec::new() };
    let (user, password) = (parsed.username(), parsed.password().unwrap_or(""));
    if user.is_empty() && password.is_empty() {
        return Vec::new();
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        percent_decode(user),
        percent_decode(password)
    ));
    [user.to_string(), percent_decode(user), password.to_string(), percent_decode(password), basic]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect()
}

/// The user names and passwords a connection string may carry, in every form they may come back in (raw and
/// percent-decoded), read leniently: the user-info part ends at the last `@` before the first `/`, or, when the
/// password holds an unescaped `/`, at the last `@` of all. A `?` or `#` in a password does not end it here, as it
/// may in a driver's reading: scrubbing too much is harmless, too little is a leak. User names shorter than
/// [`MIN_SCRUBBED_NAME`] are left out.
pub fn uri_credentials(uri: &str) -> Vec<String> {
    let Some(start) = uri.find("://") else { return Vec::new() };
    let rest = &uri[start + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let mut found = Vec::new();
    // The lenient reading only when the strict one finds no user-info, and only when what it finds has a `:`
    // before any `/` (a user and a password), not a host and a path with an `@` in the query.
    let lenient = rest.rfind('@').filter(|&end| {
        let candidate = &rest[..end];
        authority.rfind('@').is_none() && candidate[..candidate.find('/').unwrap_or(candidate.len())].contains(':')
    });
    for end in [authority.rfind('@'), lenient].into_iter().flatten() {
        let userinfo = &rest[..end];
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        for value in [password.to_string(), percent_decode(password)] {
            // A driver that misreads the URI quotes the pieces it cut the password into (`Pass?word` becomes a
            // port `Pass`): each piece long enough to mean something is scrubbed too.
            found.extend(
                value.split(['?', '/', '#', '@', ':']).filter(|p| p.len() >= MIN_SCRUBBED_NAME).map(str::to_string),
            );
            found.push(value);
        }
        for value in [user.to_string(), percent_decode(user)] {
            if value.len() >= MIN_SCRUBBED_NAME {
                found.push(value);
            }
        }
    }
    found.retain(|v| !v.is_empty());
    found.dedup();
    found
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
    fn short_secrets_are_never_scrubbed_inside_words() {
        let line = r#"{"timestamp":"t","message":"sweep finished","fields":{"e":1}}"#;
        assert_eq!(scrub(line, &["e", "ti"]), line, "shorter than MIN_SCRUBBED_NAME: left alone");
        assert_eq!(scrub("pass=long-password-1234", &["long-password-1234"]), "pass=****");
    }

    #[test]
    fn a_secret_echoed_in_another_case_is_scrubbed() {
        assert_eq!(scrub("key: S3CR3T-API-KEY-ABC.", &["s3cr3t-api-key-abc"]), "key: ****.");
        assert_eq!(scrub("ünïcode s3cr3t ünïcode", &["S3CR3T"]), "ünïcode **** ünïcode");
    }

    #[test]
    fn registered_secrets_are_scrubbed_base64_encoded_too() {
        use base64::Engine;
        register(["registered-key-7f3a9".to_string(), "ab".to_string()]);
        let encoded = base64::engine::general_purpose::STANDARD.encode("registered-key-7f3a9");
        assert_eq!(scrub_registered(&format!("echo {encoded} end")), "echo **** end");
        assert_eq!(scrub_registered("a tab, abc"), "a tab, abc", "a two-letter secret is not registered");
    }

    #[test]
    fn url_credentials_in_every_form() {
        use base64::Engine;
        let found = url_credentials("https://us%40er:p%3Ass@api.example/v1");
        assert!(found.contains(&"us%40er".to_string()) && found.contains(&"us@er".to_string()), "{found:?}");
        assert!(found.contains(&"p:ss".to_string()), "{found:?}");
        let basic = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert!(found.contains(&basic), "{found:?}");
        assert!(url_credentials("https://api.example/v1").is_empty());
        assert!(url_credentials("not a url").is_empty());
    }

    #[test]
    fn known_values_go_longest_first() {
        assert_eq!(scrub("auth with hunter2 failed", &["hunter2", ""]), "auth with **** failed");
        assert_eq!(scrub("abcd abcde", &["abcd", "abcde"]), "**** ****");
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

    /// The awkward connection strings: what each must never let through.
    #[test]
    fn every_credential_of_an_awkward_uri_is_found() {
        let table: [(&str, &[&str]); 10] = [
            ("mongodb://admin:Pass?@db.example/", &["Pass?", "Pass", "admin"]),
            ("mongodb://admin:Qm4rk?Pa55@db.example/", &["Qm4rk?Pa55", "Qm4rk", "Pa55"]),
            ("mongodb://admin:pa@ss@db.example/app", &["pa@ss"]),
            ("mongodb://admin:pa/ss@db.example/app?authSource=admin", &["pa/ss"]),
            ("mongodb://admin:pa#ss@db.example:27017", &["pa#ss"]),
            ("mongodb://admin:p%40ss%2Fw%3F@db.example/", &["p%40ss%2Fw%3F", "p@ss/w?"]),
            ("mongodb+srv://svc-user:Srv-Pa55@cluster0.example.net/app?retryWrites=true", &["Srv-Pa55", "svc-user"]),
            ("mongodb://us%40er:pw123@h1:1,h2:2/?replicaSet=rs", &["pw123", "us%40er", "us@er"]),
            ("mongodb://onlyuser@db.example/", &["onlyuser"]),
            ("mongodb://db.example/app?x=a@b", &[]),
        ];
        for (uri, secrets) in table {
            let found = uri_credentials(uri);
            for secret in secrets {
                assert!(found.iter().any(|f| f == secret), "{uri}: {secret:?} not in {found:?}");
                let message = format!("error connecting to {uri}: bad auth for {secret}");
                let scrubbed = scrub(&message, &found.iter().map(String::as_str).collect::<Vec<_>>());
                assert!(!scrubbed.contains(secret), "{uri}: {scrubbed}");
            }
            assert!(!found.iter().any(|f| f.contains("db.example")), "{uri}: the host is no secret: {found:?}");
        }
        assert!(uri_credentials("mongodb://u:pw@h/").iter().all(|f| f != "u"), "names under 3 bytes are kept");
    }

    #[test]
    fn registered_secrets_are_scrubbed() {
        register(["Reg-Secret-1".to_string(), String::new()]);
        assert_eq!(scrub_registered("x Reg-Secret-1 y"), "x **** y");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%2"), "a@b%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%ff"), "%ff");
    }
}
