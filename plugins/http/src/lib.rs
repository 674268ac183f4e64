//! `http`: calls an HTTP endpoint and checks its answer, the health check of a deploy pipeline.
//!
//! One request (and, with `follow_redirects`, the hops it is sent on), retried with a doubling
//! delay on 5xx answers and connection errors; the step fails unless the final status is
//! expected. Every hop goes through the host's `http` grant, so a redirect to a host the
//! operator did not grant fails the step with the sandbox's refusal.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use wasmops_sdk::http::{Request, Response};
use wasmops_sdk::prelude::*;
use wasmops_sdk::serde_json;

/// The most retries a step may ask for.
const MAX_RETRIES: u32 = 10;
/// The most redirects followed for one attempt.
const MAX_REDIRECTS: usize = 10;
/// Each attempt's timeout when none is given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The first retry's delay when none is given; it doubles after each retry, up to the cap.
const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// The body kept in the `body` output; the rest is cut (the step still sees all of it).
const MAX_BODY_OUTPUT: usize = 256 << 10;
/// The body quoted in a failure message.
const BODY_IN_FAILURE: usize = 300;

/// The `with` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `GET` when absent.
    method: Option<String>,
    /// An absolute `http://` or `https://` URL; its host must be granted.
    url: String,
    /// Header name → value (numbers and booleans are written as text).
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    /// A text body.
    body: Option<String>,
    /// A JSON body, sent with `content-type: application/json`.
    json: Option<Value>,
    /// The status, or statuses, that pass; any 2xx when absent.
    expect_status: Option<ExpectStatus>,
    /// Each attempt gives up after this long (`30s` when absent).
    timeout: Option<HumanDuration>,
    /// Attempts after the first on a 5xx answer or a connection error.
    #[serde(default)]
    retries: u32,
    /// The delay before the first retry (`1s` when absent); it doubles after each.
    retry_delay: Option<HumanDuration>,
    /// Follow 301, 302, 303, 307 and 308 answers (off by default); each hop's host must be
    /// granted too.
    #[serde(default)]
    follow_redirects: bool,
}

/// `expect_status: 204` or `expect_status: [200, 404]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ExpectStatus {
    One(u16),
    Any(Vec<u16>),
}

impl Config {
    fn method(&self) -> String {
        self.method
            .as_deref()
            .unwrap_or("GET")
            .trim()
            .to_ascii_uppercase()
    }

    fn expected(&self, status: u16) -> bool {
        match &self.expect_status {
            None => (200..300).contains(&status),
            Some(ExpectStatus::One(s)) => *s == status,
            Some(ExpectStatus::Any(list)) => list.contains(&status),
        }
    }

    fn expectation(&self) -> String {
        match &self.expect_status {
            None => "2xx".into(),
            Some(ExpectStatus::One(s)) => s.to_string(),
            Some(ExpectStatus::Any(list)) => list
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }

    /// The first request of an attempt.
    fn request(&self) -> Result<Request, Error> {
        let mut request = Request::new(self.method(), self.url.trim())
            .timeout(self.timeout.map_or(DEFAULT_TIMEOUT, Duration::from));
        for (name, value) in &self.headers {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            request = request.header(name, value);
        }
        if let Some(json) = &self.json {
            request = request.json(json)?;
        } else if let Some(body) = &self.body {
            request = request.body(body.clone().into_bytes());
        }
        Ok(request)
    }
}

struct Http;

impl Step for Http {
    type Config = Config;

