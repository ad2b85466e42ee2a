//! The DB-operation HTTP API backend, speaking MongoDB's Atlas Data API v1 contract to the letter.
//!
//! Every call is `POST {MONGODB_API_URL}/action/{action}` with a JSON body `{"dataSource", "database",
//! "collection", "filter" | "pipeline" | "update"}` whose filters, pipelines and updates are relaxed Extended JSON
//! (dates as `{"$date": "2022-01-12T02:33:23.067Z"}`, before 1970 as `{"$date": {"$numberLong": "..."}}`; numbers
//! as plain JSON numbers), one of the two forms the Data API documentation accepts under `application/ejson`.
//! Relaxed rather than canonical so that a server which reads plain JSON still reads the structure of every
//! request (a canonical `{"$limit": {"$numberInt": "1"}}` is a 400 there), and the contract probe below can name
//! what it got wrong instead of failing on something else. The documented headers go with it:
//! - `Content-Type: application/ejson`: without it the documented server reads the body as standard JSON, where a
//!   `{"$date": ...}` is just a sub-document that no Date ever equals;
//! - `Accept: application/ejson`: without it the answers are standard JSON, where dates come back as ISO strings
//!   and ObjectIds as hex strings, so a legacy entry's `_id` read back would no longer match it;
//! - the key, when set, in both `apiKey` (the documented header) and `api-key` (the documentation's examples, and
//!   the self-hosted servers that copied them). It goes nowhere else.
//!
//! Answers are `{"documents": [...]}`, `{"deletedCount": n}` or `{"matchedCount": n, "modifiedCount": n}`, in
//! canonical or relaxed Extended JSON (both are read).
//!
//! # Proving the contract before trusting it
//! A server that misreads Extended JSON does not fail: every range filter simply matches nothing, and a sweep that
//! trusted it would report a clean collection while every Date entry stays. So before the first range query, the
//! store asks the server to echo a Date, an ObjectId and a 64-bit integer through `$literal` and `$type`
//! ([`contract::probe_pipeline`]) and checks both directions: the server must have read each as its BSON type, and must
//! answer each as that type. A server that fails is a contract error ([`crate::store::ErrorKind::Contract`]): the fallback chain moves to the
//! direct connection, or the run ends in the error JSON.
//!
//! Such a server is abandoned for the whole run, the numeric (seconds) lane included, although numbers survive
//! plain JSON: a server that has shown it is not the documented API has also shown that what it does with the rest
//! of a request is a guess, and a lane swept through a guess is not a report anyone can rely on.
//!
//! The proof is kept for the life of the process (one round trip per instance, not per run) and dropped after any
//! error other than a refused request (a 4xx says nothing about the server's formats), so a server that changed is
//! probed again. On an empty collection the probe has no document to project and proves nothing; nothing is
//! cached, and every call probes again until the collection holds an entry (a `$limit: 1` on an empty collection
//! costs nothing anywhere).
//!
//! # What the client refuses
//! - **Redirects.** The Data API never redirects a correct request, and following one would send the key (in
//!   `apiKey` and `api-key`, which an HTTP client does not strip as it does `Authorization`) and the request to
//!   whatever host the `Location` names. No redirect is followed: a 3xx is a contract error ([`crate::store::ErrorKind::Contract`]) naming the
//!   target's origin (never its path or query), and the chain falls back.
//! - **Oversized answers.** An answer is read up to `MONGODB_API_MAX_ANSWER_BYTES` (default 8 MiB; the largest
//!   real answer, a page of 500 legacy entries, is far below it), checked first against `Content-Length` and then
//!   counted as it streams in: an answer read whole once took the process past FC's smallest instance's memory
//!   (BENCHMARKS.md, "Figures behind the code"). A larger answer is a contract failure.
//! - **Impossible counts.** A `deletedCount` above what the deleted range was measured to hold (or, unmeasured,
//!   above the batch size it was sized for) is a contract failure: the sweep would otherwise report entries nobody
//!   deleted (a lying `9223372036854775807` once made the report claim 4 TB freed).
//!
//! Error messages never carry the key or the URL's credentials, nor any credential header a server echoes back
//! ([`jtc_shared::redact`]).

//! # Layout
//! [`transport`] makes one round trip and classifies what comes back; [`contract`] holds the probe and reads
//! answers as Extended JSON; this module keeps the proof and implements the store.

