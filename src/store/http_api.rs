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
//! ([`probe_pipeline`]) and checks both directions: the server must have read each as its BSON type, and must
//! answer each as that type. A server that fails is a [`StoreError::Contract`]: the fallback chain moves to the
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
//!   whatever host the `Location` names. No redirect is followed: a 3xx is a [`StoreError::Contract`] naming the
//!   target's origin (never its path or query), and the chain falls back.
//! - **Oversized answers.** An answer is read up to `MONGODB_API_MAX_ANSWER_BYTES` (default 8 MiB; the largest
//!   real answer, a page of 500 legacy entries, is far below it), checked first against `Content-Length` and then
//!   counted as it streams in: an 800 MB answer once took the process from 7 MB to 797 MB, past FC's smallest
//!   instance. A larger answer is a contract failure.
//! - **Impossible counts.** A `deletedCount` above what the deleted range was measured to hold (or, unmeasured,
//!   above the batch size it was sized for) is a contract failure: the sweep would otherwise report entries nobody
//!   deleted (a lying `9223372036854775807` once made the report claim 4 TB freed).
//!
//! Error messages never carry the key or the URL's credentials, nor any credential header a server echoes back
//! ([`jtc_shared::redact`]).

use std::sync::atomic::{AtomicBool, Ordering};

use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::filter::{
    as_u64, indexes_lead_with, legacy_answer, legacy_filter, legacy_ids_filter, legacy_page_pipeline, measure_answer,
    measure_pipeline, range_filter, stats_answer, stats_pipeline,
};
use super::{BlacklistStore, CollectionStats, ExpiryRange, LegacyEntry, Measure, StoreError};
use crate::config::{ApiSettings, FieldPath, MongoName};
use base64::Engine;
use jtc_shared::redact;

/// The Extended JSON media type of the Data API's requests and answers.
const EJSON: &str = "application/ejson";

/// The blacklist reached through the DB-operation HTTP API.
pub struct HttpApiStore {
    settings: ApiSettings,
    collection: MongoName,
    field: FieldPath,
    http: reqwest::Client,
    /// Secret values an error message must never quote: the key and the URL's credentials in every form.
    secrets: Vec<String>,
    /// The server passed the contract probe, and nothing has failed since.
    verified: AtomicBool,
}

impl HttpApiStore {
    /// A store for `collection`; the HTTP client (rustls) has connect and request timeouts of
    /// `MONGODB_API_TIMEOUT_SECONDS`.
    pub fn new(settings: ApiSettings, collection: &MongoName, expires_field: &FieldPath) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("jwt-token-cleaner/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StoreError::Query(format!("cannot build the HTTP client: {}", e.without_url())))?;
        let mut secrets = url_credentials(&settings.url);
        secrets.extend(settings.key.as_ref().map(|k| k.expose().to_string()));
        Ok(Self {
            settings,
            collection: collection.clone(),
            field: expires_field.clone(),
            http,
            secrets,
            verified: AtomicBool::new(false),
        })
    }

    /// One call, after the contract is proven; the proof is dropped when the call fails (see the module doc).
    async fn action(&self, action: &str, fields: Value) -> Result<serde_json::Map<String, Value>, StoreError> {
        self.ensure_contract().await?;
        let answer = self.send(action, fields).await;
        if let Err(error) = &answer {
            self.forget_proof(error);
        }
        answer
    }

    fn forget_proof(&self, error: &StoreError) {
        if !matches!(error, StoreError::Query(_)) {
            self.verified.store(false, Ordering::Release);
        }
    }

