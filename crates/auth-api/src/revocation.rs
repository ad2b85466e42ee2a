//! Revocation: the blacklist collection the cleaner sweeps.
//!
//! A revoked token is one document `{jti, <EXPIRES_FIELD>: <the token's exp as a Date>, type, user, created_at}`:
//! exactly what the cleaner needs to delete it once the token has expired, and no sooner. Lookups go through an
//! index on `jti` (unique when the collection allows it).

use futures_util::TryStreamExt;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::error::Error as MongoError;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use super::tokens::Claims;
use jtc_shared::mongo::is_duplicate_key;

/// The blacklist, as the auth API uses it.
#[derive(Clone)]
pub struct RevocationList {
    blacklist: Collection<Document>,
    expires_field: String,
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
    pub fn new(blacklist: Collection<Document>, expires_field: &str) -> Self {
        Self { blacklist, expires_field: expires_field.to_string() }
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

    /// Records `claims` as revoked, in one round trip; true when this call revoked it, false when it already was.
    /// Revoking twice is harmless: the first entry stays as it was.
    pub async fn revoke(&self, claims: &Claims) -> Result<bool, MongoError> {
        // A BSON Date holds any i64 of milliseconds: every `exp` we issue fits.
        let expires_at = DateTime::from_millis(claims.exp.saturating_mul(1000));
        // `jti` comes from the filter on insert.
        let mut entry = doc! {
            "type": claims.kind.as_str(),
            "user": &claims.sub,
            "created_at": DateTime::now(),
        };
        entry.insert(self.expires_field.clone(), expires_at);
        match self.blacklist.update_one(doc! { "jti": &claims.jti }, doc! { "$setOnInsert": entry }).upsert(true).await
        {
            // Two upserts of one jti at once: the unique index lets one insert; the other's work is done.
            Err(e) if is_duplicate_key(&e) => Ok(false),
            other => other.map(|result| result.upserted_id.is_some()),
        }
    }

    /// True when `jti` is in the blacklist.
    pub async fn is_revoked(&self, jti: &str) -> Result<bool, MongoError> {
        let found = self.blacklist.find_one(doc! { "jti": jti }).projection(doc! { "_id": 1 }).await?;
        Ok(found.is_some())
    }
}
