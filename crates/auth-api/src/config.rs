//! The auth API's settings, read from the environment like the cleaner's (same `DB_*`, `BLACKLIST_COLLECTION`,
//! `EXPIRES_FIELD`, `JWT_SECRET_KEY`, `JWT_ALGORITHM`), plus its own: token lifetimes, rate limits, Redis, CORS, TLS.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jtc_shared::config::{
    blacklist_collection, db_name, db_settings, db_uri, expires_field, jwt_algorithm, number, ConfigError, DbSettings,
};

use jtc_shared::names::{FieldPath, MongoName};

use crate::cookies::CookieSettings;
use crate::revocation_cache::CacheSettings;
use jtc_shared::serve::ConnectionLimits;
use jtc_shared::Secret;

use super::rate_limit::Limits;
#[cfg(doc)]
use super::rate_limit::Scope;

/// The shortest `JWT_SECRET_KEY` accepted: 32 bytes, the output size of HMAC-SHA-256. A shorter key makes the
/// tokens guessable offline.
pub const MIN_SECRET_BYTES: usize = 32;

pub use crate::tokens::JwtSettings;

/// Rate limits per client IP.
#[derive(Clone)]
pub struct RateLimitSettings {
    /// One limit per limited route (`RATE_LIMIT_LOGIN`, `RATE_LIMIT_PROTECTED`, ...: see [`Scope::ALL`] and [`Scope::variable`]).
    pub limits: Limits,
    /// `REDIS_URL`: counters shared by every instance; in memory (per instance) when unset.
    pub redis_url: Option<Secret>,
    /// `RATE_LIMIT_KEY_PREFIX` (default `auth-api`): the Redis key prefix.
    pub key_prefix: String,
    /// `TRUSTED_PROXY_HOPS` (default 0): proxies in front whose `X-Forwarded-For` entries name the client.
    pub trusted_proxy_hops: u8,
}

impl fmt::Debug for RateLimitSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitSettings")
            .field("limits", &self.limits)
            .field("redis_url", &self.redis_url.as_ref().map(|u| jtc_shared::config::redact_uri(u.expose())))
            .field("key_prefix", &self.key_prefix)
            .field("trusted_proxy_hops", &self.trusted_proxy_hops)
            .finish()
    }
}

/// The certificate chain and key for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `TLS_CERT_FILE`: PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// `TLS_KEY_FILE`: PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Everything `auth-api` needs.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The direct MongoDB connection (`DB_URI`, `DB_ACCOUNT`, `DB_PASSWORD`, `DB_NAME`), required here.
    pub db: DbSettings,
    /// `USERS_COLLECTION` (default `users`).
    pub users_collection: MongoName,
    /// `BLACKLIST_COLLECTION` (default `jwt_blacklist`), the collection the cleaner sweeps.
    pub blacklist_collection: MongoName,
    /// `EXPIRES_FIELD` (default `expires_at`), the field the cleaner sweeps on.
    pub expires_field: FieldPath,
    /// Tokens.
    pub jwt: JwtSettings,
    /// Rate limits.
    pub rate_limits: RateLimitSettings,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins (`https://app.example`) allowed to call from a browser;
    /// empty: no cross-origin calls.
    pub cors_allowed_origins: Vec<String>,
    /// `TLS_CERT_FILE` and `TLS_KEY_FILE`, both or neither.
    pub tls: Option<TlsSettings>,
    /// `PORT` (default 5000); the server listens on `0.0.0.0`.
    pub port: u16,
    /// The connection limits of the HTTP server (`HTTP_*`; see `jtc_shared::serve`).
    pub connections: ConnectionLimits,
    /// `PASSWORD_MIN_LENGTH` (default 12, 1-1024): the fewest characters a new or changed password may have.
    pub password_min_length: usize,
    /// `PASSWORD_MEMORY_KEEP_MS` (default 1000, 0-60000): how long argon2's memory is kept for the next login
    /// after the last one (see `password_memory`); 0 allocates it for every login.
    pub password_memory_keep: Duration,
    /// `JWT_TOKEN_LOCATION` and the cookie settings (see `cookies`).
    pub cookies: CookieSettings,
    /// `REVOCATION_CACHE`, `REVOCATION_MAX_STALENESS_MS`, `REVOCATION_POLL_MS`, `REVOCATION_EVICT_SECONDS` (see
    /// `revocation_cache`).
    pub revocation_cache: CacheSettings,
    /// The `OTEL_*` variables: where spans are exported (`jtc_shared::traces`); `None` exports nothing.
    pub traces: Option<jtc_shared::traces::TraceSettings>,
}

