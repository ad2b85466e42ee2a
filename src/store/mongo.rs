//! The direct MongoDB backend, through the official driver.
//!
//! The client is created on first use and then kept: its connection pool survives between invocations and
//! reconnects by itself after the server comes back. Server selection and connect timeouts are short
//! (`DB_TIMEOUT_SECONDS`), so an unreachable database fails well inside the sweep's time budget.

use std::sync::Arc;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::{Client, Collection};
use tokio::sync::OnceCell;

use super::filter::{
    backfill_update, bounded_count_pipeline, count_answer, indexes_lead_with, legacy_answer, legacy_ids_filter,
    legacy_page_pipeline, measure_answer, measure_pipeline, oldest_answer, oldest_pipeline, range_filter, stats_answer,
    stats_pipeline,
};
use super::lease::{self, LeaseClaim, LeaseState};
use super::{
    Backend, CollectionStats, ExpiryRange, HistorySettings, LegacyEntry, LegacyStore, Measure, RunHistory, RunQuery,
    StoreError, SweepStore, HISTORY_TIME_FIELD,
};
use crate::config::{DbSettings, FieldPath, MongoName};
use jtc_shared::mongo::{connect, is_duplicate_key, is_index_conflict, DriverError};

/// The blacklist collection reached through a direct MongoDB connection.
pub struct MongoStore {
    settings: DbSettings,
    collection_name: MongoName,
    field: FieldPath,
    /// Shared by the stores of every target on this connection: one pool.
    client: Arc<OnceCell<Client>>,
    history: Option<HistorySettings>,
    /// The history's TTL index is in place (made once per process).
    history_indexed: OnceCell<()>,
}

impl MongoStore {
    /// A store for `collection` in the configured database; nothing is connected until the first call.
    pub fn new(settings: DbSettings, collection: &MongoName, expires_field: &FieldPath) -> Self {
        Self {
            settings,
            collection_name: collection.clone(),
            field: expires_field.clone(),
            client: Arc::new(OnceCell::new()),
            history: None,
            history_indexed: OnceCell::new(),
        }
    }

    /// A store for `collection` in `database` on this store's connection (its pool is shared), without a history.
    pub fn for_collection(&self, database: &MongoName, collection: &MongoName, expires_field: &FieldPath) -> Self {
        let mut settings = self.settings.clone();
        settings.database = database.clone();
        Self {
            settings,
            collection_name: collection.clone(),
            field: expires_field.clone(),
            client: Arc::clone(&self.client),
            history: None,
            history_indexed: OnceCell::new(),
        }
    }

    /// The same store, recording runs as `history` says.
    pub fn with_history(mut self, history: Option<HistorySettings>) -> Self {
        self.history = history;
        self
    }

    fn history(&self) -> Result<&HistorySettings, StoreError> {
        self.history
            .as_ref()
            .ok_or_else(|| StoreError::query("the run history is off (CLEANUP_HISTORY_COLLECTION is empty)"))
    }

    async fn history_collection(&self) -> Result<Collection<Document>, StoreError> {
        let history = self.history()?;
        Ok(self.client().await?.database(&self.settings.database).collection(&history.collection))
    }

    /// Makes sure the run history has its TTL index on `started_at`, keeping records `CLEANUP_HISTORY_DAYS`; an
    /// index there with another TTL is changed in place (`collMod`). Returns its name.
    pub async fn ensure_history_index(&self) -> Result<String, StoreError> {
        let history = self.history()?;
        let keep = history.keep;
        let options = mongodb::options::IndexOptions::builder()
            .expire_after(Some(keep))
            .name(Some(format!("{HISTORY_TIME_FIELD}_ttl")))
            .build();
        let model = mongodb::IndexModel::builder().keys(doc! { HISTORY_TIME_FIELD: 1 }).options(options).build();
        let collection = self.history_collection().await?;
        match collection.create_index(model).await {
            Ok(created) => Ok(created.index_name),
            Err(e) if is_index_conflict(&e) => {
                let db = self.client().await?.database(&self.settings.database);
                let seconds = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
                let command = doc! {
                    "collMod": &*history.collection,
                    "index": { "keyPattern": { HISTORY_TIME_FIELD: 1 }, "expireAfterSeconds": seconds },
                };
                db.run_command(command).await.map_err(|e| self.classify(e))?;
                Ok(format!("{HISTORY_TIME_FIELD}_1 (TTL changed)"))
            }
            Err(e) => Err(self.classify(e)),
        }
    }

