//! How a report writes instants and sizes: the formats of the answer's `timestamp`, `execution_time` and
//! `memory_saved_mb`, used by the report, the history, `status` and the backlog alike (a module of their own, so
//! that none of those imports another for a format).

use chrono::{DateTime, Utc};

/// `2024-01-15T10:30:00Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2024-01-15 10:30:00`.
pub fn execution_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Bytes as MiB with two decimals.
pub fn megabytes(bytes: u64) -> f64 {
    (bytes as f64 / 1_048_576.0 * 100.0).round() / 100.0
}
