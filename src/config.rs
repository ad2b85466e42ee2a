//! Settings, read once from the environment.
//!
//! `.env` and then `.env.local` are loaded first when present (the real environment always wins), then every
//! variable is parsed and checked. A missing or invalid setting is a [`ConfigError`] that names the variable.
//! Secrets live in [`Secret`], whose `Debug` never shows the value, and the `Debug` of [`DbSettings`] hides the
//! password of a `DB_URI` as well.

use std::fmt;
use std::time::Duration;

/// A value that must never reach a log line or a `Debug` print.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (a credential, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"[REDACTED]\")")
    }
}

/// How both binaries end on a configuration error: a log line, a plain line on stderr for whoever runs the
/// command, and exit code 2.
pub fn exit_on_config_error(program: &str, error: &ConfigError) -> std::process::ExitCode {
    tracing::error!("configuration error: {error}");
    eprintln!("{program}: configuration error: {error}");
    std::process::ExitCode::from(2)
}

/// A setting that is missing or cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{0} is not set: {1}")]
    Missing(&'static str, &'static str),
    /// A variable is set to something unusable.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why, without echoing secret values.
        reason: String,
    },
}

/// Where and how to reach MongoDB directly.
#[derive(Clone)]
pub struct DbSettings {
    /// `DB_URI`: a `mongodb://` or `mongodb+srv://` connection string. May carry a password: see [`redact_uri`].
    pub uri: Secret,
    /// `DB_ACCOUNT`: user name, used with `DB_PASSWORD` as the credential when set.
    pub account: Option<String>,
    /// `DB_PASSWORD`: never pasted into the URI or logged.
    pub password: Option<Secret>,
    /// `DB_NAME`: the database that holds the blacklist.
    pub database: String,
    /// Server selection and connect timeout (`DB_TIMEOUT_SECONDS`, default 5), so an unreachable database
    /// answers well inside the time budget.
    pub timeout: Duration,
}

impl fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSettings")
            .field("uri", &redact_uri(self.uri.expose()))
            .field("account", &self.account)
            .field("password", &self.password)
            .field("database", &self.database)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The team's DB-operation HTTP API (MongoDB Atlas Data API v1 shape).
#[derive(Clone)]
pub struct ApiSettings {
    /// `MONGODB_API_URL`: base URL; actions are `POST {base}/action/{find|aggregate|deleteMany|...}`.
    pub url: String,
    /// `MONGODB_API_KEY`: sent in the `api-key` header when set.
    pub key: Option<Secret>,
    /// `MONGODB_API_DATA_SOURCE` (default `mongodb`).
    pub data_source: String,
    /// `DB_NAME`.
    pub database: String,
    /// `MONGODB_API_TIMEOUT_SECONDS` (default 10): connect and whole-request timeout.
    pub timeout: Duration,
}

impl fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiSettings")
            .field("url", &redact_uri(&self.url))
            .field("key", &self.key)
            .field("data_source", &self.data_source)
            .field("database", &self.database)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Legacy entries: no usable expiry field, only the raw `token`.
#[derive(Debug, Clone)]
pub struct LegacySettings {
    /// `JWT_SECRET_KEY`: verifies legacy tokens; without it legacy entries are left alone.
    pub secret_key: Option<Secret>,
    /// `JWT_ALGORITHM` (default `HS256`; `HS384` and `HS512` too).
    pub algorithm: jsonwebtoken::Algorithm,
    /// `BACKFILL_EXPIRES_AT` (default false): write the expiry field of verified, unexpired legacy entries.
    pub backfill: bool,
    /// `LEGACY_SCAN_LIMIT` (default 10000, 0 turns the scan off): legacy entries examined per run at most.
    pub scan_limit: u64,
}

/// How a sweep behaves by default; an invocation may override some of it (see `sweep::SweepOptions`).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSettings {
    /// `BLACKLIST_COLLECTION` (default `jwt_blacklist`).
    pub collection: String,
    /// `EXPIRES_FIELD` (default `expires_at`).
    pub expires_field: String,
    /// `CLEANUP_GRACE_SECONDS` (default 60): an entry goes only once its expiry is this far in the past.
    pub grace: Duration,
    /// `CLEANUP_BATCH_SIZE` (default 5000).
    pub batch_size: u32,
    /// `CLEANUP_TIME_BUDGET_SECONDS` (default 50): no batch starts after it.
    pub time_budget: Duration,
}

