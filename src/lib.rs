//! `jwt-token-cleaner`: sweeps expired JWT revocation entries out of a MongoDB blacklist, as an Alibaba Cloud
//! Function Compute custom-container function (`POST /invoke` on port 9000) or a one-shot command.
//!
//! # Layout
//!
//! Data flows one way: server → sweep → store.
//!
//! - [`config`]: settings from the environment (and `.env`), with secrets that never print.
//! - [`server`]: the FC protocol over HTTP: routes (one file each), the invoke body (`event`), the answers'
//!   envelopes (`envelope`), the one mapping of failures to statuses (`http_status`), `x-fc-status` and request
//!   ids (`fc`), start-up on any port and graceful shutdown.
//! - [`sweep`]: the algorithm (range-bounded batches in `window`s sized by `sizing`, one `lane` a batch at a time,
//!   time budget, dry run, gentle pacing that starts small, waiting for lagging `replication`, legacy entries),
//!   several targets' sweeps in `turns`, its running `tally`, its `report` and the `format` of its instants and
//!   sizes, its batches as bounded spans (`trace`), storage-agnostic.
//! - [`store`]: one trait per job (the sweep's [`store::SweepStore`], [`store::LegacyStore`], the
//!   [`store::RunHistory`]; [`store::Store`] is all three) and its one error type; the shared query
//!   builders (`filter`); one file or folder per backend: the direct MongoDB connection (`mongo`) and the
//!   DB-operation HTTP API (`http_api`: transport, contract probe, store); the factory that builds them
//!   (`backends`); the replicas' lag, which a backend reads from its own admin answer (`replication`); each call's
//!   span, by the database conventions (`call_span`); and the wrappers a run goes through:
//!   the `fallback` chain (the API first, the direct connection when it fails) and the `deadline` that ends every
//!   call at the run clock's end of calls.
//! - [`clock`]: the run's clock (its start and budget) and every instant the run's policy derives from them: when
//!   batches stop, when the sweep's calls end, the run's deadline, what the lease outlasts.
//! - [`runner`]: one run from start to record, for `/invoke` and `sweep` alike: the lease, the alerts, the sweep
//!   through a fresh fallback chain, the history write, all within the run's deadline; and `status` beside it.
//! - [`lease`]: one run at a time across every instance: the whole protocol (take, stale leases, release, what
//!   `status` shows) over three primitives each backend offers.
//! - [`strict_json`]: JSON that refuses a key repeated within one object (the invoke body, `CLEANUP_TARGETS`).
//! - [`untrusted`]: strings read back from storage: request ids checked, any other text escaped before it is shown.
//! - [`history`]: the run record, as stored in `CLEANUP_HISTORY_COLLECTION` and read back (strictly).
//! - [`status`]: is the cleaner keeping up: the verdict on the history and the live backlog, as text, JSON or a
//!   chart.
//! - [`alerts`]: where a run says it started and how it ended (one trait, a file per kind: heartbeat,
//!   Pushgateway).
//! - [`targets`]: the collections a run sweeps (`CLEANUP_TARGETS`, else today's one), and each one's options.
//! - [`sample`]: a small, clearly labelled sample blacklist for local runs and benchmarks.
//!
//! What this crate shares with `auth-api` (the blacklist entry's schema, secrets, configuration basics, the
//! MongoDB connection, telemetry and traces, serving, shutdown, the handlers' state) is in `jtc-shared`; neither
//! product imports the other.
//!
//! Traces follow the same flow: `/invoke` opens the invocation's span (continuing FC's trace), the runner the run's,
//! the lease's and the history write's, the sweep a target's and its batches', and the fallback chain each
//! database call's (`store::call_span`); the answer waits for them to be delivered (`server::envelope`).
//!
//! # Extending it
//!
//! Each recipe was walked once for real on a scratch branch; these are the files it touched, and what fails when
//! one is missed.
//!
//! - **A storage backend**: a file (or folder) in `store/` implementing [`store::Backend`], [`store::SweepStore`],
//!   [`store::LegacyStore`] and [`store::RunHistory`], building its queries with `store::filter`; `pub mod` in
//!   `store/mod.rs` (and its line in that module's doc); its place in the chain in `store::backends`; in `config` its
//!   settings field (secrets as `jtc_shared::Secret`, so the derived `Debug` prints `****`), its parsing in
//!   `Settings::from_lookup`, the "at least one backend" rule there, and its secrets in `Settings::secret_values`
//!   (nothing fails when this is missed: the secrets test in `tests/api/secrets.rs` needs a case for it); its variables
//!   in the configuration table (docs/configuration.md), `fc-config.json` and `s.yaml` (`tests/deploy/config_files.rs`
//!   fails until all three have them).
//! - **A report field** (walked again for #40, a count kept in runs): the field in `sweep::report::SweepReport`
//!   (and `SweepFailure` if an error keeps it) and its total in `report::combine` (the compiler asks for it), its
//!   counter in `sweep::tally::Tally` and one line in `Tally::into_report`; the answers' reference
//!   (docs/answers.md). If runs keep it: in `history` the field of `RunRecord`, `of_report`, `of_failure`, the
//!   test record (the compiler asks for those) and its name in `FIELDS` (`the_projection_is_the_record` fails until
//!   it is there; the stored form is derived), and the test runs of `status::tests`; `status::text` /
//!   `status::chart` to show it. If it is a metric: `alerts::pushgateway`. If the message says it:
//!   `SweepReport::message`, and `server::envelope::failure` for the error JSON. Five files, as before the record
//!   was derived; in `history` five places where there were seven, and none of them silent.
//! - **A setting**: in `config` the field and its parsing (once, with its bounds, and a unit test of a refusal);
//!   `sweep::options::SweepOptions` and `SweepOptions::resolve` if a run uses it (the compiler then asks for it in the
//!   struct literals of `sweep::sizing`'s tests); a row in the configuration table (docs/configuration.md), a name in
//!   `fc-config.json` and a line in `s.yaml` (`tests/deploy/config_files.rs` asks the settings which variables they
//!   read and fails until all three have each).

pub mod alerts;
pub mod clock;
pub mod config;
pub mod history;
pub mod lease;
pub mod runner;
pub mod sample;
pub mod server;
pub mod status;
pub mod store;
pub mod strict_json;
pub mod sweep;
pub mod targets;
pub mod untrusted;
