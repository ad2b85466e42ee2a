//! `jtc-shared`: what the cleaner (`jwt-token-cleaner`) and `auth-api` really share, and nothing else.
//!
//! # Layout
//!
//! - [`blacklist`]: the blacklist entry's schema (a revoked token, a user logged out everywhere), with its expiry
//!   in the configured field: auth-api writes it, the cleaner sweeps and seeds it.
//! - [`secret`]: [`Secret`], a value whose `Debug` never shows it.
//! - [`config`]: configuration errors that name the variable, `.env` loading, numbers and names, the direct MongoDB
//!   settings (`DB_*`) and the JWT algorithm, read the same way by both products.
//! - [`config_error`]: [`config_error::ConfigError`], a setting that is missing or unusable, naming the variable.
//! - [`names`]: database and collection names and field paths, checked once and carried as types.
//! - [`mongo`]: the MongoDB client both open, and driver errors as messages without secrets.
//! - [`redact`]: scrubbing secrets out of someone else's text (a driver error, an API's error body).
//! - [`telemetry`]: logging to stderr, text or JSON lines, filtered by `RUST_LOG`.
//! - [`traces`]: OpenTelemetry spans over OTLP/HTTP, the caller's trace continued, and `traceparent` carried on.
//! - [`body_deadline`]: one deadline for a whole request body, however its bytes are spaced.
//! - [`serve`]: HTTP/1.1 with a connection cap and header, idle and body deadlines, for both servers.
//! - [`shutdown`]: SIGTERM and SIGINT, for a graceful stop.
//! - [`state`]: `AppState<Shared>`, the handlers' shared state.
//!
//! Neither product imports the other; a piece moves here only when both use it.

pub mod blacklist;
pub mod body_deadline;
pub mod config;
pub mod config_error;
pub mod mongo;
pub mod names;
pub mod redact;
pub mod secret;
pub mod serve;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod traces;

pub use secret::Secret;
