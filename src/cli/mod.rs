//! The commands, one file each; `main.rs` parses the command line and dispatches here. What two commands share (the
//! runner over the configured backends, the direct connection) is below.

pub(crate) mod create_index;
pub(crate) mod healthcheck;
pub(crate) mod seed_sample;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod sweep;

use std::process::ExitCode;

use jwt_token_cleaner::config::Settings;
use jwt_token_cleaner::runner::Runner;
use jwt_token_cleaner::store::backends::{self, Backends};
use jwt_token_cleaner::store::mongo::MongoStore;

/// The direct connection, for the tools that need one.
pub(crate) fn direct_store(settings: &Settings) -> Result<MongoStore, ExitCode> {
    match backends::direct(settings) {
        Some(store) => Ok(store),
        None => {
            eprintln!("jwt-token-cleaner: this command needs a direct connection: set DB_URI");
            Err(ExitCode::from(2))
        }
    }
}

/// The runner over the configured backends; `None` (said on stderr) when they cannot be prepared.
pub(crate) fn runner(settings: &Settings) -> Option<Runner> {
    match Backends::from_settings(settings) {
        Ok(backends) => Some(Runner::new(settings, backends)),
        Err(e) => {
            eprintln!("jwt-token-cleaner: {e}");
            None
        }
    }
}
