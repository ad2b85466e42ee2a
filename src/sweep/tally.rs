//! The running totals of one sweep, kept so that a failure can still report what was really done, and turned
//! into the report (or the failure) in one place: a new report field is a field of [`SweepReport`], a counter
//! here, and one line in [`Tally::into_report`].
//!
//! Every sum saturates: a store that claims `u64::MAX` of anything cannot wrap the report around (the HTTP API
//! refuses such a count, but the tally does not rely on it).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::format::{execution_time, megabytes, rfc3339};
use super::report::{RunEnd, Skipped, SweepFailure, SweepReport, True};
use crate::store::StoreError;

// The reports of runs that did no sweep, written here: a report is a tally's end (the report module does not import
// the tally).
impl SweepReport {
    /// The report of a run that found the lease held by `holder` until `until_ms`: nothing done, nothing proved
    /// (`complete` is false and the counts of what is left are null).
    pub fn skipped(
        holder: String,
        until_ms: i64,
        started_at: DateTime<Utc>,
        request_id: &str,
        backend: String,
    ) -> Self {
        let mut tally = Tally::new();
        tally.incomplete();
        let mut report = tally.into_report(RunEnd {
            started_at,
            duration: (Utc::now() - started_at).to_std().unwrap_or_default(),
            after: None,
            backlog: None,
            dry_run: false,
            backend,
            fallback_reason: None,
            request_id: request_id.to_string(),
        });
        let until = DateTime::from_timestamp_millis(until_ms).unwrap_or(started_at);
        report.skipped = Some(Skipped { skipped: True, held_by: holder, lease_until: rfc3339(until) });
        report.expired_remaining = None;
        report
    }
}

impl SweepFailure {
    /// A run that failed before its sweep began (taking the lease), on `backend`.
    pub fn before_sweep(error: crate::store::StoreError, backend: String) -> Self {
        Tally::new().failure(error, backend)
    }
}

