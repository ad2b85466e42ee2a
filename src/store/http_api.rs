//! The DB-operation HTTP API backend: the MongoDB Atlas Data API v1 shape.
//!
//! Every call is `POST {MONGODB_API_URL}/action/{action}` with a JSON body
//! `{"dataSource", "database", "collection", "filter" | "pipeline" | "update"}` in relaxed Extended JSON. Answers are
//! `{"documents": [...]}`, `{"deletedCount": n}` or `{"matchedCount": n, "modifiedCount": n}`, in relaxed or
//! canonical Extended JSON (both are read). The API key, when set, goes in the `api-key` header and nowhere else;
//! error messages never carry it, nor the URL's credentials.

use mongodb::bson::{doc, Bson, DateTime, Document};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::filter::{
    as_u64, indexes_lead_with, legacy_answer, legacy_filter, legacy_ids_filter, legacy_page_pipeline, measure_answer,
    measure_pipeline, range_filter, stats_answer, stats_pipeline,
};
use super::{BlacklistStore, CollectionStats, ExpiryRange, LegacyEntry, Measure, StoreError};
use crate::config::ApiSettings;

/// The blacklist reached through the DB-operation HTTP API.
pub struct HttpApiStore {
    settings: ApiSettings,
    collection: String,
    field: String,
    http: reqwest::Client,
}

impl HttpApiStore {
    /// A store for `collection`; the HTTP client (rustls) has connect and request timeouts of
    /// `MONGODB_API_TIMEOUT_SECONDS`.
    pub fn new(settings: ApiSettings, collection: &str, expires_field: &str) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("jwt-token-cleaner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StoreError::Query(format!("cannot build the HTTP client: {}", e.without_url())))?;
        Ok(Self { settings, collection: collection.to_string(), field: expires_field.to_string(), http })
    }

    /// One action: POSTs `fields` plus the data source, database and collection; returns the answer object.
    async fn action(&self, action: &str, fields: Value) -> Result<serde_json::Map<String, Value>, StoreError> {
        let mut body = json!({
            "dataSource": self.settings.data_source,
            "database": self.settings.database,
            "collection": self.collection,
        });
        if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
            body.extend(fields);
        }
        let mut request = self
            .http
            .post(format!("{}/action/{action}", self.settings.url))
            .header("accept", "application/json")
            .json(&body);
        if let Some(key) = &self.settings.key {
            request = request.header("api-key", key.expose());
        }
        let response = request.send().await.map_err(|e| transport(action, e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| transport(action, e))?;
        if !status.is_success() {
            return Err(http_status(action, status, &text));
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(answer)) => Ok(answer),
            _ => Err(StoreError::Protocol(format!("{action}: the answer is not a JSON object: {}", excerpt(&text)))),
        }
    }

    async fn documents(&self, action: &str, fields: Value) -> Result<Vec<Document>, StoreError> {
        let answer = self.action(action, fields).await?;
        let Some(Value::Array(rows)) = answer.get("documents") else {
            return Err(StoreError::Protocol(format!("{action}: no \"documents\" array in the answer")));
        };
        rows.iter()
            .map(|row| match Bson::try_from(row.clone()) {
                Ok(Bson::Document(doc)) => Ok(doc),
                _ => Err(StoreError::Protocol(format!(
                    "{action}: a document is not Extended JSON: {}",
                    excerpt(&row.to_string())
                ))),
            })
            .collect()
    }

    async fn aggregate(&self, pipeline: Vec<Document>) -> Result<Vec<Document>, StoreError> {
        self.documents("aggregate", json!({ "pipeline": ext_json(Bson::from(pipeline)) })).await
    }

    async fn counted(&self, action: &str, fields: Value, key: &str) -> Result<u64, StoreError> {
        let answer = self.action(action, fields).await?;
        let value = answer.get(key).cloned().and_then(|v| Bson::try_from(v).ok());
        as_u64(value.as_ref()).ok_or_else(|| {
            StoreError::Protocol(format!(
                "{action}: \"{key}\" is missing or not a whole number: {}",
                excerpt(&Value::Object(answer).to_string())
            ))
        })
    }
}

/// A BSON value as relaxed Extended JSON.
fn ext_json(value: Bson) -> Value {
    value.into_relaxed_extjson()
}