    fn describe() -> Info {
        Info::new("Calls an HTTP endpoint and checks its answer: health checks, webhooks, APIs")
            .with_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["url"],
                "properties": {
                    "method": { "type": "string", "description": "GET (default), POST, PUT, PATCH, DELETE, HEAD…" },
                    "url": { "type": "string", "description": "Absolute http(s) URL; its host must be granted to the plugin" },
                    "headers": { "type": "object", "description": "Header name → value" },
                    "body": { "type": "string", "description": "A text body" },
                    "json": { "description": "A JSON body (sets content-type: application/json)" },
                    "expect_status": {
                        "description": "The status or statuses that pass (default: any 2xx)",
                        "oneOf": [
                            { "type": "integer" },
                            { "type": "array", "items": { "type": "integer" } }
                        ]
                    },
                    "timeout": { "type": ["string", "integer"], "description": "Each attempt's timeout (default 30s)" },
                    "retries": { "type": "integer", "minimum": 0, "maximum": MAX_RETRIES, "description": "Retries on a 5xx answer or a connection error (default 0)" },
                    "retry_delay": { "type": ["string", "integer"], "description": "Delay before the first retry, doubling after each (default 1s)" },
                    "follow_redirects": { "type": "boolean", "description": "Follow redirects (default false); every hop's host must be granted" }
                }
            }))
            .with_outputs(["status", "headers", "body", "json", "attempts"])
    }

    fn validate(config: &Config) -> Result<(), Error> {
        let method = config.method();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Error::new(format!(
                "method `{method}` is not an HTTP method (GET, POST, PUT, PATCH, DELETE, HEAD…)"
            )));
        }
        // A URL built from a template is checked when it is rendered, before it is sent.
        if !config.url.contains("{{") {
            parse_url(&config.url)?;
        }
        if config.body.is_some() && config.json.is_some() {
            return Err(Error::new("give `body` or `json`, not both"));
        }
        if config.retries > MAX_RETRIES {
            return Err(Error::new(format!(
                "retries: {} is more than {MAX_RETRIES}",
                config.retries
            )));
        }
        let statuses = match &config.expect_status {
            None => Vec::new(),
            Some(ExpectStatus::One(s)) => vec![*s],
            Some(ExpectStatus::Any(list)) if list.is_empty() => {
                return Err(Error::new("expect_status: give at least one status"));
            }
            Some(ExpectStatus::Any(list)) => list.clone(),
        };
        if let Some(bad) = statuses.iter().find(|s| !(100..=599).contains(*s)) {
            return Err(Error::new(format!(
                "expect_status: {bad} is not an HTTP status (100 to 599)"
            )));
        }
        for name in config.headers.keys() {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(Error::new(format!(
                    "headers: `{name}` is not a header name"
                )));
            }
        }
        Ok(())
    }

    fn run(_ctx: &Context, config: Config) -> Result<Outcome, Error> {
        parse_url(&config.url)?;
        let mut delay = config
            .retry_delay
            .map_or(DEFAULT_RETRY_DELAY, Duration::from)
            .min(MAX_RETRY_DELAY);
        let mut attempt = 1;
        let response = loop {
            let failed = match exchange(&config) {
                Ok(response) if response.status < 500 || config.expected(response.status) => {
                    break response;
                }
                Ok(response) if attempt > config.retries => break response,
                Ok(response) => status_line(response.status),
                // The sandbox's refusal is not going to change on a second try.
                Err(e) if e.is_denial() => return Err(e),
                Err(e) if attempt > config.retries => return Err(e),
                Err(e) => e.to_string(),
            };
            wasmops_sdk::log::warn(format!(
                "attempt {attempt} of {}: {failed}; trying again in {}",
                config.retries + 1,
                HumanDuration(delay)
            ));
            std::thread::sleep(delay);
            delay = (delay * 2).min(MAX_RETRY_DELAY);
            attempt += 1;
        };
        let outputs = outputs(&response, attempt);
        if !config.expected(response.status) {
            let body = String::from_utf8_lossy(&response.body);
            let body: String = body.trim().chars().take(BODY_IN_FAILURE).collect();
            let tries = if attempt > 1 {
                format!(" after {attempt} attempts")
            } else {
                String::new()
            };
            return Err(Error::new(format!(
                "{} from {} {} (expected {}){tries}{}",
                status_line(response.status),
                config.method(),
                config.url.trim(),
                config.expectation(),
                if body.is_empty() {
                    String::new()
                } else {
                    format!(": {body}")
                }
            )));
        }
        Ok(Outcome::summary(status_line(response.status)).with_outputs(outputs))
    }
}