mod contract;
mod transport;

use std::sync::atomic::{AtomicBool, Ordering};

use mongodb::bson::{doc, Bson, Document};
use serde_json::{json, Value};

use super::filter::{
    as_u64, backfill_update, bounded_count_pipeline, count_answer, indexes_lead_with, legacy_answer, legacy_ids_filter,
    legacy_page_pipeline, measure_answer, measure_pipeline, oldest_answer, oldest_pipeline, range_filter, stats_answer,
    stats_pipeline,
};
use super::{
    Backend, CollectionStats, Deleted, ErrorKind, ExpiryRange, HistorySettings, LeaseWrite, LegacyEntry, LegacyStore,
    Measure, RunHistory, RunQuery, StoreError, SweepStore, HISTORY_TIME_FIELD,
};
use crate::config::{ApiSettings, FieldPath, MongoName};
use contract::{ext_json, probe_pipeline, probe_verdict, read_documents, Probe};
use transport::{Answer, Transport};

/// The blacklist reached through the DB-operation HTTP API.
pub struct HttpApiStore {
    transport: Transport,
    field: FieldPath,
    history: Option<HistorySettings>,
    /// The server passed the contract probe, and nothing has failed since.
    verified: AtomicBool,
}

impl HttpApiStore {
    /// A store for `collection`; see [`Transport::new`] for the client.
    pub fn new(settings: ApiSettings, collection: &MongoName, expires_field: &FieldPath) -> Result<Self, StoreError> {
        Ok(Self {
            transport: Transport::new(settings, collection)?,
            field: expires_field.clone(),
            history: None,
            verified: AtomicBool::new(false),
        })
    }

    /// The same store, recording runs as `history` says (through `insertOne` and `find`; the TTL index is made by
    /// `create-index` or the direct backend, as the Data API cannot make one).
    pub fn with_history(mut self, history: Option<HistorySettings>) -> Self {
        self.history = history;
        self
    }

    fn history_collection(&self) -> Result<&str, StoreError> {
        match &self.history {
            Some(history) => Ok(&history.collection),
            None => Err(StoreError::query("the run history is off (CLEANUP_HISTORY_COLLECTION is empty)")),
        }
    }

    /// One call, after the contract is proven; the proof is dropped when the call fails (see the module doc).
    async fn action(&self, action: &str, fields: Value) -> Result<Answer, StoreError> {
        self.action_on(None, action, fields).await
    }

    /// [`action`](Self::action) on `collection` (the blacklist when `None`).
    async fn action_on(&self, collection: Option<&str>, action: &str, fields: Value) -> Result<Answer, StoreError> {
        self.ensure_contract().await?;
        let answer = match collection {
            Some(collection) => self.transport.send_to(collection, action, fields).await,
            None => self.transport.send(action, fields).await,
        };
        if let Err(error) = &answer {
            self.forget_proof(error);
        }
        answer
    }

    /// Drops the proof after any error but a refused request (a 4xx says nothing about the server's formats).
    fn forget_proof(&self, error: &StoreError) {
        if error.kind() != ErrorKind::Query {
            self.verified.store(false, Ordering::Release);
        }
    }

    /// Proves the contract once (see the module doc).
    async fn ensure_contract(&self) -> Result<(), StoreError> {
        if self.verified.load(Ordering::Acquire) {
            return Ok(());
        }
        let pipeline = ext_json(Bson::from(probe_pipeline()));
        let answer = self.transport.send("aggregate", json!({ "pipeline": pipeline })).await?;
        match probe_verdict(&answer)? {
            Probe::Proven => {
                tracing::debug!("the HTTP API reads and answers Extended JSON");
                self.verified.store(true, Ordering::Release);
            }
            Probe::EmptyCollection => tracing::debug!("empty collection: the HTTP API's formats are unproven"),
        }
        Ok(())
    }

    /// The `documents` of an answer on `collection` (the blacklist when `None`).
    async fn documents(
        &self,
        collection: Option<&str>,
        action: &str,
        fields: Value,
    ) -> Result<Vec<Document>, StoreError> {
        let answer = self.action_on(collection, action, fields).await?;
        let documents = read_documents(action, &answer, |t| self.transport.excerpt(t));
        if let Err(error) = &documents {
            self.forget_proof(error);
        }
        documents
    }

