//! The report of a sweep (the `data` of the seed service's answer) and of a failed one, and how their numbers are
//! formatted. Both are built from the run's tally (`sweep::tally`); the envelopes they are answered in belong to
//! the server (`server::envelope`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::backlog::Backlog;
pub use super::format::{execution_time, megabytes, rfc3339};
use crate::store::{CollectionStats, ErrorKind};

/// What is known only once the run is over.
pub(crate) struct RunEnd {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    /// The statistics call's answer; `None` when it is off.
    pub after: Option<CollectionStats>,
    /// The backlog after the run; `None` when it could not be measured.
    pub backlog: Option<Backlog>,
    pub dry_run: bool,
    pub backend: String,
    pub fallback_reason: Option<String>,
    pub request_id: String,
}

/// One target's part of a run over several (`data.targets`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetSection {
    /// The target's name.
    pub name: String,
    /// Entries it deleted (before its failure, if it failed).
    pub cleaned_count: u64,
    /// Entries left in its collection; null when unknown (statistics off, or it failed).
    pub remaining_tokens: Option<u64>,
    /// Bytes of the entries it deleted.
    pub memory_saved_bytes: u64,
    /// Every expired entry of it is gone (false when it failed or ran out of its share of the budget).
    pub complete: bool,
    /// Its backlog at the end; null when it failed.
    pub backlog: Option<Backlog>,
    /// Its warnings.
    pub warnings: Vec<String>,
    /// Why it failed; null when it did not.
    pub error: Option<String>,
}

/// What a finished sweep did and what it left.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SweepReport {
    /// `true` on the wire: a report is a success (failures are a [`SweepFailure`]).
    pub success: True,
    /// Entries this run really deleted (the servers' `deletedCount`s, summed).
    pub cleaned_count: u64,
    /// Entries in the collection after the run; null when the statistics call is off
    /// (`CLEANUP_COLLECTION_STATS=false`).
    pub remaining_tokens: Option<u64>,
    /// BSON bytes of the entries that remain (collection statistics); null when unknown: the statistics call is
    /// off, or the server reports no sizes and this run measured nothing to average.
    pub estimated_memory_usage: Option<u64>,
    /// Exact BSON size of the entries deleted (a `$bsonSize` sum over each batch's range).
    pub memory_saved_bytes: u64,
    /// `memory_saved_bytes` in MiB, two decimals.
    pub memory_saved_mb: f64,
    /// False when a concurrent writer changed a batch between measuring and deleting it (the bytes of that batch
    /// are then pro-rated by the count really deleted), or in estimate mode (`CLEANUP_EXACT_BYTES=false`: bytes are
    /// the count times the average entry size).
    pub memory_saved_exact: bool,
    /// Start of the run, RFC 3339 UTC.
    pub timestamp: String,
    /// Start of the run, `YYYY-MM-DD HH:MM:SS` UTC.
    pub execution_time: String,
    /// Entries in the collection before the run (`remaining_tokens + cleaned_count`); null without statistics.
    pub total_tokens_before: Option<u64>,
    /// Expired entries still in the collection after the run, counted after the sweep (0 when `complete`); null
    /// when the run's deadline cut the count of a run the budget had stopped (and for a skipped run).
    pub expired_remaining: Option<u64>,
    /// True when every expired entry was swept, as a count of each lane below the cutoff confirmed after the sweep
    /// (or, in a dry run, when every expired entry was counted).
    pub complete: bool,
    /// Batches (windows with entries) processed.
    pub batches: u64,
    /// True when nothing was deleted on purpose.
    pub dry_run: bool,
    /// In a dry run: entries that would be deleted; otherwise 0.
    pub would_clean_count: u64,
    /// In a dry run: bytes that would be freed; otherwise 0.
    pub would_free_bytes: u64,
    /// Legacy entries (raw token, no expiry) deleted after verifying their token; included in `cleaned_count`.
    pub legacy_cleaned: u64,
    /// Legacy entries kept because their token could not be verified or has no `exp`.
    pub skipped_unverifiable: u64,
    /// Legacy entries whose expiry field was written (`BACKFILL_EXPIRES_AT=true`).
    pub backfilled: u64,
    /// The backlog after the run: expired entries still there (counted to a limit) and the oldest one's age; null
    /// when it could not be measured (a warning says why).
    pub backlog: Option<Backlog>,
    /// Things the operator should fix, e.g. a missing index on the expiry field.
    pub warnings: Vec<String>,
    /// Which storage did the work: `http_api`, `mongodb`, or `http_api+mongodb` after a fallback.
    pub backend: String,
    /// Why the HTTP API was abandoned during this run (one line, no secrets), else null.
    pub fallback_reason: Option<String>,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// Of that, time spent pausing between batches (`CLEANUP_PAUSE_RATIO`).
    pub paused_ms: u64,
    /// The invocation's request id.
    pub request_id: String,
    /// With `CLEANUP_TARGETS`: each target's part of the run; the fields above are then the totals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<TargetSection>>,
    /// A run that found the lease held (`crate::lease`): `skipped`, `held_by` and `lease_until`, beside zero
    /// counts. Absent from every other report.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Skipped>,
}

