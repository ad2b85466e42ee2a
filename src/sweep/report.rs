//! The report of a sweep and the JSON envelopes it is answered in (the seed service's shape), built in one place
//! from the run's [`Tally`]: a new report field is a field here, a counter in the tally, and one line in
//! [`SweepReport::new`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::store::{CollectionStats, StoreError};

/// Running totals of one sweep, kept so that a failure can still report what was really done.
#[derive(Debug)]
pub(crate) struct Tally {
    pub cleaned: u64,
    pub bytes: u64,
    pub exact: bool,
    pub batches: u64,
    pub would_clean: u64,
    pub would_free: u64,
    pub legacy_cleaned: u64,
    pub skipped_unverifiable: u64,
    pub backfilled: u64,
    pub complete: bool,
    pub expired_remaining: u64,
    pub warnings: Vec<String>,
    pub paused: Duration,
    /// Batches whose bytes were estimated (count times the average entry size), not measured.
    pub estimated_batches: u64,
}

impl Tally {
    /// Nothing done yet: exact, and complete until something says otherwise.
    pub fn new() -> Self {
        Self {
            cleaned: 0,
            bytes: 0,
            exact: true,
            batches: 0,
            would_clean: 0,
            would_free: 0,
            legacy_cleaned: 0,
            skipped_unverifiable: 0,
            backfilled: 0,
            complete: true,
            expired_remaining: 0,
            warnings: Vec::new(),
            paused: Duration::ZERO,
            estimated_batches: 0,
        }
    }

    /// The average BSON size of the entries measured so far, once there are any.
    pub fn average_bytes(&self) -> Option<u64> {
        let count = self.cleaned.saturating_add(self.would_clean);
        let bytes = self.bytes.saturating_add(self.would_free);
        (count > 0).then(|| bytes / count)
    }

    /// Accounts `deleted` entries deleted without a measure: their bytes are estimated.
    pub fn deleted_estimated(&mut self, deleted: u64) {
        let average = self.average_bytes().unwrap_or(0);
        self.cleaned = self.cleaned.saturating_add(deleted);
        self.bytes = self.bytes.saturating_add(deleted.saturating_mul(average));
        if deleted > 0 {
            self.exact = false;
            self.estimated_batches += 1;
        }
    }

    /// Accounts `count` entries a dry run would delete, counted without a measure.
    pub fn would_delete_estimated(&mut self, count: u64) {
        let average = self.average_bytes().unwrap_or(0);
        self.would_clean = self.would_clean.saturating_add(count);
        self.would_free = self.would_free.saturating_add(count.saturating_mul(average));
        self.exact = false;
        self.estimated_batches += 1;
    }

    /// Accounts a batch a dry run would delete.
    pub fn would_delete(&mut self, count: u64, bytes: u64) {
        self.would_clean = self.would_clean.saturating_add(count);
        self.would_free = self.would_free.saturating_add(bytes);
    }

    /// Accounts a batch measured at `count` entries and `bytes`, of which `deleted` were really deleted.
    pub fn deleted(&mut self, count: u64, bytes: u64, deleted: u64) {
        self.cleaned = self.cleaned.saturating_add(deleted);
        if deleted == count {
            self.bytes = self.bytes.saturating_add(bytes);
        } else {
            // Another writer changed the batch between the two calls: pro-rate its bytes, never above what was
            // measured (the entries added since were never measured).
            self.exact = false;
            let share = u64::try_from(u128::from(bytes) * u128::from(deleted.min(count)) / u128::from(count.max(1)));
            self.bytes = self.bytes.saturating_add(share.unwrap_or(bytes));
        }
    }

    /// Something the operator should know, logged now and reported at the end.
    pub fn warn(&mut self, warning: String) {
        tracing::warn!("{warning}");
        self.warnings.push(warning);
    }
}

/// What is known only once the run is over.
pub(crate) struct RunEnd {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    /// The statistics call's answer; `None` when it is off.
    pub after: Option<CollectionStats>,
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
    /// True when the storage could not be reached at all (FC answer 503 rather than 500).
    pub unreachable: bool,
}

