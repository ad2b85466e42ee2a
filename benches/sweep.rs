//! The sweep at scale, against the physical limit, in one run. Run it with `scripts/bench` (it starts the test
//! server unless `MONGODB_TEST_URI` is set, builds the release binary and passes the arguments here):
//!
//!   scripts/bench [--entries 1000000] [--startup-runs 20] [--out BENCHMARKS.md]
//!
//! On identical data (seeded once, the deleted half re-inserted after every measurement) it measures:
//! 1. the physical limit: one bare `deleteMany({expires_at: {$lt: cutoff}})` through the driver;
//! 2. our sweep through the direct MongoDB backend (default batch size), as the real binary (`sweep`);
//! 3. our sweep through the HTTP API backend (the test Data API server, in this process);
//! 4. a dry run;
//! 5. the batch-size sweep (500, 5000, 50000) through the direct backend;
//!
//! then start-up (process start to the first 200 on /health, median of 20) and idle RSS, and the binary's size.
//! For every run of the binary: wall time, entries/s, ratio to (1), round trips (HTTP API), peak RSS, and where the
//! time went: the CPU time of our process and of the database server (from /proc) against the wall time.

mod common;

use common::{cpu_of, run_binary};
use jtc_test_support::data_api;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use mongodb::bson::{doc, Document};
use mongodb::{Client, Collection, IndexModel};

/// `scripts/bench [--entries N] [--startup-runs N]`.
#[derive(clap::Parser)]
struct Args {
    /// Entries seeded.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Process starts timed.
    #[arg(long, default_value_t = 20)]
    startup_runs: usize,
    /// Where the table is written (BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn args() -> Args {
    jtc_test_support::bench_args()
}

/// One measured run.
struct Row {
    name: String,
    wall: Duration,
    entries: u64,
    round_trips: Option<u64>,
    peak_rss_kb: Option<u64>,
    our_cpu: Option<Duration>,
    server_cpu: Option<Duration>,
    note: String,
}

/// The PID of the server listening on the URI's port, when it runs on this machine (SecantusDB does).
fn server_pid(uri: &str) -> Option<u32> {
    let port: u16 = uri.split("127.0.0.1:").nth(1)?.split(['/', '?']).next()?.parse().ok()?;
    let out = Command::new("sh").arg("-c").arg(format!("ss -ltnpH 'sport = :{port}' 2>/dev/null")).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("pid=").nth(1)?.split(',').next()?.parse().ok()
}

struct Bench {
    uri: String,
    client: Client,
    collection: Collection<Document>,
    expired_docs: Vec<Document>,
    expired_bytes: u64,
    bin: PathBuf,
    server_pid: Option<u32>,
}

const DB: &str = "jtc_bench";

impl Bench {
    /// Seeds `n` entries, half expired, with an index on the expiry.
    async fn seed(uri: &str, n: u64, bin: PathBuf) -> Self {
        let client = Client::with_uri_str(uri).await.expect("MONGODB_TEST_URI");
        let db = client.database(DB);
        db.drop().await.expect("drop");
        let collection = db.collection::<Document>("jwt_blacklist");
        collection.create_index(IndexModel::builder().keys(doc! { "expires_at": 1 }).build()).await.unwrap();
        let expired_docs = common::seed_half_expired(&collection, n).await;
        let expired_bytes = expired_docs.iter().map(|d| mongodb::bson::to_vec(d).unwrap().len() as u64).sum();
        let server_pid = server_pid(uri);
        Self { uri: uri.to_string(), client, collection, expired_docs, expired_bytes, bin, server_pid }
    }

    /// Re-inserts the expired half after a measurement deleted it.
    async fn restore(&self) {
        common::restore(&self.collection, &self.expired_docs).await;
    }

