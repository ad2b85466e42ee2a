//! `scripts/bench lease`: what one run at a time and the lag bound cost (issue #32).
//!
//! In-process (the runner as `/invoke` uses it), against `MONGODB_TEST_URI`:
//! - **round trips**: runs through the test Data API (the documented contract, served in-process), which counts
//!   every call it answers: a run with the lease against the same run without it (`CLEANUP_LEASE=false`), and a run
//!   that finds the lease held; each on a collection of valid entries only (nothing to delete), after a warm-up run
//!   (the contract probe is made once per process);
//! - **time of the lease**: `--runs` (default 20) such runs through the direct connection with and without the
//!   lease, interleaved, medians;
//! - **the lag bound with no lag**: a sweep of `--entries` (default 50,000, half expired) with
//!   `CLEANUP_MAX_REPLICATION_LAG_SECONDS=10` and without it, reseeded before each, interleaved `--rounds` times
//!   (default 3), medians. The test server is a one-member replica set: the bound reads `replSetGetStatus` at most
//!   once a second and never pauses.
//!
//!   scripts/bench lease [--entries 50000] [--rounds 3] [--runs 20] [--out BENCHMARKS.md]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use jtc_test_support::data_api::DataApi;
use jwt_token_cleaner::config::Settings;
use jwt_token_cleaner::history::Trigger;
use jwt_token_cleaner::runner::Runner;
use jwt_token_cleaner::store::backends::Backends;
use jwt_token_cleaner::sweep::{Silent, SweepOverrides, SweepReport};
use mongodb::bson::{doc, DateTime, Document};
use mongodb::Client;

const DB: &str = "jtc_bench_lease";

/// `scripts/bench lease [--entries N] [--rounds N] [--runs N]`.
#[derive(clap::Parser)]
struct Args {
    /// Entries seeded for the lag bound's sweep.
    #[arg(long, default_value_t = 50_000)]
    entries: i64,
    /// Rounds of the lag bound's comparison.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Runs counted for the lease's round trips.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Where the table is written (BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn args() -> Args {
    jtc_test_support::bench_args()
}

fn runner(env: &[(&str, String)]) -> Runner {
    let settings =
        Settings::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).expect("settings");
    Runner::new(&settings, Backends::from_settings(&settings).expect("backends"))
}

async fn run(runner: &Runner, request_id: &str) -> (SweepReport, Duration) {
    let options = runner.options(SweepOverrides::default());
    let all = runner.targets(None).expect("targets");
    let started = Instant::now();
    let report = runner.run(&options, &all, Trigger::Cli, request_id, Utc::now(), &Silent).await;
    (report.unwrap_or_else(|f| panic!("the run failed: {}", f.error)), started.elapsed())
}

