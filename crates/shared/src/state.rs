//! The state both servers hand their handlers: one allocation, cloned by reference count for each request, and
//! read through `Deref` (`state.users`, `state.backends`). Each server defines what it shares (`Shared`) and
//! names `AppState<Shared>`.

use std::ops::Deref;
use std::sync::Arc;

/// What every handler of a server shares.
pub struct AppState<T>(Arc<T>);

impl<T> AppState<T> {
    /// The state around `shared`.
    pub fn new(shared: T) -> Self {
        Self(Arc::new(shared))
    }
}

impl<T> Clone for AppState<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Deref for AppState<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
