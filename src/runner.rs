//! One run, from start to record: what `/invoke` and `jwt-token-cleaner sweep` both do, and `status` beside it.
//!
//! A real run first takes the lease (`crate::lease`; one write): a run that finds it held answers `skipped`, is
//! recorded, and does nothing else. Then it tells the alerts it started (beside the sweep, never in its way),
//! sweeps through a fresh fallback chain, then appends its record to the run history through the backend that did
//! the work, releases the lease and tells the alerts how it ended, those three side by side. Writing the record,
//! releasing the lease or alerting can fail without failing the run: the first two are warnings in the report (a
//! lease not released runs out by itself), an alert that could not be sent is a log line. Dry runs take no lease
//! and are recorded (marked as such) but do not alert: they keep nothing clean.
//!
//! The whole run answers by one deadline, `budget + CALL_MARGIN` after it started (`crate::clock`): the lease and
//! the sweep's calls end `AFTER_RUN` before it, and what is still unsent of the record and the alerts at the
//! deadline is dropped with a log line. FC's function timeout is the budget plus 10 s by default; an answer after
//! it is lost.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::alerts::Alerts;
use crate::clock::RunClock;
use crate::config::{LegacySettings, Settings, SweepSettings};
use crate::history::{RunRecord, Trigger};
use crate::lease::{self, Claim, LeaseState};
use crate::status::{self, StatusQuery, StatusReport};
use crate::store::backends::Backends;
use crate::store::deadline::Deadline;
use crate::store::fallback::Fallback;
use crate::store::{Backend, RunHistory, StoreError};
use crate::sweep::{self, Progress, SweepFailure, SweepOptions, SweepOverrides, SweepReport, TokenVerifier};
use crate::targets::{Target, TargetName, Targets};

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
    lease: bool,
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
            lease: settings.lease,
        }
    }

    /// The targets a run sweeps: every one, or those `names` picks (in the configured order). An unknown name is
    /// refused, naming the known ones, before anything runs.
    pub fn targets(&self, names: Option<&[TargetName]>) -> Result<Vec<Target>, String> {
        match names {
            None => Ok(self.targets.list.clone()),
            Some(names) => self.targets.subset(names),
        }
    }

    /// The sweep of a run, over one target or several alike: one budget and one deadline (the run's), batches in
    /// turn (`sweep::turns`); a failing target does not stop the others. A target of `CLEANUP_TARGETS` runs on its
    /// own chain; the one target without it on the run's (`run_chain`), so that the backend that did the work
    /// writes the record.
    async fn sweep_targets(
        &self,
        targets: &[Target],
        run_chain: &Fallback,
        options: &SweepOptions,
        request_id: &str,
        clock: RunClock,
        progress: &dyn Progress,
    ) -> Result<SweepReport, SweepFailure> {
        let own: Vec<Option<Fallback>> = targets.iter().map(|t| self.backends.target_chain(&t.name)).collect();
        let chains = own.iter().map(|own| own.as_ref().unwrap_or(run_chain));
        let mut entries = Vec::with_capacity(targets.len());
        // One round of turns deletes about one batch: each target's batches are the run's divided among the
        // targets still open (sweep::turns), so that the shares do not come out in steps of a whole batch.
        let batch_size = sweep::turns::share(options.batch_size, targets.len());
        for (target, chain) in targets.iter().zip(chains) {
            let own = SweepOptions { batch_size, ..options.for_target(target) };
            let verifier = if target.legacy { self.verifier.as_ref() } else { None };
            let span = target_span(target, request_id);
            let sweep = sweep::Sweep::open(chain, own, verifier, clock).instrument(span.clone()).await;
            entries.push(sweep::turns::Entry { name: target.name.to_string(), sweep, span });
        }
        let outcomes = sweep::turns::in_turn(entries, &clock, options.batch_size, request_id, progress).await;
        sweep::report::combine(outcomes, clock.started_at(), clock.elapsed(), request_id, self.targets.configured)
    }

    /// The options of a run with `overrides`.
    pub fn options(&self, overrides: SweepOverrides) -> SweepOptions {
        SweepOptions::resolve(&self.sweep, &self.legacy, overrides)
    }

    /// One run with `options`, started by `trigger` at `started_at`; see the module doc. Every line it logs
    /// carries its request id (the `run` span's field), the CLI's too.
    #[tracing::instrument(name = "run", skip_all, fields(
        request_id = %request_id,
        targets = targets.len(),
        budget_seconds = options.time_budget.as_secs(),
        dry_run = options.dry_run,
        outcome = tracing::field::Empty,
        cleaned = tracing::field::Empty,
        bytes = tracing::field::Empty,
        complete = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    ))]
    pub async fn run(
        &self,
        options: &SweepOptions,
        targets: &[Target],
        trigger: Trigger,
        request_id: &str,
        started_at: DateTime<Utc>,
        progress: &dyn Progress,
    ) -> Result<SweepReport, SweepFailure> {
        let clock = RunClock::at(started_at, options.time_budget);
        let store = self.backends.for_run();
        // The lease first (crate::lease): a run that finds it held neither sweeps nor alerts; it is recorded.
        let claim = Claim::new(request_id, options.time_budget, Utc::now());
        let lease = match self.lease && !options.dry_run {
            true => Some(self.take_lease(&store, &claim, &clock).await),
            false => None,
        };
        if let Some(Ok(LeaseState::Held { holder, until_ms })) = lease {
            tracing::info!(held_by = %holder, "another run holds the lease; this one does not sweep");
            let mut report = SweepReport::skipped(holder, until_ms, started_at, request_id, store.backend());
            let record = RunRecord::of_report(&report, started_at, Utc::now(), trigger);
            trace_outcome(&record);
            if let Some(warning) = self.record_by(&store, &record, clock.deadline()).await {
                report.warnings.push(warning);
            }
            return Ok(report);
        }
        let (taken, took_over) = match &lease {
            Some(Ok(LeaseState::Taken { took_over })) => (true, took_over.clone()),
            _ => (false, None),
        };
        let took_over = took_over.map(|why| format!("took over a stale lease: {why}"));
        if let Some(warning) = &took_over {
            tracing::warn!("{warning}");
        }
        let start = (!options.dry_run).then(|| self.alerts.started());
        let result = match lease {
            Some(Err(failure)) => Err(failure),
            _ => self.sweep_targets(targets, &store, options, request_id, clock, progress).await,
        };
        let ended_at = Utc::now();
        let mut result = result.map(|mut report| {
            report.warnings.extend(took_over);
            report
        });
        let record = match &result {
            Ok(report) => RunRecord::of_report(report, started_at, ended_at, trigger),
            Err(failure) => {
                tracing::Span::current().record("error.type", failure.kind.as_str());
                let reason = store.fallback_reason();
                RunRecord::of_failure(failure, started_at, ended_at, trigger, request_id, options.dry_run, reason)
            }
        };
        trace_outcome(&record);
        // The record, the release of the lease and the alerts side by side, all ended by the run's deadline.
        let bound = clock.after_run_end();
        let released = async {
            match taken {
                true => release_by(&store, &claim, bound).await,
                false => None,
            }
        };
        let alerts = self.alert_end(start, &record, bound);
        let (recorded, released, ()) = tokio::join!(self.record_by(&store, &record, bound), released, alerts);
        for warning in [recorded, released].into_iter().flatten() {
            tracing::warn!("{warning}");
            if let Ok(report) = &mut result {
                report.warnings.push(warning);
            }
        }
        result
    }

    /// Tells the alerts how the run ended, once its start (`start`, still in flight) has gone out or
    /// [`START_GRACE`] has passed; whatever is unsent at `bound` is given up with a log line.
    async fn alert_end(
        &self,
        start: Option<tokio::task::JoinHandle<()>>,
        record: &RunRecord,
        bound: tokio::time::Instant,
    ) {
        let Some(mut start) = start else { return };
        let alerts = async {
            if tokio::time::timeout(START_GRACE, &mut start).await.is_err() {
                start.abort();
                tracing::warn!("the start of the run was not reported within {START_GRACE:?}; gave it up");
            }
            self.alerts.finished(record).await;
        };
        if tokio::time::timeout_at(bound, alerts).await.is_err() {
            tracing::warn!("the end of the run was not reported before the run's deadline; gave it up");
        }
    }

    /// Takes the lease for this run through `store`, by the end of the run's calls; a failure fails the run (the
    /// same store would serve its sweep).
    #[tracing::instrument(name = "lease", skip_all)]
    async fn take_lease(&self, store: &Fallback, claim: &Claim, clock: &RunClock) -> Result<LeaseState, SweepFailure> {
        let bounded = Deadline::new(store, clock.calls_end());
        lease::take(&bounded, claim).await.map_err(|e| SweepFailure::before_sweep(e, store.backend()))
    }

    /// Appends `record` to the history through `store` by `bound`; the warning to report when it could not be.
    #[tracing::instrument(name = "history write", skip_all, fields(otel.status_code = tracing::field::Empty))]
    async fn record_by(&self, store: &Fallback, record: &RunRecord, bound: tokio::time::Instant) -> Option<String> {
        let written = tokio::time::timeout_at(bound, self.record(store, record)).await;
        match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("the run history was not written: {e}")),
            Err(_) => Some("the run history was not written: no answer before the run's deadline".to_string()),
        }
    }

    /// Appends `record` to the history, when it is on, through `store` (the run's chain).
    async fn record(&self, store: &dyn RunHistory, record: &RunRecord) -> Result<(), StoreError> {
        if !self.history {
            return Ok(());
        }
        // A record that cannot be written as BSON (a count past i64) is refused before it reaches the store.
        let document = record
            .to_document()
            .map_err(|e| StoreError::protocol("the run record cannot be written as BSON").caused_by(e))?;
        store.record_run(&document).await
    }

    /// Where things stand, at `now` (see `status`); a history that cannot be read is the `unknown` verdict.
    pub async fn status(&self, query: &StatusQuery, now: DateTime<Utc>) -> StatusReport {
        let deadline = tokio::time::Instant::now() + STATUS_DEADLINE;
        let chain = self.backends.for_run();
        let store = Deadline::new(&chain, deadline);
        let options = self.options(SweepOverrides::default());
        let cutoff_ms = options.cutoff_ms(now);
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
                cutoff_ms: options.for_target(target).cutoff_ms(now),
            })
            .collect();
        match status::gather(&store, self.history, cutoff_ms, &probes, query, now).await {
            Ok(report) => report,
            Err(e) => status::unknown(&e, now),
        }
    }
}

