//! Progress of a long sweep, for whoever watches it: a bar on a terminal, a log line every few seconds elsewhere.
//!
//! The sweep calls [`Progress::batch`] after each batch, with the totals so far; what to show is the caller's
//! choice (the command line draws a bar on a terminal, the server and a piped command log [`LogLines`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{ExpiryRange, Lane, SweepStore};

/// How many expired entries there are below `cutoff_ms`, every lane counted (one indexed count each): the length
/// of a progress bar. 0 where a count fails: a bar is no reason to stop a sweep.
pub async fn expired_total(store: &dyn SweepStore, cutoff_ms: i64) -> u64 {
    let mut total = 0u64;
    for lane in Lane::ALL {
        total = total.saturating_add(store.count(&ExpiryRange::expired(lane, cutoff_ms)).await.unwrap_or(0));
    }
    total
}

/// The totals after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// Entries deleted so far (in a dry run: that would be deleted).
    pub entries: u64,
    /// Batches so far.
    pub batches: u64,
}

/// Receives the totals after each batch.
pub trait Progress: Send + Sync {
    /// Called after each batch.
    fn batch(&self, done: Done);
}

/// Shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn batch(&self, _: Done) {}
}

/// One `info` line at most every `every`: entries so far, the rate, the time since the start.
pub struct LogLines {
    every: Duration,
    started: Instant,
    last: Mutex<Option<Instant>>,
}

impl LogLines {
    /// Lines at most every `every` (zero: after every batch).
    pub fn new(every: Duration) -> Self {
        Self { every, started: Instant::now(), last: Mutex::new(None) }
    }
}

impl Progress for LogLines {
    fn batch(&self, done: Done) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < self.every) {
            return;
        }
        *last = Some(now);
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { done.entries as f64 / elapsed } else { 0.0 };
        tracing::info!(
            entries = done.entries,
            batches = done.batches,
            "sweep progress: {} entr{} in {elapsed:.1} s ({rate:.0}/s)",
            done.entries,
            if done.entries == 1 { "y" } else { "ies" }
        );
    }
}
