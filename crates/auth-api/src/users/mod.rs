//! Users: names and argon2id password hashes in MongoDB (`USERS_COLLECTION`, default `users`).
//!
//! Documents are `{username, password_hash, created_at, updated_at}`; `username` has a unique index. Hashing and
//! verifying run on the blocking pool (argon2 is deliberately slow, and takes 19 MiB each), at most two per core at
//! once, so a burst of logins queues instead of exhausting memory. A login for an unknown user still verifies a
//! password against a dummy hash, so the answer time does not tell which user names exist.
//!
//! One concept a file: [`error`], [`username`] (the Unicode policy), [`password`] (the length policy), [`hashing`]
//! (argon2id), and the MongoDB store here.

mod error;
mod hashing;
mod password;
mod username;

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{doc, DateTime, Document};
use mongodb::error::Error as MongoError;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use tokio::sync::Semaphore;

pub use error::UserError;
pub use hashing::{hash_password, verify_password};
pub use password::{check_new_password, check_password, DEFAULT_PASSWORD_MIN_LENGTH, MAX_PASSWORD_BYTES};
pub use username::{Username, MAX_USERNAME_BYTES};

use crate::password_memory::BlockPool;
use jtc_shared::mongo::is_duplicate_key;
use jtc_shared::Secret;

/// The users collection.
#[derive(Clone)]
pub struct UserStore {
    users: Collection<Document>,
    /// Verifications allowed at once.
    verifying: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that case costs as much as a wrong password.
    dummy_hash: String,
    /// argon2's memory, kept for `keep` after the last verification.
    memory: Arc<BlockPool>,
}

impl UserStore {
    /// The store over `users`, keeping argon2's memory `keep` after a verification; computes the dummy hash once.
    pub async fn new(users: Collection<Document>, keep: Duration) -> Result<Self, UserError> {
        let dummy = Secret::new(uuid::Uuid::new_v4().to_string());
        let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Ok(Self {
            users,
            verifying: Arc::new(Semaphore::new(2 * parallel)),
            dummy_hash: hash_password(dummy).await?,
            memory: BlockPool::new(keep),
        })
    }

    /// Creates the unique index on `username` (idempotent).
    pub async fn ensure_indexes(&self) -> Result<(), MongoError> {
        let index = IndexModel::builder()
            .keys(doc! { "username": 1 })
            .options(IndexOptions::builder().unique(true).name("username_unique".to_string()).build())
            .build();
        self.users.create_index(index).await.map(|_| ())
    }

    /// Adds `username` with `password` (at least `min_chars` characters), or with `update` changes the password
    /// of an existing user (stored under the canonical name, or under the name as typed before names were
    /// normalised).
    pub async fn add(
        &self,
        username: &Username,
        password: Secret,
        update: bool,
        min_chars: usize,
    ) -> Result<(), UserError> {
        check_new_password(password.expose(), min_chars)?;
        let username = match update {
            true => self.stored_name(username).await?.unwrap_or_else(|| username.as_str().to_string()),
            false => username.as_str().to_string(),
        };
        let username = username.as_str();
        let hash = hash_password(password).await?;
        // The database's clock: a password change draws a line in time for every token (see revoke-user).
        let now = jtc_shared::mongo::server_time(self.users.client()).await?;
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

    /// The name `username` is stored under: the canonical one, else (a user added before names were normalised)
    /// the one typed; `None` when neither exists.
    pub async fn stored_name(&self, username: &Username) -> Result<Option<String>, MongoError> {
        Ok(self.find(username).await?.and_then(|user| user.get_str("username").ok().map(str::to_string)))
    }

    async fn find(&self, username: &Username) -> Result<Option<Document>, MongoError> {
        let names = [username.as_str(), username.typed()];
        let mut found = self.users.find(doc! { "username": { "$in": names.to_vec() } }).await?;
        let mut typed = None;
        while let Some(user) = futures_util::TryStreamExt::try_next(&mut found).await? {
            if user.get_str("username").ok() == Some(username.as_str()) {
                return Ok(Some(user));
            }
            typed = Some(user);
        }
        Ok(typed)
    }

    /// The stored name of `username` when `password` is its password, still, once verified; `None` for a wrong
    /// pair. Unknown users cost one verification too.
    ///
    /// A login can wait for the verification semaphore while the password changes. So after verifying, the
    /// user's hash is read again and must be the one verified: a login that read the old hash is refused once the
    /// new one is stored. (Tokens it had issued before are older than the change: `/refresh` and the user's
    /// revocation entry refuse them.)
    pub async fn check_credentials(&self, username: &Username, password: Secret) -> Result<Option<String>, UserError> {
        let stored = self.find(username).await?;
        let hash = stored.as_ref().and_then(|d| d.get_str("password_hash").ok()).map(str::to_string);
        // The semaphore is never closed, so acquiring only waits.
        let permit = self.verifying.acquire().await.ok();
        let against = hash.clone().unwrap_or_else(|| self.dummy_hash.clone());
        let matches = verify_password(Arc::clone(&self.memory), password, against).await;
        drop(permit);
        let (Some(user), Some(hash), true) = (stored, hash, matches) else { return Ok(None) };
        let Ok(name) = user.get_str("username") else { return Ok(None) };
        let now =
            self.users.find_one(doc! { "username": name }).projection(doc! { "_id": 0, "password_hash": 1 }).await?;
        let still = now.as_ref().and_then(|d| d.get_str("password_hash").ok()) == Some(hash.as_str());
        if !still {
            tracing::warn!(security = "login_raced_password_change", username = ?name, "password changed during login");
            return Ok(None);
        }
        Ok(Some(name.to_string()))
    }
}
