//! The invoke body: what FC hands us, parsed into sweep overrides.
//!
//! FC posts the raw payload as `application/octet-stream`, possibly empty. Accepted shapes:
//! - empty (or only white space): a default sweep;
//! - a JSON object of options (`dry_run`, `batch_size`, `time_budget_seconds`), as sent by a manual invoke;
//! - `{"status": true}` alone: the status (`status --json`), which deletes nothing;
//! - a timer event `{"triggerTime","triggerName","payload"}` whose `payload` string may hold the same JSON options.
//!   A payload that is not JSON is ignored with a log line (a cron payload is free text), unless it starts with
//!   `{`: that one was meant as options, and an unreadable one (malformed, or nested too deeply) is refused. Other
//!   fields FC may add to the event are ignored.
//!
//! Anything else is an [`EventError`] (HTTP 400) and no sweep runs, a key that appears twice in one object
//! included (read by [`strict_json`](crate::strict_json)).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::config::{MAX_BATCH_SIZE, MAX_TIME_BUDGET_SECONDS};
use crate::history::Trigger;
use crate::strict_json::{self, StrictJsonError};
use crate::sweep::SweepOverrides;
use crate::targets::TargetName;

/// Why an invoke body was refused. The message names the problem and is safe to echo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

/// The options a body (or a timer's payload) may hold: [`Options`]' fields, named once for the refusals.
const ACCEPTED: [&str; 5] = ["dry_run", "batch_size", "time_budget_seconds", "targets", "status"];
const TIMER_FIELDS: [&str; 2] = ["triggerTime", "triggerName"];

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A sweep, with these overrides, of these targets (`{"targets": [...]}`; all when `None`).
    Sweep(SweepOverrides, Option<Vec<TargetName>>),
    /// `{"status": true}`: where things stand; deletes nothing.
    Status,
}

/// A parsed invocation: what it asks for, and what started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// A sweep or a status.
    pub request: Request,
    /// A timer trigger (the body is a timer event), or a manual invoke.
    pub trigger: Trigger,
}

/// The options of one invocation, each field's rule in its type; a key that is not a field is kept aside (`other`)
/// and refused by name.
#[derive(Debug, Deserialize)]
struct Options {
    #[serde(default, deserialize_with = "flag")]
    dry_run: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    batch_size: Option<BatchSize>,
    #[serde(default, deserialize_with = "present")]
    time_budget_seconds: Option<BudgetSeconds>,
    #[serde(default, deserialize_with = "present")]
    targets: Option<TargetNames>,
    #[serde(default, deserialize_with = "present")]
    status: Option<StatusOnly>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// A whole number from 1 to `max`, named `name` in its refusal.
fn whole<'de, D: Deserializer<'de>>(deserializer: D, name: &str, max: u64) -> Result<u64, D::Error> {
    let value = Value::deserialize(deserializer)?;
    match value.as_u64() {
        Some(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(D::Error::custom(format!("{name} must be a whole number from 1 to {max}, got {}", shown(&value)))),
    }
}

/// A field that, when present, is read by its type: `null` is refused by it like any other wrong value (serde
/// would take it for an absent option).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// `batch_size`: 1 to [`MAX_BATCH_SIZE`].
#[derive(Debug, Clone, Copy)]
struct BatchSize(u32);

impl<'de> Deserialize<'de> for BatchSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let size = whole(deserializer, "batch_size", MAX_BATCH_SIZE.into())?;
        u32::try_from(size).map(BatchSize).map_err(D::Error::custom)
    }
}

/// `time_budget_seconds`: 1 to [`MAX_TIME_BUDGET_SECONDS`].
#[derive(Debug, Clone, Copy)]
struct BudgetSeconds(u64);

impl<'de> Deserialize<'de> for BudgetSeconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        whole(deserializer, "time_budget_seconds", MAX_TIME_BUDGET_SECONDS).map(BudgetSeconds)
    }
}

/// `targets`: a non-empty list of target names.
#[derive(Debug)]
struct TargetNames(Vec<TargetName>);

