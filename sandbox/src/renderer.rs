//! Workflow templates evaluated in a WebAssembly instance of their own (the renderer component
//! in `template/renderer`), capped in memory and fuel.
//!
//! minijinja's fuel counts instructions, not bytes: one `~` or `*` can double a string, and a
//! loop over a `namespace()` reached gigabytes in forty steps. No hook in the engine sees every
//! intermediate value, so the bound is where the values live: an instance whose memory cannot
//! grow past [`MEMORY`]. Whatever a template builds, it builds in there, and a template that
//! wants more fails by itself.

use crate::compile;
use crate::state::{MemoryLimit, MemoryLimitExceeded};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod bindings {
    #![allow(missing_docs, reason = "generated from template/renderer/wit")]
    wasmtime::component::bindgen!({
        path: "../template/renderer/wit",
        world: "renderer",
    });
}

/// The most memory one render session may use: every intermediate string and value of the
/// templates it evaluates, and the variables they read.
pub const MEMORY: u64 = 64 << 20;

/// Wasm instructions one template or expression may run (about a second here): a budget for
/// the work inside single template instructions (a `sort` of a long list) that minijinja's own
/// fuel counts as one.
const FUEL: u64 = 2_000_000_000;

/// Why a template did not render.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template's own error, as minijinja words it (`unknown filter`, `out of fuel`…).
    #[error("{0}")]
    Template(String),
    /// It needed more than [`MEMORY`].
    #[error("the template needs more than {} MiB of memory", MEMORY >> 20)]
    OutOfMemory,
    /// It ran past [`FUEL`].
    #[error("the template ran too long")]
    OutOfFuel,
    /// The renderer failed in another way (a panic in the engine, a broken component).
    #[error("the template engine failed on this template ({0})")]
    Failed(String),
}

struct RenderState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryLimit,
}

impl WasiView for RenderState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The compiled renderer, ready to instantiate, and the instances kept for reuse.
pub struct TemplateRenderer {
    engine: Engine,
    pre: bindings::RendererPre<RenderState>,
    idle: Arc<Mutex<Vec<Instance>>>,
}

/// A renderer instance and its store.
struct Instance {
    store: Store<RenderState>,
    renderer: bindings::Renderer,
}

/// Instances kept between sessions. A fresh instance costs tens of microseconds more than a
/// used one (the template engine sets itself up on first use), and nothing in one outlives a
/// session but its heap: the variables are replaced whole, and templates have no state.
const KEEP_IDLE: usize = 16;

/// An instance whose memory grew past this is dropped after its session, not kept: one
/// template's large intermediates do not stay resident.
const KEEP_MEMORY: u64 = 8 << 20;

impl TemplateRenderer {
    /// Compiles the renderer component (`wasm`), or loads its compilation cached in
    /// `cache_dir`.
    pub fn new(wasm: &[u8], cache_dir: Option<&Path>) -> Result<TemplateRenderer, String> {
        let setup = |e: wasmtime::Error| format!("cannot set up the template renderer: {e:#}");
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(setup)?;
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(wasm));
        let component: Component =
            compile::component(&engine, cache_dir, &format!("renderer-{digest}"), wasm)
                .map_err(setup)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(setup)?;
        let pre = linker.instantiate_pre(&component).map_err(setup)?;
        let pre = bindings::RendererPre::new(pre).map_err(setup)?;
        Ok(TemplateRenderer {
            engine,
            pre,
            idle: Arc::default(),
        })
    }

    /// An instance holding `variables` (a JSON object) for the templates rendered in it.
    pub fn session(&self, variables: &str) -> Result<RenderSession, RenderError> {
        let reused = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let instance = match reused {
            Some(instance) => instance,
            None => self.instantiate()?,
        };
        let mut session = RenderSession {
            instance: Some(instance),
            idle: self.idle.clone(),
        };
        session.call(|r, s| r.call_set_context(s, variables))?;
        Ok(session)
    }

    fn instantiate(&self) -> Result<Instance, RenderError> {
        let state = RenderState {
            // Nothing granted: no environment, files or sockets.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            memory: MemoryLimit {
                bytes: MEMORY,
                reached: 0,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        store.set_fuel(FUEL).map_err(failed)?;
        let renderer = self.pre.instantiate(&mut store).map_err(classify)?;
        Ok(Instance { store, renderer })
    }
}

/// One instance and the variables set in it. Dropped, the instance goes back to the renderer
/// if it is healthy and small, and is freed otherwise.
pub struct RenderSession {
    /// `None` once a call trapped: the instance may not be entered again.
    instance: Option<Instance>,
    idle: Arc<Mutex<Vec<Instance>>>,
}

impl RenderSession {
    /// Renders `template` to text.
    pub fn render(&mut self, template: &str) -> Result<String, RenderError> {
        self.call(|r, s| r.call_render(s, template))
    }

    /// Evaluates `expression` to a value, as JSON text.
    pub fn evaluate(&mut self, expression: &str) -> Result<String, RenderError> {
        self.call(|r, s| r.call_evaluate(s, expression))
    }

    /// Whether a call trapped, which spends the session: later calls fail.
    pub fn is_spent(&self) -> bool {
        self.instance.is_none()
    }

    /// One call with a full fuel budget.
    fn call<T>(
        &mut self,
        call: impl FnOnce(
            &bindings::Renderer,
            &mut Store<RenderState>,
        ) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<T, RenderError> {
        let Some(instance) = &mut self.instance else {
            return Err(RenderError::Failed("the instance trapped before".into()));
        };
        instance.store.set_fuel(FUEL).map_err(failed)?;
        match call(&instance.renderer, &mut instance.store) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(RenderError::Template(message)),
            Err(e) => {
                self.instance = None;
                Err(classify(e))
            }
        }
    }
}

impl Drop for RenderSession {
    fn drop(&mut self) {
        let Some(instance) = self.instance.take() else {
            return;
        };
        if instance.store.data().memory.reached > KEEP_MEMORY {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < KEEP_IDLE {
            idle.push(instance);
        }
    }
}

fn failed(e: wasmtime::Error) -> RenderError {
    RenderError::Failed(format!("{e:#}"))
}
fn classify(e: wasmtime::Error) -> RenderError {
    if e.downcast_ref::<MemoryLimitExceeded>().is_some() {
        return RenderError::OutOfMemory;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => RenderError::OutOfFuel,
        // A Rust panic in the component (an allocation the limiter refused ends as one too).
        Some(Trap::UnreachableCodeReached) => RenderError::Failed("a panic".into()),
        _ => failed(e),
    }
}
