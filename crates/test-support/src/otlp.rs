//! OTLP receivers for the trace tests: a real one (PyPI's `oteltap`, installed by `scripts/test-otlp.sh`, started
//! here by PID and stopped on drop), and two broken collectors, one that never answers and one that answers 500.

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{free_port, stop, TempDir};

/// How long a test waits for spans to arrive before it gives up (not a measure of speed: a cap on a wait).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One span as the receiver decoded it (OTLP's JSON mapping: ids in hex).
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    /// OTLP's `SpanKind`: 1 internal, 2 server, 3 client.
    pub kind: u64,
    /// Every attribute, as text.
    pub attributes: HashMap<String, String>,
    /// The names of its events.
    pub events: Vec<String>,
    /// 0 unset, 1 ok, 2 error.
    pub status: u64,
    /// Start and end, in nanoseconds since the epoch.
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Span {
    fn from_json(line: &Value) -> Option<Self> {
        let text = |key: &str| line.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let mut attributes = HashMap::new();
        for attribute in line.get("attributes").and_then(Value::as_array).into_iter().flatten() {
            let key = attribute.get("key").and_then(Value::as_str)?.to_string();
            let value = attribute.get("value").and_then(Value::as_object).and_then(|v| v.values().next());
            let value = match value {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            attributes.insert(key, value);
        }
        let events = line.get("events").and_then(Value::as_array).into_iter().flatten();
        Some(Self {
            trace_id: text("traceId"),
            span_id: text("spanId"),
            parent_span_id: text("parentSpanId"),
            name: line.get("name")?.as_str()?.to_string(),
            kind: line.get("kind").and_then(Value::as_u64).unwrap_or(0),
            attributes,
            events: events.filter_map(|e| e.get("name").and_then(Value::as_str).map(str::to_string)).collect(),
            status: line.pointer("/status/code").and_then(Value::as_u64).unwrap_or(0),
            start_ns: text("startTimeUnixNano").parse().unwrap_or(0),
            end_ns: text("endTimeUnixNano").parse().unwrap_or(0),
        })
    }

    /// The attribute `key`, or "".
    pub fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map(String::as_str).unwrap_or("")
    }
}

/// A running `python -m oteltap` (OTLP/HTTP protobuf on a free port, every span printed as a JSON line).
pub struct Receiver {
    child: Child,
    output: std::path::PathBuf,
    port: u16,
    _dir: TempDir,
}

impl Receiver {
    /// Starts one. Panics, naming the script, when the receiver is not installed.
    pub fn start() -> Self {
        let python = std::env::var("OTLP_RECEIVER_PYTHON").unwrap_or_else(|_| {
            panic!("OTLP_RECEIVER_PYTHON is not set: run the suite with scripts/test (scripts/test-otlp.sh installs oteltap)")
        });
        let dir = TempDir::new("jtc-otlp");
        let output = dir.path().join("spans.ndjson");
        let port = free_port();
        let file = std::fs::File::create(&output).expect("the receiver's output file");
        let child = Command::new(python)
            .args(["-u", "-m", "oteltap", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("start oteltap");
        let receiver = Self { child, output, port, _dir: dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < PATIENCE, "oteltap did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        receiver
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.output) {
            let _ = file.read_to_string(&mut text);
        }
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line.get("spanId").is_some())
            .filter_map(|line| Span::from_json(&line))
            .collect()
    }

    /// The spans received once `ready` says they are all there; panics after [`PATIENCE`] with what came.
    pub async fn wait_for(&self, ready: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let started = Instant::now();
        loop {
            let spans = self.spans();
            if ready(&spans) {
                return spans;
            }
            let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
            assert!(started.elapsed() < PATIENCE, "the spans did not all arrive; received: {names:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(5));
    }
}

/// A collector that accepts connections and never answers; counts the connections it accepted.
pub struct Hanging {
    pub port: u16,
    accepted: Arc<Mutex<u64>>,
}

impl Hanging {
    /// Listens on a free port (or on `port`, when it is given and free: `None` when it is taken).
    pub fn listen(port: Option<u16>) -> Option<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).ok()?;
        let port = listener.local_addr().ok()?.port();
        let accepted = Arc::new(Mutex::new(0));
        let counter = Arc::clone(&accepted);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                *counter.lock().unwrap() += 1;
                held.push(stream);
            }
        });
        Some(Self { port, accepted })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        *self.accepted.lock().unwrap()
    }
}

/// A collector that answers every export with 500.
pub async fn failing() -> String {
    let router = axum::Router::new().fallback(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "broken") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("port").port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://127.0.0.1:{port}")
}