impl AuthSettings {
    /// Every secret value these settings carry, for [`jtc_shared::redact::register`]: the database's,
    /// `JWT_SECRET_KEY` and the credentials of `REDIS_URL`.
    pub fn secret_values(&self) -> Vec<String> {
        let mut secrets = self.db.secret_values();
        secrets.push(self.jwt.secret.expose().to_string());
        if let Some(url) = &self.rate_limits.redis_url {
            secrets.extend(jtc_shared::redact::uri_credentials(url.expose()));
        }
        secrets.extend(self.traces.iter().flat_map(jtc_shared::traces::TraceSettings::secret_values));
        secrets
    }
}

impl AuthSettings {
    /// Loads `.env.local` and `.env` when present (the real environment wins), then reads the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(jtc_shared::config::env_lookup())
    }

    /// Reads the settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let Some(uri) = db_uri(&get)? else {
            return Err(ConfigError::Missing("DB_URI", "set it to a mongodb:// or mongodb+srv:// connection string"));
        };
        let db = db_settings(&get, uri, db_name(&get)?)?;
        let users_collection =
            MongoName::parse("USERS_COLLECTION", get("USERS_COLLECTION").unwrap_or_else(|| "users".into()))?;
        let blacklist_collection = blacklist_collection(&get)?;
        let expires_field = expires_field(&get)?;

        let jwt = jwt_settings(&lookup, &get)?;
        let rate_limits = rate_limit_settings(&get)?;
        let cors_allowed_origins = cors_origins(&get)?;
        let tls = tls_settings(&get)?;
        let port = number(&get, "PORT", 5000, 0, 65535)? as u16;
        let cookies = CookieSettings::from_lookup(&get, tls.is_some())?;

        Ok(Self {
            traces: jtc_shared::traces::TraceSettings::from_lookup(get, "auth-api")?,
            db,
            users_collection,
            blacklist_collection,
            expires_field,
            jwt,
            rate_limits,
            cors_allowed_origins,
            tls,
            port,
            connections: ConnectionLimits::from_lookup(&get, Duration::from_secs(10))?,
            password_min_length: number(
                &get,
                "PASSWORD_MIN_LENGTH",
                crate::users::DEFAULT_PASSWORD_MIN_LENGTH as u64,
                1,
                1024,
            )? as usize,
            password_memory_keep: Duration::from_millis(number(&get, "PASSWORD_MEMORY_KEEP_MS", 1000, 0, 60_000)?),
            cookies,
            revocation_cache: cache_settings(&get)?,
        })
    }
}

/// A setting's non-empty value, looked up by name.
type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `JWT_SECRET_KEY` (read untrimmed, through `lookup`), the algorithm and the two lifetimes.
fn jwt_settings(lookup: &impl Fn(&str) -> Option<String>, get: Get<'_>) -> Result<JwtSettings, ConfigError> {
    // The secret is never trimmed or echoed: its length is the only thing said about it.
    let secret = lookup("JWT_SECRET_KEY").filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(
        "JWT_SECRET_KEY",
        "set it to a random secret of at least 32 bytes (e.g. `openssl rand -base64 48`)",
    ))?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::Invalid {
            name: "JWT_SECRET_KEY",
            reason: format!("it is {} bytes long; at least {MIN_SECRET_BYTES} are needed", secret.len()),
        });
    }
    Ok(JwtSettings {
        secret: Secret::new(secret),
        algorithm: jwt_algorithm(&get)?,
        access_ttl: Duration::from_secs(number(&get, "JWT_ACCESS_TOKEN_EXPIRES_SECONDS", 900, 1, 86_400)?),
        refresh_ttl: Duration::from_secs(number(
            &get,
            "JWT_REFRESH_TOKEN_EXPIRES_SECONDS",
            7 * 86_400,
            1,
            365 * 86_400,
        )?),
    })
}

