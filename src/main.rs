//! The `jwt-token-cleaner` command: `serve` (the default), `sweep`, `status`, `healthcheck`, `create-index`,
//! `seed-sample`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jtc_shared::shutdown::shutdown_signal;
use jtc_shared::telemetry;
use jwt_token_cleaner::config::{self, Settings, MAX_BATCH_SIZE, MAX_TIME_BUDGET_SECONDS};
use jwt_token_cleaner::history::Trigger;
use jwt_token_cleaner::runner::Runner;
use jwt_token_cleaner::sample;
use jwt_token_cleaner::server::{envelope, Application};
use jwt_token_cleaner::status::StatusQuery;
use jwt_token_cleaner::store::backends::{self, Backends};
use jwt_token_cleaner::store::mongo::MongoStore;
use jwt_token_cleaner::sweep::{self, SweepOptions, SweepOverrides};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(
    version,
    about = "Sweeps expired JWT revocation entries out of a MongoDB blacklist.",
    after_help = "Required settings (environment, or .env / .env.local in the working directory):\n  \
                  DB_URI           mongodb:// or mongodb+srv:// connection string (and/or MONGODB_API_URL)\n  \
                  MONGODB_API_URL  the DB-operation HTTP API, tried first (and/or DB_URI)\n  \
                  DB_NAME          the database that holds the blacklist\n\
                  Every other setting has a default; see the README's configuration table."
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
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2h")]
        max_age: std::time::Duration,
        /// The oldest expired entry may not be older than this (default 24h).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "24h")]
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
    telemetry::init(telemetry::json_requested());
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Healthcheck = command {
        return healthcheck().await;
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => return jtc_shared::config::exit_on_config_error("jwt-token-cleaner", &e),
    };
    jtc_shared::redact::register(settings.secret_values());
    match command {
        Command::Serve => serve(&settings).await,
        Command::Sweep { dry_run, batch_size, time_budget_seconds } => {
            let overrides = SweepOverrides { dry_run: Some(dry_run), batch_size, time_budget_seconds };
            sweep_once(&settings, overrides).await
        }
        Command::SeedSample { count, expired_percent, edge_cases } => {
            seed_sample(&settings, count, expired_percent, edge_cases).await
        }
        Command::CreateIndex { ttl } => create_index(&settings, ttl).await,
        Command::Status { json, chart, max_age, max_backlog_age } => {
            status(&settings, StatusQuery { max_age, max_backlog_age }, json, chart).await
        }
        Command::Healthcheck => unreachable!("handled above"),
    }
}

async fn serve(settings: &Settings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(port = app.port(), collection = %settings.sweep.collection, "listening on 0.0.0.0:{}", app.port());
    match app.run_until_stopped(shutdown_signal()).await {
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

/// The direct connection, for the tools that need one.
fn direct_store(settings: &Settings) -> Result<MongoStore, ExitCode> {
    match backends::direct(settings) {
        Some(store) => Ok(store),
        None => {
            eprintln!("jwt-token-cleaner: this command needs a direct connection: set DB_URI");
            Err(ExitCode::from(2))
        }
    }
}

async fn sweep_once(settings: &Settings, overrides: SweepOverrides) -> ExitCode {
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
    let result = runner.run(&options, Trigger::Cli, &request_id, started, progress).await;
    if let Some(bar) = bar {
        bar.0.finish_and_clear();
    }
    let (json, code) = match result {
        Ok(report) => (envelope::success(&report), ExitCode::SUCCESS),
        Err(failure) => {
            // stdout carries the error JSON for scripts; stderr says it for whoever runs the command.
            tracing::error!(error = %failure.error, cleaned = failure.cleaned_count, "sweep failed");
            (envelope::failure(&failure, started, &request_id), ExitCode::FAILURE)
        }
    };
    println!("{}", serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string()));
    code
}

/// The runner over the configured backends; `None` (said on stderr) when they cannot be prepared.
fn runner(settings: &Settings) -> Option<Runner> {
    match Backends::from_settings(settings) {
        Ok(backends) => Some(Runner::new(settings, backends)),
        Err(e) => {
            eprintln!("jwt-token-cleaner: {e}");
            None
        }
    }
}

/// `status`: the text (or `--json`), an optional chart, and the verdict's exit code.
async fn status(settings: &Settings, query: StatusQuery, json: bool, chart: Option<std::path::PathBuf>) -> ExitCode {
    let Some(runner) = runner(settings) else { return ExitCode::from(3) };
    let report = runner.status(&query, chrono::Utc::now()).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", jwt_token_cleaner::status::text::render(&report));
    }
    if let Some(path) = chart {
        let written = jwt_token_cleaner::status::chart::svg(&report)
            .map_err(|e| e.to_string())
            .and_then(|svg| std::fs::write(&path, svg).map_err(|e| e.to_string()));
        match written {
            Ok(()) => eprintln!("chart written to {}", path.display()),
            Err(e) => {
                eprintln!("jwt-token-cleaner: cannot write the chart to {}: {e}", path.display());
                return ExitCode::from(3);
            }
        }
    }
    ExitCode::from(report.exit_code)
}

