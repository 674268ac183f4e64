//! Write wasmops plugins in Rust: steps, triggers and notifiers.
//!
//! A plugin is a `wasm32-wasip2` cdylib that implements one trait and calls its macro. A step
//! implements [`Step`] and calls [`step_plugin!`]:
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
//! A trigger implements [`Trigger`] and calls [`trigger_plugin!`]: it names what the host listens
//! for ([`Subscription`]) and decides on each [`TriggerEvent`] with a [`Verdict`]:
//!
//! ```no_run
//! use serde::Deserialize;
//! use wasmops_sdk::{Error, Subscription, Trigger, TriggerEvent, Verdict};
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { branch: String }
//!
//! struct OnPush;
//!
//! impl Trigger for OnPush {
//!     type Config = Config;
//!     fn subscribe(_config: &Config) -> Result<Vec<Subscription>, Error> {
//!         Ok(vec![Subscription::HttpRoute])
//!     }
//!     fn on_event(config: &Config, event: &TriggerEvent) -> Result<Verdict, Error> {
//!         if event.header("x-event") != Some("push") {
//!             return Ok(Verdict::Ignore);
//!         }
//!         let push: serde_json::Value = event.json()?;
//!         if push["ref"] != format!("refs/heads/{}", config.branch) {
//!             return Ok(Verdict::reject("not the configured branch"));
//!         }
//!         Ok(Verdict::fire().with_input("commit", push["after"].clone()))
//!     }
//! }
//!
//! wasmops_sdk::trigger_plugin!(OnPush);
//! ```
//!
//! A notifier implements [`Notifier`] and calls [`notifier_plugin!`]; it is told about each
//! [`RunEvent`]:
//!
//! ```no_run
//! use serde::Deserialize;
//! use wasmops_sdk::{Error, Notifier, RunEvent, http::Request};
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { url: String }
//!
//! struct Webhook;
//!
//! impl Notifier for Webhook {
//!     type Config = Config;
//!     fn notify(config: &Config, event: &RunEvent) -> Result<(), Error> {
//!         let body = serde_json::json!({ "run": event.run_id, "status": event.status });
//!         let response = Request::post(&config.url).json(&body)?.send()?;
//!         if !(200..300).contains(&response.status) {
//!             wasmops_sdk::bail!("{} answered {}", config.url, response.status);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! wasmops_sdk::notifier_plugin!(Webhook);
//! ```
//!
//! The crate generates the bindings for the `wasmops:plugin` worlds once, in [`bindings`], so
//! plugins need neither `wit-bindgen` nor a copy of the WIT. Host imports are wrapped per concern:
//! [`log`], [`secrets`], [`exec`], [`http`]; [`output_file`] implements the `$WASMOPS_OUTPUT`
//! convention and [`duration`] the `30s`/`5m` durations of `with` blocks.

#![warn(missing_docs)]

/// Bindings generated from `wit/plugin.wit`: world `wasmops:plugin/step-plugin@0.1.0` here, with
/// the interfaces every world shares (`types`, `log`, `secrets`, `exec`, `wasi:http`…), and the
/// `trigger-plugin` and `notifier-plugin` worlds in [`bindings::trigger_world`] and
/// [`bindings::notifier_world`], which reuse those shared modules. Plugins normally use the
/// wrappers in this crate; the raw types are here for anything they do not cover.
#[allow(missing_docs, reason = "generated from the WIT, which documents it")]
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

    // The trigger and notifier worlds share `types`, `log`, `secrets`, `exec` and `wasi:http` with
    // the step world, so their `generate!`s only emit the world's export and map everything else
    // (`with`) onto the modules above. That is complete because wit-bindgen generates every
    // `types` record some world of the package uses, not only the step world's. There is no
    // `generate_all` below: an interface missing from `with` fails the build instead of being
    // generated a second time.

    /// The `wasmops:plugin/trigger-plugin@0.1.0` world: only its `trigger` export is generated
    /// here; its imports are the modules of [`bindings`](crate::bindings).
    pub mod trigger_world {
        wit_bindgen::generate!({
            path: "../wit",
            world: "wasmops:plugin/trigger-plugin@0.1.0",
            pub_export_macro: true,
            export_macro_name: "export_trigger",
            default_bindings_module: "wasmops_sdk::bindings::trigger_world",
            with: {
                "wasmops:plugin/types@0.1.0": crate::bindings::wasmops::plugin::types,
                "wasmops:plugin/log@0.1.0": crate::bindings::wasmops::plugin::log,
                "wasmops:plugin/secrets@0.1.0": crate::bindings::wasmops::plugin::secrets,
                "wasmops:plugin/exec@0.1.0": crate::bindings::wasmops::plugin::exec,
                "wasi:http/outgoing-handler@0.2.12": crate::bindings::wasi::http::outgoing_handler,
                "wasi:http/types@0.2.12": crate::bindings::wasi::http::types,
                "wasi:io/error@0.2.12": crate::bindings::wasi::io::error,
                "wasi:io/poll@0.2.12": crate::bindings::wasi::io::poll,
                "wasi:io/streams@0.2.12": crate::bindings::wasi::io::streams,
                "wasi:clocks/monotonic-clock@0.2.12": crate::bindings::wasi::clocks::monotonic_clock,
            },
        });
    }

    /// The `wasmops:plugin/notifier-plugin@0.1.0` world: only its `notifier` export is generated
    /// here; its imports are the modules of [`bindings`](crate::bindings).
    pub mod notifier_world {
        wit_bindgen::generate!({
            path: "../wit",
            world: "wasmops:plugin/notifier-plugin@0.1.0",
            pub_export_macro: true,
            export_macro_name: "export_notifier",
            default_bindings_module: "wasmops_sdk::bindings::notifier_world",
            with: {
                "wasmops:plugin/types@0.1.0": crate::bindings::wasmops::plugin::types,
                "wasmops:plugin/log@0.1.0": crate::bindings::wasmops::plugin::log,
                "wasmops:plugin/secrets@0.1.0": crate::bindings::wasmops::plugin::secrets,
                "wasi:http/outgoing-handler@0.2.12": crate::bindings::wasi::http::outgoing_handler,
                "wasi:http/types@0.2.12": crate::bindings::wasi::http::types,
                "wasi:io/error@0.2.12": crate::bindings::wasi::io::error,
                "wasi:io/poll@0.2.12": crate::bindings::wasi::io::poll,
                "wasi:io/streams@0.2.12": crate::bindings::wasi::io::streams,
                "wasi:clocks/monotonic-clock@0.2.12": crate::bindings::wasi::clocks::monotonic_clock,
            },
        });
    }
}

