//! Logging: JSON lines when `LOG_FORMAT=json`, readable text otherwise, filtered by `RUST_LOG` (default `info`).
//! Everything goes to stderr, so `jwt-token-cleaner sweep` keeps stdout for the report alone.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. Calling it twice is harmless (the second call does nothing).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    let _ = if json { builder.json().with_current_span(true).try_init() } else { builder.try_init() };
}

/// True when `LOG_FORMAT` asks for JSON lines.
pub fn json_requested() -> bool {
    std::env::var("LOG_FORMAT").map(|v| v.eq_ignore_ascii_case("json")).unwrap_or(false)
}
