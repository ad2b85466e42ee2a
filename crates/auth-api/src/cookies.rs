//! Tokens in cookies, for browsers, with double-submit CSRF protection: Flask-JWT-Extended's scheme, names and
//! messages, so that a team moving from the Flask service (or running both) changes nothing.
//!
//! In cookie mode `/login` sets four cookies: the two JWTs (`HttpOnly`, out of reach of any script an XSS could
//! run) and their CSRF values (readable by the page). Each token carries its own random `csrf` claim, signed with
//! it; the CSRF cookie holds the same value. A request authenticated by cookie with a state-changing method must
//! echo that value in `X-CSRF-TOKEN`: a cross-site page can make the browser send the cookies, but cannot read the
//! CSRF cookie to copy it into a header (OWASP's "random value within a JWT" as the session-bound value). A request
//! authenticated by the `Authorization` header needs no CSRF value: no browser attaches that header on its own.
//!
//! Where Flask-JWT-Extended's default is weaker, the safer one is chosen (docs/auth-api.md's table says which):
//! `SameSite=Lax` rather than no attribute, and `Secure` whenever TLS is on.

use std::fmt;

use axum::http::{HeaderMap, HeaderValue, Method};
use jtc_shared::config::{flag, ConfigError};

use crate::tokens::TokenKind;

/// Where tokens are looked for, in the order listed (`JWT_TOKEN_LOCATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// `Authorization: Bearer <JWT>`.
    Headers,
    /// The JWT cookies.
    Cookies,
}

/// `SameSite` of every cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on same-site requests and top-level cross-site navigations (the default here).
    Lax,
    /// Sent on same-site requests only.
    Strict,
    /// Sent everywhere; only with `Secure`.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// The cookies and header of one token kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCookies {
    /// The JWT's cookie (`HttpOnly`).
    pub jwt: String,
    /// Its path.
    pub jwt_path: String,
    /// The CSRF value's cookie (readable by the page).
    pub csrf: String,
    /// Its path.
    pub csrf_path: String,
    /// The header a state-changing request echoes the CSRF value in.
    pub header: String,
}

/// Everything about tokens in cookies.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieSettings {
    /// `JWT_TOKEN_LOCATION`, in order (default `headers`).
    pub locations: Vec<Location>,
    /// `JWT_COOKIE_CSRF_PROTECT` (default true).
    pub csrf_protect: bool,
    /// `JWT_CSRF_METHODS` (default POST, PUT, PATCH, DELETE).
    pub csrf_methods: Vec<Method>,
    /// The access token's cookies and header.
    pub access: TokenCookies,
    /// The refresh token's cookies and header.
    pub refresh: TokenCookies,
    /// `JWT_COOKIE_SECURE` (default: on when TLS is).
    pub secure: bool,
    /// `JWT_COOKIE_SAMESITE` (default `Lax`).
    pub same_site: SameSite,
    /// `JWT_COOKIE_DOMAIN` (default none: the host alone).
    pub domain: Option<String>,
}

impl fmt::Debug for CookieSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieSettings")
            .field("locations", &self.locations)
            .field("csrf_protect", &self.csrf_protect)
            .field("secure", &self.secure)
            .field("same_site", &self.same_site)
            .finish_non_exhaustive()
    }
}

/// The longest value of a cookie or CSRF header read; beyond it, the value is ignored as absent.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

