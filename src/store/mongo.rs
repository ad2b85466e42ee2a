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
use super::{
    Backend, CollectionStats, Deleted, ExpiryRange, HistorySettings, LeaseWrite, LegacyEntry, LegacyStore, Measure,
    ReplicationLag, RunHistory, RunQuery, StoreError, SweepStore, HISTORY_TIME_FIELD,
};
use crate::config::{Acknowledgment, DbSettings, DeleteWriteConcern, FieldPath, MongoName};
use jtc_shared::mongo::{connect, is_duplicate_key, is_index_conflict, DriverError};

/// The blacklist collection reached through a direct MongoDB connection.
pub struct MongoStore {
    settings: DbSettings,
    collection_name: MongoName,
    field: FieldPath,
    /// Shared by the stores of every target on this connection: one pool.
    client: Arc<OnceCell<Client>>,
    history: Option<HistorySettings>,
    /// `CLEANUP_WRITE_CONCERN`, on every delete.
    write_concern: Option<DeleteWriteConcern>,
    /// The write concern can be satisfied (checked once, before the first delete).
    write_concern_checked: OnceCell<()>,
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
            write_concern: None,
            write_concern_checked: OnceCell::new(),
            history_indexed: OnceCell::new(),
        }
    }

    /// The same store, its deletes waiting for `write_concern` (`CLEANUP_WRITE_CONCERN`) when one is set.
    pub fn with_write_concern(mut self, write_concern: Option<DeleteWriteConcern>) -> Self {
        self.write_concern = write_concern;
        self
    }

    /// Deletes what `filter` matches, with the write concern when one is set.
    async fn delete_where(&self, filter: Document) -> Result<Deleted, StoreError> {
        let Some(concern) = self.write_concern else {
            let collection = self.raw_collection().await?;
            let result = collection.delete_many(filter).await.map_err(|e| self.classify(e))?;
            return Ok(Deleted::confirmed(result.deleted_count));
        };
        // The command itself rather than the driver's `delete_many`: after a write concern timeout the driver
        // reports only the error, and the reply's `n` (what the primary deleted) is what the report must count.
        // First, once per store: a delete that matches nothing, with the same write concern. A server applies a
        // delete before it finds the write concern unsatisfiable (the test server and MongoDB both), so without this
        // a `w` the set cannot satisfy would fail the run after its first batch was gone; with it, nothing is touched.
        self.write_concern_checked
            .get_or_try_init(|| async {
                self.delete_command(doc! { "_id": { "$in": [] } }, &concern).await.map(|_| ())
            })
            .await?;
        self.delete_command(filter, &concern).await
    }

    /// One `delete` command of what `filter` matches, with `concern`.
    async fn delete_command(&self, filter: Document, concern: &DeleteWriteConcern) -> Result<Deleted, StoreError> {
        let database = self.client().await?.database(&self.settings.database);
        let command = doc! {
            "delete": &*self.collection_name,
            "deletes": [{ "q": filter, "limit": 0 }],
            "writeConcern": write_concern_document(concern),
        };
        let reply = database.run_command(command).await.map_err(|e| self.classify(e))?;
        delete_reply(&reply, concern)
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
            write_concern: self.write_concern,
            write_concern_checked: OnceCell::new(),
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

    fn addresses(&self, op: &str) -> (String, String) {
        let collection = match (&self.history, super::call_span::is_history_call(op)) {
            (Some(history), true) => history.collection.to_string(),
            _ => self.collection_name.to_string(),
        };
        (self.settings.database.to_string(), collection)
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
    async fn delete(&self, range: &ExpiryRange, _at_most: u64) -> Result<Deleted, StoreError> {
        self.delete_where(range_filter(&self.field, range)).await
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

    async fn replication_lag(&self) -> Result<ReplicationLag, StoreError> {
        let admin = self.client().await?.database("admin");
        let status = admin.run_command(doc! { "replSetGetStatus": 1 }).await.map_err(|e| self.classify(e))?;
        Ok(ReplicationLag::of_status(&status))
    }
}

#[async_trait::async_trait]
impl LegacyStore for MongoStore {
    async fn legacy_page(&self, after: Option<&Bson>, limit: u32) -> Result<Vec<LegacyEntry>, StoreError> {
        legacy_answer(self.aggregate(legacy_page_pipeline(&self.field, after, limit)).await)
    }

    async fn delete_legacy(&self, ids: &[Bson]) -> Result<u64, StoreError> {
        let deleted = self.delete_where(legacy_ids_filter(&self.field, ids)).await?;
        if !deleted.confirmed {
            tracing::warn!(deleted = deleted.count, "a legacy delete's write concern was not confirmed in time");
        }
        Ok(deleted.count)
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

    async fn write_lease(&self, filter: &Document, update: &Document) -> Result<LeaseWrite, StoreError> {
        let collection = self.history_collection().await?;
        match collection.update_one(filter.clone(), update.clone()).upsert(true).await {
            Ok(_) => Ok(LeaseWrite::Written),
            Err(e) if is_duplicate_key(&e) => Ok(LeaseWrite::Refused(self.classify(e))),
            Err(e) => Err(self.classify(e)),
        }
    }

    async fn read_lease(&self, filter: &Document) -> Result<Option<Document>, StoreError> {
        let collection = self.history_collection().await?;
        collection.find_one(filter.clone()).await.map_err(|e| self.classify(e))
    }

    async fn release_lease(&self, filter: &Document) -> Result<(), StoreError> {
        let collection = self.history_collection().await?;
        collection.delete_one(filter.clone()).await.map_err(|e| self.classify(e))?;
        Ok(())
    }
}

/// `{w, wtimeout}` as the server reads it.
fn write_concern_document(concern: &DeleteWriteConcern) -> Document {
    let w = match concern.w {
        Acknowledgment::Majority => Bson::String("majority".into()),
        Acknowledgment::Members(n) => Bson::Int64(i64::from(n)),
    };
    let wtimeout = i64::try_from(concern.wtimeout.as_millis()).unwrap_or(i64::MAX);
    doc! { "w": w, "wtimeout": wtimeout }
}

/// MongoDB's code for a write concern that was not satisfied within its `wtimeout`.
const WRITE_CONCERN_FAILED: i32 = 64;

/// What a `delete` command's `reply` says: the entries the primary deleted, and whether `concern` confirmed them. A
/// write concern timeout (64) is an unconfirmed delete; any other write concern error (100
/// UnsatisfiableWriteConcern: fewer data-bearing members than `w`; 79 UnknownReplWriteConcern) is an error, never
/// a silent pass.
fn delete_reply(reply: &Document, concern: &DeleteWriteConcern) -> Result<Deleted, StoreError> {
    let count = match reply.get("n") {
        Some(Bson::Int32(n)) => u64::try_from(*n).ok(),
        Some(Bson::Int64(n)) => u64::try_from(*n).ok(),
        _ => None,
    }
    .ok_or_else(|| StoreError::protocol("delete: the reply has no count \"n\""))?;
    if let Ok(errors) = reply.get_array("writeErrors") {
        if let Some(Bson::Document(first)) = errors.first() {
            let message = first.get_str("errmsg").unwrap_or("no message");
            return Err(StoreError::query(format!("delete: {message}")));
        }
    }
    let Ok(error) = reply.get_document("writeConcernError") else { return Ok(Deleted { count, confirmed: true }) };
    let code = error.get_i32("code").unwrap_or(0);
    if code == WRITE_CONCERN_FAILED {
        return Ok(Deleted { count, confirmed: false });
    }
    let w = match concern.w {
        Acknowledgment::Majority => "majority".to_string(),
        Acknowledgment::Members(n) => n.to_string(),
    };
    // The server applied the delete before it found the concern unsatisfiable: its `n` is counted by the report.
    Err(StoreError::query(format!(
        "CLEANUP_WRITE_CONCERN={w} cannot be satisfied by this deployment: {} ({code}): {}",
        error.get_str("codeName").unwrap_or("write concern error"),
        error.get_str("errmsg").unwrap_or("no message")
    ))
    .after_deleting(count))
}

#[cfg(test)]
mod write_concern_tests {
    use super::*;

    const MAJORITY: DeleteWriteConcern =
        DeleteWriteConcern { w: Acknowledgment::Majority, wtimeout: std::time::Duration::from_secs(5) };

    #[test]
    fn a_write_concern_timeout_counts_the_delete_unconfirmed_and_an_unsatisfiable_one_is_an_error() {
        // As the test server answered (2026-12-03), and as MongoDB answers a wtimeout.
        assert_eq!(
            delete_reply(&doc! { "n": 2, "ok": 1.0 }, &MAJORITY).unwrap(),
            Deleted { count: 2, confirmed: true }
        );
        let timeout = doc! { "n": 7_i64, "ok": 1.0, "writeConcernError": {
        "code": 64, "codeName": "WriteConcernFailed", "errmsg": "waiting for replication timed out",
        "errInfo": { "wtimeout": true } } };
        assert_eq!(delete_reply(&timeout, &MAJORITY).unwrap(), Deleted { count: 7, confirmed: false });
        let unsatisfiable = doc! { "n": 0, "ok": 1.0, "writeConcernError": {
        "code": 100, "codeName": "UnsatisfiableWriteConcern", "errmsg": "Not enough data-bearing nodes" } };
        let five = DeleteWriteConcern { w: Acknowledgment::Members(5), ..MAJORITY };
        let error = delete_reply(&unsatisfiable, &five).unwrap_err().to_string();
        assert!(error.contains("CLEANUP_WRITE_CONCERN=5 cannot be satisfied") && error.contains("(100)"), "{error}");
        // Unsatisfiable mid-run: the server applied the delete first, and its `n` travels with the error.
        let mid_run = doc! { "n": 40, "ok": 1.0, "writeConcernError": {
        "code": 100, "codeName": "UnsatisfiableWriteConcern", "errmsg": "Not enough data-bearing nodes" } };
        assert_eq!(delete_reply(&mid_run, &five).unwrap_err().applied(), 40);
        assert!(delete_reply(&doc! { "ok": 1.0 }, &MAJORITY).is_err(), "no count, no trust");
        let write_error = doc! { "n": 0, "ok": 1.0, "writeErrors": [{ "index": 0, "code": 2, "errmsg": "bad" }] };
        assert!(delete_reply(&write_error, &MAJORITY).unwrap_err().to_string().contains("bad"));
    }
}
