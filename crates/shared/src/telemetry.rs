//! Logging: JSON lines when `LOG_FORMAT=json`, readable text otherwise, filtered by `RUST_LOG` (default `info`).
//! Everything goes to stderr, so `jwt-token-cleaner sweep` keeps stdout for the report alone.
//!
//! Every line is scrubbed of the process's registered secrets on its way out ([`crate::redact::register`]): a
//! secret that reaches a log call by a path nobody foresaw (a driver error, a debug print of a request) still never
//! reaches the log.

use std::io::Write;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{self, JsonFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer, Registry};

use crate::traces::{self, log_ids::WithTraceIds, ExportSetupError, TraceSettings};

/// Installs the global subscriber: the log lines, and the spans exported as `traces` say (none without). Calling
/// it twice is harmless (the second call does nothing).
///
/// `RUST_LOG` filters the log lines only: the exported spans are the `info` ones whatever it says, so that quieter
/// logs do not thin out the traces.
pub fn init(json: bool, traces: Option<&TraceSettings>) -> Result<(), ExportSetupError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let lines = fmt::layer().with_writer(|| Scrubbed(std::io::stderr())).with_target(false).with_ansi(ansi);
    // JSON lines carry the current span's fields and every enclosing span's (`spans`), so that a line written in a
    // batch still names its run's request id and its target.
    let lines = match json {
        true => lines
            .fmt_fields(JsonFields::new())
            .event_format(WithTraceIds(format().json().with_current_span(true).with_span_list(true).with_target(false)))
            .with_filter(filter)
            .boxed(),
        false => lines.with_filter(filter).boxed(),
    };
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![lines];
    if let Some(spans) = traces::layer::<Registry>(traces)? {
        layers.push(spans.with_filter(LevelFilter::INFO).boxed());
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(())
}

fn format() -> format::Format {
    format::Format::default()
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
