//! The run's clock: when a run started and its budget, and every instant the run's policy derives from them.
//!
//! A run stops *starting* batches when its budget is spent; the calls still in flight, the confirming counts and
//! the statistics end [`AFTER_RUN`] before the run's deadline, `budget + CALL_MARGIN` after the start, and the
//! history write, the release of the lease and the alerts share what is left. The lease outlasts the whole run.
//! Each of these is a method here, so that the margins are added in one place.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// How long past the time budget a run may still take to answer: the batch in flight when the budget ends, the
/// confirming counts and the statistics, then the history write and the alerts. The default budget (50 s) plus
/// this fits FC's default 60 s timeout.
pub const CALL_MARGIN: Duration = Duration::from_secs(5);

/// The part of [`CALL_MARGIN`] kept for what follows the sweep (the history write and the alerts, side by side):
/// the sweep's own calls end this long before the run's deadline. A run with a hanging Data API and hanging alert
/// endpoints answered long after its budget when these came one after another (BENCHMARKS.md, "The lease").
pub const AFTER_RUN: Duration = Duration::from_secs(2);

/// The time each target's closing work is given: what a single-target run has for it after its budget (the call
/// margin less what is kept for the record and the alerts).
pub const CLOSING: Duration = Duration::from_secs(CALL_MARGIN.as_secs() - AFTER_RUN.as_secs());

/// When a run started (by the wall clock, for its cutoff and its record; by the monotonic clock, for its
/// budget), and its budget.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    started_at: DateTime<Utc>,
    started: Instant,
    budget: Duration,
}

impl RunClock {
    /// A run of `budget` that started at `started_at` by the wall clock (tests pin it to put entries exactly on the
    /// cutoff) and now by the monotonic one.
    pub fn at(started_at: DateTime<Utc>, budget: Duration) -> Self {
        Self { started_at, started: Instant::now(), budget }
    }

    /// When it started, by the wall clock.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// Its time budget.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// How long it has run.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// What is left of the budget.
    pub fn left(&self) -> Duration {
        self.budget.saturating_sub(self.elapsed())
    }

    /// The same run with its budget ended now (its deadlines move with it: take them first).
    pub fn stopped(&self) -> Self {
        Self { budget: self.elapsed(), ..*self }
    }

    /// True once the budget is spent: no batch starts after it.
    pub fn spent(&self) -> bool {
        self.elapsed() >= self.budget
    }

    /// The run's deadline: it answers by then (`budget + CALL_MARGIN` after its start).
    pub fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.started) + self.budget + CALL_MARGIN
    }

    /// When every call of the sweep ends: [`AFTER_RUN`] before the deadline, kept for the record and the alerts.
    pub fn calls_end(&self) -> tokio::time::Instant {
        self.deadline() - AFTER_RUN
    }

    /// When the record, the release of the lease and the alerts must be done: the deadline, and never less than
    /// [`AFTER_RUN`] from now (for a sweep whose calls ran to their own end).
    pub fn after_run_end(&self) -> tokio::time::Instant {
        self.deadline().max(tokio::time::Instant::now() + AFTER_RUN)
    }

    /// How long a run of `budget` may take, every margin included: what its lease must outlast.
    pub fn longest_run(budget: Duration) -> Duration {
        budget + CALL_MARGIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadlines_follow_the_budget_in_order() {
        let before = tokio::time::Instant::now();
        let clock = RunClock::at(Utc::now(), Duration::from_secs(10));
        let after = tokio::time::Instant::now();
        let margin = Duration::from_secs(15);
        assert!(clock.deadline() >= before + margin && clock.deadline() <= after + margin);
        assert_eq!(clock.deadline() - clock.calls_end(), AFTER_RUN);
        assert!(clock.after_run_end() >= clock.deadline());
        assert!(!clock.spent());
        assert!(RunClock::at(Utc::now(), Duration::ZERO).spent());
        assert_eq!(CLOSING + AFTER_RUN, CALL_MARGIN);
    }
}
