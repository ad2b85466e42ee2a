//! Traces, through the binary, against a real OTLP receiver (oteltap, `scripts/test-otlp.sh`): an invoke continues
//! the caller's trace and nests run → target → batch → database call; several targets and a fallback show as such;
//! the Data API receives `traceparent`; JSON log lines carry the trace; with no endpoint nothing is exported or
//! connected to; a collector that hangs or fails delays the answer by at most the flush bound and only warns.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use jtc_test_support::data_api::DataApi;
use jtc_test_support::otlp::{self, Receiver, Span};
use jtc_test_support::{expired_and_valid, free_port, stop, wait_healthy, TempDir};
use serde_json::Value;

use crate::helpers::{CleanerEnv, TestDb};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// `jwt-token-cleaner serve` with `env` (and JSON logs), on a free port; its log lines in a file; stopped on drop.
struct Served {
    child: Child,
    port: u16,
    logs: std::path::PathBuf,
    _dir: TempDir,
}

impl Served {
    async fn start(env: &HashMap<String, String>) -> Self {
        let dir = TempDir::new("jtc-traces");
        let logs = dir.path().join("stderr.log");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_jwt-token-cleaner"))
            .arg("serve")
            .env_clear()
            .envs(env)
            .env("PORT", port.to_string())
            .env("LOG_FORMAT", "json")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&logs).expect("log file"))
            .spawn()
            .expect("start the binary");
        wait_healthy(port).await;
        Self { child, port, logs, _dir: dir }
    }

    /// POSTs `/invoke` with `headers`; the status and the answer.
    async fn invoke(&self, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/invoke", self.port))
            .header("x-fc-request-id", "trace-req-1")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("invoke");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(&self.logs).map(|mut f| f.read_to_string(&mut text));
        text
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(10));
    }
}

fn traceparent() -> String {
    format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name} span expected: {spans:#?}");
    found[0]
}

fn has(name: &'static str) -> impl Fn(&[Span]) -> bool {
    move |spans| spans.iter().any(|s| s.name == name)
}

async fn seeded(expired: i64) -> TestDb {
    let db = TestDb::new().await;
    db.insert(expired_and_valid(Utc::now().timestamp_millis(), expired, 120_000, 1000, 5)).await;
    db
}

#[tokio::test]
async fn an_invoke_continues_the_callers_trace_through_run_target_batch_and_delete() {
    let receiver = Receiver::start();
    let db = seeded(40).await;
    // The batch processor's own schedule is ten minutes away: the spans can only come from the invocation's flush.
    let env = db.env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()), ("OTEL_BSP_SCHEDULE_DELAY", "600000")]);
    let served = Served::start(&env).await;
    let (status, answer) = served.invoke(&[("traceparent", &traceparent())], "").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["cleaned_count"], 40, "{answer}");

    let spans = receiver.wait_for(has("invoke")).await;
    assert!(spans.iter().all(|s| s.trace_id == CALLER_TRACE), "every span is in the caller's trace: {spans:#?}");
    let invoke = one(&spans, "invoke");
    assert_eq!(invoke.parent_span_id, CALLER_SPAN, "the invocation's parent is the caller's span");
    assert_eq!(invoke.kind, 2, "a server span");
    assert_eq!(invoke.attr("request_id"), "trace-req-1");
    assert_eq!(invoke.attr("trigger"), "manual");
    let run = one(&spans, "run");
    assert_eq!(run.parent_span_id, invoke.span_id);
    assert_eq!(
        run.attr("cleaned"),
        answer["data"]["cleaned_count"].to_string(),
        "the run span's cleaned is the report's"
    );
    assert_eq!(run.attr("outcome"), "success");
    assert_eq!(run.attr("complete"), "true");
    let target = one(&spans, "target");
    assert_eq!(target.parent_span_id, run.span_id);
    assert_eq!(target.attr("db.namespace"), db.name);
    assert_eq!(target.attr("db.collection.name"), "jwt_blacklist");
    let batches: Vec<&Span> =
        named(&spans, "batch").into_iter().filter(|b| b.parent_span_id == target.span_id).collect();
    let deleted: u64 = batches.iter().map(|b| b.attr("entries").parse::<u64>().unwrap_or(0)).sum();
    assert_eq!(deleted, 40, "the batches' entries add up to the report's: {batches:#?}");
    let delete = named(&spans, "delete");
    assert!(!delete.is_empty(), "the deletes are spans");
    for call in &delete {
        assert!(batches.iter().any(|b| b.span_id == call.parent_span_id), "a delete is a batch's child: {call:#?}");
        assert_eq!(call.kind, 3, "a client span");
        assert_eq!(call.attr("db.system.name"), "mongodb");
        assert_eq!(call.attr("db.operation.name"), "delete");
        assert_eq!(call.attr("db.namespace"), db.name);
        assert_eq!(call.attr("db.collection.name"), "jwt_blacklist");
    }
    for name in ["lease", "history write"] {
        assert_eq!(one(&spans, name).parent_span_id, run.span_id, "{name} is the run's child");
    }

    // Every JSON line written inside the invocation names its trace; the run's lines name its request id.
    let logs = served.logs();
    let finished = logs.lines().find(|l| l.contains("sweep finished")).unwrap_or_else(|| panic!("{logs}"));
    let line: Value = serde_json::from_str(finished).expect("a JSON line");
    assert_eq!(line["trace_id"], CALLER_TRACE, "{finished}");
    assert!(line["span_id"].as_str().is_some_and(|s| s.len() == 16), "{finished}");
    assert!(finished.contains("\"request_id\":\"trace-req-1\""), "{finished}");
}

