//! The `secrets` capability: the operator's secret values a plugin may read, by name
//! (`secrets = ["aws_*", "slack_webhook"]`).

use super::phases::{CallData, HostCapability, Prepare, narrow};
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
