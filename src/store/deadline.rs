//! The deadline: a wrapper store that ends every call still in flight at one instant, whatever the backend.
//!
//! The time budget only stops the sweep from *starting* a batch; a call already sent could run as long as its backend
//! allows (`MONGODB_API_TIMEOUT_SECONDS` up to 120 s, a server sending one byte a second keeps each read alive), and a
//! run once answered long past FC's function timeout (BENCHMARKS.md, "Figures behind the code"). So a run wraps its
//! store in a [`Deadline`] at the run clock's `calls_end` (`crate::clock`): every call, the confirming counts and the
//! statistics after the budget included, ends by then, and the run answers within `budget + CALL_MARGIN` plus the time
//! it takes to write the answer.

use std::future::Future;
use tokio::time::Instant;

use super::{forward_store, Backend, Store, StoreError};
use crate::clock::CALL_MARGIN;

/// `inner`, with every call ended at `at`.
pub struct Deadline<'a> {
    inner: &'a dyn Store,
    at: Instant,
}

impl<'a> Deadline<'a> {
    /// Wraps `inner` so that no call outlives `at`.
    pub fn new(inner: &'a dyn Store, at: Instant) -> Self {
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

impl Backend for Deadline<'_> {
    fn backend(&self) -> String {
        self.inner.backend()
    }

    fn fallback_reason(&self) -> Option<String> {
        self.inner.fallback_reason()
    }

    fn vouches_for_counts(&self) -> bool {
        self.inner.vouches_for_counts()
    }

    fn distrust(&self, error: StoreError) -> Result<(), StoreError> {
        self.inner.distrust(error)
    }
}

/// Every call of the inner store, ended at the deadline.
macro_rules! bounded {
    ($self:ident, $op:literal, |$store:ident| $call:expr) => {{
        let $store = $self.inner;
        $self.bounded($call).await
    }};
}

forward_store!(Deadline<'_>, bounded);