/// A field that is `true` on the wire and can be nothing else: the type has no other value, so no path can set it
/// false (a report's `success`, a skipped run's `skipped`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct True;

impl Serialize for True {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(true)
    }
}

/// Why a run did not sweep: another run holds the lease.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skipped {
    /// `true` on the wire.
    pub skipped: True,
    /// The holder's request id.
    pub held_by: String,
    /// When its lease runs out (RFC 3339, the holder's clock).
    pub lease_until: String,
}

/// A sweep that stopped on an error, with what it had really done before.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct SweepFailure {
    /// What went wrong, without secrets: the storage error's message, or every target's when all of them failed.
    pub error: String,
    /// Entries really deleted before the failure.
    pub cleaned_count: u64,
    /// Bytes of those entries.
    pub memory_saved_bytes: u64,
    /// Batches completed before the failure.
    pub batches: u64,
    /// The storage that failed.
    pub backend: String,
    /// What kind of failure (the server answers 503 for an unreachable store, 500 otherwise).
    pub kind: ErrorKind,
    /// The storage error the sweep stopped on (the first target's, when every target failed).
    #[source]
    pub cause: Option<Box<crate::store::StoreError>>,
}

/// The outcome of one target of a run over several.
pub type TargetOutcome = (String, Result<SweepReport, SweepFailure>);

