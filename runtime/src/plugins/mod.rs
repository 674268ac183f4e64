//! The plugin host: manifests, the registry of installed plugins, the wasmtime runtime that
//! instantiates them, and the host imports (`log`, `secrets`, `exec`) they call.

pub mod confine;
pub mod exec;
pub mod host;
pub mod http;
pub mod manifest;
pub mod output;
pub mod registry;

pub use host::Runtime;
pub use manifest::Manifest;
pub use registry::{Plugin, Registry};
