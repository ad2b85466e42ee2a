//! One run, from start to record: what `/invoke` and `jwt-token-cleaner sweep` both do, and `status` beside it.
//!
//! A real run tells the alerts it started (beside the sweep, never in its way), sweeps through a fresh fallback
//! chain, appends its record to the run history through the backend that did the work, and tells the alerts how
//! it ended. Writing the record or alerting can fail without failing the run: a record that could not be written
//! is a warning in the report, an alert that could not be sent is a log line. Dry runs are recorded (marked as
//! such) but do not alert: they keep nothing clean.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::alerts::Alerts;
use crate::config::{LegacySettings, Settings, SweepSettings};
use crate::history::{RunRecord, Trigger};
use crate::status::{self, StatusQuery, StatusReport};
use crate::store::deadline::Deadline;
use crate::store::fallback::Backends;
use crate::store::{BlacklistStore, StoreError};
use crate::sweep::{self, Progress, SweepFailure, SweepOptions, SweepOverrides, SweepReport, TokenVerifier};

/// The longest the history write after a run may take (the run's own calls end by the budget plus 5 s).
const RECORD_TIMEOUT: Duration = Duration::from_secs(5);
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
        }
    }

    /// The options of a run with `overrides`.
    pub fn options(&self, overrides: SweepOverrides) -> SweepOptions {
        SweepOptions::resolve(&self.sweep, &self.legacy, overrides)
    }

    /// One run with `options`, started by `trigger` at `started_at`; see the module doc.
    pub async fn run(
        &self,
        options: &SweepOptions,
        trigger: Trigger,
        request_id: &str,
        started_at: DateTime<Utc>,
        progress: &dyn Progress,
    ) -> Result<SweepReport, SweepFailure> {
        let start = (!options.dry_run).then(|| self.alerts.started());
        let store = self.backends.for_run();
        let result = sweep::run_at(&store, options, self.verifier.as_ref(), request_id, started_at, progress).await;
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
        if let Err(e) = self.record(&store, &record).await {
            let warning = format!("the run history was not written: {e}");
            tracing::warn!("{warning}");
            if let Ok(report) = &mut result {
                report.warnings.push(warning);
            }
        }
        if let Some(start) = start {
            // The start ping goes first; it is bounded by the alerts' own timeout.
            let _ = start.await;
            self.alerts.finished(&record).await;
        }
        result
    }

    /// Appends `record` to the history, when it is on, through `store` (the run's chain), within a short bound.
    async fn record(&self, store: &dyn BlacklistStore, record: &RunRecord) -> Result<(), StoreError> {
        if !self.history {
            return Ok(());
        }
        let document = record.to_document();
        match tokio::time::timeout(RECORD_TIMEOUT, store.record_run(&document)).await {
            Ok(written) => written,
            Err(_) => Err(StoreError::unreachable(format!("no answer within {} s", RECORD_TIMEOUT.as_secs()))),
        }
    }

    /// Where things stand, at `now` (see `status`); a history that cannot be read is the `unknown` verdict.
    pub async fn status(&self, query: &StatusQuery, now: DateTime<Utc>) -> StatusReport {
        let chain = self.backends.for_run();
        let store = Deadline::new(&chain, tokio::time::Instant::now() + STATUS_DEADLINE);
        let cutoff_ms = self.options(SweepOverrides::default()).cutoff_ms(now);
        match status::gather(&store, self.history, cutoff_ms, query, now).await {
            Ok(report) => report,
            Err(e) => status::unknown(&e, now),
        }
    }
}
