//! Several sweeps in one run, in turn: how a run's targets share one time budget (a run without `CLEANUP_TARGETS`
//! has one target, and takes the same turns).
//!
//! **The policy: batches in turn, least served first.** Every target's sweep is opened, in the configured order;
//! then each turn goes to the open sweep that has deleted the fewest entries so far (ties go to the configured
//! order), for one batch ([`Sweep::step`]). A target with nothing left leaves the rotation, is closed at once (its
//! confirming counts, statistics and backlog) and leaves its time to the others; a target that fails leaves it with
//! its error, and the others go on. Batches stop early enough to keep the open targets' closing work inside the
//! budget (`reserve`), and each is then closed in turn, by the run's one deadline; a stopped target's closing
//! that the deadline cuts reports what is left as unknown, it does not fail the target (`Sweep::close`).
//!
//! Why this and not an equal share each, one target after another (the first policy, measured in BENCHMARKS.md): a
//! target's last batch and its closing work ran past its share and took the time of the targets after it, and
//! with a budget of a third of the work two of four targets got nothing. In turn, every target has its first batch
//! before any target has its second, no target gets more than one batch ahead of the least served one that still
//! has expired entries, and no target's closing work is inside anyone's turn. Entries, not time, decide whose turn
//! it is, so the guarantee holds on a loaded machine too (a test pins it without a clock): the shares of a run are
//! equal to within one batch. The price: a slow target (no index, a distant database) takes longer turns, and the
//! others wait for them; they still get every other turn, so it slows them and never stops them. Its warning
//! ("no index on ...") says what to do.

use std::time::Duration;

use tracing::Instrument;

use super::report::TargetOutcome;
use super::{Done, Progress, Sweep, SweepFailure, SweepReport, Turn};
use crate::clock::{RunClock, CLOSING};

/// One target's sweep in a run.
pub struct Entry<'a> {
    /// The target's name.
    pub name: String,
    /// Its sweep, opened (or the failure that kept it from opening).
    pub sweep: Result<Sweep<'a>, SweepFailure>,
    /// Its span, entered for each of its turns: every line of its sweep names it, and its batches are its children.
    pub span: tracing::Span,
}

enum Slot<'a> {
    /// In the rotation.
    Open(Sweep<'a>),
    /// Closed, or failed.
    Ended(Result<SweepReport, SweepFailure>),
    /// Being moved between the two.
    Moving,
}

/// The closing work kept inside the budget while `open` sweeps are still open: [`CLOSING`] for each but one (the last
/// closes in the margin after the budget, as a single target does), never more than a quarter of the budget. On MongoDB
/// closing counts read the index only and take milliseconds, so the reserve is mostly budget given back to the next
/// run; on the test server a stopped target's closing reads what is left, seconds for a large rest (BENCHMARKS.md,
/// "Figures behind the code"), more than any reserve that leaves the batches their time, and a closing the run's
/// deadline cuts reports what is left as unknown (`Sweep::close`).
fn reserve(open: usize, budget: Duration) -> Duration {
    let others = u32::try_from(open.saturating_sub(1)).unwrap_or(u32::MAX);
    CLOSING.saturating_mul(others).min(budget / 4)
}