/// A run's targets as one report. Without `CLEANUP_TARGETS` (`sectioned` false) the one target's report is the
/// run's, as it always was; with it, the run's totals and each target's section. `Err` only when every target
/// failed. Totals never say more than the run proved: a total that needs a failed target's number (what is left in
/// it) is null, and `complete` needs every target complete.
pub fn combine(
    mut outcomes: Vec<TargetOutcome>,
    started_at: DateTime<Utc>,
    duration: Duration,
    request_id: &str,
    sectioned: bool,
) -> Result<SweepReport, SweepFailure> {
    if !sectioned && outcomes.len() == 1 {
        if let Some((_, only)) = outcomes.pop() {
            return only;
        }
    }
    let sum = |f: &dyn Fn(&SweepReport) -> u64| {
        outcomes.iter().filter_map(|(_, r)| r.as_ref().ok()).fold(0u64, |a, r| a.saturating_add(f(r)))
    };
    let failed_sum = |f: &dyn Fn(&SweepFailure) -> u64| {
        outcomes.iter().filter_map(|(_, r)| r.as_ref().err()).fold(0u64, |a, r| a.saturating_add(f(r)))
    };
    let all_ok = outcomes.iter().all(|(_, r)| r.is_ok());
    let known = |f: &dyn Fn(&SweepReport) -> Option<u64>| -> Option<u64> {
        if !all_ok {
            return None;
        }
        outcomes.iter().filter_map(|(_, r)| r.as_ref().ok()).try_fold(0u64, |a, r| Some(a.saturating_add(f(r)?)))
    };
    let cleaned = sum(&|r| r.cleaned_count).saturating_add(failed_sum(&|f| f.cleaned_count));
    let bytes = sum(&|r| r.memory_saved_bytes).saturating_add(failed_sum(&|f| f.memory_saved_bytes));
    let batches = sum(&|r| r.batches).saturating_add(failed_sum(&|f| f.batches));
    let Some(first) = outcomes.iter().find_map(|(_, r)| r.as_ref().ok()).cloned() else {
        return Err(every_target_failed(&outcomes, cleaned, bytes, batches));
    };
    let Parts { warnings, fallback, backends, backlogs, sections } = Parts::of(&outcomes);
    let backlog = match all_ok && backlogs.len() == outcomes.len() {
        true => Some(Backlog::merge(&backlogs, started_at + duration)),
        false => None,
    };
    let remaining = known(&|r| r.remaining_tokens);
    Ok(SweepReport {
        success: True,
        cleaned_count: cleaned,
        remaining_tokens: remaining,
        estimated_memory_usage: known(&|r| r.estimated_memory_usage),
        memory_saved_bytes: bytes,
        memory_saved_mb: megabytes(bytes),
        memory_saved_exact: all_ok && outcomes.iter().all(|(_, r)| r.as_ref().is_ok_and(|r| r.memory_saved_exact)),
        timestamp: first.timestamp,
        execution_time: first.execution_time,
        total_tokens_before: remaining.map(|r| r.saturating_add(cleaned)),
        expired_remaining: known(&|r| r.expired_remaining),
        complete: all_ok && outcomes.iter().all(|(_, r)| r.as_ref().is_ok_and(|r| r.complete)),
        batches,
        dry_run: first.dry_run,
        would_clean_count: sum(&|r| r.would_clean_count),
        would_free_bytes: sum(&|r| r.would_free_bytes),
        legacy_cleaned: sum(&|r| r.legacy_cleaned),
        skipped_unverifiable: sum(&|r| r.skipped_unverifiable),
        backfilled: sum(&|r| r.backfilled),
        backlog,
        warnings,
        backend: backends.join(", "),
        fallback_reason: (!fallback.is_empty()).then(|| fallback.join("; ")),
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        paused_ms: sum(&|r| r.paused_ms),
        request_id: request_id.to_string(),
        targets: Some(sections),
        skipped: None,
    })
}

/// The failure of a run whose every target failed: each one's error, and what they did before.
fn every_target_failed(outcomes: &[TargetOutcome], cleaned: u64, bytes: u64, batches: u64) -> SweepFailure {
    let errors: Vec<String> =
        outcomes.iter().filter_map(|(name, r)| r.as_ref().err().map(|f| format!("{name}: {}", f.error))).collect();
    let first = outcomes.iter().find_map(|(_, r)| r.as_ref().err());
    SweepFailure {
        error: format!("every target failed: {}", errors.join("; ")),
        cleaned_count: cleaned,
        memory_saved_bytes: bytes,
        batches,
        backend: first.map(|f| f.backend.clone()).unwrap_or_default(),
        kind: first.map_or(ErrorKind::Query, |f| f.kind),
        cause: first.and_then(|f| f.cause.clone()),
    }
}

/// What a run's report gathers from its targets' outcomes, beside the sums: their warnings (a failed target's error
/// among them), fallback reasons, backends (each once), backlogs and sections.
struct Parts<'a> {
    warnings: Vec<String>,
    fallback: Vec<String>,
    backends: Vec<String>,
    backlogs: Vec<&'a Backlog>,
    sections: Vec<TargetSection>,
}

