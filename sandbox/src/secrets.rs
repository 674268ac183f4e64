//! The operator's secret values, the names a plugin may read them by, and scrubbing them from
//! anything that leaves the process (logs, outputs, errors, the store).

use base64::Engine as _;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Replaces every known secret value, and its base64 and URL-encoded forms, with `***`.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Arc<Vec<String>>,
}

/// Shorter values would redact ordinary words; such secrets are too weak to protect anyway.
const MIN_REDACTED_LEN: usize = 4;

impl Redactor {
    /// A redactor for these secret values.
    pub fn new<'a>(values: impl Iterator<Item = &'a str>) -> Redactor {
        let mut needles = Vec::new();
        for v in values.filter(|v| v.len() >= MIN_REDACTED_LEN) {
            needles.push(v.to_string());
            for encoded in [
                base64::engine::general_purpose::STANDARD.encode(v),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v),
                urlencoding::encode(v).into_owned(),
            ] {
                // base64 pads can differ by context; match without them.
                let encoded = encoded.trim_end_matches('=').to_string();
                if encoded != v && encoded.len() >= MIN_REDACTED_LEN {
                    needles.push(encoded);
                }
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Redactor {
            needles: Arc::new(needles),
        }
    }

    /// `text` with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for needle in self.needles.iter() {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), "***");
            }
        }
        out
    }

    /// Redacts every string in a JSON value.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        if self.needles.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.redact_json(v)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), self.redact_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The operator's secret values, by name. Cloning is cheap.
#[derive(Clone, Default)]
pub struct Secrets {
    values: Arc<BTreeMap<String, String>>,
    redactor: Redactor,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.values.keys()).finish()
    }
}

impl Secrets {
    /// Resolves config entries: a literal, `env:VAR`, or `file:PATH`.
    pub fn resolve(entries: &BTreeMap<String, String>) -> Result<Secrets, String> {
        let mut values = BTreeMap::new();
        for (name, source) in entries {
            let value = if let Some(var) = source.strip_prefix("env:") {
                std::env::var(var).map_err(|_| {
                    format!("secret `{name}`: environment variable `{var}` is not set")
                })?
            } else if let Some(path) = source.strip_prefix("file:") {
                std::fs::read_to_string(path)
                    .map_err(|e| format!("secret `{name}`: cannot read `{path}`: {e}"))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string()
            } else {
                source.clone()
            };
            values.insert(name.clone(), value);
        }
        Ok(Secrets::from_values(values))
    }

    /// Secrets with these values.
    pub fn from_values(values: BTreeMap<String, String>) -> Secrets {
        let redactor = Redactor::new(values.values().map(String::as_str));
        Secrets {
            values: Arc::new(values),
            redactor,
        }
    }

    /// Every secret, for `{{ secrets.NAME }}` in templates.
    pub fn as_json(&self) -> serde_json::Value {
        serde_json::to_value(&*self.values).unwrap_or_default()
    }

    /// Scrubs every value from text that leaves the process.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The name → value pairs matching `patterns`.
    pub(crate) fn granted(&self, patterns: &[String]) -> Vec<(String, String)> {
        self.values
            .iter()
            .filter(|(name, _)| is_granted(patterns, name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}

/// Whether `name` matches one of `patterns` (exact, or a prefix ending in `*`).
pub fn is_granted(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_plain_base64_and_url_forms() {
        let r = Redactor::new(["s3cr3t/value+x"].into_iter());
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr3t/value+x");
        let text = format!("a s3cr3t/value+x b {b64} c s3cr3t%2Fvalue%2Bx");
        assert_eq!(
            r.redact(&text),
            "a *** b ***= c ***".replace("***=", if b64.ends_with('=') { "***=" } else { "***" })
        );
    }

    #[test]
    fn grants_match_exactly_or_by_prefix() {
        let patterns = vec!["aws_*".to_string(), "slack".to_string()];
        assert!(is_granted(&patterns, "aws_key"));
        assert!(is_granted(&patterns, "slack"));
        assert!(!is_granted(&patterns, "slack_webhook"));
    }
}