mod context;
pub mod duration;
mod error;
pub mod exec;
mod glue;
pub mod http;
pub mod log;
mod notifier;
mod outcome;
pub mod output_file;
pub mod secrets;
mod step;
mod trigger;

pub use context::Context;
pub use error::{Error, ResultExt};
pub use glue::parse_config;
pub use notifier::{Notifier, RunEvent};
pub use outcome::{Approvers, Info, Outcome, Outputs, Wait};
pub use step::Step;
pub use trigger::{Inputs, Subscription, Trigger, TriggerEvent, Verdict};

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
        Context, Decision, DecisionKind, Error, Info, Inputs, Notifier, Outcome, Outputs,
        ResultExt, RunEvent, Step, Subscription, Trigger, TriggerEvent, Verdict, Wait,
    };
    pub use serde_json::{Value, json};
}

/// Used by [`step_plugin!`], [`trigger_plugin!`] and [`notifier_plugin!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::step::{describe, resume, run, validate};

    /// The trigger glue.
    pub mod trigger {
        pub use crate::trigger::{on_event, subscribe, validate};
    }

    /// The notifier glue.
    pub mod notifier {
        pub use crate::notifier::{notify, validate};
    }
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

/// Exports a [`Trigger`] implementation as the plugin's WIT `trigger` interface (world
/// `wasmops:plugin/trigger-plugin@0.1.0`).
///
/// Call it once, at the crate root of a `cdylib`, with the name of the type implementing
/// [`Trigger`]. It implements the generated `Guest` trait for that type and emits the component
/// exports and type information.
#[macro_export]
macro_rules! trigger_plugin {
    ($plugin:ident) => {
        impl $crate::bindings::trigger_world::exports::wasmops::plugin::trigger::Guest for $plugin {
            fn validate(
                config: ::std::string::String,
            ) -> ::core::result::Result<(), ::std::vec::Vec<::std::string::String>> {
                $crate::__private::trigger::validate::<$plugin>(&config)
            }

            fn subscribe(
                config: ::std::string::String,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::bindings::wasmops::plugin::types::Subscription>,
                ::std::string::String,
            > {
                $crate::__private::trigger::subscribe::<$plugin>(&config)
            }

            fn on_event(
                config: ::std::string::String,
                event: $crate::bindings::wasmops::plugin::types::TriggerEvent,
            ) -> $crate::bindings::wasmops::plugin::types::TriggerDecision {
                $crate::__private::trigger::on_event::<$plugin>(&config, event)
            }
        }

        $crate::bindings::trigger_world::export_trigger!(
            $plugin with_types_in $crate::bindings::trigger_world
        );
    };
}

/// Exports a [`Notifier`] implementation as the plugin's WIT `notifier` interface (world
/// `wasmops:plugin/notifier-plugin@0.1.0`).
///
/// Call it once, at the crate root of a `cdylib`, with the name of the type implementing
/// [`Notifier`]. It implements the generated `Guest` trait for that type and emits the component
/// exports and type information.
#[macro_export]
macro_rules! notifier_plugin {
    ($plugin:ident) => {
        impl $crate::bindings::notifier_world::exports::wasmops::plugin::notifier::Guest
            for $plugin
        {
            fn validate(
                config: ::std::string::String,
            ) -> ::core::result::Result<(), ::std::vec::Vec<::std::string::String>> {
                $crate::__private::notifier::validate::<$plugin>(&config)
            }

            fn notify(
                config: ::std::string::String,
                event: $crate::bindings::wasmops::plugin::types::RunEvent,
            ) -> ::core::result::Result<(), ::std::string::String> {
                $crate::__private::notifier::notify::<$plugin>(&config, event)
            }
        }

        $crate::bindings::notifier_world::export_notifier!(
            $plugin with_types_in $crate::bindings::notifier_world
        );
    };
}