impl CookieSettings {
    /// Reads the `JWT_*` cookie settings through `get`; `tls` says whether the server serves HTTPS itself.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>, tls: bool) -> Result<Self, ConfigError> {
        let text = |name: &'static str, default: &str| {
            let value = get(name).map(|v| v.trim().to_string()).unwrap_or_else(|| default.to_string());
            let token_char = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
            if value.is_empty() || !value.chars().all(token_char) {
                return Err(ConfigError::Invalid { name, reason: format!("{value:?} is not a cookie or header name") });
            }
            Ok(value)
        };
        let path = |name: &'static str| {
            let value = get(name).map(|v| v.trim().to_string()).unwrap_or_else(|| "/".to_string());
            if !value.starts_with('/') || value.chars().any(|c| c == ';' || c.is_control() || c.is_whitespace()) {
                return Err(ConfigError::Invalid { name, reason: format!("{value:?} is not a cookie path") });
            }
            Ok(value)
        };
        let locations = locations(get)?;
        let csrf_methods = csrf_methods(get)?;
        let secure = flag(get, "JWT_COOKIE_SECURE", tls)?;
        let same_site = same_site(get, secure)?;
        let domain = domain(get)?;
        let settings = Self {
            locations,
            csrf_protect: flag(get, "JWT_COOKIE_CSRF_PROTECT", true)?,
            csrf_methods,
            access: TokenCookies {
                jwt: text("JWT_ACCESS_COOKIE_NAME", "access_token_cookie")?,
                jwt_path: path("JWT_ACCESS_COOKIE_PATH")?,
                csrf: text("JWT_ACCESS_CSRF_COOKIE_NAME", "csrf_access_token")?,
                csrf_path: path("JWT_ACCESS_CSRF_COOKIE_PATH")?,
                header: text("JWT_ACCESS_CSRF_HEADER_NAME", "X-CSRF-TOKEN")?,
            },
            refresh: TokenCookies {
                jwt: text("JWT_REFRESH_COOKIE_NAME", "refresh_token_cookie")?,
                jwt_path: path("JWT_REFRESH_COOKIE_PATH")?,
                csrf: text("JWT_REFRESH_CSRF_COOKIE_NAME", "csrf_refresh_token")?,
                csrf_path: path("JWT_REFRESH_CSRF_COOKIE_PATH")?,
                header: text("JWT_REFRESH_CSRF_HEADER_NAME", "X-CSRF-TOKEN")?,
            },
            secure,
            same_site,
            domain,
        };
        settings.check_prefixes()?;
        Ok(settings)
    }

    /// The cookie name prefixes browsers enforce: a `__Secure-` cookie needs `Secure`, and a `__Host-` cookie also
    /// `Path=/` and no `Domain` (the defence against a sibling subdomain tossing a cookie). A browser drops such a
    /// cookie silently when a rule is broken, so a setting that breaks one is refused at start.
    fn check_prefixes(&self) -> Result<(), ConfigError> {
        let cookies = [
            ("JWT_ACCESS_COOKIE_NAME", &self.access.jwt, "JWT_ACCESS_COOKIE_PATH", &self.access.jwt_path),
            ("JWT_ACCESS_CSRF_COOKIE_NAME", &self.access.csrf, "JWT_ACCESS_CSRF_COOKIE_PATH", &self.access.csrf_path),
            ("JWT_REFRESH_COOKIE_NAME", &self.refresh.jwt, "JWT_REFRESH_COOKIE_PATH", &self.refresh.jwt_path),
            (
                "JWT_REFRESH_CSRF_COOKIE_NAME",
                &self.refresh.csrf,
                "JWT_REFRESH_CSRF_COOKIE_PATH",
                &self.refresh.csrf_path,
            ),
        ];
        for (name, cookie, path_name, path) in cookies {
            let host = cookie.starts_with("__Host-");
            let reason = if (host || cookie.starts_with("__Secure-")) && !self.secure {
                Some("needs JWT_COOKIE_SECURE=true (browsers drop such a cookie without Secure)".to_string())
            } else if host && self.domain.is_some() {
                Some("cannot be used with JWT_COOKIE_DOMAIN (a __Host- cookie has no Domain)".to_string())
            } else if host && path != "/" {
                Some(format!("needs {path_name}=/ (a __Host- cookie has Path=/)"))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(ConfigError::Invalid { name, reason: format!("{cookie:?} {reason}") });
            }
        }
        Ok(())
    }

    /// Tokens are read from, and written to, cookies.
    pub fn tokens_in_cookies(&self) -> bool {
        self.locations.contains(&Location::Cookies)
    }

    /// Tokens are read from the `Authorization` header, and answered in JSON bodies.
    pub fn tokens_in_headers(&self) -> bool {
        self.locations.contains(&Location::Headers)
    }

    /// The cookies and header of `kind`.
    pub fn of(&self, kind: TokenKind) -> &TokenCookies {
        match kind {
            TokenKind::Access => &self.access,
            TokenKind::Refresh => &self.refresh,
        }
    }

    /// Whether a request with `method`, authenticated by cookie, must carry the CSRF header.
    pub fn csrf_required(&self, method: &Method) -> bool {
        self.csrf_protect && self.csrf_methods.contains(method)
    }

    /// The `Set-Cookie` values that hand a client `token` of `kind` and its `csrf` value.
    pub fn set(&self, kind: TokenKind, token: &str, csrf: &str) -> Vec<HeaderValue> {
        let names = self.of(kind);
        [
            self.cookie(&names.jwt, token, &names.jwt_path, true, false),
            self.cookie(&names.csrf, csrf, &names.csrf_path, false, false),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The `Set-Cookie` values that remove every cookie of both kinds: empty, already expired, same path and
    /// domain.
    pub fn unset_all(&self) -> Vec<HeaderValue> {
        [&self.access, &self.refresh]
            .into_iter()
            .flat_map(|names| {
                [
                    self.cookie(&names.jwt, "", &names.jwt_path, true, true),
                    self.cookie(&names.csrf, "", &names.csrf_path, false, true),
                ]
            })
            .flatten()
            .collect()
    }

    /// One `Set-Cookie` value; session cookies (no `Max-Age`), as Flask-JWT-Extended's default.
    fn cookie(&self, name: &str, value: &str, path: &str, http_only: bool, expired: bool) -> Option<HeaderValue> {
        let mut cookie = format!("{name}={value}; Path={path}; SameSite={}", self.same_site.as_str());
        if let Some(domain) = &self.domain {
            cookie.push_str(&format!("; Domain={domain}"));
        }
        if self.secure {
            cookie.push_str("; Secure");
        }
        if http_only {
            cookie.push_str("; HttpOnly");
        }
        if expired {
            cookie.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        }
        HeaderValue::from_str(&cookie).ok()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first, as Flask reads it); `None` when absent,
/// empty, or longer than [`MAX_VALUE_BYTES`].
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .filter(|value| !value.is_empty() && value.len() <= MAX_VALUE_BYTES)
}

/// The value of header `name`; `None` when absent, not text, or longer than [`MAX_VALUE_BYTES`].
pub fn read_header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty() && value.len() <= MAX_VALUE_BYTES)
}

