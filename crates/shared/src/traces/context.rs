//! The caller's trace, and ours carried onward.
//!
//! An incoming request continues the W3C trace context it carries (`traceparent`, with `tracestate`); without it,
//! Function Compute's older header `x-fc-tracing-opentracing-span-context` (`traceid:spanid:parentid:flags`, the
//! Jaeger form) is read; otherwise the span starts a new trace. Outgoing calls carry `traceparent` of their own span
//! ([`carry`]), so the peer's spans join the same trace.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Function Compute's pre-W3C trace header.
pub const FC_LEGACY_HEADER: &str = "x-fc-tracing-opentracing-span-context";

/// Makes `span` a child of the trace `headers` carry (see the module doc); a request without a valid one leaves
/// `span` a root. Without an exporter, nothing happens.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !super::exporting() {
        return;
    }
    if let Some(parent) = caller(headers) {
        // Fails only for a span that is already started or disabled; it then stays as it is.
        let _ = span.set_parent(parent);
    }
}

/// The caller's span context, when `headers` carry a valid one.
pub fn caller(headers: &HeaderMap) -> Option<Context> {
    let w3c = TraceContextPropagator::new().extract(&Headers(headers));
    if w3c.span().span_context().is_valid() {
        return Some(w3c);
    }
    let legacy = headers.get(FC_LEGACY_HEADER)?.to_str().ok()?;
    fc_legacy(legacy).map(|parent| Context::new().with_remote_span_context(parent))
}

/// `traceid:spanid:parentid:flags`, hexadecimal; a trace id shorter than 32 digits is zero-padded (Jaeger's
/// 64-bit ids).
fn fc_legacy(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split(':');
    let (trace, span, _parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || trace.len() > 32 || span.len() > 16 {
        return None;
    }
    let trace = TraceId::from_hex(&format!("{trace:0>32}")).ok()?;
    let span = SpanId::from_hex(&format!("{span:0>16}")).ok()?;
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
    let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    let context = SpanContext::new(trace, span, flags, true, TraceState::default());
    context.is_valid().then_some(context)
}

/// Adds `traceparent` (and `tracestate`) of `span` to `headers`: the request it is the span of continues the trace
/// at the peer. Nothing when spans are not exported.
pub fn carry(span: &tracing::Span, headers: &mut HeaderMap) {
    if !super::exporting() {
        return;
    }
    let context = span.context();
    TraceContextPropagator::new().inject_context(&context, &mut HeadersMut(headers));
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value)) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn traceparent_is_continued() {
        let found = caller(&headers(&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]));
        let context = found.expect("a valid traceparent");
        let span = context.span();
        assert_eq!(span.span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.span_context().span_id().to_string(), "00f067aa0ba902b7");
        assert!(span.span_context().is_sampled());
    }

    #[test]
    fn fc_legacy_header_is_read_without_traceparent_and_padded() {
        let found = caller(&headers(&[(FC_LEGACY_HEADER, "1f2e3d4c5b6a7988:a1b2c3d4e5f60718:0:1")]));
        let context = found.expect("a valid legacy header");
        let span = context.span();
        assert_eq!(span.span_context().trace_id().to_string(), "00000000000000001f2e3d4c5b6a7988");
        assert_eq!(span.span_context().span_id().to_string(), "a1b2c3d4e5f60718");
        // traceparent wins over the legacy header.
        let both = caller(&headers(&[
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            (FC_LEGACY_HEADER, "1f2e3d4c5b6a7988:a1b2c3d4e5f60718:0:1"),
        ]))
        .unwrap();
        assert_eq!(both.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn malformed_contexts_start_a_new_trace() {
        for value in ["", "zz:yy:0:1", "0:0:0:1", "1f2e:a1b2", "1:2:3:4:5"] {
            assert!(caller(&headers(&[(FC_LEGACY_HEADER, value)])).is_none(), "{value}");
        }
        assert!(
            caller(&headers(&[("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")])).is_none()
        );
    }
}
