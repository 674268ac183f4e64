//! The right to drive a run, taken through the store: one driver per run, whoever asks.
//!
//! A store one process owns keeps claims in that process's memory ([`LocalClaims`]): sled holds
//! a lock on its files, and the memory store is the process's own. A store several daemons
//! share would make a claim a lease with an expiry, renewed while its holder drives the run,
//! behind the same two calls.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

/// Claims on runs. Not async: a claim is let go when its holder is dropped.
pub trait RunClaims: Send + Sync {
    /// Takes the right to drive `run_id`; `false` when it is held already.
    fn try_claim(&self, run_id: &str) -> bool;
    /// Lets go of a claim taken with [`RunClaims::try_claim`].
    fn release(&self, run_id: &str);
}

/// Claims held in this process, for a store it alone opens.
#[derive(Default)]
pub struct LocalClaims {
    held: Mutex<HashSet<String>>,
}

impl RunClaims for LocalClaims {
    fn try_claim(&self, run_id: &str) -> bool {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(run_id.to_string())
    }

    fn release(&self, run_id: &str) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(run_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_has_one_claim_at_a_time() {
        let claims = LocalClaims::default();
        assert!(claims.try_claim("wfr_1"));
        assert!(!claims.try_claim("wfr_1"));
        assert!(claims.try_claim("wfr_2"));
        claims.release("wfr_1");
        assert!(claims.try_claim("wfr_1"));
    }
}
