//! `jwt-token-cleaner`: sweeps expired JWT revocation entries out of a MongoDB blacklist, as an Alibaba Cloud
//! Function Compute custom-container function (`POST /invoke` on port 9000) or a one-shot command.
//!
//! # Layout
//!
//! Data flows one way: server → sweep → store.
//!
//! - [`config`]: settings from the environment (and `.env`), with secrets that never print.
//! - [`server`]: the FC protocol over HTTP: routes (one file each), the invoke body (`event`, read by the
//!   duplicate-refusing `strict_json`), the answers' envelopes (`envelope`), the one mapping of failures to
//!   statuses (`http_status`), `x-fc-status` and request ids (`fc`), start-up on any port and graceful shutdown.
//! - [`sweep`]: the algorithm (range-bounded batches in `window`s sized by `sizing`, time budget, dry run, gentle
//!   pacing that starts small, legacy entries), its running `tally` and its `report`, storage-agnostic.
//! - [`store`]: one trait per job (the sweep's [`store::SweepStore`], [`store::LegacyStore`], the
//!   [`store::RunHistory`]; [`store::Store`] is all three) and its one error type; the shared query
//!   builders (`filter`); one file or folder per backend: the direct MongoDB connection (`mongo`) and the
//!   DB-operation HTTP API (`http_api`: transport, contract probe, store); the factory that builds them
//!   (`backends`); and the wrappers a run goes through:
//!   the `fallback` chain (the API first, the direct connection when it fails) and the `deadline` that ends every
//!   call at the budget plus a margin.
//! - [`runner`]: one run from start to record, for `/invoke` and `sweep` alike: the alerts, the sweep through a
//!   fresh fallback chain, the history write, all within the run's deadline; and `status` beside it.
//! - [`history`]: the run record, as stored in `CLEANUP_HISTORY_COLLECTION` and read back (strictly).
//! - [`status`]: is the cleaner keeping up: the verdict on the history and the live backlog, as text, JSON or a
//!   chart.
//! - [`alerts`]: where a run says it started and how it ended (one trait, a file per kind: heartbeat,
//!   Pushgateway).
//! - [`sample`]: a small, clearly labelled sample blacklist for local runs and benchmarks.
//!
//! What this crate shares with `auth-api` (the blacklist entry's schema, secrets, configuration basics, the
//! MongoDB connection, telemetry, serving, shutdown, the handlers' state) is in `jtc-shared`; neither product
//! imports the other.
//!
//! # Extending it
//!
//! - **A storage backend**: a file (or folder) in `store/` implementing [`store::Backend`], [`store::SweepStore`],
//!   [`store::LegacyStore`] and [`store::RunHistory`], building its queries with `store::filter`; one line in
//!   `store::backends::Backends::from_settings`; its settings in `config` (the field, its parsing, the redacting
//!   `Debug` of `Settings`, `Settings::secret_values` for its secrets, the "at least one backend" rule in
//!   `Settings::from_lookup`); its variables in the README's table, `fc-config.json` and `s.yaml`.
//! - **A report field**: a field of `sweep::report::SweepReport`, its counter and one line in
//!   `sweep::tally::Tally::into_report`; the README's JSON section.
//! - **A setting**: a field in `config` (parsed there, once), a row in the README's configuration table and a name
//!   in `fc-config.json` (a test checks both).

pub mod alerts;
pub mod config;
pub mod history;
pub mod runner;
pub mod sample;
pub mod server;
pub mod status;
pub mod store;
pub mod sweep;
