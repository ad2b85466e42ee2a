//! The cleaner's settings, read once from the environment.
//!
//! `.env` and then `.env.local` are loaded first when present (the real environment always wins), then every
//! variable is parsed and checked. A missing or invalid setting is a [`ConfigError`] that names the variable.
//! The basics both products share (secrets, errors, `DB_*`, the JWT algorithm) are in [`jtc_shared::config`].

use std::fmt;
use std::time::Duration;

use jtc_shared::config::{
    blacklist_collection, db_name, db_settings, db_uri, env_lookup, expires_field, flag, jwt_algorithm, number,
    redact_uri,
};
pub use jtc_shared::config::{ConfigError, DbSettings};
pub use jtc_shared::names::{FieldPath, MongoName};
pub use jtc_shared::serve::ConnectionLimits;
use jtc_shared::traces::TraceSettings;
pub use jtc_shared::Secret;

/// The team's DB-operation HTTP API (MongoDB Atlas Data API v1 shape).
#[derive(Clone)]
pub struct ApiSettings {
    /// `MONGODB_API_URL`: base URL; actions are `POST {base}/action/{find|aggregate|deleteMany|...}`.
    pub url: String,
    /// `MONGODB_API_KEY`: sent when set, in both the documented `apiKey` header and `api-key` (which some
    /// self-hosted servers read instead).
    pub key: Option<Secret>,
    /// `MONGODB_API_DATA_SOURCE` (default `mongodb`).
    pub data_source: String,
    /// `DB_NAME`.
    pub database: MongoName,
    /// `MONGODB_API_TIMEOUT_SECONDS` (default 10): connect and whole-request timeout.
    pub timeout: Duration,
    /// `MONGODB_API_MAX_ANSWER_BYTES` (default 8 MiB): a larger answer is refused as a contract failure.
    pub max_answer_bytes: u64,
}

impl fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiSettings")
            .field("url", &redact_uri(&self.url))
            .field("key", &self.key)
            .field("data_source", &self.data_source)
            .field("database", &self.database)
            .field("timeout", &self.timeout)
            .field("max_answer_bytes", &self.max_answer_bytes)
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
    pub collection: MongoName,
    /// `EXPIRES_FIELD` (default `expires_at`).
    pub expires_field: FieldPath,
    /// `CLEANUP_GRACE_SECONDS` (default 60): an entry goes only once its expiry is this far in the past.
    pub grace: Duration,
    /// `CLEANUP_BATCH_SIZE` (default [`DEFAULT_BATCH_SIZE`], [`DEFAULT_ESTIMATE_BATCH_SIZE`] in estimate mode).
    pub batch_size: u32,
    /// `CLEANUP_TIME_BUDGET_SECONDS` (default 50): no batch starts after it.
    pub time_budget: Duration,
    /// `CLEANUP_PAUSE_RATIO` (default 0): after each batch, sleep this many times the batch's own duration.
    pub pause_ratio: f64,
    /// `CLEANUP_MAX_OPERATION_MS` (default none): windows shrink so that no measure or delete is expected to take
    /// longer.
    pub max_operation: Option<Duration>,
    /// `CLEANUP_COLLECTION_STATS` (default true): the one statistics call at the end of a run.
    pub collection_stats: bool,
    /// `CLEANUP_EXACT_BYTES` (default true): measure each batch's exact bytes before deleting it.
    pub exact_bytes: bool,
    /// `CLEANUP_MAX_REPLICATION_LAG_SECONDS` (default none): between batches, wait while the worst secondary lags
    /// more than this (`sweep::replication`).
    pub max_replication_lag: Option<Duration>,
}

/// `CLEANUP_WRITE_CONCERN`: how many members must have each of the direct connection's deletes before it counts as
/// confirmed, and how long the server waits for them (`wtimeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteWriteConcern {
    /// `w`.
    pub w: Acknowledgment,
    /// `wtimeout`: a quarter of the time budget, at most [`MAX_WTIMEOUT`].
    pub wtimeout: Duration,
}

/// The `w` of a write concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledgment {
    /// `"majority"`.
    Majority,
    /// A number of members, 1 to [`MAX_WRITE_MEMBERS`].
    Members(u32),
}

/// The most members a write concern may name (a replica set has at most 50).
pub const MAX_WRITE_MEMBERS: u32 = 50;

/// The longest a delete waits for its write concern; a quarter of the time budget when that is less.
pub const MAX_WTIMEOUT: Duration = Duration::from_secs(5);

