//! The one error of reading settings, in a module of its own: the settings (`config`) and the names they parse
//! (`names`) both return it, and neither imports the other for it.

/// A setting that is missing or cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{0} is not set: {1}")]
    Missing(&'static str, &'static str),
    /// A variable is set to something unusable.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why, without echoing secret values.
        reason: String,
    },
}
