//! `jwt-token-cleaner status` (and the invoke body `{"status": true}`): is the cleaner keeping up?
//!
//! It reads the run history and measures the backlog live, through the same backends and fallback as a sweep,
//! and gives a verdict with the monitoring-plugin convention for exit codes:
//!
//! | verdict | exit | when |
//! |---|---|---|
//! | `ok` | 0 | none of the below |
//! | `behind` | 1 | the backlog grew across the last runs, or the oldest expired entry is older than `--max-backlog-age` |
//! | `failing` | 2 | no successful run within `--max-age`, or the last runs all failed |
//! | `never_ran` | 3 | no real run recorded (dry runs do not count), or the history is off |
//! | `unknown` | 3 | the history could not be read at all |
//!
//! The verdict is computed by [`judge`], a pure function of the records, the live backlog and a clock, so tests
//! pin the clock. [`text`] renders it for people (with a sparkline of the backlog), [`chart`] as an SVG picture.

pub mod chart;
pub mod text;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::history::{Outcome, RunRecord};
use crate::store::{Store, StoreError, SweepStore};
use crate::sweep::backlog::{self, Backlog};
use crate::sweep::report::rfc3339;

/// How many of the most recent runs are read.
pub const RECENT_RUNS: u32 = 50;
/// The backlog's trend is read over the last this many real runs that recorded it.
const TREND_RUNS: usize = 10;
/// The last runs that all failed make the verdict `failing`: this many (or all there are, if fewer).
const FAILING_STREAK: usize = 3;

/// What `status` is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusQuery {
    /// `--max-age` (default 2 h): the last successful run must have ended within it.
    pub max_age: Duration,
    /// `--max-backlog-age` (default 24 h): the oldest expired entry may not be older.
    pub max_backlog_age: Duration,
}

impl Default for StatusQuery {
    fn default() -> Self {
        Self { max_age: Duration::from_secs(2 * 3600), max_backlog_age: Duration::from_secs(24 * 3600) }
    }
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Keeping up.
    Ok,
    /// Running, but not keeping up.
    Behind,
    /// Not running successfully.
    Failing,
    /// No real run on record.
    NeverRan,
    /// The history could not be read.
    Unknown,
}

impl Verdict {
    /// The monitoring-plugin exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Behind => 1,
            Verdict::Failing => 2,
            Verdict::NeverRan | Verdict::Unknown => 3,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Behind => "behind",
            Verdict::Failing => "failing",
            Verdict::NeverRan => "never_ran",
            Verdict::Unknown => "unknown",
        }
    }
}

/// A run, with how long ago it started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunAt {
    /// The record.
    #[serde(flatten)]
    pub run: RunRecord,
    /// Seconds from its start to the check.
    pub age_seconds: u64,
}

/// Which way the backlog moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The last three points each higher.
    Growing,
    /// The last point below the first.
    Shrinking,
    /// Neither.
    Steady,
    /// Fewer than two points.
    Unknown,
}

impl std::fmt::Display for Direction {
    /// The name serde gives it (said once, by the attribute above).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string));
        f.write_str(name.as_deref().unwrap_or("unknown"))
    }
}

/// How the backlog moved across recent runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trend {
    /// Which way.
    pub direction: Direction,
    /// The backlog after each of those runs, oldest first.
    pub points: Vec<u64>,
}

/// Counts of the outcomes of the runs read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    /// Complete runs.
    pub success: u64,
    /// Runs that left work for the next one.
    pub partial: u64,
    /// Failed runs.
    pub error: u64,
    /// Runs that found the lease held and did not sweep.
    pub skipped: u64,
    /// Dry runs (any outcome), which do not count towards the verdict.
    pub dry_run: u64,
}