/// `CLEANUP_WRITE_CONCERN` for a run with `time_budget`: `None` when unset (the server's default).
fn write_concern(
    get: &impl Fn(&str) -> Option<String>,
    time_budget: Duration,
) -> Result<Option<DeleteWriteConcern>, ConfigError> {
    let Some(raw) = get("CLEANUP_WRITE_CONCERN") else { return Ok(None) };
    let w = match raw.trim() {
        "majority" => Acknowledgment::Majority,
        n => match n.parse::<u32>() {
            Ok(members) if (1..=MAX_WRITE_MEMBERS).contains(&members) => Acknowledgment::Members(members),
            _ => {
                return Err(ConfigError::Invalid {
                    name: "CLEANUP_WRITE_CONCERN",
                    reason: format!(
                        "{raw:?} is not `majority` or a number of members from 1 to {MAX_WRITE_MEMBERS} (0 would not \
                         acknowledge the deletes the report counts; tag sets are not supported)"
                    ),
                })
            }
        },
    };
    Ok(Some(DeleteWriteConcern { w, wtimeout: (time_budget / 4).min(MAX_WTIMEOUT) }))
}

/// Where a run says it started and how it ended, besides its answer (see `alerts`). Both URLs are secrets: they
/// carry the check's token, and never appear in a log line or an answer.
#[derive(Clone, Default)]
pub struct AlertSettings {
    /// `CLEANUP_HEARTBEAT_URL`: healthchecks.io-style pings (`/start`, success, `/fail`).
    pub heartbeat: Option<Secret>,
    /// `CLEANUP_PUSHGATEWAY_URL`: a Prometheus Pushgateway for the batch-job gauges.
    pub pushgateway: Option<Secret>,
}

impl fmt::Debug for AlertSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertSettings")
            .field("heartbeat", &self.heartbeat.as_ref().map(|_| "****"))
            .field("pushgateway", &self.pushgateway.as_ref().map(|_| "****"))
            .finish()
    }
}

/// Where runs are recorded: `CLEANUP_HISTORY_COLLECTION` in the blacklist's database, each record kept for
/// `CLEANUP_HISTORY_DAYS` by a TTL index on its `started_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySettings {
    /// The collection.
    pub collection: MongoName,
    /// How long a record is kept.
    pub keep: Duration,
}

/// The default run-history collection.
pub const DEFAULT_HISTORY_COLLECTION: &str = "jwt_cleaner_runs";

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
    /// The connection limits of the HTTP server (`HTTP_*`; see `jtc_shared::serve`).
    pub connections: ConnectionLimits,
    /// `CLEANUP_PROGRESS_SECONDS` (default 5): a long sweep logs its progress at most this often (0: every batch).
    pub progress_every: Duration,
    /// `CLEANUP_HISTORY_COLLECTION` (default `jwt_cleaner_runs`; empty: off) and `CLEANUP_HISTORY_DAYS` (default 90).
    pub history: Option<HistorySettings>,
    /// The heartbeat and the Pushgateway.
    pub alerts: AlertSettings,
    /// `CLEANUP_TARGETS`, or today's one target (see `crate::targets`).
    pub targets: crate::targets::Targets,
    /// `CLEANUP_WRITE_CONCERN` (default none: the server's): the direct connection's deletes wait for it.
    pub write_concern: Option<DeleteWriteConcern>,
    /// `CLEANUP_LEASE` (default true while the run history is on): one run at a time across every instance
    /// (`crate::lease`). The lease lives in the run history collection, so it needs the history.
    pub lease: bool,
    /// The `OTEL_*` variables: where spans are exported (`jtc_shared::traces`); `None` exports nothing.
    pub traces: Option<TraceSettings>,
}

/// Upper bounds shared by the environment and the invoke body.
pub const MAX_BATCH_SIZE: u32 = 100_000;

/// `CLEANUP_BATCH_SIZE`'s default: entries per measured window.
pub const DEFAULT_BATCH_SIZE: u32 = 5000;

/// `CLEANUP_BATCH_SIZE`'s default in estimate mode (`CLEANUP_EXACT_BYTES=false`). With no measure to bound, a
/// window costs only its delete, which yields to other clients; larger windows save the per-batch work that kept
/// estimate mode further from a bare `deleteMany` with the measured default (BENCHMARKS.md, the impact table).
pub const DEFAULT_ESTIMATE_BATCH_SIZE: u32 = 20_000;
/// The largest time budget, in seconds (FC functions may run longer than the default 60 s).
pub const MAX_TIME_BUDGET_SECONDS: u64 = 900;
/// The default cap on one HTTP API answer: 8 MiB, far above the largest real one (a page of 500 legacy entries).
pub const DEFAULT_MAX_ANSWER_BYTES: u64 = 8 * 1024 * 1024;