#[tokio::test]
async fn fc_older_header_is_continued_when_there_is_no_traceparent() {
    let receiver = Receiver::start();
    let db = seeded(3).await;
    let served = Served::start(&db.env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())])).await;
    let legacy = "1f2e3d4c5b6a7988:a1b2c3d4e5f60718:0:1";
    let (status, _) = served.invoke(&[("x-fc-tracing-opentracing-span-context", legacy)], "").await;
    assert_eq!(status, 200);
    let spans = receiver.wait_for(has("invoke")).await;
    let invoke = one(&spans, "invoke");
    assert_eq!(invoke.trace_id, "00000000000000001f2e3d4c5b6a7988");
    assert_eq!(invoke.parent_span_id, "a1b2c3d4e5f60718");

    // Without either, a new trace.
    let (status, _) = served.invoke(&[], "").await;
    assert_eq!(status, 200);
    let spans = receiver.wait_for(|spans| named(spans, "invoke").len() == 2).await;
    let fresh = named(&spans, "invoke").into_iter().find(|s| s.trace_id != invoke.trace_id).expect("a new trace");
    assert!(fresh.parent_span_id.is_empty(), "a root span: {fresh:#?}");
}

#[tokio::test]
async fn two_targets_show_as_two_spans_and_the_data_api_continues_the_trace_then_falls_back() {
    let receiver = Receiver::start();
    let db = seeded(12).await;
    let api = DataApi::spawn(&db.uri, None).await;
    let targets = r#"[{"name": "auth", "collection": "jwt_blacklist"}, {"name": "other", "collection": "other"}]"#;
    let env = db.env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
        ("CLEANUP_TARGETS", targets),
        ("MONGODB_API_URL", &api.url),
    ]);
    let served = Served::start(&env).await;
    let (status, answer) = served.invoke(&[("traceparent", &traceparent())], "").await;
    assert_eq!(status, 200, "{answer}");
    let spans = receiver.wait_for(has("invoke")).await;
    let run = one(&spans, "run");
    let mut names: Vec<&str> = named(&spans, "target").iter().map(|t| t.attr("target")).collect();
    names.sort_unstable();
    assert_eq!(names, ["auth", "other"]);
    assert!(named(&spans, "target").iter().all(|t| t.parent_span_id == run.span_id));
    // The Data API's requests are client spans, and the API received their traceparent, in the caller's trace.
    let requests = named(&spans, "POST /action/deleteMany");
    assert!(!requests.is_empty(), "the Data API's deletes are spans: {spans:#?}");
    let received = api.traceparents();
    assert!(!received.is_empty(), "the Data API received traceparent");
    for header in &received {
        assert!(header.starts_with(&format!("00-{CALLER_TRACE}-")), "{header}");
        let span_id = header.split('-').nth(2).unwrap_or_default();
        assert!(spans.iter().any(|s| s.span_id == span_id && s.kind == 3), "{header} names an exported client span");
    }

    // The API goes away: the next run falls back to the direct connection, an event on the call that moved.
    drop(api);
    let db2 = seeded(5).await;
    let dead = format!("http://127.0.0.1:{}/api/v1", free_port());
    let env = db2.env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()), ("MONGODB_API_URL", &dead)]);
    let served = Served::start(&env).await;
    let (status, answer) = served.invoke(&[], "").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["backend"], "http_api+mongodb", "{answer}");
    let spans = receiver.wait_for(|spans| named(spans, "invoke").len() == 2).await;
    let fell_back: Vec<&Span> = spans.iter().filter(|s| s.events.iter().any(|e| e == "falling back")).collect();
    assert_eq!(fell_back.len(), 1, "one call moved down the chain, as an event: {spans:#?}");
    assert_eq!(fell_back[0].attr("backend"), "mongodb", "the call that moved ended on the direct connection");
    let failed_request = spans.iter().find(|s| s.name.starts_with("POST /action/") && s.status == 2);
    assert!(failed_request.is_some_and(|s| s.attr("error.type") == "unreachable"), "{spans:#?}");
}

