//! The sweep: removes provably expired blacklist entries in bounded batches, storage-agnostic.
//!
//! An entry is expired when its expiry, a BSON Date or a number of seconds since the epoch, lies before
//! `now - grace`. Each [`Lane`] (Date, seconds) is walked from that cutoff towards the past in windows of
//! expiry values ([`window`]); each window with entries is one batch: measured (count and exact BSON bytes), then
//! deleted by the same range. Entries with a missing, null, negative, NaN or non-date/non-number expiry never fall
//! in any range, so they are never deleted. No batch starts once the time budget is spent; the next run picks up
//! whatever is left, and because every batch is a range delete, concurrent or repeated runs converge on the same
//! state and each counts only what its own deletes removed.

pub mod backlog;
pub mod legacy;
pub mod options;
pub mod progress;
pub mod report;
pub mod sizing;
mod tally;
pub mod window;

use std::time::Instant;

use chrono::Utc;

pub use legacy::TokenVerifier;
pub use options::{SweepOptions, SweepOverrides};
pub use progress::{Done, LogLines, Progress, Silent};
pub use report::{SweepFailure, SweepReport};

use crate::store::deadline::{Deadline, AFTER_RUN, CALL_MARGIN};
use crate::store::{ExpiryRange, Lane, Store, StoreError};
use report::RunEnd;
use sizing::Sizing;
use tally::Tally;
use window::Window;

/// The first window of each lane: a minute of expiries below the cutoff. Later windows follow the density.
const INITIAL_WINDOW_MS: i64 = 60_000;

/// Runs one sweep against `store`, now. Legacy entries are examined only with a `verifier` (`JWT_SECRET_KEY`).
pub async fn run(
    store: &dyn Store,
    options: &SweepOptions,
    verifier: Option<&TokenVerifier>,
    request_id: &str,
) -> Result<SweepReport, SweepFailure> {
    run_at(store, options, verifier, request_id, Utc::now(), &Silent).await
}

