//! The `secrets` capability: the operator's secret values, and the ones a plugin may read by
//! name (`secrets = ["aws_*", "slack_webhook"]`).

use super::{HostCapability, Prepare, narrow};
use crate::bindings::secrets::Host;
use crate::call::{CallState, Denials};
use crate::error::{Capability, Denial, GrantError};
use crate::redact::Redactor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

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
    fn granted(&self, patterns: &[String]) -> Vec<(String, String)> {
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

/// The secrets capability.
pub(crate) struct SecretsCapability;

/// `secrets = ["aws_*", "slack"]`: names a plugin may read; a trailing `*` matches a prefix.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretsRequest {
    /// Name patterns.
    pub secrets: Vec<String>,
}

/// `secrets = [...]` in `[plugins.NAME]`: keeps only these of the requested patterns.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretsOperator {
    /// Patterns the operator allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<String>>,
}

/// The secret name patterns in force.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SecretsGrant {
    /// Name patterns.
    pub secrets: Vec<String>,
}

/// The values one call may read.
pub(crate) struct SecretsState {
    plugin: String,
    granted: Vec<(String, String)>,
    denials: Denials,
}

impl HostCapability for SecretsCapability {
    const NAME: Capability = Capability::Secrets;
    const REQUEST_KEYS: &'static [&'static str] = &["secrets"];
    const OPERATOR_KEYS: &'static [&'static str] = &["secrets"];
    type Request = SecretsRequest;
    type Operator = SecretsOperator;
    type Grant = SecretsGrant;
    type State = SecretsState;

    fn link(
        linker: &mut Linker<CallState>,
        state: fn(&mut CallState) -> &mut SecretsState,
    ) -> wasmtime::Result<()> {
        crate::bindings::secrets::add_to_linker::<_, HasSelf<SecretsState>>(linker, state)
    }

    fn grant(
        request: &SecretsRequest,
        operator: &SecretsOperator,
    ) -> Result<SecretsGrant, GrantError> {
        Ok(SecretsGrant {
            secrets: narrow(&request.secrets, operator.secrets.as_ref()),
        })
    }

    fn prepare(grant: &SecretsGrant, cx: &mut Prepare<'_>) -> Result<SecretsState, String> {
        Ok(SecretsState {
            plugin: cx.plugin.to_string(),
            granted: cx.secrets.granted(&grant.secrets),
            denials: cx.denials.clone(),
        })
    }
}

impl Host for SecretsState {
    async fn get(&mut self, name: String) -> Result<String, String> {
        if let Some((_, value)) = self.granted.iter().find(|(n, _)| *n == name) {
            return Ok(value.clone());
        }
        let denial = Denial::new(
            Capability::Secrets,
            format!(
                "`{name}` is not granted to plugin `{}` or is not set",
                self.plugin
            ),
        );
        Err(self.denials.refuse(denial))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_match_exactly_or_by_prefix() {
        let patterns = vec!["aws_*".to_string(), "slack".to_string()];
        assert!(is_granted(&patterns, "aws_key"));
        assert!(is_granted(&patterns, "slack"));
        assert!(!is_granted(&patterns, "slack_webhook"));
    }
}
