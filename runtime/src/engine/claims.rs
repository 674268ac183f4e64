//! One driver per run: a run is claimed before it is driven, and whoever else wants it driven
//! (recovery after a restart, the parent step of a child run, a retry) waits for the driver
//! instead of driving it a second time.
//!
//! The claim itself is taken through the store ([`crate::store::RunClaims`]), so a store
//! shared by several daemons can make it a lease. This file adds what only this process can
//! give: waiting for a driver of its own, and the cancel token of each drive.

use super::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The runs being driven, each with a signal that turns `true` when its driver lets go.
#[derive(Default)]
pub struct Claims {
    held: Mutex<HashMap<String, watch::Receiver<bool>>>,
}

/// The right to drive one run. Dropped (the drive ended, or its task was dropped), the run is
/// free again and whoever waited is told.
pub struct Claim {
    engine: Arc<Engine>,
    run_id: String,
    released: watch::Sender<bool>,
    /// Cancels this drive: fresh for every claim, so a cancel meant for an earlier drive
    /// never reaches a retry.
    pub cancel: CancellationToken,
}

/// Someone else drives the run; [`Busy::finished`] waits for them when they are in this
/// process (`None`: the store says another holds it, who is not waited for here).
pub struct Busy(Option<watch::Receiver<bool>>);

impl Busy {
    pub async fn finished(self) {
        if let Some(mut released) = self.0 {
            let _ = released.wait_for(|released| *released).await;
        }
    }
}

impl Claim {
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

impl Engine {
    /// Claims `run_id` for this caller, or says who has it.
    pub(super) fn claim(self: &Arc<Self>, run_id: &str) -> Result<Claim, Busy> {
        let mut held = self.live.claims.held.lock().unwrap();
        if let Some(released) = held.get(run_id) {
            return Err(Busy(Some(released.clone())));
        }
        if !self.runs.claims().try_claim(run_id) {
            return Err(Busy(None));
        }
        let (tx, rx) = watch::channel(false);
        held.insert(run_id.to_string(), rx);
        drop(held);
        let cancel = CancellationToken::new();
        self.live
            .cancels
            .lock()
            .unwrap()
            .insert(run_id.to_string(), cancel.clone());
        Ok(Claim {
            engine: self.clone(),
            run_id: run_id.to_string(),
            released: tx,
            cancel,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let live = &self.engine.live;
        // The token first, while the claim still stands: no other claim can have put one.
        live.cancels.lock().unwrap().remove(&self.run_id);
        let mut held = live.claims.held.lock().unwrap();
        self.engine.runs.claims().release(&self.run_id);
        held.remove(&self.run_id);
        drop(held);
        let _ = self.released.send(true);
    }
}
