//! Windows in this process: when each opened, its length and its count. Closed windows are dropped when the map
//! grows, so memory stays bounded by the clients seen within one period.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Counter, Window};
use crate::rate_limit::limit::Limit;
use crate::rate_limit::scope::Scope;

/// When a window opened, its length, and the hits in it.
type OpenWindow = (Instant, Duration, u64);

/// Counts in this process.
#[derive(Default)]
pub struct MemoryCounter {
    windows: Mutex<HashMap<(Scope, String), OpenWindow>>,
}

impl MemoryCounter {
    const PRUNE_ABOVE: usize = 10_000;

    /// [`Counter::count`], which cannot fail here.
    pub fn count_now(&self, scope: Scope, key: &str, limit: Limit, add: bool) -> Window {
        let now = Instant::now();
        // A poisoned lock only means another hit panicked mid-update; the counts are still usable.
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > Self::PRUNE_ABOVE {
            windows.retain(|_, (opened, period, _)| now.duration_since(*opened) < *period);
        }
        let (opened, period, count) = windows.entry((scope, key.to_string())).or_insert((now, limit.period, 0));
        if now.duration_since(*opened) >= *period {
            (*opened, *period, *count) = (now, limit.period, 0);
        }
        if add {
            *count += 1;
        }
        Window { count: *count, remaining: period.saturating_sub(now.duration_since(*opened)) }
    }
}

impl Counter for MemoryCounter {
    type Error = Infallible;

    async fn count(&self, scope: Scope, key: &str, limit: Limit, add: bool) -> Result<Window, Infallible> {
        Ok(self.count_now(scope, key, limit, add))
    }
}
