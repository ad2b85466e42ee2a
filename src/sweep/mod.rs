//! The sweep: removes provably expired blacklist entries in bounded batches, storage-agnostic.
//!
//! An entry is expired when its expiry, a BSON Date or a number of seconds since the epoch, lies before
//! `now - grace`. Each [`Lane`] (Date, seconds) is walked from that cutoff towards the past in windows of
//! expiry values ([`window`]); each window with entries is one batch: measured (count and exact BSON bytes), then
//! deleted by the same range. Entries with a missing, null, negative, NaN or non-date/non-number expiry never fall
//! in any range, so they are never deleted. No batch starts once the time budget is spent; the next run picks up
//! whatever is left, and because every batch is a range delete, concurrent or repeated runs converge on the same
//! state and each counts only what its own deletes removed.

pub mod legacy;
pub mod options;
pub mod report;
pub mod window;

use std::time::Instant;

use chrono::Utc;

pub use legacy::TokenVerifier;
pub use options::{SweepOptions, SweepOverrides};
pub use report::{SweepFailure, SweepReport};

use mongodb::bson::Bson;

use crate::store::{BlacklistStore, ExpiryRange, Lane, StoreError};
use window::Window;

/// Legacy entries read per page.
const LEGACY_PAGE: u64 = 500;

/// The first window of each lane: a minute of expiries below the cutoff. Later windows follow the density.
const INITIAL_WINDOW_MS: i64 = 60_000;

/// Running totals of one sweep, kept so that a failure can still report what was really done.
#[derive(Debug, Default)]
struct Tally {
    cleaned: u64,
    bytes: u64,
    exact: bool,
    batches: u64,
    would_clean: u64,
    would_free: u64,
    legacy_cleaned: u64,
    skipped_unverifiable: u64,
    backfilled: u64,
}

impl Tally {
    /// Accounts a batch a dry run would delete.
    fn would_delete(&mut self, count: u64, bytes: u64) {
        self.would_clean += count;
        self.would_free += bytes;
    }

    /// Accounts a batch measured at `count` entries and `bytes`, of which `deleted` were really deleted.
    fn deleted(&mut self, count: u64, bytes: u64, deleted: u64) {
        self.cleaned += deleted;
        if deleted == count {
            self.bytes += bytes;
        } else {
            // Another writer changed the batch between the two calls: pro-rate its bytes.
            self.exact = false;
            self.bytes += bytes.saturating_mul(deleted) / count.max(1);
        }
    }
}

/// Runs one sweep against `store`. Legacy entries are examined only with a `verifier` (`JWT_SECRET_KEY`).
pub async fn run(
    store: &dyn BlacklistStore,
    options: &SweepOptions,
    verifier: Option<&TokenVerifier>,
    request_id: &str,
) -> Result<SweepReport, SweepFailure> {
    let started = Instant::now();
    let started_at = Utc::now();
    let grace_ms = i64::try_from(options.grace.as_millis()).unwrap_or(i64::MAX);
    let cutoff_ms = started_at.timestamp_millis().saturating_sub(grace_ms);
    let mut tally = Tally { exact: true, ..Tally::default() };

    let fail = |tally: &Tally, error: StoreError| SweepFailure {
        unreachable: matches!(error, StoreError::Unreachable(_)),
        error: error.to_string(),
        cleaned_count: tally.cleaned,
        memory_saved_bytes: tally.bytes,
        batches: tally.batches,
        backend: store.backend(),
    };

    let mut warnings = Vec::new();
    match store.expiry_indexed().await {
        Ok(Some(true)) => {}
        Ok(Some(false)) => warnings.push(format!(
            "no index on {field}: every batch scans the collection; create one with `jwt-token-cleaner create-index`",
            field = options.expires_field
        )),
        Ok(None) => tracing::debug!("the backend cannot tell whether the expiry field is indexed"),
        Err(e) => return Err(fail(&tally, e)),
    }
    for warning in &warnings {
        tracing::warn!("{warning}");
    }

    let mut complete = true;
    // Where expired entries may still be, counted once the lanes are done: the unswept part of a lane the budget
    // stopped, and, after a real sweep, the whole of every lane the sweep walked to its end. The latter is the
    // evidence behind `complete`: the sweep's own measures could all have been wrong the same way (a store that
    // misreads a filter finds nothing to measure and nothing to delete), so "every window was empty" proves nothing.
    // The count is one index-bounded query per lane that normally matches nothing, so it costs next to nothing.
    let mut remaining: Vec<(ExpiryRange, bool)> = Vec::new();
    for lane in Lane::ALL {
        match sweep_lane(store, options, lane, cutoff_ms, started, &mut tally).await {
            Ok(None) if options.dry_run => {}
            Ok(None) => remaining.push((ExpiryRange { lane, lo_ms: lane.floor_ms(), hi_ms: cutoff_ms }, true)),
            Ok(Some(rest)) => {
                complete = false;
                remaining.push((rest, false));
            }
            Err(e) => return Err(fail(&tally, e)),
        }
    }
    if let Some(verifier) = verifier.filter(|_| options.legacy_scan_limit > 0) {
        match sweep_legacy(store, options, verifier, cutoff_ms, started, &mut tally).await {
            Ok(done) => complete &= done,
            Err(e) => return Err(fail(&tally, e)),
        }
    }
    let mut expired_remaining = 0;
    for (range, swept) in &remaining {
        let left = store.count(range).await.map_err(|e| fail(&tally, e))?;
        if left > 0 && *swept {
            complete = false;
            let warning = format!(
                "{left} expired entries are still in the {lane} lane after it was swept: the store did not delete \
                 what it was asked to (another writer, or a server that misreads filters)",
                lane = range.lane.name()
            );
            tracing::warn!("{warning}");
            warnings.push(warning);
        }
        expired_remaining += left;
    }
    if options.dry_run {
        expired_remaining += tally.would_clean;
    }
    // One statistics call, at the end: on some servers it costs a pass over the collection.
    let after = store.stats().await.map_err(|e| fail(&tally, e))?;
    let measured = tally.cleaned + tally.would_clean;
    let estimated_memory_usage = match after.size_bytes {
        Some(size) => size,
        // The server reports no sizes: the remaining entries at the average size of the ones this run measured.
        None if measured > 0 => after.count * (tally.bytes + tally.would_free) / measured,
        None => 0,
    };

    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        cleaned = tally.cleaned,
        bytes = tally.bytes,
        batches = tally.batches,
        complete,
        dry_run = options.dry_run,
        duration_ms,
        "sweep finished"
    );
    Ok(SweepReport {
        success: true,
        cleaned_count: tally.cleaned,
        remaining_tokens: after.count,
        estimated_memory_usage,
        memory_saved_bytes: tally.bytes,
        memory_saved_mb: report::megabytes(tally.bytes),
        memory_saved_exact: tally.exact,
        timestamp: report::rfc3339(started_at),
        execution_time: report::execution_time(started_at),
        total_tokens_before: after.count + tally.cleaned,
        expired_remaining,
        complete,
        batches: tally.batches,
        dry_run: options.dry_run,
        would_clean_count: tally.would_clean,
        would_free_bytes: tally.would_free,
        legacy_cleaned: tally.legacy_cleaned,
        skipped_unverifiable: tally.skipped_unverifiable,
        backfilled: tally.backfilled,
        warnings,
        backend: store.backend(),
        fallback_reason: store.fallback_reason(),
        duration_ms,
        request_id: request_id.to_string(),
    })
}