/// Steps `entries` in turn until none has anything left to do in this run (see the module doc), telling `progress`
/// the run's totals after each batch, and closes each as it ends. `clock` and `batch_size` are the
/// run's: batches stop early enough to leave the open sweeps their closing time ([`CLOSING`]) inside the budget,
/// and each target's batch is the run's divided among the targets still open, so that a round of turns deletes
/// about one batch however many have ended (dividing by every configured target, two busy targets beside 18 empty
/// ones swept a tenth of a batch a turn for the whole run).
pub async fn in_turn(
    entries: Vec<Entry<'_>>,
    clock: &RunClock,
    batch_size: u32,
    request_id: &str,
    progress: &dyn Progress,
) -> Vec<TargetOutcome> {
    let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    let spans: Vec<tracing::Span> = entries.iter().map(|e| e.span.clone()).collect();
    let mut slots: Vec<Slot<'_>> = entries
        .into_iter()
        .map(|e| match e.sweep {
            Ok(sweep) => Slot::Open(sweep),
            Err(failure) => Slot::Ended(Err(failure)),
        })
        .collect();
    let mut stopped = false;
    loop {
        let open = |s: &Slot<'_>| match s {
            Slot::Open(sweep) => Some(sweep.entries_done()),
            _ => None,
        };
        let count = slots.iter().filter_map(open).count();
        if !stopped && clock.elapsed() + reserve(count, clock.budget()) >= clock.budget() {
            // Every open sweep stops starting batches now: what is left of the budget is their closing time.
            stopped = true;
            for slot in &mut slots {
                if let Slot::Open(sweep) = slot {
                    sweep.stop();
                }
            }
        }
        let Some(next) = least_served(slots.iter().map(open)) else { break };
        let Slot::Open(sweep) = &mut slots[next] else { break };
        sweep.resize(share(batch_size, count));
        let span = spans[next].clone();
        match sweep.step().instrument(span.clone()).await {
            Ok(Turn::Batch) => progress.batch(totals(&slots)),
            Ok(Turn::Done) => {
                // Closed as soon as it ends: a target with nothing left does its closing work in its own time.
                let Slot::Open(sweep) = std::mem::replace(&mut slots[next], Slot::Moving) else { break };
                slots[next] = Slot::Ended(sweep.close(request_id).instrument(span).await);
            }
            Err(failure) => slots[next] = Slot::Ended(Err(failure)),
        }
        if let (Slot::Ended(Err(failure)), true) = (&slots[next], names.len() > 1) {
            tracing::warn!(target = %names[next], error = %failure.error, "a target failed; the others go on");
        }
    }
    names
        .into_iter()
        .zip(slots)
        .map(|(name, slot)| {
            let outcome = match slot {
                Slot::Ended(outcome) => outcome,
                // Unreachable: the loop ends when no sweep is open.
                Slot::Open(_) | Slot::Moving => Err(SweepFailure::before_sweep(
                    crate::store::StoreError::query("the sweep was left open"),
                    String::new(),
                )),
            };
            (name, outcome)
        })
        .collect()
}

/// Each open target's batch when `open` targets share the run's `batch_size`.
pub fn share(batch_size: u32, open: usize) -> u32 {
    (batch_size / u32::try_from(open.max(1)).unwrap_or(u32::MAX)).max(1)
}

/// The run's totals so far, every target's.
fn totals(slots: &[Slot<'_>]) -> Done {
    let each = slots.iter().map(|slot| match slot {
        Slot::Open(sweep) => (sweep.entries_done(), sweep.batches()),
        Slot::Ended(Ok(report)) => (report.cleaned_count.saturating_add(report.would_clean_count), report.batches),
        Slot::Ended(Err(failure)) => (failure.cleaned_count, failure.batches),
        Slot::Moving => (0, 0),
    });
    let (entries, batches) = each.fold((0u64, 0u64), |(e, b), (de, db)| (e.saturating_add(de), b.saturating_add(db)));
    Done { entries, batches }
}

/// The index of the least served of `open` sweeps (entries done so far; `None`: not open), the first of equals.
fn least_served(open: impl IntoIterator<Item = Option<u64>>) -> Option<usize> {
    open.into_iter().enumerate().filter_map(|(i, served)| Some((served?, i))).min().map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(entries: u64) -> Option<u64> {
        Some(entries)
    }

    #[test]
    fn the_least_served_goes_next_the_first_of_equals() {
        assert_eq!(least_served([n(30), n(10), n(20)]), Some(1));
        assert_eq!(least_served([n(10), n(10), n(5), n(5)]), Some(2));
        assert_eq!(least_served([n(0), n(0)]), Some(0), "the first round goes in the configured order");
    }

    #[test]
    fn the_closing_work_of_all_open_targets_but_one_is_kept_inside_the_budget() {
        let minute = Duration::from_secs(60);
        assert_eq!(reserve(1, minute), Duration::ZERO, "one target closes in the margin, as a single target does");
        assert_eq!(reserve(4, minute), CLOSING * 3);
        assert_eq!(reserve(40, minute), minute / 4, "never more than a quarter of the budget");
        assert_eq!(reserve(0, minute), Duration::ZERO);
    }

    #[test]
    fn the_batch_is_shared_among_the_open_targets() {
        assert_eq!(share(5000, 20), 250);
        assert_eq!(share(5000, 2), 2500, "once 18 of 20 have ended, the two left share the whole batch");
        assert_eq!(share(5000, 1), 5000);
        assert_eq!(share(3, 10), 1);
        assert_eq!(share(5000, 0), 5000);
    }

    #[test]
    fn closed_sweeps_have_no_turn() {
        assert_eq!(least_served([None, n(50), None]), Some(1));
        assert_eq!(least_served([None, None]), None);
        assert_eq!(least_served(std::iter::empty()), None);
    }
}
