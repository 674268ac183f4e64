//! The operator's secret values, the names a plugin may read them by, and scrubbing them from
//! anything that leaves the process (logs, outputs, errors, the store).

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::capabilities::secrets::SecretsGrant;

/// Replaces every known secret value with `***`, and the forms it is commonly printed in: each
/// line of a multi-line value, URL-encoded, and base64 (standard or URL-safe, on one line or
/// wrapped at 64 or 76 columns, on its own or inside a longer encoded string such as the
/// `user:password` of basic auth).
///
/// All the forms go into one Aho-Corasick automaton built once, so redacting a line costs one
/// pass over it whatever the number of secrets.
#[derive(Clone, Default)]
pub struct Redactor {
    matcher: Option<Arc<AhoCorasick>>,
}

/// Shorter values would redact ordinary words; such secrets are too weak to protect anyway.
const MIN_REDACTED_LEN: usize = 4;
/// A line of a multi-line secret is redacted on its own from this length (a PEM key's body
/// lines are 64 characters); shorter ones (`-----END…`, `}`) are not secret on their own.
const MIN_LINE_LEN: usize = 12;
/// Base64 of a secret is matched in pieces this long (9 bytes of the secret), starting at every
/// 4-character group, so that any wrapped line holding at least this much of it is caught.
const B64_WINDOW: usize = 12;
/// Shorter base64 fragments are too likely to occur by chance.
const MIN_B64_LEN: usize = 8;
/// Base64 pieces are made from at most this much of each secret, which bounds the automaton;
/// the whole value and its lines are still matched beyond it.
const MAX_B64_SOURCE: usize = 64 << 10;

