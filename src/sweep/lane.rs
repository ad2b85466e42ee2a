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
//! thousands (the cause of reads of many times the bound, before every read was bounded).
//!
//! Without `exact_bytes`, a window is deleted without being measured first (only the first window with entries is
//! measured, for the average entry size), and the next window is sized from what the delete removed.

use std::time::Instant;

use super::options::SweepOptions;
use super::sizing::Sizing;
use super::tally::Tally;
use super::window::Window;
use crate::clock::RunClock;
use crate::store::{Deleted, ExpiryRange, Lane, StoreError, SweepStore};

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

    /// Sweeps until one batch is done, the lane ends, or the run's budget is spent.
    pub async fn next(
        &mut self,
        store: &dyn SweepStore,
        options: &SweepOptions,
        clock: &RunClock,
        tally: &mut Tally,
    ) -> Result<LaneStep, StoreError> {
        loop {
            if self.finished {
                return Ok(LaneStep::Done);
            }
            let range = self.window.range();
            if clock.spent() {
                return Ok(LaneStep::Stopped(ExpiryRange::expired(self.lane, range.hi_ms)));
            }
            // The most a gentle sweep reads of this window before it knows the window is not too crowded.
            let limit = self.sizing.bounds_reads().then(|| self.window.crowded_above().saturating_add(1));
            let estimate = !options.exact_bytes && tally.average_bytes().is_some();
            if estimate {
                self.sizing.sampled();
            }
            // Estimate mode deletes without measuring, and a delete cannot be limited: a gentle sweep counts first,
            // reading at most the limit.
            let probed = match (estimate, limit) {
                (true, Some(limit)) => match self.probe(store, &range, limit).await? {
                    Probe::Again => continue,
                    Probe::LaneDone => return Ok(LaneStep::Done),
                    Probe::Holds(seen) => seen,
                },
                _ => 0,
            };
            let batch_started = Instant::now();
            let swept = if estimate {
                self.delete_estimated(store, options, tally, &range, probed).await?
            } else {
                match self.delete_measured(store, options, tally, &range, limit).await? {
                    Some(swept) => swept,
                    None => continue,
                }
            };
            self.after(swept, batch_started, options, clock, tally).await;
            if swept.count > 0 {
                return Ok(LaneStep::Batch);
            }
        }
    }

    /// A gentle sweep's count of the window before an estimated delete, reading at most `limit`: the window is too
    /// crowded (shrunk: try again), empty (moved on, or the lane is done), or holds what it counted.
    async fn probe(&mut self, store: &dyn SweepStore, range: &ExpiryRange, limit: u64) -> Result<Probe, StoreError> {
        let at = Instant::now();
        let seen = store.count_at_most(range, limit).await?;
        self.sizing.measured(at.elapsed(), seen);
        if crowded(&mut self.window, &self.sizing, seen) {
            return Ok(Probe::Again);
        }
        if seen > 0 {
            return Ok(Probe::Holds(seen));
        }
        self.sizing.restart();
        self.window.set_target(self.sizing.get());
        if self.window.is_last() {
            return Ok(Probe::LaneDone);
        }
        self.window.advance(0);
        Ok(Probe::Again)
    }

    /// Estimate mode's batch: no measuring read (a dry run still counts what it would delete). Unmeasured, the
    /// window holds no more than the batch size it was sized for, or what its probe counted (`probed`).
    async fn delete_estimated(
        &mut self,
        store: &dyn SweepStore,
        options: &SweepOptions,
        tally: &mut Tally,
        range: &ExpiryRange,
        probed: u64,
    ) -> Result<Swept, StoreError> {
        let at = Instant::now();
        let at_most = u64::from(options.batch_size).max(probed);
        let mut confirmed = true;
        let count = if options.dry_run {
            let count = store.count(range).await?;
            self.sizing.measured(at.elapsed(), count);
            count
        } else {
            let deleted = store.delete(range, at_most).await.inspect_err(|e| tally.deleted_estimated(e.applied()))?;
            confirmed = deleted.confirmed;
            self.sizing.deleted(at.elapsed(), deleted.count);
            deleted.count
        };
        if count > 0 && within_bound(store, tally, count)? {
            tally.batch();
            if options.dry_run {
                tally.would_delete_estimated(count);
            } else {
                tally.deleted_estimated(count);
            }
        }
        Ok(Swept { count, confirmed })
    }

    /// The exact batch: measured (count and bytes), then deleted by the same range; `None` when the window must be
    /// tried again (too crowded, or measured again through the next backend).
    async fn delete_measured(
        &mut self,
        store: &dyn SweepStore,
        options: &SweepOptions,
        tally: &mut Tally,
        range: &ExpiryRange,
        limit: Option<u64>,
    ) -> Result<Option<Swept>, StoreError> {
        let at = Instant::now();
        let mut measured = store.measure(range, limit).await?;
        self.sizing.measured(at.elapsed(), measured.count);
        if crowded(&mut self.window, &self.sizing, measured.count) {
            return Ok(None);
        }
        if limit.is_some_and(|limit| measured.count >= limit) {
            // More than twice the target share one unit of expiry: the window cannot shrink, and a delete takes the
            // whole unit, so it is measured whole.
            measured = store.measure(range, None).await?;
        }
        if measured.count > 0 && !within_bound(store, tally, measured.count)? {
            return Ok(None);
        }
        let swept = Swept { count: measured.count, confirmed: true };
        if measured.count == 0 {
            return Ok(Some(swept));
        }
        tally.batch();
        if options.dry_run {
            tally.would_delete(measured.count, measured.bytes);
            return Ok(Some(swept));
        }
        let at = Instant::now();
        let Deleted { count: deleted, confirmed } = store.delete(range, measured.count).await.inspect_err(|e| {
            // A delete applied before it failed (an unsatisfiable write concern): counted.
            if e.applied() > 0 {
                tally.deleted(measured.count, measured.bytes, e.applied());
            }
        })?;
        self.sizing.deleted(at.elapsed(), deleted);
        tally.deleted(measured.count, measured.bytes, deleted);
        tracing::debug!(lane = ?self.lane, lo = range.lo_ms, hi = range.hi_ms, deleted, "batch deleted");
        Ok(Some(Swept { count: measured.count, confirmed }))
    }

    /// After a window: the next one sized by what this one held, the pauses (gentle pacing; replicas that did not
    /// confirm a delete in time), and the window moved on.
    async fn after(
        &mut self,
        swept: Swept,
        batch_started: Instant,
        options: &SweepOptions,
        clock: &RunClock,
        tally: &mut Tally,
    ) {
        if swept.count > 0 {
            self.sizing.grow();
        } else {
            self.sizing.restart();
        }
        self.window.set_target(self.sizing.get());
        if swept.count > 0 && options.pause_ratio > 0.0 {
            let left = clock.left();
            let pause = batch_started.elapsed().mul_f64(options.pause_ratio).min(left);
            tokio::time::sleep(pause).await;
            tally.paused(pause);
        }
        if !swept.confirmed {
            // The delete happened on the primary (it counts), and the replicas are behind: pause before the next.
            let pause = UNCONFIRMED_PAUSE.min(clock.left());
            tally.unconfirmed();
            tokio::time::sleep(pause).await;
            tally.paused(pause);
        }
        if self.window.is_last() {
            self.finished = true;
        } else {
            self.window.advance(swept.count);
        }
    }
}

/// What a gentle sweep's count before an estimated delete found.
enum Probe {
    /// The window was too crowded and shrank, or was empty and the sweep moved on: try again.
    Again,
    /// The window was empty and the lane's last.
    LaneDone,
    /// The window holds this many (at most the limit).
    Holds(u64),
}

/// What one window's batch did: how many it deleted (or counted, in a dry run), and whether the write concern
/// confirmed the delete in time.
#[derive(Debug, Clone, Copy)]
struct Swept {
    count: u64,
    confirmed: bool,
}

/// Whether `more` entries keep the run within its size bound ([`Tally::check_within`]). Beyond it, the store's
/// counts are impossible: a fallback chain moves to its next backend and its counts so far are forgotten (false:
/// the window is measured again there); with nothing to move to, the run fails.
fn within_bound(store: &dyn SweepStore, tally: &mut Tally, more: u64) -> Result<bool, StoreError> {
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
