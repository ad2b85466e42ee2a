//! A test server of the DB-operation HTTP API: MongoDB's Atlas Data API v1 as its documentation describes it
//! (authentication, data formats, examples), backed by the real test database, with the deviations of servers
//! that did not follow it as separate [`Dialect`]s, and fault modes.
//!
//! The documented contract, as this server holds it ([`Dialect::Documented`]):
//! - the key in the `apiKey` header; anything else is 401 (`{"error", "error_code", "link"}`);
//! - a body is read as Extended JSON only with `Content-Type: application/ejson`; with `application/json` it is
//!   standard JSON, where `{"$date": ...}` is a plain sub-document; any other type is 400;
//! - answers are Extended JSON (canonical) only with `Accept: application/ejson`; otherwise standard JSON, the
//!   default return type: dates as ISO strings, ObjectIds as hex strings, every number a plain number.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document};
use mongodb::Client;
use serde_json::{json, Value};

/// Whose reading of the contract the server follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dialect {
    /// MongoDB's documentation to the letter (see the module doc).
    Documented,
    /// The documented server, but the key in `api-key` (the documentation's examples and self-hosted copies).
    DashedKeyHeader,
    /// A self-hosted replacement that reads every body as standard JSON and answers standard JSON, whatever the
    /// headers say.
    JsonOnly,
    /// Reads Extended JSON as documented but always answers standard JSON (ignores `Accept`).
    JsonAnswers,
}

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Works.
    None,
    /// Every call answers this status.
    Status(u16),
    /// Every call waits this long before answering.
    Slow(Duration),
    /// Every call answers 200 with an HTML page.
    Html,
    /// `deleteMany` answers `"deletedCount": "<n>"` (a string) after really deleting.
    DeletedCountAsString,
    /// Works for this many `deleteMany` calls, then every call answers 500.
    DieAfterDeletes(u64),
    /// Every call answers 500 with the request's headers echoed in the body, as some gateways' debug pages do.
    EchoHeaders,
    /// `deleteMany` reads its filter as standard JSON (Extended JSON everywhere else), so it deletes nothing.
    PlainJsonDeleteFilters,
    /// `deleteMany` really deletes, then answers `"deletedCount": 9223372036854775807`.
    DeletedCountLie,
    /// `deleteMany` really deletes, then answers this many more than it deleted.
    DeletedCountOver(u64),
    /// A consistent liar: a measure (`$group` with `$bsonSize`) answers this many more entries than it counted,
    /// and `deleteMany` this many more than it deleted.
    InflatedCounts(u64),
    /// Every call on this collection answers 500; the others work (one target's store failing alone).
    FailCollection(&'static str),
    /// `updateOne` ignores `upsert`: with no match it inserts nothing and answers `matchedCount: 0` (a server that
    /// does not implement the option).
    IgnoreUpsert,
    /// `updateOne` is applied at once, and answered after this long.
    SlowUpdateAnswers(Duration),
    /// `updateOne` answers 400 with this server's own message, writing nothing.
    RefuseUpdates,
    /// `deleteMany` really deletes, then answers `deletedCount: 0`.
    DeletedCountZero,
}

struct ApiState {
    client: Client,
    dialect: Mutex<Dialect>,
    fault: Mutex<Fault>,
    relaxed: Mutex<bool>,
    api_key: Option<String>,
    calls: AtomicU64,
    deletes: AtomicU64,
    measures: AtomicU64,
    probes: AtomicU64,
    traceparents: Mutex<Vec<String>>,
}

/// A running test Data API.
pub struct DataApi {
    pub url: String,
    state: Arc<ApiState>,
}