/// [`run`] as if it started at `started_at` (the cutoff is `started_at - grace`: tests pin the clock with it, to
/// put entries exactly on the cutoff), telling `progress` after each batch.
pub async fn run_at(
    store: &dyn Store,
    options: &SweepOptions,
    verifier: Option<&TokenVerifier>,
    request_id: &str,
    started_at: chrono::DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<SweepReport, SweepFailure> {
    let started = Instant::now();
    // No call outlives the budget by more than the margin, whatever the backend's own timeouts, and the end of the
    // margin is kept for the history write and the alerts (store::deadline).
    let deadline = options
        .calls_end
        .unwrap_or_else(|| tokio::time::Instant::from_std(started) + options.time_budget + (CALL_MARGIN - AFTER_RUN));
    let store: &dyn Store = &Deadline::new(store, deadline);
    let cutoff_ms = options.cutoff_ms(started_at);
    let mut tally = Tally::new();
    let fail = |tally: &Tally, error: StoreError| tally.failure(error, store.backend());

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
    if !store.vouches_for_counts() {
        let size = store.stats().await.map_err(|e| fail(&tally, e))?.count;
        tally.bound_by(size);
    }
    let mut remaining: Vec<(ExpiryRange, bool)> = Vec::new();
    for lane in Lane::ALL {
        match sweep_lane(store, options, lane, cutoff_ms, started, &mut tally, progress).await {
            Ok(None) if options.dry_run => {}
            Ok(None) => remaining.push((ExpiryRange::expired(lane, cutoff_ms), true)),
            Ok(Some(rest)) => {
                tally.incomplete();
                remaining.push((rest, false));
            }
            Err(e) => return Err(fail(&tally, e)),
        }
    }
    if let Some(verifier) = verifier.filter(|_| options.legacy_scan_limit > 0) {
        match legacy::sweep(store, options, verifier, cutoff_ms, started, &mut tally).await {
            Ok(true) => {}
            Ok(false) => tally.incomplete(),
            Err(e) => return Err(fail(&tally, e)),
        }
    }
    for (range, swept) in &remaining {
        let left = store.count(range).await.map_err(|e| fail(&tally, e))?;
        if left > 0 && *swept {
            tally.incomplete();
            tally.warn(format!(
                "{left} expired entries are still in the {lane} lane after it was swept: the store did not delete \
                 what it was asked to (another writer, or a server that misreads filters)",
                lane = range.lane.name()
            ));
        }
        tally.remaining(left);
    }
    if options.dry_run {
        tally.dry_run_leaves_what_it_counted();
    }
    // One statistics call, at the end: on some servers it costs a pass over the collection (and holds the server
    // while it runs), so it is made once per run at most, and not at all with `CLEANUP_COLLECTION_STATS=false`.
    let after = if options.collection_stats { Some(store.stats().await.map_err(|e| fail(&tally, e))?) } else { None };
    // The backlog after the run (sweep::backlog): a few index-bounded reads; a failure to measure it is reported,
    // not fatal (the sweep itself is done).
    let backlog = match backlog::measure(store, cutoff_ms, Utc::now()).await {
        Ok(backlog) => Some(backlog),
        Err(e) => {
            tally.warn(format!("the backlog could not be measured: {e}"));
            None
        }
    };
    let report = tally.into_report(RunEnd {
        started_at,
        duration: started.elapsed(),
        after,
        backlog,
        dry_run: options.dry_run,
        backend: store.backend(),
        fallback_reason: store.fallback_reason(),
        request_id: request_id.to_string(),
    });
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
///
/// Gentleness (see the README's "Gentle sweeps"): after each batch the sweep pauses `pause_ratio` times the batch's
/// own duration, inside the budget; with a `max_operation` bound, the window target follows the measured cost per
/// entry so that no single measure or delete is expected to run longer, and the target starts small ([`sizing`]).
/// A gentle sweep never reads or deletes a window it has not bounded first: its measure stops one entry past "too
/// crowded" (twice the target), and without `exact_bytes` each window is probed with a count that stops there
/// before it is deleted. A window is sized from the density of the one before it, and that density can be wrong
/// by any factor: a window that straddles the edge of a gap holds a few entries where its neighbour holds
/// thousands (the cause of reads of 400-2,000 entries under a 40-entry bound, issue #34).
///
/// Without `exact_bytes`, a window is deleted without being measured first (only the first window with entries is
/// measured, for the average entry size), and the next window is sized from what the delete removed.
async fn sweep_lane(
    store: &dyn Store,
    options: &SweepOptions,
    lane: Lane,
    cutoff_ms: i64,
    started: Instant,
    tally: &mut Tally,
    progress: &dyn Progress,
) -> Result<Option<ExpiryRange>, StoreError> {
    let mut sizing = Sizing::new(options);
    let mut window = Window::new(lane, cutoff_ms, INITIAL_WINDOW_MS, sizing.get());
    loop {
        let range = window.range();
        if started.elapsed() >= options.time_budget {
            return Ok(Some(ExpiryRange::expired(lane, range.hi_ms)));
        }
        // The most a gentle sweep reads of this window before it knows the window is not too crowded.
        let limit = sizing.bounds_reads().then(|| window.crowded_above().saturating_add(1));
        let estimate = !options.exact_bytes && tally.average_bytes().is_some();
        if estimate {
            sizing.sampled();
        }
        // What a probe of this window counted, when it was probed.
        let mut probed = None;
        if let (Some(limit), true) = (limit, estimate) {
            // Estimate mode deletes without measuring, and a delete cannot be limited: a gentle sweep counts first,
            // reading at most the limit.
            let at = Instant::now();
            let seen = store.count_at_most(&range, limit).await?;
            sizing.measured(at.elapsed(), seen);
            if crowded(&mut window, &sizing, seen) {
                continue;
            }
            if seen == 0 {
                sizing.restart();
                window.set_target(sizing.get());
                if window.is_last() {
                    return Ok(None);
                }
                window.advance(0);
                continue;
            }
            probed = Some(seen);
        }
        let batch_started = Instant::now();
        let count = if estimate {
            // Estimate mode: no measuring read. A dry run still has to count what it would delete.
            let at = Instant::now();
            // Unmeasured, the window can hold no more than the batch size it was sized for, or what its probe
            // counted, by what the sweep knows.
            let at_most = u64::from(options.batch_size).max(probed.unwrap_or(0));
            let count =
                if options.dry_run { store.count(&range).await? } else { store.delete(&range, at_most).await? };
            if options.dry_run {
                sizing.measured(at.elapsed(), count);
            } else {
                sizing.deleted(at.elapsed(), count);
            }
            if count > 0 {
                tally.check_within(count)?;
                tally.batch();
                if options.dry_run {
                    tally.would_delete_estimated(count);
                } else {
                    tally.deleted_estimated(count);
                }
            }
            count
        } else {
            let at = Instant::now();
            let mut measured = store.measure(&range, limit).await?;
            sizing.measured(at.elapsed(), measured.count);
            if crowded(&mut window, &sizing, measured.count) {
                continue;
            }
            if limit.is_some_and(|limit| measured.count >= limit) {
                // More than twice the target share one unit of expiry: the window cannot shrink, and a delete takes
                // the whole unit, so it is measured whole.
                measured = store.measure(&range, None).await?;
            }
            if measured.count > 0 {
                tally.check_within(measured.count)?;
                tally.batch();
                if options.dry_run {
                    tally.would_delete(measured.count, measured.bytes);
                } else {
                    let at = Instant::now();
                    let deleted = store.delete(&range, measured.count).await?;
                    sizing.deleted(at.elapsed(), deleted);
                    tally.deleted(measured.count, measured.bytes, deleted);
                    tracing::debug!(?lane, lo = range.lo_ms, hi = range.hi_ms, deleted, "batch deleted");
                }
            }
            measured.count
        };
        if count > 0 {
            progress.batch(Done { entries: tally.entries_done(), batches: tally.batches() });
        }
        if count > 0 {
            sizing.grow();
        } else {
            sizing.restart();
        }
        window.set_target(sizing.get());
        if count > 0 && options.pause_ratio > 0.0 {
            let left = options.time_budget.saturating_sub(started.elapsed());
            let pause = batch_started.elapsed().mul_f64(options.pause_ratio).min(left);
            tokio::time::sleep(pause).await;
            tally.paused(pause);
        }
        if window.is_last() {
            return Ok(None);
        }
        window.advance(count);
    }
}

/// After a bounded read of the window counted `seen`: true (and the window shrunk) when it is too crowded for the
/// target the read was sized for (a count that reached its limit says only "at least"), or for the target the
/// cost it just taught leaves. The window's target follows `sizing` either way.
fn crowded(window: &mut Window, sizing: &Sizing, seen: u64) -> bool {
    let crowded = window.too_crowded(seen);
    window.set_target(sizing.get());
    if crowded || window.too_crowded(seen) {
        window.shrink(seen);
        return true;
    }
    false
}
