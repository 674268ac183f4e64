//! The one error type plugins return: a message that ends up as the step's failure reason.
//!
//! Everything a step reports crosses the WIT boundary as a string, so there is no point in a rich
//! error hierarchy. What matters is that `?` works on the errors plugins meet every day (I/O, JSON,
//! strings) and that context can be prepended cheaply, the way `anyhow` does it, without the dep.

use std::fmt;

/// A step failure: one human-readable message, possibly several lines long.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    /// The sandbox refused what was asked (a host, a program not granted): trying again will
    /// not help.
    denied: bool,
}

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            denied: false,
        }
    }

    /// The sandbox refused the request; see [`Error::is_denial`].
    pub fn denial(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            denied: true,
        }
    }

    /// Whether the sandbox refused the request, so a retry would meet the same refusal.
    pub fn is_denial(&self) -> bool {
        self.denied
    }

    /// Wraps any standard error, keeping its `Display` text and that of its sources.
    pub fn from_std(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self {
            message,
            denied: false,
        }
    }

    /// Prepends `context: ` to the message, e.g. `reading plan.json: No such file or directory`.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            message: format!("{context}: {}", self.message),
            ..self
        }
    }

    /// The message as the host will show it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message, consuming the error.
    pub fn into_message(self) -> String {
        self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl From<fmt::Arguments<'_>> for Error {
    fn from(message: fmt::Arguments<'_>) -> Self {
        Self::new(message.to_string())
    }
}

/// `From` impls for standard errors plugins commonly hit. (A blanket `impl<E: std::error::Error>`
/// would conflict with `From<String>`, which is why this is a list.)
macro_rules! from_std_errors {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(error: $ty) -> Self {
                Self::from_std(&error)
            }
        }
    )*};
}

from_std_errors!(
    std::io::Error,
    serde_json::Error,
    fmt::Error,
    std::string::FromUtf8Error,
    std::str::Utf8Error,
    std::num::ParseIntError,
    std::num::ParseFloatError,
    std::env::VarError,
);

/// Adds context to any `Result` whose error can be displayed:
/// `std::fs::read(&path).context(format!("reading {}", path.display()))?`.
pub trait ResultExt<T> {
    /// Fails with `context: original error`.
    fn context(self, context: impl fmt::Display) -> Result<T, Error>;

    /// Like [`ResultExt::context`], building the context only on failure.
    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, Error>;
}

impl<T, E: fmt::Display> ResultExt<T> for Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T, Error> {
        self.map_err(|error| Error::new(format!("{context}: {error}")))
    }

    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, Error> {
        self.map_err(|error| Error::new(format!("{}: {error}", context())))
    }
}

/// Returns early from a step with an [`Error`] built like `format!`.
///
/// ```
/// # fn check(n: u32) -> Result<(), wasmops_sdk::Error> {
/// if n == 0 {
///     wasmops_sdk::bail!("`count` must be positive, got {n}");
/// }
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return ::core::result::Result::Err($crate::Error::new(::std::format!($($arg)*)).into())
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_stays_one_through_added_context() {
        let e = Error::denial("http: GET http://x was denied").context("health check");
        assert!(e.is_denial());
        assert_eq!(e.message(), "health check: http: GET http://x was denied");
        assert!(!Error::new("timed out").context("health check").is_denial());
    }

    #[test]
    fn context_prepends() {
        let err: Result<(), Error> = Err(Error::new("No such file"));
        assert_eq!(
            err.context("reading plan.json").unwrap_err().message(),
            "reading plan.json: No such file"
        );
    }

    #[test]
    fn question_mark_on_std_errors() {
        fn parse(s: &str) -> Result<u32, Error> {
            Ok(s.parse::<u32>()?)
        }
        assert_eq!(
            parse("x").unwrap_err().message(),
            "invalid digit found in string"
        );
    }

    #[test]
    fn bail_formats() {
        fn f(n: u32) -> Result<(), Error> {
            if n > 1 {
                bail!("too many: {n}");
            }
            Ok(())
        }
        assert_eq!(f(3).unwrap_err().to_string(), "too many: 3");
    }
}
