//! One lane's sweep, a batch at a time: the windows of one [`Lane`] from the cutoff towards the past.
//!
//! [`LaneSweep::next`] runs until one batch is done (or the lane ends, or the budget does), then returns, so that a
//! run over several targets can give the next batch to another target (`sweep::turns`).
//!
//! Gentleness (see docs/sweep.md, "Gentle sweeps"): after each batch the sweep pauses `pause_ratio` times the batch's
//! own duration, inside the budget; with a `max_operation` bound, the window target follows the measured cost per
//! entry so that no single measure or delete is expected to run longer, and the target starts small ([`Sizing`]).
//! A gentle sweep never reads or deletes a window it has not bounded first: its measure stops one entry past "too
//! crowded" (twice the target), and without `exact_bytes` each window is probed with a count that stops there
//! before it is deleted. A window is sized from the density of the one before it, and that density can be wrong
//! by any factor: a window that straddles the edge of a gap holds a few entries where its neighbour holds
//! thousands (the cause of reads of 400-2,000 entries under a 40-entry bound, issue #34).
//!
//! Without `exact_bytes`, a window is deleted without being measured first (only the first window with entries is
//! measured, for the average entry size), and the next window is sized from what the delete removed.

use std::time::Instant;

use super::options::SweepOptions;
use super::sizing::Sizing;
use super::tally::Tally;
use super::window::Window;
use crate::store::{Deleted, ExpiryRange, Lane, Store, StoreError};

/// The first window of each lane: a minute of expiries below the cutoff. Later windows follow the density.
const INITIAL_WINDOW_MS: i64 = 60_000;

/// The pause after a delete its write concern did not confirm in time (pt-archiver's `--check-interval`).
const UNCONFIRMED_PAUSE: std::time::Duration = super::replication::CHECK_INTERVAL;

/// What one call of [`LaneSweep::next`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneStep {
    /// One batch (entries deleted, or counted in a dry run); the lane may hold more.
    Batch,
    /// The lane is swept to its bottom.
    Done,
    /// The budget is spent; this part of the lane is left unswept.
    Stopped(ExpiryRange),
}

/// Where the sweep of one lane stands.
pub struct LaneSweep {
    lane: Lane,
    sizing: Sizing,
    window: Window,
    /// The last window was the lane's bottom and it is done.
    finished: bool,
}

impl LaneSweep {
    /// The sweep of `lane` below `cutoff_ms`, with `options`.
    pub fn new(lane: Lane, cutoff_ms: i64, options: &SweepOptions) -> Self {
        let sizing = Sizing::new(options);
        let window = Window::new(lane, cutoff_ms, INITIAL_WINDOW_MS, sizing.get());
        Self { lane, sizing, window, finished: false }
    }

    /// The window the next batch starts from.
    pub fn window(&self) -> ExpiryRange {
        self.window.range()
    }

    /// See [`Sizing::resize`].
    pub fn resize(&mut self, batch_size: u32) {
        self.sizing.resize(batch_size);
    }

    /// Sweeps until one batch is done, the lane ends, or the budget (counted from `started`) is spent.
    pub async fn next(
        &mut self,
        store: &dyn Store,
        options: &SweepOptions,
        started: Instant,
        tally: &mut Tally,
    ) -> Result<LaneStep, StoreError> {
        let (lane, sizing, window) = (self.lane, &mut self.sizing, &mut self.window);
        loop {
            if self.finished {
                return Ok(LaneStep::Done);
            }
            let range = window.range();
            if started.elapsed() >= options.time_budget {
                return Ok(LaneStep::Stopped(ExpiryRange::expired(lane, range.hi_ms)));
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
                // Estimate mode deletes without measuring, and a delete cannot be limited: a gentle sweep counts
                // first, reading at most the limit.
                let at = Instant::now();
                let seen = store.count_at_most(&range, limit).await?;
                sizing.measured(at.elapsed(), seen);
                if crowded(window, sizing, seen) {
                    continue;
                }
                if seen == 0 {
                    sizing.restart();
                    window.set_target(sizing.get());
                    if window.is_last() {
                        return Ok(LaneStep::Done);
                    }
                    window.advance(0);
                    continue;
                }
                probed = Some(seen);
            }
            let batch_started = Instant::now();
            // A delete whose write concern was not confirmed in time: it happened on the primary (it counts), and the
            // replicas are behind; the sweep pauses before the next batch.
            let mut unconfirmed = false;
            let count = if estimate {
                // Estimate mode: no measuring read. A dry run still has to count what it would delete.
                let at = Instant::now();
                // Unmeasured, the window can hold no more than the batch size it was sized for, or what its probe
                // counted, by what the sweep knows.
                let at_most = u64::from(options.batch_size).max(probed.unwrap_or(0));
                let count = if options.dry_run {
                    store.count(&range).await?
                } else {
                    let deleted =
                        store.delete(&range, at_most).await.inspect_err(|e| tally.deleted_estimated(e.applied()))?;
                    unconfirmed |= !deleted.confirmed;
                    deleted.count
                };
                if options.dry_run {
                    sizing.measured(at.elapsed(), count);
                } else {
                    sizing.deleted(at.elapsed(), count);
                }
                if count > 0 && within_bound(store, tally, count)? {
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
                if crowded(window, sizing, measured.count) {
                    continue;
                }
                if limit.is_some_and(|limit| measured.count >= limit) {
                    // More than twice the target share one unit of expiry: the window cannot shrink, and a delete
                    // takes the whole unit, so it is measured whole.
                    measured = store.measure(&range, None).await?;
                }
                if measured.count > 0 && !within_bound(store, tally, measured.count)? {
                    // Measured again through the next backend.
                    continue;
                }
                if measured.count > 0 {
                    tally.batch();
                    if options.dry_run {
                        tally.would_delete(measured.count, measured.bytes);
                    } else {
                        let at = Instant::now();
                        let Deleted { count: deleted, confirmed } =
                            store.delete(&range, measured.count).await.inspect_err(|e| {
                                // A delete applied before it failed (an unsatisfiable write concern): counted.
                                if e.applied() > 0 {
                                    tally.deleted(measured.count, measured.bytes, e.applied());
                                }
                            })?;
                        unconfirmed |= !confirmed;
                        sizing.deleted(at.elapsed(), deleted);
                        tally.deleted(measured.count, measured.bytes, deleted);
                        tracing::debug!(?lane, lo = range.lo_ms, hi = range.hi_ms, deleted, "batch deleted");
                    }
                }
                measured.count
            };
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
            if unconfirmed {
                let pause = UNCONFIRMED_PAUSE.min(options.time_budget.saturating_sub(started.elapsed()));
                tally.unconfirmed();
                tokio::time::sleep(pause).await;
                tally.paused(pause);
            }
            if window.is_last() {
                self.finished = true;
            } else {
                window.advance(count);
            }
            if count > 0 {
                return Ok(LaneStep::Batch);
            }
        }
    }
}

/// Whether `more` entries keep the run within its size bound ([`Tally::check_within`]). Beyond it, the store's
/// counts are impossible: a fallback chain moves to its next backend and its counts so far are forgotten (false:
/// the window is measured again there); with nothing to move to, the run fails.
fn within_bound(store: &dyn Store, tally: &mut Tally, more: u64) -> Result<bool, StoreError> {
    let Err(beyond) = tally.check_within(more) else { return Ok(true) };
    store.distrust(beyond.clone())?;
    tally.forget_unproven(&beyond);
    Ok(false)
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
