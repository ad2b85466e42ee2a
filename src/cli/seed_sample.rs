//! `seed-sample`: a clearly labelled sample blacklist, through the direct connection.

use std::process::ExitCode;

use jwt_token_cleaner::config::Settings;
use jwt_token_cleaner::sample;

use super::direct_store;

pub(crate) async fn run(settings: &Settings, count: u64, expired_percent: u8, edge_cases: bool) -> ExitCode {
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
