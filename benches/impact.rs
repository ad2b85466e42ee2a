//! What a sweep does to the revocation lookups the same database answers meanwhile (`scripts/bench impact`).
//!
//! For each size (default 200,000 and 1,000,000 entries, half expired, indexes on `expires_at` and `jti`), on the
//! same data (the expired half put back after every run), a second client looks up a random `jti` with
//! `find_one` every 2 ms while one of these runs:
//! idle; the bare `deleteMany` of everything expired, estimate mode (`CLEANUP_EXACT_BYTES=false`) and the gentle
//! mode (estimate mode with `CLEANUP_COLLECTION_STATS=false`), interleaved
//! `--rounds` times (default 3, each round starting with a different kind) and reported as medians, with each
//! round's own ratios; the default sweep; the statistics call alone (`$collStats`
//! on what the sweep left); the default sweep without it; the dry run (one read of every expired entry); the paced
//! sweep (`CLEANUP_PAUSE_RATIO=1`) and the time-bounded one (`CLEANUP_MAX_OPERATION_MS=50`), each with and without
//! the statistics call; and a TTL index (`expireAfterSeconds: 0`) left to clear the same backlog, timed until no
//! expired entry is left. From 1,000,000 entries on (or with `--short`), only idle, the bare delete, estimate
//! mode, the default sweep (with the statistics call alone) and the TTL index; from 1,000,000 on, one round.
//! Each sweep is the release binary (`JTC_BIN`), a process of its own, as FC runs it. The table: lookup p50, p99
//! and worst during each run, its wall time, and the ratios the issue asks for.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use jwt_token_cleaner::sample;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, IndexModel};

const DB: &str = "jtc_impact";
/// The gentle mode's row: estimate mode without the statistics call (#43).
const GENTLE: &str = "gentle mode (CLEANUP_EXACT_BYTES=false, CLEANUP_COLLECTION_STATS=false)";
const HOUR: i64 = 3_600_000;

/// `scripts/bench impact [--entries N[,N...]] [--rounds N] [--short]`.
#[derive(clap::Parser)]
struct Args {
    /// The sizes measured, in entries.
    #[arg(long = "entries", value_delimiter = ',', default_values_t = [200_000u64, 1_000_000])]
    sizes: Vec<u64>,
    /// Interleaved rounds of the bare delete, estimate mode and the gentle mode.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The short list at every size.
    #[arg(long)]
    short: bool,
    /// Where the table is written (BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// From this size on, only the runs the issue asks for at 1,000,000 entries (idle, the bare delete, the default
/// sweep, estimate mode and the TTL index), one round each: the full list takes about an hour there.
const SHORT_LIST_FROM: u64 = 1_000_000;

fn args() -> Args {
    jtc_test_support::bench_args()
}

/// One run: what the lookups saw, and how long it took.
#[derive(Clone)]
struct Row {
    name: &'static str,
    p50: Duration,
    p99: Duration,
    worst: Duration,
    lookups: usize,
    wall: Duration,
    note: String,
}

struct Data {
    uri: String,
    collection: Collection<Document>,
    expired: Vec<Document>,
    jtis: Vec<String>,
}

impl Data {
    async fn seed(uri: &str, n: u64) -> Self {
        let field = jtc_shared::names::FieldPath::parse("EXPIRES_FIELD", "expires_at").expect("field");
        let schema = jtc_shared::blacklist::EntrySchema::new(field);
        let client = Client::with_uri_str(uri).await.expect("MONGODB_TEST_URI");
        let db = client.database(DB);
        db.drop().await.expect("drop");
        let collection = db.collection::<Document>("jwt_blacklist");
        for key in ["expires_at", "jti"] {
            collection.create_index(IndexModel::builder().keys(doc! { key: 1 }).build()).await.expect("index");
        }
        let now = Utc::now().timestamp_millis();
        let (mut expired, mut jtis, mut chunk) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            // Half expired (1 h to 7 days ago), half valid (1 h to 7 days ahead), interleaved.
            let spread = HOUR + (i.wrapping_mul(2_654_435_761) % (7 * 24 * HOUR as u64 - HOUR as u64)) as i64;
            let expires = if i % 2 == 0 { now - spread } else { now + spread };
            let entry = sample::entry(&schema, i, expires, now);
            if i % 2 == 0 {
                expired.push(entry.clone());
            } else if i % 64 == 1 {
                jtis.push(entry.get_str("jti").expect("jti").to_string());
            }
            chunk.push(entry);
            if chunk.len() == 10_000 {
                collection.insert_many(std::mem::take(&mut chunk)).await.expect("insert");
            }
        }
        if !chunk.is_empty() {
            collection.insert_many(chunk).await.expect("insert");
        }
        Self { uri: uri.to_string(), collection, expired, jtis }
    }