impl DataApi {
    /// Serves the documented contract on a free port, in front of the server at `db_uri`; requires `api_key` when
    /// given.
    pub async fn spawn(db_uri: &str, api_key: Option<&str>) -> Self {
        let client = Client::with_uri_str(db_uri).await.expect("test server URI");
        let state = Arc::new(ApiState {
            client,
            dialect: Mutex::new(Dialect::Documented),
            fault: Mutex::new(Fault::None),
            relaxed: Mutex::new(false),
            api_key: api_key.map(str::to_string),
            calls: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            measures: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            traceparents: Mutex::new(Vec::new()),
        });
        let router = Router::new().route("/action/{action}", post(action)).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://127.0.0.1:{}/api/v1", listener.local_addr().unwrap().port());
        let router = Router::new().nest("/api/v1", router);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, state }
    }

    pub fn set_dialect(&self, dialect: Dialect) {
        *self.state.dialect.lock().unwrap() = dialect;
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    /// Answer Extended JSON in its relaxed form instead of canonical.
    pub fn set_relaxed(&self, relaxed: bool) {
        *self.state.relaxed.lock().unwrap() = relaxed;
    }

    /// Calls received (round trips).
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Successful `deleteMany` calls.
    pub fn deletes(&self) -> u64 {
        self.state.deletes.load(Ordering::SeqCst)
    }

    /// Measuring aggregations (with `$bsonSize`) answered.
    pub fn measures(&self) -> u64 {
        self.state.measures.load(Ordering::SeqCst)
    }

    /// The `traceparent` headers of the calls received, in order (calls without one are not listed).
    pub fn traceparents(&self) -> Vec<String> {
        self.state.traceparents.lock().unwrap().clone()
    }

    /// Contract probes (aggregations with `$literal`) received.
    pub fn probes(&self) -> u64 {
        self.state.probes.load(Ordering::SeqCst)
    }
}

/// Standard JSON read as BSON the way a JSON-only reader does: `$`-keys are plain keys.
fn plain_bson(value: Value) -> Bson {
    match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i32::try_from(i).map_or(Bson::Int64(i), Bson::Int32),
            (None, Some(f)) => Bson::Double(f),
            _ => Bson::Null,
        },
        Value::String(s) => Bson::String(s),
        Value::Array(items) => Bson::Array(items.into_iter().map(plain_bson).collect()),
        Value::Object(map) => Bson::Document(map.into_iter().map(|(k, v)| (k, plain_bson(v))).collect()),
    }
}

/// BSON as the documented standard-JSON answer: dates as ISO strings, ObjectIds as hex, numbers as numbers.
fn plain_json(value: Bson) -> Value {
    match value {
        Bson::Document(doc) => Value::Object(doc.into_iter().map(|(k, v)| (k, plain_json(v))).collect()),
        Bson::Array(items) => Value::Array(items.into_iter().map(plain_json).collect()),
        Bson::DateTime(d) => Value::String(d.try_to_rfc3339_string().unwrap_or_default()),
        Bson::ObjectId(o) => Value::String(o.to_hex()),
        Bson::Int32(i) => json!(i),
        Bson::Int64(i) => json!(i),
        Bson::Double(f) => json!(f),
        Bson::Decimal128(d) => Value::String(d.to_string()),
        other => other.into_relaxed_extjson(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The documented error body: `{"error", "error_code", "link"}`.
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "error": message, "error_code": status.canonical_reason().unwrap_or("Error"), "link": "" });
    (status, Json(body)).into_response()
}

/// How one request's body is read and its answer written.
struct Formats {
    ejson_in: bool,
    ejson_out: bool,
    relaxed: bool,
}

impl Formats {
    fn read(&self, body: &Value, name: &str) -> Result<Bson, String> {
        let value = body.get(name).cloned().unwrap_or(json!({}));
        if self.ejson_in {
            Bson::try_from(value).map_err(|e| format!("{name} is not Extended JSON: {e}"))
        } else {
            Ok(plain_bson(value))
        }
    }

    fn write(&self, value: Bson) -> Value {
        match (self.ejson_out, self.relaxed) {
            (false, _) => plain_json(value),
            (true, false) => value.into_canonical_extjson(),
            (true, true) => value.into_relaxed_extjson(),
        }
    }
}

/// Drains a cursor into `{"documents": [...]}`.
async fn documents(cursor: mongodb::error::Result<mongodb::Cursor<Document>>, f: &Formats) -> Result<Value, String> {
    let docs: Vec<Document> = cursor.map_err(|e| e.to_string())?.try_collect().await.map_err(|e| e.to_string())?;
    Ok(json!({ "documents": docs.into_iter().map(|d| f.write(Bson::Document(d))).collect::<Vec<_>>() }))
}

