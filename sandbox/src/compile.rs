//! The wasmtime engine every plugin shares (pooling allocator, epoch interruption and its
//! ticker), and compiling components once, cached on disk by digest and engine configuration.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Duration;
use wasmtime::Engine;
use wasmtime::component::Component;

/// An engine with the settings every plugin runs under, and a detached thread ticking its
/// epoch every `tick` (it holds only a weak handle, so it ends with the engine).
pub(crate) fn engine(tick: Duration) -> wasmtime::Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool_config()));
    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasmops-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })?;
    Ok(engine)
}

/// How many plugin calls run at once; more wait for a turn (see [`crate::Sandbox`]). Each
/// holds a fiber stack from the pool, and each pooled stack is two mappings (the stack and its
/// guard page) that every `fork` of the daemon copies and every exit of the child tears down:
/// at wasmtime's default of 1,000 stacks, starting a program cost about 4 ms more.
pub(crate) const MAX_CONCURRENT_CALLS: usize = 128;

/// Instances come from pre-reserved slots with copy-on-write memory images, so a fresh instance
/// per call costs microseconds. Sized for the largest plugins we ship or test (a componentize-py
/// component has 14 core instances and starts with 13 MiB of memory).
fn pool_config() -> wasmtime::PoolingAllocationConfig {
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(1000)
        .total_stacks(MAX_CONCURRENT_CALLS as u32)
        .total_core_instances(4000)
        .total_memories(2000)
        .total_tables(4000)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(4 << 20)
        .table_elements(100_000)
        .max_memory_size(4 << 30)
        // Keep the first pages of recently used slots resident: the next instance of the same
        // plugin reuses them without faulting.
        .linear_memory_keep_resident(4 << 20)
        .table_keep_resident(64 << 10)
        .max_unused_warm_slots(100);
    pool
}

/// Compiles `wasm`, or loads the compilation cached under `cache_dir` for this digest and
/// engine configuration.
pub(crate) fn component(
    engine: &Engine,
    cache_dir: Option<&Path>,
    digest: &str,
    wasm: &[u8],
) -> wasmtime::Result<Component> {
    let cached = cache_dir.map(|dir| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    });
    if let Some(path) = &cached
        && path.is_file()
    {
        // SAFETY: the file was written by `Component::serialize` of this engine configuration
        // (the name carries its compatibility hash) into the daemon's own data directory.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, path) } {
            return Ok(component);
        }
    }
    let component = Component::new(engine, wasm)?;
    if let Some(path) = &cached
        && let Ok(bytes) = component.serialize()
    {
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
    Ok(component)
}
