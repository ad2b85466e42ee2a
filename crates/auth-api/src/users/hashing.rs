//! argon2id hashing and verification, on the blocking pool (argon2 is deliberately slow, and takes 19 MiB each).

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use jtc_shared::Secret;

use super::UserError;
use crate::password_memory::BlockPool;

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
#[tracing::instrument(name = "password check", skip_all)]
pub async fn verify_password(memory: Arc<BlockPool>, password: Secret, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).map(|parsed| memory.verify(password.expose().as_bytes(), &parsed)).unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
}