    /// One round trip: POSTs `fields` plus the data source, database and collection; returns the answer object.
    async fn send(&self, action: &str, fields: Value) -> Result<serde_json::Map<String, Value>, StoreError> {
        let mut body = json!({
            "dataSource": self.settings.data_source,
            "database": &*self.settings.database,
            "collection": &*self.collection,
        });
        if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
            body.extend(fields);
        }
        let body = serde_json::to_vec(&body)
            .map_err(|e| StoreError::Query(format!("{action}: cannot encode the request: {e}")))?;
        let mut request = self
            .http
            .post(format!("{}/action/{action}", self.settings.url))
            .header(reqwest::header::CONTENT_TYPE, EJSON)
            .header(reqwest::header::ACCEPT, EJSON)
            .body(body);
        if let Some(key) = &self.settings.key {
            request = request.header("apiKey", key.expose()).header("api-key", key.expose());
        }
        let response = request.send().await.map_err(|e| transport(action, e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(redirected(action, status, response.url(), response.headers()));
        }
        let text = self.read_capped(action, response).await?;
        if !status.is_success() {
            return Err(http_status(action, status, &self.excerpt(&text)));
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(answer)) => Ok(answer),
            _ => {
                Err(StoreError::Protocol(format!("{action}: the answer is not a JSON object: {}", self.excerpt(&text))))
            }
        }
    }

    /// The answer's body as text, refused as soon as it is known to exceed the cap (see the module doc).
    async fn read_capped(&self, action: &str, mut response: reqwest::Response) -> Result<String, StoreError> {
        let cap = self.settings.max_answer_bytes;
        let too_large = || {
            StoreError::Contract(format!(
                "HTTP API {action}: the answer is larger than {cap} bytes (MONGODB_API_MAX_ANSWER_BYTES); no answer \
                 to this cleaner's requests is that large"
            ))
        };
        if response.content_length().is_some_and(|length| length > cap) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(action, e))? {
            if (body.len() + chunk.len()) as u64 > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// A `deletedCount` read from `fields`, refused when it is more than `at_most`, what the call could have
    /// deleted (see the module doc).
    async fn deleted(&self, fields: Value, at_most: u64) -> Result<u64, StoreError> {
        let deleted = self.counted("deleteMany", fields, "deletedCount").await?;
        if deleted > at_most {
            let error = StoreError::Contract(format!(
                "HTTP API deleteMany: deletedCount {deleted} is more than the {at_most} entries the range could hold"
            ));
            self.forget_proof(&error);
            return Err(error);
        }
        Ok(deleted)
    }

    /// The start of someone else's text, scrubbed of every secret, on one line.
    fn excerpt(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        excerpt(&redact::scrub(text, &secrets))
    }

    /// Proves the contract once (see the module doc).
    async fn ensure_contract(&self) -> Result<(), StoreError> {
        if self.verified.load(Ordering::Acquire) {
            return Ok(());
        }
        let pipeline = ext_json(Bson::from(probe_pipeline()));
        let answer = self.send("aggregate", json!({ "pipeline": pipeline })).await?;
        match probe_verdict(&answer)? {
            Probe::Proven => {
                tracing::debug!("the HTTP API reads and answers Extended JSON");
                self.verified.store(true, Ordering::Release);
            }
            Probe::EmptyCollection => tracing::debug!("empty collection: the HTTP API's formats are unproven"),
        }
        Ok(())
    }

    async fn documents(&self, action: &str, fields: Value) -> Result<Vec<Document>, StoreError> {
        let answer = self.action(action, fields).await?;
        let documents = read_documents(action, &answer, |t| self.excerpt(t));
        if let Err(error) = &documents {
            self.forget_proof(error);
        }
        documents
    }

    async fn aggregate(&self, pipeline: Vec<Document>) -> Result<Vec<Document>, StoreError> {
        self.documents("aggregate", json!({ "pipeline": ext_json(Bson::from(pipeline)) })).await
    }

    async fn counted(&self, action: &str, fields: Value, key: &str) -> Result<u64, StoreError> {
        let answer = self.action(action, fields).await?;
        let value = answer.get(key).cloned().and_then(|v| Bson::try_from(v).ok());
        as_u64(value.as_ref()).ok_or_else(|| {
            let error = StoreError::Protocol(format!(
                "{action}: \"{key}\" is missing or not a whole number: {}",
                self.excerpt(&Value::Object(answer).to_string())
            ));
            self.forget_proof(&error);
            error
        })
    }
}

/// The secrets a URL carries in its user-info part, as they may come back: raw, percent-decoded, and as the
/// `Basic` token an HTTP client builds from them.
pub fn url_credentials(url: &str) -> Vec<String> {
    let Ok(parsed) = reqwest::Url::parse(url) else { return Vec::new() };
    let (user, password) = (parsed.username(), parsed.password().unwrap_or(""));
    if user.is_empty() && password.is_empty() {
        return Vec::new();
    }
    let decode = redact::percent_decode;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", decode(user), decode(password)));
    [user.to_string(), decode(user), password.to_string(), decode(password), basic]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect()
}