/// What one sweep has done so far.
#[derive(Debug)]
pub(crate) struct Tally {
    cleaned: u64,
    bytes: u64,
    exact: bool,
    batches: u64,
    would_clean: u64,
    would_free: u64,
    legacy_cleaned: u64,
    skipped_unverifiable: u64,
    backfilled: u64,
    complete: bool,
    /// `None` once a closing count could not be made (the run's deadline cut it).
    expired_remaining: Option<u64>,
    warnings: Vec<String>,
    paused: Duration,
    /// The most entries this run can have removed or counted: the collection's size at the start, when the store
    /// cannot vouch for its own counts (see [`Tally::bound_by`]).
    size_bound: Option<u64>,
    /// Deletes whose write concern was not confirmed in time.
    unconfirmed: u64,
    /// Entries measured in a batch's range that its delete did not report deleted.
    shortfall: u64,
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
            expired_remaining: Some(0),
            warnings: Vec::new(),
            paused: Duration::ZERO,
            size_bound: None,
            unconfirmed: 0,
            shortfall: 0,
        }
    }

    /// No figure of this run may exceed `size` entries, the collection's size at the start: a store that cannot
    /// vouch for its counts (the HTTP API) once claimed 11,000,000,000,000,000 entries cleaned, consistently in its
    /// measures and its deletes, where 11 were.
    pub fn bound_by(&mut self, size: u64) {
        self.size_bound = Some(size);
    }

    /// An error when `more` entries on top of those done so far would exceed the bound: checked before they are
    /// counted, so a failure never reports them.
    pub fn check_within(&self, more: u64) -> Result<(), StoreError> {
        match self.size_bound {
            Some(bound) if self.entries_done().saturating_add(more) > bound => Err(StoreError::contract(format!(
                "the store claims {} entries in this run, more than the {bound} the collection held at its start",
                self.entries_done().saturating_add(more)
            ))),
            _ => Ok(()),
        }
    }

    /// The average BSON size of the entries measured so far, once there are any.
    pub fn average_bytes(&self) -> Option<u64> {
        let count = self.cleaned.saturating_add(self.would_clean);
        let bytes = self.bytes.saturating_add(self.would_free);
        (count > 0).then(|| bytes / count)
    }

    /// Entries deleted, or counted in a dry run, so far.
    pub fn entries_done(&self) -> u64 {
        self.cleaned.saturating_add(self.would_clean)
    }

    /// Batches (windows with entries, pages of legacy entries) processed so far.
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// Counts one more batch.
    pub fn batch(&mut self) {
        self.batches = self.batches.saturating_add(1);
    }

    /// Accounts `deleted` entries deleted without a measure: their bytes are estimated.
    pub fn deleted_estimated(&mut self, deleted: u64) {
        let average = self.average_bytes().unwrap_or(0);
        self.cleaned = self.cleaned.saturating_add(deleted);
        self.bytes = self.bytes.saturating_add(deleted.saturating_mul(average));
        if deleted > 0 {
            self.exact = false;
        }
    }

    /// Accounts `count` entries a dry run would delete, counted without a measure.
    pub fn would_delete_estimated(&mut self, count: u64) {
        let average = self.average_bytes().unwrap_or(0);
        self.would_clean = self.would_clean.saturating_add(count);
        self.would_free = self.would_free.saturating_add(count.saturating_mul(average));
        self.exact = false;
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
            self.shortfall = self.shortfall.saturating_add(count.saturating_sub(deleted));
            let share = u64::try_from(u128::from(bytes) * u128::from(deleted.min(count)) / u128::from(count.max(1)));
            self.bytes = self.bytes.saturating_add(share.unwrap_or(bytes));
        }
    }

    /// Accounts a page of legacy entries measured at `count` entries and `bytes`, of which `deleted` went.
    pub fn legacy_deleted(&mut self, count: u64, bytes: u64, deleted: u64) {
        self.deleted(count, bytes, deleted);
        self.legacy_cleaned = self.legacy_cleaned.saturating_add(deleted);
    }

    /// A legacy entry kept because its token could not be verified.
    pub fn skipped_unverifiable(&mut self) {
        self.skipped_unverifiable = self.skipped_unverifiable.saturating_add(1);
    }

    /// A legacy entry's expiry was written.
    pub fn backfilled(&mut self) {
        self.backfilled = self.backfilled.saturating_add(1);
    }

    /// Something is left for the next run.
    pub fn incomplete(&mut self) {
        self.complete = false;
    }

    /// `left` expired entries are still there.
    pub fn remaining(&mut self, left: u64) {
        self.expired_remaining = self.expired_remaining.map(|r| r.saturating_add(left));
    }

    /// What is left could not be counted.
    pub fn remaining_unknown(&mut self) {
        self.expired_remaining = None;
    }

    /// True until something is left for the next run.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// A dry run leaves everything it would have deleted.
    pub fn dry_run_leaves_what_it_counted(&mut self) {
        let would_clean = self.would_clean;
        self.expired_remaining = self.expired_remaining.map(|r| r.saturating_add(would_clean));
    }

    /// Time spent pausing between batches.
    pub fn paused(&mut self, pause: Duration) {
        self.paused = self.paused.saturating_add(pause);
    }

    /// Counts a delete its write concern did not confirm within `wtimeout` (its entries are counted as deleted).
    pub fn unconfirmed(&mut self) {
        self.unconfirmed += 1;
    }

    /// The store's counts broke the size bound (`why`) and the run went on through the next backend: nothing it
    /// claimed is reported, only what the next backend's own counts prove.
    pub fn forget_unproven(&mut self, why: &StoreError) {
        let claimed = self.entries_done();
        (self.cleaned, self.bytes, self.would_clean, self.would_free, self.legacy_cleaned) = (0, 0, 0, 0, 0);
        (self.exact, self.size_bound, self.shortfall) = (false, None, 0);
        self.warn(format!(
            "{why}; the {claimed} entries counted before it are not reported, and the run went on through the next \
             backend, whose own counts are"
        ));
    }

    /// Something the operator should know, logged now and reported at the end.
    pub fn warn(&mut self, warning: String) {
        tracing::warn!("{warning}");
        self.warnings.push(warning);
    }

    /// The report of a run that ended here.
    pub fn into_report(mut self, end: RunEnd) -> SweepReport {
        if self.unconfirmed > 0 {
            self.warn(format!(
                "{} delete(s) were not confirmed by CLEANUP_WRITE_CONCERN within its wtimeout: their entries are gone \
                 from the primary and counted, the replicas were behind, and the sweep paused after each",
                self.unconfirmed
            ));
        }
        // Measured N, deleted fewer, and the closing count found the ranges empty: someone else deleted them (a TTL
        // index, another writer), or the store under-reports `deletedCount` (an API answered 0 for 2,000 deleted,
        // and the report said nothing). Either way the count is only what the store reported.
        if self.shortfall > 0 && self.expired_remaining == Some(0) && !end.dry_run {
            self.warn(format!(
                "{} measured entries were not reported deleted, yet none is left: another process deleted them, or \
                 the store under-reports deletedCount; cleaned_count is what the store reported",
                self.shortfall
            ));
        }
        // Where the server reports no sizes: the remaining entries at the average size of the ones this run
        // measured, when it measured any.
        let average = self.average_bytes();
        let estimated_memory_usage =
            end.after.and_then(|after| after.size_bytes.or_else(|| average.map(|a| a.saturating_mul(after.count))));
        SweepReport {
            success: True,
            cleaned_count: self.cleaned,
            remaining_tokens: end.after.map(|after| after.count),
            estimated_memory_usage,
            memory_saved_bytes: self.bytes,
            memory_saved_mb: megabytes(self.bytes),
            memory_saved_exact: self.exact,
            timestamp: rfc3339(end.started_at),
            execution_time: execution_time(end.started_at),
            total_tokens_before: end.after.map(|after| after.count.saturating_add(self.cleaned)),
            expired_remaining: self.expired_remaining,
            complete: self.complete,
            batches: self.batches,
            dry_run: end.dry_run,
            would_clean_count: self.would_clean,
            would_free_bytes: self.would_free,
            legacy_cleaned: self.legacy_cleaned,
            skipped_unverifiable: self.skipped_unverifiable,
            backfilled: self.backfilled,
            backlog: end.backlog,
            warnings: self.warnings,
            backend: end.backend,
            fallback_reason: end.fallback_reason,
            duration_ms: u64::try_from(end.duration.as_millis()).unwrap_or(u64::MAX),
            paused_ms: u64::try_from(self.paused.as_millis()).unwrap_or(u64::MAX),
            request_id: end.request_id,
            targets: None,
            skipped: None,
        }
    }

    /// A run that stopped on `error` after doing what this tally says, on `backend`.
    pub fn failure(&self, error: StoreError, backend: String) -> SweepFailure {
        SweepFailure {
            kind: error.kind(),
            error: error.to_string(),
            cause: Some(Box::new(error)),
            cleaned_count: self.cleaned,
            memory_saved_bytes: self.bytes,
            batches: self.batches,
            backend,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_saturate_instead_of_wrapping() {
        let mut tally = Tally::new();
        tally.deleted(10, 1000, 10);
        for _ in 0..5 {
            tally.deleted_estimated(u64::MAX / 2);
            tally.deleted(10, 1000, u64::MAX);
            tally.remaining(u64::MAX);
            tally.batch();
        }
        assert_eq!(tally.cleaned, u64::MAX);
        assert_eq!(tally.expired_remaining, Some(u64::MAX));
        assert_eq!(tally.bytes, u64::MAX);
        assert!(!tally.exact);
    }

    #[test]
    fn a_batch_that_grew_is_never_credited_more_bytes_than_measured() {
        let mut tally = Tally::new();
        tally.deleted(10, 1000, 25);
        assert_eq!((tally.cleaned, tally.bytes, tally.exact), (25, 1000, false));
        tally.deleted(10, 1000, 5);
        assert_eq!(tally.bytes, 1500);
    }
}