impl SweepReport {
    /// The report of a run that ended with `tally`.
    pub(crate) fn new(tally: &Tally, end: RunEnd) -> Self {
        // Where the server reports no sizes: the remaining entries at the average size of the ones this run
        // measured, when it measured any.
        let estimated_memory_usage = end.after.and_then(|after| {
            after.size_bytes.or_else(|| tally.average_bytes().map(|a| a.saturating_mul(after.count)))
        });
        Self {
            success: true,
            cleaned_count: tally.cleaned,
            remaining_tokens: end.after.map(|after| after.count),
            estimated_memory_usage,
            memory_saved_bytes: tally.bytes,
            memory_saved_mb: megabytes(tally.bytes),
            memory_saved_exact: tally.exact,
            timestamp: rfc3339(end.started_at),
            execution_time: execution_time(end.started_at),
            total_tokens_before: end.after.map(|after| after.count.saturating_add(tally.cleaned)),
            expired_remaining: tally.expired_remaining,
            complete: tally.complete,
            batches: tally.batches,
            dry_run: end.dry_run,
            would_clean_count: tally.would_clean,
            would_free_bytes: tally.would_free,
            legacy_cleaned: tally.legacy_cleaned,
            skipped_unverifiable: tally.skipped_unverifiable,
            backfilled: tally.backfilled,
            warnings: tally.warnings.clone(),
            backend: end.backend,
            fallback_reason: end.fallback_reason,
            duration_ms: u64::try_from(end.duration.as_millis()).unwrap_or(u64::MAX),
            paused_ms: u64::try_from(tally.paused.as_millis()).unwrap_or(u64::MAX),
            request_id: end.request_id,
        }
    }
}

impl SweepFailure {
    /// A run that stopped on `error` after doing what `tally` says, on `backend`.
    pub(crate) fn new(tally: &Tally, error: StoreError, backend: String) -> Self {
        Self {
            unreachable: matches!(error, StoreError::Unreachable(_)),
            error: error.to_string(),
            cleaned_count: tally.cleaned,
            memory_saved_bytes: tally.bytes,
            batches: tally.batches,
            backend,
        }
    }
}

/// `1 expired token`, `2 expired tokens`.
fn tokens(count: u64) -> String {
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

    /// `{"status":"success","message":...,"data":{...}}`.
    pub fn to_json(&self) -> Value {
        json!({ "status": "success", "message": self.message(), "data": self })
    }
}

/// The error envelope: `{"status":"error","message","error","data":{"success":false,...}}`.
pub fn error_json(
    message: &str,
    error: &str,
    cleaned_count: u64,
    at: DateTime<Utc>,
    request_id: &str,
    extra: Value,
) -> Value {
    let mut data = json!({
        "success": false,
        "error": error,
        "cleaned_count": cleaned_count,
        "timestamp": rfc3339(at),
        "execution_time": execution_time(at),
        "request_id": request_id,
    });
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    json!({ "status": "error", "message": message, "error": error, "data": data })
}

impl SweepFailure {
    /// The error envelope for this failure.
    pub fn to_json(&self, started: DateTime<Utc>, request_id: &str) -> Value {
        error_json(
            &format!("Cleanup failed after cleaning {} expired tokens", self.cleaned_count),
            &self.error,
            self.cleaned_count,
            started,
            request_id,
            json!({
                "memory_saved_bytes": self.memory_saved_bytes,
                "batches": self.batches,
                "backend": self.backend,
            }),
        )
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

    #[test]
    fn error_envelope_shape() {
        let at = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap();
        let v = error_json("m", "e", 3, at, "rid", json!({"batches": 1}));
        assert_eq!(v["status"], "error");
        assert_eq!(v["message"], "m");
        assert_eq!(v["error"], "e");
        assert_eq!(v["data"]["success"], false);
        assert_eq!(v["data"]["cleaned_count"], 3);
        assert_eq!(v["data"]["timestamp"], "2024-01-15T10:30:00Z");
        assert_eq!(v["data"]["batches"], 1);
    }
}
