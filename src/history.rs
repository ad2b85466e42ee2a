//! The run history: one record per run (`/invoke` or `sweep`, dry runs too, marked as such), appended to
//! `CLEANUP_HISTORY_COLLECTION` in the blacklist's database through the backend that ran the sweep, and kept
//! `CLEANUP_HISTORY_DAYS` by a TTL index on `started_at`. `status` reads it back.
//!
//! A record is `{kind: "jwt-token-cleaner-run", schema: 1, started_at, ended_at, duration_ms, trigger, request_id,
//! dry_run, backend, fallback_reason, outcome, cleaned_count, memory_saved_bytes, expired_remaining, complete, backlog:
//! {expired, expired_at_least, oldest_expired_age_seconds} | null, error, version, targets?, held_by?}`:
//! [`RunRecord`]'s fields, derived (serde, with BSON's serializer), after the marker and the layout version. Reading is
//! strict: anything else in the collection (another program's documents, a hand edit) is skipped and counted, never
//! trusted and never fatal.

use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson, Document};
use serde::{Deserialize, Serialize};

use crate::sweep::backlog::Backlog;
use crate::sweep::{SweepFailure, SweepReport};

/// What marks a document as a run record.
const KIND: &str = "jwt-token-cleaner-run";

/// The fields a record is read back with: nothing else of a stored document is fetched, so that a document padded
/// with an extra field cannot swell `status` (BENCHMARKS.md, "Figures behind the code").
const FIELDS: [&str; 20] = [
    "kind",
    "schema",
    "started_at",
    "ended_at",
    "duration_ms",
    "trigger",
    "request_id",
    "dry_run",
    "backend",
    "fallback_reason",
    "outcome",
    "cleaned_count",
    "memory_saved_bytes",
    "expired_remaining",
    "complete",
    "backlog",
    "error",
    "version",
    "targets",
    "held_by",
];

/// How far past now a record may be dated and still be read as a recent run (other instances' clocks). A record
/// dated later is set aside and counted: one record dated 2099 once turned `failing` into `ok`.
pub const FUTURE_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// The largest run record `status` reads, in BSON bytes of the fields it reads ([`FIELDS`]; other fields are
/// never fetched). A real record stays far below it, even a run over the most targets a run may have, each with an
/// error excerpt; a padded one is not read at all, so that padded records cannot take `status` to hundreds of
/// megabytes (BENCHMARKS.md, "Figures behind the code").
pub const MAX_RECORD_BYTES: i64 = 256 * 1024;

/// The size in bytes of what `status` reads of a record, for a filter's `$expr` (`$bsonSize` of the projected
/// fields: a missing one adds nothing).
fn read_size() -> Document {
    let fields: Document = FIELDS.iter().map(|field| (field.to_string(), Bson::String(format!("${field}")))).collect();
    doc! { "$bsonSize": fields }
}

/// The most recent `limit` run records started within `window` (after its start, at or before its end), of at most
/// [`MAX_RECORD_BYTES`] (documents without the run record's marker are not read at all: foreign documents cannot
/// push the runs out).
pub fn recent_query(window: (Option<DateTime<Utc>>, DateTime<Utc>), limit: u32) -> crate::store::RunQuery {
    let date = |at: DateTime<Utc>| mongodb::bson::DateTime::from_millis(at.timestamp_millis());
    let mut started = doc! { "$lte": date(window.1) };
    if let Some(after) = window.0 {
        started.insert("$gt", date(after));
    }
    crate::store::RunQuery {
        filter: doc! { "kind": KIND, "started_at": started, "$expr": { "$lte": [read_size(), MAX_RECORD_BYTES] } },
        projection: FIELDS.iter().map(|field| (field.to_string(), Bson::Int32(1))).collect(),
        limit,
    }
}

/// Run records dated more than [`FUTURE_SKEW`] after `now`, at most `limit` of them, their `_id` only.
pub fn future_query(now: DateTime<Utc>, limit: u32) -> crate::store::RunQuery {
    let latest = mongodb::bson::DateTime::from_millis((now + FUTURE_SKEW).timestamp_millis());
    crate::store::RunQuery {
        filter: doc! { "kind": KIND, "started_at": { "$gt": latest } },
        projection: doc! { "_id": 1 },
        limit,
    }
}