/// The `documents` array of an answer, each read as Extended JSON.
fn read_documents(
    action: &str,
    answer: &serde_json::Map<String, Value>,
    excerpt: impl Fn(&str) -> String,
) -> Result<Vec<Document>, StoreError> {
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

/// The instant the probe sends: the Data API documentation's own example date (2022-01-12T02:33:23.067Z).
const PROBE_DATE_MS: i64 = 1_641_954_803_067;
/// The ObjectId the probe sends.
const PROBE_OID: [u8; 12] = *b"jtc-probe-id";
/// The 64-bit integer the probe sends: 2^53 + 1, which no double represents.
const PROBE_LONG: i64 = 9_007_199_254_740_993;

/// `[{$limit: 1}, {$project: {<t>_type: {$type: {$literal: v}}, <t>: {$literal: v}}}]` for a Date, an ObjectId and a
/// long: one document's worth of work, on any server.
pub fn probe_pipeline() -> Vec<Document> {
    let mut project = doc! { "_id": 0 };
    for (name, value) in probe_values() {
        project.insert(format!("{name}_type"), doc! { "$type": { "$literal": value.clone() } });
        project.insert(name, doc! { "$literal": value });
    }
    vec![doc! { "$limit": 1 }, doc! { "$project": project }]
}

/// The probe's values: the name of each, its BSON type name (as `$type` answers it) and the value.
fn probe_values() -> [(&'static str, Bson); 3] {
    [
        ("date", Bson::DateTime(DateTime::from_millis(PROBE_DATE_MS))),
        ("objectId", Bson::ObjectId(ObjectId::from_bytes(PROBE_OID))),
        ("long", Bson::Int64(PROBE_LONG)),
    ]
}

/// What the probe proved.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// The server read each value as its type and answered each as that type.
    Proven,
    /// The collection is empty: there was no document to project.
    EmptyCollection,
}

/// Reads the probe's answer; a server that broke the contract is a [`StoreError::Contract`] naming what it did.
fn probe_verdict(answer: &serde_json::Map<String, Value>) -> Result<Probe, StoreError> {
    let rows = read_documents("aggregate", answer, excerpt)?;
    let Some(row) = rows.first() else { return Ok(Probe::EmptyCollection) };
    for (name, sent) in probe_values() {
        let read_as = row.get(format!("{name}_type"));
        if read_as != Some(&Bson::String(name.into())) {
            return Err(StoreError::Contract(format!(
                "a {name} sent as Extended JSON (Content-Type: {EJSON}) was read as {}: the server reads request \
                 bodies as plain JSON, so every Date range would match nothing",
                read_as.map_or("nothing".into(), |t| excerpt(&t.to_string()))
            )));
        }
        let answered = row.get(name);
        if answered != Some(&sent) {
            return Err(StoreError::Contract(format!(
                "a {name} came back as {} (Accept: {EJSON}): the server does not answer in Extended JSON",
                answered.map_or("nothing".into(), |v| excerpt(&v.to_string()))
            )));
        }
    }
    Ok(Probe::Proven)
}

/// A BSON value as relaxed Extended JSON (see the module doc).
fn ext_json(value: Bson) -> Value {
    value.into_relaxed_extjson()
}

/// The error for a 3xx: it names the status and the origin the server pointed at, never the path or the query
/// (either may carry a token).
fn redirected(
    action: &str,
    status: StatusCode,
    from: &reqwest::Url,
    headers: &reqwest::header::HeaderMap,
) -> StoreError {
    let target = headers
        .get(reqwest::header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(|location| from.join(location).ok())
        .map_or_else(|| "no readable Location".to_string(), |url| url.origin().ascii_serialization());
    StoreError::Contract(format!(
        "HTTP API {action}: HTTP {} redirect to {target}, not followed: the Data API never redirects a correct \
         request, and a redirect would carry the key to another host",
        status.as_u16()
    ))
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

/// An error for a non-2xx answer; `excerpt` is the start of its body, already scrubbed.
fn http_status(action: &str, status: StatusCode, excerpt: &str) -> StoreError {
    let what = format!("HTTP API {action}: HTTP {}: {excerpt}", status.as_u16());
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

    async fn delete(&self, range: &ExpiryRange, at_most: u64) -> Result<u64, StoreError> {
        let filter = ext_json(Bson::Document(range_filter(&self.field, range)));
        self.deleted(json!({ "filter": filter }), at_most).await
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
        self.deleted(json!({ "filter": filter }), ids.len() as u64).await
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

    fn answer(row: Value) -> serde_json::Map<String, Value> {
        json!({ "documents": [row] }).as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_probe_names_what_the_server_got_wrong() {
        let mut row = Document::new();
        for (name, value) in probe_values() {
            row.insert(format!("{name}_type"), name);
            row.insert(name, value);
        }
        let proven = answer(Bson::Document(row.clone()).into_canonical_extjson());
        assert_eq!(probe_verdict(&proven).ok(), Some(Probe::Proven));
        let relaxed = answer(Bson::Document(row.clone()).into_relaxed_extjson());
        assert_eq!(probe_verdict(&relaxed).ok(), Some(Probe::Proven));
        assert_eq!(
            probe_verdict(&json!({ "documents": [] }).as_object().cloned().unwrap()).ok(),
            Some(Probe::EmptyCollection)
        );

        let mut misread = row.clone();
        misread.insert("date_type", "object");
        let e = probe_verdict(&answer(Bson::Document(misread).into_relaxed_extjson())).unwrap_err();
        assert!(matches!(&e, StoreError::Contract(m) if m.contains("read as \"object\"")), "{e}");

        let mut as_string = row;
        as_string.insert("date", "2022-01-12T02:33:23.067Z");
        let e = probe_verdict(&answer(Bson::Document(as_string).into_relaxed_extjson())).unwrap_err();
        assert!(matches!(&e, StoreError::Contract(m) if m.contains("came back as \"2022-01-12")), "{e}");
    }

    #[test]
    fn url_credentials_in_every_form() {
        let found = url_credentials("https://us%40er:p%3Ass@api.example/v1");
        assert!(found.contains(&"us%40er".to_string()) && found.contains(&"us@er".to_string()), "{found:?}");
        assert!(found.contains(&"p:ss".to_string()), "{found:?}");
        let basic = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert!(found.contains(&basic), "{found:?}");
        assert!(url_credentials("https://api.example/v1").is_empty());
        assert!(url_credentials("not a url").is_empty());
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        assert_eq!(excerpt("a\nb"), "a b");
        assert_eq!(excerpt(&"x".repeat(500)).len(), 163);
    }
}
