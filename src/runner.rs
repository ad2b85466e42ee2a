//! One run, from start to record: what `/invoke` and `jwt-token-cleaner sweep` both do, and `status` beside it.
//!
//! A real run tells the alerts it started (beside the sweep, never in its way), sweeps through a fresh fallback
//! chain, then appends its record to the run history through the backend that did the work and tells the alerts
//! how it ended, those two side by side. Writing the record or alerting can fail without failing the run: a
//! record that could not be written is a warning in the report, an alert that could not be sent is a log line.
//! Dry runs are recorded (marked as such) but do not alert: they keep nothing clean.
//!
//! The whole run answers by one deadline, `budget + CALL_MARGIN` after it started (`store::deadline`): the sweep's
//! calls end [`AFTER_RUN`] before it, and what is still unsent of the record and the alerts at the deadline is
//! dropped with a log line. FC's function timeout is the budget plus 10 s by default; an answer after it is lost.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::alerts::Alerts;
use crate::config::{LegacySettings, Settings, SweepSettings};
use crate::history::{RunRecord, Trigger};
use crate::status::{self, StatusQuery, StatusReport};
use crate::store::backends::Backends;
use crate::store::deadline::{Deadline, AFTER_RUN, CALL_MARGIN};
use crate::store::{Backend, RunHistory, StoreError};
use crate::sweep::{self, Progress, SweepFailure, SweepOptions, SweepOverrides, SweepReport, TokenVerifier};
use crate::targets::{Target, Targets};

/// The longest the end-of-run alerts wait for the start ping still in flight, so that the start arrives first when
/// it can; past it the start is given up (a heartbeat service that never saw it still gets the end).
const START_GRACE: Duration = Duration::from_secs(1);
/// The longest a `status` may take, every call included: well inside FC's function timeout.
const STATUS_DEADLINE: Duration = Duration::from_secs(20);

/// What a run needs, long-lived (the backends' connection pools are reused between runs).
pub struct Runner {
    /// Where the blacklist lives.
    pub backends: Backends,
    alerts: Alerts,
    history: bool,
    sweep: SweepSettings,
    legacy: LegacySettings,
    verifier: Option<TokenVerifier>,
    targets: Targets,
}

impl Runner {
    /// The runner for `settings`, over `backends`.
    pub fn new(settings: &Settings, backends: Backends) -> Self {
        Self {
            backends,
            alerts: Alerts::from_settings(&settings.alerts),
            history: settings.history.is_some(),
            sweep: settings.sweep.clone(),
            legacy: settings.legacy.clone(),
            verifier: TokenVerifier::from_settings(&settings.legacy),
            targets: settings.targets.clone(),
        }
    }

    /// The targets a run sweeps: every one, or those `names` picks (in the configured order). An unknown name is
    /// refused, naming the known ones, before anything runs.
    pub fn targets(&self, names: Option<&[String]>) -> Result<Vec<Target>, String> {
        match names {
            None => Ok(self.targets.list.clone()),
            Some(names) => self.targets.subset(names),
        }
    }

    /// The sweep of a run over `CLEANUP_TARGETS`: one target after another, each within an equal share of what is
    /// left of the budget (`targets::slice`), each on its own chain; a failing target does not stop the others.
    async fn sweep_targets(
        &self,
        targets: &[Target],
        options: &SweepOptions,
        request_id: &str,
        started_at: DateTime<Utc>,
        progress: &dyn Progress,
    ) -> Result<SweepReport, SweepFailure> {
        let began = tokio::time::Instant::now();
        let budget_end = began + options.time_budget;
        // One deadline for every call of every target: the run's (see `SweepOptions::calls_end`).
        let calls_end = budget_end + (CALL_MARGIN - AFTER_RUN);
        let mut outcomes = Vec::with_capacity(targets.len());
        for (done, target) in targets.iter().enumerate() {
            let left = budget_end.saturating_duration_since(tokio::time::Instant::now());
            let mut own = options.clone();
            own.time_budget = crate::targets::slice(left, targets.len() - done);
            own.grace = target.grace;
            own.expires_field = target.expires_field.clone();
            own.calls_end = Some(calls_end);
            let verifier = if target.legacy { self.verifier.as_ref() } else { None };
            let chain = self.backends.for_target(&target.name);
            let outcome = sweep::run_at(&chain, &own, verifier, request_id, started_at, progress).await;
            if let Err(failure) = &outcome {
                tracing::warn!(target = %target.name, error = %failure.error, "a target failed; the others go on");
            }
            outcomes.push((target.name.to_string(), outcome));
        }
        sweep::report::combine(outcomes, started_at, began.elapsed(), request_id)
    }

