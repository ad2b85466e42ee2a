//! Why a storage call failed: one error type for the storage layer, with a [`ErrorKind`] the layers above decide
//! on (the server maps kinds to HTTP statuses in one place, `server::http_status`), a message without secrets, and the
//! error it came from as its `source` when there is one.

use std::sync::Arc;

/// What kind of failure: the fallback chain, the report and the HTTP status decide on this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The store could not be reached (connection refused, timeout, server selection, DNS, the run's deadline).
    Unreachable,
    /// The store refused our credentials.
    Auth,
    /// The store answered with an error.
    Query,
    /// The store answered something that is not what its contract says.
    Protocol,
    /// The store is not the documented API: it misreads what we send, what it answers loses types, it redirects,
    /// or it claims the impossible, so its answers cannot be trusted even when they look well formed.
    Contract,
}

impl ErrorKind {
    /// The kind as a short name: a span's `error.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Auth => "auth",
            ErrorKind::Query => "query",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Contract => "contract",
        }
    }

    /// The start of every message of this kind.
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Unreachable => "database unreachable",
            ErrorKind::Auth => "database authentication failed",
            ErrorKind::Query => "database error",
            ErrorKind::Protocol => "malformed answer",
            ErrorKind::Contract => "the HTTP API does not follow the Data API contract",
        }
    }
}

/// A failed storage call. Messages (and sources) never contain credentials.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", kind.describe())]
pub struct StoreError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// Entries the failed call had deleted nonetheless (a delete the server applied before it found its write
    /// concern unsatisfiable): they are gone, and the report counts them.
    applied: u64,
}

impl StoreError {
    /// A failure of `kind`, said by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None, applied: 0 }
    }

    /// See [`ErrorKind::Unreachable`].
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unreachable, message)
    }

    /// See [`ErrorKind::Auth`].
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }

    /// See [`ErrorKind::Query`].
    pub fn query(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Query, message)
    }

    /// See [`ErrorKind::Protocol`].
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    /// See [`ErrorKind::Contract`].
    pub fn contract(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Contract, message)
    }

    /// The same error, caused by `source` (which must carry no secret either).
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The same error, after the call had deleted `count` entries.
    pub fn after_deleting(mut self, count: u64) -> Self {
        self.applied = count;
        self
    }

    /// Entries the failed call deleted before it failed.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Its message, without the kind's prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same kind and source, with the message replaced (the fallback chain puts every earlier reason in it).
    pub fn reworded(mut self, message: String) -> Self {
        self.message = message;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_start_with_the_kind_and_keep_the_source() {
        let e = StoreError::contract("a redirect").caused_by(std::io::Error::other("inner"));
        assert_eq!(e.to_string(), "the HTTP API does not follow the Data API contract: a redirect");
        assert_eq!(e.kind(), ErrorKind::Contract);
        assert_eq!(std::error::Error::source(&e).map(|s| s.to_string()).as_deref(), Some("inner"));
        let e = e.reworded("earlier; then this".into());
        assert_eq!(e.kind(), ErrorKind::Contract);
        assert!(e.to_string().ends_with("earlier; then this"));
        assert_eq!(StoreError::unreachable("x").to_string(), "database unreachable: x");
    }
}
