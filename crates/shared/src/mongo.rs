//! The MongoDB connection both products open the same way, and driver errors as messages without secrets.

use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::{ClientOptions, Credential};
use mongodb::Client;

use crate::config::DbSettings;

/// A client for `settings` (`DB_URI`, with `DB_ACCOUNT`/`DB_PASSWORD` as the credential when set) and short
/// server-selection and connect timeouts. The driver connects lazily, on the first operation.
pub async fn connect(settings: &DbSettings, app_name: &str) -> Result<Client, MongoError> {
    let mut options = ClientOptions::parse(settings.uri.expose()).await?;
    // The credential as the driver itself read it, however the URI spelled it: scrubbed from every log line.
    if let Some(credential) = &options.credential {
        let name = credential.username.iter().filter(|n| n.len() >= crate::redact::MIN_SCRUBBED_NAME);
        crate::redact::register(name.chain(credential.password.iter()).cloned());
    }
    options.app_name = Some(app_name.into());
    options.server_selection_timeout = Some(settings.timeout);
    options.connect_timeout = Some(settings.timeout);
    if let Some(account) = &settings.account {
        let mut credential = options.credential.take().unwrap_or_else(|| Credential::builder().build());
        credential.username = Some(account.clone());
        credential.password = settings.password.as_ref().map(|p| p.expose().to_string());
        options.credential = Some(credential);
    }
    Client::with_options(options)
}

/// True for a duplicate-key error (11000) on a write.
pub fn is_duplicate_key(e: &MongoError) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

/// True when an index on the same keys already exists with other options: IndexOptionsConflict (85) or
/// IndexKeySpecsConflict (86), e.g. a TTL index where a plain one is asked for.
pub fn is_index_conflict(e: &MongoError) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::Command(c) if c.code == 85 || c.code == 86)
}

/// A driver error kept as an error (for a `source` chain), without secrets: the [`describe`]d message and the
/// server's error code, if any. The driver's own error is never kept: its `Display` may quote the URI.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DriverError {
    /// The scrubbed one-line message.
    pub message: String,
    /// The server's error code, for a command error.
    pub code: Option<i32>,
}

impl DriverError {
    /// The scrubbed copy of `error`.
    pub fn scrubbed(error: &MongoError, settings: &DbSettings) -> Self {
        let code = match &*error.kind {
            ErrorKind::Command(c) => Some(c.code),
            _ => None,
        };
        Self { message: describe(error, settings), code }
    }
}

/// A driver error as one line without secrets: the error's kind alone (the full error also dumps the raw server
/// reply), with every credential of `settings` and every registered secret scrubbed out. Every driver error either
/// binary shows anyone goes through here.
pub fn describe(error: &MongoError, settings: &DbSettings) -> String {
    let message = match &*error.kind {
        ErrorKind::Command(c) => format!("{} ({}): {}", c.code_name, c.code, c.message),
        kind => kind.to_string(),
    };
    let secrets = settings.secret_values();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    crate::redact::scrub_registered(&crate::redact::scrub(&message, &secrets))
}

/// The database server's clock, now: `hello`'s `localTime`. Administrative writes that draw a line in time
/// (`revoke-user`, a password change) use it rather than the clock of the host they run on: a host whose clock is
/// behind would leave the tokens issued in that gap working.
pub async fn server_time(client: &Client) -> Result<mongodb::bson::DateTime, MongoError> {
    let hello = client.database("admin").run_command(mongodb::bson::doc! { "hello": 1 }).await?;
    hello.get_datetime("localTime").copied().map_err(|_| {
        MongoError::custom(std::io::Error::other("the server's hello carries no localTime: its clock is unknown"))
    })
}
