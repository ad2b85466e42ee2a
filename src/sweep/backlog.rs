//! The backlog: how many expired entries are still there, and how old the oldest one is, per lane. It is what
//! tells an operator whether the cleaner keeps up (a backlog that grows across runs, or an oldest entry far older
//! than the schedule, means it does not).
//!
//! Measured cheaply, from the expiry index alone: per lane one count over the expired range that stops at
//! [`BACKLOG_COUNT_LIMIT`] (reported as "at least" beyond it), and one sort-plus-limit-1 for the oldest. Never a
//! scan, and never a long count: on the test server a count holds every lookup for as long as it reads, in
//! proportion to what it matches (`docs/testing.md`; the figures in BENCHMARKS.md, "Figures behind the code"). On
//! MongoDB both read the index only (a `$limit` before `$count` stops the index scan at the limit).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{ExpiryRange, Lane, StoreError, SweepStore};

/// The count of each lane stops here; beyond it the backlog is "at least" this.
pub const BACKLOG_COUNT_LIMIT: u64 = 10_000;

/// One lane's backlog.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LaneBacklog {
    /// `date` or `seconds`.
    pub lane: &'static str,
    /// Expired entries (at most [`BACKLOG_COUNT_LIMIT`]).
    pub expired: u64,
    /// True when the count stopped at the limit: there are at least `expired`.
    pub at_least: bool,
    /// The earliest expiry among them, RFC 3339; null when there are none.
    pub oldest_expiry: Option<String>,
    #[serde(skip)]
    oldest_ms: Option<i64>,
}

/// Every lane's backlog, and their sum.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Backlog {
    /// Expired entries still there, every lane (each counted at most to the limit).
    pub expired: u64,
    /// True when a lane's count stopped at the limit.
    pub expired_at_least: bool,
    /// How long ago the oldest expired entry expired, in seconds; null when there is none.
    pub oldest_expired_age_seconds: Option<u64>,
    /// Per lane.
    pub lanes: Vec<LaneBacklog>,
}

impl Backlog {
    /// The backlog of `lanes`, as seen at `now`.
    pub fn new(lanes: Vec<LaneBacklog>, now: DateTime<Utc>) -> Self {
        let expired = lanes.iter().fold(0u64, |sum, lane| sum.saturating_add(lane.expired));
        let oldest = lanes.iter().filter_map(|lane| lane.oldest_ms).min();
        Self {
            expired,
            expired_at_least: lanes.iter().any(|lane| lane.at_least),
            oldest_expired_age_seconds: oldest.map(|ms| age_seconds(ms, now)),
            lanes,
        }
    }
}

impl Backlog {
    /// The backlog of several collections as one, at `now`: each lane's counts summed, the oldest the oldest.
    pub fn merge(backlogs: &[&Backlog], now: DateTime<Utc>) -> Self {
        let mut lanes: Vec<LaneBacklog> = Vec::new();
        for lane in backlogs.iter().flat_map(|b| b.lanes.iter()) {
            match lanes.iter_mut().find(|l| l.lane == lane.lane) {
                Some(merged) => {
                    merged.expired = merged.expired.saturating_add(lane.expired);
                    merged.at_least |= lane.at_least;
                    if lane.oldest_ms.is_some_and(|ms| merged.oldest_ms.is_none_or(|m| ms < m)) {
                        merged.oldest_ms = lane.oldest_ms;
                        merged.oldest_expiry.clone_from(&lane.oldest_expiry);
                    }
                }
                None => lanes.push(lane.clone()),
            }
        }
        Self::new(lanes, now)
    }
}

/// Seconds from `ms` (since the epoch) to `now`, never negative.
fn age_seconds(ms: i64, now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp_millis().saturating_sub(ms) / 1000).unwrap_or(0)
}

/// Measures the backlog below `cutoff_ms` (an entry is expired below it), at `now`.
pub async fn measure(store: &dyn SweepStore, cutoff_ms: i64, now: DateTime<Utc>) -> Result<Backlog, StoreError> {
    let mut lanes = Vec::with_capacity(Lane::ALL.len());
    for lane in Lane::ALL {
        let range = ExpiryRange::expired(lane, cutoff_ms);
        let counted = store.count_at_most(&range, BACKLOG_COUNT_LIMIT + 1).await?;
        let oldest_ms = if counted > 0 { store.oldest_expiry(&range).await? } else { None };
        lanes.push(LaneBacklog {
            lane: lane.name(),
            expired: counted.min(BACKLOG_COUNT_LIMIT),
            at_least: counted > BACKLOG_COUNT_LIMIT,
            oldest_expiry: oldest_ms.and_then(DateTime::from_timestamp_millis).map(super::format::rfc3339),
            oldest_ms,
        });
    }
    Ok(Backlog::new(lanes, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(name: &'static str, expired: u64, at_least: bool, oldest_ms: Option<i64>) -> LaneBacklog {
        LaneBacklog { lane: name, expired, at_least, oldest_expiry: None, oldest_ms }
    }

    #[test]
    fn lanes_add_up_and_the_oldest_wins() {
        let now = DateTime::from_timestamp(10_000, 0).unwrap();
        let backlog = Backlog::new(
            vec![lane("date", 3, false, Some(9_000_000)), lane("seconds", 10_000, true, Some(4_000_000))],
            now,
        );
        assert_eq!(backlog.expired, 10_003);
        assert!(backlog.expired_at_least);
        assert_eq!(backlog.oldest_expired_age_seconds, Some(6_000));
        let empty = Backlog::new(vec![lane("date", 0, false, None), lane("seconds", 0, false, None)], now);
        assert_eq!((empty.expired, empty.expired_at_least, empty.oldest_expired_age_seconds), (0, false, None));
    }
}
