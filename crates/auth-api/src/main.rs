//! The `auth-api` command: `serve` (the default), `add-user NAME` (password on stdin) and `revoke-user NAME`.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use auth_api::config::AuthSettings;
use auth_api::revocation::RevocationList;
use auth_api::server::Application;
use auth_api::users::{UserError, UserStore, Username};
use clap::{Parser, Subcommand};
use jtc_shared::config;
use jtc_shared::mongo::connect;
use jtc_shared::redact::scrub_registered;
use jtc_shared::shutdown::shutdown_signal;
use jtc_shared::telemetry;
use jtc_shared::Secret;

#[derive(Parser)]
#[command(version, about = "JWT auth API: login, protected, refresh, logout; revocations go to the blacklist.")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve on 0.0.0.0:$PORT (default 5000); HTTPS when TLS_CERT_FILE and TLS_KEY_FILE are set.
    Serve,
    /// Add a user, reading the password from the first line of stdin (never from the command line).
    AddUser {
        /// The user name.
        name: String,
        /// Change the password of an existing user instead (which also logs them out everywhere).
        #[arg(long)]
        update: bool,
    },
    /// Log a user out everywhere: every token of theirs issued until now is refused from now on.
    RevokeUser {
        /// The user name (the user document need not exist any more).
        name: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    return_freed_memory();
    let cli = Cli::parse();
    let settings = match AuthSettings::from_env() {
        Ok(settings) => settings,
        Err(e) => return config::exit_on_config_error("auth-api", &e),
    };
    jtc_shared::redact::register(settings.secret_values());
    // After the settings: the exporter is one of them, and a secret of its headers is registered before any line.
    if let Err(e) = telemetry::init(telemetry::json_requested(), settings.traces.as_ref()) {
        eprintln!("auth-api: {e}");
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&settings).await,
        Command::AddUser { name, update } => add_user(&settings, &name, update).await,
        Command::RevokeUser { name } => revoke_user(&settings, &name).await,
    }
}

/// The blacklist, as `serve` writes it.
async fn revocations(settings: &AuthSettings) -> Result<RevocationList, mongodb::error::Error> {
    let client = connect(&settings.db, "auth-api").await?;
    let blacklist = client.database(&settings.db.database).collection(&settings.blacklist_collection);
    Ok(RevocationList::new(blacklist, &settings.expires_field))
}

/// The users collection.
async fn users(settings: &AuthSettings) -> Result<UserStore, UserError> {
    let client = connect(&settings.db, "auth-api").await?;
    // One-shot commands hash, they do not verify: nothing to keep.
    UserStore::new(client.database(&settings.db.database).collection(&settings.users_collection), Duration::ZERO).await
}

/// Every token of `username` issued until now refused; prints when. The name is the one the user is stored under
/// (tokens carry it), else the canonical one.
async fn log_out_everywhere(settings: &AuthSettings, username: &Username) -> Result<(), UserError> {
    let name = users(settings).await?.stored_name(username).await?.unwrap_or_else(|| username.as_str().to_string());
    let longest = settings.jwt.refresh_ttl.max(settings.jwt.access_ttl);
    let until = revocations(settings).await?.revoke_user(&name, longest).await?;
    let until = until.try_to_rfc3339_string().unwrap_or_default();
    eprintln!("auth-api: every token of {name:?} issued until {until} is refused from now on");
    Ok(())
}

async fn revoke_user(settings: &AuthSettings, name: &str) -> ExitCode {
    let username = match Username::parse(name) {
        Ok(username) => username,
        Err(e) => {
            eprintln!("auth-api: {}", scrub_registered(&e.to_string()));
            return ExitCode::FAILURE;
        }
    };
    match log_out_everywhere(settings, &username).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth-api: {}", scrub_registered(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: &AuthSettings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            eprintln!("auth-api: cannot start: {}", scrub_registered(&e.to_string()));
            return ExitCode::FAILURE;
        }
    };
    let scheme = if app.is_tls() { "https" } else { "http" };
    tracing::info!(port = app.port(), "auth-api listening on {scheme}://0.0.0.0:{}", app.port());
    let stopped = app.run_until_stopped(shutdown_signal()).await;
    // The spans of the last requests, delivered before the process ends.
    if let Err(e) = jtc_shared::traces::flush().await {
        tracing::warn!(error = %e, "spans were not delivered");
    }
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn add_user(settings: &AuthSettings, name: &str, update: bool) -> ExitCode {
    let username = match Username::parse(name) {
        Ok(username) => username,
        Err(e) => {
            eprintln!("auth-api: {}", scrub_registered(&e.to_string()));
            return ExitCode::FAILURE;
        }
    };
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Password for {name:?} (one line; it will be shown as you type, prefer a pipe):");
    }
    let mut line = String::new();
    if let Err(e) = stdin.lock().read_line(&mut line) {
        eprintln!("auth-api: cannot read the password from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = Secret::new(line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line));
    let result = async {
        let users = users(settings).await?;
        users.ensure_indexes().await?;
        users.add(&username, password, update, settings.password_min_length).await?;
        if update {
            // A new password ends every session the old one opened, access tokens included.
            log_out_everywhere(settings, &username).await?;
        }
        Ok::<(), UserError>(())
    }
    .await;
    match result {
        Ok(()) => {
            eprintln!("auth-api: user {name:?} {}", if update { "updated" } else { "added" });
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("auth-api: {}", scrub_registered(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// Every password verification allocates argon2id's 19 MiB of memory (kept between verifications by
/// `password_memory`, and dropped after a burst). glibc's malloc serves such a block with `mmap` at first, but
/// after the first free it raises its mmap threshold to the block's size, and from then on serves and keeps the
/// blocks in its per-thread arenas: a burst of concurrent failed logins grew the process by hundreds of megabytes,
/// and it never went back (`scripts/bench auth-memory`, BENCHMARKS.md). A fixed threshold of 1 MiB keeps every
/// argon2 block in an `mmap` of its own, returned to the system the moment it is freed. glibc's own
/// `MALLOC_MMAP_THRESHOLD_`, when the environment sets it, is left to rule (the benchmark sets it to run glibc's
/// way side by side).
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes a malloc tuning parameter; it is called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        }
    }
}
