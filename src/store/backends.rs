//! The factory: the one place that turns settings into stores. The server, the runner and the one-shot commands
//! all get theirs here, so a backend is built one way wherever it is used.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::fallback::Fallback;
use super::http_api::HttpApiStore;
use super::mongo::MongoStore;
use super::{Store, StoreError};
use crate::config::Settings;
use crate::targets::TargetName;

/// The longest an exit waits for the database connections to close.
pub const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The configured backends, long-lived (their connection pools are reused between invocations).
pub struct Backends {
    chain: Vec<Arc<dyn Store>>,
    /// The direct connection of the chain, to close at exit.
    direct: Option<Arc<MongoStore>>,
    /// With `CLEANUP_TARGETS`: each target's chain (the same backends, on its database and collection; the direct
    /// ones share one connection pool). The run history stays on `chain`.
    targets: BTreeMap<TargetName, Vec<Arc<dyn Store>>>,
}

impl Backends {
    /// The HTTP API when `MONGODB_API_URL` is set, then MongoDB when `DB_URI` is set.
    pub fn from_settings(settings: &Settings) -> Result<Self, StoreError> {
        let mut chain: Vec<Arc<dyn Store>> = Vec::new();
        if let Some(api) = &settings.api {
            let store = HttpApiStore::new(api.clone(), &settings.sweep.collection, &settings.sweep.expires_field)?;
            chain.push(Arc::new(store.with_history(settings.history.clone())));
        }
        let direct = direct(settings).map(Arc::new);
        if let Some(direct) = &direct {
            chain.push(Arc::clone(direct) as Arc<dyn Store>);
        }
        let mut targets = BTreeMap::new();
        if settings.targets.configured {
            for target in &settings.targets.list {
                let mut links: Vec<Arc<dyn Store>> = Vec::new();
                if let Some(api) = &settings.api {
                    let mut api = api.clone();
                    api.database = target.database.clone();
                    links.push(Arc::new(HttpApiStore::new(api, &target.collection, &target.expires_field)?));
                }
                if let Some(direct) = &direct {
                    links.push(Arc::new(direct.for_collection(
                        &target.database,
                        &target.collection,
                        &target.expires_field,
                    )));
                }
                targets.insert(target.name.clone(), links);
            }
        }
        Ok(Self { chain, direct, targets })
    }

    /// A chain of the given backends, in order.
    pub fn new(chain: Vec<Arc<dyn Store>>) -> Self {
        Self { chain, direct: None, targets: BTreeMap::new() }
    }

    /// A fresh chain for one run over `target` (configured with `CLEANUP_TARGETS`); the default chain for any other
    /// name.
    pub fn for_target(&self, target: &TargetName) -> Fallback {
        self.target_chain(target).unwrap_or_else(|| self.for_run())
    }

    /// A fresh chain of `target`'s own (configured with `CLEANUP_TARGETS`); `None` for any other name, whose sweep
    /// runs on the run's chain.
    pub fn target_chain(&self, target: &TargetName) -> Option<Fallback> {
        self.targets.get(target).map(|links| Fallback::new(links.clone()))
    }

    /// Closes the direct connection's pool and waits for the driver's tasks (see `MongoStore::shutdown`), at most
    /// [`SHUTDOWN_WAIT`] (the driver waits for every operation still in flight): at the end of `serve` and of a
    /// one-shot command.
    pub async fn shutdown(&self) {
        if let Some(direct) = &self.direct {
            if tokio::time::timeout(SHUTDOWN_WAIT, direct.shutdown()).await.is_err() {
                tracing::warn!("the database connections did not close within {SHUTDOWN_WAIT:?}; exiting anyway");
            }
        }
    }

    /// A fresh chain for one run, starting at the first backend.
    pub fn for_run(&self) -> Fallback {
        Fallback::new(self.chain.clone())
    }
}

/// The direct connection (`DB_URI`) on its own, for the commands only it can serve (`create-index` makes indexes,
/// which the Data API cannot; `seed-sample` inserts in bulk); `None` without `DB_URI`.
pub fn direct(settings: &Settings) -> Option<MongoStore> {
    let db = settings.db.as_ref()?;
    let store = MongoStore::new(db.clone(), &settings.sweep.collection, &settings.sweep.expires_field);
    Some(store.with_history(settings.history.clone()).with_write_concern(settings.write_concern))
}
