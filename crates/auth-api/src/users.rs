//! Users: names and argon2id password hashes in MongoDB (`USERS_COLLECTION`, default `users`).
//!
//! Documents are `{username, password_hash, created_at, updated_at}`; `username` has a unique index. Hashing and
//! verifying run on the blocking pool (argon2 is deliberately slow, and takes 19 MiB each), at most two per core at
//! once, so a burst of logins queues instead of exhausting memory. A login for an unknown user still verifies a
//! password against a dummy hash, so the answer time does not tell which user names exist.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::error::Error as MongoError;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use tokio::sync::Semaphore;

use crate::password_memory::BlockPool;
use jtc_shared::mongo::is_duplicate_key;
use jtc_shared::Secret;

/// Longest accepted user name, in bytes.
pub const MAX_USERNAME_BYTES: usize = 128;
/// Longest accepted password, in bytes (argon2 takes any length; this bounds the work a request can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What can go wrong with users.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The user name is empty, too long, has control or format characters, or mixes scripts.
    #[error("invalid user name: {0}")]
    InvalidName(&'static str),
    /// The password is empty, too short for a new one, or too long.
    #[error("invalid password: {0}")]
    InvalidPassword(String),
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

/// A user name, checked once where it comes in (`/login`, `add-user`, `revoke-user`).
///
/// Lookalike names are one name, or no name: the text is NFKC-normalised (fullwidth `ａｌｉｃｅ` is `alice`) and
/// lower-cased (`Alice` is `alice`), so `revoke-user alice` covers every way of typing it, and logs show the one
/// canonical form. Names with control characters, format characters (zero-width spaces and joiners, bidi
/// overrides and isolates, soft hyphens, byte-order marks) or surrounding spaces are refused, and so are names
/// whose letters mix scripts (a Cyrillic `с` in a Latin `aliсe`): each script alone is fine. 1 to 128 bytes,
/// normalised.
///
/// Users added before names were normalised keep working: the name as typed is kept too, and a login looks up
/// both forms ([`UserStore::check_credentials`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username {
    canonical: String,
    typed: String,
}

impl Username {
    /// Parses a user name.
    pub fn parse(name: &str) -> Result<Self, UserError> {
        use unicode_normalization::UnicodeNormalization;
        if name.trim().is_empty() {
            return Err(UserError::InvalidName("it is empty"));
        }
        if name.chars().any(|c| c.is_control() || is_format(c)) {
            return Err(UserError::InvalidName("control, zero-width or bidi characters"));
        }
        if name.trim() != name {
            return Err(UserError::InvalidName("surrounding spaces"));
        }
        let canonical: String = name.nfkc().collect::<String>().to_lowercase();
        if canonical.len() > MAX_USERNAME_BYTES || name.len() > MAX_USERNAME_BYTES {
            return Err(UserError::InvalidName("it is longer than 128 bytes"));
        }
        if canonical.chars().any(|c| c.is_control() || is_format(c)) || canonical.trim() != canonical {
            return Err(UserError::InvalidName("control, zero-width or bidi characters"));
        }
        if mixes_scripts(&canonical) {
            return Err(UserError::InvalidName("its letters mix scripts (a lookalike of another name)"));
        }
        Ok(Self { canonical, typed: name.to_string() })
    }

    /// The canonical name: what new users are stored under, what logs and rate limits use.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The name exactly as it was typed (for users stored before names were normalised).
    pub fn typed(&self) -> &str {
        &self.typed
    }
}