impl Settings {
    /// Every secret value these settings carry, for [`jtc_shared::redact::register`]: the database's (see
    /// [`DbSettings::secret_values`]), `MONGODB_API_KEY`, the credentials of `MONGODB_API_URL` and `JWT_SECRET_KEY`.
    pub fn secret_values(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self.db.iter().flat_map(DbSettings::secret_values).collect();
        if let Some(api) = &self.api {
            secrets.extend(jtc_shared::redact::url_credentials(&api.url));
            secrets.extend(api.key.iter().map(|k| k.expose().to_string()));
        }
        secrets.extend(self.legacy.secret_key.iter().map(|k| k.expose().to_string()));
        secrets.extend(self.traces.iter().flat_map(TraceSettings::secret_values));
        for url in [&self.alerts.heartbeat, &self.alerts.pushgateway].into_iter().flatten() {
            secrets.extend(url_secrets(url.expose()));
        }
        secrets
    }
}

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
        let api_url = api_url(&get)?;
        if uri.is_none() && api_url.is_none() {
            return Err(ConfigError::Missing(
                "DB_URI",
                "set DB_URI (a mongodb:// or mongodb+srv:// connection string), MONGODB_API_URL, or both",
            ));
        }
        let database = db_name(&get)?;
        let sweep = SweepSettings::from_lookup(&get, blacklist_collection(&get)?, expires_field(&get)?)?;
        let write_concern = write_concern(&get, sweep.time_budget)?;
        let api = match api_url {
            Some(url) => Some(ApiSettings::from_lookup(&get, url, database.clone())?),
            None => None,
        };
        let legacy = LegacySettings::from_lookup(&get)?;
        // A shutdown lets the invocation in flight finish: it may take the whole time budget.
        let connections = ConnectionLimits::from_lookup(&get, sweep.time_budget + Duration::from_secs(15))?;
        let port = listen_port(&get)?;
        let history = history_settings(&lookup, &get)?;
        let alerts = AlertSettings {
            heartbeat: alert_url(&get, "CLEANUP_HEARTBEAT_URL")?,
            pushgateway: alert_url(&get, "CLEANUP_PUSHGATEWAY_URL")?,
        };
        let defaults = crate::targets::Defaults {
            database: &database,
            collection: &sweep.collection,
            expires_field: &sweep.expires_field,
            grace: sweep.grace,
            legacy: true,
        };
        let targets = crate::targets::parse(get(crate::targets::VARIABLE).as_deref(), &defaults)?;
        let lease = lease_setting(&get, history.is_some())?;
        let settings = Settings {
            traces: TraceSettings::from_lookup(get, "jwt-token-cleaner")?,
            history,
            lease,
            alerts,
            targets,
            api,
            db: match uri {
                Some(uri) => Some(db_settings(&get, uri, database)?),
                None => None,
            },
            sweep,
            write_concern,
            legacy,
            port,
            connections,
            progress_every: Duration::from_secs(number(&get, "CLEANUP_PROGRESS_SECONDS", 5, 0, 3600)?),
        };
        settings.refuse_what_would_do_nothing()?;
        Ok(settings)
    }

    /// Settings that parse one by one but together would silently do nothing are refused at start.
    fn refuse_what_would_do_nothing(&self) -> Result<(), ConfigError> {
        // A write concern is the direct connection's: the Data API has none to pass on.
        if self.write_concern.is_some() && self.db.is_none() {
            return Err(ConfigError::Invalid {
                name: "CLEANUP_WRITE_CONCERN",
                reason: "applies to the direct connection's deletes, and DB_URI is not set (the Data API takes no \
                         write concern)"
                    .into(),
            });
        }
        // Legacy entries are verified with the key: without it, `"legacy": true` would examine nothing.
        let legacy = self.targets.list.iter().find(|t| t.legacy && self.targets.configured);
        if let (Some(target), None) = (legacy, &self.legacy.secret_key) {
            return Err(ConfigError::Invalid {
                name: crate::targets::VARIABLE,
                reason: format!("target {} asks for legacy entries, and JWT_SECRET_KEY is not set", target.name),
            });
        }
        Ok(())
    }
}