/// `REDIS_URL`, the limits, their key prefix and the trusted proxy hops.
fn rate_limit_settings(get: Get<'_>) -> Result<RateLimitSettings, ConfigError> {
    let redis_url = get("REDIS_URL").map(|u| u.trim().to_string());
    if let Some(url) = &redis_url {
        if redis::Client::open(url.as_str()).is_err() {
            return Err(ConfigError::Invalid {
                name: "REDIS_URL",
                reason: "must be a redis:// or rediss:// URL".into(),
            });
        }
    }
    Ok(RateLimitSettings {
        limits: Limits::from_lookup(get).map_err(|(name, reason)| ConfigError::Invalid { name, reason })?,
        redis_url: redis_url.map(Secret::new),
        key_prefix: get("RATE_LIMIT_KEY_PREFIX").unwrap_or_else(|| "auth-api".into()),
        trusted_proxy_hops: number(&get, "TRUSTED_PROXY_HOPS", 0, 0, 10)? as u8,
    })
}

/// `CORS_ALLOWED_ORIGINS`: bare origins (`scheme://host[:port]`), comma-separated.
fn cors_origins(get: Get<'_>) -> Result<Vec<String>, ConfigError> {
    let mut origins = Vec::new();
    for origin in get("CORS_ALLOWED_ORIGINS").unwrap_or_default().split(',').map(str::trim) {
        if origin.is_empty() {
            continue;
        }
        let scheme_ok = origin.starts_with("https://") || origin.starts_with("http://");
        let parsed = url::Url::parse(origin).ok();
        let bare = parsed.as_ref().is_some_and(|u| u.path() == "/" && !origin.ends_with('/') && u.query().is_none());
        if !scheme_ok || !bare || axum::http::HeaderValue::from_str(origin).is_err() {
            return Err(ConfigError::Invalid {
                name: "CORS_ALLOWED_ORIGINS",
                reason: format!("{origin:?} is not an origin (scheme://host[:port], no path or trailing slash)"),
            });
        }
        origins.push(origin.to_string());
    }
    Ok(origins)
}

/// `TLS_CERT_FILE` and `TLS_KEY_FILE`, both or neither.
fn tls_settings(get: Get<'_>) -> Result<Option<TlsSettings>, ConfigError> {
    match (get("TLS_CERT_FILE"), get("TLS_KEY_FILE")) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsSettings { cert_file: cert.into(), key_file: key.into() })),
        (Some(_), None) => Err(ConfigError::Missing("TLS_KEY_FILE", "TLS_CERT_FILE is set without it")),
        (None, Some(_)) => Err(ConfigError::Missing("TLS_CERT_FILE", "TLS_KEY_FILE is set without it")),
    }
}

