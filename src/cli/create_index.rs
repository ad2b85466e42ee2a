//! `create-index`: the expiry field's index (a TTL one with `--ttl`) and the run history's TTL index, through the
//! direct connection.

use std::process::ExitCode;

use jwt_token_cleaner::config::Settings;

use super::direct_store;

pub(crate) async fn run(settings: &Settings, ttl: Option<u64>) -> ExitCode {
    let store = match direct_store(settings) {
        Ok(store) => store,
        Err(code) => return code,
    };
    // Every target's index (the one collection's without CLEANUP_TARGETS), on the one connection.
    let mut created = Vec::new();
    for target in &settings.targets.list {
        let on = store.for_collection(&target.database, &target.collection, &target.expires_field);
        created.push((settings.targets.index_of(target), on.create_expiry_index(ttl).await));
    }
    // The run history's TTL index (CLEANUP_HISTORY_DAYS), when the history is on.
    let history = match &settings.history {
        Some(history) => Some((history, store.ensure_history_index().await)),
        None => None,
    };
    store.shutdown().await;
    let mut code = ExitCode::SUCCESS;
    for (what, created) in created {
        match created {
            Ok(name) => eprintln!("index {name} on {what} is in place"),
            Err(e) => {
                eprintln!("jwt-token-cleaner: cannot create the index on {what}: {e}");
                code = ExitCode::FAILURE;
            }
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
