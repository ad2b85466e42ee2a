//! Gentle sweeps: the pause is taken and counted in the budget, windows shrink when operations run long, estimate
//! mode deletes exactly what exact mode deletes, and statistics are null (not 0) when they are off or unknown. The
//! mechanisms are checked by what they do; no test asserts a time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use jwt_token_cleaner::store::mongo::MongoStore;
use jwt_token_cleaner::store::{
    Backend, CollectionStats, Deleted, ExpiryRange, LeaseWrite, LegacyEntry, LegacyStore, Measure, ReplicationLag,
    RunHistory, RunQuery, StoreError, SweepStore,
};
use jwt_token_cleaner::sweep::{self, SweepOptions, SweepOverrides};
use mongodb::bson::{doc, Bson, DateTime, Document};

use crate::helpers::{expired_and_valid, CleanerEnv, TestApp, TestDb};

/// `expired` Date entries a second apart (the first an hour ago), a numeric one, and a few that must stay; and
/// the index on the expiry, as `create-index` makes it.
async fn seed(db: &TestDb, expired: i64) {
    let now = Utc::now().timestamp_millis();
    db.blacklist()
        .create_index(mongodb::IndexModel::builder().keys(doc! { "expires_at": 1 }).build())
        .await
        .expect("index");
    let mut docs = expired_and_valid(now, expired, 3_600_000, 1000, 0);
    docs.push(doc! { "jti": "e-numeric", "expires_at": Bson::Int64(now / 1000 - 7200) });
    docs.push(doc! { "jti": "v-future", "expires_at": DateTime::from_millis(now + 3_600_000) });
    docs.push(doc! { "jti": "v-in-grace", "expires_at": DateTime::from_millis(now - 5_000) });
    docs.push(doc! { "jti": "v-missing" });
    docs.push(doc! { "jti": "v-array", "expires_at": [DateTime::from_millis(0)] });
    db.insert(docs).await;
}

