//! The batch planner: walks one lane from the cutoff towards the past in half-open windows of expiry values,
//! sizing each window so that it holds about `target` entries.
//!
//! Why windows and not "the expiry of the k-th oldest entry": a sorted skip or limit has to walk the index (and on
//! some servers, every matching document) to answer, once per batch, while counting a narrow range costs only
//! what the range holds. The planner learns the density from each window it measures: an empty window grows
//! eightfold (so a gap, or the empty past below the oldest entry, is crossed in a few cheap probes), a crowded one
//! is shrunk before anything is deleted, and otherwise the next width is `width * target / count`.

use crate::store::{ExpiryRange, Lane};

/// Growth factor across an empty window, and the largest change of width between two windows.
const GALLOP: i64 = 8;

/// Where the sweep of one lane stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    lane: Lane,
    hi_ms: i64,
    width_ms: i64,
    target: u64,
    /// The lower end of the last window found too crowded, while the sweep is still inside it: everything that
    /// made it crowded lies between there and the current window, so no window reaches past it. Without this, a
    /// crowded window halved from the top could come out empty (its entries all in the lower half), and the
    /// eightfold growth after an empty window overshot into the crowd again: a paced sweep could spend its whole
    /// budget alternating between the two without deleting anything (seen on the test server).
    crowded_lo_ms: Option<i64>,
}

impl Window {
    /// Starts at `cutoff_ms` (exclusive) with `initial_width_ms`, aiming at `target` entries per window.
    pub fn new(lane: Lane, cutoff_ms: i64, initial_width_ms: i64, target: u64) -> Self {
        let unit = lane.unit_ms();
        let hi_ms = cutoff_ms.max(lane.floor_ms());
        Self {
            lane,
            hi_ms,
            width_ms: round_to_unit(initial_width_ms, unit),
            target: target.max(1),
            crowded_lo_ms: None,
        }
    }

    /// The range to measure (and delete) next.
    pub fn range(&self) -> ExpiryRange {
        let lo_ms = self.hi_ms.saturating_sub(self.width_ms).max(self.lane.floor_ms());
        ExpiryRange { lane: self.lane, lo_ms, hi_ms: self.hi_ms }
    }

    /// True when [`range`](Self::range) reaches the bottom of the lane: once it is done, the lane is done.
    pub fn is_last(&self) -> bool {
        self.range().lo_ms == self.lane.floor_ms()
    }

    /// Aims the following windows at `target` entries (at least one): the time bound lowers it when operations run
    /// long, and raises it again, never above the batch size, when they run fast.
    pub fn set_target(&mut self, target: u64) {
        self.target = target.max(1);
    }

    /// The count above which a window is too crowded to delete (twice the target).
    pub fn crowded_above(&self) -> u64 {
        self.target.saturating_mul(2)
    }

    /// True when a window holding `count` entries is too crowded to delete and can still shrink.
    pub fn too_crowded(&self, count: u64) -> bool {
        count > self.crowded_above() && self.width_ms > self.lane.unit_ms()
    }

    /// Shrinks the current window after it measured `count` entries (more than twice the target).
    pub fn shrink(&mut self, count: u64) {
        let lo_ms = self.range().lo_ms;
        self.crowded_lo_ms = Some(self.crowded_lo_ms.map_or(lo_ms, |known| known.max(lo_ms)));
        let scaled = scale(self.width_ms, self.target, count);
        self.width_ms = round_to_unit(scaled.min(self.width_ms / 2), self.lane.unit_ms());
    }

    /// Moves below the current window, which held `count` entries, and sizes the next one.
    pub fn advance(&mut self, count: u64) {
        self.hi_ms = self.range().lo_ms;
        let grown = self.width_ms.saturating_mul(GALLOP);
        let crowd = self.crowded_lo_ms.filter(|crowded_lo| *crowded_lo < self.hi_ms);
        self.crowded_lo_ms = crowd;
        let next = match (count, crowd) {
            // An empty window inside the crowded one: the crowd is further down. The width gallops as after any
            // empty window, but takes at most half of what is left of the crowded window: whether the next window
            // is empty or crowded, the part of the lane known to hold the crowd halves, so its edge is found in a
            // few steps (a bisection), never by re-reading the whole crowd each time.
            (0, Some(crowded_lo)) => grown.min((self.hi_ms - crowded_lo) / 2),
            (0, None) => grown,
            (_, Some(crowded_lo)) => scale(self.width_ms, self.target, count).min(grown).min(self.hi_ms - crowded_lo),
            (_, None) => scale(self.width_ms, self.target, count).min(grown),
        };
        self.width_ms = round_to_unit(next, self.lane.unit_ms());
    }
}

