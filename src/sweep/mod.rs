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
pub mod format;
mod lane;
pub mod legacy;
pub mod options;
pub mod progress;
pub mod replication;
pub mod report;
pub mod sizing;
mod tally;
mod trace;
pub mod turns;
pub mod window;

use std::time::{Duration, Instant};

use chrono::Utc;
use tracing::Instrument;

pub use legacy::TokenVerifier;
pub use options::{SweepOptions, SweepOverrides};
pub use progress::{Done, LogLines, Progress, Silent};
pub use report::{SweepFailure, SweepReport};

use crate::clock::RunClock;
use crate::store::deadline::Deadline;
use crate::store::{Backend, ErrorKind, ExpiryRange, Lane, ReplicationLag, Store, StoreError, SweepStore};
use lane::{LaneStep, LaneSweep};
use report::RunEnd;
use tally::Tally;

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
/// put entries exactly on the cutoff), telling `progress` after each batch. The sweep takes its turns as a run's
/// one target does (`turns`, then `report::combine`), so that what the tests run here is the runner's path.
pub async fn run_at(
    store: &dyn Store,
    options: &SweepOptions,
    verifier: Option<&TokenVerifier>,
    request_id: &str,
    started_at: chrono::DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<SweepReport, SweepFailure> {
    let clock = RunClock::at(started_at, options.time_budget);
    let sweep = Sweep::open(store, options.clone(), verifier, clock).await;
    let entry = turns::Entry { name: String::new(), sweep, span: tracing::Span::current() };
    let outcomes = turns::in_turn(vec![entry], &clock, options.batch_size, request_id, progress).await;
    report::combine(outcomes, clock.started_at(), clock.elapsed(), request_id, false)
}

/// What one [`Sweep::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// One batch; there may be more.
    Batch,
    /// Nothing more to do in this run: every lane is swept, or the budget is spent.
    Done,
}

/// One sweep of one collection, opened, stepped a batch at a time, and closed: [`run_at`] steps one sweep to its
/// end, and a run over several targets steps several in turn ([`turns`]).
pub struct Sweep<'a> {
    store: Deadline<'a>,
    /// When every call of this sweep ends (the run's: see [`RunClock::calls_end`]).
    calls_end: tokio::time::Instant,
    options: SweepOptions,
    verifier: Option<&'a TokenVerifier>,
    /// The run's clock; its budget ends early when the sweep is stopped.
    clock: RunClock,
    cutoff_ms: i64,
    tally: Tally,
    /// The lane being swept (an index into [`Lane::ALL`]), and its state once started.
    lane: usize,
    current: Option<LaneSweep>,
    legacy_done: bool,
    /// Where expired entries may still be, counted when the sweep closes: the unswept part of a lane the budget
    /// stopped, and, after a real sweep, the whole of every lane the sweep walked to its end. The latter is the
    /// evidence behind `complete`: the sweep's own measures could all have been wrong the same way (a store that
    /// misreads a filter finds nothing to measure and nothing to delete), so "every window was empty" proves
    /// nothing. The count is one index-bounded query per lane that normally matches nothing, so it costs next to
    /// nothing.
    remaining: Vec<(ExpiryRange, bool)>,
    /// When the replication lag was last read; `None` before the first read.
    lag_read_at: Option<Instant>,
    /// The lag can be read (a bound is set and the command has not been refused in this run).
    lag_readable: bool,
    /// The batches given a span of their own so far, and those past the limit.
    traced: trace::Batches,
}

impl<'a> Sweep<'a> {
    /// Opens a sweep of `store` with `options` on the run's `clock`: checks the expiry index and, for a store that
    /// cannot vouch for its counts, reads the collection's size.
    pub async fn open(
        store: &'a dyn Store,
        options: SweepOptions,
        verifier: Option<&'a TokenVerifier>,
        clock: RunClock,
    ) -> Result<Self, SweepFailure> {
        // No call outlives the budget by more than the margin, whatever the backend's own timeouts, and the end of
        // the margin is kept for the history write and the alerts (crate::clock). A run over several targets gives
        // each a share of the budget but one deadline, the run's, so that a batch in flight at the end of a
        // target's share finishes (the next targets' shares shrink) instead of failing the target.
        let calls_end = clock.calls_end();
        let cutoff_ms = options.cutoff_ms(clock.started_at());
        let mut sweep = Self {
            store: Deadline::new(store, calls_end),
            calls_end,
            options,
            verifier,
            clock,
            cutoff_ms,
            tally: Tally::new(),
            lane: 0,
            current: None,
            legacy_done: false,
            remaining: Vec::new(),
            lag_read_at: None,
            lag_readable: true,
            traced: trace::Batches::default(),
        };
        match sweep.store.expiry_indexed().await {
            Ok(Some(true)) => {}
            Ok(Some(false)) => sweep.tally.warn(format!(
                "no index on {field}: every batch scans the collection; create one with `jwt-token-cleaner \
                 create-index`",
                field = sweep.options.expires_field
            )),
            Ok(None) => tracing::debug!("the backend cannot tell whether the expiry field is indexed"),
            Err(e) => return Err(sweep.fail(e)),
        }
        if !sweep.store.vouches_for_counts() {
            match sweep.store.stats().await {
                Ok(stats) => sweep.tally.bound_by(stats.count),
                Err(e) => return Err(sweep.fail(e)),
            }
        }
        Ok(sweep)
    }

