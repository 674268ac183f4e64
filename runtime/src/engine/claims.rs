//! One driver per run: a run is claimed before it is driven, and whoever else wants it driven
//! (recovery after a restart, the parent step of a child run, a retry) waits for the driver
//! instead of driving it a second time.
//!
//! Claims live in this process: one daemon owns its store. A store shared by several daemons
//! would make the claim a lease in the store, behind the same two calls.

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

/// Someone else drives the run; [`Busy::finished`] waits for them.
pub struct Busy(watch::Receiver<bool>);

impl Busy {
    pub async fn finished(mut self) {
        let _ = self.0.wait_for(|released| *released).await;
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
            return Err(Busy(released.clone()));
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
        live.claims.held.lock().unwrap().remove(&self.run_id);
        let _ = self.released.send(true);
    }
}
