//! Host bindings for every world of `wasmops:plugin`, generated once.
//!
//! The three worlds share their imports (`log`, `secrets`, `exec`, `wasi:http`) and types, so
//! they are generated together from one synthesized world that includes all three. A plugin
//! exports only its own interface; each world file looks that interface up on the component
//! with its `GuestIndices`, so a step plugin never needs a trigger export or the reverse.

// Generated code: its items are documented by the WIT, not here.
#![allow(missing_docs, reason = "generated from wit/plugin.wit")]

wasmtime::component::bindgen!({
    path: "../wit",
    inline: "
        package wasmops:host;

        world host {
            include wasmops:plugin/step-plugin@0.1.0;
            include wasmops:plugin/trigger-plugin@0.1.0;
            include wasmops:plugin/notifier-plugin@0.1.0;
        }
    ",
    world: "wasmops:host/host",
    imports: { default: async },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
    },
});

pub use exports::wasmops::plugin::{notifier, step, trigger};
pub use wasmops::plugin::{exec, log, secrets, types};