impl<'de> Deserialize<'de> for TargetNames {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let strings = value
            .as_array()
            .filter(|names| !names.is_empty())
            .and_then(|names| names.iter().map(Value::as_str).collect::<Option<Vec<&str>>>());
        let Some(strings) = strings else {
            return Err(D::Error::custom(format!(
                "targets must be a non-empty list of target names, got {}",
                kind(&value)
            )));
        };
        let names = strings.into_iter().map(TargetName::parse).collect::<Result<Vec<_>, _>>();
        names.map(TargetNames).map_err(|e| D::Error::custom(format!("targets: {e}")))
    }
}

/// `status`: `true`, alone.
#[derive(Debug)]
struct StatusOnly;

impl<'de> Deserialize<'de> for StatusOnly {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Bool(true) => Ok(StatusOnly),
            other => Err(D::Error::custom(format!("status must be true, got {}", kind(&other)))),
        }
    }
}

/// `dry_run`: true or false.
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Bool(flag) => Ok(Some(flag)),
        other => Err(D::Error::custom(format!("dry_run must be true or false, got {}", kind(&other)))),
    }
}

/// Parses an invoke body.
pub fn parse_invoke_body(body: &[u8]) -> Result<Invocation, EventError> {
    let text = std::str::from_utf8(body).map_err(|e| EventError(format!("body is not UTF-8 text: {e}")))?;
    let manual = |request| Invocation { request, trigger: Trigger::Manual };
    if text.trim().is_empty() {
        return Ok(manual(Request::Sweep(SweepOverrides::default(), None)));
    }
    let value = strict_json::parse(text).map_err(|e| EventError(format!("body is not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(EventError(format!("body must be a JSON object, got {}", kind(&value))));
    };
    if TIMER_FIELDS.iter().any(|f| object.contains_key(*f)) {
        parse_timer_event(&object).map(|request| Invocation { request, trigger: Trigger::Timer })
    } else {
        parse_options(object, "body").map(manual)
    }
}

fn parse_timer_event(event: &Map<String, Value>) -> Result<Request, EventError> {
    if let Some(option) = ACCEPTED.iter().find(|o| event.contains_key(**o)) {
        return Err(EventError(format!("option {option:?} must go inside the timer event's payload, not beside it")));
    }
    for field in TIMER_FIELDS {
        if let Some(value) = event.get(field) {
            if !value.is_string() {
                return Err(EventError(format!("timer event field {field:?} must be a string")));
            }
        }
    }
    let default = Request::Sweep(SweepOverrides::default(), None);
    match event.get("payload") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Object(options)) => parse_options(options.clone(), "timer payload"),
        Some(Value::String(payload)) if payload.trim().is_empty() => Ok(default),
        Some(Value::String(payload)) => match strict_json::parse(payload) {
            // Meant as options (a repeated key, or it starts like an object), but unreadable: running a default
            // sweep instead would act on input nobody can vouch for.
            Err(e @ StrictJsonError::DuplicateKey(_)) => {
                Err(EventError(format!("timer payload is not valid JSON: {e}")))
            }
            Err(e) if payload.trim_start().starts_with('{') => {
                Err(EventError(format!("timer payload is not valid JSON: {e}")))
            }
            Ok(Value::Object(options)) => parse_options(options, "timer payload"),
            Ok(other) => {
                Err(EventError(format!("timer payload must be a JSON object of options, got {}", kind(&other))))
            }
            Err(_) => {
                tracing::info!(payload_len = payload.len(), "timer payload is not JSON; running a default sweep");
                Ok(default)
            }
        },
        Some(other) => Err(EventError(format!("timer payload must be a string, got {}", kind(other)))),
    }
}

