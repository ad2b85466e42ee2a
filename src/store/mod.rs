//! Storage: one trait per job, and the pieces every implementation shares.
//!
//! The sweep never builds a query itself. It asks a [`SweepStore`] to *measure* and to *delete* an
//! [`ExpiryRange`], a half-open interval of one [`Lane`] of expiry values, and to report collection statistics;
//! legacy entries go through a [`LegacyStore`], run records through a [`RunHistory`]. [`filter`] turns a range into
//! the MongoDB filter and pipeline both backends send; [`mongo`] is the direct driver backend, [`http_api`] the
//! DB-operation HTTP API (Atlas Data API v1 shape), [`backends`] the one factory that builds them from the
//! settings, and [`fallback`] chains them: the API first, the direct connection when the API fails; each call through
//! the chain is a span ([`call_span`]). [`deadline`]
//! wraps whichever store a run uses so that no call outlives the run's time budget by more than a stated margin.

pub mod backends;
pub mod call_span;
pub mod deadline;
mod error;
pub mod fallback;
pub mod filter;
pub mod http_api;
pub mod mongo;
pub mod replication;

use async_trait::async_trait;
use mongodb::bson::{Bson, Document};

pub use crate::config::HistorySettings;
pub use error::{ErrorKind, StoreError};
pub use replication::ReplicationLag;

/// How an entry stores its expiry. BSON compares values only within a type bracket, so each lane is swept
/// separately: one `$lt` on a Date would never match a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// A BSON Date.
    Date,
    /// A number of seconds since the epoch (JWT `exp` style); int, long or double, never negative or NaN.
    Seconds,
}

impl Lane {
    /// Both lanes, in sweep order.
    pub const ALL: [Lane; 2] = [Lane::Date, Lane::Seconds];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Date => "date",
            Lane::Seconds => "seconds",
        }
    }

    /// The smallest step a range of this lane can shrink to, in milliseconds.
    pub fn unit_ms(self) -> i64 {
        match self {
            Lane::Date => 1,
            Lane::Seconds => 1000,
        }
    }

    /// The lowest expiry this lane sweeps, in milliseconds since the epoch. Dates before the year 1 are not
    /// representable by every MongoDB-compatible server (nor by the tools that read their output), and numeric
    /// expiries below zero (and NaN) are not valid JWT `exp` values: neither is ever swept.
    pub fn floor_ms(self) -> i64 {
        match self {
            Lane::Date => DATE_FLOOR_MS,
            Lane::Seconds => 0,
        }
    }
}

/// 0001-01-01T00:00:00Z in milliseconds since the epoch.
pub const DATE_FLOOR_MS: i64 = -62_135_596_800_000;

/// Entries of one lane whose expiry lies in `[lo_ms, hi_ms)`, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryRange {
    /// The lane (BSON type bracket).
    pub lane: Lane,
    /// Inclusive lower bound (never below the lane's floor).
    pub lo_ms: i64,
    /// Exclusive upper bound; never later than the sweep's cutoff.
    pub hi_ms: i64,
}

impl ExpiryRange {
    /// Everything of `lane` below `cutoff_ms`: every expired entry of the lane.
    pub fn expired(lane: Lane, cutoff_ms: i64) -> Self {
        Self { lane, lo_ms: lane.floor_ms(), hi_ms: cutoff_ms }
    }
}

/// Count and exact BSON size of the entries in a range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measure {
    /// Number of entries.
    pub count: u64,
    /// Sum of the BSON sizes of those entries (`$bsonSize`).
    pub bytes: u64,
}

/// What one delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Entries it really deleted (on the primary).
    pub count: u64,
    /// False when the delete's write concern (`CLEANUP_WRITE_CONCERN`) was not confirmed within its `wtimeout`:
    /// the entries are gone from the primary, and the replicas had not all caught up.
    pub confirmed: bool,
}

impl Deleted {
    /// `count` entries deleted and confirmed.
    pub fn confirmed(count: u64) -> Self {
        Self { count, confirmed: true }
    }
}

/// Collection-wide numbers, from the server's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectionStats {
    /// Number of entries.
    pub count: u64,
    /// Uncompressed BSON size of all entries, when the server reports it.
    pub size_bytes: Option<u64>,
}

/// The time field of a run record, which its TTL index is on.
pub const HISTORY_TIME_FIELD: &str = "started_at";

/// A read of the run history: which documents, which of their fields, how many.
#[derive(Debug, Clone, PartialEq)]
pub struct RunQuery {
    /// The filter.
    pub filter: Document,
    /// The projection.
    pub projection: Document,
    /// At most this many, newest first.
    pub limit: u32,
}

/// A legacy entry: no usable expiry field, but the raw token.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyEntry {
    /// Its `_id`.
    pub id: Bson,
    /// The raw JWT.
    pub token: String,
    /// Its BSON size.
    pub bytes: u64,
}

/// What a run's report says of the backend that served it. Every store below is also a `Backend`.
pub trait Backend: Send + Sync {
    /// Short name for reports and logs (`"mongodb"`, `"http_api"`; a fallback chain joins the ones it used with
    /// `+`).
    fn backend(&self) -> String;