/// An http(s) URL setting whose value is a secret; the error never quotes it.
fn alert_url(get: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<Secret>, ConfigError> {
    let Some(raw) = get(name) else { return Ok(None) };
    let url = raw.trim().trim_end_matches('/').to_string();
    let parsed = reqwest::Url::parse(&url).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    match parsed {
        Some(_) => Ok(Some(Secret::new(url))),
        None => Err(ConfigError::Invalid { name, reason: "must be an http:// or https:// URL".into() }),
    }
}

/// What of a secret URL must never show: the whole of it, its path (a check's token), its credentials.
fn url_secrets(url: &str) -> Vec<String> {
    let mut secrets = vec![url.to_string()];
    if let Ok(parsed) = reqwest::Url::parse(url) {
        let path = parsed.path().trim_matches('/');
        if path.len() >= 8 {
            secrets.push(path.to_string());
        }
    }
    secrets.extend(jtc_shared::redact::url_credentials(url));
    secrets
}

/// The listening port: `FC_CUSTOM_LISTEN_PORT` (set by FC), else `PORT`, else 9000. `healthcheck` reads it the
/// same way.
pub fn listen_port(get: &impl Fn(&str) -> Option<String>) -> Result<u16, ConfigError> {
    let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let port = match get("FC_CUSTOM_LISTEN_PORT") {
        Some(_) => number(&get, "FC_CUSTOM_LISTEN_PORT", 9000, 0, 65535)?,
        None => number(&get, "PORT", 9000, 0, 65535)?,
    };
    Ok(port as u16)
}

/// A setting's non-empty value, looked up by name.
type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `MONGODB_API_URL`, without a trailing slash; an http:// or https:// URL.
fn api_url(get: Get<'_>) -> Result<Option<String>, ConfigError> {
    let Some(url) = get("MONGODB_API_URL").map(|u| u.trim().trim_end_matches('/').to_string()) else {
        return Ok(None);
    };
    let valid = url.starts_with("https://") || url.starts_with("http://");
    if !valid || reqwest::Url::parse(&url).is_err() {
        return Err(ConfigError::Invalid {
            name: "MONGODB_API_URL",
            reason: "must be an http:// or https:// URL".into(),
        });
    }
    Ok(Some(url))
}

impl ApiSettings {
    /// The API at `url`, for `database`: its key, data source, timeout and answer cap.
    fn from_lookup(get: Get<'_>, url: String, database: MongoName) -> Result<Self, ConfigError> {
        Ok(Self {
            url,
            key: get("MONGODB_API_KEY").map(Secret::new),
            data_source: get("MONGODB_API_DATA_SOURCE").unwrap_or_else(|| "mongodb".into()),
            database,
            timeout: Duration::from_secs(number(&get, "MONGODB_API_TIMEOUT_SECONDS", 10, 1, 120)?),
            max_answer_bytes: number(
                &get,
                "MONGODB_API_MAX_ANSWER_BYTES",
                DEFAULT_MAX_ANSWER_BYTES,
                65_536,
                256 * 1024 * 1024,
            )?,
        })
    }
}

impl SweepSettings {
    /// How `collection` is swept, by its `expires_field`: the `CLEANUP_*` settings of a sweep.
    fn from_lookup(get: Get<'_>, collection: MongoName, expires_field: FieldPath) -> Result<Self, ConfigError> {
        let grace = number(&get, "CLEANUP_GRACE_SECONDS", 60, 0, 365 * 24 * 3600)?;
        let exact_bytes = flag(&get, "CLEANUP_EXACT_BYTES", true)?;
        let default_batch = if exact_bytes { DEFAULT_BATCH_SIZE } else { DEFAULT_ESTIMATE_BATCH_SIZE };
        let batch_size = number(&get, "CLEANUP_BATCH_SIZE", u64::from(default_batch), 1, MAX_BATCH_SIZE as u64)? as u32;
        let time_budget = number(&get, "CLEANUP_TIME_BUDGET_SECONDS", 50, 1, MAX_TIME_BUDGET_SECONDS)?;
        let pause_ratio = match get("CLEANUP_PAUSE_RATIO") {
            None => 0.0,
            Some(raw) => match raw.trim().parse::<f64>() {
                Ok(ratio) if (0.0..=100.0).contains(&ratio) => ratio,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "CLEANUP_PAUSE_RATIO",
                        reason: format!("{raw:?} is not a number from 0 to 100"),
                    })
                }
            },
        };
        let max_operation = match get("CLEANUP_MAX_OPERATION_MS") {
            None => None,
            Some(_) => Some(Duration::from_millis(number(&get, "CLEANUP_MAX_OPERATION_MS", 0, 1, 600_000)?)),
        };
        let max_replication_lag = match get("CLEANUP_MAX_REPLICATION_LAG_SECONDS") {
            None => None,
            Some(_) => Some(Duration::from_secs(number(&get, "CLEANUP_MAX_REPLICATION_LAG_SECONDS", 0, 1, 3600)?)),
        };
        Ok(Self {
            collection,
            expires_field,
            grace: Duration::from_secs(grace),
            batch_size,
            time_budget: Duration::from_secs(time_budget),
            pause_ratio,
            max_operation,
            collection_stats: flag(&get, "CLEANUP_COLLECTION_STATS", true)?,
            exact_bytes,
            max_replication_lag,
        })
    }
}