/// Releases the run's lease by `bound`; the warning to report when it could not be.
async fn release_by(store: &Fallback, claim: &Claim, bound: tokio::time::Instant) -> Option<String> {
    let release = lease::release(store, claim).instrument(tracing::info_span!("lease release"));
    let error = match tokio::time::timeout_at(bound, release).await {
        Ok(Ok(())) => return None,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer before the run's deadline".to_string(),
    };
    Some(format!("the lease was not released ({error}); it runs out by itself"))
}

/// The span of one target's sweep: every line of it names the target and the run's request id (the span's fields,
/// in text and JSON logs), and its database calls are its children.
fn target_span(target: &Target, request_id: &str) -> tracing::Span {
    tracing::info_span!(
        "target",
        target = %target.name,
        request_id,
        "db.namespace" = %target.database,
        "db.collection.name" = %target.collection,
        batches_untraced = tracing::field::Empty,
    )
}

/// How the run ended, on its span.
fn trace_outcome(record: &RunRecord) {
    let span = tracing::Span::current();
    span.record("outcome", record.outcome.as_str());
    span.record("cleaned", record.cleaned_count);
    span.record("bytes", record.memory_saved_bytes);
    span.record("complete", record.complete);
    if record.outcome == crate::history::Outcome::Error {
        span.record("otel.status_code", "ERROR");
    }
}