    /// Why an earlier backend was abandoned during this run, if one was (one line, no secrets).
    fn fallback_reason(&self) -> Option<String> {
        None
    }

    /// False for a backend whose counts are a peer's word (the HTTP API): the sweep then holds every figure of the
    /// run to the collection's size at its start.
    fn vouches_for_counts(&self) -> bool {
        true
    }

    /// The sweep found the current backend's counts impossible (`error`, beyond the run's size bound): a chain
    /// moves to its next backend for the rest of the run, as after any failed call, and answers `Ok`; anything else
    /// gives the error back.
    fn distrust(&self, error: StoreError) -> Result<(), StoreError> {
        Err(error)
    }

    /// The database and collection a call of `op` addresses (the blacklist's, or the run history's for its calls),
    /// for the call's span; empty where the backend does not say.
    fn addresses(&self, op: &str) -> (String, String) {
        let _ = op;
        (String::new(), String::new())
    }
}

/// The sweep's storage: the expired ranges of one blacklist collection. Implementations must be safe to call from
/// concurrent sweeps.
#[async_trait]
pub trait SweepStore: Backend {
    /// Connects and checks that the blacklist can be read.
    async fn check(&self) -> Result<(), StoreError>;

    /// Collection statistics.
    async fn stats(&self) -> Result<CollectionStats, StoreError>;

    /// Count and exact BSON size of the entries in `range`, reading no more than `limit` of them when one is given
    /// (a count that reaches the limit then says only "at least", and the bytes are of those read).
    async fn measure(&self, range: &ExpiryRange, limit: Option<u64>) -> Result<Measure, StoreError>;

    /// Deletes the entries in `range`; returns how many this call really deleted. `at_most` is how many the range
    /// can hold by what the sweep knows (its measured count, or the batch size an unmeasured window was sized
    /// for): a backend that cannot vouch for its count (the HTTP API) refuses a larger one as a contract failure.
    async fn delete(&self, range: &ExpiryRange, at_most: u64) -> Result<Deleted, StoreError>;

    /// Counts the entries in `range` (cheaper than [`measure`](Self::measure) where the server can use the index).
    async fn count(&self, range: &ExpiryRange) -> Result<u64, StoreError>;

    /// Counts the entries in `range`, no further than `limit` (so a huge range is never a long count).
    async fn count_at_most(&self, range: &ExpiryRange, limit: u64) -> Result<u64, StoreError>;

    /// The earliest expiry in `range`, in milliseconds since the epoch; `None` when the range is empty.
    async fn oldest_expiry(&self, range: &ExpiryRange) -> Result<Option<i64>, StoreError>;

    /// Whether an index starts with the expiry field; `None` when this backend cannot tell.
    async fn expiry_indexed(&self) -> Result<Option<bool>, StoreError>;

    /// How far the replicas lag, read by the backend from its own admin answer ([`replication`]), for the sweep's
    /// lag bound (`sweep::replication`).
    async fn replication_lag(&self) -> Result<ReplicationLag, StoreError>;
}

/// Legacy entries of the same collection: no usable expiry field, only the raw token (`crate::sweep::legacy`).
#[async_trait]
pub trait LegacyStore: Backend {
    /// Up to `limit` legacy entries (no Date or numeric expiry, a string `token`) with `_id` above `after`, in
    /// `_id` order.
    async fn legacy_page(&self, after: Option<&Bson>, limit: u32) -> Result<Vec<LegacyEntry>, StoreError>;

    /// Deletes those of `ids` that are still legacy entries; returns how many were deleted.
    async fn delete_legacy(&self, ids: &[Bson]) -> Result<u64, StoreError>;

    /// Writes the expiry field (a Date) of a legacy entry that still has none; returns whether it was written.
    async fn backfill_expiry(&self, id: &Bson, expires_ms: i64) -> Result<bool, StoreError>;
}

/// The run history (`CLEANUP_HISTORY_COLLECTION`): one record per run, which `status` reads back, and the lease
/// that keeps runs from overlapping.
#[async_trait]
pub trait RunHistory: Backend {
    /// Appends one run's record; the direct backend makes sure of its TTL index first.
    async fn record_run(&self, run: &Document) -> Result<(), StoreError>;

    /// The records that `query` selects (its filter and projection), newest first by [`HISTORY_TIME_FIELD`], at
    /// most its limit, as stored (unchecked). `crate::history` writes the queries.
    async fn recent_runs(&self, query: &RunQuery) -> Result<Vec<Document>, StoreError>;

    /// One atomic upsert in the history collection, for the lease (`crate::lease` owns the protocol): `update`
    /// applied to the document `filter` matches, or inserted when none does. An insert that collides with an
    /// existing `_id` is [`LeaseWrite::Refused`] (through the Data API, any refused request: its wording is the
    /// server's, so `crate::lease` reads the document to know).
    async fn write_lease(&self, filter: &Document, update: &Document) -> Result<LeaseWrite, StoreError>;

    /// The one document of the history collection that `filter` matches, as stored (unchecked).
    async fn read_lease(&self, filter: &Document) -> Result<Option<Document>, StoreError>;

