//! What every test suite and benchmark of the workspace needs, in one place: the real test database (a database
//! of its own per test), the test Data API, free ports, waiting for a server's `/health`, and stopping a child
//! process by signal, by PID.
//!
//! # Layout
//!
//! - [`TestDb`]: a database of its own on the server `MONGODB_TEST_URI` names (set by `scripts/test`).
//! - [`free_port`], [`dead_db_uri`]: ports, taken or with nothing behind them.
//! - [`wait_healthy`], [`stop`]: a child server's life, from its first 200 on `/health` to its exit on SIGTERM.
//! - [`bson_size`]: a document's BSON size, computed here, independently of any server.
//! - [`PrivateDb`] (`private_db`): a SecantusDB server of a test's own (`SECANTUS_BIN`), to stop, restart or lock
//!   down.
//! - [`awkward_uris`], [`leaks`]: connection strings whose passwords drivers mangle, and what must never show.
//! - [`TempDir`]: a directory of its own under the system's temp dir, removed when dropped, pass or fail.
//! - [`data_api`]: the test Data API (MongoDB's Atlas Data API v1 as documented, its deviations as dialects, and
//!   fault modes), for the suites and the benchmarks.
//! - [`dribble_headers`], [`idle_after_one_request`], [`short_body`], [`dribble_body`], [`raw_request`]: slow,
//!   idle and hand-written clients, for the connection deadlines and the request head's cap.
//! - [`fc_client`]: a server run in the background on port 0 ([`FcApp`]), called as FC calls it.
//! - [`otlp`]: a real OTLP receiver (oteltap, by PID) and collectors that hang or fail, for the trace tests.
//! - [`webdriver`]: headless Chromium over the W3C WebDriver protocol (chromedriver by PID), for browser tests.
//! - [`splice_report`]: a benchmark's table written into its section of `BENCHMARKS.md`.
//! - [`rss_bytes`]: a process's resident memory, from `/proc`.
//! - [`bench_args`]: a benchmark's arguments, parsed with clap, one way for every benchmark.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

pub mod data_api;
pub mod fc_client;
pub mod otlp;
pub mod webdriver;

pub use fc_client::FcApp;
mod private_db;

pub use private_db::PrivateDb;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Document};
use mongodb::{Client, Collection};

/// The server the suites run against: `MONGODB_TEST_URI` (set by `scripts/test`, or by you for a real MongoDB).
pub fn test_db_uri() -> String {
    std::env::var("MONGODB_TEST_URI").unwrap_or_else(|_| {
        panic!("MONGODB_TEST_URI is not set: run the suite with scripts/test (it starts a local test server)")
    })
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A connection string to a port where nothing listens.
pub fn dead_db_uri() -> String {
    format!("mongodb://127.0.0.1:{}/?directConnection=true", free_port())
}

/// The exact BSON size of a document, computed here, independently of the server.
pub fn bson_size(doc: &Document) -> u64 {
    mongodb::bson::to_vec(doc).expect("serialize").len() as u64
}

/// Waits until `GET http://127.0.0.1:{port}/health` answers 200, up to 20 s.
pub async fn wait_healthy(port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/health")).await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server on port {port} never became healthy");
}

