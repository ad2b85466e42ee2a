//! The `jwt-token-cleaner` command: `serve` (the default), `sweep`, `status`, `healthcheck`, `create-index`,
//! `seed-sample`.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jtc_shared::telemetry;
use jwt_token_cleaner::config::{Settings, MAX_BATCH_SIZE, MAX_TIME_BUDGET_SECONDS};
use jwt_token_cleaner::status::StatusQuery;
use jwt_token_cleaner::sweep::SweepOverrides;

#[derive(Parser)]
#[command(
    version,
    about = "Sweeps expired JWT revocation entries out of a MongoDB blacklist.",
    after_help = "Required settings (environment, or .env / .env.local in the working directory):\n  \
                  DB_URI           mongodb:// or mongodb+srv:// connection string (and/or MONGODB_API_URL)\n  \
                  MONGODB_API_URL  the DB-operation HTTP API, tried first (and/or DB_URI)\n  \
                  DB_NAME          the database that holds the blacklist\n\
                  Every other setting has a default; see docs/configuration.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Function Compute HTTP protocol on 0.0.0.0:$FC_CUSTOM_LISTEN_PORT (else $PORT, else 9000).
    Serve,
    /// Run one sweep now and print the report JSON on stdout (logs go to stderr). Exit 1 on error.
    Sweep {
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Entries per batch (default CLEANUP_BATCH_SIZE; at most the same limit as CLEANUP_BATCH_SIZE).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BATCH_SIZE)))]
        batch_size: Option<u32>,
        /// Seconds after which no batch starts (default CLEANUP_TIME_BUDGET_SECONDS; at most the same limit).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_TIME_BUDGET_SECONDS))]
        time_budget_seconds: Option<u64>,
    },
    /// Is the cleaner keeping up? The last runs, the backlog now, its trend and a verdict. Exit code: 0 ok,
    /// 1 behind, 2 failing, 3 never ran (or the history could not be read).
    Status {
        /// Print the same content as JSON.
        #[arg(long)]
        json: bool,
        /// Also draw the recent runs (backlog, entries cleaned, failed runs marked) into this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        chart: Option<std::path::PathBuf>,
        /// The last successful run must have ended within this long (e.g. 2h, 90m, 1d; default 2h).
        #[arg(long, value_name = "DURATION", value_parser = cli::status::parse_duration, default_value = "2h")]
        max_age: std::time::Duration,
        /// The oldest expired entry may not be older than this (default 24h).
        #[arg(long, value_name = "DURATION", value_parser = cli::status::parse_duration, default_value = "24h")]
        max_backlog_age: std::time::Duration,
    },
    /// GET /health on the local port; exit 0 when it answers 200 within 2 s, else 1. For Docker's HEALTHCHECK.
    Healthcheck,
    /// Create the index on the expiry field through the direct connection (DB_URI), so each batch is a cheap range.
    ///
    /// With --ttl SECONDS the index is a TTL index: the server then also deletes entries SECONDS after their expiry,
    /// on its own schedule (about once a minute), but only entries whose expiry is a BSON Date: numeric (`exp`
    /// style) and missing expiries are never touched by TTL, and nothing reports what it removed. The sweep still
    /// covers those, and reports.
    CreateIndex {
        /// Make it a TTL index that expires entries this many seconds after their expiry.
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
    },
    /// Insert a clearly labelled sample blacklist ("sample": true) into the configured collection.
    SeedSample {
        /// How many regular entries.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Percentage of them already expired.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
        expired_percent: u8,
        /// Also insert the edge cases (numeric expiries, one in the grace period, one without expiry).
        #[arg(long)]
        edge_cases: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Healthcheck = command {
        let _ = telemetry::init(telemetry::json_requested(), None);
        return cli::healthcheck::run().await;
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => return jtc_shared::config::exit_on_config_error("jwt-token-cleaner", &e),
    };
    jtc_shared::redact::register(settings.secret_values());
    // After the settings: the exporter is one of them, and a secret of its headers is registered before any line.
    if let Err(e) = telemetry::init(telemetry::json_requested(), settings.traces.as_ref()) {
        eprintln!("jwt-token-cleaner: {e}");
        return ExitCode::from(2);
    }
    match command {
        Command::Serve => cli::serve::run(&settings).await,
        Command::Sweep { dry_run, batch_size, time_budget_seconds } => {
            let overrides = SweepOverrides { dry_run: Some(dry_run), batch_size, time_budget_seconds };
            cli::sweep::run(&settings, overrides).await
        }
        Command::SeedSample { count, expired_percent, edge_cases } => {
            cli::seed_sample::run(&settings, count, expired_percent, edge_cases).await
        }
        Command::CreateIndex { ttl } => cli::create_index::run(&settings, ttl).await,
        Command::Status { json, chart, max_age, max_backlog_age } => {
            cli::status::run(&settings, StatusQuery { max_age, max_backlog_age }, json, chart).await
        }
        Command::Healthcheck => unreachable!("handled above"),
    }
}
