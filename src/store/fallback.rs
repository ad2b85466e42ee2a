//! The fallback: an ordered chain of backends for one run (the HTTP API first, then the direct connection).
//!
//! Every call goes to the current backend. When it fails (transport error, timeout, 5xx, 401/403, a 4xx caused by
//! our request, an answer that does not follow the contract), the chain logs why, moves to the next backend for the
//! rest of the run and retries the call there. Work already done stays done and counted: the sweep does not notice
//! the switch, it only sees one more successful call. When the last backend fails too, the error carries every
//! reason.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mongodb::bson::{Bson, Document};

use super::http_api::HttpApiStore;
use super::mongo::MongoStore;
use super::{BlacklistStore, CollectionStats, ExpiryRange, LegacyEntry, Measure, RunQuery, StoreError};
use crate::config::Settings;

/// The configured backends, long-lived (their connection pools are reused between invocations).
pub struct Backends {
    chain: Vec<Arc<dyn BlacklistStore>>,
}

impl Backends {
    /// The HTTP API when `MONGODB_API_URL` is set, then MongoDB when `DB_URI` is set.
    pub fn from_settings(settings: &Settings) -> Result<Self, StoreError> {
        let mut chain: Vec<Arc<dyn BlacklistStore>> = Vec::new();
        let (collection, field) = (&settings.sweep.collection, &settings.sweep.expires_field);
        if let Some(api) = &settings.api {
            chain.push(Arc::new(
                HttpApiStore::new(api.clone(), collection, field)?.with_history(settings.history.clone()),
            ));
        }
        if let Some(db) = &settings.db {
            chain.push(Arc::new(MongoStore::new(db.clone(), collection, field).with_history(settings.history.clone())));
        }
        Ok(Self::new(chain))
    }

    /// A chain of the given backends, in order.
    pub fn new(chain: Vec<Arc<dyn BlacklistStore>>) -> Self {
        Self { chain }
    }

    /// A fresh chain for one run, starting at the first backend.
    pub fn for_run(&self) -> Fallback {
        Fallback { chain: self.chain.clone(), state: Mutex::new(State { current: 0, reasons: Vec::new() }) }
    }
}

struct State {
    current: usize,
    reasons: Vec<String>,
}

/// One run's view of the chain; see the module documentation.
pub struct Fallback {
    chain: Vec<Arc<dyn BlacklistStore>>,
    state: Mutex<State>,
}

impl Fallback {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The backend calls go to now.
    fn current(&self) -> Result<(usize, Arc<dyn BlacklistStore>), StoreError> {
        let index = self.state().current;
        match self.chain.get(index) {
            Some(store) => Ok((index, Arc::clone(store))),
            None => Err(StoreError::unreachable("no storage backend is configured")),
        }
    }

    /// Records that backend `index` failed with `error`. Returns `None` when the chain moved on (retry the call), or
    /// the final error, carrying every earlier reason, when there is nothing left to try.
    fn failed(&self, index: usize, error: StoreError) -> Option<StoreError> {
        let store = &self.chain[index];
        let mut state = self.state();
        if let Some(next) = self.chain.get(index + 1) {
            let reason = format!("{} failed: {error}", store.backend());
            tracing::warn!(%reason, next = %next.backend(), "falling back");
            state.reasons.push(reason);
            state.current = index + 1;
            return None;
        }
        if state.reasons.is_empty() {
            return Some(error);
        }
        let all = format!("{}; then {} failed: {error}", state.reasons.join("; "), store.backend());
        Some(error.reworded(all))
    }
}

/// Runs one call on the current backend, moving down the chain on failure.
macro_rules! with_fallback {
    ($self:ident, |$store:ident| $call:expr) => {
        loop {
            let (index, $store) = $self.current()?;
            match $call.await {
                Ok(value) => break Ok(value),
                Err(error) => {
                    if let Some(error) = $self.failed(index, error) {
                        break Err(error);
                    }
                }
            }
        }
    };
}

#[async_trait::async_trait]
impl BlacklistStore for Fallback {
    fn backend(&self) -> String {
        let current = self.state().current;
        self.chain.iter().take(current + 1).map(|s| s.backend()).collect::<Vec<_>>().join("+")
    }

    fn vouches_for_counts(&self) -> bool {
        self.chain.iter().all(|store| store.vouches_for_counts())
    }

    fn fallback_reason(&self) -> Option<String> {
        let reasons = &self.state().reasons;
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    async fn check(&self) -> Result<(), StoreError> {
        with_fallback!(self, |s| s.check())
    }

    async fn stats(&self) -> Result<CollectionStats, StoreError> {
        with_fallback!(self, |s| s.stats())
    }

    async fn measure(&self, range: &ExpiryRange, limit: Option<u64>) -> Result<Measure, StoreError> {
        with_fallback!(self, |s| s.measure(range, limit))
    }

    async fn delete(&self, range: &ExpiryRange, at_most: u64) -> Result<u64, StoreError> {
        with_fallback!(self, |s| s.delete(range, at_most))
    }

    async fn count(&self, range: &ExpiryRange) -> Result<u64, StoreError> {
        with_fallback!(self, |s| s.count(range))
    }

    async fn count_at_most(&self, range: &ExpiryRange, limit: u64) -> Result<u64, StoreError> {
        with_fallback!(self, |s| s.count_at_most(range, limit))
    }

    async fn oldest_expiry(&self, range: &ExpiryRange) -> Result<Option<i64>, StoreError> {
        with_fallback!(self, |s| s.oldest_expiry(range))
    }

    async fn record_run(&self, run: &Document) -> Result<(), StoreError> {
        with_fallback!(self, |s| s.record_run(run))
    }

    async fn recent_runs(&self, query: &RunQuery) -> Result<Vec<Document>, StoreError> {
        with_fallback!(self, |s| s.recent_runs(query))
    }

    async fn expiry_indexed(&self) -> Result<Option<bool>, StoreError> {
        with_fallback!(self, |s| s.expiry_indexed())
    }

    async fn legacy_page(&self, after: Option<&Bson>, limit: u32) -> Result<Vec<LegacyEntry>, StoreError> {
        with_fallback!(self, |s| s.legacy_page(after, limit))
    }

    async fn delete_legacy(&self, ids: &[Bson]) -> Result<u64, StoreError> {
        with_fallback!(self, |s| s.delete_legacy(ids))
    }

    async fn backfill_expiry(&self, id: &Bson, expires_ms: i64) -> Result<bool, StoreError> {
        with_fallback!(self, |s| s.backfill_expiry(id, expires_ms))
    }
}
