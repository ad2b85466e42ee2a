//! Configuration basics both products read the same way: errors that name the variable, `.env` loading, numbers,
//! names, the direct MongoDB connection (`DB_*`) and the JWT algorithm.

use std::fmt;
use std::time::Duration;

pub use crate::config_error::ConfigError;
use crate::names::{FieldPath, MongoName};
use crate::Secret;

/// How both binaries end on a configuration error: one line on stderr (which is where the logs go too, so a
/// log line as well would say it twice), and exit code 2.
pub fn exit_on_config_error(program: &str, error: &ConfigError) -> std::process::ExitCode {
    eprintln!("{program}: configuration error: {error}");
    std::process::ExitCode::from(2)
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
    pub database: MongoName,
    /// Server selection and connect timeout (`DB_TIMEOUT_SECONDS`, default 5), so an unreachable database
    /// answers well inside the time budget.
    pub timeout: Duration,
}

impl DbSettings {
    /// Every secret these settings carry, in every form a message may quote it: `DB_PASSWORD`, the credentials of
    /// `DB_URI` (see [`crate::redact::uri_credentials`]) and a `DB_ACCOUNT` long enough to scrub.
    pub fn secret_values(&self) -> Vec<String> {
        let mut secrets = crate::redact::uri_credentials(self.uri.expose());
        secrets.extend(self.password.iter().map(|p| p.expose().to_string()));
        secrets.extend(self.account.iter().filter(|a| a.len() >= crate::redact::MIN_SCRUBBED_NAME).cloned());
        secrets
    }
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

/// Loads `.env.local` and `.env` into the process environment, then looks variables up there.
///
/// dotenvy never overrides a variable that is already set, so loading `.env.local` first gives the usual
/// precedence: real environment, then `.env.local`, then `.env`. A missing file is normal; a malformed one is
/// reported by the variables it fails to set.
pub fn env_lookup() -> impl Fn(&str) -> Option<String> {
    let _ = dotenvy::from_filename(".env.local");
    let _ = dotenvy::from_filename(".env");
    |name| std::env::var(name).ok()
}

/// `DB_URI`, checked to be a MongoDB connection string, when set.
pub fn db_uri(get: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
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
pub fn db_name(get: &impl Fn(&str) -> Option<String>) -> Result<MongoName, ConfigError> {
    match get("DB_NAME") {
        Some(name) => MongoName::parse("DB_NAME", name),
        None => Err(ConfigError::Missing("DB_NAME", "set it to the database that holds the blacklist")),
    }
}

/// The direct connection: `uri` (from [`db_uri`]) with `DB_ACCOUNT`, `DB_PASSWORD` and `DB_TIMEOUT_SECONDS`.
pub fn db_settings(
    get: &impl Fn(&str) -> Option<String>,
    uri: String,
    database: MongoName,
) -> Result<DbSettings, ConfigError> {
    let account = get("DB_ACCOUNT");
    let password = get("DB_PASSWORD").map(Secret::new);
    if password.is_some() && account.is_none() {
        return Err(ConfigError::Missing("DB_ACCOUNT", "DB_PASSWORD is set without a user name"));
    }
    let timeout = number(get, "DB_TIMEOUT_SECONDS", 5, 1, 60)?;
    Ok(DbSettings { uri: Secret::new(uri), account, password, database, timeout: Duration::from_secs(timeout) })
}

/// `EXPIRES_FIELD` (default `expires_at`).
pub fn expires_field(get: &impl Fn(&str) -> Option<String>) -> Result<FieldPath, ConfigError> {
    FieldPath::parse("EXPIRES_FIELD", get("EXPIRES_FIELD").unwrap_or_else(|| "expires_at".into()))
}

/// `BLACKLIST_COLLECTION` (default `jwt_blacklist`): the collection both products share.
pub fn blacklist_collection(get: &impl Fn(&str) -> Option<String>) -> Result<MongoName, ConfigError> {
    MongoName::parse("BLACKLIST_COLLECTION", get("BLACKLIST_COLLECTION").unwrap_or_else(|| "jwt_blacklist".into()))
}

/// `JWT_ALGORITHM`: HS256 (default), HS384 or HS512, the algorithms a shared `JWT_SECRET_KEY` can sign with.
pub fn jwt_algorithm(get: &impl Fn(&str) -> Option<String>) -> Result<jsonwebtoken::Algorithm, ConfigError> {
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

/// `true`/`false` (also `1`/`0`, `yes`/`no`, any case), `default` when the variable is not set or empty.
pub fn flag(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => Ok(default),
        Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(other) => Err(ConfigError::Invalid { name, reason: format!("{other:?} is not true or false") }),
    }
}

/// A whole number from `min` to `max`, `default` when the variable is not set.
pub fn number(
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

    #[test]
    fn redact_uri_cases() {
        assert_eq!(redact_uri("mongodb://h:1/db"), "mongodb://h:1/db");
        assert_eq!(redact_uri("mongodb+srv://u:p@c.x/db?w=1"), "mongodb+srv://u:****@c.x/db?w=1");
        assert_eq!(redact_uri("mongodb://u:p@ss@h/db"), "mongodb://u:****@h/db");
        assert_eq!(redact_uri("nonsense"), "[unparseable uri]");
    }
}