    /// Deletes the one document of the history collection that `filter` matches, if any.
    async fn release_lease(&self, filter: &Document) -> Result<(), StoreError>;
}

/// What a [`RunHistory::write_lease`] did.
#[derive(Debug)]
pub enum LeaseWrite {
    /// The document was updated or inserted.
    Written,
    /// The insert collided with another document's `_id`, or the Data API refused the write: the server's error.
    Refused(StoreError),
}

/// A backend's whole surface, which a link of the fallback chain carries: each job's trait above, so that a caller
/// names the one it needs (the sweep a [`SweepStore`], `status` a [`RunHistory`]).
pub trait Store: SweepStore + LegacyStore + RunHistory {}

impl<T: SweepStore + LegacyStore + RunHistory + ?Sized> Store for T {}

/// Implements [`SweepStore`], [`LegacyStore`] and [`RunHistory`] for a wrapper store by sending every call through
/// the wrapper's one helper, `$via!(self, "name", |store| call)` (a macro, so that the call may borrow its arguments). The
/// list of calls is written here once, beside the traits, for every wrapper (`fallback`, `deadline`).
macro_rules! forward_store {
    ($wrapper:ty, $via:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::SweepStore for $wrapper {
            async fn check(&self) -> Result<(), $crate::store::StoreError> {
                $via!(self, "check", |s| s.check())
            }
            async fn stats(&self) -> Result<$crate::store::CollectionStats, $crate::store::StoreError> {
                $via!(self, "stats", |s| s.stats())
            }
            async fn measure(
                &self,
                range: &$crate::store::ExpiryRange,
                limit: Option<u64>,
            ) -> Result<$crate::store::Measure, $crate::store::StoreError> {
                $via!(self, "measure", |s| s.measure(range, limit))
            }
            async fn delete(
                &self,
                range: &$crate::store::ExpiryRange,
                at_most: u64,
            ) -> Result<$crate::store::Deleted, $crate::store::StoreError> {
                $via!(self, "delete", |s| s.delete(range, at_most))
            }
            async fn count(&self, range: &$crate::store::ExpiryRange) -> Result<u64, $crate::store::StoreError> {
                $via!(self, "count", |s| s.count(range))
            }
            async fn count_at_most(
                &self,
                range: &$crate::store::ExpiryRange,
                limit: u64,
            ) -> Result<u64, $crate::store::StoreError> {
                $via!(self, "count_at_most", |s| s.count_at_most(range, limit))
            }
            async fn oldest_expiry(
                &self,
                range: &$crate::store::ExpiryRange,
            ) -> Result<Option<i64>, $crate::store::StoreError> {
                $via!(self, "oldest_expiry", |s| s.oldest_expiry(range))
            }
            async fn expiry_indexed(&self) -> Result<Option<bool>, $crate::store::StoreError> {
                $via!(self, "expiry_indexed", |s| s.expiry_indexed())
            }
            async fn replication_lag(
                &self,
            ) -> Result<$crate::store::replication::ReplicationLag, $crate::store::StoreError> {
                $via!(self, "replication_lag", |s| s.replication_lag())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::LegacyStore for $wrapper {
            async fn legacy_page(
                &self,
                after: Option<&mongodb::bson::Bson>,
                limit: u32,
            ) -> Result<Vec<$crate::store::LegacyEntry>, $crate::store::StoreError> {
                $via!(self, "legacy_page", |s| s.legacy_page(after, limit))
            }
            async fn delete_legacy(&self, ids: &[mongodb::bson::Bson]) -> Result<u64, $crate::store::StoreError> {
                $via!(self, "delete_legacy", |s| s.delete_legacy(ids))
            }
            async fn backfill_expiry(
                &self,
                id: &mongodb::bson::Bson,
                expires_ms: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                $via!(self, "backfill_expiry", |s| s.backfill_expiry(id, expires_ms))
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::RunHistory for $wrapper {
            async fn record_run(&self, run: &mongodb::bson::Document) -> Result<(), $crate::store::StoreError> {
                $via!(self, "record_run", |s| s.record_run(run))
            }
            async fn recent_runs(
                &self,
                query: &$crate::store::RunQuery,
            ) -> Result<Vec<mongodb::bson::Document>, $crate::store::StoreError> {
                $via!(self, "recent_runs", |s| s.recent_runs(query))
            }
            async fn write_lease(
                &self,
                filter: &mongodb::bson::Document,
                update: &mongodb::bson::Document,
            ) -> Result<$crate::store::LeaseWrite, $crate::store::StoreError> {
                $via!(self, "write_lease", |s| s.write_lease(filter, update))
            }
            async fn read_lease(
                &self,
                filter: &mongodb::bson::Document,
            ) -> Result<Option<mongodb::bson::Document>, $crate::store::StoreError> {
                $via!(self, "read_lease", |s| s.read_lease(filter))
            }
            async fn release_lease(&self, filter: &mongodb::bson::Document) -> Result<(), $crate::store::StoreError> {
                $via!(self, "release_lease", |s| s.release_lease(filter))
            }
        }
    };
}
pub(crate) use forward_store;
