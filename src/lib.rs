//! `jwt-token-cleaner`: sweeps expired JWT revocation entries out of a MongoDB blacklist, as an Alibaba Cloud
//! Function Compute custom-container function (`POST /invoke` on port 9000) or a one-shot command.
//!
//! # Layout
//!
//! Data flows one way: server → sweep → store.
//!
//! - [`config`]: settings from the environment (and `.env`), with secrets that never print.
//! - [`server`]: the FC protocol over HTTP: routes (one file each), invoke-body parsing, `x-fc-status`, request
//!   ids, start-up on any port and graceful shutdown.
//! - [`sweep`]: the algorithm (range-bounded batches, time budget, dry run) and its report, storage-agnostic.
//! - [`store`]: the [`store::BlacklistStore`] trait the sweep talks to, the shared query builders and the direct
//!   MongoDB backend.
//! - [`sample`]: a small, clearly labelled sample blacklist for local runs and benchmarks.
//!
//! What this crate shares with `auth-api` (secrets, configuration basics, the MongoDB connection, telemetry,
//! shutdown) is in `jtc-shared`; neither product imports the other.

pub mod config;
pub mod sample;
pub mod server;
pub mod store;
pub mod sweep;
