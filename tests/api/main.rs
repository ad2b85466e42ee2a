//! Integration tests: the real server (port 0) against a real MongoDB-compatible server (`MONGODB_TEST_URI`).

mod cli;
mod helpers;
mod invoke_body;
mod lifecycle;
mod sweep;
