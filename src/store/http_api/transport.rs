//! One round trip to the Data API: the documented request (headers, body, key), and everything the client
//! refuses in an answer (a redirect, an oversized body, a non-2xx status, a body that is not a JSON object), each
//! classified as a [`StoreError`] whose message quotes the server only after scrubbing every secret.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::config::{ApiSettings, MongoName};
use crate::store::StoreError;
use jtc_shared::redact;

/// The Extended JSON media type of the Data API's requests and answers.
pub const EJSON: &str = "application/ejson";

/// The answer of one call: its top-level JSON object.
pub type Answer = serde_json::Map<String, Value>;

/// The HTTP client, the settings, and the secrets an error message must never quote (the key and the URL's
/// credentials in every form).
pub struct Transport {
    settings: ApiSettings,
    collection: MongoName,
    http: reqwest::Client,
    secrets: Vec<String>,
}

impl Transport {
    /// A transport for `collection`; the HTTP client (rustls) has connect and request timeouts of
    /// `MONGODB_API_TIMEOUT_SECONDS` and follows no redirect.
    pub fn new(settings: ApiSettings, collection: &MongoName) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("jwt-token-cleaner/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StoreError::query("cannot build the HTTP client").caused_by(e.without_url()))?;
        let mut secrets = redact::url_credentials(&settings.url);
        secrets.extend(settings.key.as_ref().map(|k| k.expose().to_string()));
        Ok(Self { settings, collection: collection.clone(), http, secrets })
    }

    /// One round trip on the blacklist: POSTs `fields` plus the data source, database and collection; returns the
    /// answer object.
    pub async fn send(&self, action: &str, fields: Value) -> Result<Answer, StoreError> {
        self.send_to(&self.collection, action, fields).await
    }

    /// The database every call addresses.
    pub fn database(&self) -> &str {
        &self.settings.database
    }

    /// The blacklist.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// [`send`](Self::send) on another collection of the same database (the run history). The request is a client
    /// span, and carries its `traceparent`, so that the API server's own spans join the run's trace.
    pub async fn send_to(&self, collection: &str, action: &str, fields: Value) -> Result<Answer, StoreError> {
        let span = tracing::info_span!(
            "http request",
            "otel.name" = %format_args!("POST /action/{action}"),
            "otel.kind" = "client",
            "http.request.method" = "POST",
            "url.path" = %format_args!("/action/{action}"),
            "http.response.status_code" = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            "otel.status_code" = tracing::field::Empty,
        );
        let answer = self.exchange(collection, action, fields, &span).instrument(span.clone()).await;
        if let Err(e) = &answer {
            span.record("error.type", e.kind().as_str());
            span.record("otel.status_code", "ERROR");
        }
        answer
    }

    async fn exchange(
        &self,
        collection: &str,
        action: &str,
        fields: Value,
        span: &tracing::Span,
    ) -> Result<Answer, StoreError> {
        let mut body = json!({
            "dataSource": self.settings.data_source,
            "database": &*self.settings.database,
            "collection": collection,
        });
        if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
            body.extend(fields);
        }
        let body = serde_json::to_vec(&body)
            .map_err(|e| StoreError::query(format!("{action}: cannot encode the request")).caused_by(e))?;
        let mut request = self
            .http
            .post(format!("{}/action/{action}", self.settings.url))
            .header(reqwest::header::CONTENT_TYPE, EJSON)
            .header(reqwest::header::ACCEPT, EJSON)
            .body(body);
        if let Some(key) = &self.settings.key {
            request = request.header("apiKey", key.expose()).header("api-key", key.expose());
        }
        let mut trace = reqwest::header::HeaderMap::new();
        jtc_shared::traces::context::carry(span, &mut trace);
        let response = request.headers(trace).send().await.map_err(|e| transport(action, e))?;
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
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
                Err(StoreError::protocol(format!("{action}: the answer is not a JSON object: {}", self.excerpt(&text))))
            }
        }
    }

    /// The answer's body as text, refused as soon as it is known to exceed the cap: by `Content-Length` before
    /// reading anything, else while it streams in.
    async fn read_capped(&self, action: &str, mut response: reqwest::Response) -> Result<String, StoreError> {
        let cap = self.settings.max_answer_bytes;
        let too_large = || {
            StoreError::contract(format!(
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

    /// The start of someone else's text, scrubbed of every secret, on one line.
    pub fn excerpt(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        excerpt(&redact::scrub(text, &secrets))
    }
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
    StoreError::contract(format!(
        "HTTP API {action}: HTTP {} redirect to {target}, not followed: the Data API never redirects a correct \
         request, and a redirect would carry the key to another host",
        status.as_u16()
    ))
}

/// A transport failure; the source is the client's error without the URL (which may carry credentials).
fn transport(action: &str, error: reqwest::Error) -> StoreError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let error = error.without_url();
    StoreError::unreachable(format!("HTTP API {action}: {kind}: {error}")).caused_by(error)
}

/// An error for a non-2xx answer; `excerpt` is the start of its body, already scrubbed.
fn http_status(action: &str, status: StatusCode, excerpt: &str) -> StoreError {
    let what = format!("HTTP API {action}: HTTP {}: {excerpt}", status.as_u16());
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => StoreError::auth(what),
        s if s.is_server_error() => StoreError::unreachable(what),
        _ => StoreError::query(format!("{what} (the API rejected our request: a bug to report)")),
    }
}

/// The start of an answer, on one line, for an error message.
pub fn excerpt(text: &str) -> String {
    let one_line: String = text.chars().take(160).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > 160 {
        format!("{one_line}...")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ErrorKind;

    #[test]
    fn statuses_map_to_errors() {
        assert_eq!(http_status("find", StatusCode::UNAUTHORIZED, "").kind(), ErrorKind::Auth);
        assert_eq!(http_status("find", StatusCode::FORBIDDEN, "").kind(), ErrorKind::Auth);
        assert_eq!(http_status("find", StatusCode::BAD_GATEWAY, "").kind(), ErrorKind::Unreachable);
        let e = http_status("find", StatusCode::BAD_REQUEST, "bad filter");
        assert_eq!(e.kind(), ErrorKind::Query);
        assert!(e.message().contains("a bug to report") && e.message().contains("bad filter"));
    }

    #[test]
    fn a_redirect_names_the_origin_only() {
        let from = reqwest::Url::parse("http://api.example/v1/action/find").unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("location", "https://other.example:8443/steal?key=abc".parse().unwrap());
        let e = redirected("find", StatusCode::TEMPORARY_REDIRECT, &from, &headers);
        assert_eq!(e.kind(), ErrorKind::Contract);
        assert!(e.message().contains("HTTP 307 redirect to https://other.example:8443,"), "{e}");
        assert!(!e.message().contains("steal") && !e.message().contains("abc"), "{e}");
        headers.insert("location", "/relative/path?q=1".parse().unwrap());
        let e = redirected("find", StatusCode::FOUND, &from, &headers);
        assert!(e.message().contains("redirect to http://api.example,"), "{e}");
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        assert_eq!(excerpt("a\nb"), "a b");
        assert_eq!(excerpt(&"x".repeat(500)).len(), 163);
    }
}
