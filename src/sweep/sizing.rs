//! The window sizing: how many entries the next window aims at.
//!
//! Without gentleness, the batch size. A gentle sweep (`CLEANUP_MAX_OPERATION_MS` or `CLEANUP_PAUSE_RATIO` set)
//! adds two limits:
//! - the time bound: what one entry costs a measure or a delete is learned from the operations so far, and the
//!   target is what fits the bound ([`OperationClock`]);
//! - a slow start: the target starts at [`START_TARGET`] and doubles after each window with entries, up to the batch
//!   size. Before the first operation nothing is known of the cost, and after a window with nothing in it nothing is
//!   known of the density ahead (the window that follows is eight times wider). Before this, a paced sweep's first
//!   window was measured at the full batch size and held the lookups beside it (BENCHMARKS.md, "Figures behind the
//!   code").
//!
//! The target sizes a window; it does not bound what the window holds. A gentle sweep bounds every read itself
//! (`sweep_lane`): the window's density can be wrong by any factor.

use std::time::Duration;

use super::options::SweepOptions;

/// Where a gentle sweep's target starts, and restarts after an empty window: on the test server, a read of 100
/// entries holds other clients for a few milliseconds (`docs/testing.md`).
pub const START_TARGET: u64 = 100;

/// Estimate mode's first window with entries is measured, for the average entry size: this many entries at most
/// (a measure holds the test server for as long as it reads; an average needs no more).
pub const AVERAGE_SAMPLE: u64 = 1000;

/// The sizing of one lane's windows.
#[derive(Debug)]
pub struct Sizing {
    batch_size: u64,
    /// Estimate mode before the average entry size is known: the window is measured, so it is kept to
    /// [`AVERAGE_SAMPLE`].
    sampling: bool,
    bound: Option<Duration>,
    gentle: bool,
    /// The slow start's ceiling (gentle sweeps only).
    ramp: u64,
    clock: OperationClock,
}

impl Sizing {
    /// The sizing for a sweep run with `options`.
    pub fn new(options: &SweepOptions) -> Self {
        let batch_size = u64::from(options.batch_size.max(1));
        Self {
            batch_size,
            sampling: !options.exact_bytes,
            bound: options.max_operation,
            gentle: options.max_operation.is_some() || options.pause_ratio > 0.0,
            ramp: START_TARGET.min(batch_size),
            clock: OperationClock::default(),
        }
    }

    /// True when every read of a window is bounded before the window is known not to be too crowded (a gentle
    /// sweep: see `sweep_lane`).
    pub fn bounds_reads(&self) -> bool {
        self.gentle
    }

    /// A measure (or a count) of `entries` took `took`.
    pub fn measured(&mut self, took: Duration, entries: u64) {
        self.clock.measured(took, entries);
    }

    /// A delete of `entries` took `took`.
    pub fn deleted(&mut self, took: Duration, entries: u64) {
        self.clock.deleted(took, entries);
    }

    /// Estimate mode: the average entry size is known, windows are no longer measured.
    pub fn sampled(&mut self) {
        self.sampling = false;
    }

    /// After a window with entries: the slow start doubles.
    pub fn grow(&mut self) {
        self.ramp = self.ramp.saturating_mul(2).min(self.batch_size);
    }

    /// After a window with nothing in it: the density ahead is unknown again, so the slow start restarts.
    pub fn restart(&mut self) {
        self.ramp = START_TARGET.min(self.batch_size);
    }

    /// The entries the next window aims at (at least one).
    /// Changes the batch size from the next window on (a run over several targets gives each the run's batch
    /// divided among those still open).
    pub fn resize(&mut self, batch_size: u32) {
        self.batch_size = u64::from(batch_size.max(1));
        self.ramp = self.ramp.min(self.batch_size);
    }

    pub fn get(&self) -> u64 {
        let mut target = self.batch_size;
        if self.sampling {
            target = target.min(AVERAGE_SAMPLE);
        }
        if self.gentle {
            target = target.min(self.ramp);
        }
        if let Some(bound) = self.bound {
            target = target.min(self.clock.fits(bound, self.batch_size));
        }
        target.max(1)
    }
}

/// What one entry costs a measure or a delete, learned from the operations so far (the slower of the two, each
/// an average that weighs the latest operation as much as all before it), for the time bound.
#[derive(Debug, Default)]
struct OperationClock {
    measure_ms_per_entry: Option<f64>,
    delete_ms_per_entry: Option<f64>,
}

impl OperationClock {
    fn measured(&mut self, took: Duration, entries: u64) {
        Self::record(&mut self.measure_ms_per_entry, took, entries);
    }

    fn deleted(&mut self, took: Duration, entries: u64) {
        Self::record(&mut self.delete_ms_per_entry, took, entries);
    }

    fn record(slot: &mut Option<f64>, took: Duration, entries: u64) {
        if entries == 0 {
            return;
        }
        let per_entry = took.as_secs_f64() * 1000.0 / entries as f64;
        *slot = Some(slot.map_or(per_entry, |old| (old + per_entry) / 2.0));
    }

    /// The entries one operation can take and stay under `bound`: the batch size until something is known, never
    /// above it, never below one entry.
    fn fits(&self, bound: Duration, batch_size: u64) -> u64 {
        let per_entry = match (self.measure_ms_per_entry, self.delete_ms_per_entry) {
            (None, None) => return batch_size,
            (a, b) => a.unwrap_or(0.0).max(b.unwrap_or(0.0)),
        };
        if per_entry <= 0.0 {
            return batch_size;
        }
        let fits = (bound.as_secs_f64() * 1000.0 / per_entry).floor() as u64;
        fits.clamp(1, batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FieldPath;

    fn options(pause_ratio: f64, max_operation: Option<Duration>) -> SweepOptions {
        SweepOptions {
            dry_run: false,
            batch_size: 5000,
            time_budget: Duration::from_secs(60),
            grace: Duration::ZERO,
            expires_field: FieldPath::parse("EXPIRES_FIELD", "expires_at").expect("field"),
            legacy_scan_limit: 0,
            legacy_backfill: false,
            pause_ratio,
            max_operation,
            collection_stats: true,
            exact_bytes: true,
            max_replication_lag: None,
        }
    }

    #[test]
    fn estimate_mode_measures_a_sample_first() {
        let mut target = Sizing::new(&SweepOptions { exact_bytes: false, ..options(0.0, None) });
        assert_eq!(target.get(), AVERAGE_SAMPLE);
        target.sampled();
        assert_eq!(target.get(), 5000);
    }

    #[test]
    fn a_default_sweep_aims_at_the_batch_size_from_the_start() {
        let target = Sizing::new(&options(0.0, None));
        assert_eq!(target.get(), 5000);
        assert!(!target.bounds_reads());
    }

    #[test]
    fn a_paced_sweep_starts_small_doubles_and_restarts_after_an_empty_window() {
        let mut target = Sizing::new(&options(1.0, None));
        assert!(target.bounds_reads());
        let mut seen = vec![target.get()];
        for _ in 0..7 {
            target.grow();
            seen.push(target.get());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        target.restart();
        assert_eq!(target.get(), START_TARGET);
    }

    #[test]
    fn the_time_bound_caps_the_slow_start() {
        let mut target = Sizing::new(&options(0.0, Some(Duration::from_millis(40))));
        assert_eq!(target.get(), START_TARGET, "nothing known yet: the slow start's first step");
        target.measured(Duration::from_millis(100), 100);
        for _ in 0..10 {
            target.grow();
        }
        assert_eq!(target.get(), 40, "1 ms an entry, 40 ms bound");
    }
}
