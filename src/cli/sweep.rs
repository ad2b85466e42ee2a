//! `sweep`: one run now, its report JSON on stdout; a progress bar when stderr is a terminal.

use std::process::ExitCode;

use jwt_token_cleaner::config::Settings;
use jwt_token_cleaner::history::Trigger;
use jwt_token_cleaner::server::envelope;
use jwt_token_cleaner::sweep::{self, SweepOptions, SweepOverrides};

use super::runner;

pub(crate) async fn run(settings: &Settings, overrides: SweepOverrides) -> ExitCode {
    let Some(runner) = runner(settings) else { return ExitCode::FAILURE };
    let options = runner.options(overrides);
    let request_id = format!("cli-{}", uuid::Uuid::new_v4());
    let started = chrono::Utc::now();
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        Some(ProgressBar::start(&runner.backends.for_run(), &options, started).await)
    } else {
        None
    };
    let lines = sweep::LogLines::new(settings.progress_every);
    let progress: &dyn sweep::Progress = match &bar {
        Some(bar) => bar,
        None => &lines,
    };
    let targets = runner.targets(None).unwrap_or_default();
    let result = runner.run(&options, &targets, Trigger::Cli, &request_id, started, progress).await;
    runner.backends.shutdown().await;
    if let Some(bar) = bar {
        bar.0.finish_and_clear();
    }
    let (mut json, code) = match result {
        Ok(report) => (envelope::success(&report), ExitCode::SUCCESS),
        Err(failure) => {
            // stdout carries the error JSON for scripts; stderr says it for whoever runs the command.
            tracing::error!(error = %failure.error, cleaned = failure.cleaned_count, "sweep failed");
            (envelope::failure(&failure, started, &request_id), ExitCode::FAILURE)
        }
    };
    envelope::deliver_spans(&mut json).await;
    println!("{}", serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string()));
    code
}

/// A progress bar on stderr for a sweep run from a terminal: entries deleted out of the expired count (counted
/// first, one indexed count per lane), the rate, the elapsed time and the ETA.
pub(crate) struct ProgressBar(indicatif::ProgressBar);

impl ProgressBar {
    async fn start(
        store: &dyn jwt_token_cleaner::store::SweepStore,
        options: &SweepOptions,
        started: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let total = sweep::progress::expired_total(store, options.cutoff_ms(started)).await;
        let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
        let verb = if options.dry_run { "counted" } else { "deleted" };
        let template =
            format!("{{bar:40}} {{pos}}/{{len}} expired entries {verb}, {{per_sec}}, {{elapsed}}, ETA {{eta}}");
        if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        Self(bar)
    }
}

impl sweep::Progress for ProgressBar {
    fn batch(&self, done: sweep::Done) {
        self.0.set_position(done.entries);
    }
}
