//! The report of a sweep (the `data` of the seed service's answer) and of a failed one, and how their numbers are
//! formatted. Both are built from the run's tally (`sweep::tally`); the envelopes they are answered in belong to
//! the server (`server::envelope`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::backlog::Backlog;
use crate::store::{CollectionStats, ErrorKind};

/// What is known only once the run is over.
pub(crate) struct RunEnd {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    /// The statistics call's answer; `None` when it is off.
    pub after: Option<CollectionStats>,
    /// The backlog after the run; `None` when it could not be measured.
    pub backlog: Option<Backlog>,
    pub dry_run: bool,
    pub backend: String,
    pub fallback_reason: Option<String>,
    pub request_id: String,
}

/// What a finished sweep did and what it left.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SweepReport {
    /// Always true in a report; failures are a [`SweepFailure`].
    pub success: bool,
    /// Entries this run really deleted (the servers' `deletedCount`s, summed).
    pub cleaned_count: u64,
    /// Entries in the collection after the run; null when the statistics call is off
    /// (`CLEANUP_COLLECTION_STATS=false`).
    pub remaining_tokens: Option<u64>,
    /// BSON bytes of the entries that remain (collection statistics); null when unknown: the statistics call is
    /// off, or the server reports no sizes and this run measured nothing to average.
    pub estimated_memory_usage: Option<u64>,
    /// Exact BSON size of the entries deleted (a `$bsonSize` sum over each batch's range).
    pub memory_saved_bytes: u64,
    /// `memory_saved_bytes` in MiB, two decimals.
    pub memory_saved_mb: f64,
    /// False when a concurrent writer changed a batch between measuring and deleting it (the bytes of that batch
    /// are then pro-rated by the count really deleted), or in estimate mode (`CLEANUP_EXACT_BYTES=false`: bytes are
    /// the count times the average entry size).
    pub memory_saved_exact: bool,
    /// Start of the run, RFC 3339 UTC.
    pub timestamp: String,
    /// Start of the run, `YYYY-MM-DD HH:MM:SS` UTC.
    pub execution_time: String,
    /// Entries in the collection before the run (`remaining_tokens + cleaned_count`); null without statistics.
    pub total_tokens_before: Option<u64>,
    /// Expired entries still in the collection after the run, counted after the sweep (0 when `complete`).
    pub expired_remaining: u64,
    /// True when every expired entry was swept, as a count of each lane below the cutoff confirmed after the sweep
    /// (or, in a dry run, when every expired entry was counted).
    pub complete: bool,
    /// Batches (windows with entries) processed.
    pub batches: u64,
    /// True when nothing was deleted on purpose.
    pub dry_run: bool,
    /// In a dry run: entries that would be deleted; otherwise 0.
    pub would_clean_count: u64,
    /// In a dry run: bytes that would be freed; otherwise 0.
    pub would_free_bytes: u64,
    /// Legacy entries (raw token, no expiry) deleted after verifying their token; included in `cleaned_count`.
    pub legacy_cleaned: u64,
    /// Legacy entries kept because their token could not be verified or has no `exp`.
    pub skipped_unverifiable: u64,
    /// Legacy entries whose expiry field was written (`BACKFILL_EXPIRES_AT=true`).
    pub backfilled: u64,
    /// The backlog after the run: expired entries still there (counted to a limit) and the oldest one's age; null
    /// when it could not be measured (a warning says why).
    pub backlog: Option<Backlog>,
    /// Things the operator should fix, e.g. a missing index on the expiry field.
    pub warnings: Vec<String>,
    /// Which storage did the work: `http_api`, `mongodb`, or `http_api+mongodb` after a fallback.
    pub backend: String,
    /// Why the HTTP API was abandoned during this run (one line, no secrets), else null.
    pub fallback_reason: Option<String>,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// Of that, time spent pausing between batches (`CLEANUP_PAUSE_RATIO`).
    pub paused_ms: u64,
    /// The invocation's request id.
    pub request_id: String,
}

/// A sweep that stopped on an error, with what it had really done before.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepFailure {
    /// What went wrong, without secrets.
    pub error: String,
    /// Entries really deleted before the failure.
    pub cleaned_count: u64,
    /// Bytes of those entries.
    pub memory_saved_bytes: u64,
    /// Batches completed before the failure.
    pub batches: u64,
    /// The storage that failed.
    pub backend: String,
    /// What kind of failure (the server answers 503 for an unreachable store, 500 otherwise).
    pub kind: ErrorKind,
}

/// `1 expired token`, `2 expired tokens`.
pub(crate) fn tokens(count: u64) -> String {
    format!("{count} expired token{}", if count == 1 { "" } else { "s" })
}

/// `2024-01-15T10:30:00Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2024-01-15 10:30:00`.
pub fn execution_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Bytes as MiB with two decimals.
pub fn megabytes(bytes: u64) -> f64 {
    (bytes as f64 / 1_048_576.0 * 100.0).round() / 100.0
}

impl SweepReport {
    /// The one-line summary.
    pub fn message(&self) -> String {
        let mut message = if self.dry_run {
            format!("Dry run: {} would be cleaned", tokens(self.would_clean_count))
        } else {
            format!("Cleaned {}", tokens(self.cleaned_count))
        };
        if !self.complete {
            message.push_str(&format!(" (incomplete: {} remain for the next run)", tokens(self.expired_remaining)));
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats() {
        let at = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap();
        assert_eq!(rfc3339(at), "2024-01-15T10:30:00Z");
        assert_eq!(execution_time(at), "2024-01-15 10:30:00");
        assert_eq!(megabytes(7500), 0.01);
        assert_eq!(megabytes(3 * 1_048_576 / 2), 1.5);
    }

    #[test]
    fn messages_count_in_the_singular_and_the_plural() {
        assert_eq!(tokens(0), "0 expired tokens");
        assert_eq!(tokens(1), "1 expired token");
        assert_eq!(tokens(2), "2 expired tokens");
    }
}
