//! The blacklist entry: the one schema both products agree on, written down once.
//!
//! auth-api writes entries on logout and on `revoke-user`; the cleaner deletes them once provably expired, and
//! seeds samples of them. Every entry carries its expiry in the configured field (`EXPIRES_FIELD`, default
//! `expires_at`): that field, never a hard-coded name, is what the sweep walks. Two shapes:
//! - a revoked token: `{jti, type: "access" | "refresh", user, created_at, updated_at, <field>: <the token's exp,
//!   a Date>}`;
//! - a user logged out everywhere: `{jti: "user:NAME", type: "user", user, revoked_before, created_at, updated_at,
//!   <field>: revoked_before + the longest token lifetime}`. Token `jti`s are UUIDs: they never look like this.
//!
//! auth-api also writes the jti as `_id` (a change stream's delete event names only the `_id`). On a server without
//! change streams, auth-api's poller stamps every entry it finds without [`SEEN_FIELD`] with the database's clock,
//! and polls by that stamp: whatever fields the writer set and whatever its clock. A writer that changes an entry
//! (auth-api's `revoke-user`) removes the stamp, so the change is seen like a new entry.

use mongodb::bson::{doc, Bson, DateTime, Document};

use crate::names::FieldPath;

/// The field auth-api's poller stamps, with the database's clock (`$currentDate`), on entries it has not seen.
pub const SEEN_FIELD: &str = "revocation_seen_at";

/// The `jti` of a user's "every token issued until" entry.
pub fn user_entry_jti(user: &str) -> String {
    format!("user:{user}")
}

/// The user a `user:NAME` entry's jti names; `None` for a token's jti.
pub fn user_of_entry_jti(jti: &str) -> Option<&str> {
    jti.strip_prefix("user:")
}

/// A user entry's `revoked_before`, in milliseconds since the epoch; an entry without a readable one revokes
/// everything (`i64::MAX`): fail closed.
pub fn revoked_before_ms(entry: &Document) -> i64 {
    entry.get_datetime("revoked_before").map(|d| d.timestamp_millis()).unwrap_or(i64::MAX)
}

/// Builds entries with the expiry in one configured field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySchema {
    expires_field: FieldPath,
}

impl EntrySchema {
    /// Entries whose expiry lives in `expires_field`.
    pub fn new(expires_field: FieldPath) -> Self {
        Self { expires_field }
    }

    /// The expiry field.
    pub fn expires_field(&self) -> &FieldPath {
        &self.expires_field
    }

    /// A revoked token's entry, without its `jti` (an upsert takes it from the filter): `kind` is `access` or
    /// `refresh`, `expires_at` the token's `exp`.
    pub fn token(&self, kind: &str, user: &str, expires_at: DateTime, created_at: DateTime) -> Document {
        let mut entry = doc! { "type": kind, "user": user, "created_at": created_at, "updated_at": created_at };
        self.set_expiry(&mut entry, expires_at);
        entry
    }

    /// The fields a user's "every token issued until `revoked_before`" entry sets, expiring at `expires_at`
    /// (`created_at` is set on insert only; the `jti` is [`user_entry_jti`]).
    pub fn user_revocation(&self, user: &str, revoked_before: DateTime, expires_at: DateTime) -> Document {
        let mut entry =
            doc! { "type": "user", "user": user, "revoked_before": revoked_before, "updated_at": revoked_before };
        self.set_expiry(&mut entry, expires_at);
        entry
    }

    /// Writes the expiry, in any BSON form (a Date, or seconds for `exp`-style entries), into the configured field
    /// of `entry`: a dotted path becomes nested documents, as MongoDB reads it.
    pub fn set_expiry(&self, entry: &mut Document, expires: impl Into<Bson>) {
        let mut parts: Vec<&str> = self.expires_field.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut target = entry;
        for part in parts {
            if !matches!(target.get(part), Some(Bson::Document(_))) {
                target.insert(part, Document::new());
            }
            target = match target.get_mut(part) {
                Some(Bson::Document(inner)) => inner,
                _ => unreachable!("inserted just above"),
            };
        }
        target.insert(last, expires.into());
    }
}

/// The expiry at the dotted `field` of `entry`, in milliseconds since the epoch: a Date as it is, a number as
/// seconds (rounded up, so that an entry is never taken for expired early); `None` for any other value or none.
pub fn expiry_ms(entry: &Document, field: &str) -> Option<i64> {
    let mut current = entry;
    let mut parts = field.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return match current.get(part)? {
                Bson::DateTime(date) => Some(date.timestamp_millis()),
                Bson::Int32(seconds) => Some(i64::from(*seconds) * 1000),
                Bson::Int64(seconds) => Some(seconds.saturating_mul(1000)),
                Bson::Double(seconds) if seconds.is_finite() => Some((seconds * 1000.0).ceil() as i64),
                _ => None,
            };
        }
        current = current.get_document(part).ok()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(field: &str) -> EntrySchema {
        EntrySchema::new(FieldPath::parse("EXPIRES_FIELD", field).expect("field"))
    }

    #[test]
    fn the_expiry_goes_into_the_configured_field() {
        let at = DateTime::from_millis(1_000);
        let entry = schema("exp").token("access", "alice", at, at);
        assert_eq!(entry.get_datetime("exp").ok(), Some(&at));
        assert!(!entry.contains_key("expires_at"));
        let entry = schema("meta.expires").user_revocation("bob", at, at);
        assert_eq!(entry.get_document("meta").and_then(|m| m.get_datetime("expires")).ok(), Some(&at));
        assert_eq!(entry.get_str("type").ok(), Some("user"));
        let mut numeric = doc! { "jti": "x" };
        schema("expires_at").set_expiry(&mut numeric, 1_700_000_000_i64);
        assert_eq!(numeric.get_i64("expires_at").ok(), Some(1_700_000_000));
        assert_eq!(user_entry_jti("carol"), "user:carol");
        assert_eq!(user_of_entry_jti("user:carol"), Some("carol"));
        assert_eq!(user_of_entry_jti("0b6f5f3e-6d3a-4e0b-9d8a-3c1f2f0a9e11"), None);
        assert_eq!(revoked_before_ms(&doc! { "revoked_before": at }), 1000);
        assert_eq!(revoked_before_ms(&doc! {}), i64::MAX);
        assert_eq!(expiry_ms(&doc! { "meta": { "exp": 1.5 } }, "meta.exp"), Some(1500));
        assert_eq!(expiry_ms(&doc! { "exp": at }, "exp"), Some(1000));
        assert_eq!(expiry_ms(&doc! { "exp": "soon" }, "exp"), None);
        assert_eq!(expiry_ms(&doc! {}, "a.b"), None);
    }
}