fn parse_options(options: Map<String, Value>, what: &str) -> Result<Request, EventError> {
    let count = options.len();
    let options = Options::deserialize(Value::Object(options)).map_err(|e| EventError(e.to_string()))?;
    if let Some(unknown) = options.other.keys().next() {
        let shown: String = unknown.chars().take(64).collect();
        return Err(EventError(format!("unknown option {shown:?} in the {what}; accepted: {}", ACCEPTED.join(", "))));
    }
    if options.status.is_some() {
        return match count {
            1 => Ok(Request::Status),
            _ => Err(EventError(format!("status takes no other option in the {what}: it deletes nothing"))),
        };
    }
    let overrides = SweepOverrides {
        dry_run: options.dry_run,
        batch_size: options.batch_size.map(|b| b.0),
        time_budget_seconds: options.time_budget_seconds.map(|b| b.0),
    };
    Ok(Request::Sweep(overrides, options.targets.map(|t| t.0)))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::Number(n) => {
            let s = n.to_string();
            if s.len() > 24 {
                format!("{}...", &s[..24])
            } else {
                s
            }
        }
        other => kind(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ok(body: &str) -> SweepOverrides {
        match parse_invoke_body(body.as_bytes()).unwrap().request {
            Request::Sweep(overrides, _) => overrides,
            Request::Status => panic!("a status request: {body}"),
        }
    }

    #[test]
    fn triggers_and_status_requests() {
        let timer = r#"{"triggerTime":"2023-12-26T07:49:00Z","triggerName":"t","payload":""}"#;
        assert_eq!(parse_invoke_body(timer.as_bytes()).unwrap().trigger, Trigger::Timer);
        assert_eq!(parse_invoke_body(b"").unwrap().trigger, Trigger::Manual);
        assert_eq!(parse_invoke_body(b"{\"dry_run\":true}").unwrap().trigger, Trigger::Manual);
        assert_eq!(parse_invoke_body(br#"{"status": true}"#).unwrap().request, Request::Status);
        assert!(err(br#"{"status": false}"#).contains("status must be true"));
        assert!(err(br#"{"status": true, "dry_run": false}"#).contains("status takes no other option"));
    }
    fn err(body: &[u8]) -> String {
        parse_invoke_body(body).unwrap_err().0
    }

    /// Every name a refusal lists as accepted is a field of [`Options`], and no other key is.
    #[test]
    fn the_accepted_options_are_the_fields() {
        let valid = [json!(true), json!(1), json!(1), json!(["a"]), json!(true)];
        for (name, value) in ACCEPTED.iter().zip(valid) {
            let options = Options::deserialize(Value::Object(Map::from_iter([(name.to_string(), value)]))).unwrap();
            assert!(options.other.is_empty(), "{name} is not a field");
        }
        assert!(!Options::deserialize(json!({"drop": 1})).unwrap().other.is_empty());
        assert!(
            err(br#"{"batch_size": null}"#).contains("batch_size must be a whole number from 1 to 100000, got null")
        );
        assert!(err(br#"{"targets": ["A b"]}"#).contains("targets: name \"A b\" must be"));
    }

    #[test]
    fn empty_and_blank_bodies_are_default_sweeps() {
        assert_eq!(ok(""), SweepOverrides::default());
        assert_eq!(ok(" \n\t"), SweepOverrides::default());
        assert_eq!(ok("{}"), SweepOverrides::default());
    }

    #[test]
    fn manual_options() {
        let o = ok(r#"{"dry_run":true,"batch_size":100,"time_budget_seconds":5}"#);
        assert_eq!(o, SweepOverrides { dry_run: Some(true), batch_size: Some(100), time_budget_seconds: Some(5) });
    }

    #[test]
    fn timer_events() {
        let base = r#"{"triggerTime":"2023-12-26T07:49:00Z","triggerName":"timer-trigger","payload":"#;
        assert_eq!(ok(&format!("{base}\"\"}}")), SweepOverrides::default());
        assert_eq!(ok(&format!("{base}\"hourly cleanup\"}}")), SweepOverrides::default());
        assert_eq!(ok(&format!("{base}\"[daily] cleanup\"}}")), SweepOverrides::default());
        assert!(err(format!(r#"{base}" {{\"dry_run\":"}}"#).as_bytes()).contains("timer payload is not valid JSON"));
        let o = ok(&format!(r#"{base}"{{\"dry_run\":true}}"}}"#));
        assert_eq!(o.dry_run, Some(true));
        assert!(err(format!(r#"{base}"{{\"drop\":1}}"}}"#).as_bytes())
            .contains("unknown option \"drop\" in the timer payload"));
        assert!(err(format!(r#"{base}"[1]"}}"#).as_bytes()).contains("JSON object"));
        assert!(err(br#"{"triggerName":"t","dry_run":true}"#).contains("inside the timer event's payload"));
        assert_eq!(ok(r#"{"triggerName":"t","payload":null,"extra":1}"#), SweepOverrides::default());
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        assert!(err(b"not json").starts_with("body is not valid JSON"));
        assert!(err(b"[1,2]").contains("JSON object, got an array"));
        assert!(err(b"null").contains("got null"));
        assert!(err(b"\xff\xfe").starts_with("body is not UTF-8"));
        assert!(err(br#"{"dry_run":"yes"}"#).contains("dry_run must be true or false, got a string"));
        assert!(err(br#"{"batch_size":0}"#).contains("batch_size must be a whole number from 1 to 100000, got 0"));
        assert!(err(br#"{"batch_size":100001}"#).contains("batch_size"));
        assert!(err(br#"{"batch_size":1.5}"#).contains("batch_size"));
        assert!(err(br#"{"batch_size":-3}"#).contains("batch_size"));
        assert!(err(br#"{"batch_size":1e400}"#).starts_with("body is not valid JSON"));
        assert!(err(br#"{"time_budget_seconds":901}"#).contains("time_budget_seconds"));
        assert!(err(br#"{"collection":"users"}"#).contains("unknown option \"collection\""));
        assert!(err(br#"{"database":"admin"}"#).contains("unknown option"));
    }

    proptest! {
        // No regression files in the work tree: a failure prints its minimal case, which goes into a named test.
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Arbitrary bytes: never a panic; accepted only when blank or a JSON object; refusals always say why.
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            match parse_invoke_body(&body) {
                Ok(_) => {
                    let text = std::str::from_utf8(&body).unwrap().trim();
                    prop_assert!(text.is_empty() || text.starts_with('{'), "accepted {:?}", text);
                }
                Err(e) => prop_assert!(e.0.len() > 10, "unclear refusal {:?}", e.0),
            }
        }

        /// JSON-shaped input (options, timer events, wrong types and ranges): never a panic, and every accepted
        /// option is within its range.
        #[test]
        fn json_shaped_bodies_are_accepted_only_in_range(
            key in prop_oneof![
                Just("dry_run"), Just("batch_size"), Just("time_budget_seconds"), Just("payload"), Just("x")
            ],
            value in prop_oneof![
                any::<i64>().prop_map(|v| v.to_string()),
                any::<f64>().prop_map(|v| format!("{v:?}")),
                any::<bool>().prop_map(|v| v.to_string()),
                "\\PC{0,20}".prop_map(|v| serde_json::Value::String(v).to_string()),
                Just("null".to_string()),
                Just("[1,{}]".to_string()),
                Just("1e999".to_string()),
                Just("18446744073709551616".to_string()),
            ],
            wrap in any::<bool>(),
        ) {
            let inner = format!("{{\"{key}\": {value}}}");
            let body = if wrap {
                format!("{{\"triggerName\":\"t\",\"payload\":{}}}", serde_json::Value::String(inner))
            } else {
                inner
            };
            if let Ok(Invocation { request: Request::Sweep(o, _), .. }) = parse_invoke_body(body.as_bytes()) {
                prop_assert!(o.batch_size.is_none_or(|b| (1..=100_000).contains(&b)));
                prop_assert!(o.time_budget_seconds.is_none_or(|b| (1..=900).contains(&b)));
            }
        }
    }

    #[test]
    fn nasty_inputs() {
        // Huge numbers, deep nesting, a NUL, a lone surrogate escape, a BOM, duplicated keys.
        assert!(err(br#"{"batch_size": 1e308}"#).contains("batch_size"));
        assert!(err(br#"{"time_budget_seconds": 99999999999999999999999999999}"#).contains("time_budget_seconds"));
        assert!(err(format!("{}{}", "{\"a\":".repeat(200), "}".repeat(200)).as_bytes())
            .starts_with("body is not valid JSON"));
        assert!(err(b"{\"dry_run\": true}\0").starts_with("body is not valid JSON"));
        assert!(err(br#"{"dry_run": "\ud800"}"#).starts_with("body is not valid JSON"));
        assert!(err("\u{feff}{}".as_bytes()).starts_with("body is not valid JSON"));
        assert!(err(br#"{"batch_size": 5, "batch_size": 0}"#).contains("batch_size"));
        assert!(err(br#"{"triggerName": 5}"#).contains("must be a string"));
        assert!(err(br#"{"triggerName": "t", "payload": 7}"#).contains("timer payload must be a string"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(err(deep.as_bytes()).starts_with("body is not valid JSON"));
    }
}