    async fn client(&self) -> Result<&Client, StoreError> {
        self.client
            .get_or_try_init(|| async {
                connect(&self.settings, "jwt-token-cleaner").await.map_err(|e| self.classify(e))
            })
            .await
    }

    /// Closes the connection pool and waits for the driver's background tasks, for one-shot commands: a process
    /// that exits with them still running may see the driver panic in one of them as the runtime goes away.
    pub async fn shutdown(&self) {
        if let Some(client) = self.client.get() {
            client.clone().shutdown().await;
        }
    }

    /// The blacklist collection itself, for tools that seed or inspect it (not used by the sweep).
    pub async fn raw_collection(&self) -> Result<Collection<Document>, StoreError> {
        Ok(self.client().await?.database(&self.settings.database).collection(&self.collection_name))
    }

    /// A driver error as a message without secrets.
    pub fn describe(&self, error: MongoError) -> String {
        self.classify(error).to_string()
    }

    /// Creates the index on the expiry field (a TTL index with `ttl_seconds`); returns its name. An existing index
    /// on the field with other TTL options (a plain one from an earlier `create-index`, say) is converted in place
    /// with `collMod` rather than refused.
    pub async fn create_expiry_index(&self, ttl_seconds: Option<u64>) -> Result<String, StoreError> {
        let options = mongodb::options::IndexOptions::builder()
            .expire_after(ttl_seconds.map(std::time::Duration::from_secs))
            .build();
        let model = mongodb::IndexModel::builder().keys(doc! { &self.field: 1 }).options(options).build();
        let collection = self.raw_collection().await?;
        match collection.create_index(model).await {
            Ok(created) => Ok(created.index_name),
            // An index on the field exists, TTL or not.
            Err(e) if is_index_conflict(&e) => {
                let Some(ttl) = ttl_seconds else {
                    return Err(StoreError::query(format!(
                        "a TTL index on {} already exists; drop it first to make a plain one",
                        self.field
                    )));
                };
                let db = self.client().await?.database(&self.settings.database);
                let expire = i64::try_from(ttl).unwrap_or(i64::MAX);
                let command = doc! {
                    "collMod": &*self.collection_name,
                    "index": { "keyPattern": { &self.field: 1 }, "expireAfterSeconds": expire },
                };
                db.run_command(command).await.map_err(|e| self.classify(e))?;
                Ok(format!("{}_1 (converted to TTL)", self.field))
            }
            Err(e) => Err(self.classify(e)),
        }
    }

    async fn aggregate(&self, pipeline: Vec<Document>) -> Result<Vec<Document>, StoreError> {
        let cursor = self.raw_collection().await?.aggregate(pipeline).await.map_err(|e| self.classify(e))?;
        cursor.try_collect().await.map_err(|e| self.classify(e))
    }

    /// Maps a driver error to a [`StoreError`] whose message (and source) carries no secret.
    fn classify(&self, error: MongoError) -> StoreError {
        let source = DriverError::scrubbed(&error, &self.settings);
        let message = source.message.clone();
        let classified = match *error.kind {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::ConnectionPoolCleared { .. } => StoreError::unreachable(message),
            ErrorKind::Authentication { .. } => StoreError::auth(message),
            ErrorKind::InvalidArgument { .. } => StoreError::query(format!("DB_URI or options rejected: {message}")),
            _ => StoreError::query(message),
        };
        classified.caused_by(source)
    }
}

impl Backend for MongoStore {
    fn backend(&self) -> String {
        "mongodb".into()
    }
}

#[async_trait::async_trait]
impl SweepStore for MongoStore {
    async fn check(&self) -> Result<(), StoreError> {
        let db = self.client().await?.database(&self.settings.database);
        db.list_collection_names()
            .filter(doc! { "name": &*self.collection_name })
            .await
            .map_err(|e| self.classify(e))?;
        Ok(())
    }

    async fn stats(&self) -> Result<CollectionStats, StoreError> {
        stats_answer(self.aggregate(stats_pipeline()).await)
    }

    async fn measure(&self, range: &ExpiryRange, limit: Option<u64>) -> Result<Measure, StoreError> {
        measure_answer(self.aggregate(measure_pipeline(&self.field, range, limit)).await)
    }

    /// The driver's `deletedCount` is the server's own word, so `at_most` is not enforced here: a count above it
    /// means another writer added expired entries to the range, and they were deleted.
    async fn delete(&self, range: &ExpiryRange, _at_most: u64) -> Result<u64, StoreError> {
        let collection = self.raw_collection().await?;
        let result = collection.delete_many(range_filter(&self.field, range)).await.map_err(|e| self.classify(e))?;
        Ok(result.deleted_count)
    }