/// Sends SIGTERM to `child` (by its PID) and waits for it to exit, up to `patience`; then SIGKILL, and a panic
/// when `patience` was meant to be enough.
pub fn stop(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) of our own child, whose PID cannot have been reused while it is not yet waited for.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if started.elapsed() > patience {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The connection strings a driver chokes on or cannot reach, each with a password that must appear nowhere: an
/// unescaped `?` (the driver cuts the URI there), `@`, `/` and `#`, a percent escape, and an unreachable host.
pub fn awkward_uris(dead_port: u16) -> Vec<(String, &'static str)> {
    let host = format!("127.0.0.1:{dead_port}");
    vec![
        (format!("mongodb://admin:Qm4rk?Pa55@{host}/?directConnection=true"), "Qm4rk?Pa55"),
        (format!("mongodb://admin:At@Pa55-x@{host}/?directConnection=true"), "At@Pa55-x"),
        (format!("mongodb://admin:Sl/Pa55-y@{host}/?directConnection=true"), "Sl/Pa55-y"),
        (format!("mongodb://admin:Hs#Pa55-z@{host}/?directConnection=true"), "Hs#Pa55-z"),
        (format!("mongodb://admin:Pc%25Pa55-w@{host}/?directConnection=true"), "Pc%Pa55-w"),
        (format!("mongodb://svc-user:Unreach-Pa55-v@{host}/?directConnection=true"), "Unreach-Pa55-v"),
    ]
}

/// What must not appear when `password` is to stay secret: the password, and each piece a driver may cut it into
/// (at `?`, `/`, `#`, `@`, `%`) long enough to mean something.
pub fn leaks(password: &str) -> Vec<String> {
    let pieces = password.split(['?', '/', '#', '@', '%']).filter(|p| p.len() >= 3);
    pieces.chain([password]).map(str::to_string).collect()
}

/// A database of its own on the test server, dropped when the `TestDb` is dropped: at the end of the test, and
/// also when it fails (drops run while unwinding), so no run of the suite leaves databases behind.
pub struct TestDb {
    pub uri: String,
    pub name: String,
    pub client: Client,
}

impl TestDb {
    pub async fn new() -> Self {
        let uri = test_db_uri();
        let name = format!("jtc_test_{}", &ObjectId::new().to_hex()[12..]);
        let client = Client::with_uri_str(&uri).await.expect("test server URI");
        Self { uri, name, client }
    }

    pub fn blacklist(&self) -> Collection<Document> {
        self.client.database(&self.name).collection("jwt_blacklist")
    }

    /// Inserts documents, giving each an `_id` first so that their BSON size is known before the insert.
    pub async fn insert(&self, docs: Vec<Document>) -> Vec<Document> {
        let docs: Vec<Document> = docs
            .into_iter()
            .map(|mut d| {
                if !d.contains_key("_id") {
                    let mut with_id = doc! { "_id": ObjectId::new() };
                    with_id.extend(std::mem::take(&mut d));
                    d = with_id;
                }
                d
            })
            .collect();
        if !docs.is_empty() {
            self.blacklist().insert_many(docs.clone()).await.expect("insert");
        }
        docs
    }

    /// The `jti`s left in the blacklist, sorted.
    pub async fn remaining_jtis(&self) -> Vec<String> {
        let docs: Vec<Document> =
            self.blacklist().find(doc! {}).await.expect("find").try_collect().await.expect("cursor");
        let mut jtis: Vec<String> = docs.iter().map(|d| d.get_str("jti").unwrap_or("?").to_string()).collect();
        jtis.sort();
        jtis
    }

    pub async fn count(&self) -> u64 {
        self.blacklist().count_documents(doc! {}).await.expect("count")
    }
}

impl Drop for TestDb {
    /// Drops the database from a thread of its own, with its own runtime and client: a `Drop` cannot await, and the
    /// test's runtime may be a current-thread one that is busy running this very drop. A server that is gone (a
    /// fault test stopped it) costs at most the 2 s server selection, and leaves nothing to drop.
    fn drop(&mut self) {
        let (uri, name) = (self.uri.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut options = mongodb::options::ClientOptions::parse(&uri).await.ok()?;
                options.server_selection_timeout = Some(std::time::Duration::from_secs(2));
                let client = Client::with_options(options).ok()?;
                let dropped = client.database(&name).drop().await.ok();
                client.shutdown().await;
                dropped
            })
        });
        let _ = dropped.join();
    }
}

/// A fresh directory `{temp}/{prefix}-{random}`, removed with everything in it when dropped (also when the test
/// panics: drops run while unwinding), so no run of the suite leaves directories behind.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", ObjectId::new().to_hex()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A slow client: connects to `address`, sends a request line and then one header line every 200 ms, never ending
/// the head. Returns how long the server took to close the connection (or `None` if it was still open after
/// `give_up`).
pub async fn dribble_headers(address: std::net::SocketAddr, give_up: Duration) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let started = Instant::now();
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: slow\r\n").await.ok()?;
    let mut buf = [0u8; 1024];
    for i in 0.. {
        if started.elapsed() > give_up {
            return None;
        }
        // A closed connection shows as a failed write, or as a read of 0 bytes (or a 408 the server sent first).
        if stream.write_all(format!("X-Slow-{i}: x\r\n").as_bytes()).await.is_err() {
            return Some(started.elapsed());
        }
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
    None
}