    /// Puts the expired half back (whatever a run left of it is cleared first).
    async fn restore(&self) {
        self.collection.delete_many(doc! { "expires_at": { "$lt": DateTime::now() } }).await.expect("clear");
        for chunk in self.expired.chunks(10_000) {
            self.collection.insert_many(chunk.to_vec()).await.expect("restore");
        }
    }

    async fn expired_left(&self) -> u64 {
        self.collection.count_documents(doc! { "expires_at": { "$lt": DateTime::now() } }).await.expect("count")
    }
}

/// Looks up a random known `jti` every 2 ms until `stop`; returns every latency.
async fn lookups(uri: String, jtis: Arc<Vec<String>>, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let client = Client::with_uri_str(&uri).await.expect("lookup client");
    let collection = client.database(DB).collection::<Document>("jwt_blacklist");
    let mut latencies = Vec::new();
    let mut i: usize = 7;
    while !stop.load(Ordering::Relaxed) {
        i = i.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let jti = &jtis[(i >> 33) % jtis.len()];
        let started = Instant::now();
        let found = collection.find_one(doc! { "jti": jti }).projection(doc! { "_id": 1 }).await;
        latencies.push(started.elapsed());
        assert!(matches!(found, Ok(Some(_))), "a valid entry is always found");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    latencies
}

/// Runs `work` while the lookups run; returns the row.
async fn measured<F, Fut>(data: &Data, name: &'static str, work: F) -> Row
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let client = tokio::spawn(lookups(data.uri.clone(), Arc::new(data.jtis.clone()), Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let note = work().await;
    let wall = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = client.await.expect("lookups");
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    Row {
        name,
        p50: at(0.50),
        p99: at(0.99),
        worst: *latencies.last().expect("lookups"),
        lookups: latencies.len(),
        wall,
        note,
    }
}

/// The release binary's `sweep` with `extra` settings; returns a note on what it reported.
fn sweep(data: &Data, extra: &[(&str, &str)], dry_run: bool) -> String {
    let bin = std::env::var("JTC_BIN").expect("JTC_BIN (scripts/bench sets it)");
    let mut command = Command::new(bin);
    command
        .arg("sweep")
        .env_clear()
        .env("DB_URI", &data.uri)
        .env("DB_NAME", DB)
        .env("CLEANUP_TIME_BUDGET_SECONDS", "900")
        .env("RUST_LOG", "warn")
        .envs(extra.iter().copied())
        .stderr(Stdio::inherit());
    if dry_run {
        command.arg("--dry-run");
    }
    let out = command.output().expect("run the sweep");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a report");
    let data_json = &report["data"];
    let (done, expected) = if dry_run {
        (data_json["would_clean_count"].as_u64(), data.expired.len() as u64)
    } else {
        (data_json["cleaned_count"].as_u64(), data.expired.len() as u64)
    };
    assert_eq!(done, Some(expected), "{report}");
    format!(
        "{} batches; paused {} ms; bytes {}",
        data_json["batches"],
        data_json["paused_ms"],
        if data_json["memory_saved_exact"] == true { "exact" } else { "estimated" }
    )
}

/// A sweep to measure: its name, its settings, and whether it is a dry run.
type SweepRun = (&'static str, &'static [(&'static str, &'static str)], bool);

/// The bare `deleteMany` of everything expired: the physical limit.
async fn bare_delete(data: &Data) -> String {
    let cutoff = DateTime::from_millis(Utc::now().timestamp_millis() - 60_000);
    let deleted = data.collection.delete_many(doc! { "expires_at": { "$lt": cutoff } }).await.expect("delete");
    format!("{} deleted", deleted.deleted_count)
}

/// The median of each figure over `runs` (the lookup figures and the wall time each on its own), with every
/// run's wall time in the note.
fn median(mut runs: Vec<Row>) -> Row {
    fn mid<T: Ord + Copy>(mut values: Vec<T>) -> T {
        values.sort();
        values[values.len() / 2]
    }
    let walls: Vec<String> = runs.iter().map(|r| format!("{:.1} s", r.wall.as_secs_f64())).collect();
    let mut row = runs[0].clone();
    row.p50 = mid(runs.iter().map(|r| r.p50).collect());
    row.p99 = mid(runs.iter().map(|r| r.p99).collect());
    row.worst = mid(runs.iter().map(|r| r.worst).collect());
    row.lookups = mid(runs.iter().map(|r| r.lookups).collect());
    row.wall = mid(runs.iter().map(|r| r.wall).collect());
    if runs.len() > 1 {
        let worst: Vec<String> = runs.iter().map(|r| ms(r.worst)).collect();
        row.note = format!(
            "median of {}: walls {}; worst lookups {}; {}",
            runs.len(),
            walls.join(", "),
            worst.join(", "),
            runs.remove(0).note
        );
    }
    row
}

/// The rows at `n` entries, and a sentence on each round's own ratios.
async fn one_size(uri: &str, n: u64, rounds: usize, short: bool) -> (Vec<Row>, String) {
    let seeding = Instant::now();
    let data = Data::seed(uri, n).await;
    eprintln!("impact: seeded {n} entries in {:.1?}", seeding.elapsed());
    let mut rows = Vec::new();
    rows.push(
        measured(&data, "idle", || async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            String::new()
        })
        .await,
    );
    // The bare delete and estimate mode, interleaved, `rounds` times each: single runs on this server move by a
    // third from one to the next, so each row is the median of its rounds.
    let (mut bare, mut estimate, mut gentle) = (Vec::new(), Vec::new(), Vec::new());
    let short = short || n >= SHORT_LIST_FROM;
    let rounds = if n >= SHORT_LIST_FROM { 1 } else { rounds };
    // Each round starts with a different kind, so that none always runs first after the seeding, the restore or
    // a checkpoint of the storage engine's (the order was fixed until #43's second measurement).
    for round in 0..rounds {
        for kind in (0..3).map(|k| (k + round) % 3) {
            match kind {
                0 => bare.push(measured(&data, "bare deleteMany", || bare_delete(&data)).await),
                1 => estimate.push(
                    measured(&data, "estimate mode (CLEANUP_EXACT_BYTES=false)", || async {
                        tokio::task::block_in_place(|| sweep(&data, &[("CLEANUP_EXACT_BYTES", "false")], false))
                    })
                    .await,
                ),
                _ => gentle.push(
                    measured(&data, GENTLE, || async {
                        let extra = [("CLEANUP_EXACT_BYTES", "false"), ("CLEANUP_COLLECTION_STATS", "false")];
                        tokio::task::block_in_place(|| sweep(&data, &extra, false))
                    })
                    .await,
                ),
            }
            data.restore().await;
        }
    }
    let per_round = |runs: &[Row]| -> Vec<f64> {
        runs.iter().zip(&bare).map(|(r, b)| r.wall.as_secs_f64() / b.wall.as_secs_f64()).collect()
    };
    let rounds_note = format!(
        "Each round's own ratio to the bare delete: estimate mode {}; gentle mode {}.",
        ratios_of(&per_round(&estimate)),
        ratios_of(&per_round(&gentle))
    );
    rows.push(median(bare));
    rows.push(median(estimate));
    rows.push(median(gentle));

    rows.push(
        measured(&data, "default sweep", || async { tokio::task::block_in_place(|| sweep(&data, &[], false)) }).await,
    );
    // What the default sweep's one statistics call costs by itself, on what the sweep leaves.
    rows.push(
        measured(&data, "the statistics call alone ($collStats, after the sweep)", || async {
            let stats = data.collection.aggregate([doc! { "$collStats": { "count": {} } }]).await.expect("$collStats");
            let stats: Vec<Document> = futures_util::TryStreamExt::try_collect(stats).await.expect("$collStats");
            format!("count {}", stats.first().and_then(|s| s.get("count")).map(ToString::to_string).unwrap_or_default())
        })
        .await,
    );
    data.restore().await;
    // The statistics call holds every lookup on the test server for as long as it reads the collection; the
    // gentle runs are measured with it and without it, so that what each mechanism does is seen apart from it.
    let sweeps: [SweepRun; 6] = [
        ("default sweep, no statistics call", &[("CLEANUP_COLLECTION_STATS", "false")], false),
        ("dry run (one read of every expired entry)", &[], true),
        ("paced sweep (CLEANUP_PAUSE_RATIO=1)", &[("CLEANUP_PAUSE_RATIO", "1")], false),
        (
            "paced sweep, no statistics call",
            &[("CLEANUP_PAUSE_RATIO", "1"), ("CLEANUP_COLLECTION_STATS", "false")],
            false,
        ),
        ("time-bounded sweep (CLEANUP_MAX_OPERATION_MS=50)", &[("CLEANUP_MAX_OPERATION_MS", "50")], false),
        (
            "time-bounded sweep, no statistics call",
            &[("CLEANUP_MAX_OPERATION_MS", "50"), ("CLEANUP_COLLECTION_STATS", "false")],
            false,
        ),
    ];
    for (name, extra, dry_run) in sweeps.into_iter().filter(|_| !short) {
        let row =
            measured(&data, name, || async { tokio::task::block_in_place(|| sweep(&data, extra, dry_run)) }).await;
        rows.push(row);
        if !dry_run {
            data.restore().await;
        }
    }
    // The TTL index: the same key as the sweep's index, so that one is dropped for the run and made again after.
    data.collection.drop_index("expires_at_1").await.expect("drop the index");
    let ttl = IndexOptions::builder().expire_after(Some(Duration::ZERO)).build();
    rows.push(
        measured(&data, "TTL index (expireAfterSeconds 0), until empty", || async {
            let model = IndexModel::builder().keys(doc! { "expires_at": 1 }).options(ttl).build();
            data.collection.create_index(model).await.expect("TTL index");
            let started = Instant::now();
            while data.expired_left().await > 0 {
                if started.elapsed() > Duration::from_secs(900) {
                    return format!("{} still expired after 900 s", data.expired_left().await);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            "wall = until no expired entry was left".to_string()
        })
        .await,
    );
    let _ = data.collection.drop().await;
    (rows, rounds_note)
}

/// Ratios as "1.02x, 1.29x, 1.21x (median 1.21x)".
fn ratios_of(ratios: &[f64]) -> String {
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
    format!("{} (median {median:.2}x)", each.join(", "))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let uri = std::env::var("MONGODB_TEST_URI").expect("MONGODB_TEST_URI (scripts/bench sets it)");
    let mut report = format!(
        "Command: `scripts/bench impact --entries {} --rounds {}{}`; measured {}.\n",
        args.sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        args.rounds,
        if args.short { " --short" } else { "" },
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    for &n in &args.sizes {
        let (rows, rounds_note) = one_size(&uri, n, args.rounds.max(1), args.short).await;
        let wall = |name: &str| rows.iter().find(|r| r.name.starts_with(name)).map(|r| r.wall.as_secs_f64());
        let _ = write!(
            report,
            "\n{n} entries, {} expired:\n\n| during | lookup p50 | lookup p99 | worst lookup | lookups | wall | notes |\n\
             |---|---|---|---|---|---|---|\n",
            n / 2
        );
        for r in &rows {
            let wall = if r.name == "idle" { "-".to_string() } else { format!("{:.1} s", r.wall.as_secs_f64()) };
            let _ = writeln!(
                report,
                "| {} | {} | {} | {} | {} | {wall} | {} |",
                r.name,
                ms(r.p50),
                ms(r.p99),
                ms(r.worst),
                r.lookups,
                r.note
            );
        }
        let p99 = |name: &str| rows.iter().find(|r| r.name.starts_with(name)).map(|r| r.p99.as_secs_f64());
        let mut ratios = Vec::new();
        if let (Some(bare), Some(gentle)) = (p99("bare"), p99("gentle")) {
            ratios.push(format!("Gentle mode's lookup p99 / bare deleteMany's: {:.2}x (goal 1.25x).", gentle / bare));
        }
        if let (Some(bare), Some(estimate)) = (wall("bare"), wall("estimate")) {
            ratios.push(format!("Estimate mode / bare deleteMany (medians): {:.2}x (goal 1.10x).", estimate / bare));
        }
        if let (Some(bare), Some(dry), Some(exact)) = (wall("bare"), wall("dry run"), wall("default sweep")) {
            ratios
                .push(format!("Exact sweep / (bare deleteMany + dry run): {:.2}x (goal 1.10x).", exact / (bare + dry)));
        }
        if let (Some(bare), Some(exact)) = (wall("bare"), wall("default sweep")) {
            ratios.push(format!("Exact sweep / bare deleteMany: {:.2}x.", exact / bare));
        }
        if args.rounds > 1 && n < SHORT_LIST_FROM {
            ratios.push(rounds_note);
        }
        let _ = writeln!(report, "\n{}", ratios.join(" "));
        // Written after each size, so a long run's first table is kept even if the next one is stopped.
        if let Some(out) = &args.out {
            jtc_test_support::splice_report(out, "impact", &report);
        }
    }
    println!("{report}");
}