/// Everything the cleaner needs, read from the environment. At least one of `api` and `db` is set.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The DB-operation HTTP API, tried first when set.
    pub api: Option<ApiSettings>,
    /// The direct MongoDB connection: the fallback, or the only backend.
    pub db: Option<DbSettings>,
    /// Sweep defaults.
    pub sweep: SweepSettings,
    /// Legacy entries.
    pub legacy: LegacySettings,
    /// Listening port: `FC_CUSTOM_LISTEN_PORT`, else `PORT`, else 9000.
    pub port: u16,
}

/// Upper bounds shared by the environment and the invoke body.
pub const MAX_BATCH_SIZE: u32 = 100_000;
/// The largest time budget, in seconds (FC functions may run longer than the default 60 s).
pub const MAX_TIME_BUDGET_SECONDS: u64 = 900;

impl Settings {
    /// Loads `.env` and `.env.local` when present (`.env.local` wins over `.env`, the real environment over
    /// both), then reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup())
    }

    /// Reads the settings through `lookup`, so tests can pass a map instead of touching the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let uri = db_uri(&get)?;
        let api_url = get("MONGODB_API_URL").map(|u| u.trim().trim_end_matches('/').to_string());
        if let Some(url) = &api_url {
            let valid = url.starts_with("https://") || url.starts_with("http://");
            if !valid || reqwest::Url::parse(url).is_err() {
                return Err(ConfigError::Invalid {
                    name: "MONGODB_API_URL",
                    reason: "must be an http:// or https:// URL".into(),
                });
            }
        }
        if uri.is_none() && api_url.is_none() {
            return Err(ConfigError::Missing(
                "DB_URI",
                "set DB_URI (a mongodb:// or mongodb+srv:// connection string), MONGODB_API_URL, or both",
            ));
        }
        let database = db_name(&get)?;

        let collection = checked_name(
            "BLACKLIST_COLLECTION",
            get("BLACKLIST_COLLECTION").unwrap_or_else(|| "jwt_blacklist".into()),
        )?;
        let expires_field = expires_field(&get)?;

        let grace = number(&get, "CLEANUP_GRACE_SECONDS", 60, 0, 365 * 24 * 3600)?;
        let batch_size = number(&get, "CLEANUP_BATCH_SIZE", 5000, 1, MAX_BATCH_SIZE as u64)? as u32;
        let time_budget = number(&get, "CLEANUP_TIME_BUDGET_SECONDS", 50, 1, MAX_TIME_BUDGET_SECONDS)?;

        let api_timeout = number(&get, "MONGODB_API_TIMEOUT_SECONDS", 10, 1, 120)?;
        let data_source = get("MONGODB_API_DATA_SOURCE").unwrap_or_else(|| "mongodb".into());

        let algorithm = jwt_algorithm(&get)?;
        let backfill = match get("BACKFILL_EXPIRES_AT").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "BACKFILL_EXPIRES_AT",
                    reason: format!("{other:?} is not true or false"),
                })
            }
        };
        let scan_limit = number(&get, "LEGACY_SCAN_LIMIT", 10_000, 0, 1_000_000)?;

        let port = match get("FC_CUSTOM_LISTEN_PORT") {
            Some(_) => number(&get, "FC_CUSTOM_LISTEN_PORT", 9000, 0, 65535)?,
            None => number(&get, "PORT", 9000, 0, 65535)?,
        } as u16;

        Ok(Settings {
            api: api_url.map(|url| ApiSettings {
                url,
                key: get("MONGODB_API_KEY").map(Secret::new),
                data_source,
                database: database.clone(),
                timeout: Duration::from_secs(api_timeout),
            }),
            db: match uri {
                Some(uri) => Some(db_settings(&get, uri, database)?),
                None => None,
            },
            sweep: SweepSettings {
                collection,
                expires_field,
                grace: Duration::from_secs(grace),
                batch_size,
                time_budget: Duration::from_secs(time_budget),
            },
            legacy: LegacySettings {
                secret_key: get("JWT_SECRET_KEY").map(Secret::new),
                algorithm,
                backfill,
                scan_limit,
            },
            port,
        })
    }
}

/// Loads `.env.local` and `.env` into the process environment, then looks variables up there.
///
/// dotenvy never overrides a variable that is already set, so loading `.env.local` first gives the usual
/// precedence: real environment, then `.env.local`, then `.env`. A missing file is normal; a malformed one is
/// reported by the variables it fails to set.
pub(crate) fn env_lookup() -> impl Fn(&str) -> Option<String> {
    let _ = dotenvy::from_filename(".env.local");
    let _ = dotenvy::from_filename(".env");
    |name| std::env::var(name).ok()
}

