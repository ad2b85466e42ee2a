//! Alerts that fire when runs stop: where a run says it started and how it ended, so that an outside service
//! notices a cleaner that has gone quiet. One trait, one file per kind ([`heartbeat`], [`pushgateway`]), one
//! factory ([`Alerts::from_settings`]).
//!
//! Every call has one attempt and a short timeout ([`ALERT_TIMEOUT`]), follows no redirect, and never fails or
//! holds up the sweep: the start is sent beside the sweep, and a failure is one log line. Both URLs are secrets:
//! errors are built without them.

pub mod heartbeat;
pub mod pushgateway;

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::config::AlertSettings;
use crate::history::RunRecord;

/// The longest any alert call may take.
pub const ALERT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an alert call failed. Never carries the URL.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// No answer within [`ALERT_TIMEOUT`], or no connection.
    #[error("{0}")]
    Transport(#[source] reqwest::Error),
    /// The service answered something other than 2xx.
    #[error("HTTP {0}")]
    Status(u16),
}

/// A place a run reports to.
#[async_trait::async_trait]
pub trait Alert: Send + Sync {
    /// Its name in log lines.
    fn name(&self) -> &'static str;

    /// A run started.
    async fn started(&self) -> Result<(), AlertError>;

    /// A run ended as `run` says.
    async fn finished(&self, run: &RunRecord) -> Result<(), AlertError>;
}

/// The configured alerts.
#[derive(Clone, Default)]
pub struct Alerts {
    sinks: Vec<Arc<dyn Alert>>,
}

impl Alerts {
    /// The heartbeat when `CLEANUP_HEARTBEAT_URL` is set, the Pushgateway when `CLEANUP_PUSHGATEWAY_URL` is.
    pub fn from_settings(settings: &AlertSettings) -> Self {
        let mut sinks: Vec<Arc<dyn Alert>> = Vec::new();
        let http = client();
        if let Some(url) = &settings.heartbeat {
            sinks.push(Arc::new(heartbeat::Heartbeat::new(url.clone(), http.clone())));
        }
        if let Some(url) = &settings.pushgateway {
            sinks.push(Arc::new(pushgateway::Pushgateway::new(url.clone(), http)));
        }
        Self { sinks }
    }

    /// Tells every alert a run started, beside the caller: await the handle before [`finished`](Self::finished),
    /// so that the start always comes first.
    pub fn started(&self) -> tokio::task::JoinHandle<()> {
        let sinks = self.sinks.clone();
        // Spawned, so the run's span is passed on by hand.
        let run = tracing::Span::current();
        tokio::spawn(async move {
            let calls = sinks.iter().map(|sink| {
                let span = alert_span(&run, sink.name(), "started");
                async move {
                    if let Err(e) = sink.started().await {
                        failed(&tracing::Span::current());
                        tracing::warn!(alert = sink.name(), error = %e, "could not report the run's start");
                    }
                }
                .instrument(span)
            });
            futures_util::future::join_all(calls).await;
        })
    }

    /// Tells every alert how the run ended, all at once (a hanging one does not hold up the others).
    pub async fn finished(&self, run: &RunRecord) {
        let parent = tracing::Span::current();
        let calls = self.sinks.iter().map(|sink| {
            let span = alert_span(&parent, sink.name(), "finished");
            async move {
                if let Err(e) = sink.finished(run).await {
                    failed(&tracing::Span::current());
                    tracing::warn!(alert = sink.name(), error = %e, "could not report the run's end");
                }
            }
            .instrument(span)
        });
        futures_util::future::join_all(calls).await;
    }
}

/// The span of one alert's call, under `parent` (the run's).
fn alert_span(parent: &tracing::Span, alert: &'static str, event: &'static str) -> tracing::Span {
    tracing::info_span!(
        parent: parent,
        "alert",
        alert,
        event,
        "otel.name" = %format_args!("alert {alert} {event}"),
        "otel.kind" = "client",
        "otel.status_code" = tracing::field::Empty,
    )
}

fn failed(span: &tracing::Span) {
    span.record("otel.status_code", "ERROR");
}

/// The HTTP client of every alert: one attempt, [`ALERT_TIMEOUT`], no redirects.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(ALERT_TIMEOUT)
        .timeout(ALERT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("jwt-token-cleaner/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Sends `request`; a non-2xx answer is an error. The URL never reaches the error.
async fn send(request: reqwest::RequestBuilder) -> Result<(), AlertError> {
    let response = request.send().await.map_err(|e| AlertError::Transport(e.without_url()))?;
    match response.status() {
        status if status.is_success() => Ok(()),
        status => Err(AlertError::Status(status.as_u16())),
    }
}