impl Redactor {
    /// A redactor for these secret values.
    pub fn new<'a>(values: impl Iterator<Item = &'a str>) -> Redactor {
        let mut needles = BTreeSet::new();
        for value in values.filter(|v| v.len() >= MIN_REDACTED_LEN) {
            add_forms(value, &mut needles);
        }
        if needles.is_empty() {
            return Redactor::default();
        }
        // Standard semantics report overlapping matches, whose union is what gets replaced: the
        // base64 pieces of one secret overlap, and one secret may contain another.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&needles)
            .expect("a few thousand short literal patterns always build");
        Redactor {
            matcher: Some(Arc::new(matcher)),
        }
    }

    /// Whether it knows no secret (and so changes nothing).
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// `text` with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let Some(matcher) = &self.matcher else {
            return text.to_string();
        };
        let mut spans: Vec<(usize, usize)> = matcher
            .find_overlapping_iter(text)
            .map(|m| (m.start(), m.end()))
            .collect();
        if spans.is_empty() {
            return text.to_string();
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in merged {
            out.push_str(&text[at..start]);
            out.push_str("***");
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// Whether `reader` (a file, say) holds any secret in any of the forms [`Redactor::redact`]
    /// replaces. Reads it in chunks, so a large file costs no more memory than a small one.
    pub fn found_in(&self, reader: impl std::io::Read) -> std::io::Result<bool> {
        let Some(matcher) = &self.matcher else {
            return Ok(false);
        };
        match matcher.try_stream_find_iter(reader) {
            Ok(mut found) => found.next().transpose().map(|m| m.is_some()),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Redacts every string in a JSON value.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        if self.matcher.is_none() {
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

/// The forms one secret value is redacted in.
fn add_forms(value: &str, needles: &mut BTreeSet<String>) {
    let mut plain = vec![value];
    if value.contains('\n') {
        plain.extend(
            value
                .lines()
                .map(str::trim)
                .filter(|line| line.len() >= MIN_LINE_LEN),
        );
    }
    for text in plain {
        needles.insert(text.to_string());
        let encoded = urlencoding::encode(text);
        if encoded != text {
            // Encoders differ in the case of their hex digits.
            needles.insert(lower_hex_escapes(&encoded));
            needles.insert(encoded.into_owned());
        }
    }
    let source = &value.as_bytes()[..value.len().min(MAX_B64_SOURCE)];
    for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
        let whole = engine.encode(value);
        if whole.len() >= MIN_B64_LEN {
            needles.insert(whole);
        }
        // Base64 of a longer string holding the secret at byte offset k encodes it in one of
        // three alignments (k mod 3). In each, the groups of 4 characters that hold only bytes
        // of the secret are the same whatever surrounds it: encode the secret after 0, 1 and 2
        // filler bytes and keep those groups.
        for offset in 0..3 {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(source);
            let encoded = engine.encode(&bytes);
            let whole_groups = bytes.len() / 3 * 4;
            // Characters of partial groups that still hold only bits of the secret: after 1
            // filler byte the group's last two, after 2 its last one; at the end, one for each
            // byte left over.
            let first = [0, 2, 3][offset];
            let last = whole_groups + bytes.len() % 3;
            let aligned = if offset == 0 { 0 } else { 4 };
            for (from, to) in [
                (first, last.min(aligned + B64_WINDOW)),
                (whole_groups.saturating_sub(B64_WINDOW).max(first), last),
            ] {
                if to >= from + MIN_B64_LEN {
                    needles.insert(encoded[from..to].to_string());
                }
            }
            if whole_groups < aligned + B64_WINDOW {
                continue;
            }
            // Wrapping cuts it at multiples of 4 (64 and 76 are), so pieces of whole groups
            // starting at every group catch each wrapped line; their overlapping matches merge
            // into one span.
            let middle = &encoded[aligned..whole_groups];
            for at in (0..=middle.len() - B64_WINDOW).step_by(4) {
                needles.insert(middle[at..at + B64_WINDOW].to_string());
            }
        }
    }
}

/// `%2F` → `%2f`: the same URL encoding as another encoder writes it.
fn lower_hex_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
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

    /// The secrets `grant` allows, name → value, for `{{ secrets.NAME }}` in the `with:` of a
    /// step whose plugin has that grant; no other template sees any secret.
    pub fn granted_json(&self, grant: &SecretsGrant) -> serde_json::Value {
        serde_json::Value::Object(
            self.granted(&grant.secrets)
                .into_iter()
                .map(|(name, value)| (name, serde_json::Value::String(value)))
                .collect(),
        )
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

    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    /// A PEM-like key: 25 lines of 64 base64 characters between BEGIN and END lines.
    fn pem() -> String {
        let mut state: u32 = 0x2545_f491;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let body: String = (0..25 * 64)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                alphabet[(state % 64) as usize] as char
            })
            .collect();
        let lines: Vec<&str> = (0..25).map(|i| &body[i * 64..(i + 1) * 64]).collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
            lines.join("\n")
        )
    }

    /// Base64 wrapped as `base64` (76) or `openssl base64` (64) prints it.
    fn wrapped(encoded: &str, width: usize) -> Vec<String> {
        encoded
            .as_bytes()
            .chunks(width)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect()
    }

    /// The longest run of `redacted` (outside `***`) that also occurs in `form`.
    fn longest_leak(redacted: &str, form: &str) -> usize {
        let mut longest = 0;
        for segment in redacted.split("***") {
            for start in 0..segment.len() {
                for end in (start + longest + 1)..=segment.len() {
                    if form.contains(&segment[start..end]) {
                        longest = end - start;
                    } else {
                        break;
                    }
                }
            }
        }
        longest
    }

    #[test]
    fn every_form_of_a_secret_is_redacted() {
        let password = "hunter2-very-secret";
        let key = pem();
        let r = Redactor::new([password, key.as_str(), "s3cr3t/value+x"].into_iter());
        // (what was printed, the form of the secret it holds)
        let mut cases: Vec<(String, String)> = vec![
            (format!("pw={password}!"), password.into()),
            ("a s3cr3t/value+x b".into(), "s3cr3t/value+x".into()),
            ("url s3cr3t%2Fvalue%2Bx".into(), "s3cr3t%2Fvalue%2Bx".into()),
            ("url s3cr3t%2fvalue%2bx".into(), "s3cr3t%2fvalue%2bx".into()),
            (STANDARD.encode(password), STANDARD.encode(password)),
            (
                URL_SAFE.encode("s3cr3t/value+x"),
                URL_SAFE.encode("s3cr3t/value+x"),
            ),
            (key.clone(), key.clone()),
        ];
        // Basic auth: base64 of `user:secret` for every alignment of the secret.
        for user in ["u", "ab", "admin", "deploy-bot"] {
            let header = STANDARD.encode(format!("{user}:{password}"));
            // From the group holding the password's first byte: what encodes the user is no leak.
            let from = (user.len() + 1) / 3 * 4;
            let redacted = r.redact(&format!("Authorization: Basic {header}"));
            // On one line, only characters that mix in bits of the user or the padding stay.
            let leak = longest_leak(&redacted, &header[from..]);
            assert!(leak <= 3, "{leak} characters left in {redacted:?}");
            cases.push((
                format!("Authorization: Basic {header}"),
                header[from..].to_string(),
            ));
        }
        // Each line of a multi-line secret, printed alone.
        for line in key.lines().filter(|l| l.len() >= MIN_LINE_LEN) {
            cases.push((format!("stdout: {line}"), line.to_string()));
        }
        // Base64 of the key (or of a file holding it after a prefix), wrapped as tools do.
        for (prefix, width) in [("", 76), ("", 64), ("x", 76), ("key: ", 64), ("", 10_000)] {
            let encoded = STANDARD.encode(format!("{prefix}{key}\n"));
            let url_safe = URL_SAFE.encode(format!("{prefix}{key}"));
            for line in wrapped(&encoded, width) {
                cases.push((line, encoded.clone()));
            }
            for line in wrapped(&url_safe, width) {
                cases.push((line, url_safe.clone()));
            }
        }
        for (printed, form) in &cases {
            let redacted = r.redact(printed);
            // At most two groups of base64 (6 bytes) survive at the edge of a wrapped block.
            let leak = longest_leak(&redacted, form);
            assert!(
                leak <= 8,
                "{leak} characters left of {form:?} in {redacted:?}"
            );
            assert!(!redacted.contains(password) && !redacted.contains(&key));
        }
    }

    #[test]
    fn other_text_is_left_alone() {
        let key = pem();
        let r = Redactor::new(["hunter2-very-secret", "abc", key.as_str()].into_iter());
        for text in [
            "hello world",
            "abc is too short to be redacted",
            "a line with base64 of something else: aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=",
            "",
        ] {
            assert_eq!(r.redact(text), text);
        }
        assert_eq!(Redactor::default().redact("anything"), "anything");
        assert!(!r.found_in("nothing here".as_bytes()).unwrap());
        assert!(r.found_in(format!("x\n{key}\ny").as_bytes()).unwrap());
    }

    #[test]
    fn a_secret_holding_another_is_replaced_whole() {
        let r = Redactor::new(["tok-1234", "tok-1234-extended"].into_iter());
        assert_eq!(
            r.redact("a tok-1234-extended b tok-1234 c"),
            "a *** b *** c"
        );
        let json = serde_json::json!({"k": ["tok-1234"], "n": 1});
        assert_eq!(
            r.redact_json(&json),
            serde_json::json!({"k": ["***"], "n": 1})
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
