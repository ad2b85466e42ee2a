//! The factory: the one place that turns settings into stores. The server, the runner and the one-shot commands
//! all get theirs here, so a backend is built one way wherever it is used.

use std::sync::Arc;

use super::fallback::Fallback;
use super::http_api::HttpApiStore;
use super::mongo::MongoStore;
use super::{Store, StoreError};
use crate::config::Settings;

/// The configured backends, long-lived (their connection pools are reused between invocations).
pub struct Backends {
    chain: Vec<Arc<dyn Store>>,
}

impl Backends {
    /// The HTTP API when `MONGODB_API_URL` is set, then MongoDB when `DB_URI` is set.
    pub fn from_settings(settings: &Settings) -> Result<Self, StoreError> {
        let mut chain: Vec<Arc<dyn Store>> = Vec::new();
        if let Some(api) = &settings.api {
            let store = HttpApiStore::new(api.clone(), &settings.sweep.collection, &settings.sweep.expires_field)?;
            chain.push(Arc::new(store.with_history(settings.history.clone())));
        }
        if let Some(direct) = direct(settings) {
            chain.push(Arc::new(direct));
        }
        Ok(Self::new(chain))
    }

    /// A chain of the given backends, in order.
    pub fn new(chain: Vec<Arc<dyn Store>>) -> Self {
        Self { chain }
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
    Some(store.with_history(settings.history.clone()))
}
