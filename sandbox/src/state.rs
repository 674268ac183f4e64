//! The data of one call's store: the WASI context, the resource table, the memory limit and
//! every capability's state. Dropped with the store, so nothing outlives the call.

use crate::capabilities::{CallCapabilities, CallData, HasCapabilities};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

/// Everything one call may touch: the data of its store, dropped with it.
pub(crate) struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryLimit,
    pub(crate) caps: CallCapabilities,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The per-memory limit, as a typed trap when it is exceeded.
pub(crate) struct MemoryLimit {
    pub(crate) bytes: u64,
    /// The largest any memory was allowed to grow to.
    pub(crate) reached: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded")]
pub(crate) struct MemoryLimitExceeded;

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.caps.http.view(&mut self.table)
    }
}

impl CallData for CallState {}

impl HasCapabilities for CallState {
    fn capabilities(&mut self) -> &mut CallCapabilities {
        &mut self.caps
    }
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let desired = u64::try_from(desired).unwrap_or(u64::MAX);
        if desired > self.bytes {
            return Err(MemoryLimitExceeded.into());
        }
        self.reached = self.reached.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }

    /// A componentize-py component alone has 14 core instances.
    fn instances(&self) -> usize {
        64
    }
}