/// The revocation set's `REVOCATION_*` settings.
fn cache_settings(get: Get<'_>) -> Result<CacheSettings, ConfigError> {
    Ok(CacheSettings {
        enabled: jtc_shared::config::flag(&get, "REVOCATION_CACHE", true)?,
        max_staleness: Duration::from_millis(number(&get, "REVOCATION_MAX_STALENESS_MS", 1000, 10, 600_000)?),
        poll: Duration::from_millis(number(&get, "REVOCATION_POLL_MS", 250, 10, 60_000)?),
        evict: Duration::from_secs(number(&get, "REVOCATION_EVICT_SECONDS", 30, 1, 3600)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::Scope;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

    fn settings(vars: &[(&str, &str)]) -> Result<AuthSettings, ConfigError> {
        let mut map: HashMap<String, String> =
            [("DB_URI", "mongodb://localhost:27017"), ("DB_NAME", "app"), ("JWT_SECRET_KEY", SECRET)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        for (k, v) in vars {
            map.insert(k.to_string(), v.to_string());
        }
        AuthSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.port, 5000);
        assert_eq!(s.users_collection, "users");
        assert_eq!(s.blacklist_collection, "jwt_blacklist");
        assert_eq!(s.expires_field, "expires_at");
        assert_eq!(s.jwt.access_ttl, Duration::from_secs(15 * 60));
        assert_eq!(s.jwt.refresh_ttl, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(s.jwt.algorithm, jsonwebtoken::Algorithm::HS256);
        assert_eq!(s.rate_limits.limits.get(Scope::Login), "3/minute".parse().unwrap());
        assert_eq!(s.rate_limits.limits.get(Scope::Protected), "5/minute".parse().unwrap());
        assert!(s.rate_limits.redis_url.is_none());
        assert_eq!(s.rate_limits.trusted_proxy_hops, 0);
        assert!(s.cors_allowed_origins.is_empty());
        assert!(s.tls.is_none());
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("JWT_SECRET_KEY", "")], "JWT_SECRET_KEY is not set"),
            (&[("JWT_SECRET_KEY", "short")], "JWT_SECRET_KEY is invalid"),
            (&[("DB_URI", "")], "DB_URI is not set"),
            (&[("JWT_ACCESS_TOKEN_EXPIRES_SECONDS", "0")], "JWT_ACCESS_TOKEN_EXPIRES_SECONDS is invalid"),
            (&[("RATE_LIMIT_LOGIN", "3/fortnight")], "RATE_LIMIT_LOGIN is invalid"),
            (&[("RATE_LIMIT_PROTECTED", "0/minute")], "RATE_LIMIT_PROTECTED is invalid"),
            (&[("REDIS_URL", "http://cache")], "REDIS_URL is invalid"),
            (&[("CORS_ALLOWED_ORIGINS", "https://a.example/path")], "CORS_ALLOWED_ORIGINS is invalid"),
            (&[("CORS_ALLOWED_ORIGINS", "*")], "CORS_ALLOWED_ORIGINS is invalid"),
            (&[("TLS_CERT_FILE", "/c.pem")], "TLS_KEY_FILE is not set"),
            (&[("TLS_KEY_FILE", "/k.pem")], "TLS_CERT_FILE is not set"),
            (&[("USERS_COLLECTION", "a.b")], "USERS_COLLECTION is invalid"),
            (&[("JWT_ALGORITHM", "none")], "JWT_ALGORITHM is invalid"),
            (&[("TRUSTED_PROXY_HOPS", "x")], "TRUSTED_PROXY_HOPS is invalid"),
        ];
        for (vars, expected) in cases {
            let e = settings(vars).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{vars:?}: {e}");
        }
    }

    #[test]
    fn the_short_secret_is_never_echoed() {
        let e = settings(&[("JWT_SECRET_KEY", "hunter2-hunter2")]).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn origins_and_tls() {
        let s = settings(&[
            ("CORS_ALLOWED_ORIGINS", "https://app.example, http://localhost:3000"),
            ("TLS_CERT_FILE", "/c.pem"),
            ("TLS_KEY_FILE", "/k.pem"),
        ])
        .unwrap();
        assert_eq!(s.cors_allowed_origins, ["https://app.example", "http://localhost:3000"]);
        assert_eq!(s.tls, Some(TlsSettings { cert_file: "/c.pem".into(), key_file: "/k.pem".into() }));
    }

    #[test]
    fn debug_redacts_every_secret() {
        let s = settings(&[
            ("DB_URI", "mongodb://admin:uri-pass-123@db.example/app"),
            ("DB_ACCOUNT", "svc"),
            ("DB_PASSWORD", "db-pass-456"),
            ("REDIS_URL", "redis://:redis-pass-789@cache.example:6379/0"),
        ])
        .unwrap();
        let printed = format!("{s:?} {s:#?}");
        for secret in ["uri-pass-123", "db-pass-456", "redis-pass-789", SECRET] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
    }
}