    async fn count(&self, range: &ExpiryRange) -> Result<u64, StoreError> {
        let collection = self.raw_collection().await?;
        collection.count_documents(range_filter(&self.field, range)).await.map_err(|e| self.classify(e))
    }

    async fn count_at_most(&self, range: &ExpiryRange, limit: u64) -> Result<u64, StoreError> {
        count_answer(self.aggregate(bounded_count_pipeline(&self.field, range, limit)).await)
    }

    async fn oldest_expiry(&self, range: &ExpiryRange) -> Result<Option<i64>, StoreError> {
        oldest_answer(&self.field, self.aggregate(oldest_pipeline(&self.field, range)).await)
    }

    async fn expiry_indexed(&self) -> Result<Option<bool>, StoreError> {
        let collection = self.raw_collection().await?;
        let indexes: Vec<mongodb::IndexModel> = match collection.list_indexes().await {
            Ok(cursor) => cursor.try_collect().await.map_err(|e| self.classify(e))?,
            // No collection yet: nothing to scan, nothing to warn about.
            Err(e) if matches!(&*e.kind, ErrorKind::Command(c) if c.code == 26) => return Ok(Some(true)),
            Err(e) => return Err(self.classify(e)),
        };
        let keys: Vec<Document> = indexes.into_iter().map(|index| index.keys).collect();
        Ok(Some(indexes_lead_with(&self.field, &keys)))
    }
}

#[async_trait::async_trait]
impl LegacyStore for MongoStore {
    async fn legacy_page(&self, after: Option<&Bson>, limit: u32) -> Result<Vec<LegacyEntry>, StoreError> {
        legacy_answer(self.aggregate(legacy_page_pipeline(&self.field, after, limit)).await)
    }

    async fn delete_legacy(&self, ids: &[Bson]) -> Result<u64, StoreError> {
        let collection = self.raw_collection().await?;
        let result = collection.delete_many(legacy_ids_filter(&self.field, ids)).await.map_err(|e| self.classify(e))?;
        Ok(result.deleted_count)
    }

    async fn backfill_expiry(&self, id: &Bson, expires_ms: i64) -> Result<bool, StoreError> {
        let collection = self.raw_collection().await?;
        let (filter, update) = backfill_update(&self.field, id, expires_ms);
        let result = collection.update_one(filter, update).await.map_err(|e| self.classify(e))?;
        Ok(result.modified_count == 1)
    }
}

#[async_trait::async_trait]
impl RunHistory for MongoStore {
    async fn record_run(&self, run: &Document) -> Result<(), StoreError> {
        self.history_indexed.get_or_try_init(|| async { self.ensure_history_index().await.map(|_| ()) }).await?;
        let collection = self.history_collection().await?;
        collection.insert_one(run).await.map_err(|e| self.classify(e))?;
        Ok(())
    }

    async fn recent_runs(&self, query: &RunQuery) -> Result<Vec<Document>, StoreError> {
        let collection = self.history_collection().await?;
        let cursor = collection
            .find(query.filter.clone())
            .projection(query.projection.clone())
            .sort(doc! { HISTORY_TIME_FIELD: -1 })
            .limit(i64::from(query.limit))
            .await
            .map_err(|e| self.classify(e))?;
        cursor.try_collect().await.map_err(|e| self.classify(e))
    }

    async fn take_lease(&self, claim: &LeaseClaim) -> Result<LeaseState, StoreError> {
        let collection = self.history_collection().await?;
        // Twice at most: a lease released (or run out) between the collision and the read is tried once more.
        for _ in 0..2 {
            let taken = collection.update_one(lease::take_filter(claim), lease::take_update(claim)).upsert(true).await;
            match taken {
                Ok(_) => return Ok(LeaseState::Taken),
                Err(e) if is_duplicate_key(&e) => {
                    let found = collection.find_one(lease::id_filter()).await.map_err(|e| self.classify(e))?;
                    if let Some(held) = lease::held_by(found.as_ref(), claim)? {
                        return Ok(held);
                    }
                }
                Err(e) => return Err(self.classify(e)),
            }
        }
        Err(StoreError::query("the lease changed hands twice while it was being taken"))
    }

    async fn release_lease(&self, holder: &str) -> Result<(), StoreError> {
        let collection = self.history_collection().await?;
        collection.delete_one(lease::release_filter(holder)).await.map_err(|e| self.classify(e))?;
        Ok(())
    }
}
