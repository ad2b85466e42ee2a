//! Prometheus's batch-job gauges, pushed to a Pushgateway under `job=jwt-token-cleaner` at the end of each run, so
//! that an alert rule like `time() - jwt_cleaner_last_success_timestamp_seconds > 7200` fires when runs stop
//! succeeding, and `jwt_cleaner_oldest_expired_age_seconds` when the backlog ages.
//!
//! Pushed with `POST`, which replaces only the metrics it carries: a failed run pushes no
//! `jwt_cleaner_last_success_timestamp_seconds`, so the last success stays as it was.

use std::fmt::Write as _;

use super::{send, Alert, AlertError};
use crate::config::Secret;
use crate::history::RunRecord;

/// The job label of every metric.
pub const JOB: &str = "jwt-token-cleaner";

/// The Pushgateway at `CLEANUP_PUSHGATEWAY_URL`.
pub struct Pushgateway {
    url: Secret,
    http: reqwest::Client,
}

impl Pushgateway {
    /// Pushes to `url` (no trailing slash) with `http`.
    pub fn new(url: Secret, http: reqwest::Client) -> Self {
        Self { url, http }
    }
}

/// The exposition text for `run`: gauges with `# HELP` and `# TYPE`.
pub fn metrics(run: &RunRecord) -> String {
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    };
    let ended = run.ended_at.timestamp_millis() as f64 / 1000.0;
    gauge("jwt_cleaner_last_run_timestamp_seconds", "When the last run ended.", ended);
    gauge(
        "jwt_cleaner_last_run_success",
        "1 when the last run did its work, 0 when it failed.",
        f64::from(u8::from(run.outcome.worked())),
    );
    gauge("jwt_cleaner_last_run_duration_seconds", "How long the last run took.", run.duration_ms as f64 / 1000.0);
    gauge("jwt_cleaner_last_run_cleaned", "Entries the last run deleted.", run.cleaned_count as f64);
    if run.outcome.worked() {
        gauge("jwt_cleaner_last_success_timestamp_seconds", "When the last successful run ended.", ended);
        if let Some(remaining) = run.expired_remaining {
            gauge("jwt_cleaner_expired_remaining", "Expired entries the last run left.", remaining as f64);
        }
        if let Some(backlog) = &run.backlog {
            gauge(
                "jwt_cleaner_backlog_expired",
                "Expired entries still there after the last run (counted to a limit).",
                backlog.expired as f64,
            );
            // No expired entry left: the oldest is 0 s old.
            gauge(
                "jwt_cleaner_oldest_expired_age_seconds",
                "Age of the oldest expired entry after the last run.",
                backlog.oldest_expired_age_seconds.unwrap_or(0) as f64,
            );
        }
    }
    // With CLEANUP_TARGETS, each target's part, labelled with its name (a target name is always a safe label value).
    if !run.targets.is_empty() {
        let mut labelled = |name: &str, help: &str, value: &dyn Fn(&crate::history::TargetRecord) -> f64| {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
            for target in &run.targets {
                let _ = writeln!(text, "{name}{{target=\"{}\"}} {}", target.name, value(target));
            }
        };
        labelled("jwt_cleaner_target_last_run_success", "1 when the target's part of the last run worked.", &|t| {
            f64::from(u8::from(t.error.is_none()))
        });
        labelled("jwt_cleaner_target_last_run_cleaned", "Entries the last run deleted in the target.", &|t| {
            t.cleaned_count as f64
        });
        labelled(
            "jwt_cleaner_target_last_run_complete",
            "1 when the last run left no expired entry in the target.",
            &|t| f64::from(u8::from(t.complete)),
        );
    }
    text
}

#[async_trait::async_trait]
impl Alert for Pushgateway {
    fn name(&self) -> &'static str {
        "pushgateway"
    }

    async fn started(&self) -> Result<(), AlertError> {
        Ok(())
    }

    async fn finished(&self, run: &RunRecord) -> Result<(), AlertError> {
        let url = format!("{}/metrics/job/{JOB}", self.url.expose());
        send(self.http.post(url).header("content-type", "text/plain; version=0.0.4").body(metrics(run))).await
    }
}