/// One attempt: the request, and the hops it is redirected on when asked to follow them.
fn exchange(config: &Config) -> Result<Response, Error> {
    let mut request = config.request()?;
    for _ in 0..=MAX_REDIRECTS {
        let response = request.clone().send()?;
        let location = response.header("location").map(str::to_string);
        let redirected = matches!(response.status, 301 | 302 | 303 | 307 | 308);
        let (true, true, Some(location)) = (config.follow_redirects, redirected, location) else {
            return Ok(response);
        };
        let next = parse_url(&request.url)?
            .join(&location)
            .map_err(|e| Error::new(format!("redirect to `{location}`: {e}")))?;
        wasmops_sdk::log::info(format!(
            "{} from {}: following it to {next}",
            status_line(response.status),
            request.url
        ));
        // A 303, and a 301 or 302 answering a POST, turn the request into a GET without a
        // body, as browsers and curl do.
        let becomes_get = response.status == 303
            || (matches!(response.status, 301 | 302) && request.method == "POST");
        if becomes_get {
            request.method = "GET".into();
            request.body.clear();
            request
                .headers
                .retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
        }
        request.url = next.into();
    }
    Err(Error::new(format!(
        "more than {MAX_REDIRECTS} redirects from {}",
        config.url.trim()
    )))
}

fn parse_url(text: &str) -> Result<url::Url, Error> {
    let url = url::Url::parse(text.trim())
        .map_err(|e| Error::new(format!("url `{text}` is not an absolute URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::new(format!(
            "url `{text}`: give an http:// or https:// URL with a host"
        )));
    }
    Ok(url)
}

/// `HTTP 200 OK`.
fn status_line(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason());
    match reason {
        Some(reason) => format!("HTTP {status} {reason}"),
        None => format!("HTTP {status}"),
    }
}

fn outputs(response: &Response, attempts: u32) -> Outputs {
    let mut headers = serde_json::Map::new();
    for (name, value) in &response.headers {
        // A repeated header keeps its values together, as one comma-separated field.
        let joined = match headers.get(name).and_then(Value::as_str) {
            Some(previous) => format!("{previous}, {value}"),
            None => value.clone(),
        };
        headers.insert(name.clone(), Value::String(joined));
    }
    let text = response.text();
    let mut outputs = Outputs::new();
    outputs.insert("status".into(), json!(response.status));
    outputs.insert("headers".into(), Value::Object(headers));
    outputs.insert("attempts".into(), json!(attempts));
    if let Ok(parsed) = serde_json::from_slice::<Value>(&response.body) {
        outputs.insert("json".into(), parsed);
    }
    let body: String = if text.len() > MAX_BODY_OUTPUT {
        let mut end = MAX_BODY_OUTPUT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_string()
    } else {
        text
    };
    outputs.insert("body".into(), Value::String(body));
    outputs
}

/// RFC 9110's `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

wasmops_sdk::step_plugin!(Http);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: Value) -> Config {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let check = |with: Value| Http::validate(&config(with)).map_err(|e| e.to_string());
        assert!(check(json!({"url": "https://example.com/health"})).is_ok());
        assert!(check(json!({"url": "{{ properties.base }}/health"})).is_ok());
        let cases = [
            (json!({"url": "example.com"}), "is not an absolute URL"),
            (json!({"url": "ftp://example.com"}), "http:// or https://"),
            (
                json!({"url": "https://x", "method": "GE T"}),
                "is not an HTTP method",
            ),
            (
                json!({"url": "https://x", "body": "a", "json": {}}),
                "not both",
            ),
            (json!({"url": "https://x", "retries": 11}), "more than 10"),
            (
                json!({"url": "https://x", "expect_status": 99}),
                "not an HTTP status",
            ),
            (
                json!({"url": "https://x", "expect_status": []}),
                "at least one",
            ),
            (
                json!({"url": "https://x", "headers": {"a b": "c"}}),
                "not a header name",
            ),
        ];
        for (with, expected) in cases {
            let error = check(with.clone()).unwrap_err();
            assert!(error.contains(expected), "{with}: {error}");
        }
    }

    #[test]
    fn statuses_and_reasons() {
        let c = config(json!({"url": "https://x", "expect_status": [200, 404]}));
        assert!(c.expected(404) && !c.expected(201));
        assert_eq!(c.expectation(), "200 or 404");
        assert!(config(json!({"url": "https://x"})).expected(204));
        assert_eq!(status_line(503), "HTTP 503 Service Unavailable");
        assert_eq!(status_line(299), "HTTP 299");
    }
}
