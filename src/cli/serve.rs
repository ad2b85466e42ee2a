//! `serve` (the default): the FC HTTP server until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use jtc_shared::shutdown::shutdown_signal;
use jwt_token_cleaner::config::Settings;
use jwt_token_cleaner::server::Application;

pub(crate) async fn run(settings: &Settings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(port = app.port(), collection = %settings.sweep.collection, "listening on 0.0.0.0:{}", app.port());
    let stopped = app.run_until_stopped(shutdown_signal()).await;
    // Spans not yet delivered (an `/invoke` delivers its own before answering), before the process ends.
    if let Err(e) = jtc_shared::traces::flush().await {
        tracing::warn!(error = %e, "spans were not delivered");
    }
    match stopped {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