/// Run records over [`MAX_RECORD_BYTES`], at most `limit` of them, their `_id` only.
pub fn oversized_query(limit: u32) -> crate::store::RunQuery {
    crate::store::RunQuery {
        filter: doc! { "kind": KIND, "$expr": { "$gt": [read_size(), MAX_RECORD_BYTES] } },
        projection: doc! { "_id": 1 },
        limit,
    }
}

/// The record's layout version.
const SCHEMA: i32 = 1;

/// An enum whose variants each have one name, said once here: in records, in `status`, in JSON and in the refusal
/// of an unknown one (its `Serialize` and `Deserialize`). A macro rather than serde's renames: spans and `status`'s
/// text need each name as a `&'static str` (`as_str`), and `status` lists them (`ALL`), which a derive does not give.
macro_rules! named {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every variant.
            pub const ALL: &[$name] = &[$($name::$variant),*];

            /// Its name in records.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The variant of that name; else an error that lists the names.
            fn parse(field: &str, name: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("{field} is not one of {}", names.join(", "))
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = String::deserialize(deserializer)?;
                Self::parse(&format!("{name:?}"), &name).map_err(serde::de::Error::custom)
            }
        }
    };
}

named! {
    /// What started a run.
    pub enum Trigger {
        /// An FC timer trigger (the invoke body is a timer event).
        Timer = "timer",
        /// A manual `InvokeFunction` (any other invoke body).
        Manual = "manual",
        /// `jwt-token-cleaner sweep`.
        Cli = "cli",
    }
}

named! {
    /// How a run ended.
    pub enum Outcome {
        /// Every expired entry swept (or, in a dry run, counted).
        Success = "success",
        /// It worked, but left expired entries for the next run (`complete: false`).
        Partial = "partial",
        /// It stopped on an error.
        Error = "error",
        /// It did not sweep: another run held the lease (`crate::lease`).
        Skipped = "skipped",
    }
}

impl Outcome {
    /// True for a run that did its work (all of it or part of it). A skipped run did none: a stretch of them is
    /// no more a sign of life than a stretch of failures.
    pub fn worked(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Partial)
    }
}

/// The backlog a record keeps: the sums, not the lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacklogRecord {
    /// Expired entries still there (counted to a limit).
    pub expired: u64,
    /// The count stopped at the limit.
    #[serde(default)]
    pub expired_at_least: bool,
    /// The oldest expired entry's age, in seconds.
    pub oldest_expired_age_seconds: Option<u64>,
}

impl From<&Backlog> for BacklogRecord {
    fn from(backlog: &Backlog) -> Self {
        Self {
            expired: backlog.expired,
            expired_at_least: backlog.expired_at_least,
            oldest_expired_age_seconds: backlog.oldest_expired_age_seconds,
        }
    }
}

/// One run: as stored (with [`KIND`] and [`SCHEMA`] before it), as read back, and as `status --json` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When it started (RFC 3339 in JSON, a Date in the collection: see [`stamp`]).
    #[serde(with = "stamp")]
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(with = "stamp")]
    pub ended_at: DateTime<Utc>,
    /// Wall time.
    pub duration_ms: u64,
    /// What started it.
    pub trigger: Trigger,
    /// The invocation's request id (FC's `x-fc-request-id`, or `cli-…`).
    pub request_id: String,
    /// Nothing was deleted on purpose.
    pub dry_run: bool,
    /// The backend(s) that did the work.
    pub backend: String,
    /// Why the HTTP API was abandoned, if it was.
    pub fallback_reason: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Entries it really deleted.
    pub cleaned_count: u64,
    /// Their bytes.
    pub memory_saved_bytes: u64,
    /// Expired entries left (counted after the sweep); null after an error.
    pub expired_remaining: Option<u64>,
    /// Every expired entry swept.
    pub complete: bool,
    /// The backlog after the run; null when it was not measured.
    pub backlog: Option<BacklogRecord>,
    /// What went wrong (scrubbed, as in the answer).
    pub error: Option<String>,
    /// The program's version.
    #[serde(default)]
    pub version: String,
    /// With `CLEANUP_TARGETS`: each target's part (absent from records of a single target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetRecord>,
    /// A skipped run: the request id of the run that held the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

/// One target's part of a recorded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    /// The target's name.
    pub name: String,
    /// Entries it deleted.
    pub cleaned_count: u64,
    /// Every expired entry of it went.
    pub complete: bool,
    /// Its backlog at the end of its part; `None` when it failed.
    pub backlog: Option<BacklogRecord>,
    /// Why it failed; `None` when it did not.
    pub error: Option<String>,
}

