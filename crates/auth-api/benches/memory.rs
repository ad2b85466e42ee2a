//! auth-api's memory through bursts of failed logins (`scripts/bench auth-memory`).
//!
//! Starts the release binary (`AUTH_API_BIN`) against the test database in three variants (glibc keeping the
//! argon2 blocks, fresh memory for every login, and the default pool of blocks; see [`VARIANTS`]), in interleaved
//! rounds, and fires bursts of 200 concurrent failed logins (each one argon2id verification of 19 MiB) at each,
//! sampling the server's resident set every 20 ms: the peak during each burst, and what is left 5 s after it ends.
//! Goals: peak at most 150 MB, at most 40 MB 5 s after, and the default's burst time at most 1.05x of glibc's.
//! Results go to BENCHMARKS.md (`--out`), between the `auth-memory` markers.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jtc_test_support::{free_port, rss_bytes, splice_report, stop, wait_healthy, TestDb};

const BURST: usize = 200;
const BURSTS: usize = 3;
const ROUNDS: usize = 2;
const MB: f64 = 1_000_000.0;

/// A way to run the server: its name in the table and the settings that make it.
struct Variant {
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
}

/// glibc keeping the blocks (its threshold above them: where an unpinned glibc ends up after the first free),
/// fresh memory for every login (the threshold pinned, no pool: the earlier fix), and the default (the pool).
const VARIANTS: [Variant; 3] = [
    Variant {
        name: "glibc keeps the blocks (`MALLOC_MMAP_THRESHOLD_=33554432`, `PASSWORD_MEMORY_KEEP_MS=0`)",
        env: &[("MALLOC_MMAP_THRESHOLD_", "33554432"), ("PASSWORD_MEMORY_KEEP_MS", "0")],
    },
    Variant { name: "fresh memory per login (`PASSWORD_MEMORY_KEEP_MS=0`)", env: &[("PASSWORD_MEMORY_KEEP_MS", "0")] },
    Variant { name: "default: argon2 memory kept 1 s (`password_memory`)", env: &[] },
];

#[tokio::main]
async fn main() {
    let out = std::env::args().skip_while(|a| a != "--out").nth(1).map(PathBuf::from);
    let bin = std::env::var("AUTH_API_BIN").expect("AUTH_API_BIN: the release auth-api (scripts/bench sets it)");
    let db = TestDb::new().await;
    let port = free_port();
    let env = [
        ("DB_URI", db.uri.clone()),
        ("DB_NAME", db.name.clone()),
        ("JWT_SECRET_KEY", "bench-only-secret-0123456789abcdef0123456789".to_string()),
        ("PORT", port.to_string()),
        ("RATE_LIMIT_LOGIN", "1000000/minute".into()),
        ("RATE_LIMIT_LOGIN_FAILURES_PER_USER", "1000000/minute".into()),
        ("HTTP_MAX_CONNECTIONS", "4096".into()),
        ("RUST_LOG", "warn".into()),
    ];
    let mut add = Command::new(&bin)
        .args(["add-user", "alice"])
        .envs(env.iter().cloned())
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("add-user");
    add.stdin.take().expect("stdin").write_all(b"the right pass phrase\n").expect("password");
    assert!(add.wait().expect("add-user").success(), "add-user failed");

    let http = reqwest::Client::builder().pool_max_idle_per_host(BURST).build().expect("client");
    // Interleaved: each round runs every variant once, a server of its own, so drift on the machine falls on all.
    let mut results: Vec<Vec<Burst>> = VARIANTS.iter().map(|_| Vec::new()).collect();
    let mut idle = vec![0u64; VARIANTS.len()];
    for _round in 0..ROUNDS {
        for (i, variant) in VARIANTS.iter().enumerate() {
            let mut server = Command::new(&bin)
                .arg("serve")
                .envs(env.iter().cloned())
                .envs(variant.env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .stderr(Stdio::null())
                .spawn()
                .expect("serve");
            let pid = server.id();
            wait_healthy(port).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            idle[i] = idle[i].max(rss_bytes(pid).unwrap_or(0));
            for _ in 0..BURSTS {
                results[i].push(burst(&http, port, pid).await);
            }
            stop(&mut server, Duration::from_secs(10));
        }
    }

    let mut report = format!(
        "Command: `scripts/bench auth-memory`; measured {}. Each variant is the release binary with its settings; \
         {ROUNDS} interleaved rounds of {BURSTS} bursts of {BURST} concurrent failed logins each (every login one \
         argon2id verification of 19 MiB, at most two per core at once).\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    report.push_str(
        "| variant | idle RSS | burst wall, median | burst walls | peak RSS, worst | RSS 5 s after, worst |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut medians = Vec::new();
    for ((variant, bursts), idle) in VARIANTS.iter().zip(&results).zip(&idle) {
        let mut walls: Vec<Duration> = bursts.iter().map(|b| b.wall).collect();
        let listed: Vec<String> = walls.iter().map(|w| format!("{:.2}", w.as_secs_f64())).collect();
        walls.sort();
        let median = walls[walls.len() / 2];
        medians.push(median.as_secs_f64());
        report.push_str(&format!(
            "| {} | {:.1} MB | {:.2} s | {} s | {:.1} MB | {:.1} MB |\n",
            variant.name,
            *idle as f64 / MB,
            median.as_secs_f64(),
            listed.join(", "),
            bursts.iter().map(|b| b.peak).max().unwrap_or(0) as f64 / MB,
            bursts.iter().map(|b| b.after).max().unwrap_or(0) as f64 / MB,
        ));
    }
    report.push_str(&format!(
        "\nBurst time of the default (pool) against glibc keeping the blocks: {:.2}x (goal at most 1.05x); against \
         fresh memory per login: {:.2}x. Memory goal: peak at most 150 MB, at most 40 MB 5 s after each burst.\n",
        medians[2] / medians[0],
        medians[2] / medians[1]
    ));
    print!("{report}");
    if let Some(out) = out {
        splice_report(&out, "auth-memory", &report);
    }
}

/// One burst: its wall time, the peak resident set during it, and the resident set 5 s after it ended.
struct Burst {
    wall: Duration,
    peak: u64,
    after: u64,
}

async fn burst(http: &reqwest::Client, port: u16, pid: u32) -> Burst {
    let url = format!("http://127.0.0.1:{port}/login");
    reset_high_water(pid);
    let started = Instant::now();
    let logins = futures_util::future::join_all((0..BURST).map(|_| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let body = serde_json::json!({ "username": "alice", "password": "a wrong guess" });
            http.post(url).json(&body).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        }
    }));
    let sampler = async {
        let mut peak = 0;
        loop {
            peak = peak.max(rss_bytes(pid).unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(20)).await;
            if started.elapsed() > Duration::from_secs(600) {
                return peak;
            }
        }
    };
    let (statuses, peak) = tokio::select! {
        statuses = logins => (statuses, 0),
        peak = sampler => (Vec::new(), peak),
    };
    // The sampler stopped with the burst; take the peak again from the kernel's own high-water mark.
    let peak = peak.max(high_water(pid).unwrap_or(0));
    let wall = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 401), "every login is a failed one: {statuses:?}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    Burst { wall, peak, after: rss_bytes(pid).unwrap_or(0) }
}

/// The peak resident set since the last reset (`VmHWM`), in bytes.
fn high_water(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Resets `VmHWM` to the current RSS (writing 5 to `clear_refs`), so each burst has a peak of its own.
fn reset_high_water(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}
