//! Installed plugins: the built-ins embedded in the binary and those loaded from directories,
//! each loaded into the sandbox with the operator's grants applied.

pub mod registry;

pub use registry::{DescribeError, Origin, Registry};
