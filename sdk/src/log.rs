//! Leveled lines into the step's log.
//!
//! The host files each line under the step being run, so plugins never need to say which step
//! they are. Outside a wasm host (unit tests on the build machine) lines go to stderr instead, so
//! plugin logic stays testable with plain `cargo test`.
//!
//! Use the functions with a ready string, or the [`crate::info!`]-style macros with `format!`
//! arguments.

pub use crate::bindings::wasmops::plugin::log::Level;

/// Writes one line (or several: the host keeps embedded newlines) at `level`.
pub fn log(level: Level, message: impl AsRef<str>) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::wasmops::plugin::log::log(level, message.as_ref());
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {}", message.as_ref());
}

/// Very detailed diagnostics, hidden unless the operator asks for them.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message);
}

/// Diagnostics useful when a step misbehaves.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message);
}

/// Progress an operator wants to see.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message);
}

/// Something odd that did not fail the step.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message);
}

/// Something failed. (Returning `Err` from the step already records the failure reason.)
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message);
}

/// `trace!("…{}", x)`: a formatted [`log::trace`](trace) line.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log::trace(::std::format!($($arg)*)) };
}

/// `debug!("…{}", x)`: a formatted [`log::debug`](debug) line.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::debug(::std::format!($($arg)*)) };
}

/// `info!("…{}", x)`: a formatted [`log::info`](info) line.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::info(::std::format!($($arg)*)) };
}

/// `warn!("…{}", x)`: a formatted [`log::warn`](warn) line.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::warn(::std::format!($($arg)*)) };
}

/// `error!("…{}", x)`: a formatted [`log::error`](error) line.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::error(::std::format!($($arg)*)) };
}
