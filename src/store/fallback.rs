//! The fallback: an ordered chain of backends for one run (the HTTP API first, then the direct connection).
//!
//! Every call goes to the current backend. When it fails (transport error, timeout, 5xx, 401/403, a 4xx caused by
//! our request, an answer that does not follow the contract), the chain logs why, moves to the next backend for the
//! rest of the run and retries the call there. Work already done stays done and counted: the sweep does not notice
//! the switch, it only sees one more successful call. When the last backend fails too, the error carries every
//! reason.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{forward_store, Backend, Store, StoreError};

struct State {
    current: usize,
    reasons: Vec<String>,
}

/// One run's view of the chain; see the module documentation.
pub struct Fallback {
    chain: Vec<Arc<dyn Store>>,
    state: Mutex<State>,
}

impl Fallback {
    /// One run's view of `chain`, starting at its first backend.
    pub fn new(chain: Vec<Arc<dyn Store>>) -> Self {
        Self { chain, state: Mutex::new(State { current: 0, reasons: Vec::new() }) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The backend calls go to now.
    fn current(&self) -> Result<(usize, Arc<dyn Store>), StoreError> {
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

/// Runs one call on the current backend, moving down the chain on failure; the call is a span (`call_span`), and
/// a move down the chain an event on it, with its reason.
macro_rules! with_fallback {
    ($self:ident, $op:literal, |$store:ident| $call:expr) => {{
        let span = $crate::store::call_span::open($op);
        let call = async {
            loop {
                let (index, $store) = $self.current()?;
                $crate::store::call_span::address(&span, $op, &*$store);
                match $call.await {
                    Ok(value) => break Ok(value),
                    Err(error) => {
                        if let Some(error) = $self.failed(index, error) {
                            $crate::store::call_span::failed(&span, &error);
                            break Err(error);
                        }
                    }
                }
            }
        };
        tracing::Instrument::instrument(call, span.clone()).await
    }};
}

impl Backend for Fallback {
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

    fn distrust(&self, error: StoreError) -> Result<(), StoreError> {
        let (index, _) = self.current()?;
        match self.failed(index, error) {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }
}

forward_store!(Fallback, with_fallback);