/// A progress bar on stderr for a sweep run from a terminal: entries deleted out of the expired count (counted
/// first, one indexed count per lane), the rate, the elapsed time and the ETA.
struct ProgressBar(indicatif::ProgressBar);

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

async fn create_index(settings: &Settings, ttl: Option<u64>) -> ExitCode {
    let store = match direct_store(settings) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let created = store.create_expiry_index(ttl).await;
    // The run history's TTL index (CLEANUP_HISTORY_DAYS), when the history is on.
    let history = match &settings.history {
        Some(history) => Some((history, store.ensure_history_index().await)),
        None => None,
    };
    store.shutdown().await;
    let mut code = ExitCode::SUCCESS;
    match created {
        Ok(name) => eprintln!("index {name} on {} is in place", settings.sweep.expires_field),
        Err(e) => {
            eprintln!("jwt-token-cleaner: cannot create the index: {e}");
            code = ExitCode::FAILURE;
        }
    }
    match history {
        Some((history, Ok(name))) => eprintln!(
            "index {name} on {}.started_at is in place: run records are kept {} days",
            history.collection,
            history.keep.as_secs() / 86_400
        ),
        Some((_, Err(e))) => {
            eprintln!("jwt-token-cleaner: cannot create the run history's index: {e}");
            code = ExitCode::FAILURE;
        }
        None => {}
    }
    code
}

async fn seed_sample(settings: &Settings, count: u64, expired_percent: u8, edge_cases: bool) -> ExitCode {
    let store = match direct_store(settings) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let collection = match store.raw_collection().await {
        Ok(collection) => collection,
        Err(e) => {
            eprintln!("jwt-token-cleaner: {e}");
            return ExitCode::FAILURE;
        }
    };
    let schema = jtc_shared::blacklist::EntrySchema::new(settings.sweep.expires_field.clone());
    let mut result = sample::seed(&collection, &schema, count, expired_percent).await;
    if edge_cases {
        result = match (result, sample::seed_edge_cases(&collection, &schema).await) {
            (Ok(a), Ok(b)) => Ok(sample::Seeded { inserted: a.inserted + b.inserted, expired: a.expired + b.expired }),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
    }
    store.shutdown().await;
    match result {
        Ok(seeded) => {
            eprintln!(
                "seeded {} sample entries ({} expired) into {}.{}",
                seeded.inserted,
                seeded.expired,
                settings.db.as_ref().map(|db| &*db.database).unwrap_or("?"),
                settings.sweep.collection
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jwt-token-cleaner: seeding failed: {}", store.describe(e));
            ExitCode::FAILURE
        }
    }
}

/// `90s`, `30m`, `2h`, `1d` (a bare number is seconds): a positive duration.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 2h or 1d"))?;
    let seconds = match unit {
        "" | "s" => number,
        "m" => number.saturating_mul(60),
        "h" => number.saturating_mul(3600),
        "d" => number.saturating_mul(86_400),
        _ => return Err(format!("{text:?} is not a duration like 90s, 30m, 2h or 1d")),
    };
    if seconds == 0 {
        return Err("the duration must be positive".into());
    }
    Ok(std::time::Duration::from_secs(seconds))
}

/// A minimal HTTP/1.1 GET of `/health` on 127.0.0.1, so the runtime image needs no curl or shell.
async fn healthcheck() -> ExitCode {
    // The port the server would listen on, read as `serve` reads it; 9000 when unreadable.
    let port = config::listen_port(&|name: &str| std::env::var(name).ok()).unwrap_or(9000);
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<bool, std::io::Error>(head.starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => {
            eprintln!("healthcheck: /health on port {port} did not answer 200");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("healthcheck: port {port}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("healthcheck: port {port}: no answer within 2 s");
            ExitCode::FAILURE
        }
    }
}