impl<'a> Parts<'a> {
    fn of(outcomes: &'a [TargetOutcome]) -> Self {
        let mut parts =
            Parts { warnings: vec![], fallback: vec![], backends: vec![], backlogs: vec![], sections: vec![] };
        for (name, outcome) in outcomes {
            match outcome {
                Ok(r) => {
                    parts.warnings.extend(r.warnings.iter().map(|w| format!("{name}: {w}")));
                    if let Some(reason) = &r.fallback_reason {
                        parts.fallback.push(format!("{name}: {reason}"));
                    }
                    if !parts.backends.contains(&r.backend) {
                        parts.backends.push(r.backend.clone());
                    }
                    parts.backlogs.extend(r.backlog.as_ref());
                    parts.sections.push(TargetSection {
                        name: name.clone(),
                        cleaned_count: r.cleaned_count,
                        remaining_tokens: r.remaining_tokens,
                        memory_saved_bytes: r.memory_saved_bytes,
                        complete: r.complete,
                        backlog: r.backlog.clone(),
                        warnings: r.warnings.clone(),
                        error: None,
                    })
                }
                Err(f) => {
                    parts.warnings.push(format!("target {name} failed: {}", f.error));
                    parts.sections.push(TargetSection {
                        name: name.clone(),
                        cleaned_count: f.cleaned_count,
                        remaining_tokens: None,
                        memory_saved_bytes: f.memory_saved_bytes,
                        complete: false,
                        backlog: None,
                        warnings: Vec::new(),
                        error: Some(f.error.clone()),
                    })
                }
            }
        }
        parts
    }
}

/// `1 expired token`, `2 expired tokens`.
pub(crate) fn tokens(count: u64) -> String {
    format!("{count} expired token{}", if count == 1 { "" } else { "s" })
}

impl SweepReport {
    /// The one-line summary.
    pub fn message(&self) -> String {
        if let Some(skipped) = &self.skipped {
            return format!(
                "Skipped: another run ({}) holds the lease until {}; nothing was swept",
                skipped.held_by, skipped.lease_until
            );
        }
        let mut message = if self.dry_run {
            format!("Dry run: {} would be cleaned", tokens(self.would_clean_count))
        } else {
            format!("Cleaned {}", tokens(self.cleaned_count))
        };
        match (self.complete, self.expired_remaining) {
            (true, _) => {}
            (false, Some(left)) => {
                message.push_str(&format!(" (incomplete: {} remain for the next run)", tokens(left)))
            }
            (false, None) => message.push_str(" (incomplete: the rest is left for the next run)"),
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats() {
        let at = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap();
        assert_eq!(rfc3339(at), "2024-01-15T10:30:00Z");
        assert_eq!(execution_time(at), "2024-01-15 10:30:00");
        assert_eq!(megabytes(7500), 0.01);
        assert_eq!(megabytes(3 * 1_048_576 / 2), 1.5);
    }

    #[test]
    fn messages_count_in_the_singular_and_the_plural() {
        assert_eq!(tokens(0), "0 expired tokens");
        assert_eq!(tokens(1), "1 expired token");
        assert_eq!(tokens(2), "2 expired tokens");
    }

    #[test]
    fn a_failure_keeps_the_store_error_it_stopped_on_as_its_source() {
        let error = crate::store::StoreError::unreachable("the server did not answer");
        let failure = SweepFailure::before_sweep(error, "mongodb".into());
        let source = std::error::Error::source(&failure).expect("a source");
        assert_eq!(source.to_string(), failure.to_string());
        assert_eq!(failure.kind, ErrorKind::Unreachable);
        let every = every_target_failed(&[("a".into(), Err(failure))], 0, 0, 0);
        assert!(std::error::Error::source(&every).is_some(), "the first target's error");
        assert!(every.to_string().starts_with("every target failed: a: "), "{every}");
        assert!(every.to_string().ends_with("the server did not answer"), "{every}");
    }
}
