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

use tokio::time::Instant;

use super::{forward_store, Backend, Store, StoreError};

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
