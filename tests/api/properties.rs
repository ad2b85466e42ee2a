//! Property test against the real test server: random blacklists (Date, numeric, missing and wrong-type expiries,
//! legacy tokens, expiries around the grace boundary, duplicates), random batch sizes and budgets, one or several
//! runs. Afterwards no entry that is not provably expired was deleted, and every provably expired one is gone once
//! a run reports `complete: true`.

use std::collections::HashSet;

use chrono::Utc;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use jwt_token_cleaner::config::LegacySettings;
use jwt_token_cleaner::store::mongo::MongoStore;
use jwt_token_cleaner::sweep::{self, SweepOptions, SweepOverrides, TokenVerifier};
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use proptest::prelude::*;

use crate::helpers::{CleanerEnv, TestDb};

const KEY: &str = "prop-key";
const GRACE_S: i64 = 60;

/// One generated entry; offsets are seconds relative to the moment the case starts.
#[derive(Debug, Clone)]
enum Entry {
    Date(i64),
    Seconds(i64),
    FractionalSeconds(i64),
    Missing,
    WrongType(u8),
    Legacy { offset: i64, right_key: bool },
    LegacyGarbage,
}

fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        -400_000i64..-200,              // clearly expired
        (-GRACE_S - 5)..(-GRACE_S + 5), // around the grace boundary
        -GRACE_S..0,                    // expired but inside the grace
        0i64..400_000,                  // valid
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        4 => offset().prop_map(Entry::Date),
        3 => offset().prop_map(Entry::Seconds),
        1 => offset().prop_map(Entry::FractionalSeconds),
        1 => Just(Entry::Missing),
        1 => (0u8..5).prop_map(Entry::WrongType),
        2 => (offset(), any::<bool>()).prop_map(|(offset, right_key)| Entry::Legacy { offset, right_key }),
        1 => Just(Entry::LegacyGarbage),
    ]
}

fn jwt(exp: i64, key: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({ "exp": exp }),
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// The document, and its expiry in milliseconds when it is provably expirable (else `None`).
fn materialize(entry: &Entry, now_ms: i64, i: usize) -> (Document, Option<i64>) {
    let id = ObjectId::new();
    let at = |offset: i64| now_ms + offset * 1000;
    match entry {
        Entry::Date(o) => {
            (doc! { "_id": id, "jti": format!("d{i}"), "expires_at": DateTime::from_millis(at(*o)) }, Some(at(*o)))
        }
        Entry::Seconds(o) => {
            (doc! { "_id": id, "jti": format!("s{i}"), "expires_at": at(*o) / 1000 }, Some(at(*o) / 1000 * 1000))
        }
        Entry::FractionalSeconds(o) => {
            let value = at(*o) as f64 / 1000.0 + 0.5;
            (doc! { "_id": id, "jti": format!("f{i}"), "expires_at": value }, Some((value * 1000.0) as i64))
        }
        Entry::Missing => (doc! { "_id": id, "jti": format!("m{i}") }, None),
        Entry::WrongType(k) => {
            let value: Bson = match k {
                0 => "2020-01-01".into(),
                1 => Bson::Null,
                2 => vec![Bson::Int64(1)].into(),
                3 => Bson::Int64(-100),
                _ => Bson::Double(f64::NAN),
            };
            (doc! { "_id": id, "jti": format!("w{i}"), "expires_at": value }, None)
        }
        Entry::Legacy { offset, right_key } => {
            let exp_s = at(*offset) / 1000;
            let token = jwt(exp_s, if *right_key { KEY } else { "other-key" });
            (doc! { "_id": id, "jti": format!("l{i}"), "token": token }, right_key.then_some(exp_s * 1000))
        }
        Entry::LegacyGarbage => (doc! { "_id": id, "jti": format!("g{i}"), "token": "x.y.z" }, None),
    }
}

async fn present_ids(db: &TestDb, collection: &str) -> HashSet<ObjectId> {
    use futures_util::TryStreamExt;
    let docs: Vec<Document> = db
        .client
        .database(&db.name)
        .collection::<Document>(collection)
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    docs.iter().map(|d| d.get_object_id("_id").unwrap()).collect()
}

proptest! {
    // No regression files in the work tree: a failure prints its minimal case, which goes into a named test.
    #![proptest_config(ProptestConfig {
        cases: 12,
        max_shrink_iters: 20,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_deletes_what_is_not_provably_expired(
        entries in prop::collection::vec(entry(), 0..40),
        duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        batch_size in 1u32..30,
        budget_s in prop_oneof![Just(1u64), Just(900u64)],
        runs in 1usize..4,
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let db = TestDb::new().await;
            let now_ms = Utc::now().timestamp_millis();
            let mut docs = Vec::new();
            let mut expiry = std::collections::HashMap::new();
            let mut all = entries.clone();
            // Duplicates: the same logical entry twice (same jti and expiry, another _id).
            for index in &duplicates {
                if !entries.is_empty() {
                    all.push(entries[index.index(entries.len())].clone());
                }
            }
            for (i, e) in all.iter().enumerate() {
                let (doc, expires) = materialize(e, now_ms, i);
                expiry.insert(doc.get_object_id("_id").unwrap(), expires);
                docs.push(doc);
            }
            let collection = format!("bl_{}", ObjectId::new().to_hex());
            if !docs.is_empty() {
                db.client.database(&db.name).collection::<Document>(&collection).insert_many(docs).await.unwrap();
            }
            let settings = db.settings(&[("BLACKLIST_COLLECTION", &collection), ("JWT_SECRET_KEY", KEY)]);
            let store =
                MongoStore::new(settings.db.clone().unwrap(), &settings.sweep.collection, &settings.sweep.expires_field);
            let legacy = LegacySettings { ..settings.legacy.clone() };
            let verifier = TokenVerifier::from_settings(&legacy);
            let overrides = SweepOverrides { dry_run: None, batch_size: Some(batch_size), time_budget_seconds: Some(budget_s) };
            let options = SweepOptions::resolve(&settings.sweep, &legacy, overrides);

            for _ in 0..runs {
                let start_ms = Utc::now().timestamp_millis();
                let report = sweep::run(&store, &options, verifier.as_ref(), "prop").await.expect("sweep");
                let end_ms = Utc::now().timestamp_millis();
                let present = present_ids(&db, &collection).await;
                for (id, expires) in &expiry {
                    let gone = !present.contains(id);
                    if gone {
                        // Deleted: it must have been provably expired by the end of the run.
                        let e = expires.unwrap_or_else(|| panic!("deleted an entry with no provable expiry: {id}"));
                        prop_assert!(e < end_ms - GRACE_S * 1000, "deleted {id} expiring at {e}, cutoff {}", end_ms - GRACE_S * 1000);
                    } else if report.complete {
                        // Kept after a complete run: it must not have been provably expired at the start.
                        if let Some(e) = expires {
                            prop_assert!(*e >= start_ms - GRACE_S * 1000 - 1, "left {id} expiring at {e} after a complete run");
                        }
                    }
                }
                prop_assert_eq!(report.remaining_tokens, Some(present.len() as u64));
            }
            Ok(())
        })?;
    }
}