impl LegacySettings {
    /// Legacy entries: `JWT_SECRET_KEY`, `JWT_ALGORITHM`, `BACKFILL_EXPIRES_AT`, `LEGACY_SCAN_LIMIT`.
    fn from_lookup(get: Get<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            secret_key: get("JWT_SECRET_KEY").map(Secret::new),
            algorithm: jwt_algorithm(&get)?,
            backfill: flag(&get, "BACKFILL_EXPIRES_AT", false)?,
            scan_limit: number(&get, "LEGACY_SCAN_LIMIT", 10_000, 0, 1_000_000)?,
        })
    }
}

/// `CLEANUP_HISTORY_COLLECTION` (read through `lookup`: set and empty turns the history off) and
/// `CLEANUP_HISTORY_DAYS`.
fn history_settings(
    lookup: &impl Fn(&str) -> Option<String>,
    get: Get<'_>,
) -> Result<Option<HistorySettings>, ConfigError> {
    match lookup("CLEANUP_HISTORY_COLLECTION") {
        Some(name) if name.trim().is_empty() => Ok(None),
        name => Ok(Some(HistorySettings {
            collection: MongoName::parse(
                "CLEANUP_HISTORY_COLLECTION",
                name.map_or_else(|| DEFAULT_HISTORY_COLLECTION.to_string(), |n| n.trim().to_string()),
            )?,
            keep: Duration::from_secs(number(&get, "CLEANUP_HISTORY_DAYS", 90, 1, 3650)? * 86_400),
        })),
    }
}

