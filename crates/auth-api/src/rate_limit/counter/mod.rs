//! Where hits are counted: one trait, one file per place ([`memory`], [`redis`]). Each counts a fixed window that
//! opens at a subject's first hit (as Flask-Limiter's fixed window does).

pub mod memory;
pub mod redis;

use std::future::Future;
use std::time::Duration;

use super::limit::Limit;
use super::scope::Scope;

/// A window's count so far (this hit included) and the time left in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Hits counted in the window.
    pub count: u64,
    /// Until it closes.
    pub remaining: Duration,
}

/// Counts hits.
pub trait Counter {
    /// Why a count failed.
    type Error: std::fmt::Display;

    /// Counts one hit on `key` in `scope` (or, without `add`, only reads the count) within windows of `limit`.
    fn count(
        &self,
        scope: Scope,
        key: &str,
        limit: Limit,
        add: bool,
    ) -> impl Future<Output = Result<Window, Self::Error>> + Send;
}
