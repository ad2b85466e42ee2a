//! The set itself: every unexpired revocation of the blacklist, in as little memory as it can be.
//!
//! A token `jti` that is a UUID (every auth-api and Flask-JWT-Extended token's) is kept as its 128 bits with a
//! 32-bit expiry, 20 bytes in one ordered table ([`super::uuid_table`]), not as a 36-byte string with its own
//! allocation; any other `jti` (rare) as a boxed string. A user entry keeps its `revoked_before`. Each keeps its
//! expiry, so that entries leave the set when they can no longer matter: a token is dead by its own `exp`, which is
//! never later than its entry's expiry.

use std::collections::HashMap;

use mongodb::bson::{Bson, Document};

use super::uuid_table::UuidTable;
use crate::tokens::Claims;
use jtc_shared::blacklist::{expiry_ms, revoked_before_ms, user_of_entry_jti};

/// One blacklist entry, as the set keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A revoked token, until `expires_ms`.
    Token {
        /// Its `jti`.
        jti: String,
        /// When it can no longer matter (`i64::MAX` when the entry has no readable expiry: kept).
        expires_ms: i64,
    },
    /// Every token of `user` issued at or before `revoked_before_ms` is revoked, until `expires_ms`.
    User {
        /// The user name.
        user: String,
        /// The revocation instant (`i64::MAX` when unreadable: everything is revoked, fail closed).
        revoked_before_ms: i64,
        /// When it can no longer matter.
        expires_ms: i64,
    },
}

impl Entry {
    /// Reads a blacklist document; `Err` says why it is skipped (no `jti`, or not a string).
    pub fn from_document(doc: &Document, expires_field: &str) -> Result<Self, String> {
        let jti = match doc.get("jti") {
            Some(Bson::String(jti)) if !jti.is_empty() => jti,
            Some(other) => return Err(format!("jti is not a string but {:?}", other.element_type())),
            None => return Err("no jti".into()),
        };
        let expires_ms = expiry_ms(doc, expires_field).unwrap_or(i64::MAX);
        match user_of_entry_jti(jti) {
            Some(user) => {
                Ok(Entry::User { user: user.to_string(), revoked_before_ms: revoked_before_ms(doc), expires_ms })
            }
            None => Ok(Entry::Token { jti: jti.clone(), expires_ms }),
        }
    }
}

/// The bits of a UUID `jti` in its canonical spelling (36 characters, lower case, hyphenated): another spelling of
/// the same UUID is another jti to the database. Checked on the bytes, as every revocation check passes here.
fn uuid_key(jti: &str) -> Option<u128> {
    if jti.len() != 36 || jti.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some(uuid::Uuid::try_parse(jti).ok()?.as_u128())
}

/// The revocations in force.
#[derive(Debug, Default)]
pub struct RevokedSet {
    uuids: UuidTable,
    others: HashMap<Box<str>, i64>,
    users: HashMap<Box<str>, (i64, i64)>,
}

impl RevokedSet {
    /// Adds (or updates) `entry`, unless it has expired by `now_ms`.
    pub fn insert(&mut self, entry: Entry, now_ms: i64) {
        match entry {
            Entry::Token { expires_ms, .. } | Entry::User { expires_ms, .. } if expires_ms <= now_ms => {}
            Entry::Token { jti, expires_ms } => match uuid_key(&jti) {
                Some(key) => self.uuids.insert(key, expires_ms),
                None => {
                    self.others.insert(jti.into(), expires_ms);
                }
            },
            Entry::User { user, revoked_before_ms, expires_ms } => {
                self.users.insert(user.into(), (revoked_before_ms, expires_ms));
            }
        }
    }

    /// Removes what `jti` names (a token's entry, or `user:NAME`).
    pub fn remove(&mut self, jti: &str) {
        match (user_of_entry_jti(jti), uuid_key(jti)) {
            (Some(user), _) => {
                self.users.remove(user);
            }
            (None, Some(key)) => {
                self.uuids.remove(key);
            }
            (None, None) => {
                self.others.remove(jti);
            }
        }
    }

