//! A test server of the DB-operation HTTP API's shape (Atlas Data API v1), backed by the real test database, with
//! fault modes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document};
use mongodb::Client;
use serde_json::{json, Value};

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
}

struct ApiState {
    client: Client,
    fault: Mutex<Fault>,
    canonical: Mutex<bool>,
    api_key: Option<String>,
    calls: AtomicU64,
    deletes: AtomicU64,
    measures: AtomicU64,
}

/// A running test Data API.
pub struct DataApi {
    pub url: String,
    state: Arc<ApiState>,
}

impl DataApi {
    /// Serves on a free port, in front of the server at `db_uri`; requires `api_key` when given.
    pub async fn spawn(db_uri: &str, api_key: Option<&str>) -> Self {
        let client = Client::with_uri_str(db_uri).await.expect("test server URI");
        let state = Arc::new(ApiState {
            client,
            fault: Mutex::new(Fault::None),
            canonical: Mutex::new(false),
            api_key: api_key.map(str::to_string),
            calls: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            measures: AtomicU64::new(0),
        });
        let router = Router::new().route("/action/{action}", post(action)).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://127.0.0.1:{}/api/v1", listener.local_addr().unwrap().port());
        let router = Router::new().nest("/api/v1", router);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, state }
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    /// Answer in canonical Extended JSON instead of relaxed.
    pub fn set_canonical(&self, canonical: bool) {
        *self.state.canonical.lock().unwrap() = canonical;
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
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn bson_field(body: &Value, name: &str) -> Result<Bson, String> {
    let value = body.get(name).cloned().unwrap_or(json!({}));
    Bson::try_from(value).map_err(|e| format!("{name} is not Extended JSON: {e}"))
}

/// Drains a cursor into `{"documents": [...]}`.
async fn documents(
    cursor: mongodb::error::Result<mongodb::Cursor<Document>>,
    out: &impl Fn(Bson) -> Value,
) -> Result<Value, String> {
    let docs: Vec<Document> = cursor.map_err(|e| e.to_string())?.try_collect().await.map_err(|e| e.to_string())?;
    Ok(json!({ "documents": docs.into_iter().map(|d| out(Bson::Document(d))).collect::<Vec<_>>() }))
}

async fn action(
    State(state): State<Arc<ApiState>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    if let Some(key) = &state.api_key {
        if headers.get("api-key").and_then(|v| v.to_str().ok()) != Some(key.as_str()) {
            return error(StatusCode::UNAUTHORIZED, "invalid api key");
        }
    }
    let fault = *state.fault.lock().unwrap();
    match fault {
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
    let canonical = *state.canonical.lock().unwrap();
    let out = |value: Bson| if canonical { value.into_canonical_extjson() } else { value.into_relaxed_extjson() };

    let result: Result<Value, String> = async {
        match action.as_str() {
            "find" => {
                let Bson::Document(filter) = bson_field(&body, "filter")? else { return Err("filter".into()) };
                let limit = body["limit"].as_i64().unwrap_or(0);
                documents(collection.find(filter).limit(limit).await, &out).await
            }
            "aggregate" => {
                let Bson::Array(stages) = bson_field(&body, "pipeline")? else { return Err("pipeline".into()) };
                let pipeline: Vec<Document> = stages.into_iter().filter_map(|s| s.as_document().cloned()).collect();
                if pipeline.iter().any(|s| s.to_string().contains("$bsonSize")) {
                    state.measures.fetch_add(1, Ordering::SeqCst);
                }
                documents(collection.aggregate(pipeline).await, &out).await
            }
            "deleteMany" => {
                let Bson::Document(filter) = bson_field(&body, "filter")? else { return Err("filter".into()) };
                let deleted = collection.delete_many(filter).await.map_err(|e| e.to_string())?.deleted_count;
                state.deletes.fetch_add(1, Ordering::SeqCst);
                if fault == Fault::DeletedCountAsString {
                    return Ok(json!({ "deletedCount": deleted.to_string() }));
                }
                Ok(json!({ "deletedCount": out(Bson::Int64(deleted as i64)) }))
            }
            "updateOne" => {
                let Bson::Document(filter) = bson_field(&body, "filter")? else { return Err("filter".into()) };
                let Bson::Document(update) = bson_field(&body, "update")? else { return Err("update".into()) };
                let r = collection.update_one(filter, update).await.map_err(|e| e.to_string())?;
                Ok(json!({
                    "matchedCount": out(Bson::Int64(r.matched_count as i64)),
                    "modifiedCount": out(Bson::Int64(r.modified_count as i64)),
                }))
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
