//! The deadline: a wrapper store that ends every call still in flight at one instant, whatever the backend.
//!
//! The time budget only stops the sweep from *starting* a batch; a call already sent could run as long as its
//! backend allows (`MONGODB_API_TIMEOUT_SECONDS` up to 120 s, a server sending one byte a second keeps each read
//! alive). One run once answered after 120 s with a 2 s budget, past FC's 60 s function timeout. So a run wraps
//! its store in a [`Deadline`] at `start + budget + CALL_MARGIN`: every call, the confirming counts and the
//! statistics after the budget included, ends by then, and the run answers within `budget + CALL_MARGIN` plus the
//! time it takes to write the answer.

use std::future::Future;
use std::time::Duration;

use mongodb::bson::{Bson, Document};
use tokio::time::Instant;

use super::{BlacklistStore, CollectionStats, ExpiryRange, LegacyEntry, Measure, RunQuery, StoreError};

/// How long past the time budget a run may still take to answer: the batch in flight when the budget ends, the
/// confirming counts and the statistics, then the history write and the alerts. The default budget (50 s) plus
/// this fits FC's default 60 s timeout.
pub const CALL_MARGIN: Duration = Duration::from_secs(5);

/// The part of [`CALL_MARGIN`] kept for what follows the sweep (the history write and the alerts, side by side):
/// the sweep's own calls end this long before the run's deadline. The third review measured a run with a hanging
/// Data API and hanging alert endpoints answer after 22 s on a 2 s budget when these came one after another.
pub const AFTER_RUN: Duration = Duration::from_secs(2);

/// `inner`, with every call ended at `at`.
pub struct Deadline<'a> {
    inner: &'a dyn BlacklistStore,
    at: Instant,
}

impl<'a> Deadline<'a> {
    /// Wraps `inner` so that no call outlives `at`.
    pub fn new(inner: &'a dyn BlacklistStore, at: Instant) -> Self {
        Self { inner, at }
    }

    async fn bounded<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        match tokio::time::timeout_at(self.at, call).await {
            Ok(answer) => answer,
            Err(_) => Err(StoreError::unreachable(format!(
                "{} did not answer before the run's deadline (for a sweep, the time budget plus {} s)",
                self.inner.backend(),
                CALL_MARGIN.as_secs()
            ))),
        }
    }
}

#[async_trait::async_trait]
impl BlacklistStore for Deadline<'_> {
    fn backend(&self) -> String {
        self.inner.backend()
    }

    fn fallback_reason(&self) -> Option<String> {
        self.inner.fallback_reason()
    }

    fn vouches_for_counts(&self) -> bool {
        self.inner.vouches_for_counts()
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.bounded(self.inner.check()).await
    }

    async fn stats(&self) -> Result<CollectionStats, StoreError> {
        self.bounded(self.inner.stats()).await
    }

    async fn measure(&self, range: &ExpiryRange, limit: Option<u64>) -> Result<Measure, StoreError> {
        self.bounded(self.inner.measure(range, limit)).await
    }

    async fn delete(&self, range: &ExpiryRange, at_most: u64) -> Result<u64, StoreError> {
        self.bounded(self.inner.delete(range, at_most)).await
    }

    async fn count(&self, range: &ExpiryRange) -> Result<u64, StoreError> {
        self.bounded(self.inner.count(range)).await
    }

    async fn count_at_most(&self, range: &ExpiryRange, limit: u64) -> Result<u64, StoreError> {
        self.bounded(self.inner.count_at_most(range, limit)).await
    }

    async fn oldest_expiry(&self, range: &ExpiryRange) -> Result<Option<i64>, StoreError> {
        self.bounded(self.inner.oldest_expiry(range)).await
    }

    async fn record_run(&self, run: &Document) -> Result<(), StoreError> {
        self.bounded(self.inner.record_run(run)).await
    }

    async fn recent_runs(&self, query: &RunQuery) -> Result<Vec<Document>, StoreError> {
        self.bounded(self.inner.recent_runs(query)).await
    }

    async fn expiry_indexed(&self) -> Result<Option<bool>, StoreError> {
        self.bounded(self.inner.expiry_indexed()).await
    }

    async fn legacy_page(&self, after: Option<&Bson>, limit: u32) -> Result<Vec<LegacyEntry>, StoreError> {
        self.bounded(self.inner.legacy_page(after, limit)).await
    }

    async fn delete_legacy(&self, ids: &[Bson]) -> Result<u64, StoreError> {
        self.bounded(self.inner.delete_legacy(ids)).await
    }

    async fn backfill_expiry(&self, id: &Bson, expires_ms: i64) -> Result<bool, StoreError> {
        self.bounded(self.inner.backfill_expiry(id, expires_ms)).await
    }
}
