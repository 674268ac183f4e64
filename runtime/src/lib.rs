//! wasmops: operations workflows whose every step, trigger and notifier is a sandboxed
//! WebAssembly component. The host parses workflows, walks step trees, keeps durable state and
//! decides what each plugin may touch.

pub mod blocking;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diagnostics;
pub mod engine;
pub mod identity;
pub mod plugins;
pub mod project;
pub mod project_files;
pub mod records;
pub mod render;
pub mod store;
pub mod validate;
pub mod with_blocks;
pub mod workflow;
pub mod yaml;
