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
//! - [`users`]: the users collection, [`users::Username`] (parsed once, at the boundary) and password hashing.
//! - [`revocation`]: the blacklist: revoke, look up, the `jti` index.
//! - [`rate_limit`]: fixed windows in Redis or memory, one scope per limited route with its own setting; [`client_ip`]: whose IP (peer or proxies' header).
//! - [`error`]: the error answers.
//! - [`server`]: state, router, CORS, TLS, start-up and shutdown; [`routes`]: one file per route.

pub mod client_ip;
pub mod config;
pub mod error;
pub mod rate_limit;
pub mod revocation;
pub mod routes;
pub mod server;
pub mod tokens;
pub mod users;