/// `width * target / count`, without overflow.
fn scale(width: i64, target: u64, count: u64) -> i64 {
    let scaled = i128::from(width) * i128::from(target) / i128::from(count.max(1));
    i64::try_from(scaled).unwrap_or(i64::MAX)
}

/// Rounds down to a whole number of units, never below one unit.
fn round_to_unit(width: i64, unit: i64) -> i64 {
    (width / unit * unit).max(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_windows_gallop_to_the_bottom_of_the_date_lane_in_few_steps() {
        let mut w = Window::new(Lane::Date, 1_700_000_000_000, 60_000, 5000);
        let mut steps = 0;
        while !w.is_last() {
            w.advance(0);
            steps += 1;
            assert!(steps < 40, "too many probes");
        }
        assert_eq!(w.range().lo_ms, crate::store::DATE_FLOOR_MS);
    }

    #[test]
    fn seconds_lane_stops_at_zero() {
        let mut w = Window::new(Lane::Seconds, 10_500, 60_000, 10);
        assert_eq!(w.range(), ExpiryRange { lane: Lane::Seconds, lo_ms: 0, hi_ms: 10_500 });
        assert!(w.is_last());
        w = Window::new(Lane::Seconds, -5, 60_000, 10);
        assert_eq!(w.range().hi_ms, 0);
        assert!(w.is_last());
    }

    #[test]
    fn windows_tile_without_gaps_or_overlap() {
        let mut w = Window::new(Lane::Date, 1_000_000, 1000, 100);
        let mut previous = w.range();
        for count in [0, 50, 400, 100, 7, 0, 0] {
            w.advance(count);
            let next = w.range();
            assert_eq!(next.hi_ms, previous.lo_ms);
            previous = next;
        }
    }

    #[test]
    fn crowded_window_shrinks_towards_the_target() {
        let mut w = Window::new(Lane::Date, 1_000_000, 10_000, 100);
        assert!(w.too_crowded(1_000));
        assert!(!w.too_crowded(200));
        w.shrink(1_000);
        assert_eq!(w.range().hi_ms - w.range().lo_ms, 1_000);
        w.advance(100);
        assert_eq!(w.range().hi_ms, 999_000);
    }

    #[test]
    fn after_a_crowded_window_no_window_reaches_past_it() {
        // A crowded window [0, 10,000) halved from the top comes out empty: its entries are all lower. The next
        // window is the rest of the crowded one, not eight times the empty one.
        let mut w = Window::new(Lane::Date, 64_000, 64_000, 100);
        w.shrink(6_400);
        assert_eq!(w.range(), ExpiryRange { lane: Lane::Date, lo_ms: 63_000, hi_ms: 64_000 });
        w.advance(0);
        assert_eq!(w.range(), ExpiryRange { lane: Lane::Date, lo_ms: 55_000, hi_ms: 63_000 }, "gallops inside");
        w.advance(0);
        assert_eq!(w.range(), ExpiryRange { lane: Lane::Date, lo_ms: 27_500, hi_ms: 55_000 }, "half of what is left");
        w.advance(0);
        assert_eq!(w.range(), ExpiryRange { lane: Lane::Date, lo_ms: 13_750, hi_ms: 27_500 });
        // A crowded one inside: the crowd is now known to be there, and the search narrows to it.
        w.shrink(400);
        assert_eq!(w.range(), ExpiryRange { lane: Lane::Date, lo_ms: 24_063, hi_ms: 27_500 });
        w.advance(0);
        assert_eq!(w.range(), ExpiryRange { lane: Lane::Date, lo_ms: 18_907, hi_ms: 24_063 }, "half of 13,750..24,063");
    }

    #[test]
    fn one_unit_windows_never_shrink() {
        let mut w = Window::new(Lane::Seconds, 100_000, 1_000, 1);
        assert!(!w.too_crowded(1_000_000));
        w.shrink(1_000_000);
        assert_eq!(w.range().hi_ms - w.range().lo_ms, 1_000);
    }
}