    /// Entries deleted so far (in a dry run: that would be deleted).
    pub fn entries_done(&self) -> u64 {
        self.tally.entries_done()
    }

    /// Batches so far.
    pub fn batches(&self) -> u64 {
        self.tally.batches()
    }

    /// Gives the sweep `batch_size` entries a batch from its next window on (see `turns`).
    pub fn resize(&mut self, batch_size: u32) {
        self.options.batch_size = batch_size.max(1);
        if let Some(lane) = &mut self.current {
            lane.resize(self.options.batch_size);
        }
    }

    /// Ends the sweep's budget now: from here on a step starts no batch, and says what it left unswept.
    pub fn stop(&mut self) {
        self.clock = self.clock.stopped();
    }

    /// Counts what is left where expired entries may still be (`remaining`), and holds a lane that was swept to
    /// its end to having nothing left; false when the run's deadline cut the counts (what is left is unknown).
    async fn count_remaining(&mut self, stopped: bool) -> Result<bool, SweepFailure> {
        for (range, swept) in &self.remaining {
            let left = match self.store.count(range).await {
                Ok(left) => left,
                Err(e) if self.cut(stopped, &e) => return Ok(false),
                Err(e) => return Err(self.tally.failure(e, self.store.backend())),
            };
            if left > 0 && *swept {
                self.tally.incomplete();
                self.tally.warn(format!(
                    "{left} expired entries are still in the {lane} lane after it was swept: the store did not \
                     delete what it was asked to (another writer, or a server that misreads filters)",
                    lane = range.lane.name()
                ));
            }
            self.tally.remaining(left);
        }
        Ok(true)
    }

    /// Whether `error` is the run's deadline cutting a closing call of a sweep the budget `stopped` (see `close`).
    fn cut(&self, stopped: bool, error: &StoreError) -> bool {
        stopped && tokio::time::Instant::now() >= self.calls_end && error.kind() == ErrorKind::Unreachable
    }

    fn fail(&self, error: StoreError) -> SweepFailure {
        self.tally.failure(error, self.store.backend())
    }