impl RunRecord {
    /// True when a target of the run failed, even if the others worked: the heartbeat then pings `/fail`, so one
    /// silently broken target alerts.
    pub fn a_target_failed(&self) -> bool {
        self.targets.iter().any(|t| t.error.is_some())
    }
}

/// A record's dates: RFC 3339 text where the format is read by people (`status --json`), a BSON Date in the
/// collection (the TTL index on `started_at` removes only Dates, and the history's queries compare Dates). The
/// stored document is written by BSON's binary serializer, which says it is not human-readable.
mod stamp {
    use chrono::{DateTime, Utc};
    use mongodb::bson;
    use serde::{Deserialize, Serialize};

    pub fn serialize<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&crate::sweep::report::rfc3339(*at))
        } else {
            bson::DateTime::from_millis(at.timestamp_millis()).serialize(serializer)
        }
    }

    /// Records are only read from the collection: a Date, nothing else.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let at = bson::DateTime::deserialize(deserializer)?;
        DateTime::from_timestamp_millis(at.timestamp_millis())
            .ok_or_else(|| serde::de::Error::custom("a date out of range"))
    }
}

impl RunRecord {
    /// The record of a run that answered `report`, triggered by `trigger`, ending at `ended_at`.
    pub fn of_report(
        report: &SweepReport,
        started_at: DateTime<Utc>,
        ended_at: DateTime<Utc>,
        trigger: Trigger,
    ) -> Self {
        Self {
            started_at,
            ended_at,
            duration_ms: report.duration_ms,
            trigger,
            request_id: report.request_id.clone(),
            dry_run: report.dry_run,
            backend: report.backend.clone(),
            fallback_reason: report.fallback_reason.clone(),
            outcome: match (&report.skipped, report.complete) {
                (Some(_), _) => Outcome::Skipped,
                (None, true) => Outcome::Success,
                (None, false) => Outcome::Partial,
            },
            cleaned_count: report.cleaned_count,
            memory_saved_bytes: report.memory_saved_bytes,
            expired_remaining: report.expired_remaining.filter(|_| report.skipped.is_none()),
            complete: report.complete,
            backlog: report.backlog.as_ref().map(BacklogRecord::from),
            error: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
            targets: report
                .targets
                .iter()
                .flatten()
                .map(|t| TargetRecord {
                    name: t.name.clone(),
                    cleaned_count: t.cleaned_count,
                    complete: t.complete,
                    backlog: t.backlog.as_ref().map(BacklogRecord::from),
                    error: t.error.clone(),
                })
                .collect(),
            held_by: report.skipped.as_ref().map(|s| s.held_by.clone()),
        }
    }

    /// The record of a run that failed.
    pub fn of_failure(
        failure: &SweepFailure,
        started_at: DateTime<Utc>,
        ended_at: DateTime<Utc>,
        trigger: Trigger,
        request_id: &str,
        dry_run: bool,
        fallback_reason: Option<String>,
    ) -> Self {
        let duration_ms = u64::try_from((ended_at - started_at).num_milliseconds()).unwrap_or(0);
        Self {
            started_at,
            ended_at,
            duration_ms,
            trigger,
            request_id: request_id.to_string(),
            dry_run,
            backend: failure.backend.clone(),
            fallback_reason,
            outcome: Outcome::Error,
            cleaned_count: failure.cleaned_count,
            memory_saved_bytes: failure.memory_saved_bytes,
            expired_remaining: None,
            complete: false,
            backlog: None,
            error: Some(failure.error.clone()),
            version: env!("CARGO_PKG_VERSION").to_string(),
            targets: Vec::new(),
            held_by: None,
        }
    }

    /// The document stored: the marker and the layout version, then the record's fields.
    pub fn to_document(&self) -> Result<Document, mongodb::bson::ser::Error> {
        use serde::ser::Error as _;
        let fields = mongodb::bson::to_raw_document_buf(self)?;
        let mut document = doc! { "kind": KIND, "schema": SCHEMA };
        document.extend(fields.to_document().map_err(mongodb::bson::ser::Error::custom)?);
        Ok(document)
    }