    fn env(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("DB_URI", self.uri.clone()),
            ("DB_NAME", DB.to_string()),
            ("CLEANUP_TIME_BUDGET_SECONDS", "900".to_string()),
        ];
        env.extend(extra.iter().cloned());
        env
    }

    fn server_cpu(&self) -> Option<Duration> {
        self.server_pid.and_then(cpu_of)
    }

    async fn bare_delete(&self) -> Row {
        let cutoff = mongodb::bson::DateTime::from_millis(Utc::now().timestamp_millis() - 60_000);
        let server_before = self.server_cpu();
        let started = Instant::now();
        let deleted =
            self.collection.delete_many(doc! { "expires_at": { "$lt": cutoff } }).await.unwrap().deleted_count;
        let wall = started.elapsed();
        assert_eq!(deleted, self.expired_docs.len() as u64);
        Row {
            name: "(1) bare deleteMany (physical limit)".into(),
            wall,
            entries: deleted,
            round_trips: Some(1),
            peak_rss_kb: None,
            our_cpu: None,
            server_cpu: server_before.zip(self.server_cpu()).map(|(b, a)| a.saturating_sub(b)),
            note: "no byte accounting".into(),
        }
    }

    fn sweep(
        &self,
        name: &str,
        args: &[&str],
        env: Vec<(&'static str, String)>,
        api: Option<&data_api::DataApi>,
    ) -> Row {
        let calls_before = api.map(|a| a.calls());
        let server_before = self.server_cpu();
        let child = run_binary(&self.bin, args, &env);
        let data = &child.report["data"];
        let dry = data["dry_run"] == true;
        let entries = if dry { data["would_clean_count"].as_u64() } else { data["cleaned_count"].as_u64() }.unwrap();
        let bytes = if dry { data["would_free_bytes"].as_u64() } else { data["memory_saved_bytes"].as_u64() }.unwrap();
        assert_eq!(entries, self.expired_docs.len() as u64, "{name}: {data}");
        assert_eq!(data["complete"], true, "{name}: {data}");
        let exact = bytes == self.expired_bytes;
        Row {
            name: name.to_string(),
            wall: child.wall,
            entries,
            round_trips: api.map(|a| a.calls() - calls_before.unwrap_or(0)),
            peak_rss_kb: Some(child.peak_rss_kb),
            our_cpu: Some(child.cpu),
            server_cpu: server_before.zip(self.server_cpu()).map(|(b, a)| a.saturating_sub(b)),
            note: format!(
                "{} batches; bytes {} ({} B)",
                data["batches"],
                if exact { "exact" } else { "NOT EXACT" },
                bytes
            ),
        }
    }
}

/// Process start to the first 200 on /health, and the RSS once idle.
fn startup(bin: &PathBuf, runs: usize) -> (Vec<Duration>, u64) {
    let mut times = Vec::new();
    let mut idle_rss_kb = 0;
    for _ in 0..runs {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg("serve")
            .env_clear()
            .env("DB_URI", "mongodb://127.0.0.1:9/?directConnection=true")
            .env("DB_NAME", "startup")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200") {
                    break;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never healthy");
            std::thread::sleep(Duration::from_micros(200));
        }
        times.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        let rss: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        idle_rss_kb = idle_rss_kb.max(rss);
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort();
    (times, idle_rss_kb)
}

