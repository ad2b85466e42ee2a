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

use crate::store::{BlacklistStore, ExpiryRange, Lane, StoreError};
use report::{RunEnd, Tally};
use window::Window;

/// The first window of each lane: a minute of expiries below the cutoff. Later windows follow the density.
const INITIAL_WINDOW_MS: i64 = 60_000;

/// Runs one sweep against `store`, now. Legacy entries are examined only with a `verifier` (`JWT_SECRET_KEY`).
pub async fn run(
    store: &dyn BlacklistStore,
    options: &SweepOptions,
    verifier: Option<&TokenVerifier>,
    request_id: &str,
) -> Result<SweepReport, SweepFailure> {
    run_at(store, options, verifier, request_id, Utc::now()).await
}

/// [`run`] as if it started at `started_at`: the cutoff is `started_at - grace`. Tests pin the clock with it, to
/// put entries exactly on the cutoff.
pub async fn run_at(
    store: &dyn BlacklistStore,
    options: &SweepOptions,
    verifier: Option<&TokenVerifier>,
    request_id: &str,
    started_at: chrono::DateTime<Utc>,
) -> Result<SweepReport, SweepFailure> {
    let started = Instant::now();
    let grace_ms = i64::try_from(options.grace.as_millis()).unwrap_or(i64::MAX);
    let cutoff_ms = started_at.timestamp_millis().saturating_sub(grace_ms);
    let mut tally = Tally::new();
    let fail = |tally: &Tally, error: StoreError| SweepFailure::new(tally, error, store.backend());

    match store.expiry_indexed().await {
        Ok(Some(true)) => {}
        Ok(Some(false)) => tally.warn(format!(
            "no index on {field}: every batch scans the collection; create one with `jwt-token-cleaner create-index`",
            field = options.expires_field
        )),
        Ok(None) => tracing::debug!("the backend cannot tell whether the expiry field is indexed"),
        Err(e) => return Err(fail(&tally, e)),
    }

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
                tally.complete = false;
                remaining.push((rest, false));
            }
            Err(e) => return Err(fail(&tally, e)),
        }
    }
    if let Some(verifier) = verifier.filter(|_| options.legacy_scan_limit > 0) {
        match legacy::sweep(store, options, verifier, cutoff_ms, started, &mut tally).await {
            Ok(done) => tally.complete &= done,
            Err(e) => return Err(fail(&tally, e)),
        }
    }
    for (range, swept) in &remaining {
        let left = store.count(range).await.map_err(|e| fail(&tally, e))?;
        if left > 0 && *swept {
            tally.complete = false;
            tally.warn(format!(
                "{left} expired entries are still in the {lane} lane after it was swept: the store did not delete \
                 what it was asked to (another writer, or a server that misreads filters)",
                lane = range.lane.name()
            ));
        }
        tally.expired_remaining += left;
    }
    if options.dry_run {
        tally.expired_remaining += tally.would_clean;
    }
    // One statistics call, at the end: on some servers it costs a pass over the collection.
    let after = store.stats().await.map_err(|e| fail(&tally, e))?;
    let report = SweepReport::new(
        &tally,
        RunEnd {
            started_at,
            duration: started.elapsed(),
            after,
            dry_run: options.dry_run,
            backend: store.backend(),
            fallback_reason: store.fallback_reason(),
            request_id: request_id.to_string(),
        },
    );
    tracing::info!(
        cleaned = report.cleaned_count,
        bytes = report.memory_saved_bytes,
        batches = report.batches,
        complete = report.complete,
        dry_run = report.dry_run,
        duration_ms = report.duration_ms,
        "sweep finished"
    );
    Ok(report)
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