#[tokio::test]
async fn with_no_endpoint_nothing_is_exported_and_no_connection_is_made() {
    // The spec's default endpoint (localhost:4318), when this machine leaves it free; else a port of our own
    // named by nothing.
    let Some(collector) = otlp::Hanging::listen(Some(4318)).or_else(|| otlp::Hanging::listen(None)) else {
        panic!("no port to listen on");
    };
    let db = seeded(3).await;
    let served =
        Served::start(&db.env(&[("OTEL_SERVICE_NAME", "cleaner"), ("OTEL_TRACES_SAMPLER", "always_on")])).await;
    let (status, answer) = served.invoke(&[("traceparent", &traceparent())], "").await;
    assert_eq!(status, 200, "{answer}");
    assert!(!answer["data"]["warnings"].to_string().contains("trace"), "{answer}");
    let logs = served.logs();
    drop(served);
    assert_eq!(collector.accepted(), 0, "no connection to a collector");
    assert!(logs.contains("sweep finished") && !logs.contains("trace_id"), "no spans, no trace ids: {logs}");
}

#[tokio::test]
async fn a_hanging_or_failing_collector_delays_the_answer_by_at_most_the_flush_bound_and_warns() {
    let hanging = otlp::Hanging::listen(None).expect("a port");
    let failing = otlp::failing().await;
    for (collector, what) in [(hanging.endpoint(), "hanging"), (failing, "failing")] {
        let db = seeded(3).await;
        let env = db.env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &collector), ("CLEANUP_TIME_BUDGET_SECONDS", "10")]);
        let served = Served::start(&env).await;
        let started = Instant::now();
        let (status, answer) = served.invoke(&[("traceparent", &traceparent())], "").await;
        let took = started.elapsed();
        assert_eq!(status, 200, "{what}: a collector never fails a run: {answer}");
        assert_eq!(answer["data"]["cleaned_count"], 3, "{what}: {answer}");
        let warnings = answer["data"]["warnings"].to_string();
        assert!(warnings.contains("the run's trace was not delivered"), "{what}: {answer}");
        // The run ends by its own deadline (budget + 5 s margin); the flush adds at most its 1 s bound. Not a
        // speed threshold: the bound this design promises, which only a hang could cross.
        assert!(took < Duration::from_secs(10 + 5 + 1), "{what}: answered after {took:?}");
    }
    assert!(hanging.accepted() > 0, "the hanging collector was tried");
}

#[tokio::test]
async fn the_cli_delivers_its_run_before_it_exits_and_names_its_request_id() {
    let receiver = Receiver::start();
    let db = seeded(4).await;
    let env = db.env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ("LOG_FORMAT", "json"),
    ]);
    let out = crate::helpers::cli(&env, &["sweep"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let spans = receiver.wait_for(has("run")).await;
    let run = one(&spans, "run");
    assert!(run.parent_span_id.is_empty(), "the CLI's run is a trace of its own");
    assert!(run.attr("request_id").starts_with("cli-"), "{run:#?}");
    assert_eq!(run.attr("cleaned"), "4");
    let logs = String::from_utf8_lossy(&out.stderr);
    let finished = logs.lines().find(|l| l.contains("sweep finished")).unwrap_or_else(|| panic!("{logs}"));
    assert!(finished.contains(&format!("\"trace_id\":\"{}\"", run.trace_id)), "{finished}");
    assert!(finished.contains(run.attr("request_id")), "{finished}");
}