fn transport(action: &str, error: reqwest::Error) -> StoreError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    StoreError::Unreachable(format!("HTTP API {action}: {kind}: {}", error.without_url()))
}

fn http_status(action: &str, status: StatusCode, body: &str) -> StoreError {
    let what = format!("HTTP API {action}: HTTP {}: {}", status.as_u16(), excerpt(body));
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => StoreError::Auth(what),
        s if s.is_server_error() => StoreError::Unreachable(what),
        _ => StoreError::Query(format!("{what} (the API rejected our request: a bug to report)")),
    }
}

/// The start of an answer, on one line, for an error message.
fn excerpt(text: &str) -> String {
    let one_line: String = text.chars().take(160).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > 160 {
        format!("{one_line}...")
    } else {
        one_line
    }
}

#[async_trait::async_trait]
impl BlacklistStore for HttpApiStore {
    fn backend(&self) -> String {
        "http_api".into()
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.documents("find", json!({ "filter": {}, "projection": { "_id": 1 }, "limit": 1 })).await.map(|_| ())
    }

    async fn stats(&self) -> Result<CollectionStats, StoreError> {
        stats_answer(self.aggregate(stats_pipeline()).await)
    }

    async fn measure(&self, range: &ExpiryRange) -> Result<Measure, StoreError> {
        measure_answer(self.aggregate(measure_pipeline(&self.field, range)).await)
    }

    async fn delete(&self, range: &ExpiryRange) -> Result<u64, StoreError> {
        let filter = ext_json(Bson::Document(range_filter(&self.field, range)));
        self.counted("deleteMany", json!({ "filter": filter }), "deletedCount").await
    }

    async fn count(&self, range: &ExpiryRange) -> Result<u64, StoreError> {
        let pipeline = vec![doc! { "$match": range_filter(&self.field, range) }, doc! { "$count": "count" }];
        let rows = self.aggregate(pipeline).await?;
        match rows.first() {
            None => Ok(0),
            Some(row) => as_u64(row.get("count"))
                .ok_or_else(|| StoreError::Protocol(format!("aggregate $count: unexpected answer: {row}"))),
        }
    }

    async fn expiry_indexed(&self) -> Result<Option<bool>, StoreError> {
        // Best effort: the Data API has no listIndexes; $indexStats answers where the server allows it.
        match self.aggregate(vec![doc! { "$indexStats": {} }]).await {
            Ok(rows) => {
                let keys: Vec<Document> = rows.iter().filter_map(|r| r.get_document("key").ok().cloned()).collect();
                Ok(Some(indexes_lead_with(&self.field, &keys)))
            }
            Err(StoreError::Query(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn legacy_page(&self, after: Option<&Bson>, limit: u32) -> Result<Vec<LegacyEntry>, StoreError> {
        legacy_answer(self.aggregate(legacy_page_pipeline(&self.field, after, limit)).await)
    }

    async fn delete_legacy(&self, ids: &[Bson]) -> Result<u64, StoreError> {
        let filter = ext_json(Bson::Document(legacy_ids_filter(&self.field, ids)));
        self.counted("deleteMany", json!({ "filter": filter }), "deletedCount").await
    }

    async fn backfill_expiry(&self, id: &Bson, expires_ms: i64) -> Result<bool, StoreError> {
        let mut filter = legacy_filter(&self.field);
        filter.insert("_id", id.clone());
        let update = doc! { "$set": { &self.field: DateTime::from_millis(expires_ms) } };
        let fields = json!({ "filter": ext_json(Bson::Document(filter)), "update": ext_json(Bson::Document(update)) });
        Ok(self.counted("updateOne", fields, "modifiedCount").await? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_errors() {
        assert!(matches!(http_status("find", StatusCode::UNAUTHORIZED, ""), StoreError::Auth(_)));
        assert!(matches!(http_status("find", StatusCode::FORBIDDEN, ""), StoreError::Auth(_)));
        assert!(matches!(http_status("find", StatusCode::BAD_GATEWAY, ""), StoreError::Unreachable(_)));
        let e = http_status("find", StatusCode::BAD_REQUEST, "bad filter");
        assert!(matches!(&e, StoreError::Query(m) if m.contains("a bug to report") && m.contains("bad filter")));
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        assert_eq!(excerpt("a\nb"), "a b");
        assert_eq!(excerpt(&"x".repeat(500)).len(), 163);
    }
}
