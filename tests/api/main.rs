//! Integration tests: the real server (port 0) against a real MongoDB-compatible server (`MONGODB_TEST_URI`), the
//! test HTTP API in front of it, and private servers (`jtc_test_support::PrivateDb`) for the tests that stop or lock
//! down their database.

mod cli;
mod edges;
mod faults;
mod gentle;
mod hardening;
mod helpers;
mod history;
mod http_api;
mod invoke_body;
mod lease;
mod legacy;
mod lifecycle;
mod properties;
mod secrets;
mod sweep;
mod targets;
mod third_party;
mod traces;