/// True when `a` equals `b`, in time that depends on their lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// `JWT_TOKEN_LOCATION`: `headers`, `cookies` or both, in order.
fn locations(get: &impl Fn(&str) -> Option<String>) -> Result<Vec<Location>, ConfigError> {
    let mut locations = Vec::new();
    for part in get("JWT_TOKEN_LOCATION").unwrap_or_else(|| "headers".into()).split(',') {
        let location = match part.trim().to_ascii_lowercase().as_str() {
            "headers" => Location::Headers,
            "cookies" => Location::Cookies,
            other => {
                return Err(ConfigError::Invalid {
                    name: "JWT_TOKEN_LOCATION",
                    reason: format!("{other:?} is not headers or cookies (comma-separated, in order)"),
                })
            }
        };
        if !locations.contains(&location) {
            locations.push(location);
        }
    }
    Ok(locations)
}

/// `JWT_CSRF_METHODS`: the methods that need the double-submit header.
fn csrf_methods(get: &impl Fn(&str) -> Option<String>) -> Result<Vec<Method>, ConfigError> {
    let parts = get("JWT_CSRF_METHODS").unwrap_or_else(|| "POST,PUT,PATCH,DELETE".into());
    parts
        .split(',')
        .map(|part| {
            Method::from_bytes(part.trim().to_ascii_uppercase().as_bytes()).map_err(|_| ConfigError::Invalid {
                name: "JWT_CSRF_METHODS",
                reason: format!("{part:?} is not an HTTP method"),
            })
        })
        .collect()
}

/// `JWT_COOKIE_SAMESITE`; `None` only with `Secure` (browsers refuse it otherwise).
fn same_site(get: &impl Fn(&str) -> Option<String>, secure: bool) -> Result<SameSite, ConfigError> {
    let same_site = match get("JWT_COOKIE_SAMESITE").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("lax") => SameSite::Lax,
        Some("strict") => SameSite::Strict,
        Some("none") => SameSite::None,
        Some(other) => {
            return Err(ConfigError::Invalid {
                name: "JWT_COOKIE_SAMESITE",
                reason: format!("{other:?} is not Lax, Strict or None"),
            })
        }
    };
    if same_site == SameSite::None && !secure {
        return Err(ConfigError::Invalid {
            name: "JWT_COOKIE_SAMESITE",
            reason: "None needs JWT_COOKIE_SECURE=true (browsers refuse SameSite=None cookies without Secure)".into(),
        });
    }
    Ok(same_site)
}

