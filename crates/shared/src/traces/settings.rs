//! What the standard `OTEL_*` variables ask for, read through a lookup like every other setting, and refused at
//! start with the variable's name when unusable (a typo in a sampler name would otherwise trace nothing, silently).
//!
//! Only OTLP over HTTP with protobuf is exported: another `OTEL_EXPORTER_OTLP_PROTOCOL` is refused rather than
//! ignored. `OTEL_EXPORTER_OTLP_HEADERS` usually carries the collector's credential; its values are secrets (see
//! [`TraceSettings::secret_values`]) and its `Debug` shows only the header names.

use std::collections::HashMap;
use std::fmt;

use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::Sampler;

use crate::config_error::ConfigError;
use crate::Secret;

/// Where and how spans are exported; see the module doc.
#[derive(Clone)]
pub struct TraceSettings {
    endpoint: String,
    headers: Vec<(String, Secret)>,
    service_name: String,
    resource: Vec<(String, String)>,
    sampler: SamplerChoice,
}

/// `OTEL_TRACES_SAMPLER` (with its argument, a ratio in 0..=1, where it takes one).
#[derive(Debug, Clone, Copy, PartialEq)]
enum SamplerChoice {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedRatio(f64),
}

impl TraceSettings {
    /// The settings `lookup` gives, for the program `service` (the default service name); `None` when no OTLP
    /// endpoint is set, or tracing is switched off (`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, service: &str) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match get("OTEL_TRACES_EXPORTER").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(_) => return Err(invalid("OTEL_TRACES_EXPORTER", "only otlp (or none) is supported")),
        }
        let endpoint = match (get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), get("OTEL_EXPORTER_OTLP_ENDPOINT")) {
            (Some(url), _) => http_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url)?,
            (None, Some(base)) => {
                let base = http_url("OTEL_EXPORTER_OTLP_ENDPOINT", base)?;
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, None) => return Ok(None),
        };
        for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if get(name).is_some_and(|p| p != "http/protobuf") {
                return Err(invalid(name, "only http/protobuf is supported"));
            }
        }
        let headers = match get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
            Some(list) => headers("OTEL_EXPORTER_OTLP_TRACES_HEADERS", &list)?,
            None => headers("OTEL_EXPORTER_OTLP_HEADERS", &get("OTEL_EXPORTER_OTLP_HEADERS").unwrap_or_default())?,
        };
        let resource = pairs("OTEL_RESOURCE_ATTRIBUTES", &get("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default())?;
        // The spec's precedence: OTEL_SERVICE_NAME, then service.name among the resource attributes.
        let service_name = get("OTEL_SERVICE_NAME")
            .or_else(|| resource.iter().find(|(k, _)| k == "service.name").map(|(_, v)| v.clone()))
            .unwrap_or_else(|| service.to_string());
        let resource = resource.into_iter().filter(|(k, _)| k != "service.name").collect();
        let sampler = sampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG"))?;
        Ok(Some(Self { endpoint, headers, service_name, resource, sampler }))
    }

    /// The traces endpoint, `/v1/traces` included.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The headers every export carries.
    pub fn headers(&self) -> HashMap<String, String> {
        self.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect()
    }

    /// The header values, for the scrubber: they are credentials.
    pub fn secret_values(&self) -> Vec<String> {
        self.headers.iter().map(|(_, v)| v.expose().to_string()).collect()
    }

    /// `service.name`.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// `OTEL_RESOURCE_ATTRIBUTES`, but `service.name`.
    pub fn resource_attributes(&self) -> Vec<KeyValue> {
        self.resource.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect()
    }

    /// The sampler.
    pub fn sampler(&self) -> Sampler {
        let parent = |root: Sampler| Sampler::ParentBased(Box::new(root));
        match self.sampler {
            SamplerChoice::AlwaysOn => Sampler::AlwaysOn,
            SamplerChoice::AlwaysOff => Sampler::AlwaysOff,
            SamplerChoice::Ratio(r) => Sampler::TraceIdRatioBased(r),
            SamplerChoice::ParentBasedAlwaysOn => parent(Sampler::AlwaysOn),
            SamplerChoice::ParentBasedAlwaysOff => parent(Sampler::AlwaysOff),
            SamplerChoice::ParentBasedRatio(r) => parent(Sampler::TraceIdRatioBased(r)),
        }
    }
}

impl fmt::Debug for TraceSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("TraceSettings")
            .field("endpoint", &self.endpoint)
            .field("headers", &header_names)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .field("sampler", &self.sampler)
            .finish()
    }
}

fn invalid(name: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid { name, reason: reason.to_string() }
}

