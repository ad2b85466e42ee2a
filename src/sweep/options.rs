//! What one sweep does: the configured defaults with the overrides an invocation may bring.

use std::time::Duration;

use crate::config::{FieldPath, LegacySettings, SweepSettings};
use crate::targets::Target;

/// Overrides an invocation may carry (`dry_run`, `batch_size`, `time_budget_seconds`). They can never choose
/// the database, the collection or the field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOverrides {
    /// Count what would go, delete nothing.
    pub dry_run: Option<bool>,
    /// Entries per batch, 1 to [`MAX_BATCH_SIZE`](crate::config::MAX_BATCH_SIZE).
    pub batch_size: Option<u32>,
    /// Seconds after which no batch starts, 1 to [`MAX_TIME_BUDGET_SECONDS`](crate::config::MAX_TIME_BUDGET_SECONDS).
    pub time_budget_seconds: Option<u64>,
}

/// The resolved options of one sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepOptions {
    /// Count only.
    pub dry_run: bool,
    /// Entries per batch.
    pub batch_size: u32,
    /// No batch starts after this much time.
    pub time_budget: Duration,
    /// An entry goes once its expiry is this far in the past.
    pub grace: Duration,
    /// The expiry field, for messages.
    pub expires_field: FieldPath,
    /// Legacy entries examined per run at most (0: none).
    pub legacy_scan_limit: u64,
    /// Write the expiry of verified, unexpired legacy entries.
    pub legacy_backfill: bool,
    /// After each batch, sleep this many times its duration (within the budget).
    pub pause_ratio: f64,
    /// Size windows so that no measure or delete is expected to take longer.
    pub max_operation: Option<Duration>,
    /// Make the one statistics call at the end.
    pub collection_stats: bool,
    /// Measure each batch's exact bytes before deleting it (else: estimate them).
    pub exact_bytes: bool,
    /// Between batches, wait while the worst secondary lags more than this (`sweep::replication`).
    pub max_replication_lag: Option<Duration>,
}

impl SweepOptions {
    /// The options of `target`'s sweep in a run with these: its own grace and expiry field.
    pub fn for_target(&self, target: &Target) -> SweepOptions {
        SweepOptions { grace: target.grace, expires_field: target.expires_field.clone(), ..self.clone() }
    }

    /// The cutoff of a run started at `started_at`, in milliseconds since the epoch: an entry is expired when its
    /// expiry lies before it.
    pub fn cutoff_ms(&self, started_at: chrono::DateTime<chrono::Utc>) -> i64 {
        let grace_ms = i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        started_at.timestamp_millis().saturating_sub(grace_ms)
    }

    /// The configured defaults with `overrides` applied.
    pub fn resolve(settings: &SweepSettings, legacy: &LegacySettings, overrides: SweepOverrides) -> Self {
        Self {
            dry_run: overrides.dry_run.unwrap_or(false),
            batch_size: overrides.batch_size.unwrap_or(settings.batch_size),
            time_budget: overrides.time_budget_seconds.map(Duration::from_secs).unwrap_or(settings.time_budget),
            grace: settings.grace,
            expires_field: settings.expires_field.clone(),
            legacy_scan_limit: legacy.scan_limit,
            legacy_backfill: legacy.backfill,
            pause_ratio: settings.pause_ratio,
            max_operation: settings.max_operation,
            collection_stats: settings.collection_stats,
            exact_bytes: settings.exact_bytes,
            max_replication_lag: settings.max_replication_lag,
        }
    }
}
