//! A dead man's switch, the healthchecks.io way (also Uptime Kuma push monitors and Cronitor): `GET <url>/start`
//! when a run starts, `GET <url>` when it ends well (all of it or part of it), `GET <url>/fail` when it fails, or when one of its targets failed (`CLEANUP_TARGETS`).
//! The service alerts when the pings stop coming, or when a fail ping comes.

use super::{send, Alert, AlertError};
use crate::config::Secret;
use crate::history::RunRecord;

/// The heartbeat at `CLEANUP_HEARTBEAT_URL`.
pub struct Heartbeat {
    url: Secret,
    http: reqwest::Client,
}

impl Heartbeat {
    /// Pings `url` (no trailing slash) with `http`.
    pub fn new(url: Secret, http: reqwest::Client) -> Self {
        Self { url, http }
    }

    async fn ping(&self, suffix: &str) -> Result<(), AlertError> {
        send(self.http.get(format!("{}{suffix}", self.url.expose()))).await
    }
}

#[async_trait::async_trait]
impl Alert for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    async fn started(&self) -> Result<(), AlertError> {
        self.ping("/start").await
    }

    async fn finished(&self, run: &RunRecord) -> Result<(), AlertError> {
        // A target that failed in an otherwise working run fails the ping too: one broken target must alert.
        self.ping(if run.outcome.worked() && !run.a_target_failed() { "" } else { "/fail" }).await
    }
}
