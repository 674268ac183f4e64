//! The `env` capability: host environment variables, by name, passed to the plugin and to the
//! programs it runs. Nothing of the daemon's environment is passed otherwise.

use super::phases::{CallData, HostCapability, Prepare, narrow};
use crate::error::{Capability, GrantError};
use serde::{Deserialize, Serialize};
use wasmtime::component::Linker;

/// The env capability.
pub(crate) struct Env;

/// `env = ["TF_LOG"]`: variables a plugin may see.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvRequest {
    /// Variable names.
    pub env: Vec<String>,
}

/// `env = [...]` in `[plugins.NAME]`: keeps only these of the requested names.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvOperator {
    /// Names the operator allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
}

/// The variable names in force.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EnvGrant {
    /// Variable names.
    pub env: Vec<String>,
}

impl EnvGrant {
    /// The granted variables the daemon has, read now (the environment can change).
    pub(crate) fn values(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
            .collect()
    }
}

impl HostCapability for Env {
    const NAME: Capability = Capability::Env;
    const REQUEST_KEYS: &'static [&'static str] = &["env"];
    const OPERATOR_KEYS: &'static [&'static str] = &["env"];
    type Request = EnvRequest;
    type Operator = EnvOperator;
    type Grant = EnvGrant;
    type State = ();

    /// WASI's own environment interface carries the values; nothing of ours to link.
    fn link<T: CallData>(_: &mut Linker<T>, _: fn(&mut T) -> &mut ()) -> wasmtime::Result<()> {
        Ok(())
    }

    fn grant(request: &EnvRequest, operator: &EnvOperator) -> Result<EnvGrant, GrantError> {
        Ok(EnvGrant {
            env: narrow(&request.env, operator.env.as_ref()),
        })
    }

    fn prepare(grant: &EnvGrant, cx: &mut Prepare<'_>) -> Result<(), String> {
        for (name, value) in grant.values() {
            cx.wasi.env(name, value);
        }
        Ok(())
    }
}
