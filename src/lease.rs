//! One run at a time, across every instance: the lease a run takes before it sweeps.
//!
//! Runs overlap when one outlasts its timer interval, when a manual invoke meets a timer run, when FC retries a
//! failed asynchronous invocation, and when two functions (two regions, a staging copy) share one database. They
//! would be safe (nothing is claimed twice), but they double the load and race each other's windows. So a run
//! first takes the lease (`store::lease`: one atomic write in the run history collection); a run that finds it
//! held does not sweep, and answers 200 with `skipped: true`, the holder and when its lease runs out, so that FC
//! does not retry it. The history records it with the outcome `skipped`.
//!
//! The lease lasts the time budget plus the call margin and [`SLACK`]: the longest a run can take, and then some.
//! The run releases it when it ends; a holder killed mid-run blocks the others only until its lease runs out.
//! Dry runs and `status` never take it; `CLEANUP_LEASE=false` turns it off.
//!
//! **Clocks.** The holder writes `until` with its own clock and the next taker compares it with its own. A holder
//! whose clock is behind by `d` (or a taker whose clock is ahead by `d`) sees the lease run out `d` early: the
//! lease still outlasts the holder's run while `d` is below [`SLACK`] (30 s). FC's instances keep NTP time, well
//! within that. Beyond it, two runs may overlap, which is safe, only wasteful.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::deadline::CALL_MARGIN;
use crate::store::lease::LeaseClaim;

/// What the lease adds to the longest run, and the clock skew between instances it tolerates.
pub const SLACK: Duration = Duration::from_secs(30);

/// How long a run with `budget` holds the lease: its budget, the call margin, and the slack.
pub fn duration(budget: Duration) -> Duration {
    budget + CALL_MARGIN + SLACK
}

/// The claim of run `request_id`, with `budget`, at `now`.
pub fn claim(request_id: &str, budget: Duration, now: DateTime<Utc>) -> LeaseClaim {
    let now_ms = now.timestamp_millis();
    let hold_ms = i64::try_from(duration(budget).as_millis()).unwrap_or(i64::MAX);
    LeaseClaim { holder: request_id.to_string(), now_ms, until_ms: now_ms.saturating_add(hold_ms) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_outlasts_the_longest_run_by_the_slack() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let claim = claim("r1", Duration::from_secs(60), now);
        assert_eq!(claim.holder, "r1");
        assert_eq!(claim.now_ms, 1_700_000_000_000);
        assert_eq!(claim.until_ms - claim.now_ms, (60 + 5 + 30) * 1000);
    }
}
