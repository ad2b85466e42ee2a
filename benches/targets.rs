//! `scripts/bench targets`: one run over four targets against four single-target runs, and the shares each target
//! gets under a budget that covers about a third of the work (`CLEANUP_TARGETS`).
//!
//! Four targets of `--entries` (default 50,000) entries each, half expired (spread over the last 30 days), each with
//! its expiry index: two in one database, two in another, one of them with a numeric `exp`. Measured side by side
//! in one invocation, in-process (the runner as `/invoke` uses it), against `MONGODB_TEST_URI`:
//! - **cost**: the four targets swept one by one (four runs of one target each), then, reseeded, in one run;
//! - **fairness**: reseeded, one run with a budget of a third of the four single runs' time, and each target's
//!   share of what it deleted.
//!
//!   scripts/bench targets [--entries 50000] [--out BENCHMARKS.md]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use jwt_token_cleaner::config::Settings;
use jwt_token_cleaner::history::Trigger;
use jwt_token_cleaner::runner::Runner;
use jwt_token_cleaner::store::backends::Backends;
use jwt_token_cleaner::sweep::{Silent, SweepOverrides, SweepReport};
use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb::Client;

const DB_A: &str = "jtc_bench_targets_a";
const DB_B: &str = "jtc_bench_targets_b";

/// (name, database, collection, expiry field, numeric expiry).
const TARGETS: [(&str, &str, &str, &str, bool); 4] = [
    ("auth", DB_A, "bl_auth", "expires_at", false),
    ("billing", DB_A, "bl_billing", "expires_at", false),
    ("mobile", DB_B, "bl_mobile", "exp", true),
    ("resets", DB_B, "bl_resets", "expires_at", false),
];

/// `scripts/bench targets [--entries N]`.
#[derive(clap::Parser)]
struct Args {
    /// Entries seeded in each target.
    #[arg(long, default_value_t = 50_000)]
    entries: i64,
    /// Where the table is written (BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn args() -> Args {
    jtc_test_support::bench_args()
}

/// Every target reseeded: `entries` each, half expired (over the last 30 days), half valid, and its index.
async fn seed(client: &Client, entries: i64) {
    let now = Utc::now().timestamp_millis();
    let span = 30 * 86_400_000 / (entries / 2).max(1);
    for (name, database, collection, field, numeric) in TARGETS {
        let collection = client.database(database).collection::<Document>(collection);
        collection.drop().await.expect("drop");
        let docs: Vec<Document> = (0..entries)
            .map(|i| {
                let expires_ms = if i % 2 == 0 { now - 60_000 - (i / 2) * span } else { now + 3_600_000 + i };
                let expiry = if numeric {
                    Bson::Int64(expires_ms / 1000)
                } else {
                    Bson::DateTime(DateTime::from_millis(expires_ms))
                };
                doc! { "jti": format!("{name}-{i}"), field: expiry }
            })
            .collect();
        for chunk in docs.chunks(10_000) {
            collection.insert_many(chunk.to_vec()).await.expect("insert");
        }
        collection.create_index(mongodb::IndexModel::builder().keys(doc! { field: 1 }).build()).await.expect("index");
    }
}

fn target_json(t: &(&str, &str, &str, &str, bool)) -> String {
    format!(r#"{{"name": "{}", "database": "{}", "collection": "{}", "expires_field": "{}"}}"#, t.0, t.1, t.2, t.3)
}

/// One run over `targets` (a JSON list) with `budget`: its report and how long it took.
async fn run(uri: &str, targets: &str, budget: Duration) -> (SweepReport, Duration) {
    let (report, took) = try_run(uri, targets, budget).await;
    (report.unwrap_or_else(|failure| panic!("the run failed: {}", failure.error)), took)
}

/// [`run`], its failure kept.
async fn try_run(
    uri: &str,
    targets: &str,
    budget: Duration,
) -> (Result<SweepReport, jwt_token_cleaner::sweep::SweepFailure>, Duration) {
    let env = [
        ("DB_URI", uri.to_string()),
        ("DB_NAME", DB_A.to_string()),
        ("CLEANUP_TARGETS", targets.to_string()),
        ("CLEANUP_GRACE_SECONDS", "0".to_string()),
        ("CLEANUP_HISTORY_COLLECTION", String::new()),
        ("CLEANUP_TIME_BUDGET_SECONDS", budget.as_secs().max(1).to_string()),
    ];
    let settings =
        Settings::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).expect("settings");
    let runner = Runner::new(&settings, Backends::from_settings(&settings).expect("backends"));
    let options = runner.options(SweepOverrides::default());
    let all = runner.targets(None).expect("targets");
    let started = Instant::now();
    let report = runner.run(&options, &all, Trigger::Cli, "bench", Utc::now(), &Silent).await;
    let took = started.elapsed();
    runner.backends.shutdown().await;
    (report, took)
}

