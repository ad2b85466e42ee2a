//! The MongoDB connection both products open the same way, and driver errors as messages without secrets.

use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::{ClientOptions, Credential};
use mongodb::Client;

use crate::config::DbSettings;

/// A client for `settings` (`DB_URI`, with `DB_ACCOUNT`/`DB_PASSWORD` as the credential when set) and short
/// server-selection and connect timeouts. The driver connects lazily, on the first operation.
pub async fn connect(settings: &DbSettings, app_name: &str) -> Result<Client, MongoError> {
    let mut options = ClientOptions::parse(settings.uri.expose()).await?;
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

/// A driver error as one line without secrets: the error's kind alone (the full error also dumps the raw server
/// reply), with every credential of `settings` scrubbed out.
pub fn describe(error: &MongoError, settings: &DbSettings) -> String {
    let message = match &*error.kind {
        ErrorKind::Command(c) => format!("{} ({}): {}", c.code_name, c.code, c.message),
        kind => kind.to_string(),
    };
    let mut secrets: Vec<&str> = settings.password.iter().map(|p| p.expose()).collect();
    let uri_password = uri_password(settings.uri.expose());
    secrets.extend(uri_password.as_deref());
    crate::redact::scrub(&message, &secrets)
}

/// The password part of a connection string, if any.
fn uri_password(uri: &str) -> Option<String> {
    let rest = &uri[uri.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    userinfo.split_once(':').map(|(_, password)| password.to_string()).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_uri_password() {
        assert_eq!(uri_password("mongodb://u:p%40ss@h:1/db").as_deref(), Some("p%40ss"));
        assert_eq!(uri_password("mongodb://u@h/db"), None);
        assert_eq!(uri_password("mongodb://h/db?x=a@b"), None);
    }
}
