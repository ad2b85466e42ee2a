//! Users: names and argon2id password hashes in MongoDB (`USERS_COLLECTION`, default `users`).
//!
//! Documents are `{username, password_hash, created_at, updated_at}`; `username` has a unique index. Hashing and
//! verifying run on the blocking pool (argon2 is deliberately slow, and takes 19 MiB each), at most two per core at
//! once, so a burst of logins queues instead of exhausting memory. A login for an unknown user still verifies a
//! password against a dummy hash, so the answer time does not tell which user names exist.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::Arc;

use argon2::Argon2;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::error::Error as MongoError;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use tokio::sync::Semaphore;

use jtc_shared::mongo::is_duplicate_key;
use jtc_shared::Secret;

/// Longest accepted user name, in bytes.
pub const MAX_USERNAME_BYTES: usize = 128;
/// Longest accepted password, in bytes (argon2 takes any length; this bounds the work a request can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What can go wrong with users.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The user name is empty, too long or has control characters.
    #[error("invalid user name: {0}")]
    InvalidName(&'static str),
    /// The password is empty or too long.
    #[error("invalid password: {0}")]
    InvalidPassword(&'static str),
    /// `add-user` for a name that exists (without `--update`).
    #[error("user {0:?} already exists (use --update to change the password)")]
    Exists(String),
    /// `add-user --update` for a name that does not exist.
    #[error("user {0:?} does not exist")]
    NotFound(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] MongoError),
    /// Hashing failed (not expected with valid parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// A user name, checked once where it comes in (`/login`, `add-user`): 1 to 128 bytes, no control characters, no
/// leading or trailing space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses a user name.
    pub fn parse(name: &str) -> Result<Self, UserError> {
        if name.is_empty() {
            return Err(UserError::InvalidName("it is empty"));
        }
        if name.len() > MAX_USERNAME_BYTES {
            return Err(UserError::InvalidName("it is longer than 128 bytes"));
        }
        if name.chars().any(char::is_control) || name.trim() != name {
            return Err(UserError::InvalidName("control characters or surrounding spaces"));
        }
        Ok(Self(name.to_string()))
    }

    /// The name itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a password's length: 1 to 1024 bytes.
pub fn check_password(password: &str) -> Result<(), UserError> {
    match password.len() {
        0 => Err(UserError::InvalidPassword("it is empty")),
        n if n > MAX_PASSWORD_BYTES => Err(UserError::InvalidPassword("it is longer than 1024 bytes")),
        _ => Ok(()),
    }
}

/// An argon2id hash of `password` (PHC string), computed on the blocking pool.
pub async fn hash_password(password: Secret) -> Result<String, UserError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| UserError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| UserError::Hash(e.to_string()))?
}

/// True when `password` matches the PHC `hash`; false for a wrong password or an unreadable hash.
pub async fn verify_password(password: Secret, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| Argon2::default().verify_password(password.expose().as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// The users collection.
#[derive(Clone)]
pub struct UserStore {
    users: Collection<Document>,
    /// Verifications allowed at once.
    verifying: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that case costs as much as a wrong password.
    dummy_hash: String,
}

impl UserStore {
    /// The store over `users`; computes the dummy hash once.
    pub async fn new(users: Collection<Document>) -> Result<Self, UserError> {
        let dummy = Secret::new(uuid::Uuid::new_v4().to_string());
        let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Ok(Self { users, verifying: Arc::new(Semaphore::new(2 * parallel)), dummy_hash: hash_password(dummy).await? })
    }

    /// Creates the unique index on `username` (idempotent).
    pub async fn ensure_indexes(&self) -> Result<(), MongoError> {
        let index = IndexModel::builder()
            .keys(doc! { "username": 1 })
            .options(IndexOptions::builder().unique(true).name("username_unique".to_string()).build())
            .build();
        self.users.create_index(index).await.map(|_| ())
    }

    /// Adds `username` with `password`, or with `update` changes the password of an existing user.
    pub async fn add(&self, username: &Username, password: Secret, update: bool) -> Result<(), UserError> {
        let username = username.as_str();
        check_password(password.expose())?;
        let hash = hash_password(password).await?;
        let now = DateTime::now();
        if update {
            let result = self
                .users
                .update_one(
                    doc! { "username": username },
                    doc! { "$set": { "password_hash": hash, "updated_at": now, "password_changed_at": now } },
                )
                .await?;
            if result.matched_count == 0 {
                return Err(UserError::NotFound(username.to_string()));
            }
            return Ok(());
        }
        let user = doc! { "username": username, "password_hash": hash, "created_at": now, "updated_at": now };
        match self.users.insert_one(user).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(UserError::Exists(username.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `username` exists, and when its password last changed (`None` if never, since it was added).
    pub async fn password_changed(&self, username: &str) -> Result<Option<Option<DateTime>>, MongoError> {
        let user = self
            .users
            .find_one(doc! { "username": username })
            .projection(doc! { "_id": 0, "password_changed_at": 1 })
            .await?;
        Ok(user.map(|u| u.get_datetime("password_changed_at").ok().copied()))
    }

    /// True when `username` exists and `password` is its password. Unknown users cost one verification too.
    pub async fn check_credentials(&self, username: &Username, password: Secret) -> Result<bool, UserError> {
        let stored = self.users.find_one(doc! { "username": username.as_str() }).await?;
        let hash = stored.as_ref().and_then(|d| d.get_str("password_hash").ok()).map(str::to_string);
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.verifying.acquire().await.ok();
        let known = hash.is_some();
        let matches = verify_password(password, hash.unwrap_or_else(|| self.dummy_hash.clone())).await;
        Ok(matches && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash_password(Secret::new("correct horse")).await.unwrap();
        let b = hash_password(Secret::new("correct horse")).await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password(Secret::new("correct horse"), a.clone()).await);
        assert!(!verify_password(Secret::new("correct horse!"), a).await);
        assert!(!verify_password(Secret::new("x"), "not a hash".into()).await);
    }

    #[test]
    fn names_and_passwords() {
        assert_eq!(Username::parse("alice").unwrap().as_str(), "alice");
        assert!(Username::parse("").is_err());
        assert!(Username::parse(" alice").is_err());
        assert!(Username::parse("al\nice").is_err());
        assert!(Username::parse(&"a".repeat(129)).is_err());
        assert!(check_password("p").is_ok());
        assert!(check_password("").is_err());
        assert!(check_password(&"p".repeat(1025)).is_err());
    }
}
