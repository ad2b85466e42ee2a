//! Traces: OpenTelemetry spans over OTLP/HTTP (protobuf), when the standard `OTEL_*` variables ask for them.
//!
//! The spans are the `tracing` spans the code already opens (run, target, batch, each database call; auth-api's
//! requests), turned into OpenTelemetry spans by `tracing-opentelemetry` and exported by the SDK's batch processor
//! on its own thread with a blocking HTTP client (the combination the SDK documents as working from a tokio
//! runtime: an async client driven from that thread needs a runtime it does not have).
//!
//! Function Compute freezes the instance as soon as an answer is sent, so whatever ends a run calls [`flush`]
//! before it answers: it waits for the exporter at most [`FLUSH_BOUND`], and says whether the spans were delivered.
//! A collector that hangs, refuses or fails never delays an answer longer than that, and never fails a run.
//!
//! - [`settings`]: what the `OTEL_*` variables ask for, read through a lookup like every other setting.
//! - [`context`]: the caller's trace (W3C `traceparent`, or FC's older header), and `traceparent` for the calls
//!   this process makes.
//! - [`log_ids`]: `trace_id` and `span_id` on every JSON log line written inside a traced span.

pub mod context;
pub mod log_ids;
pub mod settings;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_subscriber::registry::LookupSpan;

pub use settings::TraceSettings;

/// The longest an answer waits for its spans to be delivered.
pub const FLUSH_BOUND: Duration = Duration::from_secs(1);
/// One export's HTTP timeout: under [`FLUSH_BOUND`], so that a hanging collector ends the flush with an error of
/// its own (and the processor's thread is free for the next one) rather than by the bound.
const EXPORT_TIMEOUT: Duration = Duration::from_millis(900);
/// Spans queued for export at most (the SDK's default); past it the SDK drops new ones (and says so once). A run
/// exports about a hundred (the sweep counts batches past 50 a target instead of tracing each), far below it.
const MAX_QUEUE: usize = 2048;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("the OTLP trace exporter could not be built: {source}")]
pub struct ExportSetupError {
    #[source]
    source: opentelemetry_otlp::ExporterBuildError,
}

/// Why a run's spans were not delivered.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// The collector did not answer within [`FLUSH_BOUND`].
    #[error("the trace collector did not answer within {0:?}")]
    TimedOut(Duration),
    /// The export failed (refused, an error status, a timeout of its own).
    #[error("the spans were not delivered: {0}")]
    Failed(String),
}

/// The `tracing` layer that turns spans into OpenTelemetry spans exported as `settings` say, and remembers the
/// exporter for [`flush`]. `None` without settings: nothing is exported and nothing is paid.
pub fn layer<S>(
    settings: Option<&TraceSettings>,
) -> Result<Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>, ExportSetupError>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let Some(settings) = settings else { return Ok(None) };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(settings.endpoint())
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(settings.headers())
        .build()
        .map_err(|source| ExportSetupError { source })?;
    let batches = BatchConfigBuilder::default().with_max_queue_size(MAX_QUEUE).build();
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batches).build();
    let resource = Resource::builder_empty()
        .with_service_name(settings.service_name().to_string())
        .with_attributes(settings.resource_attributes())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(settings.sampler())
        .with_resource(resource)
        .build();
    let tracer = provider.tracer(settings.service_name().to_string());
    // A second init (tests build several applications in one process) keeps the first exporter.
    let _ = PROVIDER.set(provider);
    Ok(Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_tracked_inactivity(false),
    ))
}

/// True when spans are exported.
pub fn exporting() -> bool {
    PROVIDER.get().is_some()
}

/// Delivers every ended span now, waiting at most [`FLUSH_BOUND`]. Without an exporter, nothing to do.
///
/// The SDK's flush blocks its caller until the processor's thread has exported, so it runs on tokio's blocking
/// pool; when the bound passes first the answer goes on and the export finishes (or times out) on its own.
pub async fn flush() -> Result<(), FlushError> {
    let Some(provider) = PROVIDER.get().cloned() else { return Ok(()) };
    let flushing = tokio::task::spawn_blocking(move || provider.force_flush());
    match tokio::time::timeout(FLUSH_BOUND, flushing).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(FlushError::Failed(crate::redact::scrub_registered(&e.to_string()))),
        Ok(Err(e)) => Err(FlushError::Failed(e.to_string())),
        Err(_) => Err(FlushError::TimedOut(FLUSH_BOUND)),
    }
}
