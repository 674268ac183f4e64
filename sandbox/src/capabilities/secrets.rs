//! The `secrets` capability: the operator's secret values a plugin may read, by name
//! (`secrets = ["aws_*", "slack_webhook"]`).

use super::phases::{CallData, HostCapability, Prepare};
use crate::bindings::secrets::Host;
use crate::error::{Capability, Denial, Denials, GrantError};
use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};

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

impl SecretsGrant {
    /// Whether the secret `name` is granted (exactly, or by a `prefix*` pattern).
    pub fn allows(&self, name: &str) -> bool {
        crate::secrets::is_granted(&self.secrets, name)
    }
}

/// The names both patterns match, as one pattern: `aws_*` and `aws_key` → `aws_key`, `*` and
/// `deploy_*` → `deploy_*`, `a_*` and `b_*` → none.
fn intersect(a: &str, b: &str) -> Option<String> {
    match (a.strip_suffix('*'), b.strip_suffix('*')) {
        (Some(pa), Some(pb)) if pa.starts_with(pb) => Some(a.to_string()),
        (Some(pa), Some(pb)) if pb.starts_with(pa) => Some(b.to_string()),
        (Some(pa), None) if b.starts_with(pa) => Some(b.to_string()),
        (None, Some(pb)) if a.starts_with(pb) => Some(a.to_string()),
        (None, None) if a == b => Some(a.to_string()),
        _ => None,
    }
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

    fn link<T: CallData>(
        linker: &mut Linker<T>,
        state: fn(&mut T) -> &mut SecretsState,
    ) -> wasmtime::Result<()> {
        crate::bindings::secrets::add_to_linker::<T, HasSelf<SecretsState>>(linker, state)
    }

    fn grant(
        request: &SecretsRequest,
        operator: &SecretsOperator,
    ) -> Result<SecretsGrant, GrantError> {
        // Narrowing is by name, not by how the patterns are spelt: a plugin that requests
        // `*` can be narrowed to `deploy_*` or to `deploy_key`, never widened.
        let secrets = match &operator.secrets {
            None => request.secrets.clone(),
            Some(allowed) => {
                let mut kept: Vec<String> = Vec::new();
                for r in &request.secrets {
                    for a in allowed {
                        if let Some(both) = intersect(r, a)
                            && !kept.contains(&both)
                        {
                            kept.push(both);
                        }
                    }
                }
                kept
            }
        };
        Ok(SecretsGrant { secrets })
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

    fn grant(request: &[&str], operator: Option<&[&str]>) -> Vec<String> {
        let request = SecretsRequest {
            secrets: request.iter().map(ToString::to_string).collect(),
        };
        let operator = SecretsOperator {
            secrets: operator.map(|o| o.iter().map(ToString::to_string).collect()),
        };
        SecretsCapability::grant(&request, &operator)
            .unwrap()
            .secrets
    }

    #[test]
    fn the_operator_narrows_by_name_never_widens() {
        assert_eq!(grant(&["*"], None), ["*"]);
        assert_eq!(
            grant(&["*"], Some(&["deploy_*", "slack"])),
            ["deploy_*", "slack"]
        );
        assert_eq!(
            grant(&["aws_*", "slack"], Some(&["aws_key", "github"])),
            ["aws_key"]
        );
        assert_eq!(grant(&["aws_key"], Some(&["aws_*"])), ["aws_key"]);
        assert_eq!(grant(&["aws_prod_*"], Some(&["aws_*"])), ["aws_prod_*"]);
        assert!(grant(&["aws_*"], Some(&["gcp_*", "*_key"])).is_empty());
        assert!(grant(&[], Some(&["*"])).is_empty());
        let allowed = SecretsGrant {
            secrets: vec!["aws_*".into()],
        };
        assert!(allowed.allows("aws_key") && !allowed.allows("slack"));
    }
}