/// Sweeps one lane. Returns the part of the lane left unswept when the budget ran out, or `None` when the lane is
/// done.
async fn sweep_lane(
    store: &dyn BlacklistStore,
    options: &SweepOptions,
    lane: Lane,
    cutoff_ms: i64,
    started: Instant,
    tally: &mut Tally,
) -> Result<Option<ExpiryRange>, StoreError> {
    let mut window = Window::new(lane, cutoff_ms, INITIAL_WINDOW_MS, options.batch_size);
    loop {
        let range = window.range();
        if started.elapsed() >= options.time_budget {
            return Ok(Some(ExpiryRange { lane, lo_ms: lane.floor_ms(), hi_ms: range.hi_ms }));
        }
        let measured = store.measure(&range).await?;
        if window.too_crowded(measured.count) {
            window.shrink(measured.count);
            continue;
        }
        if measured.count > 0 {
            tally.batches += 1;
            if options.dry_run {
                tally.would_delete(measured.count, measured.bytes);
            } else {
                let deleted = store.delete(&range).await?;
                tally.deleted(measured.count, measured.bytes, deleted);
                tracing::debug!(?lane, lo = range.lo_ms, hi = range.hi_ms, deleted, "batch deleted");
            }
        }
        if window.is_last() {
            return Ok(None);
        }
        window.advance(measured.count);
    }
}

/// Examines legacy entries page by page. Returns whether every legacy entry was examined (false when the scan
/// limit or the time budget stopped it).
async fn sweep_legacy(
    store: &dyn BlacklistStore,
    options: &SweepOptions,
    verifier: &TokenVerifier,
    cutoff_ms: i64,
    started: Instant,
    tally: &mut Tally,
) -> Result<bool, StoreError> {
    let mut after: Option<Bson> = None;
    let mut examined = 0;
    loop {
        if examined >= options.legacy_scan_limit || started.elapsed() >= options.time_budget {
            return Ok(false);
        }
        let limit = LEGACY_PAGE.min(options.legacy_scan_limit - examined);
        let page = store.legacy_page(after.as_ref(), limit as u32).await?;
        let Some(last) = page.last() else { return Ok(true) };
        after = Some(last.id.clone());
        examined += page.len() as u64;

        let (mut expired, mut bytes) = (Vec::new(), 0);
        for entry in &page {
            match verifier.expiry_ms(&entry.token) {
                None => tally.skipped_unverifiable += 1,
                Some(expires_ms) if expires_ms < cutoff_ms => {
                    expired.push(entry.id.clone());
                    bytes += entry.bytes;
                }
                Some(expires_ms) => {
                    if options.legacy_backfill
                        && !options.dry_run
                        && store.backfill_expiry(&entry.id, expires_ms).await?
                    {
                        tally.backfilled += 1;
                    }
                }
            }
        }
        if expired.is_empty() {
            continue;
        }
        tally.batches += 1;
        let count = expired.len() as u64;
        if options.dry_run {
            tally.would_delete(count, bytes);
        } else {
            let deleted = store.delete_legacy(&expired).await?;
            tally.deleted(count, bytes, deleted);
            tally.legacy_cleaned += deleted;
        }
    }
}
