//! Logging: JSON lines when `LOG_FORMAT=json`, readable text otherwise, filtered by `RUST_LOG` (default `info`).
//! Everything goes to stderr, so `jwt-token-cleaner sweep` keeps stdout for the report alone.
//!
//! Every line is scrubbed of the process's registered secrets on its way out ([`crate::redact::register`]): a
//! secret that reaches a log call by a path nobody foresaw (a driver error, a debug print of a request) still never
//! reaches the log.

use std::io::Write;

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. Calling it twice is harmless (the second call does nothing).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        fmt().with_env_filter(filter).with_writer(|| Scrubbed(std::io::stderr())).with_target(false).with_ansi(ansi);
    let _ = if json { builder.json().with_current_span(true).try_init() } else { builder.try_init() };
}

/// True when `LOG_FORMAT` asks for JSON lines.
pub fn json_requested() -> bool {
    std::env::var("LOG_FORMAT").map(|v| v.eq_ignore_ascii_case("json")).unwrap_or(false)
}

/// A writer that scrubs what it is given. The formatter hands it one whole event per write, so a secret is never
/// split between two calls.
struct Scrubbed<W: Write>(W);

impl<W: Write> Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let clean = crate::redact::scrub_registered(&String::from_utf8_lossy(buf));
        self.0.write_all(clean.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