    /// Sweeps until one batch is done ([`Turn::Batch`]), or there is nothing more to do in this run: every lane and
    /// the legacy pass are done, or the budget is spent ([`Turn::Done`]). The legacy pass, when there is one, is a
    /// single turn of at most `legacy_scan_limit` entries.
    pub async fn step(&mut self) -> Result<Turn, SweepFailure> {
        if let Some(bound) = self.options.max_replication_lag.filter(|_| !self.options.dry_run) {
            self.wait_for_replicas(bound).await?;
        }
        while let Some(&lane) = Lane::ALL.get(self.lane) {
            let (cutoff_ms, options) = (self.cutoff_ms, &self.options);
            let current = self.current.get_or_insert_with(|| LaneSweep::new(lane, cutoff_ms, options));
            let (span, before, top) = (self.traced.batch(lane), self.tally.entries_done(), current.window().hi_ms);
            let step =
                current.next(&self.store, &self.options, &self.clock, &mut self.tally).instrument(span.clone()).await;
            trace::ended(&span, self.tally.entries_done() - before, current.window().hi_ms, top);
            match step {
                Ok(LaneStep::Batch) => return Ok(Turn::Batch),
                Ok(LaneStep::Done) if self.options.dry_run => {}
                Ok(LaneStep::Done) => self.remaining.push((ExpiryRange::expired(lane, self.cutoff_ms), true)),
                Ok(LaneStep::Stopped(rest)) => {
                    self.tally.incomplete();
                    self.remaining.push((rest, false));
                }
                Err(e) => return Err(self.fail(e)),
            }
            self.lane += 1;
            self.current = None;
        }
        if self.legacy_done {
            return Ok(Turn::Done);
        }
        self.legacy_done = true;
        if let Some(verifier) = self.verifier.filter(|_| self.options.legacy_scan_limit > 0) {
            let cutoff_ms = self.cutoff_ms;
            match legacy::sweep(&self.store, &self.options, verifier, cutoff_ms, &self.clock, &mut self.tally).await {
                Ok(true) => {}
                Ok(false) => self.tally.incomplete(),
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(Turn::Done)
    }

    /// Before a batch: while the worst secondary lags more than `bound`, pauses and reads the lag again, every
    /// [`replication::CHECK_INTERVAL`], within the budget (see `replication`). A budget spent waiting stops the
    /// sweep, with a warning naming the replication lag.
    async fn wait_for_replicas(&mut self, bound: Duration) -> Result<(), SweepFailure> {
        let mut waited = Duration::ZERO;
        loop {
            let recent = self.lag_read_at.is_some_and(|at| at.elapsed() < replication::CHECK_INTERVAL);
            if !self.lag_readable || (recent && waited.is_zero()) {
                return Ok(());
            }
            self.lag_read_at = Some(Instant::now());
            let lag = match self.store.replication_lag().await {
                Ok(ReplicationLag::Worst(lag)) => lag,
                Ok(ReplicationLag::Unavailable) => {
                    self.lag_unreadable(&format!("{} cannot run replSetGetStatus", self.store.backend()));
                    return Ok(());
                }
                Ok(ReplicationLag::Unreadable(why)) => {
                    self.lag_unreadable(&why);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Unreachable => return Err(self.fail(e)),
                Err(e) => {
                    self.lag_unreadable(&format!("replSetGetStatus was refused ({e})"));
                    return Ok(());
                }
            };
            let Some(lag) = lag.filter(|lag| *lag > bound) else { return Ok(()) };
            let left = self.clock.left();
            if left.is_zero() {
                self.tally.warn(format!(
                    "replication lag: the run spent {:.1} s of its budget waiting for the replicas (the worst secondary \
                     was {:.1} s behind the primary, more than CLEANUP_MAX_REPLICATION_LAG_SECONDS={}); the next run \
                     takes the rest",
                    waited.as_secs_f64(),
                    lag.as_secs_f64(),
                    bound.as_secs()
                ));
                self.stop();
                return Ok(());
            }
            let pause = replication::CHECK_INTERVAL.min(left);
            tracing::info!(lag_ms = lag.as_millis() as u64, "the replicas are behind; the sweep waits");
            tokio::time::sleep(pause).await;
            self.tally.paused(pause);
            waited += pause;
        }
    }

    /// The lag cannot be read in this run: said once. (The warning no longer names the write concern: it spoke of
    /// "the direct connection's deletes" in runs that had none.)
    fn lag_unreadable(&mut self, why: &str) {
        self.lag_readable = false;
        self.tally.warn(format!(
            "CLEANUP_MAX_REPLICATION_LAG_SECONDS is set but the replication lag cannot be read: {why}; this run does \
             not wait for the replicas"
        ));
    }

    /// The sweep's end, after [`step`](Self::step) said [`Turn::Done`]: counts what is left where it swept, reads
    /// the statistics and the backlog, and reports.
    pub async fn close(mut self, request_id: &str) -> Result<SweepReport, SweepFailure> {
        self.traced.summarise();
        // A sweep the budget stopped proves nothing more by its closing calls (it is incomplete either way): when the
        // run's deadline cuts them (on the test server they read every remaining entry, seconds for a large rest), what
        // is left is reported unknown instead of failing the target. A complete sweep's counts are its evidence, and
        // stay fatal.
        let stopped = !self.tally.is_complete();
        let mut unknown = !self.count_remaining(stopped).await?;
        if self.options.dry_run {
            self.tally.dry_run_leaves_what_it_counted();
        }
        // One statistics call, at the end: on some servers it costs a pass over the collection (and holds the
        // server while it runs), so it is made once per run at most, and not at all with
        // `CLEANUP_COLLECTION_STATS=false`.
        let after = match (self.options.collection_stats, unknown) {
            (true, false) => match self.store.stats().await {
                Ok(stats) => Some(stats),
                Err(e) if self.cut(stopped, &e) => {
                    unknown = true;
                    None
                }
                Err(e) => return Err(self.tally.failure(e, self.store.backend())),
            },
            _ => None,
        };
        let store = &self.store;
        let tally = &mut self.tally;
        if unknown {
            tally.remaining_unknown();
            tally.warn(
                "the time budget stopped this sweep and the run's deadline came before its closing counts ended: what \
                 is left is unknown (the next run takes it)"
                    .to_string(),
            );
        }
        // The backlog after the run (sweep::backlog): a few index-bounded reads; a failure to measure it is
        // reported, not fatal (the sweep itself is done).
        let backlog = match backlog::measure(store, self.cutoff_ms, Utc::now()).await {
            Ok(backlog) => Some(backlog),
            Err(e) => {
                tally.warn(format!("the backlog could not be measured: {e}"));
                None
            }
        };
        let report = self.tally.into_report(RunEnd {
            started_at: self.clock.started_at(),
            duration: self.clock.elapsed(),
            after,
            backlog,
            dry_run: self.options.dry_run,
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
}