/// An idle client: sends one whole request, reads the answer, then sends nothing. Returns how long after the answer
/// the server closed the connection (or `None` if it was still open after `give_up`).
pub async fn idle_after_one_request(address: std::net::SocketAddr, give_up: Duration) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: idle\r\n\r\n").await.expect("request");
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "the request was answered");
    let started = Instant::now();
    match tokio::time::timeout(give_up, stream.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => Some(started.elapsed()),
        Ok(Ok(_)) | Err(_) => None,
    }
}

/// A client that sends a body one byte every 250 ms (a slow-body attack: each gap is far under any body timeout,
/// the whole body is not). Returns how long the server took to answer or close (or `None` if it was still open
/// after `give_up`).
pub async fn dribble_body(address: std::net::SocketAddr, path: &str, give_up: Duration) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\nContent-Length: 16000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("request");
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < give_up {
        if stream.write_all(b" ").await.is_err() {
            return Some(started.elapsed());
        }
        if tokio::time::timeout(Duration::from_millis(250), stream.read(&mut buf)).await.is_ok() {
            return Some(started.elapsed());
        }
    }
    None
}

/// Sends `head` (a request line and headers, without the blank line), then the blank line, and returns the status
/// line of the answer (empty when the server closed without one).
pub async fn raw_request(address: std::net::SocketAddr, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    // A server may answer (and close) before it has read all of a huge head: a failed write is not an error here.
    let _ = stream.write_all(format!("{head}\r\n\r\n").as_bytes()).await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await.ok().and_then(Result::ok);
    let text = String::from_utf8_lossy(&buf[..n.unwrap_or(0)]).to_string();
    text.lines().next().unwrap_or_default().to_string()
}

/// A client that promises a body and sends only part of it. Returns how long the server took to answer or close.
pub async fn short_body(address: std::net::SocketAddr, path: &str, give_up: Duration) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: short\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.expect("request");
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(give_up, stream.read(&mut buf)).await {
        Ok(_) => Some(started.elapsed()),
        Err(_) => None,
    }
}

/// A benchmark's arguments (`T`, a clap parser): what `scripts/bench` passes after the benchmark's name, less the
/// `--bench` flag cargo adds. A wrong argument stops the benchmark with clap's usage message.
pub fn bench_args<T: clap::Parser>() -> T {
    T::parse_from(std::env::args().filter(|arg| arg != "--bench"))
}

/// Writes `report` into the markdown file `out` between `<!-- {name}:start -->` and `<!-- {name}:end -->`
/// (appended with the markers when they are not there yet), leaving the rest of the file as it was.
pub fn splice_report(out: &Path, name: &str, report: &str) {
    let (start, end) = (format!("<!-- {name}:start -->"), format!("<!-- {name}:end -->"));
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let block = format!("{start}\n{report}{end}");
    let text = match (text.find(&start), text.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{block}{}", &text[..a], &text[b + end.len()..]),
        _ => format!("{text}\n{block}\n"),
    };
    std::fs::write(out, text).expect("write the report");
}

/// The resident set size of process `pid` in bytes (`VmRSS`), if it is still running.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The blacklist most tests start from: `expired` entries with a Date expiry, the first `first_ago` milliseconds
/// before `now_ms` and each next one `step_ms` further back (`jti` `e000000`, `e000001`, ...), and `valid` entries
/// that expire an hour after `now_ms` (`v000000`, ...). A test adds its own edge cases to the list.
pub fn expired_and_valid(now_ms: i64, expired: i64, first_ago_ms: i64, step_ms: i64, valid: i64) -> Vec<Document> {
    let expired = (0..expired).map(|i| {
        doc! { "jti": format!("e{i:06}"), "expires_at": mongodb::bson::DateTime::from_millis(now_ms - first_ago_ms - i * step_ms) }
    });
    let valid = (0..valid).map(
        |i| doc! { "jti": format!("v{i:06}"), "expires_at": mongodb::bson::DateTime::from_millis(now_ms + 3_600_000) },
    );
    expired.chain(valid).collect()
}