    /// Reads a stored record; anything that is not one says why (the field, and what is wrong with it).
    pub fn from_document(document: &Document) -> Result<Self, String> {
        if document.get_str("kind").ok() != Some(KIND) {
            return Err("not a run record (no \"kind\": \"jwt-token-cleaner-run\")".into());
        }
        let deserializer = mongodb::bson::Deserializer::new(Bson::Document(document.clone()));
        serde_path_to_error::deserialize(deserializer).map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        RunRecord {
            started_at: at,
            ended_at: at + chrono::Duration::seconds(3),
            duration_ms: 3000,
            trigger: Trigger::Timer,
            request_id: "r-1".into(),
            dry_run: false,
            backend: "mongodb".into(),
            fallback_reason: None,
            outcome: Outcome::Partial,
            cleaned_count: 5000,
            memory_saved_bytes: 1_234_567,
            expired_remaining: Some(12),
            complete: false,
            backlog: Some(BacklogRecord { expired: 12, expired_at_least: false, oldest_expired_age_seconds: Some(90) }),
            error: None,
            version: "0.1.0".into(),
            targets: Vec::new(),
            held_by: None,
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let record = record();
        assert_eq!(RunRecord::from_document(&record.to_document().unwrap()), Ok(record.clone()));
        let failed = RunRecord { outcome: Outcome::Error, error: Some("x".into()), backlog: None, ..record.clone() };
        assert_eq!(RunRecord::from_document(&failed.to_document().unwrap()), Ok(failed));
        let skipped = RunRecord {
            outcome: Outcome::Skipped,
            held_by: Some("r-0".into()),
            expired_remaining: None,
            backlog: None,
            ..record
        };
        assert_eq!(RunRecord::from_document(&skipped.to_document().unwrap()), Ok(skipped));
    }

    /// What `status` reads of a record is what a record holds: a field added to the struct and not to [`FIELDS`]
    /// would be written and never read back.
    #[test]
    fn the_projection_is_the_record() {
        let target = TargetRecord { name: "a".into(), cleaned_count: 1, complete: true, backlog: None, error: None };
        let full = RunRecord { targets: vec![target], held_by: Some("r-0".into()), ..record() };
        let stored: Vec<String> = full.to_document().unwrap().keys().cloned().collect();
        assert_eq!(stored, FIELDS);
        let document = full.to_document().unwrap();
        assert!(matches!(document.get("started_at"), Some(Bson::DateTime(_))), "a Date, for the TTL index");
        assert!(matches!(document.get("cleaned_count"), Some(Bson::Int64(5000))));
    }

    #[test]
    fn foreign_and_malformed_documents_say_why() {
        assert!(RunRecord::from_document(&doc! { "hello": 1 }).unwrap_err().contains("not a run record"));
        let mut doc = record().to_document().unwrap();
        doc.insert("outcome", "maybe");
        assert!(RunRecord::from_document(&doc).unwrap_err().contains("outcome"));
        let mut doc = record().to_document().unwrap();
        doc.insert("started_at", "yesterday");
        assert!(RunRecord::from_document(&doc).unwrap_err().contains("started_at"));
    }

    #[test]
    fn each_name_is_said_once_and_read_back() {
        for &trigger in Trigger::ALL {
            assert_eq!(serde_json::to_value(trigger).unwrap(), trigger.as_str());
            assert_eq!(Trigger::parse("trigger", trigger.as_str()), Ok(trigger));
        }
        for &outcome in Outcome::ALL {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
            assert_eq!(Outcome::parse("outcome", outcome.as_str()), Ok(outcome));
        }
        assert_eq!(
            Outcome::parse("outcome", "maybe"),
            Err("outcome is not one of success, partial, error, skipped".into())
        );
    }

    #[test]
    fn target_sections_read_back_and_a_failed_one_is_seen() {
        let with_targets = RunRecord {
            targets: vec![
                TargetRecord {
                    name: "auth".into(),
                    cleaned_count: 3,
                    complete: true,
                    backlog: Some(BacklogRecord {
                        expired: 0,
                        expired_at_least: false,
                        oldest_expired_age_seconds: None,
                    }),
                    error: None,
                },
                TargetRecord {
                    name: "resets".into(),
                    cleaned_count: 0,
                    complete: false,
                    backlog: None,
                    error: Some("x".into()),
                },
            ],
            ..record()
        };
        assert!(with_targets.a_target_failed());
        assert_eq!(RunRecord::from_document(&with_targets.to_document().unwrap()), Ok(with_targets.clone()));
        assert!(!record().a_target_failed());
        assert!(!record().to_document().unwrap().contains_key("targets"), "a single target's record is today's");
        let mut doc = with_targets.to_document().unwrap();
        doc.insert("targets", vec![Bson::Int32(1)]);
        assert!(RunRecord::from_document(&doc).unwrap_err().contains("targets[0]"));
    }
}
