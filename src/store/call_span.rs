//! Each storage call as a client span, named and described by OpenTelemetry's database conventions
//! (`db.system.name`, `db.operation.name`, `db.namespace`, `db.collection.name`; the span is named for the
//! operation), opened by the fallback chain around the call, so that a move to the next backend is an event on
//! it. A Data API call adds its HTTP request as a child (`http_api::transport`).

use tracing::field::Empty;

use super::{Backend, StoreError};

/// The span of one call of `op`, before its backend is known.
pub fn open(op: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db call",
        "otel.name" = op,
        "otel.kind" = "client",
        "db.system.name" = "mongodb",
        "db.operation.name" = op,
        "db.namespace" = Empty,
        "db.collection.name" = Empty,
        backend = Empty,
        "error.type" = Empty,
        "otel.status_code" = Empty,
    )
}

/// Says which backend serves the call (again after a fallback), and what it addresses.
pub fn address(span: &tracing::Span, op: &'static str, store: &dyn Backend) {
    let (database, collection) = store.addresses(op);
    span.record("backend", store.backend());
    if !collection.is_empty() {
        span.record("db.collection.name", collection);
    }
    if !database.is_empty() {
        span.record("db.namespace", database);
    }
}

/// Marks the call failed with `error`'s kind: the last backend failed too (an attempt a fallback retried is the
/// fallback's event, not the call's failure).
pub fn failed(span: &tracing::Span, error: &StoreError) {
    span.record("error.type", error.kind().as_str());
    span.record("otel.status_code", "ERROR");
}

/// The run history's calls (the history and the lease live in its collection); every other call addresses the
/// blacklist.
pub fn is_history_call(op: &str) -> bool {
    matches!(op, "record_run" | "recent_runs" | "write_lease" | "read_lease" | "release_lease")
}
