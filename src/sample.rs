//! A sample blacklist for local runs and benchmarks, every entry labelled `"sample": true` and `jti: "sample-…"`.
//!
//! Entries look like what an auth service writes on logout, built by the one schema both products share
//! (`jtc_shared::blacklist`): `{jti, user, type, token, <EXPIRES_FIELD>, created_at}`, the expiry in the configured
//! field, so that the sweep sees the sample whatever `EXPIRES_FIELD` says.
//! A share of them is expired (spread over the past week); the rest expire within the next week. A few extra
//! entries show the edge cases the sweep must respect: numeric (`exp`-style) expiries, an entry inside the grace
//! period and one without any expiry.

use chrono::Utc;
use jtc_shared::blacklist::EntrySchema;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::Collection;

/// What [`seed`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Entries inserted.
    pub inserted: u64,
    /// Of those, entries already expired beyond any sane grace period (an hour or more ago).
    pub expired: u64,
}

/// One blacklist entry expiring at `expires_ms`.
pub fn entry(schema: &EntrySchema, i: u64, expires_ms: i64, now_ms: i64) -> Document {
    let kind = if i.is_multiple_of(3) { "refresh" } else { "access" };
    let created = DateTime::from_millis(now_ms.min(expires_ms) - 900_000);
    let mut entry = doc! { "jti": format!("sample-{i:09}-{:016x}", (i.wrapping_mul(0x9E37_79B9_7F4A_7C15))) };
    entry.extend(schema.token(kind, &format!("sample-user-{}", i % 997), DateTime::from_millis(expires_ms), created));
    // A token-sized field: a typical HS256 access token is about 250-300 bytes.
    entry.insert("token", format!("eyJhbGciOiJIUzI1NiJ9.sample.{}", "x".repeat(220)));
    entry.insert("sample", true);
    entry
}

/// Inserts `count` sample entries, `expired_percent` of them expired, in chunks of 10,000.
pub async fn seed(
    collection: &Collection<Document>,
    schema: &EntrySchema,
    count: u64,
    expired_percent: u8,
) -> mongodb::error::Result<Seeded> {
    let now_ms = Utc::now().timestamp_millis();
    const HOUR: i64 = 3_600_000;
    const WEEK: i64 = 7 * 24 * HOUR;
    let expired_every = u64::from(expired_percent.min(100));
    let mut seeded = Seeded { inserted: 0, expired: 0 };
    let mut chunk = Vec::with_capacity(10_000);
    for i in 0..count {
        // Spread deterministically over a week in either direction, at least an hour from now.
        let spread = HOUR + ((i.wrapping_mul(2_654_435_761) % (WEEK as u64 - HOUR as u64)) as i64);
        let expired = (i * 100 / count.max(1)) < expired_every;
        let expires_ms = if expired { now_ms - spread } else { now_ms + spread };
        seeded.expired += u64::from(expired);
        chunk.push(entry(schema, i, expires_ms, now_ms));
        if chunk.len() == 10_000 {
            collection.insert_many(std::mem::take(&mut chunk)).await?;
        }
    }
    if !chunk.is_empty() {
        collection.insert_many(chunk).await?;
    }
    seeded.inserted = count;
    Ok(seeded)
}

/// The edge cases: two numeric expiries (one expired), one inside the grace period, one without an expiry.
pub async fn seed_edge_cases(
    collection: &Collection<Document>,
    schema: &EntrySchema,
) -> mongodb::error::Result<Seeded> {
    let now = Utc::now();
    let with_expiry = |jti: &str, expires: mongodb::bson::Bson| {
        let mut entry = doc! { "jti": jti, "sample": true };
        schema.set_expiry(&mut entry, expires);
        entry
    };
    collection
        .insert_many([
            with_expiry("sample-numeric-expired", (now.timestamp() - 7200).into()),
            with_expiry("sample-numeric-valid", (now.timestamp() + 7200).into()),
            with_expiry("sample-in-grace", DateTime::from_millis(now.timestamp_millis() - 10_000).into()),
            doc! { "jti": "sample-no-expiry", "sample": true },
        ])
        .await?;
    Ok(Seeded { inserted: 4, expired: 1 })
}
