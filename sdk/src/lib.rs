//! Write wasmops step plugins in Rust.
//!
//! A plugin is a `wasm32-wasip2` cdylib that implements [`Step`] and calls [`step_plugin!`]:
//!
//! ```no_run
//! use serde::Deserialize;
//! use wasmops_sdk::{Context, Error, Outcome, Step};
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { name: String }
//!
//! struct Hello;
//!
//! impl Step for Hello {
//!     type Config = Config;
//!     fn run(_ctx: &Context, config: Config) -> Result<Outcome, Error> {
//!         wasmops_sdk::info!("greeting {}", config.name);
//!         Ok(Outcome::summary(format!("hello, {}", config.name)).with_output("name", config.name))
//!     }
//! }
//!
//! wasmops_sdk::step_plugin!(Hello);
//! ```
//!
//! The crate generates the bindings for the `wasmops:plugin/step-plugin` world once, in
//! [`bindings`], so plugins need neither `wit-bindgen` nor a copy of the WIT. Host imports are
//! wrapped per concern: [`log`], [`secrets`], [`exec`], [`http`]; [`output_file`] implements the
//! `$WASMOPS_OUTPUT` convention and [`duration`] the `30s`/`5m` durations of `with` blocks.

/// Bindings generated from `wit/plugin.wit` (world `wasmops:plugin/step-plugin@0.1.0`). Plugins
/// normally use the wrappers in this crate; the raw types are here for anything they do not cover.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "wasmops:plugin/step-plugin@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_step",
        default_bindings_module: "wasmops_sdk::bindings",
        // The world imports `wasi:http/outgoing-handler`; its WASI dependencies are generated
        // here too, so plugins get HTTP without another bindings crate.
        generate_all,
    });
}

mod context;
pub mod duration;
mod error;
pub mod exec;
pub mod http;
pub mod log;
mod outcome;
pub mod output_file;
pub mod secrets;
mod step;

pub use context::Context;
pub use error::{Error, ResultExt};
pub use outcome::{Approvers, Info, Outcome, Outputs, Wait};
pub use step::{Step, parse_config};

/// A decision on a parked step: `kind` (continue, approve, reject, timeout), `actor`, `comment`.
pub use bindings::wasmops::plugin::types::{Decision, DecisionKind};

/// Re-exported so plugins can use `wasmops_sdk::serde_json::json!` and friends without adding the
/// dependency themselves (`serde` is needed directly for `#[derive(Deserialize)]`).
pub use serde_json;

/// Everything a typical plugin needs: `use wasmops_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::duration::HumanDuration;
    pub use crate::exec::Command;
    pub use crate::{
        Context, Decision, DecisionKind, Error, Info, Outcome, Outputs, ResultExt, Step, Wait,
    };
    pub use serde_json::{Value, json};
}

/// Used by [`step_plugin!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::step::{describe, resume, run, validate};
}

/// Exports a [`Step`] implementation as the plugin's WIT `step` interface.
///
/// Call it once, at the crate root of a `cdylib`, with the name of the type implementing
/// [`Step`]. It implements the generated `Guest` trait for that type and emits the component
/// exports and type information.
#[macro_export]
macro_rules! step_plugin {
    ($plugin:ident) => {
        impl $crate::bindings::exports::wasmops::plugin::step::Guest for $plugin {
            fn describe() -> $crate::bindings::wasmops::plugin::types::StepInfo {
                $crate::__private::describe::<$plugin>(::core::env!("CARGO_PKG_DESCRIPTION"))
            }

            fn validate(
                config: ::std::string::String,
            ) -> ::core::result::Result<(), ::std::vec::Vec<::std::string::String>> {
                $crate::__private::validate::<$plugin>(&config)
            }

            fn run(
                request: $crate::bindings::wasmops::plugin::types::StepRequest,
            ) -> ::core::result::Result<
                $crate::bindings::wasmops::plugin::types::StepOutcome,
                ::std::string::String,
            > {
                $crate::__private::run::<$plugin>(request)
            }

            fn resume(
                request: $crate::bindings::wasmops::plugin::types::StepRequest,
                state: ::std::string::String,
                decision: $crate::Decision,
            ) -> ::core::result::Result<
                $crate::bindings::wasmops::plugin::types::StepOutcome,
                ::std::string::String,
            > {
                $crate::__private::resume::<$plugin>(request, state, decision)
            }
        }

        $crate::bindings::export_step!($plugin with_types_in $crate::bindings);
    };
}
