//! Integration tests: the real server (port 0) against a real MongoDB-compatible server (`MONGODB_TEST_URI`).

mod cli;
mod data_api;
mod helpers;
mod http_api;
mod invoke_body;
mod legacy;
mod lifecycle;
mod sweep;
