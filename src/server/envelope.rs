//! The JSON envelopes every answer of the cleaner comes in (the seed service's shape), for `/invoke`,
//! `/initialize` and the `sweep` command alike: `{"status":"success","message","data"}` around a report, and
//! `{"status":"error","message","error","data":{"success":false,...}}` around a failure or a refusal.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::status::StatusReport;
use crate::sweep::report::{execution_time, rfc3339};
use crate::sweep::{SweepFailure, SweepReport};

/// `{"status":"success","message":...,"data":{...}}`.
pub fn success(report: &SweepReport) -> Value {
    json!({ "status": "success", "message": report.message(), "data": report })
}

/// Delivers the run's spans before the answer goes out (`jtc_shared::traces::flush`: FC freezes the instance once it
/// has answered, the CLI exits); spans not delivered are a warning in a success answer, never a failure.
pub async fn deliver_spans(answer: &mut Value) {
    if let Err(e) = jtc_shared::traces::flush().await {
        tracing::warn!(error = %e, "the run's spans were not delivered");
        if let Some(warnings) = answer.pointer_mut("/data/warnings").and_then(Value::as_array_mut) {
            warnings.push(Value::String(format!("the run's trace was not delivered: {e}")));
        }
    }
}

/// `{"status":"success","message":"status: ok","data":{...}}`: the status (`status --json`), in the usual envelope.
pub fn keeping_up(report: &StatusReport) -> Value {
    json!({ "status": "success", "message": format!("status: {}", report.verdict.as_str()), "data": report })
}

/// The error envelope for a sweep that failed after doing what `failure` says.
pub fn failure(failure: &SweepFailure, started: DateTime<Utc>, request_id: &str) -> Value {
    error_json(
        &format!("Cleanup failed after cleaning {}", crate::sweep::report::tokens(failure.cleaned_count)),
        &failure.error,
        failure.cleaned_count,
        started,
        request_id,
        json!({
            "memory_saved_bytes": failure.memory_saved_bytes,
            "batches": failure.batches,
            "backend": failure.backend,
        }),
    )
}

/// The error envelope: `{"status":"error","message","error","data":{"success":false,...}}`, with `extra` fields
/// in `data`.
pub fn error_json(
    message: &str,
    error: &str,
    cleaned_count: u64,
    at: DateTime<Utc>,
    request_id: &str,
    extra: Value,
) -> Value {
    let mut data = json!({
        "success": false,
        "error": error,
        "cleaned_count": cleaned_count,
        "timestamp": rfc3339(at),
        "execution_time": execution_time(at),
        "request_id": request_id,
    });
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    json!({ "status": "error", "message": message, "error": error, "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn error_envelope_shape() {
        let at = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap();
        let v = error_json("m", "e", 3, at, "rid", json!({"batches": 1}));
        assert_eq!(v["status"], "error");
        assert_eq!(v["message"], "m");
        assert_eq!(v["error"], "e");
        assert_eq!(v["data"]["success"], false);
        assert_eq!(v["data"]["cleaned_count"], 3);
        assert_eq!(v["data"]["timestamp"], "2024-01-15T10:30:00Z");
        assert_eq!(v["data"]["batches"], 1);
    }
}