    /// The options of a run with `overrides`.
    pub fn options(&self, overrides: SweepOverrides) -> SweepOptions {
        SweepOptions::resolve(&self.sweep, &self.legacy, overrides)
    }

    /// One run with `options`, started by `trigger` at `started_at`; see the module doc.
    pub async fn run(
        &self,
        options: &SweepOptions,
        targets: &[Target],
        trigger: Trigger,
        request_id: &str,
        started_at: DateTime<Utc>,
        progress: &dyn Progress,
    ) -> Result<SweepReport, SweepFailure> {
        let deadline = tokio::time::Instant::now() + options.time_budget + CALL_MARGIN;
        let start = (!options.dry_run).then(|| self.alerts.started());
        let store = self.backends.for_run();
        let result = match self.targets.configured {
            true => self.sweep_targets(targets, options, request_id, started_at, progress).await,
            false => sweep::run_at(&store, options, self.verifier.as_ref(), request_id, started_at, progress).await,
        };
        let ended_at = Utc::now();
        let (record, mut result) = match result {
            Ok(report) => (RunRecord::of_report(&report, started_at, ended_at, trigger), Ok(report)),
            Err(failure) => {
                let record = RunRecord::of_failure(
                    &failure,
                    started_at,
                    ended_at,
                    trigger,
                    request_id,
                    options.dry_run,
                    store.fallback_reason(),
                );
                (record, Err(failure))
            }
        };
        // The record and the alerts side by side, both ended by the run's deadline (never earlier than AFTER_RUN
        // from now, for a sweep whose calls ran to their own end).
        let bound = deadline.max(tokio::time::Instant::now() + AFTER_RUN);
        let alerts = async {
            if let Some(mut start) = start {
                if tokio::time::timeout(START_GRACE, &mut start).await.is_err() {
                    start.abort();
                    tracing::warn!("the start of the run was not reported within {START_GRACE:?}; gave it up");
                }
                self.alerts.finished(&record).await;
            }
        };
        let alerts = async {
            if tokio::time::timeout_at(bound, alerts).await.is_err() {
                tracing::warn!("the end of the run was not reported before the run's deadline; gave it up");
            }
        };
        let recorded = async {
            let written = tokio::time::timeout_at(bound, self.record(&store, &record)).await;
            written.unwrap_or_else(|_| Err(StoreError::unreachable("no answer before the run's deadline".to_string())))
        };
        let (recorded, ()) = tokio::join!(recorded, alerts);
        if let Err(e) = recorded {
            let warning = format!("the run history was not written: {e}");
            tracing::warn!("{warning}");
            if let Ok(report) = &mut result {
                report.warnings.push(warning);
            }
        }
        result
    }

    /// Appends `record` to the history, when it is on, through `store` (the run's chain).
    async fn record(&self, store: &dyn RunHistory, record: &RunRecord) -> Result<(), StoreError> {
        if !self.history {
            return Ok(());
        }
        store.record_run(&record.to_document()).await
    }

    /// Where things stand, at `now` (see `status`); a history that cannot be read is the `unknown` verdict.
    pub async fn status(&self, query: &StatusQuery, now: DateTime<Utc>) -> StatusReport {
        let deadline = tokio::time::Instant::now() + STATUS_DEADLINE;
        let chain = self.backends.for_run();
        let store = Deadline::new(&chain, deadline);
        let cutoff_ms = self.options(SweepOverrides::default()).cutoff_ms(now);
        // With CLEANUP_TARGETS, each target is judged too, on its own chain and below its own cutoff.
        let configured: &[Target] = if self.targets.configured { &self.targets.list } else { &[] };
        let chains: Vec<_> = configured.iter().map(|t| self.backends.for_target(&t.name)).collect();
        let stores: Vec<Deadline<'_>> = chains.iter().map(|c| Deadline::new(c, deadline)).collect();
        let probes: Vec<status::TargetProbe<'_>> = configured
            .iter()
            .zip(&stores)
            .map(|(target, store)| status::TargetProbe {
                name: target.name.to_string(),
                store,
                cutoff_ms: now.timestamp_millis().saturating_sub(i64::try_from(target.grace.as_millis()).unwrap_or(0)),
            })
            .collect();
        match status::gather(&store, self.history, cutoff_ms, &probes, query, now).await {
            Ok(report) => report,
            Err(e) => status::unknown(&e, now),
        }
    }
}