fn fmt_dur(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let args = args();
    let uri = std::env::var("MONGODB_TEST_URI").expect("MONGODB_TEST_URI (scripts/bench sets it)");
    let bin = PathBuf::from(std::env::var("JTC_BIN").unwrap_or_else(|_| "target/release/jwt-token-cleaner".into()));
    assert!(bin.exists(), "{} is missing: cargo build --release", bin.display());

    let bench = Bench::seed(&uri, args.entries, bin.clone()).await;
    let server_version = bench
        .client
        .database("admin")
        .run_command(doc! { "buildInfo": 1 })
        .await
        .ok()
        .and_then(|b| b.get_str("version").ok().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());

    let mut rows = Vec::new();
    rows.push(bench.bare_delete().await);
    bench.restore().await;
    rows.push(bench.sweep("(2) sweep, direct MongoDB, batch 5000", &["sweep"], bench.env(&[]), None));
    bench.restore().await;

    let api = data_api::DataApi::spawn(&uri, None).await;
    let api_env = vec![
        ("MONGODB_API_URL", api.url.clone()),
        ("DB_NAME", DB.to_string()),
        ("CLEANUP_TIME_BUDGET_SECONDS", "900".to_string()),
        ("MONGODB_API_TIMEOUT_SECONDS", "120".to_string()),
    ];
    // The HTTP API server runs in this process; the sweep is the child.
    let api_row = tokio::task::block_in_place(|| {
        bench.sweep("(3) sweep, HTTP API, batch 5000", &["sweep"], api_env.clone(), Some(&api))
    });
    rows.push(api_row);
    bench.restore().await;

    rows.push(bench.sweep("(4) dry run, direct, batch 5000", &["sweep", "--dry-run"], bench.env(&[]), None));
    for size in ["500", "50000"] {
        let name = format!("(5) sweep, direct MongoDB, batch {size}");
        rows.push(bench.sweep(&name, &["sweep", "--batch-size", size], bench.env(&[]), None));
        bench.restore().await;
    }

    let (startup_times, idle_rss_kb) = startup(&bin, args.startup_runs);
    let median = startup_times[startup_times.len() / 2];
    let binary_size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);

    let limit = rows[0].wall.as_secs_f64();
    let mut table = String::from(
        "| measurement | wall | entries/s | ratio to (1) | round trips | peak RSS | our CPU | server CPU | notes |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {:.0} | {:.2}x | {} | {} | {} | {} | {} |",
            r.name,
            fmt_dur(r.wall),
            r.entries as f64 / r.wall.as_secs_f64(),
            r.wall.as_secs_f64() / limit,
            r.round_trips.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            r.peak_rss_kb.map(|k| format!("{:.1} MB", k as f64 / 1024.0)).unwrap_or_else(|| "-".into()),
            r.our_cpu.map(fmt_dur).unwrap_or_else(|| "-".into()),
            r.server_cpu.map(fmt_dur).unwrap_or_else(|| "-".into()),
            r.note,
        );
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = meminfo
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|k| k / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let command = format!("scripts/bench --entries {}", args.entries);
    let summary = format!(
        "Command: `{command}`\n\nMachine: {cores} cores, {mem_gb:.0} GiB; server: MongoDB-compatible {server_version} \
         ({uri_kind}); {n} entries, {half} expired, index on `expires_at`; measured {when}.\n\n{table}\n\
         Start-up (process start to the first 200 on /health, {runs} runs): median {median:.1} ms, min {min:.1} ms, \
         max {max:.1} ms. Idle RSS: {idle:.1} MB. Release binary: {size:.1} MB.\n",
        uri_kind = if std::env::var("JTC_BENCH_SERVER").is_ok() { "SecantusDB, local" } else { "MONGODB_TEST_URI" },
        n = args.entries,
        half = bench.expired_docs.len(),
        when = Utc::now().format("%Y-%m-%d %H:%M UTC"),
        runs = startup_times.len(),
        median = median.as_secs_f64() * 1000.0,
        min = startup_times[0].as_secs_f64() * 1000.0,
        max = startup_times[startup_times.len() - 1].as_secs_f64() * 1000.0,
        idle = idle_rss_kb as f64 / 1024.0,
        size = binary_size as f64 / 1_048_576.0,
    );
    println!("{summary}");
    if let Some(out) = args.out {
        // Replace the generated section of the file, keeping the prose around it.
        jtc_test_support::splice_report(&out, "bench", &summary);
        eprintln!("bench: wrote {}", out.display());
    }
    let _ = bench.client.database(DB).drop().await;
}
