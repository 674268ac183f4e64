//! Any text as a workflow: parse it, and what parses is checked against the built-in plugins
//! (references, templates, secrets) as `validate` and `publish` do. Nothing may panic, hang or
//! grow without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use wasmops::plugins::Registry;
use wasmops::project::Projects;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let sandbox = wasmops_sandbox::Sandbox::new(Default::default()).unwrap();
        Registry::builtin(Arc::new(sandbox)).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(workflow) = wasmops::workflow::parse_workflow("fuzz.yaml", text) {
        let _ = wasmops::validate::check_references(&workflow, registry(), &Projects::default());
    }
});