/// `CLEANUP_LEASE`: on by default while the history is; asked for without the history, refused.
fn lease_setting(get: Get<'_>, history: bool) -> Result<bool, ConfigError> {
    match (flag(&get, "CLEANUP_LEASE", true)?, history, get("CLEANUP_LEASE")) {
        (true, false, Some(_)) => Err(ConfigError::Invalid {
            name: "CLEANUP_LEASE",
            reason: "the lease lives in the run history collection, and CLEANUP_HISTORY_COLLECTION is empty (turn \
                     the history on, or set CLEANUP_LEASE=false)"
                .into(),
        }),
        (lease, history, _) => Ok(lease && history),
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
        let e = settings(&[BASE[0], BASE[1], ("CLEANUP_PAUSE_RATIO", "-1")]).unwrap_err();
        assert!(e.to_string().starts_with("CLEANUP_PAUSE_RATIO is invalid"), "{e}");
        let e = settings(&[BASE[0], BASE[1], ("CLEANUP_MAX_OPERATION_MS", "0")]).unwrap_err();
        assert!(e.to_string().starts_with("CLEANUP_MAX_OPERATION_MS is invalid"), "{e}");
        let e = settings(&[BASE[0], BASE[1], ("CLEANUP_EXACT_BYTES", "maybe")]).unwrap_err();
        assert!(e.to_string().starts_with("CLEANUP_EXACT_BYTES is invalid"), "{e}");
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
    fn history_and_alert_settings() {
        let s = settings(&BASE).unwrap();
        let history = s.history.expect("on by default");
        assert_eq!((&*history.collection, history.keep), ("jwt_cleaner_runs", Duration::from_secs(90 * 86_400)));
        assert!(s.alerts.heartbeat.is_none() && s.alerts.pushgateway.is_none());
        assert!(s.lease, "the lease is on with the history");
        let s = settings(&[BASE[0], BASE[1], ("CLEANUP_HISTORY_COLLECTION", " ")]).unwrap();
        assert!(s.history.is_none(), "empty turns it off");
        assert!(!s.lease, "without the history there is nowhere to keep the lease");
        assert!(!settings(&[BASE[0], BASE[1], ("CLEANUP_LEASE", "false")]).unwrap().lease);
        let refused = settings(&[BASE[0], BASE[1], ("CLEANUP_HISTORY_COLLECTION", ""), ("CLEANUP_LEASE", "true")]);
        assert!(refused
            .unwrap_err()
            .to_string()
            .starts_with("CLEANUP_LEASE is invalid: the lease lives in the run history"));
        let s = settings(&[BASE[0], BASE[1], ("CLEANUP_WRITE_CONCERN", "majority")]).unwrap();
        let wc = s.write_concern.expect("set");
        assert_eq!((wc.w, wc.wtimeout), (Acknowledgment::Majority, MAX_WTIMEOUT));
        let s = settings(&[BASE[0], BASE[1], ("CLEANUP_WRITE_CONCERN", "2"), ("CLEANUP_TIME_BUDGET_SECONDS", "8")]);
        let wc = s.unwrap().write_concern.expect("set");
        assert_eq!(
            (wc.w, wc.wtimeout),
            (Acknowledgment::Members(2), Duration::from_secs(2)),
            "a quarter of the budget"
        );
        for bad in ["0", "51", "-1", "all", "majority,tag"] {
            let refused = settings(&[BASE[0], BASE[1], ("CLEANUP_WRITE_CONCERN", bad)]).unwrap_err().to_string();
            assert!(refused.starts_with("CLEANUP_WRITE_CONCERN is invalid"), "{bad}: {refused}");
        }
        // Combinations that would silently do nothing.
        let api_only = [("MONGODB_API_URL", "https://api.example/app/data-x/endpoint/data/v1"), BASE[1]];
        let refused = settings(&[api_only[0], api_only[1], ("CLEANUP_WRITE_CONCERN", "majority")]).unwrap_err();
        assert!(refused.to_string().contains("DB_URI is not set"), "{refused}");
        let legacy = [BASE[0], BASE[1], ("CLEANUP_TARGETS", r#"[{"name": "a", "collection": "c", "legacy": true}]"#)];
        let refused = settings(&legacy).unwrap_err().to_string();
        assert!(refused.starts_with("CLEANUP_TARGETS is invalid: target a asks for legacy"), "{refused}");
        assert!(settings(&[legacy[0], legacy[1], legacy[2], ("JWT_SECRET_KEY", "k")]).is_ok());
        let s = settings(&[BASE[0], BASE[1], ("CLEANUP_MAX_REPLICATION_LAG_SECONDS", "10")]).unwrap();
        assert_eq!(s.sweep.max_replication_lag, Some(Duration::from_secs(10)));
        assert_eq!(settings(&BASE).unwrap().sweep.max_replication_lag, None);
        for bad in ["0", "3601", "1.5", "soon"] {
            let refused = settings(&[BASE[0], BASE[1], ("CLEANUP_MAX_REPLICATION_LAG_SECONDS", bad)]);
            assert!(refused.unwrap_err().to_string().contains("CLEANUP_MAX_REPLICATION_LAG_SECONDS"), "{bad}");
        }
        assert!(settings(&[BASE[0], BASE[1], ("CLEANUP_LEASE", "sometimes")])
            .unwrap_err()
            .to_string()
            .contains("CLEANUP_LEASE"));
        let url = "https://hc-ping.example/0f6a5e2c-secret-uuid/";
        let s = settings(&[BASE[0], BASE[1], ("CLEANUP_HEARTBEAT_URL", url)]).unwrap();
        assert_eq!(
            s.alerts.heartbeat.as_ref().map(|u| u.expose()),
            Some("https://hc-ping.example/0f6a5e2c-secret-uuid")
        );
        let secrets = s.secret_values();
        assert!(secrets.iter().any(|v| v == "0f6a5e2c-secret-uuid"), "the check's token is a secret: {secrets:?}");
        assert!(!format!("{s:?}").contains("secret-uuid"));
        for (name, value) in [
            ("CLEANUP_HEARTBEAT_URL", "ftp://x.example"),
            ("CLEANUP_PUSHGATEWAY_URL", "gateway:9091"),
            ("CLEANUP_HISTORY_COLLECTION", "a.b"),
            ("CLEANUP_HISTORY_DAYS", "0"),
        ] {
            let e = settings(&[BASE[0], BASE[1], (name, value)]).unwrap_err();
            assert!(e.to_string().starts_with(&format!("{name} is invalid")), "{e}");
            assert!(!e.to_string().contains("x.example"), "the URL is not quoted: {e}");
        }
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
}
