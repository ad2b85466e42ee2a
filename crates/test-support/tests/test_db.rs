//! A test's database is gone when its `TestDb` is, also when the test fails.

use jtc_test_support::TestDb;
use mongodb::bson::doc;

async fn exists(db: &mongodb::Client, name: &str) -> bool {
    db.list_database_names().await.expect("list databases").iter().any(|n| n == name)
}

#[tokio::test]
async fn a_test_database_is_dropped_with_its_test_db() {
    let observer = mongodb::Client::with_uri_str(jtc_test_support::test_db_uri()).await.expect("client");
    let db = TestDb::new().await;
    let name = db.name.clone();
    db.insert(vec![doc! { "jti": "x" }]).await;
    assert!(exists(&observer, &name).await, "the database was made");
    drop(db);
    assert!(!exists(&observer, &name).await, "{name} is still there");

    // A failing test unwinds through the drop as well.
    let name = tokio::spawn(async {
        let db = TestDb::new().await;
        db.insert(vec![doc! { "jti": "y" }]).await;
        let name = db.name.clone();
        std::panic::panic_any(name);
    })
    .await
    .expect_err("the test panicked")
    .into_panic()
    .downcast::<String>()
    .expect("its name");
    assert!(!exists(&observer, &name).await, "{name} was left behind by a failed test");
}
