//! The HTTP server FC talks to: routes, state, start-up and graceful shutdown.
//!
//! As in zero2prod, [`Application::build`] binds the listener (port 0 picks a free port for tests) and
//! [`Application::run_until_stopped`] serves until the shutdown future completes (SIGTERM or SIGINT in the
//! binary), letting the invocation in flight finish.

pub mod envelope;
pub mod event;
pub mod fc;
pub mod http_status;
pub mod routes;

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use jtc_shared::serve::Plain;

use crate::config::{ConnectionLimits, Settings};
use crate::runner::Runner;
use crate::store::backends::Backends;
use crate::store::StoreError;

/// Request bodies larger than this are refused (413) before they are read: a timer payload is at most 128 KB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every handler shares (see `jtc_shared::state`).
pub type AppState = jtc_shared::state::AppState<Shared>;

/// The parts of [`AppState`].
pub struct Shared {
    /// Runs sweeps and statuses over the configured backends (each invocation takes a fresh fallback chain).
    pub runner: Runner,
    /// How often a long sweep logs its progress.
    pub progress_every: std::time::Duration,
}

impl Shared {
    /// The state for `settings` and its backends.
    pub fn new(settings: &Settings, backends: Backends) -> Self {
        Self { runner: Runner::new(settings, backends), progress_every: settings.progress_every }
    }
}

/// The routes, with `x-fc-status` on every answer.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/invoke", post(routes::invoke::invoke))
        .route("/initialize", post(routes::initialize::initialize))
        .route("/pre-stop", get(routes::pre_stop::pre_stop))
        .route("/pre-freeze", get(routes::pre_stop::pre_freeze))
        .route("/health", get(routes::health::health))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(fc::set_fc_status))
        .with_state(state)
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The storage backends could not be prepared (the HTTP client could not be built, say).
    #[error("cannot prepare the storage backends: {0}")]
    Backends(#[source] StoreError),
    /// The port could not be bound.
    #[error("cannot listen on port {port}: {source}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A bound, not yet running server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    state: AppState,
}

impl Application {
    /// Builds the backends from `settings` (nothing connects yet) and binds `0.0.0.0:settings.port`.
    pub async fn build(settings: &Settings) -> Result<Self, StartError> {
        let backends = Backends::from_settings(settings).map_err(StartError::Backends)?;
        let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], settings.port)))
            .await
            .map_err(|source| StartError::Bind { port: settings.port, source })?;
        let state = AppState::new(Shared::new(settings, backends));
        Ok(Self { listener, router: router(state.clone()), limits: settings.connections, state })
    }

    /// The port really bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish, with the connection limits of
    /// `jtc_shared::serve` (a cap, header, idle and body deadlines); then closes the database connections, so that
    /// no driver task is still running when the process exits (one that was panicked in the driver as the runtime
    /// went away, and printed a line that is not JSON into JSON logs: seen once in a full run).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let served = jtc_shared::serve::serve(self.listener, self.router, self.limits, Plain, shutdown).await;
        self.state.runner.backends.shutdown().await;
        served
    }
}
