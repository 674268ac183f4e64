//! Scrubbing secret values from anything that leaves the process: logs, outputs, errors, the
//! store.

use base64::Engine as _;
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
}