/// What `status` shows (`--json` prints it as it is).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// The verdict, shown with its exit code beside it (`exit_code`: a function of the verdict, never kept apart).
    #[serde(flatten, serialize_with = "with_exit_code")]
    pub verdict: Verdict,
    /// Why, one line each.
    pub reasons: Vec<Reason>,
    /// When the check ran.
    pub checked_at: String,
    /// The most recent run, dry runs included.
    pub last_run: Option<RunAt>,
    /// The most recent real run that did its work (all or part of it).
    pub last_success: Option<RunAt>,
    /// The outcomes of the runs read.
    pub outcomes: Outcomes,
    /// The backlog now; null when it could not be measured (a reason says why).
    pub backlog: Option<Backlog>,
    /// The backlog across recent runs.
    pub trend: Trend,
    /// The runs read, most recent first.
    pub runs: Vec<RunAt>,
    /// Documents in the history collection that are not run records (skipped).
    pub skipped_documents: u64,
    /// The lease, when a run holds it or a stale one stands (null when there is none, or it ran out).
    pub lease: Option<crate::lease::LeaseView>,
    /// With `CLEANUP_TARGETS`: each target's verdict; the one above is then the worst of them and the totals'.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetStatus>,
}

/// One target's verdict, from its sections of the recorded runs and its live backlog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetStatus {
    /// The target's name.
    pub name: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why, one line each.
    pub reasons: Vec<Reason>,
    /// Its backlog now; null when it could not be measured.
    pub backlog: Option<Backlog>,
}

/// A target whose status is asked for: its name, its storage and its cutoff (its own grace).
pub struct TargetProbe<'a> {
    /// The target's name.
    pub name: String,
    /// Where it lives.
    pub store: &'a dyn SweepStore,
    /// Below this an entry of it is expired, in milliseconds since the epoch.
    pub cutoff_ms: i64,
}

impl Verdict {
    /// How bad: the worst verdict of several targets is the run's.
    fn severity(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Behind => 1,
            Verdict::NeverRan => 2,
            Verdict::Unknown => 3,
            Verdict::Failing => 4,
        }
    }
}

/// `target`'s runs as runs of their own: its section of each record that has one.
pub fn runs_of(target: &str, runs: &[RunRecord]) -> Vec<RunRecord> {
    runs.iter()
        .filter_map(|run| {
            let section = run.targets.iter().find(|t| t.name == target)?;
            let outcome = match (&section.error, section.complete) {
                (Some(_), _) => Outcome::Error,
                (None, true) => Outcome::Success,
                (None, false) => Outcome::Partial,
            };
            Some(RunRecord {
                outcome,
                cleaned_count: section.cleaned_count,
                complete: section.complete,
                expired_remaining: None,
                backlog: section.backlog,
                error: section.error.clone(),
                targets: Vec::new(),
                ..run.clone()
            })
        })
        .collect()
}

/// One reason for a verdict, said as text in the report and its JSON. The `ok` verdict's reason is a variant of its
/// own, so that a worse verdict takes it away by its kind, not by matching its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The `ok` verdict's reason, which any worse verdict takes away.
    KeepingUp,
    /// Anything else, as said.
    Said(String),
}

impl std::ops::Deref for Reason {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Reason::KeepingUp => "the cleaner is keeping up",
            Reason::Said(text) => text,
        }
    }
}

impl From<String> for Reason {
    fn from(text: String) -> Self {
        Reason::Said(text)
    }
}