/// `entries` entries, half expired (over the last 30 days), and the expiry index.
async fn seed(client: &Client, entries: i64) {
    let collection = client.database(DB).collection::<Document>("jwt_blacklist");
    collection.drop().await.expect("drop");
    let now = Utc::now().timestamp_millis();
    let span = 30 * 86_400_000 / (entries / 2).max(1);
    let docs: Vec<Document> = (0..entries)
        .map(|i| {
            let expires = if i % 2 == 0 { now - 60_000 - (i / 2) * span } else { now + 3_600_000 + i };
            doc! { "jti": format!("j-{i}"), "expires_at": DateTime::from_millis(expires) }
        })
        .collect();
    for chunk in docs.chunks(10_000) {
        collection.insert_many(chunk.to_vec()).await.expect("insert");
    }
    let index = mongodb::IndexModel::builder().keys(doc! { "expires_at": 1 }).build();
    collection.create_index(index).await.expect("index");
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let args = args();
    let uri = std::env::var("MONGODB_TEST_URI").expect("MONGODB_TEST_URI (scripts/bench lease sets it)");
    let client = Client::with_uri_str(&uri).await.expect("client");
    let base = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut env = vec![("DB_URI", uri.clone()), ("DB_NAME", DB.to_string()), ("CLEANUP_GRACE_SECONDS", "0".into())];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        env
    };

    // Round trips, through the Data API, on valid entries only.
    eprintln!("bench lease: round trips");
    seed(&client, 0).await;
    let valid: Vec<Document> = (0..10)
        .map(|i| doc! { "jti": format!("v-{i}"), "expires_at": DateTime::from_millis(Utc::now().timestamp_millis() + 3_600_000) })
        .collect();
    client.database(DB).collection::<Document>("jwt_blacklist").insert_many(valid).await.expect("valid");
    let api = DataApi::spawn(&uri, None).await;
    let through_api = |lease: &str| {
        let mut env = base(&[("MONGODB_API_URL", api.url.as_str()), ("CLEANUP_LEASE", lease)]);
        env.retain(|(k, _)| *k != "DB_URI");
        runner(&env)
    };
    let (with, without) = (through_api("true"), through_api("false"));
    run(&with, "warm-up-1").await;
    run(&without, "warm-up-2").await;
    let before = api.calls();
    run(&without, "no-lease").await;
    let no_lease = api.calls() - before;
    let before = api.calls();
    run(&with, "lease").await;
    let lease = api.calls() - before;
    let until = DateTime::from_millis(Utc::now().timestamp_millis() + 60_000);
    let runs = client.database(DB).collection::<Document>("jwt_cleaner_runs");
    runs.insert_one(doc! { "_id": "lease", "holder": "bench-holder", "until": until }).await.expect("a held lease");
    let before = api.calls();
    let (skipped, _) = run(&with, "held").await;
    let held = api.calls() - before;
    assert!(skipped.skipped.is_some(), "the run found the lease held");
    runs.delete_one(doc! { "_id": "lease" }).await.expect("release");

    // Time of the lease, through the direct connection.
    eprintln!("bench lease: {} runs each way", args.runs);
    let (direct_with, direct_without) = (runner(&base(&[])), runner(&base(&[("CLEANUP_LEASE", "false")])));
    let (mut t_with, mut t_without) = (Vec::new(), Vec::new());
    for i in 0..args.runs {
        t_without.push(run(&direct_without, &format!("t-off-{i}")).await.1);
        t_with.push(run(&direct_with, &format!("t-on-{i}")).await.1);
    }

    // The lag bound with no lag.
    eprintln!("bench lease: the lag bound, {} rounds of {} entries", args.rounds, args.entries);
    let bounded =
        runner(&base(&[("CLEANUP_MAX_REPLICATION_LAG_SECONDS", "10"), ("CLEANUP_TIME_BUDGET_SECONDS", "900")]));
    let unbounded = runner(&base(&[("CLEANUP_TIME_BUDGET_SECONDS", "900")]));
    let (mut lag_on, mut lag_off) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        seed(&client, args.entries).await;
        let (report, took) = run(&unbounded, &format!("lag-off-{round}")).await;
        assert_eq!(report.cleaned_count, (args.entries / 2) as u64);
        lag_off.push(took);
        seed(&client, args.entries).await;
        let (report, took) = run(&bounded, &format!("lag-on-{round}")).await;
        assert_eq!(report.cleaned_count, (args.entries / 2) as u64);
        assert_eq!(report.paused_ms, 0, "no lag, no pause");
        lag_on.push(took);
    }
    let (on, off) = (median(lag_on), median(lag_off));
    let ratio = on.as_secs_f64() / off.as_secs_f64();

    let server = std::env::var("JTC_BENCH_SERVER").unwrap_or_else(|_| "MONGODB_TEST_URI".into());
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut text = format!(
        "On {server}, in one invocation.\n\n| | calls to the Data API |\n|---|---|\n\
         | a run without the lease | {no_lease} |\n| the same run with the lease | {lease} |\n\
         | a run that finds the lease held | {held} |\n\n\
         **Round trips of the lease: {}** (taking it and releasing it; the bound is 2). A run that finds it held makes \
         {held} calls in all (the write that collides, the read of the holder, and its run record) and sweeps nothing.\n\n",
        lease - no_lease
    );
    text += &format!(
        "Time, {} small runs each way through the direct connection (medians): {:.1} ms without the lease, {:.1} ms \
         with it.\n\n",
        args.runs,
        ms(median(t_without)),
        ms(median(t_with))
    );
    text += &format!(
        "**The lag bound with no lag**: a sweep of {} entries (half expired), medians of {} rounds: {:.2} s without \
         `CLEANUP_MAX_REPLICATION_LAG_SECONDS`, {:.2} s with it: **{ratio:.3}x** (the bound is 1.05x).\n",
        args.entries,
        args.rounds,
        off.as_secs_f64(),
        on.as_secs_f64()
    );
    println!("{text}");
    if let Some(out) = args.out {
        jtc_test_support::splice_report(&out, "lease", &text);
        eprintln!("bench lease: wrote {}", out.display());
    }
    let _ = client.database(DB).drop().await;
}