#[tokio::test]
async fn the_pause_is_taken_and_counted_in_the_budget() {
    let db = TestDb::new().await;
    seed(&db, 2000).await;
    // Paused 50 times each batch's own duration, a 2 s budget cannot cover 20 batches.
    let app =
        TestApp::spawn(&db.settings(&[("CLEANUP_PAUSE_RATIO", "50"), ("CLEANUP_TIME_BUDGET_SECONDS", "2")])).await;
    let data = app.invoke(r#"{"batch_size": 100}"#).await.json["data"].clone();
    assert!(data["paused_ms"].as_u64().unwrap() > 0, "{data}");
    assert!(data["batches"].as_u64().unwrap() > 0, "it did start: {data}");
    assert_eq!(data["complete"], false, "the pauses spent the budget: {data}");
    assert!(data["expired_remaining"].as_u64().unwrap() > 0, "{data}");

    // Without a pause ratio, no pause, and the same data is swept in full.
    let app = TestApp::spawn(&db.settings(&[])).await;
    let data = app.invoke(r#"{"batch_size": 100}"#).await.json["data"].clone();
    assert_eq!(data["paused_ms"], 0);
    assert_eq!(data["complete"], true, "{data}");
}

/// The real store, slowed down by a fixed cost per entry on every measure, bounded count and delete (as a loaded
/// server would be), recording each delete: the upper end of its range and how many entries it removed.
struct Slowed {
    inner: MongoStore,
    per_entry: Duration,
    deletes: Mutex<Vec<(i64, u64)>>,
    /// The entries every measure and bounded count read, in order.
    reads: Mutex<Vec<u64>>,
    /// `replSetGetStatus` answers to give before the server's own, in order.
    replication: Mutex<VecDeque<Result<Document, StoreError>>>,
}

impl Backend for Slowed {
    fn backend(&self) -> String {
        self.inner.backend()
    }
}

#[async_trait::async_trait]
impl SweepStore for Slowed {
    async fn check(&self) -> Result<(), StoreError> {
        self.inner.check().await
    }
    async fn stats(&self) -> Result<CollectionStats, StoreError> {
        self.inner.stats().await
    }
    async fn measure(&self, range: &ExpiryRange, limit: Option<u64>) -> Result<Measure, StoreError> {
        let measured = self.inner.measure(range, limit).await?;
        tokio::time::sleep(self.per_entry * measured.count as u32).await;
        self.reads.lock().unwrap().push(measured.count);
        Ok(measured)
    }
    async fn delete(&self, range: &ExpiryRange, at_most: u64) -> Result<Deleted, StoreError> {
        let deleted = self.inner.delete(range, at_most).await?;
        tokio::time::sleep(self.per_entry * deleted.count as u32).await;
        self.deletes.lock().unwrap().push((range.hi_ms, deleted.count));
        Ok(deleted)
    }
    async fn count(&self, range: &ExpiryRange) -> Result<u64, StoreError> {
        let counted = self.inner.count(range).await?;
        tokio::time::sleep(self.per_entry * counted as u32).await;
        Ok(counted)
    }
    async fn count_at_most(&self, range: &ExpiryRange, limit: u64) -> Result<u64, StoreError> {
        let counted = self.inner.count_at_most(range, limit).await?;
        tokio::time::sleep(self.per_entry * counted as u32).await;
        self.reads.lock().unwrap().push(counted);
        Ok(counted)
    }
    async fn oldest_expiry(&self, range: &ExpiryRange) -> Result<Option<i64>, StoreError> {
        self.inner.oldest_expiry(range).await
    }
    async fn expiry_indexed(&self) -> Result<Option<bool>, StoreError> {
        self.inner.expiry_indexed().await
    }
    async fn replication_lag(&self) -> Result<ReplicationLag, StoreError> {
        // A scripted answer while there is one (a captured reply edited to show lag, read as the backend reads
        // its own), else the server's.
        let scripted = self.replication.lock().unwrap().pop_front();
        match scripted {
            Some(status) => status.map(|status| ReplicationLag::of_status(&status)),
            None => self.inner.replication_lag().await,
        }
    }
}

#[async_trait::async_trait]
impl LegacyStore for Slowed {
    async fn legacy_page(&self, after: Option<&Bson>, limit: u32) -> Result<Vec<LegacyEntry>, StoreError> {
        self.inner.legacy_page(after, limit).await
    }
    async fn delete_legacy(&self, ids: &[Bson]) -> Result<u64, StoreError> {
        self.inner.delete_legacy(ids).await
    }
    async fn backfill_expiry(&self, id: &Bson, expires_ms: i64) -> Result<bool, StoreError> {
        self.inner.backfill_expiry(id, expires_ms).await
    }
}

#[async_trait::async_trait]
impl RunHistory for Slowed {
    async fn record_run(&self, run: &Document) -> Result<(), StoreError> {
        self.inner.record_run(run).await
    }
    async fn recent_runs(&self, query: &RunQuery) -> Result<Vec<Document>, StoreError> {
        self.inner.recent_runs(query).await
    }
    async fn write_lease(&self, filter: &Document, update: &Document) -> Result<LeaseWrite, StoreError> {
        self.inner.write_lease(filter, update).await
    }
    async fn read_lease(&self, filter: &Document) -> Result<Option<Document>, StoreError> {
        self.inner.read_lease(filter).await
    }
    async fn release_lease(&self, filter: &Document) -> Result<(), StoreError> {
        self.inner.release_lease(filter).await
    }
}

/// A sweep of `db` through [`Slowed`] (1 ms an entry, batch 1000): its report, its deletes and its reads.
async fn slowed_sweep(db: &TestDb, extra: &[(&str, &str)]) -> (serde_json::Value, Vec<(i64, u64)>, Vec<u64>) {
    let (report, store) = scripted_sweep(db, extra, Duration::from_millis(1), Vec::new()).await;
    let report = report.expect("sweep");
    let deletes = store.deletes.lock().unwrap().clone();
    let reads = store.reads.lock().unwrap().clone();
    (report, deletes, reads)
}

/// A sweep of `db` through [`Slowed`] (`per_entry`, batch 1000), its `replSetGetStatus` answers `replication`
/// first: the report (or the failure's error) and the store.
async fn scripted_sweep(
    db: &TestDb,
    extra: &[(&str, &str)],
    per_entry: Duration,
    replication: Vec<Result<Document, StoreError>>,
) -> (Result<serde_json::Value, String>, Arc<Slowed>) {
    let settings = db.settings(extra);
    let inner =
        MongoStore::new(settings.db.clone().unwrap(), &settings.sweep.collection, &settings.sweep.expires_field);
    let store = Arc::new(Slowed {
        inner,
        per_entry,
        deletes: Mutex::new(Vec::new()),
        reads: Mutex::new(Vec::new()),
        replication: Mutex::new(replication.into()),
    });
    let overrides = SweepOverrides { batch_size: Some(1000), ..SweepOverrides::default() };
    let options = SweepOptions::resolve(&settings.sweep, &settings.legacy, overrides);
    let report = sweep::run(store.as_ref(), &options, None, "gentle").await;
    (report.map(|r| serde_json::to_value(r).unwrap()).map_err(|f| f.error), store)
}

/// A `replSetGetStatus` reply captured from the test server, edited to show lag: the worst healthy secondary is
/// 12 s behind the primary (`tests/fixtures/`).
fn lagging_status() -> Document {
    let text = include_str!("../fixtures/repl_set_get_status_lagging.json");
    let value: serde_json::Value = serde_json::from_str(text).expect("JSON");
    match Bson::try_from(value).expect("Extended JSON") {
        Bson::Document(document) => document,
        other => panic!("not a document: {other}"),
    }
}

fn warnings(report: &serde_json::Value) -> Vec<String> {
    report["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn with_no_lag_the_bound_never_pauses_the_sweep() {
    // The test server is a one-member replica set: replSetGetStatus answers, and there is no secondary to wait for.
    let db = TestDb::new().await;
    seed(&db, 2000).await;
    let lag = [("CLEANUP_MAX_REPLICATION_LAG_SECONDS", "10")];
    let (report, _) = scripted_sweep(&db, &lag, Duration::ZERO, Vec::new()).await;
    let report = report.expect("sweep");
    assert_eq!((report["cleaned_count"].as_u64(), report["complete"].as_bool()), (Some(2001), Some(true)), "{report}");
    assert_eq!(report["paused_ms"], 0, "{report}");
    assert!(warnings(&report).is_empty(), "the lag was read, and there was none: {report}");
}

#[tokio::test]
async fn a_lagging_secondary_pauses_the_sweep_until_it_catches_up() {
    let db = TestDb::new().await;
    seed(&db, 2000).await;
    let lag = [("CLEANUP_MAX_REPLICATION_LAG_SECONDS", "10")];
    // 12 s behind, three reads running; then the server's own answer (no lag).
    let script = vec![Ok(lagging_status()), Ok(lagging_status()), Ok(lagging_status())];
    let (report, store) = scripted_sweep(&db, &lag, Duration::ZERO, script).await;
    let report = report.expect("sweep");
    assert_eq!(report["paused_ms"], 3000, "a second's pause per lagging read: {report}");
    assert!(store.replication.lock().unwrap().is_empty(), "every scripted answer was read");
    assert_eq!((report["cleaned_count"].as_u64(), report["complete"].as_bool()), (Some(2001), Some(true)), "{report}");

    // Within the bound, no pause: 12 s behind is fine with a bound of 15.
    let db = TestDb::new().await;
    seed(&db, 200).await;
    let lag = [("CLEANUP_MAX_REPLICATION_LAG_SECONDS", "15")];
    let (report, _) = scripted_sweep(&db, &lag, Duration::ZERO, vec![Ok(lagging_status())]).await;
    assert_eq!(report.expect("sweep")["paused_ms"], 0);
}

#[tokio::test]
async fn a_budget_spent_waiting_for_the_replicas_ends_partial_naming_the_lag() {
    let db = TestDb::new().await;
    seed(&db, 2000).await;
    let env = [("CLEANUP_MAX_REPLICATION_LAG_SECONDS", "10"), ("CLEANUP_TIME_BUDGET_SECONDS", "2")];
    let script = (0..100).map(|_| Ok(lagging_status())).collect();
    let (report, _) = scripted_sweep(&db, &env, Duration::ZERO, script).await;
    let report = report.expect("a partial run, not a failure");
    assert_eq!(report["complete"], false, "{report}");
    assert_eq!(report["cleaned_count"], 0, "no batch while the replicas were behind: {report}");
    assert!(warnings(&report).iter().any(|w| w.starts_with("replication lag: ")), "{report}");
    let paused = report["paused_ms"].as_u64().unwrap();
    assert!(paused > 0 && paused <= 2000, "what was left of the budget, in pauses: {report}");
}

#[tokio::test]
async fn a_refused_lag_read_is_said_once_and_the_sweep_goes_on() {
    let db = TestDb::new().await;
    seed(&db, 2000).await;
    let lag = [("CLEANUP_MAX_REPLICATION_LAG_SECONDS", "10")];
    let refused = StoreError::query("not authorized on admin to execute command { replSetGetStatus: 1 } (13)");
    let (report, store) = scripted_sweep(&db, &lag, Duration::ZERO, vec![Err(refused), Ok(lagging_status())]).await;
    let report = report.expect("sweep");
    let said: Vec<String> = warnings(&report).into_iter().filter(|w| w.contains("cannot be read")).collect();
    assert_eq!(said.len(), 1, "{report}");
    // It no longer names CLEANUP_WRITE_CONCERN and "the direct connection's deletes" (#39 L10: said where there
    // was no direct connection).
    assert!(said[0].contains("not authorized") && said[0].contains("does not wait for the replicas"), "{said:?}");
    assert_eq!(store.replication.lock().unwrap().len(), 1, "no second read in this run");
    assert_eq!((report["complete"].as_bool(), report["paused_ms"].as_u64()), (Some(true), Some(0)), "{report}");

    // Through the Data API, which has no admin commands: said, and swept.
    let api = jtc_test_support::data_api::DataApi::spawn(&db.uri, None).await;
    seed(&db, 10).await;
    let mut settings = db.settings(&[lag[0], ("MONGODB_API_URL", api.url.as_str())]);
    settings.db = None;
    let answer = TestApp::spawn(&settings).await.invoke("{}").await;
    let data = &answer.json["data"];
    assert_eq!(data["complete"], true, "{data}");
    assert!(warnings(data).iter().any(|w| w.contains("http_api cannot run replSetGetStatus")), "{data}");
}

/// A sweep the budget stopped, whose closing count the run's deadline cuts (the test server reads every remaining
/// entry to count them: here 1 ms each, 5 s for what is left against a 3 s margin), reports what is left as
/// unknown; it is incomplete either way, and what it deleted was counted by its deletes.
#[tokio::test]
async fn a_stopped_sweep_whose_closing_count_the_deadline_cuts_reports_the_rest_unknown() {
    let db = TestDb::new().await;
    seed(&db, 6000).await;
    let env = [("CLEANUP_TIME_BUDGET_SECONDS", "1")];
    let (report, store) = scripted_sweep(&db, &env, Duration::from_millis(1), Vec::new()).await;
    let report = report.expect("a partial run, not a failure");
    assert_eq!(report["complete"], false, "{report}");
    assert_eq!(report["expired_remaining"], serde_json::Value::Null, "{report}");
    assert_eq!(report["remaining_tokens"], serde_json::Value::Null, "{report}");
    let deleted: u64 = store.deletes.lock().unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(report["cleaned_count"], deleted, "{report}");
    assert!(warnings(&report).iter().any(|w| w.contains("what is left is unknown")), "{report}");
}

/// `CLEANUP_WRITE_CONCERN` on the direct connection's deletes: `majority` on the one-member set is confirmed; a
/// write concern the set cannot satisfy (`w: 5`) is the error JSON naming it, and nothing was deleted.
#[tokio::test]
async fn write_concerns_are_confirmed_or_refused_never_passed_silently() {
    let db = TestDb::new().await;
    seed(&db, 200).await;
    let app = TestApp::spawn(&db.settings(&[("CLEANUP_WRITE_CONCERN", "majority")])).await;
    let answer = app.invoke("{}").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["data"]["cleaned_count"], 201);
    assert!(warnings(&answer.json["data"]).is_empty(), "{}", answer.json);

    let db = TestDb::new().await;
    seed(&db, 200).await;
    let app = TestApp::spawn(&db.settings(&[("CLEANUP_WRITE_CONCERN", "5")])).await;
    let answer = app.invoke("{}").await;
    assert_eq!(answer.status, 500, "{}", answer.json);
    let error = answer.json["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("CLEANUP_WRITE_CONCERN=5 cannot be satisfied") && error.contains("UnsatisfiableWriteConcern"),
        "{error}"
    );
    assert_eq!(db.blacklist().count_documents(doc! {}).await.unwrap(), 205, "nothing was deleted");
}

#[tokio::test]
async fn windows_shrink_when_operations_run_long() {
    // 1 ms per entry, a 40 ms bound: after the first window teaches the cost, windows hold about 40 entries.
    let db = TestDb::new().await;
    seed(&db, 2000).await;
    let (report, deletes, reads) = slowed_sweep(&db, &[("CLEANUP_MAX_OPERATION_MS", "40")]).await;
    assert_eq!(report["cleaned_count"], 2001, "{report}");
    assert_eq!(report["complete"], true);
    // The first window is probed with a count that stops at twice the start target, which teaches the cost: no
    // read is larger, and every delete fits the bound, the first one included.
    assert!(deletes.len() > 20 && deletes.iter().all(|(_, n)| *n <= 80), "bounded windows: {deletes:?}");
    assert!(reads.iter().all(|n| *n <= 201), "bounded reads: {reads:?}");

    // Without the bound, the same data goes in windows of the batch size.
    let db2 = TestDb::new().await;
    seed(&db2, 2000).await;
    let (report, deletes, _) = slowed_sweep(&db2, &[]).await;
    assert_eq!(report["cleaned_count"], 2001);
    assert!(deletes.iter().any(|(_, n)| *n > 500), "unbounded windows: {deletes:?}");
}

/// Sparse entries (two minutes apart for 80 minutes below the cutoff), then a dense stretch (1,000 entries 5 ms
/// apart), then sparse again: the pattern that fooled the window sizing (issue #34). A window that straddles the
/// edge of the dense stretch holds a few entries, so the one after it was sized for a sparse density and read
/// 400-2,000 entries at once.
async fn seed_sparse_then_dense(db: &TestDb) {
    let now = Utc::now().timestamp_millis();
    db.blacklist()
        .create_index(mongodb::IndexModel::builder().keys(doc! { "expires_at": 1 }).build())
        .await
        .expect("index");
    let top = now - 600_000;
    let sparse = |prefix: &'static str, from: i64| {
        (0..40).map(
            move |i| doc! { "jti": format!("{prefix}{i:03}"), "expires_at": DateTime::from_millis(from - i * 120_000) },
        )
    };
    let dense_top = top - 40 * 120_000;
    let dense =
        (0..1000).map(|i| doc! { "jti": format!("d{i:04}"), "expires_at": DateTime::from_millis(dense_top - i * 5) });
    let docs: Vec<Document> = sparse("s", top).chain(dense).chain(sparse("t", dense_top - 5_000 - 60_000)).collect();
    db.insert(docs).await;
}

#[tokio::test]
async fn no_read_or_delete_exceeds_the_bound_when_a_dense_stretch_follows_sparse_windows() {
    for exact in ["true", "false"] {
        let db = TestDb::new().await;
        seed_sparse_then_dense(&db).await;
        let extra = [("CLEANUP_MAX_OPERATION_MS", "40"), ("CLEANUP_EXACT_BYTES", exact)];
        let (report, deletes, reads) = slowed_sweep(&db, &extra).await;
        assert_eq!(report["cleaned_count"], 1080, "exact bytes {exact}: {report}");
        // At most the probe's own limit (twice the start target, plus one) before the cost is known; after it,
        // about 40 entries a window (1 ms an entry, 40 ms): nothing anywhere near the dense stretch's 1,000.
        assert!(reads.iter().all(|n| *n <= 201), "exact bytes {exact}: bounded reads: {reads:?}");
        assert!(deletes.iter().all(|(_, n)| *n <= 201), "exact bytes {exact}: bounded deletes: {deletes:?}");
        assert!(deletes.len() > 10, "exact bytes {exact}: {deletes:?}");
    }
}

/// 1,000 entries a second apart from an hour ago, then nothing for 30 days, then 1,000 more a second apart.
async fn seed_with_a_gap(db: &TestDb) -> i64 {
    let now = Utc::now().timestamp_millis();
    let gap_starts = now - 3_600_000 - 1_000_000;
    let older = gap_starts - 30 * 86_400_000;
    let docs: Vec<Document> = (0..1000)
        .map(|i| doc! { "jti": format!("a{i:04}"), "expires_at": DateTime::from_millis(now - 3_600_000 - i * 1000) })
        .chain(
            (0..1000)
                .map(|i| doc! { "jti": format!("b{i:04}"), "expires_at": DateTime::from_millis(older - i * 1000) }),
        )
        .collect();
    db.insert(docs).await;
    gap_starts
}

#[tokio::test]
async fn a_paced_sweep_starts_small_again_after_a_gap() {
    let db = TestDb::new().await;
    let gap_starts = seed_with_a_gap(&db).await;
    let (report, deletes, _) = slowed_sweep(&db, &[("CLEANUP_PAUSE_RATIO", "0.01")]).await;
    assert_eq!(report["cleaned_count"], 2000, "{report}");
    // The slow start: the first delete holds at most twice the start target, and so does the first one past the
    // gap, although the windows before the gap had grown.
    let after_gap = deletes.iter().position(|(hi, _)| *hi < gap_starts).expect("deletes past the gap");
    assert!(deletes[0].1 <= 200 && deletes[after_gap].1 <= 200, "{deletes:?}");
    assert!(deletes[..after_gap].iter().any(|(_, n)| *n > 200), "the windows before the gap grew: {deletes:?}");

    // Not paced: the first window past the gap takes the whole cluster at once.
    let db2 = TestDb::new().await;
    let gap_starts = seed_with_a_gap(&db2).await;
    let (_, deletes, _) = slowed_sweep(&db2, &[]).await;
    let after_gap = deletes.iter().find(|(hi, _)| *hi < gap_starts).expect("deletes past the gap");
    assert!(after_gap.1 > 200, "{deletes:?}");
}

#[tokio::test]
async fn estimate_mode_deletes_exactly_what_exact_mode_deletes() {
    let (exact_db, estimate_db) = (TestDb::new().await, TestDb::new().await);
    seed(&exact_db, 1500).await;
    seed(&estimate_db, 1500).await;
    let exact = TestApp::spawn(&exact_db.settings(&[])).await.invoke(r#"{"batch_size": 200}"#).await;
    let estimated = TestApp::spawn(&estimate_db.settings(&[("CLEANUP_EXACT_BYTES", "false")]))
        .await
        .invoke(r#"{"batch_size": 200}"#)
        .await;
    let (exact, estimated) = (&exact.json["data"], &estimated.json["data"]);
    assert_eq!(exact["cleaned_count"], 1501);
    assert_eq!(estimated["cleaned_count"], exact["cleaned_count"], "{estimated}");
    assert_eq!(estimate_db.remaining_jtis().await, exact_db.remaining_jtis().await);
    assert_eq!(
        (exact["memory_saved_exact"].as_bool(), estimated["memory_saved_exact"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(estimated["complete"], true);
    assert!(estimated["memory_saved_bytes"].as_u64().unwrap() > 0, "{estimated}");
}

#[tokio::test]
async fn statistics_are_null_when_off_or_unknown() {
    let db = TestDb::new().await;
    seed(&db, 10).await;
    let app = TestApp::spawn(&db.settings(&[("CLEANUP_COLLECTION_STATS", "false")])).await;
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!(data["cleaned_count"], 11);
    for field in ["remaining_tokens", "estimated_memory_usage", "total_tokens_before"] {
        assert_eq!(data[field], serde_json::Value::Null, "{field}: {data}");
    }
    // Statistics on, nothing measured, and a server that reports no sizes (the test server): the count is known,
    // the size is not, and it says so.
    let app = TestApp::spawn(&db.settings(&[])).await;
    let data = app.invoke("").await.json["data"].clone();
    assert_eq!(data["remaining_tokens"], 4, "{data}");
    if std::env::var("JTC_SERVER_REPORTS_SIZES").is_err() {
        assert_eq!(data["estimated_memory_usage"], serde_json::Value::Null, "{data}");
    }
}