impl From<&str> for Reason {
    fn from(text: &str) -> Self {
        Reason::Said(text.to_string())
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        **self == **other
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

/// Reads the history and the live backlog below `cutoff_ms` through `store`, and judges at `now`. `history`
/// false: the history is off. Fails only when the history cannot be read at all.
pub async fn gather(
    store: &dyn Store,
    history: bool,
    cutoff_ms: i64,
    targets: &[TargetProbe<'_>],
    query: &StatusQuery,
    now: DateTime<Utc>,
) -> Result<StatusReport, StoreError> {
    let read = if history { read_records(store, now).await? } else { Records::default() };
    // With targets, the backlog is theirs (each below its own cutoff), summed; else the one collection's.
    let mut per_target = Vec::with_capacity(targets.len());
    for target in targets {
        per_target.push(backlog::measure(target.store, target.cutoff_ms, now).await);
    }
    let (backlog, backlog_error) = if targets.is_empty() {
        match backlog::measure(store, cutoff_ms, now).await {
            Ok(backlog) => (Some(backlog), None),
            Err(e) => (None, Some(format!("the backlog could not be measured: {e}"))),
        }
    } else {
        let measured: Vec<&Backlog> = per_target.iter().filter_map(|b| b.as_ref().ok()).collect();
        match measured.len() == targets.len() {
            true => (Some(Backlog::merge(&measured, now)), None),
            false => (None, Some("the backlog of every target could not be measured".to_string())),
        }
    };
    let target_runs: Vec<Vec<RunRecord>> = targets.iter().map(|t| runs_of(&t.name, &read.runs)).collect();
    let mut report = judge(read.runs.clone(), backlog, query, now);
    for ((target, measured), runs) in targets.iter().zip(per_target).zip(target_runs) {
        report.add_target(&target.name, runs, measured, query, now);
    }
    if history {
        match crate::lease::inspect(store, now).await {
            Ok(lease) => report.lease = lease,
            Err(e) => report.reasons.push(format!("the lease could not be read: {e}").into()),
        }
    }
    // A lease no run could have written is named at once: the next run takes it over (with a warning), but
    // something wrote it.
    if let Some(why) = report.lease.as_ref().and_then(|lease| lease.stale.clone()) {
        report.worsen(Verdict::Behind);
        report.reasons.push(format!("the lease is stale ({why}): no run wrote it; the next run takes it over").into());
    }
    report.note_set_aside(&read);
    if !history {
        report.reasons.insert(0, "the run history is off (CLEANUP_HISTORY_COLLECTION is empty)".into());
    }
    report.reasons.extend(backlog_error.map(Reason::from));
    Ok(report)
}

/// `verdict` and `exit_code`, side by side in the report's JSON.
fn with_exit_code<S: serde::Serializer>(verdict: &Verdict, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let mut map = serializer.serialize_map(Some(2))?;
    map.serialize_entry("verdict", verdict)?;
    map.serialize_entry("exit_code", &verdict.exit_code())?;
    map.end()
}

impl StatusReport {
    /// The exit code of `status`: the verdict's.
    pub fn exit_code(&self) -> u8 {
        self.verdict.exit_code()
    }

    /// Makes the verdict `verdict` when that is worse (its exit code with it, and "keeping up" no longer said).
    fn worsen(&mut self, verdict: Verdict) {
        if verdict.severity() > self.verdict.severity() {
            self.verdict = verdict;
            self.reasons.retain(|r| *r != Reason::KeepingUp);
        }
    }

    /// Judges one target on its own `runs` and `measured` backlog; the whole verdict is the worst of them.
    fn add_target(
        &mut self,
        name: &str,
        runs: Vec<RunRecord>,
        measured: Result<Backlog, StoreError>,
        query: &StatusQuery,
        now: DateTime<Utc>,
    ) {
        let (backlog, error) = match measured {
            Ok(backlog) => (Some(backlog), None),
            Err(e) => (None, Some(format!("its backlog could not be measured: {e}"))),
        };
        let mut own = judge(runs, backlog, query, now);
        own.reasons.extend(error.map(Reason::from));
        self.worsen(own.verdict);
        if own.verdict != Verdict::Ok {
            self.reasons.extend(own.reasons.iter().map(|r| Reason::from(format!("target {name}: {r}"))));
        }
        self.targets.push(TargetStatus {
            name: name.to_string(),
            verdict: own.verdict,
            reasons: own.reasons,
            backlog: own.backlog,
        });
    }

    /// Says which documents of the history were not judged, and why.
    fn note_set_aside(&mut self, read: &Records) {
        self.skipped_documents = read.malformed;
        if read.malformed > 0 {
            let skipped = read.malformed;
            self.reasons
                .push(format!("{skipped} document(s) in the history are not run records and were skipped").into());
        }
        let set_aside = [
            (
                read.future,
                format!("dated more than {} minutes in the future", crate::history::FUTURE_SKEW.num_minutes()),
            ),
            (read.inconsistent, "that end in the future or before they start".to_string()),
            (read.oversized, format!("over {} KiB", crate::history::MAX_RECORD_BYTES / 1024)),
        ];
        for (count, what) in set_aside {
            if count > 0 {
                let at_least = if count >= RECENT_RUNS as usize { "at least " } else { "" };
                self.reasons.push(format!("{at_least}{count} run record(s) {what} were set aside").into());
            }
        }
    }
}

/// The run records `status` reads, and how many it set aside.
#[derive(Default)]
struct Records {
    /// The records judged: started at most [`crate::history::FUTURE_SKEW`] ahead, ended after they started and
    /// at most as far ahead.
    runs: Vec<RunRecord>,
    /// Documents marked as records that do not parse.
    malformed: u64,
    /// Records that start too far ahead.
    future: usize,
    /// Records that end too far ahead, or before they start.
    inconsistent: usize,
    /// Records over [`crate::history::MAX_RECORD_BYTES`].
    oversized: usize,
}

/// Reads the recent records: the last [`RECENT_RUNS`] up to `now`, and as many dated a little ahead of it (other
/// instances' clocks), so that records dated a few minutes ahead cannot push every real run out of what is read.
async fn read_records(store: &dyn Store, now: DateTime<Utc>) -> Result<Records, StoreError> {
    use crate::history::{future_query, oversized_query, recent_query, FUTURE_SKEW};
    let mut documents = store.recent_runs(&recent_query((None, now), RECENT_RUNS)).await?;
    documents.extend(store.recent_runs(&recent_query((Some(now), now + FUTURE_SKEW), RECENT_RUNS)).await?);
    let mut records = Records {
        future: store.recent_runs(&future_query(now, RECENT_RUNS)).await?.len(),
        oversized: store.recent_runs(&oversized_query(RECENT_RUNS)).await?.len(),
        ..Records::default()
    };
    for document in &documents {
        match RunRecord::from_document(document) {
            Ok(run) if run.ended_at > now + FUTURE_SKEW || run.ended_at < run.started_at => records.inconsistent += 1,
            Ok(run) => records.runs.push(run),
            Err(why) => {
                records.malformed += 1;
                tracing::debug!(why = %crate::untrusted::printable(&why), "skipped a document of the run history");
            }
        }
    }
    Ok(records)
}

/// The report for a history that could not be read.
pub fn unknown(error: &StoreError, now: DateTime<Utc>) -> StatusReport {
    let mut report = judge(Vec::new(), None, &StatusQuery::default(), now);
    report.verdict = Verdict::Unknown;
    report.reasons = vec![format!("the run history could not be read: {error}").into()];
    report
}

/// The verdict on `runs` (any order), the live `backlog`, at `now`.
pub fn judge(
    mut runs: Vec<RunRecord>,
    backlog: Option<Backlog>,
    query: &StatusQuery,
    now: DateTime<Utc>,
) -> StatusReport {
    runs.sort_by_key(|run| std::cmp::Reverse(run.started_at));
    let at = |run: &RunRecord| RunAt {
        run: run.clone(),
        age_seconds: u64::try_from((now - run.started_at).num_seconds()).unwrap_or(0),
    };
    let real: Vec<&RunRecord> = runs.iter().filter(|r| !r.dry_run).collect();
    let last_success = real.iter().find(|r| r.outcome.worked()).copied();
    let outcomes = Outcomes::of(&runs);
    let mut points: Vec<u64> = real.iter().filter_map(|r| r.backlog.map(|b| b.expired)).take(TREND_RUNS).collect();
    points.reverse();
    let direction = Direction::of(&points);
    let (failing, behind) = match real.is_empty() {
        true => (Vec::new(), Vec::new()),
        false => (failing(&real, last_success, query, now), behind(direction, &points, backlog.as_ref(), query)),
    };
    let said = |reasons: Vec<String>| reasons.into_iter().map(Reason::from).collect::<Vec<_>>();
    let (verdict, reasons) = if real.is_empty() {
        let why = if runs.is_empty() { "no run is recorded" } else { "only dry runs are recorded" };
        (Verdict::NeverRan, vec![Reason::from(why)])
    } else if !failing.is_empty() {
        (Verdict::Failing, said([failing, behind].concat()))
    } else if !behind.is_empty() {
        (Verdict::Behind, said(behind))
    } else {
        (Verdict::Ok, vec![Reason::KeepingUp])
    };
    StatusReport {
        verdict,
        reasons,
        checked_at: rfc3339(now),
        last_run: runs.first().map(at),
        last_success: last_success.map(at),
        outcomes,
        backlog,
        trend: Trend { direction, points },
        runs: runs.iter().map(at).collect(),
        skipped_documents: 0,
        lease: None,
        targets: Vec::new(),
    }
}

impl Outcomes {
    /// How `runs` ended, dry runs apart.
    fn of(runs: &[RunRecord]) -> Self {
        let mut outcomes = Outcomes::default();
        for run in runs {
            match (run.dry_run, run.outcome) {
                (true, _) => outcomes.dry_run += 1,
                (false, Outcome::Success) => outcomes.success += 1,
                (false, Outcome::Partial) => outcomes.partial += 1,
                (false, Outcome::Error) => outcomes.error += 1,
                (false, Outcome::Skipped) => outcomes.skipped += 1,
            }
        }
        outcomes
    }
}

impl Direction {
    /// Where the backlog `points` (oldest first) are going: growing takes three rises in a row.
    fn of(points: &[u64]) -> Self {
        match points {
            [] | [_] => Direction::Unknown,
            [.., a, b, c] if a < b && b < c => Direction::Growing,
            [first, .., last] if last < first => Direction::Shrinking,
            _ => Direction::Steady,
        }
    }
}

/// Why the real runs (newest first) say the cleaner is failing: no success within the maximum age, a stretch of
/// skipped runs as long, or a streak of failures.
fn failing(
    real: &[&RunRecord],
    last_success: Option<&RunRecord>,
    query: &StatusQuery,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut failing = Vec::new();
    let ago = |seconds: i64| human(u64::try_from(seconds).unwrap_or(0));
    let max_age = i64::try_from(query.max_age.as_secs()).unwrap_or(i64::MAX);
    match last_success {
        None => failing.push("no real run has succeeded yet".to_string()),
        Some(run) => {
            // A record ends at most a few minutes ahead (see `read_records`); such an end counts as now.
            let age = now - run.ended_at.min(now);
            if age.num_seconds() > max_age {
                failing.push(format!(
                    "no successful run within {} (the last one ended {} ago)",
                    human(query.max_age.as_secs()),
                    ago(age.num_seconds())
                ));
            }
        }
    }
    // A stretch of skipped runs (the lease held) longer than the maximum age is an outage too: the check above
    // fails it, as skipped runs did no work; this says why.
    let skipped: Vec<&&RunRecord> = real.iter().take_while(|r| r.outcome == Outcome::Skipped).collect();
    if let (Some(latest), Some(earliest)) = (skipped.first(), skipped.last()) {
        let stretch = now - earliest.started_at;
        if stretch.num_seconds() > max_age {
            failing.push(format!(
                "the last {} run(s), over {}, were skipped: the lease is held by {} (a lease that never frees is an \
                 outage)",
                skipped.len(),
                ago(stretch.num_seconds()),
                latest.held_by.as_deref().unwrap_or("an unknown run")
            ));
        }
    }
    let streak: Vec<&&RunRecord> = real.iter().filter(|r| r.outcome != Outcome::Skipped).take(FAILING_STREAK).collect();
    if !streak.is_empty() && streak.iter().all(|r| r.outcome == Outcome::Error) {
        failing.push(format!(
            "the last {} run(s) all failed: {}",
            streak.len(),
            streak[0].error.as_deref().unwrap_or("")
        ));
    }
    failing
}

/// Why the cleaner is behind: a growing backlog, or an oldest expired entry past the maximum backlog age.
fn behind(direction: Direction, points: &[u64], backlog: Option<&Backlog>, query: &StatusQuery) -> Vec<String> {
    let mut behind = Vec::new();
    if direction == Direction::Growing {
        behind.push(format!("the backlog grew across the last runs ({})", join(points)));
    }
    if let Some(age) = backlog.and_then(|b| b.oldest_expired_age_seconds) {
        if age > query.max_backlog_age.as_secs() {
            behind.push(format!(
                "the oldest expired entry expired {} ago, more than {}",
                human(age),
                human(query.max_backlog_age.as_secs())
            ));
        }
    }
    behind
}

fn join(points: &[u64]) -> String {
    points.iter().map(u64::to_string).collect::<Vec<_>>().join(" → ")
}

/// `45 s`, `12 min`, `3.0 h`, `2.5 d`.
pub fn human(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{:.1} h", s as f64 / 3600.0),
        s => format!("{:.1} d", s as f64 / 86_400.0),
    }
}

#[cfg(test)]
mod tests;
