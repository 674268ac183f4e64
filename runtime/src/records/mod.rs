//! Plain records: what is stored, shown and returned by the API. The store, the engine, the
//! catalog and the API all speak them; they depend on nothing but the workflow language.

mod run;
mod workflow;

pub use run::*;
pub use workflow::*;
