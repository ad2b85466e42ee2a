//! `scripts/bench sharding`: a broadcast window against a targeted one, simulated on one server (see BENCHMARKS.md,
//! "Sharded windows, simulated", for what it assumes).
//!
//! For `S` in 1, 2, 4 and 8 "shards" (collections), `--windows` (default 10) windows of `--window` (default 5,000)
//! expired entries each: the targeted window is one range delete of the window's entries from one collection; the
//! broadcast window is one range delete per collection, each holding `window / S` of the window's entries (spread
//! as a hashed key spreads them). Reported: the sum of the per-shard delete times (the cluster's work), the
//! slowest one (about the broadcast's wall time when the shards are separate machines), against the targeted
//! window.
//!
//!   scripts/bench sharding [--window 5000] [--windows 10] [--out BENCHMARKS.md]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mongodb::bson::{doc, DateTime, Document};
use mongodb::{Client, Collection};

const DB: &str = "jtc_bench_sharding";
const SHARDS: [usize; 4] = [1, 2, 4, 8];

/// `scripts/bench sharding [--window N] [--windows N]`.
#[derive(clap::Parser)]
struct Args {
    /// Entries in a window.
    #[arg(long, default_value_t = 5000)]
    window: i64,
    /// Windows measured.
    #[arg(long, default_value_t = 10)]
    windows: i64,
    /// Where the table is written (BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn args() -> Args {
    jtc_test_support::bench_args()
}

/// `shards` collections holding `windows` windows of `window` entries between them, one entry a millisecond of
/// expiry, entry `i` on shard `i % shards` (a hash spreads them evenly); each with its expiry index.
async fn seed(client: &Client, shards: usize, window: i64, windows: i64) -> Vec<Collection<Document>> {
    let db = client.database(DB);
    let mut collections = Vec::new();
    for shard in 0..shards {
        let collection = db.collection::<Document>(&format!("shard_{shard}"));
        collection.drop().await.expect("drop");
        let docs: Vec<Document> = (0..window * windows)
            .filter(|i| (*i as usize) % shards == shard)
            .map(|i| doc! { "jti": format!("j-{i}"), "expires_at": DateTime::from_millis(1_000_000 + i) })
            .collect();
        for chunk in docs.chunks(10_000) {
            collection.insert_many(chunk.to_vec()).await.expect("insert");
        }
        let index = mongodb::IndexModel::builder().keys(doc! { "expires_at": 1 }).build();
        collection.create_index(index).await.expect("index");
        collections.push(collection);
    }
    collections
}

/// Deletes window `w` from `collection`: its time and how many went.
async fn delete_window(collection: &Collection<Document>, window: i64, w: i64) -> (Duration, u64) {
    let (lo, hi) = (1_000_000 + w * window, 1_000_000 + (w + 1) * window);
    let filter = doc! { "expires_at": { "$gte": DateTime::from_millis(lo), "$lt": DateTime::from_millis(hi) } };
    let started = Instant::now();
    let deleted = collection.delete_many(filter).await.expect("delete").deleted_count;
    (started.elapsed(), deleted)
}

#[tokio::main]
async fn main() {
    let args = args();
    let uri = std::env::var("MONGODB_TEST_URI").expect("MONGODB_TEST_URI (scripts/bench sharding sets it)");
    let client = Client::with_uri_str(&uri).await.expect("client");
    let server = std::env::var("JTC_BENCH_SERVER").unwrap_or_else(|_| "MONGODB_TEST_URI".into());
    let mut text = format!(
        "On {server}: {} windows of {} entries per row, medians per window.\n\n\
         | shards | delete per shard | sum over the shards (the cluster's work) | slowest shard (about the wall time) | \
         sum / targeted |\n|---|---|---|---|---|\n",
        args.windows, args.window
    );
    let mut targeted = None;
    for shards in SHARDS {
        eprintln!("bench sharding: {shards} shard(s)");
        let collections = seed(&client, shards, args.window, args.windows).await;
        let (mut sums, mut slowest, mut each) = (Vec::new(), Vec::new(), Vec::new());
        for w in 0..args.windows {
            let mut times = Vec::new();
            let mut total = 0;
            for collection in &collections {
                let (took, deleted) = delete_window(collection, args.window, w).await;
                times.push(took);
                total += deleted;
            }
            assert_eq!(total, args.window as u64, "the window went whole");
            sums.push(times.iter().sum::<Duration>());
            slowest.push(times.iter().copied().max().unwrap_or_default());
            each.extend(times);
        }
        let median = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (sum, slow, one) = (median(sums), median(slowest), median(each));
        let base = *targeted.get_or_insert(sum);
        text += &format!(
            "| {shards} | {:.1} ms ({} entries) | {:.1} ms | {:.1} ms | {:.2}x |\n",
            one.as_secs_f64() * 1000.0,
            args.window / shards as i64,
            sum.as_secs_f64() * 1000.0,
            slow.as_secs_f64() * 1000.0,
            sum.as_secs_f64() / base.as_secs_f64()
        );
    }
    text += "\nThe first row is the targeted window (one shard holds it all).\n";
    println!("{text}");
    if let Some(out) = args.out {
        jtc_test_support::splice_report(&out, "sharding", &text);
        eprintln!("bench sharding: wrote {}", out.display());
    }
    let _ = client.database(DB).drop().await;
}