fn cleaned(report: &SweepReport, name: &str) -> u64 {
    report.targets.iter().flatten().find(|t| t.name == name).map_or(0, |t| t.cleaned_count)
}

#[tokio::main]
async fn main() {
    let args = args();
    let uri = std::env::var("MONGODB_TEST_URI").expect("MONGODB_TEST_URI (scripts/bench targets sets it)");
    let client = Client::with_uri_str(&uri).await.expect("client");
    let expired = (args.entries / 2) as u64;
    let all = format!("[{}]", TARGETS.iter().map(target_json).collect::<Vec<_>>().join(", "));
    let full = Duration::from_secs(900);

    // Cost: four single-target runs, then one run over the four.
    eprintln!("bench targets: seeding 4 x {} entries", args.entries);
    seed(&client, args.entries).await;
    let mut singles = Vec::new();
    for target in &TARGETS {
        let (report, took) = run(&uri, &format!("[{}]", target_json(target)), full).await;
        assert_eq!(cleaned(&report, target.0), expired, "{} swept whole", target.0);
        singles.push((target.0, took));
    }
    let single_total: Duration = singles.iter().map(|(_, t)| *t).sum();
    seed(&client, args.entries).await;
    let (report, together) = run(&uri, &all, full).await;
    assert_eq!(report.cleaned_count, 4 * expired, "the four swept whole in one run");
    let ratio = together.as_secs_f64() / single_total.as_secs_f64();

    // Fairness: a third of the work's time.
    seed(&client, args.entries).await;
    let third = Duration::from_secs_f64((single_total.as_secs_f64() / 3.0).max(1.0));
    let (report, fair_took) = run(&uri, &all, third).await;
    let failed: Vec<String> = report
        .targets
        .iter()
        .flatten()
        .filter_map(|t| t.error.as_ref().map(|e| format!("`{}`: {e}", t.name)))
        .collect();
    let shares: Vec<(&str, u64)> = TARGETS.iter().map(|t| (t.0, cleaned(&report, t.0))).collect();
    let (low, high) = (shares.iter().map(|s| s.1).min().unwrap_or(0), shares.iter().map(|s| s.1).max().unwrap_or(0));
    let spread = if low == 0 { f64::INFINITY } else { high as f64 / low as f64 };

    let server = std::env::var("JTC_BENCH_SERVER").unwrap_or_else(|_| "MONGODB_TEST_URI".into());
    let mut text = format!(
        "Four targets of {} entries each (half expired; two databases; `mobile` with a numeric `exp`), on {server}, \
         in one invocation.\n\n| | time | cleaned |\n|---|---|---|\n",
        args.entries
    );
    for (name, took) in &singles {
        text += &format!("| `{name}` alone | {:.2} s | {expired} |\n", took.as_secs_f64());
    }
    text += &format!("| the four alone, summed | {:.2} s | {} |\n", single_total.as_secs_f64(), 4 * expired);
    text += &format!("| the four in one run | {:.2} s | {} |\n\n", together.as_secs_f64(), 4 * expired);
    text += &format!("**Cost: {ratio:.3}x** the four single runs (the bound is 1.05x).\n\n");
    text += &format!(
        "**Fairness**, budget {:.0} s (a third of the four single runs): {}; the largest share is **{spread:.2}x** \
         the smallest (the bound is 2x).\n",
        third.as_secs_f64(),
        shares.iter().map(|(n, c)| format!("`{n}` {c}")).collect::<Vec<_>>().join(", ")
    );
    let unknown: Vec<String> = report
        .targets
        .iter()
        .flatten()
        .filter(|t| t.warnings.iter().any(|w| w.contains("what is left is unknown")))
        .map(|t| format!("`{}`", t.name))
        .collect();
    text += &format!(
        "\nThat run answered in {:.2} s, its budget plus {:.2} s (every call ends by the budget plus 3 s). {} {}\n",
        fair_took.as_secs_f64(),
        (fair_took.as_secs_f64() - third.as_secs_f64()).max(0.0),
        match failed.is_empty() {
            true => "No target failed.".to_string(),
            false => format!("**Failed targets**: {}.", failed.join("; ")),
        },
        match unknown.is_empty() {
            true => "Every target's closing counts ended in time.".to_string(),
            false => format!(
                "The deadline cut the closing counts of {} (stopped by the budget; what is left reported unknown).",
                unknown.join(", ")
            ),
        }
    );
    println!("{text}");
    if let Some(out) = args.out {
        jtc_test_support::splice_report(&out, "targets", &text);
        eprintln!("bench targets: wrote {}", out.display());
    }
    for database in [DB_A, DB_B] {
        let _ = client.database(database).drop().await;
    }
}
