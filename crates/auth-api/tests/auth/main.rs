//! Integration tests of `auth-api`: the real server on port 0 over real HTTP (and HTTPS), against the real test
//! database (`MONGODB_TEST_URI`) and a real Redis (`REDIS_TEST_URL`), both started by `scripts/test`; and the
//! end-to-end story with the cleaner (run in-process: a dev-dependency of these tests, never of auth-api).

mod browser;
mod cli;
mod connections;
mod cookies;
mod cors;
mod end_to_end;
mod flask_interop;
mod logout;
mod rate_limits;
mod revocation_cache;
mod routes;
mod support;
mod tls;
mod traces;
