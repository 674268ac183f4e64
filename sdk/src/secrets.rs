//! Secrets the plugin was granted, by name.
//!
//! Only names listed under `capabilities.secrets` in `plugin.toml` (and not narrowed away by the
//! operator) resolve; everything else fails, so a plugin cannot probe for secrets it was not given.

use crate::Error;

/// The value of secret `name`. Fails when the name was not granted or is not set.
pub fn get(name: &str) -> Result<String, Error> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::wasmops::plugin::secrets::get(name)
            .map_err(|message| Error::new(format!("secret `{name}`: {message}")))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err(Error::new(format!(
            "secret `{name}`: secrets are only available inside a wasmops host"
        )))
    }
}
