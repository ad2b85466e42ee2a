//! Revocation: the blacklist collection the cleaner sweeps.
//!
//! A revoked token is one document `{jti, <EXPIRES_FIELD>: <the token's exp as a Date>, type, user, created_at}`
//! (the schema is `jtc_shared::blacklist`'s): exactly what the cleaner needs to delete it once the token has
//! expired, and no sooner. Lookups go through an
//! index on `jti` (unique when the collection allows it).
//!
//! A user logged out everywhere (`auth-api revoke-user`, or a password change) is one more entry of the same shape:
//! `{jti: "user:NAME", type: "user", user, revoked_before: <Date>, <EXPIRES_FIELD>: revoked_before + the longest
//! token lifetime}`. Every token of that user issued at or before `revoked_before` is refused; the entry expires
//! when the last such token has, and the cleaner sweeps it like any other. A token is checked against both entries
//! (its own `jti` and its user's) in one query on the `jti` index: revocation still costs one indexed lookup.

use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::error::Error as MongoError;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use super::tokens::Claims;
use jtc_shared::blacklist::{revoked_before_ms, user_entry_jti, EntrySchema, SEEN_FIELD};
use jtc_shared::mongo::{is_duplicate_key, is_index_conflict};
use jtc_shared::names::FieldPath;

/// The blacklist, as the auth API uses it.
#[derive(Clone)]
pub struct RevocationList {
    blacklist: Collection<Document>,
    schema: EntrySchema,
}

/// Which index `jti` lookups use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JtiIndex {
    /// `jti_unique`, made now or before.
    Unique,
    /// An index that already led with `jti` (made by another service); kept as it is.
    Existing(String),
    /// Duplicate `jti`s in the collection prevent a unique index; a plain one was made.
    NonUnique,
}

impl RevocationList {
    /// The list over `blacklist`, writing expiries into `expires_field`.
    pub fn new(blacklist: Collection<Document>, expires_field: &FieldPath) -> Self {
        Self { blacklist, schema: EntrySchema::new(expires_field.clone()) }
    }

    /// Makes sure `jti` lookups are indexed: a unique index if possible, else whatever already serves them.
    pub async fn ensure_index(&self) -> Result<JtiIndex, MongoError> {
        let unique = IndexModel::builder()
            .keys(doc! { "jti": 1 })
            .options(IndexOptions::builder().unique(true).name("jti_unique".to_string()).build())
            .build();
        let unique_error = match self.blacklist.create_index(unique).await {
            Ok(_) => return Ok(JtiIndex::Unique),
            Err(e) => e,
        };
        let mut indexes = self.blacklist.list_indexes().await?;
        while let Some(index) = indexes.try_next().await? {
            if index.keys.keys().next().map(String::as_str) == Some("jti") {
                let name = index.options.and_then(|o| o.name).unwrap_or_default();
                return Ok(JtiIndex::Existing(name));
            }
        }
        tracing::warn!("no unique index on jti ({unique_error}); making a plain one");
        let plain = IndexModel::builder().keys(doc! { "jti": 1 }).build();
        self.blacklist.create_index(plain).await.map(|_| JtiIndex::NonUnique)
    }