    async fn aggregate(&self, pipeline: Vec<Document>) -> Result<Vec<Document>, StoreError> {
        self.documents(None, "aggregate", json!({ "pipeline": ext_json(Bson::from(pipeline)) })).await
    }

    async fn counted(&self, action: &str, fields: Value, key: &str) -> Result<u64, StoreError> {
        let answer = self.action(action, fields).await?;
        let value = answer.get(key).cloned().and_then(|v| Bson::try_from(v).ok());
        as_u64(value.as_ref()).ok_or_else(|| {
            let error = StoreError::protocol(format!(
                "{action}: \"{key}\" is missing or not a whole number: {}",
                self.transport.excerpt(&Value::Object(answer).to_string())
            ));
            self.forget_proof(&error);
            error
        })
    }

    /// A `deletedCount` read from `fields`, refused when it is more than `at_most`, what the call could have
    /// deleted (see the module doc).
    async fn deleted(&self, fields: Value, at_most: u64) -> Result<u64, StoreError> {
        let deleted = self.counted("deleteMany", fields, "deletedCount").await?;
        if deleted > at_most {
            let error = StoreError::contract(format!(
                "HTTP API deleteMany: deletedCount {deleted} is more than the {at_most} entries the range could hold"
            ));
            self.forget_proof(&error);
            return Err(error);
        }
        Ok(deleted)
    }
}

impl Backend for HttpApiStore {
    fn backend(&self) -> String {
        "http_api".into()
    }

    fn addresses(&self, op: &str) -> (String, String) {
        let collection = match (&self.history, crate::store::call_span::is_history_call(op)) {
            (Some(history), true) => history.collection.to_string(),
            _ => self.transport.collection().to_string(),
        };
        (self.transport.database().to_string(), collection)
    }

    fn vouches_for_counts(&self) -> bool {
        false
    }
}

#[async_trait::async_trait]
impl SweepStore for HttpApiStore {
    async fn check(&self) -> Result<(), StoreError> {
        self.documents(None, "find", json!({ "filter": {}, "projection": { "_id": 1 }, "limit": 1 })).await.map(|_| ())
    }

    async fn stats(&self) -> Result<CollectionStats, StoreError> {
        stats_answer(self.aggregate(stats_pipeline()).await)
    }

    async fn measure(&self, range: &ExpiryRange, limit: Option<u64>) -> Result<Measure, StoreError> {
        measure_answer(self.aggregate(measure_pipeline(&self.field, range, limit)).await)
    }

    async fn delete(&self, range: &ExpiryRange, at_most: u64) -> Result<Deleted, StoreError> {
        let filter = ext_json(Bson::Document(range_filter(&self.field, range)));
        // The Data API has no write concern option: its deletes are acknowledged as its server is configured.
        self.deleted(json!({ "filter": filter }), at_most).await.map(Deleted::confirmed)
    }

    async fn count(&self, range: &ExpiryRange) -> Result<u64, StoreError> {
        let pipeline = vec![doc! { "$match": range_filter(&self.field, range) }, doc! { "$count": "count" }];
        count_answer(self.aggregate(pipeline).await)
    }

    async fn count_at_most(&self, range: &ExpiryRange, limit: u64) -> Result<u64, StoreError> {
        count_answer(self.aggregate(bounded_count_pipeline(&self.field, range, limit)).await)
    }

    async fn oldest_expiry(&self, range: &ExpiryRange) -> Result<Option<i64>, StoreError> {
        oldest_answer(&self.field, self.aggregate(oldest_pipeline(&self.field, range)).await)
    }

