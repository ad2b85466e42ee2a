//! A server started in-process on port 0, and a client that speaks FC's protocol to it: the cleaner's suite and
//! auth-api's end-to-end test both drive the cleaner through it (only building the `Application` is theirs).

use std::future::Future;

use serde_json::Value;

/// A server running in the background of a test, and an HTTP client for it.
pub struct FcApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The client.
    pub http: reqwest::Client,
}

/// An answer: the HTTP status, `x-fc-status`, and the body as JSON (a string when it is not JSON).
pub struct Answer {
    pub status: u16,
    pub fc_status: Option<String>,
    pub json: Value,
}

impl FcApp {
    /// Runs `run` (a bound server's `run_until_stopped`) in the background; `port` is the port it bound.
    pub fn serve(port: u16, run: impl Future<Output = std::io::Result<()>> + Send + 'static) -> Self {
        tokio::spawn(run);
        Self { address: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() }
    }

    /// `POST /invoke` with `body`, as FC sends it (with a request id).
    pub async fn invoke(&self, body: impl Into<reqwest::Body>) -> Answer {
        self.call(reqwest::Method::POST, "/invoke", body.into(), Some("test-request-1")).await
    }

    /// Any request, with `x-fc-request-id: id` when given.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: reqwest::Body, id: Option<&str>) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.address))
            .header("content-type", "application/octet-stream")
            .body(body);
        if let Some(id) = id {
            request = request.header("x-fc-request-id", id);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let fc_status = response.headers().get("x-fc-status").map(|v| v.to_str().unwrap_or("?").to_string());
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text));
        Answer { status, fc_status, json }
    }
}
