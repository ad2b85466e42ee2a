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

use jtc_test_support::data_api;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use jwt_token_cleaner::sample;
use mongodb::bson::{doc, Document};
use mongodb::{Client, Collection, IndexModel};
use serde_json::Value;

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

/// CPU time (user + system) of a process, from /proc.
fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Some(Duration::from_millis(ticks * 1000 / hz.max(1)))
}

/// The PID of the server listening on the URI's port, when it runs on this machine (SecantusDB does).
fn server_pid(uri: &str) -> Option<u32> {
    let port: u16 = uri.split("127.0.0.1:").nth(1)?.split(['/', '?']).next()?.parse().ok()?;
    let out = Command::new("sh").arg("-c").arg(format!("ss -ltnpH 'sport = :{port}' 2>/dev/null")).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("pid=").nth(1)?.split(',').next()?.parse().ok()
}

struct Child {
    wall: Duration,
    report: Value,
    peak_rss_kb: u64,
    cpu: Duration,
}

/// The peak RSS (VmHWM, kB) of a running process.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the binary to completion. Its peak RSS and CPU time are read from /proc while it runs (VmHWM only grows,
/// so the last reading is the peak; the CPU time misses at most the last 5 ms). wait4's ru_maxrss is no use here:
/// it counts the pages of this process that the child shared before its exec.
fn run_binary(bin: &PathBuf, args: &[&str], env: &[(&str, String)]) -> Child {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the binary");
    let pid = child.id();
    let mut stdout_pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut stdout = String::new();
        stdout_pipe.read_to_string(&mut stdout).unwrap();
        stdout
    });
    let (mut peak, mut cpu) = (0, Duration::ZERO);
    loop {
        if let Some(kb) = peak_rss_kb(pid) {
            peak = peak.max(kb);
        }
        if let Some(c) = cpu_of(pid) {
            cpu = cpu.max(c);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed();
    let stdout = reader.join().unwrap();
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("not a report: {stdout}"));
    assert_eq!(report["status"], "success", "{report}");
    Child { wall, report, peak_rss_kb: peak, cpu }
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
        let field = jtc_shared::names::FieldPath::parse("EXPIRES_FIELD", "expires_at").expect("field");
        let schema = jtc_shared::blacklist::EntrySchema::new(field);
        let client = Client::with_uri_str(uri).await.expect("MONGODB_TEST_URI");
        let db = client.database(DB);
        db.drop().await.expect("drop");
        let collection = db.collection::<Document>("jwt_blacklist");
        collection.create_index(IndexModel::builder().keys(doc! { "expires_at": 1 }).build()).await.unwrap();
        let now = Utc::now().timestamp_millis();
        const HOUR: i64 = 3_600_000;
        let (mut expired_docs, mut chunk) = (Vec::new(), Vec::new());
        let started = Instant::now();
        for i in 0..n {
            // Half expired (1 h to 7 days ago), half valid (1 h to 7 days ahead), interleaved.
            let spread = HOUR + (i.wrapping_mul(2_654_435_761) % (7 * 24 * HOUR as u64 - HOUR as u64)) as i64;
            let expires = if i % 2 == 0 { now - spread } else { now + spread };
            let mut entry = sample::entry(&schema, i, expires, now);
            let mut with_id = doc! { "_id": mongodb::bson::oid::ObjectId::new() };
            with_id.extend(std::mem::take(&mut entry));
            if i % 2 == 0 {
                expired_docs.push(with_id.clone());
            }
            chunk.push(with_id);
            if chunk.len() == 10_000 {
                collection.insert_many(std::mem::take(&mut chunk)).await.unwrap();
            }
        }
        if !chunk.is_empty() {
            collection.insert_many(chunk).await.unwrap();
        }
        eprintln!("bench: seeded {n} entries in {:.1?}", started.elapsed());
        let expired_bytes = expired_docs.iter().map(|d| mongodb::bson::to_vec(d).unwrap().len() as u64).sum();
        let server_pid = server_pid(uri);
        Self { uri: uri.to_string(), client, collection, expired_docs, expired_bytes, bin, server_pid }
    }

    /// Re-inserts the expired half after a measurement deleted it.
    async fn restore(&self) {
        let started = Instant::now();
        let present = self
            .collection
            .count_documents(doc! { "expires_at": { "$lt": mongodb::bson::DateTime::now() } })
            .await
            .unwrap();
        if present > 0 {
            // A partial run: clear what is left of the half, then put the whole half back.
            self.collection
                .delete_many(doc! { "expires_at": { "$lt": mongodb::bson::DateTime::now() } })
                .await
                .unwrap();
        }
        for chunk in self.expired_docs.chunks(10_000) {
            self.collection.insert_many(chunk.to_vec()).await.unwrap();
        }
        eprintln!("bench: restored {} entries in {:.1?}", self.expired_docs.len(), started.elapsed());
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