    /// Makes sure the expiry field is indexed, as the cleaner's `create-index` would: every sweep of this blacklist
    /// walks it by ranges of that field. An index already there (a TTL one included) is left as it is.
    pub async fn ensure_expiry_index(&self) -> Result<(), MongoError> {
        let index = IndexModel::builder().keys(doc! { &**self.schema.expires_field(): 1 }).build();
        match self.blacklist.create_index(index).await {
            Ok(_) => Ok(()),
            // An index on the field exists with other options (a TTL index): it serves the sweep as well.
            Err(e) if is_index_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Records `claims` as revoked, in one round trip; true when this call revoked it, false when it already was.
    /// Revoking twice is harmless: the first entry stays as it was.
    #[tracing::instrument(name = "revocation write", skip_all, fields(
        otel.kind = "client",
        db.system.name = "mongodb",
        db.operation.name = "update",
        db.namespace = %self.blacklist.namespace().db,
        db.collection.name = %self.blacklist.name(),
    ))]
    pub async fn revoke(&self, claims: &Claims) -> Result<bool, MongoError> {
        // A BSON Date holds any i64 of milliseconds: every `exp` we issue fits.
        let expires_at = DateTime::from_millis(claims.exp.saturating_mul(1000));
        // `jti` comes from the filter on insert; `_id` is the jti too, so that a change stream's delete event (which
        // names only the `_id`) says which revocation went (see `revocation_cache`).
        let mut entry = self.schema.token(claims.kind.as_str(), &claims.sub, expires_at, DateTime::now());
        entry.insert("_id", &claims.jti);
        match self.blacklist.update_one(doc! { "jti": &claims.jti }, doc! { "$setOnInsert": entry }).upsert(true).await
        {
            // Two upserts of one jti at once: the unique index lets one insert; the other's work is done.
            Err(e) if is_duplicate_key(&e) => Ok(false),
            other => other.map(|result| result.upserted_id.is_some()),
        }
    }

    /// True when the token of `claims` is revoked: by its own entry, or by its user's entry written at or after
    /// the second it was issued in (`iat` has whole seconds, so a token issued in the very second of the revocation
    /// is refused too: the safe side). One query on the `jti` index.
    #[tracing::instrument(name = "revocation lookup", skip_all, fields(
        otel.kind = "client",
        db.system.name = "mongodb",
        db.operation.name = "find",
        db.namespace = %self.blacklist.namespace().db,
        db.collection.name = %self.blacklist.name(),
    ))]
    pub async fn is_revoked(&self, claims: &Claims) -> Result<bool, MongoError> {
        let user_jti = user_entry_jti(&claims.sub);
        let filter = doc! { "jti": { "$in": [&claims.jti, &user_jti] } };
        let mut found =
            self.blacklist.find(filter).projection(doc! { "_id": 0, "jti": 1, "revoked_before": 1 }).await?;
        while let Some(entry) = found.try_next().await? {
            match entry.get_str("jti") {
                Ok(jti) if jti == claims.jti => return Ok(true),
                Ok(_) if claims.issued_by(revoked_before_ms(&entry)) => return Ok(true),
                Ok(_) | Err(_) => {}
            }
        }
        Ok(false)
    }

    /// Logs `user` out everywhere: every token of theirs issued until now is refused from now on (see the module
    /// doc). `longest_lifetime` is the longest a token lives (the refresh token's), so the entry outlives them all.
    /// Returns the instant tokens must be issued after.
    pub async fn revoke_user(&self, user: &str, longest_lifetime: Duration) -> Result<DateTime, MongoError> {
        let now = jtc_shared::mongo::server_time(self.blacklist.client()).await?;
        let lifetime_ms = i64::try_from(longest_lifetime.as_millis()).unwrap_or(i64::MAX);
        let expires_at = DateTime::from_millis(now.timestamp_millis().saturating_add(lifetime_ms));
        let set = self.schema.user_revocation(user, now, expires_at);
        // The stamp removed: a poller sees the change as it sees a new entry (jtc_shared::blacklist::SEEN_FIELD).
        let update = doc! {
            "$set": set,
            "$setOnInsert": { "created_at": now, "_id": user_entry_jti(user) },
            "$unset": { SEEN_FIELD: "" },
        };
        let filter = doc! { "jti": user_entry_jti(user) };
        match self.blacklist.update_one(filter.clone(), update.clone()).upsert(true).await {
            // Two revocations at once: one inserted; this one updates what it inserted.
            Err(e) if is_duplicate_key(&e) => self.blacklist.update_one(filter, update).await.map(|_| now),
            other => other.map(|_| now),
        }
    }
}
