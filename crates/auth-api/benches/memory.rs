//! auth-api's memory through bursts of failed logins (`scripts/bench auth-memory`).
//!
//! Starts the release binary (`AUTH_API_BIN`) against the test database, then fires bursts of 200 concurrent
//! failed logins (each one argon2id verification of 19 MiB) and samples the server's resident set every 20 ms: the
//! peak during each burst, and what is left 5 s after it ends. Goal: peak at most 150 MB, at most 40 MB 5 s after.
//! Results go to BENCHMARKS.md (`--out`), between the `auth-memory` markers.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jtc_test_support::{free_port, rss_bytes, splice_report, stop, wait_healthy, TestDb};

const BURST: usize = 200;
const BURSTS: usize = 6;
const MB: f64 = 1_000_000.0;

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

    let mut server =
        Command::new(&bin).arg("serve").envs(env.iter().cloned()).stderr(Stdio::null()).spawn().expect("serve");
    let pid = server.id();
    wait_healthy(port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_bytes(pid).unwrap_or(0);

    let http = reqwest::Client::builder().pool_max_idle_per_host(BURST).build().expect("client");
    let url = format!("http://127.0.0.1:{port}/login");
    let mut rows = Vec::new();
    for burst in 1..=BURSTS {
        reset_high_water(pid);
        let before = rss_bytes(pid).unwrap_or(0);
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
        let mut after = Vec::new();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            after.push(rss_bytes(pid).unwrap_or(0));
        }
        rows.push((burst, before, peak, after[after.len() - 1], wall));
    }
    stop(&mut server, Duration::from_secs(10));
    db.drop_db().await;

    let mut report = format!(
        "Command: `scripts/bench auth-memory`: {BURSTS} bursts of {BURST} concurrent failed logins against the \
         release binary; idle RSS before the first: {:.1} MB.\n\n",
        idle as f64 / MB
    );
    report.push_str("| burst | RSS before | peak RSS | RSS 5 s after | burst wall time |\n|---|---|---|---|---|\n");
    for (burst, before, peak, after, wall) in &rows {
        report.push_str(&format!(
            "| {burst} | {:.1} MB | {:.1} MB | {:.1} MB | {:.1} s |\n",
            *before as f64 / MB,
            *peak as f64 / MB,
            *after as f64 / MB,
            wall.as_secs_f64()
        ));
    }
    report.push_str("\nGoal: peak at most 150 MB, at most 40 MB 5 s after each burst.\n");
    print!("{report}");
    if let Some(out) = out {
        splice_report(&out, "auth-memory", &report);
    }
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
