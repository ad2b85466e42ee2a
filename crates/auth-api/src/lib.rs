//! `auth-api`: the service that writes the blacklist. Login with user names and argon2 hashes in MongoDB, short
//! access tokens and long refresh tokens (HMAC JWTs), revocation on logout into the collection the cleaner sweeps,
//! rate limits per client IP (Redis or memory), CORS for listed origins, HTTPS with rustls.
//!
//! # Layout
//!
//! Requests flow one way: server → routes → (tokens, users, revocation, rate limits) → MongoDB / Redis. What it
//! shares with the cleaner (secrets, configuration basics, the MongoDB connection, telemetry, shutdown) comes from
//! `jtc-shared`; it never imports the cleaner.
//!
//! - [`config`]: its settings (shares `DB_*`, `BLACKLIST_COLLECTION`, `EXPIRES_FIELD`, `JWT_*` with the cleaner).
//! - [`tokens`]: issuing and checking tokens (one algorithm, expiry to the millisecond).
//! - [`users`]: the users collection, [`users::Username`] (parsed once, at the boundary) and password hashing;
//!   [`password_memory`]: argon2's memory, reused between verifications and given back after a burst.
//! - [`revocation`]: the blacklist: revoke, look up, the `jti` index (entries built by `jtc_shared::blacklist`).
//! - [`revocation_cache`]: the revocations in memory, kept current by a change stream (or polling), with a stated
//!   staleness bound; UUID tokens in one ordered table in memory of its own (`revocation_cache::uuid_table`).
//! - [`rate_limit`]: fixed windows in Redis or memory (one `Counter` trait, a file each), one scope per limited
//!   route with its own setting; [`client_ip`]: whose IP (peer or proxies' header).
//! - [`cookies`]: tokens in HttpOnly cookies with double-submit CSRF values (Flask-JWT-Extended's scheme).
//! - [`error`]: the error answers.
//! - [`state`]: what every route shares; [`authentication`]: the extractors a route names to need a token
//!   (`Authenticated<Access>`, `Authenticated<Refresh>`, `Verified<Access>`), bearer or cookie with CSRF, and the
//!   revocation policy.
//! - [`router`]: the routes with the per-client rate-limit layer and the body cap; [`cors`]: CORS for the listed
//!   origins; [`routes`]: one file per route.
//! - [`server`]: start-up (stores, indexes, the revocation set, the port) and shutdown; [`tls`]: HTTPS with
//!   rustls.
//!
//! # Extending it
//!
//! - **A rate-limited route** (walked once for real on a scratch branch): its file in `routes/` (it names the
//!   token it needs in its signature: `authentication::Authenticated<Access>`, say) and `pub mod` in
//!   `routes/mod.rs`; one row `(path, Scope, handler)` in `router::router`; a `Scope` variant in
//!   `rate_limit::scope` (the compiler then asks for its index, name, variable and default there, and for its
//!   field in `rate_limit::limit::Limits`; a unit test asks for its place in `Scope::ALL`); its rows in the
//!   routes and rate-limit tables of docs/auth-api.md (a test checks the latter); its variable raised in the suite's settings
//!   (`tests/auth/support.rs`), or the suite's own requests meet the default limit.

pub mod authentication;
pub mod client_ip;
pub mod config;
pub mod cookies;
pub mod cors;
pub mod error;
pub mod password_memory;
pub mod rate_limit;
pub mod revocation;
pub mod revocation_cache;
pub mod router;
pub mod routes;
pub mod server;
pub mod state;
pub mod tls;
pub mod tokens;
pub mod users;