/// `DB_URI`, checked to be a MongoDB connection string, when set.
pub(crate) fn db_uri(get: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    let uri = get("DB_URI").map(|u| u.trim().to_string());
    if let Some(uri) = &uri {
        if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
            return Err(ConfigError::Invalid {
                name: "DB_URI",
                reason: "must start with mongodb:// or mongodb+srv://".into(),
            });
        }
    }
    Ok(uri)
}

/// `DB_NAME`, required.
pub(crate) fn db_name(get: &impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    match get("DB_NAME") {
        Some(name) => checked_name("DB_NAME", name),
        None => Err(ConfigError::Missing("DB_NAME", "set it to the database that holds the blacklist")),
    }
}

/// The direct connection: `uri` (from [`db_uri`]) with `DB_ACCOUNT`, `DB_PASSWORD` and `DB_TIMEOUT_SECONDS`.
pub(crate) fn db_settings(
    get: &impl Fn(&str) -> Option<String>,
    uri: String,
    database: String,
) -> Result<DbSettings, ConfigError> {
    let account = get("DB_ACCOUNT");
    let password = get("DB_PASSWORD").map(Secret::new);
    if password.is_some() && account.is_none() {
        return Err(ConfigError::Missing("DB_ACCOUNT", "DB_PASSWORD is set without a user name"));
    }
    let timeout = number(get, "DB_TIMEOUT_SECONDS", 5, 1, 60)?;
    Ok(DbSettings { uri: Secret::new(uri), account, password, database, timeout: Duration::from_secs(timeout) })
}

/// `EXPIRES_FIELD` (default `expires_at`): a plain field path, no `$` operator.
pub(crate) fn expires_field(get: &impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let field = get("EXPIRES_FIELD").unwrap_or_else(|| "expires_at".into());
    if field.starts_with('$') || field.contains('\0') || field.split('.').any(str::is_empty) {
        return Err(ConfigError::Invalid {
            name: "EXPIRES_FIELD",
            reason: format!("{field:?} is not a usable field path"),
        });
    }
    Ok(field)
}

/// `JWT_ALGORITHM`: HS256 (default), HS384 or HS512, the algorithms a shared `JWT_SECRET_KEY` can sign with.
pub(crate) fn jwt_algorithm(get: &impl Fn(&str) -> Option<String>) -> Result<jsonwebtoken::Algorithm, ConfigError> {
    match get("JWT_ALGORITHM").as_deref().map(str::trim) {
        None | Some("HS256") => Ok(jsonwebtoken::Algorithm::HS256),
        Some("HS384") => Ok(jsonwebtoken::Algorithm::HS384),
        Some("HS512") => Ok(jsonwebtoken::Algorithm::HS512),
        Some(other) => Err(ConfigError::Invalid {
            name: "JWT_ALGORITHM",
            reason: format!("{other:?} is not supported (HS256, HS384 or HS512: JWT_SECRET_KEY is a shared secret)"),
        }),
    }
}

/// A whole number from `min` to `max`, `default` when the variable is not set.
pub(crate) fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(raw) = get(name) else { return Ok(default) };
    match raw.trim().parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(ConfigError::Invalid { name, reason: format!("{raw:?} is not a whole number from {min} to {max}") }),
    }
}

/// A MongoDB database or collection name.
pub(crate) fn checked_name(name: &'static str, value: String) -> Result<String, ConfigError> {
    let bad = value.is_empty() || value.len() > 120 || value.chars().any(|c| "/\\. \"$\0".contains(c));
    if bad {
        return Err(ConfigError::Invalid { name, reason: format!("{value:?} is not a valid MongoDB name") });
    }
    Ok(value)
}