    async fn expiry_indexed(&self) -> Result<Option<bool>, StoreError> {
        // Best effort: the Data API has no listIndexes; $indexStats answers where the server allows it.
        match self.aggregate(vec![doc! { "$indexStats": {} }]).await {
            Ok(rows) => {
                let keys: Vec<Document> = rows.iter().filter_map(|r| r.get_document("key").ok().cloned()).collect();
                Ok(Some(indexes_lead_with(&self.field, &keys)))
            }
            Err(e) if e.kind() == ErrorKind::Query => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn replication_lag(&self) -> Result<crate::store::ReplicationLag, StoreError> {
        Ok(crate::store::ReplicationLag::Unavailable)
    }
}

#[async_trait::async_trait]
impl LegacyStore for HttpApiStore {
    async fn legacy_page(&self, after: Option<&Bson>, limit: u32) -> Result<Vec<LegacyEntry>, StoreError> {
        legacy_answer(self.aggregate(legacy_page_pipeline(&self.field, after, limit)).await)
    }

    async fn delete_legacy(&self, ids: &[Bson]) -> Result<u64, StoreError> {
        let filter = ext_json(Bson::Document(legacy_ids_filter(&self.field, ids)));
        self.deleted(json!({ "filter": filter }), ids.len() as u64).await
    }

    async fn backfill_expiry(&self, id: &Bson, expires_ms: i64) -> Result<bool, StoreError> {
        let (filter, update) = backfill_update(&self.field, id, expires_ms);
        let fields = json!({ "filter": ext_json(Bson::Document(filter)), "update": ext_json(Bson::Document(update)) });
        Ok(self.counted("updateOne", fields, "modifiedCount").await? == 1)
    }
}

#[async_trait::async_trait]
impl RunHistory for HttpApiStore {
    async fn record_run(&self, run: &Document) -> Result<(), StoreError> {
        let collection = self.history_collection()?;
        let fields = json!({ "document": ext_json(Bson::Document(run.clone())) });
        let answer = self.action_on(Some(collection), "insertOne", fields).await?;
        if answer.contains_key("insertedId") {
            return Ok(());
        }
        let error = StoreError::protocol(format!(
            "insertOne: no \"insertedId\" in the answer: {}",
            self.transport.excerpt(&Value::Object(answer).to_string())
        ));
        self.forget_proof(&error);
        Err(error)
    }

    async fn recent_runs(&self, query: &RunQuery) -> Result<Vec<Document>, StoreError> {
        let collection = self.history_collection()?;
        let fields = json!({
            "filter": ext_json(Bson::Document(query.filter.clone())),
            "projection": ext_json(Bson::Document(query.projection.clone())),
            "sort": { HISTORY_TIME_FIELD: -1 },
            "limit": query.limit,
        });
        self.documents(Some(collection), "find", fields).await
    }

    async fn write_lease(&self, filter: &Document, update: &Document) -> Result<LeaseWrite, StoreError> {
        let collection = self.history_collection()?;
        let fields = json!({
            "filter": ext_json(Bson::Document(filter.clone())),
            "update": ext_json(Bson::Document(update.clone())),
            "upsert": true,
        });
        let answer = match self.action_on(Some(collection), "updateOne", fields).await {
            Ok(answer) => answer,
            // The Data API answers a duplicate key as a refused request (400) whose wording is the server's.
            Err(e) if e.kind() == ErrorKind::Query => return Ok(LeaseWrite::Refused(e)),
            Err(e) => return Err(e),
        };
        // The documented answer of an upsert: `upsertedId` when it inserted, `matchedCount: 1` when it updated.
        // Anything else (a server that ignores `upsert` answers `matchedCount: 0`) wrote nothing: a lease taken on
        // its word let two runs sweep side by side.
        let upserted = answer.get("upsertedId").is_some_and(|id| !id.is_null());
        let matched = answer.get("matchedCount").cloned().and_then(|v| Bson::try_from(v).ok());
        if upserted || as_u64(matched.as_ref()) == Some(1) {
            return Ok(LeaseWrite::Written);
        }
        let error = StoreError::contract(format!(
            "HTTP API updateOne with upsert: neither \"upsertedId\" nor \"matchedCount\": 1 in the answer: {}",
            self.transport.excerpt(&Value::Object(answer).to_string())
        ));
        self.forget_proof(&error);
        Err(error)
    }

    async fn read_lease(&self, filter: &Document) -> Result<Option<Document>, StoreError> {
        let collection = self.history_collection()?;
        let find = json!({ "filter": ext_json(Bson::Document(filter.clone())) });
        let answer = self.action_on(Some(collection), "findOne", find).await?;
        match answer.get("document") {
            None | Some(Value::Null) => Ok(None),
            Some(document) => match Bson::try_from(document.clone()) {
                Ok(Bson::Document(document)) => Ok(Some(document)),
                _ => Err(StoreError::protocol("findOne: \"document\" is not a document")),
            },
        }
    }

    async fn release_lease(&self, filter: &Document) -> Result<(), StoreError> {
        let collection = self.history_collection()?;
        let fields = json!({ "filter": ext_json(Bson::Document(filter.clone())) });
        self.action_on(Some(collection), "deleteOne", fields).await.map(|_| ())
    }
}
