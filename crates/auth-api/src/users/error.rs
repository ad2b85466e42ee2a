//! What can go wrong with users.

use mongodb::error::Error as MongoError;

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