/// A connection string with any password replaced by `****`, safe to log.
pub fn redact_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://") else { return "[unparseable uri]".into() };
    let rest = &uri[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{}{user}:****@{}", &uri[..scheme_end + 3], &rest[at + 1..])
        }
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    const BASE: [(&str, &str); 2] = [("DB_URI", "mongodb://localhost:27017"), ("DB_NAME", "app")];

    #[test]
    fn defaults() {
        let s = settings(&BASE).unwrap();
        assert_eq!(s.sweep.collection, "jwt_blacklist");
        assert_eq!(s.sweep.expires_field, "expires_at");
        assert_eq!(s.sweep.grace, Duration::from_secs(60));
        assert_eq!(s.sweep.batch_size, 5000);
        assert_eq!(s.sweep.time_budget, Duration::from_secs(50));
        assert_eq!(s.port, 9000);
    }

    #[test]
    fn backends() {
        let s = settings(&BASE).unwrap();
        assert!(s.api.is_none() && s.db.is_some());
        let s = settings(&[("MONGODB_API_URL", "https://db-op.example/v1/"), ("DB_NAME", "app")]).unwrap();
        let api = s.api.unwrap();
        assert_eq!(api.url, "https://db-op.example/v1");
        assert_eq!(api.data_source, "mongodb");
        assert_eq!(api.database, "app");
        assert_eq!(api.timeout, Duration::from_secs(10));
        assert!(s.db.is_none());
    }

    #[test]
    fn port_precedence() {
        let s = settings(&[BASE[0], BASE[1], ("PORT", "8080"), ("FC_CUSTOM_LISTEN_PORT", "9100")]).unwrap();
        assert_eq!(s.port, 9100);
        let s = settings(&[BASE[0], BASE[1], ("PORT", "8080")]).unwrap();
        assert_eq!(s.port, 8080);
    }

    #[test]
    fn errors_name_the_variable() {
        let e = settings(&[("DB_NAME", "app")]).unwrap_err();
        assert!(e.to_string().starts_with("DB_URI is not set"), "{e}");
        assert!(e.to_string().contains("MONGODB_API_URL"), "{e}");
        let e = settings(&[("MONGODB_API_URL", "ftp://x"), ("DB_NAME", "app")]).unwrap_err();
        assert!(e.to_string().starts_with("MONGODB_API_URL is invalid"), "{e}");
        let e = settings(&[BASE[0], BASE[1], ("JWT_ALGORITHM", "RS256")]).unwrap_err();
        assert!(e.to_string().starts_with("JWT_ALGORITHM is invalid"), "{e}");
        let e = settings(&[BASE[0], BASE[1], ("BACKFILL_EXPIRES_AT", "maybe")]).unwrap_err();
        assert!(e.to_string().starts_with("BACKFILL_EXPIRES_AT is invalid"), "{e}");
        let e = settings(&[("DB_URI", "postgres://x"), ("DB_NAME", "app")]).unwrap_err();
        assert!(e.to_string().starts_with("DB_URI is invalid"), "{e}");
        let e = settings(&[BASE[0], BASE[1], ("CLEANUP_BATCH_SIZE", "0")]).unwrap_err();
        assert!(e.to_string().starts_with("CLEANUP_BATCH_SIZE is invalid"), "{e}");
        let e = settings(&[BASE[0], BASE[1], ("CLEANUP_TIME_BUDGET_SECONDS", "ten")]).unwrap_err();
        assert!(e.to_string().starts_with("CLEANUP_TIME_BUDGET_SECONDS is invalid"), "{e}");
        let e = settings(&[BASE[0], BASE[1], ("BLACKLIST_COLLECTION", "a$b")]).unwrap_err();
        assert!(e.to_string().starts_with("BLACKLIST_COLLECTION is invalid"), "{e}");
        let e = settings(&[BASE[0], BASE[1], ("EXPIRES_FIELD", "$where")]).unwrap_err();
        assert!(e.to_string().starts_with("EXPIRES_FIELD is invalid"), "{e}");
        let e = settings(&[BASE[0], BASE[1], ("DB_PASSWORD", "pw")]).unwrap_err();
        assert!(e.to_string().starts_with("DB_ACCOUNT is not set"), "{e}");
    }

    #[test]
    fn debug_redacts_every_secret() {
        let s = settings(&[
            ("DB_URI", "mongodb://admin:uri-pass-123@db.example:27017/app?authSource=admin"),
            ("DB_NAME", "app"),
            ("DB_ACCOUNT", "svc"),
            ("DB_PASSWORD", "db-pass-456"),
            ("JWT_SECRET_KEY", "jwt-key-789"),
            ("MONGODB_API_URL", "https://user:url-pass-000@api.example"),
            ("MONGODB_API_KEY", "api-key-abc"),
        ])
        .unwrap();
        let printed = format!("{s:?} {s:#?}");
        for secret in ["uri-pass-123", "db-pass-456", "jwt-key-789", "api-key-abc", "url-pass-000"] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
        assert!(printed.contains("admin:****@db.example:27017/app?authSource=admin"), "{printed}");
    }

    #[test]
    fn redact_uri_cases() {
        assert_eq!(redact_uri("mongodb://h:1/db"), "mongodb://h:1/db");
        assert_eq!(redact_uri("mongodb+srv://u:p@c.x/db?w=1"), "mongodb+srv://u:****@c.x/db?w=1");
        assert_eq!(redact_uri("mongodb://u:p@ss@h/db"), "mongodb://u:****@h/db");
        assert_eq!(redact_uri("nonsense"), "[unparseable uri]");
    }
}
