//! What the cleaner's benchmarks share: running the binary with its peak RSS and CPU read from /proc, the database
//! server's CPU, and a blacklist seeded half expired (and the expired half put back after a sweep).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use jwt_token_cleaner::sample;
use mongodb::bson::{doc, Document};
use mongodb::Collection;
use serde_json::Value;

/// CPU time (user + system) of a process, from /proc.
pub fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Some(Duration::from_millis(ticks * 1000 / hz.max(1)))
}

pub struct Child {
    pub wall: Duration,
    pub report: Value,
    pub peak_rss_kb: u64,
    pub cpu: Duration,
}

/// The peak RSS (VmHWM, kB) of a running process.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the binary to completion. Its peak RSS and CPU time are read from /proc while it runs (VmHWM only grows,
/// so the last reading is the peak; the CPU time misses at most the last 5 ms). wait4's ru_maxrss is no use here:
/// it counts the pages of this process that the child shared before its exec.
pub fn run_binary(bin: &Path, args: &[&str], env: &[(&str, String)]) -> Child {
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

/// Seeds `n` entries into `collection`, half expired (1 h to 7 days ago), half valid (1 h to 7 days ahead),
/// interleaved; returns the expired half, as inserted.
pub async fn seed_half_expired(collection: &Collection<Document>, n: u64) -> Vec<Document> {
    let field = jtc_shared::names::FieldPath::parse("EXPIRES_FIELD", "expires_at").expect("field");
    let schema = jtc_shared::blacklist::EntrySchema::new(field);
    let now = Utc::now().timestamp_millis();
    const HOUR: i64 = 3_600_000;
    let (mut expired_docs, mut chunk) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 0..n {
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
    expired_docs
}

/// Puts `expired_docs` back after a measurement deleted them (what a partial run left is cleared first).
pub async fn restore(collection: &Collection<Document>, expired_docs: &[Document]) {
    let started = Instant::now();
    let expired = doc! { "expires_at": { "$lt": mongodb::bson::DateTime::now() } };
    if collection.count_documents(expired.clone()).await.unwrap() > 0 {
        collection.delete_many(expired).await.unwrap();
    }
    for chunk in expired_docs.chunks(10_000) {
        collection.insert_many(chunk.to_vec()).await.unwrap();
    }
    eprintln!("bench: restored {} entries in {:.1?}", expired_docs.len(), started.elapsed());
}