    /// True when the token of `claims` is revoked: by its own entry, or by its user's entry written at or after
    /// the second it was issued in (as `RevocationList::is_revoked` decides it from the database).
    pub fn is_revoked(&self, claims: &Claims) -> bool {
        let token = match uuid_key(&claims.jti) {
            Some(key) => self.uuids.contains(key),
            None => self.others.contains_key(claims.jti.as_str()),
        };
        if token {
            return true;
        }
        self.users.get(claims.sub.as_str()).is_some_and(|(before, _)| claims.issued_by(*before))
    }

    /// Drops every entry expired by `now_ms`; returns how many.
    pub fn evict_expired(&mut self, now_ms: i64) -> usize {
        let before = self.len();
        self.uuids.evict_expired(now_ms);
        self.others.retain(|_, expires| *expires > now_ms);
        self.users.retain(|_, (_, expires)| *expires > now_ms);
        before - self.len()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.uuids.len() + self.others.len() + self.users.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TokenKind;
    use mongodb::bson::{doc, DateTime};

    fn claims(sub: &str, jti: &str, iat: i64) -> Claims {
        Claims {
            sub: sub.into(),
            jti: jti.into(),
            kind: TokenKind::Access,
            iat,
            nbf: iat,
            exp: iat + 60,
            fresh: false,
            csrf: None,
            rjti: None,
        }
    }

    #[test]
    fn tokens_and_users_as_the_database_decides() {
        let mut set = RevokedSet::default();
        let uuid = "0b6f5f3e-6d3a-4e0b-9d8a-3c1f2f0a9e11";
        set.insert(Entry::Token { jti: uuid.into(), expires_ms: 10_000 }, 0);
        set.insert(Entry::Token { jti: "not-a-uuid".into(), expires_ms: 10_000 }, 0);
        set.insert(Entry::User { user: "bob".into(), revoked_before_ms: 5_000, expires_ms: 10_000 }, 0);
        assert!(set.is_revoked(&claims("alice", uuid, 1)));
        assert!(set.is_revoked(&claims("alice", "not-a-uuid", 1)));
        assert!(!set.is_revoked(&claims("alice", "0b6f5f3e-6d3a-4e0b-9d8a-3c1f2f0a9e12", 1)));
        assert!(set.is_revoked(&claims("bob", "x", 5)), "issued in the second of the revocation");
        assert!(!set.is_revoked(&claims("bob", "x", 6)), "issued after it");
        set.remove("user:bob");
        assert!(!set.is_revoked(&claims("bob", "x", 5)));
        assert_eq!(set.evict_expired(10_000), 2);
        assert!(set.is_empty());
        // Another spelling of a UUID is another jti, as in the database.
        let upper = uuid.to_ascii_uppercase();
        set.insert(Entry::Token { jti: upper.clone(), expires_ms: 10_000 }, 0);
        assert!(set.is_revoked(&claims("alice", &upper, 1)));
        assert!(!set.is_revoked(&claims("alice", uuid, 1)));
        set.remove(&upper);
        set.insert(Entry::Token { jti: uuid.into(), expires_ms: 5 }, 10);
        assert!(set.is_empty(), "already expired: never added");
    }

    #[test]
    fn documents_are_read_leniently_and_malformed_ones_say_why() {
        let at = DateTime::from_millis(7_000);
        let entry = Entry::from_document(&doc! { "jti": "j", "expires_at": at }, "expires_at").unwrap();
        assert_eq!(entry, Entry::Token { jti: "j".into(), expires_ms: 7_000 });
        let entry = Entry::from_document(&doc! { "jti": "j", "meta": { "exp": 7_i64 } }, "meta.exp").unwrap();
        assert_eq!(entry, Entry::Token { jti: "j".into(), expires_ms: 7_000 });
        let user = Entry::from_document(&doc! { "jti": "user:bob", "revoked_before": at }, "expires_at").unwrap();
        assert_eq!(user, Entry::User { user: "bob".into(), revoked_before_ms: 7_000, expires_ms: i64::MAX });
        let no_date = Entry::from_document(&doc! { "jti": "user:bob" }, "expires_at").unwrap();
        assert!(matches!(no_date, Entry::User { revoked_before_ms: i64::MAX, .. }), "fail closed");
        assert!(Entry::from_document(&doc! { "token": "x" }, "expires_at").unwrap_err().contains("no jti"));
        assert!(Entry::from_document(&doc! { "jti": 5 }, "expires_at").unwrap_err().contains("not a string"));
    }
}