/// Unicode's format characters (general category Cf) that can hide in a name: soft hyphen, Arabic and Syriac
/// marks, the Mongolian vowel separator, zero-width space, joiners and direction marks, bidi embeddings,
/// overrides and isolates, invisible operators, the byte-order mark, interlinear annotation and tags.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// True when the letters of `name` belong to more than one script (Common and Inherited characters, such as
/// digits, punctuation and combining marks, belong to any).
fn mixes_scripts(name: &str) -> bool {
    use unicode_script::{Script, UnicodeScript};
    let mut seen: Option<Script> = None;
    for script in name.chars().map(|c| c.script()) {
        if matches!(script, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        match seen {
            None => seen = Some(script),
            Some(first) if first != script => return true,
            Some(_) => {}
        }
    }
    false
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// The shortest password `add-user` accepts by default, in characters: NIST SP 800-63B and OWASP's
/// authentication cheat sheet ask for at least 8 and recommend longer; 12 (`PASSWORD_MIN_LENGTH`).
pub const DEFAULT_PASSWORD_MIN_LENGTH: usize = 12;

/// Checks a password's length at login: 1 to 1024 bytes (existing passwords shorter than the minimum keep
/// working; the minimum applies when a password is set, [`check_new_password`]).
pub fn check_password(password: &str) -> Result<(), UserError> {
    match password.len() {
        0 => Err(UserError::InvalidPassword("it is empty".into())),
        n if n > MAX_PASSWORD_BYTES => Err(UserError::InvalidPassword("it is longer than 1024 bytes".into())),
        _ => Ok(()),
    }
}

/// Checks a new password: at least `min_chars` characters, at most 1024 bytes.
pub fn check_new_password(password: &str, min_chars: usize) -> Result<(), UserError> {
    check_password(password)?;
    let chars = password.chars().count();
    if chars < min_chars {
        return Err(UserError::InvalidPassword(format!(
            "it has {chars} characters; at least {min_chars} are required (PASSWORD_MIN_LENGTH)"
        )));
    }
    Ok(())
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

/// True when `password` matches the PHC `hash`; false for a wrong password or an unreadable hash. argon2's
/// memory comes from `memory`.
pub async fn verify_password(memory: Arc<BlockPool>, password: Secret, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).map(|parsed| memory.verify(password.expose().as_bytes(), &parsed)).unwrap_or(false)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash_password(Secret::new("correct horse")).await.unwrap();
        let b = hash_password(Secret::new("correct horse")).await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        let memory = BlockPool::new(Duration::from_secs(1));
        assert!(verify_password(Arc::clone(&memory), Secret::new("correct horse"), a.clone()).await);
        assert!(!verify_password(Arc::clone(&memory), Secret::new("correct horse!"), a).await);
        assert!(!verify_password(memory, Secret::new("x"), "not a hash".into()).await);
    }

    #[test]
    fn names_and_passwords() {
        assert_eq!(Username::parse("alice").unwrap().as_str(), "alice");
        assert!(Username::parse("").is_err());
        assert!(Username::parse(" alice").is_err());
        assert!(Username::parse("al\nice").is_err());
        assert!(Username::parse(&"a".repeat(129)).is_err());
        assert!(check_password("p").is_ok(), "an existing short password still logs in");
        assert!(check_password("").is_err());
        assert!(check_password(&"p".repeat(1025)).is_err());
        assert!(check_new_password("short-pw", 12).is_err());
        assert!(check_new_password("twelve chars", 12).is_ok());
        assert!(check_new_password("ｐａｓｓｗｏｒｄ１２", 12).is_err(), "characters, not bytes");
    }

    #[test]
    fn lookalike_names_are_one_name_or_none() {
        for same in ["Alice", "ALICE", "ａｌｉｃｅ", "Ａｌｉｃｅ"] {
            assert_eq!(Username::parse(same).unwrap().as_str(), "alice", "{same}");
        }
        assert_eq!(Username::parse("Alice").unwrap().typed(), "Alice");
        // A Cyrillic с (U+0441) among Latin letters.
        assert!(Username::parse("ali\u{0441}e").is_err());
        for hidden in
            ["al\u{200B}ice", "alice\u{202E}", "\u{2066}alice", "al\u{00AD}ice", "\u{FEFF}alice", "al\u{200D}ice"]
        {
            assert!(Username::parse(hidden).is_err(), "{hidden:?}");
        }
        // One script at a time is fine, digits and punctuation go with any.
        for fine in ["алиса", "josé", "李雷", "bob_2", "o'brien"] {
            assert!(Username::parse(fine).is_ok(), "{fine}");
        }
    }
}
