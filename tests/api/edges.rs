//! The edges of the expiry ranges, with the clock pinned (`sweep::run_at`): an entry exactly at the cutoff
//! (`now - grace`, to the millisecond for Dates and to the second for numbers) stays; entries on every window
//! boundary are deleted once, and counted once by a dry run. The entries are one millisecond (one second) apart, so
//! whatever windows the planner picks, every boundary falls on an entry.

use chrono::{TimeZone, Utc};
use jwt_token_cleaner::store::mongo::MongoStore;
use jwt_token_cleaner::sweep::{self, SweepOptions, SweepOverrides};
use mongodb::bson::{doc, Bson, DateTime, Document};

use crate::helpers::{CleanerEnv, TestDb};

/// A whole second, so that the numeric lane's cutoff is a whole number too.
const NOW_MS: i64 = 1_800_000_000_000;
const GRACE_S: i64 = 60;
const CUTOFF_MS: i64 = NOW_MS - GRACE_S * 1000;

/// 1,200 Dates one millisecond apart below the cutoff and 300 numbers one second apart, each lane with one entry
/// exactly at the cutoff and one just above it; the expired ones' jtis start with `e`.
fn entries() -> Vec<Document> {
    let mut docs: Vec<Document> = (1..=1200)
        .map(|i| doc! { "jti": format!("e-date-{i}"), "expires_at": DateTime::from_millis(CUTOFF_MS - i) })
        .collect();
    docs.extend((1..=300).map(|i| doc! { "jti": format!("e-sec-{i}"), "expires_at": CUTOFF_MS / 1000 - i }));
    docs.push(doc! { "jti": "e-sec-half", "expires_at": Bson::Double((CUTOFF_MS - 500) as f64 / 1000.0) });
    docs.push(doc! { "jti": "v-date-at-cutoff", "expires_at": DateTime::from_millis(CUTOFF_MS) });
    docs.push(doc! { "jti": "v-date-after", "expires_at": DateTime::from_millis(CUTOFF_MS + 1) });
    docs.push(doc! { "jti": "v-sec-at-cutoff", "expires_at": CUTOFF_MS / 1000 });
    docs.push(doc! { "jti": "v-sec-after", "expires_at": Bson::Double((CUTOFF_MS + 500) as f64 / 1000.0) });
    docs
}

async fn sweep_pinned(db: &TestDb, dry_run: bool) -> serde_json::Value {
    let settings = db.settings(&[("CLEANUP_GRACE_SECONDS", &GRACE_S.to_string())]);
    let store =
        MongoStore::new(settings.db.clone().unwrap(), &settings.sweep.collection, &settings.sweep.expires_field);
    // Small batches: dozens of windows, so dozens of boundaries.
    let overrides = SweepOverrides { dry_run: Some(dry_run), batch_size: Some(37), time_budget_seconds: None };
    let options = SweepOptions::resolve(&settings.sweep, &settings.legacy, overrides);
    let now = Utc.timestamp_millis_opt(NOW_MS).single().unwrap();
    let report = sweep::run_at(&store, &options, None, "edges", now, &sweep::Silent).await.expect("sweep");
    serde_json::to_value(report).unwrap()
}

#[tokio::test]
async fn the_cutoff_stays_and_every_window_edge_goes_once() {
    let db = TestDb::new().await;
    db.insert(entries()).await;
    let expired = 1200 + 300 + 1;

    let dry = sweep_pinned(&db, true).await;
    assert_eq!(dry["would_clean_count"], expired, "each edge entry counted once: {dry}");
    assert!(dry["batches"].as_u64().unwrap() >= 30, "many windows, many edges: {dry}");

    let real = sweep_pinned(&db, false).await;
    assert_eq!(real["cleaned_count"], expired, "each edge entry deleted once: {real}");
    assert_eq!(real["complete"], true);
    let left = db.remaining_jtis().await;
    assert_eq!(left, ["v-date-after", "v-date-at-cutoff", "v-sec-after", "v-sec-at-cutoff"], "{left:?}");
}
