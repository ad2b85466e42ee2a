//! The `jwt-token-cleaner` command: `serve` (the default), `sweep`, `healthcheck`, `seed-sample`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jtc_shared::shutdown::shutdown_signal;
use jtc_shared::telemetry;
use jwt_token_cleaner::config::{self, Settings, MAX_BATCH_SIZE, MAX_TIME_BUDGET_SECONDS};
use jwt_token_cleaner::sample;
use jwt_token_cleaner::server::{envelope, Application};
use jwt_token_cleaner::store::fallback::Backends;
use jwt_token_cleaner::store::mongo::MongoStore;
use jwt_token_cleaner::sweep::{self, SweepOptions, SweepOverrides, TokenVerifier};
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
    match &settings.db {
        Some(db) => Ok(MongoStore::new(db.clone(), &settings.sweep.collection, &settings.sweep.expires_field)),
        None => {
            eprintln!("jwt-token-cleaner: this command needs a direct connection: set DB_URI");
            Err(ExitCode::from(2))
        }
    }
}

async fn sweep_once(settings: &Settings, overrides: SweepOverrides) -> ExitCode {
    let options = SweepOptions::resolve(&settings.sweep, &settings.legacy, overrides);
    let request_id = format!("cli-{}", uuid::Uuid::new_v4());
    let backends = match Backends::from_settings(settings) {
        Ok(backends) => backends,
        Err(e) => {
            eprintln!("jwt-token-cleaner: {e}");
            return ExitCode::FAILURE;
        }
    };
    let verifier = TokenVerifier::from_settings(&settings.legacy);
    let store = backends.for_run();
    let started = chrono::Utc::now();
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        Some(ProgressBar::start(&store, &options, started).await)
    } else {
        None
    };
    let lines = sweep::LogLines::new(settings.progress_every);
    let progress: &dyn sweep::Progress = match &bar {
        Some(bar) => bar,
        None => &lines,
    };
    let result = sweep::run_at(&store, &options, verifier.as_ref(), &request_id, started, progress).await;
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

/// A progress bar on stderr for a sweep run from a terminal: entries deleted out of the expired count (counted
/// first, one indexed count per lane), the rate, the elapsed time and the ETA.
struct ProgressBar(indicatif::ProgressBar);

impl ProgressBar {
    async fn start(
        store: &dyn jwt_token_cleaner::store::BlacklistStore,
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
    store.shutdown().await;
    match created {
        Ok(name) => {
            eprintln!("index {name} on {} is in place", settings.sweep.expires_field);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jwt-token-cleaner: cannot create the index: {e}");
            ExitCode::FAILURE
        }
    }
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