/// `JWT_COOKIE_DOMAIN`, when set.
fn domain(get: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    match get("JWT_COOKIE_DOMAIN").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
        Some(d) if d.chars().any(|c| c == ';' || c.is_control() || c.is_whitespace()) => {
            Err(ConfigError::Invalid { name: "JWT_COOKIE_DOMAIN", reason: format!("{d:?} is not a domain") })
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)], tls: bool) -> Result<CookieSettings, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CookieSettings::from_lookup(&|k: &str| map.get(k).cloned(), tls)
    }

    #[test]
    fn flask_jwt_extended_names_with_safer_defaults() {
        let s = settings(&[], false).unwrap();
        assert_eq!(s.locations, [Location::Headers]);
        assert!(s.csrf_protect && !s.secure && s.same_site == SameSite::Lax);
        assert_eq!((s.access.jwt.as_str(), s.access.csrf.as_str()), ("access_token_cookie", "csrf_access_token"));
        assert_eq!((s.refresh.jwt.as_str(), s.refresh.csrf.as_str()), ("refresh_token_cookie", "csrf_refresh_token"));
        assert_eq!(s.access.header, "X-CSRF-TOKEN");
        assert_eq!(s.csrf_methods, [Method::POST, Method::PUT, Method::PATCH, Method::DELETE]);
        assert!(settings(&[], true).unwrap().secure, "Secure whenever TLS is on");
        let both = settings(&[("JWT_TOKEN_LOCATION", "cookies, headers")], false).unwrap();
        assert_eq!(both.locations, [Location::Cookies, Location::Headers]);
    }

    #[test]
    fn bad_settings_name_the_variable() {
        for (vars, name) in [
            (vec![("JWT_TOKEN_LOCATION", "query_string")], "JWT_TOKEN_LOCATION"),
            (vec![("JWT_COOKIE_SAMESITE", "None")], "JWT_COOKIE_SAMESITE"),
            (vec![("JWT_COOKIE_SAMESITE", "sometimes")], "JWT_COOKIE_SAMESITE"),
            (vec![("JWT_ACCESS_COOKIE_NAME", "a;b")], "JWT_ACCESS_COOKIE_NAME"),
            (vec![("JWT_COOKIE_CSRF_PROTECT", "maybe")], "JWT_COOKIE_CSRF_PROTECT"),
            (vec![("JWT_ACCESS_COOKIE_PATH", "api")], "JWT_ACCESS_COOKIE_PATH"),
        ] {
            let e = settings(&vars, false).unwrap_err();
            assert!(e.to_string().starts_with(&format!("{name} is invalid")), "{e}");
        }
        assert!(settings(&[("JWT_COOKIE_SAMESITE", "None"), ("JWT_COOKIE_SECURE", "true")], false).is_ok());
        let host = ("JWT_ACCESS_COOKIE_NAME", "__Host-access");
        for (vars, named) in [
            (vec![host], "JWT_ACCESS_COOKIE_NAME"),
            (vec![host, ("JWT_COOKIE_SECURE", "true"), ("JWT_COOKIE_DOMAIN", "example.com")], "JWT_ACCESS_COOKIE_NAME"),
            (vec![host, ("JWT_COOKIE_SECURE", "true"), ("JWT_ACCESS_COOKIE_PATH", "/api")], "JWT_ACCESS_COOKIE_NAME"),
            (vec![("JWT_REFRESH_CSRF_COOKIE_NAME", "__Secure-csrf")], "JWT_REFRESH_CSRF_COOKIE_NAME"),
        ] {
            let e = settings(&vars, false).unwrap_err();
            assert!(e.to_string().starts_with(&format!("{named} is invalid")), "{e}");
        }
        assert!(settings(&[host, ("JWT_COOKIE_SECURE", "true")], false).is_ok());
    }

    #[test]
    fn cookies_carry_their_attributes() {
        let s = settings(&[("JWT_COOKIE_DOMAIN", "example.com"), ("JWT_COOKIE_SECURE", "true")], false).unwrap();
        let set = s.set(TokenKind::Access, "jwt", "csrf");
        assert_eq!(set[0], "access_token_cookie=jwt; Path=/; SameSite=Lax; Domain=example.com; Secure; HttpOnly");
        assert_eq!(set[1], "csrf_access_token=csrf; Path=/; SameSite=Lax; Domain=example.com; Secure");
        let unset = s.unset_all();
        assert_eq!(unset.len(), 4);
        assert!(unset
            .iter()
            .all(|c| c.to_str().unwrap().contains("=; Path=/") && c.to_str().unwrap().contains("Max-Age=0")));
    }

    #[test]
    fn reading_cookies_and_comparing_values() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", "a=1; csrf_access_token=xyz".parse().unwrap());
        headers.append("cookie", format!("big={}", "x".repeat(MAX_VALUE_BYTES + 1)).parse().unwrap());
        assert_eq!(read_cookie(&headers, "csrf_access_token").as_deref(), Some("xyz"));
        assert_eq!(read_cookie(&headers, "missing"), None);
        assert_eq!(read_cookie(&headers, "big"), None, "over-long is absent");
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab")
        );
    }
}