async fn action(
    State(state): State<Arc<ApiState>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    if let Some(traceparent) = header(&headers, "traceparent") {
        state.traceparents.lock().unwrap().push(traceparent.to_string());
    }
    let dialect = *state.dialect.lock().unwrap();
    let fault = *state.fault.lock().unwrap();
    if fault == Fault::EchoHeaders {
        let echoed: Vec<String> = headers.iter().map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or("?"))).collect();
        return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("internal error; headers: {}", echoed.join("; ")));
    }
    if let Some(key) = &state.api_key {
        let header_name = if dialect == Dialect::DashedKeyHeader { "api-key" } else { "apiKey" };
        if header(&headers, header_name) != Some(key.as_str()) {
            return error(StatusCode::UNAUTHORIZED, &format!("invalid session: missing or wrong {header_name} header"));
        }
    }
    let content_type = header(&headers, "content-type").unwrap_or("").split(';').next().unwrap_or("").trim();
    let ejson_in = match (dialect, content_type) {
        (Dialect::JsonOnly, _) => false,
        (_, "application/ejson") => true,
        (_, "application/json") => false,
        (_, other) => return error(StatusCode::BAD_REQUEST, &format!("unsupported Content-Type {other:?}")),
    };
    let ejson_out = match dialect {
        Dialect::JsonOnly | Dialect::JsonAnswers => false,
        Dialect::Documented | Dialect::DashedKeyHeader => header(&headers, "accept") == Some("application/ejson"),
    };
    let formats = Formats { ejson_in, ejson_out, relaxed: *state.relaxed.lock().unwrap() };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    match fault {
        Fault::FailCollection(name) if body["collection"] == name => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("injected failure on {name}"))
        }
        Fault::Status(code) => return error(StatusCode::from_u16(code).unwrap(), "injected failure"),
        Fault::Slow(delay) => tokio::time::sleep(delay).await,
        Fault::Html => {
            return (StatusCode::OK, [("content-type", "text/html")], "<html><body>Gateway login</body></html>")
                .into_response()
        }
        Fault::DieAfterDeletes(n) if state.deletes.load(Ordering::SeqCst) >= n => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "the API died")
        }
        _ => {}
    }
    let (Some(database), Some(collection)) = (body["database"].as_str(), body["collection"].as_str()) else {
        return error(StatusCode::BAD_REQUEST, "database and collection are required");
    };
    if body["dataSource"].as_str().is_none() {
        return error(StatusCode::BAD_REQUEST, "dataSource is required");
    }
    let collection = state.client.database(database).collection::<Document>(collection);
    let f = &formats;

    let result: Result<Value, String> = async {
        match action.as_str() {
            "find" => {
                let Bson::Document(filter) = f.read(&body, "filter")? else { return Err("filter".into()) };
                let limit = body["limit"].as_i64().unwrap_or(0);
                let mut find = collection.find(filter).limit(limit);
                if body.get("sort").is_some() {
                    let Bson::Document(sort) = f.read(&body, "sort")? else { return Err("sort".into()) };
                    find = find.sort(sort);
                }
                if body.get("projection").is_some() {
                    let Bson::Document(projection) = f.read(&body, "projection")? else {
                        return Err("projection".into());
                    };
                    find = find.projection(projection);
                }
                documents(find.await, f).await
            }
            "insertOne" => {
                let Bson::Document(document) = f.read(&body, "document")? else { return Err("document".into()) };
                let inserted = collection.insert_one(document).await.map_err(|e| e.to_string())?;
                Ok(json!({ "insertedId": f.write(inserted.inserted_id) }))
            }
            "aggregate" => {
                let Bson::Array(stages) = f.read(&body, "pipeline")? else { return Err("pipeline".into()) };
                let pipeline: Vec<Document> = stages.into_iter().filter_map(|s| s.as_document().cloned()).collect();
                let text = Bson::from(pipeline.clone()).to_string();
                if text.contains("$bsonSize") {
                    state.measures.fetch_add(1, Ordering::SeqCst);
                }
                if text.contains("$literal") {
                    state.probes.fetch_add(1, Ordering::SeqCst);
                }
                if let (Fault::InflatedCounts(extra), true) = (fault, text.contains("$bsonSize")) {
                    let mut rows: Vec<Document> = match collection.aggregate(pipeline).await {
                        Ok(cursor) => cursor.try_collect().await.map_err(|e| e.to_string())?,
                        Err(e) => return Err(e.to_string()),
                    };
                    for row in &mut rows {
                        let count = row.get_i32("count").map(i64::from).or_else(|_| row.get_i64("count"));
                        if let Ok(count) = count {
                            row.insert("count", count.saturating_add(extra as i64));
                        }
                    }
                    let rows: Vec<Value> = rows.into_iter().map(|d| f.write(Bson::Document(d))).collect();
                    return Ok(json!({ "documents": rows }));
                }
                documents(collection.aggregate(pipeline).await, f).await
            }
            "deleteMany" => {
                let filter = if fault == Fault::PlainJsonDeleteFilters {
                    plain_bson(body.get("filter").cloned().unwrap_or(json!({})))
                } else {
                    f.read(&body, "filter")?
                };
                let Bson::Document(filter) = filter else { return Err("filter".into()) };
                let deleted = collection.delete_many(filter).await.map_err(|e| e.to_string())?.deleted_count;
                state.deletes.fetch_add(1, Ordering::SeqCst);
                if fault == Fault::DeletedCountAsString {
                    return Ok(json!({ "deletedCount": deleted.to_string() }));
                }
                if fault == Fault::DeletedCountLie {
                    return Ok(json!({ "deletedCount": f.write(Bson::Int64(i64::MAX)) }));
                }
                if fault == Fault::DeletedCountZero {
                    return Ok(json!({ "deletedCount": f.write(Bson::Int64(0)) }));
                }
                if let Fault::DeletedCountOver(extra) | Fault::InflatedCounts(extra) = fault {
                    return Ok(json!({ "deletedCount": f.write(Bson::Int64((deleted + extra) as i64)) }));
                }
                Ok(json!({ "deletedCount": f.write(Bson::Int64(deleted as i64)) }))
            }
            "updateOne" => {
                let Bson::Document(filter) = f.read(&body, "filter")? else { return Err("filter".into()) };
                let Bson::Document(update) = f.read(&body, "update")? else { return Err("update".into()) };
                // `upsert` (default false): insert from the filter and the update when nothing matches; the answer
                // then carries `upsertedId`.
                if fault == Fault::RefuseUpdates {
                    return Err("(Unauthorized) the API key may not run updateOne on this collection".into());
                }
                let upsert = body["upsert"].as_bool().unwrap_or(false) && fault != Fault::IgnoreUpsert;
                let r = collection.update_one(filter, update).upsert(upsert).await.map_err(|e| e.to_string())?;
                if let Fault::SlowUpdateAnswers(delay) = fault {
                    tokio::time::sleep(delay).await;
                }
                let mut answer = json!({
                    "matchedCount": f.write(Bson::Int64(r.matched_count as i64)),
                    "modifiedCount": f.write(Bson::Int64(r.modified_count as i64)),
                });
                if let Some(id) = r.upserted_id {
                    answer["upsertedId"] = f.write(id);
                }
                Ok(answer)
            }
            "findOne" => {
                let Bson::Document(filter) = f.read(&body, "filter")? else { return Err("filter".into()) };
                let found = collection.find_one(filter).await.map_err(|e| e.to_string())?;
                Ok(json!({ "document": found.map_or(Value::Null, |d| f.write(Bson::Document(d))) }))
            }
            "deleteOne" => {
                let Bson::Document(filter) = f.read(&body, "filter")? else { return Err("filter".into()) };
                let deleted = collection.delete_one(filter).await.map_err(|e| e.to_string())?.deleted_count;
                Ok(json!({ "deletedCount": f.write(Bson::Int64(deleted as i64)) }))
            }
            other => Err(format!("unknown action {other}")),
        }
    }
    .await;
    match result {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}
