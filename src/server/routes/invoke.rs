//! `POST /invoke`: one sweep per call (timer trigger or manual invoke).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::history::Trigger;
use crate::server::envelope::{self, error_json};
use crate::server::event::{parse_invoke_body, Request};
use crate::server::fc::{json_response, request_id};
use crate::server::http_status;
use crate::server::AppState;
use crate::status::StatusQuery;
use crate::sweep;

/// Parses the body, runs the sweep and answers the report: 200 on success, 400 on a bad body (nothing deleted),
/// 503 when the database cannot be reached, 500 on any other failure. `{"status": true}` answers the status
/// instead (200, whatever the verdict: the verdict is in the answer), and deletes nothing.
///
/// The invocation is a span continuing the caller's trace (`traceparent`, or FC's older header). FC freezes the
/// instance as soon as the answer is sent, so the run's spans are delivered first, for at most
/// `jtc_shared::traces::FLUSH_BOUND`; spans not delivered are a warning in the report, never a failed run.
pub async fn invoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let id = request_id(&headers);
    let span = tracing::info_span!(
        "invoke",
        request_id = %id,
        trigger = tracing::field::Empty,
        "otel.kind" = "server",
        "faas.invocation_id" = %id,
        "faas.trigger" = tracing::field::Empty,
    );
    jtc_shared::traces::context::continue_trace(&span, &headers);
    let (status, mut answer) = async move {
        tracing::info!("FC Invoke Start RequestId: {id}");
        let (status, answer) = sweep_and_answer(&state, body, &id).await;
        tracing::info!(status = status.as_u16(), "FC Invoke End RequestId: {id}");
        (status, answer)
    }
    .instrument(span)
    .await;
    envelope::deliver_spans(&mut answer).await;
    json_response(status, answer)
}

async fn sweep_and_answer(state: &AppState, body: Result<Bytes, BytesRejection>, id: &str) -> (StatusCode, Value) {
    let started = Utc::now();
    let refuse = |status: StatusCode, error: String| {
        tracing::warn!(%error, "invoke refused");
        (status, error_json("Invalid invoke request", &error, 0, started, id, json!({})))
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return refuse(rejection.status(), format!("cannot read the body: {}", rejection.body_text()))
        }
    };
    let invocation = match parse_invoke_body(&body) {
        Ok(invocation) => invocation,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.0),
    };
    let span = tracing::Span::current();
    span.record("trigger", invocation.trigger.as_str());
    span.record("faas.trigger", if invocation.trigger == Trigger::Timer { "timer" } else { "other" });
    let (overrides, names) = match invocation.request {
        Request::Sweep(overrides, names) => (overrides, names),
        Request::Status => {
            let report = state.runner.status(&StatusQuery::default(), started).await;
            let body = envelope::keeping_up(&report);
            return (StatusCode::OK, body);
        }
    };
    let targets = match state.runner.targets(names.as_deref()) {
        Ok(targets) => targets,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let options = state.runner.options(overrides);
    let progress = sweep::LogLines::new(state.progress_every);
    match state.runner.run(&options, &targets, invocation.trigger, id, started, &progress).await {
        Ok(report) => (StatusCode::OK, envelope::success(&report)),
        Err(failure) => {
            tracing::error!(error = %failure.error, cleaned = failure.cleaned_count, "sweep failed");
            (http_status::of_store_failure(failure.kind), envelope::failure(&failure, started, id))
        }
    }
}