fn http_url(name: &'static str, value: String) -> Result<String, ConfigError> {
    let parsed = url::Url::parse(&value).map_err(|_| invalid(name, "must be an http:// or https:// URL"))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host().is_some() => Ok(value),
        _ => Err(invalid(name, "must be an http:// or https:// URL")),
    }
}

/// `key=value` pairs separated by commas, values percent-decoded (the W3C Baggage form the spec uses).
fn pairs(name: &'static str, list: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(invalid(name, "must be key=value pairs separated by commas"));
        };
        let value =
            percent_decode(value.trim()).ok_or_else(|| invalid(name, "a value is not valid percent-encoding"))?;
        out.push((key.trim().to_string(), value));
    }
    Ok(out)
}

/// [`pairs`] as HTTP headers, whose values are secrets: an error never quotes one.
fn headers(name: &'static str, list: &str) -> Result<Vec<(String, Secret)>, ConfigError> {
    let mut out = Vec::new();
    for (key, value) in pairs(name, list)? {
        let valid_name = axum::http::HeaderName::from_bytes(key.as_bytes()).is_ok();
        if !valid_name || axum::http::HeaderValue::from_str(&value).is_err() {
            return Err(invalid(name, "a header name or value cannot be sent in HTTP"));
        }
        out.push((key, Secret::new(value)));
    }
    Ok(out)
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn sampler(name: Option<String>, arg: Option<String>) -> Result<SamplerChoice, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        match arg.as_deref().map(str::parse::<f64>) {
            None => Ok(1.0),
            Some(Ok(r)) if (0.0..=1.0).contains(&r) => Ok(r),
            Some(_) => Err(invalid("OTEL_TRACES_SAMPLER_ARG", "must be a ratio from 0 to 1")),
        }
    };
    Ok(match name.as_deref().unwrap_or("parentbased_always_on") {
        "always_on" => SamplerChoice::AlwaysOn,
        "always_off" => SamplerChoice::AlwaysOff,
        "traceidratio" => SamplerChoice::Ratio(ratio()?),
        "parentbased_always_on" => SamplerChoice::ParentBasedAlwaysOn,
        "parentbased_always_off" => SamplerChoice::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => SamplerChoice::ParentBasedRatio(ratio()?),
        _ => {
            return Err(invalid(
                "OTEL_TRACES_SAMPLER",
                "must be always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or \
                 parentbased_traceidratio",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Option<TraceSettings>, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TraceSettings::from_lookup(|name| vars.get(name).cloned(), "svc")
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert!(read(&[]).unwrap().is_none());
        assert!(read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "true")])
            .unwrap()
            .is_none());
        assert!(read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_TRACES_EXPORTER", "none")])
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_traces_endpoint_is_used_as_is_and_the_base_gets_its_path() {
        let base = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]).unwrap().unwrap();
        assert_eq!(base.endpoint(), "http://c:4318/v1/traces");
        let own = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t.example/x"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(own.endpoint(), "https://t.example/x");
        assert_eq!(own.service_name(), "svc");
    }

    #[test]
    fn unusable_values_are_refused_naming_the_variable_and_never_quoting_a_header() {
        let e = |vars: &[(&str, &str)]| read(vars).unwrap_err().to_string();
        let url = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        assert!(e(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318")]).starts_with("OTEL_EXPORTER_OTLP_ENDPOINT"));
        assert!(e(&[url, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).starts_with("OTEL_EXPORTER_OTLP_PROTOCOL"));
        assert!(e(&[url, ("OTEL_TRACES_SAMPLER", "sometimes")]).starts_with("OTEL_TRACES_SAMPLER "));
        assert!(e(&[url, ("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "2")])
            .starts_with("OTEL_TRACES_SAMPLER_ARG"));
        let bad_header = e(&[url, ("OTEL_EXPORTER_OTLP_HEADERS", "authentication=hunter2\u{1}secret")]);
        assert!(bad_header.starts_with("OTEL_EXPORTER_OTLP_HEADERS") && !bad_header.contains("hunter2"));
    }

    #[test]
    fn headers_are_secrets_and_resource_attributes_are_decoded() {
        let s = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "Authentication=abc%20def-token"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,deployment.environment=prod%2Dcn"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.headers().get("Authentication").map(String::as_str), Some("abc def-token"));
        assert_eq!(s.secret_values(), vec!["abc def-token".to_string()]);
        assert!(!format!("{s:?}").contains("def-token"));
        assert_eq!(s.service_name(), "from-attrs");
        assert_eq!(s.resource_attributes(), vec![KeyValue::new("deployment.environment", "prod-cn")]);
    }
}
