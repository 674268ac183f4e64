//! Installed plugins: the built-ins embedded in the binary and those loaded from directories,
//! each compiled once (cached on disk by digest) and pre-instantiated on first use.

use super::host::{CallState, Runtime, StepPluginPre};
use super::manifest::{Manifest, PluginKind};
use crate::capabilities::{self, Grants, OperatorGrant};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use wasmtime::component::Component;

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    Directory(PathBuf),
}

pub struct Plugin {
    pub manifest: Manifest,
    pub origin: Origin,
    /// sha256 of the component, hex.
    pub digest: String,
    pub grants: Grants,
    wasm: Arc<[u8]>,
    pre: OnceLock<Result<StepPluginPre<CallState>, String>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.manifest.name)
            .field("digest", &self.digest)
            .finish()
    }
}

impl Plugin {
    fn new(
        manifest: Manifest,
        origin: Origin,
        wasm: Arc<[u8]>,
        operator: Option<&OperatorGrant>,
    ) -> Result<Plugin, String> {
        let digest = hex::encode(Sha256::digest(&wasm));
        let grants = capabilities::effective(&manifest, operator)
            .map_err(|e| format!("plugin `{}`: {e}", manifest.name))?;
        Ok(Plugin {
            manifest,
            origin,
            digest,
            grants,
            wasm,
            pre: OnceLock::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// What the API and `plugins list --output json` show of a plugin.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name(),
            "version": self.manifest.version,
            "kind": self.manifest.kind,
            "world": self.manifest.world,
            "digest": format!("sha256:{}", self.digest),
            "requested": self.manifest.capabilities,
            "grants": self.grants,
        })
    }

    /// Compiles (or loads the cached compilation) and links the component, once.
    pub fn instance_pre(&self, runtime: &Runtime) -> Result<StepPluginPre<CallState>, String> {
        self.pre
            .get_or_init(|| {
                let component = self.compile(runtime)?;
                let pre = runtime
                    .linker
                    .instantiate_pre(&component)
                    .map_err(|e| format!("plugin `{}` cannot be linked: {e:#}", self.name()))?;
                StepPluginPre::new(pre).map_err(|e| {
                    format!(
                        "plugin `{}` does not export the step interface of {}: {e:#}",
                        self.name(),
                        self.manifest.world
                    )
                })
            })
            .clone()
    }

    fn compile(&self, runtime: &Runtime) -> Result<Component, String> {
        let cached = runtime.cache_dir.as_ref().map(|dir| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            runtime
                .engine
                .precompile_compatibility_hash()
                .hash(&mut hasher);
            dir.join(format!("{}-{:016x}.cwasm", self.digest, hasher.finish()))
        });
        if let Some(path) = &cached
            && path.is_file()
        {
            // SAFETY: the file was written by `Component::serialize` of this engine
            // configuration (the name carries its compatibility hash) into our own data dir.
            if let Ok(component) = unsafe { Component::deserialize_file(&runtime.engine, path) } {
                return Ok(component);
            }
        }
        let component = Component::new(&runtime.engine, &self.wasm)
            .map_err(|e| format!("plugin `{}` is not a valid component: {e:#}", self.name()))?;
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
}

/// Interior mutability lets the daemon install a plugin while runs hold the registry.
#[derive(Default)]
pub struct Registry {
    plugins: std::sync::RwLock<BTreeMap<String, Arc<Plugin>>>,
    /// The operator's `[plugins.NAME]` sections, applied to every plugin loaded.
    operator: BTreeMap<String, OperatorGrant>,
}

impl Registry {
    /// The built-in plugins, with the operator's `[plugins.NAME]` grants applied.
    pub fn builtin(operator: BTreeMap<String, OperatorGrant>) -> Result<Registry, String> {
        let registry = Registry {
            plugins: Default::default(),
            operator,
        };
        for (toml, wasm) in BUILTIN_PLUGINS {
            let manifest =
                Manifest::parse(toml).map_err(|e| format!("built-in plugin.toml: {e}"))?;
            let operator = registry.operator.get(&manifest.name);
            let plugin = Plugin::new(manifest, Origin::Builtin, Arc::from(*wasm), operator)?;
            registry.insert(plugin);
        }
        Ok(registry)
    }

    /// Built-ins, then the plugins installed in `<data>/plugins`, then those in `extra` (a later
    /// plugin of the same name wins).
    pub fn load(
        operator: BTreeMap<String, OperatorGrant>,
        data: Option<&Path>,
        extra: Option<&Path>,
    ) -> Result<Registry, String> {
        let registry = Registry::builtin(operator)?;
        if let Some(installed) = data.map(|d| d.join("plugins")).filter(|d| d.is_dir()) {
            registry.load_dir(&installed)?;
        }
        if let Some(dir) = extra {
            registry.load_dir(dir)?;
        }
        Ok(registry)
    }

    /// Adds every plugin directory under `dir` (or `dir` itself when it holds a plugin.toml).
    /// A plugin with the same name as a built-in replaces it.
    pub fn load_dir(&self, dir: &Path) -> Result<Vec<String>, String> {
        if dir.join("plugin.toml").is_file() {
            return self.load_plugin(dir).map(|name| vec![name]);
        }
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read plugin directory {}: {e}", dir.display()))?;
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            // `.NAME.installing` is an install in progress (or one that died half-way).
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .filter(|p| p.join("plugin.toml").is_file())
            .collect();
        dirs.sort();
        dirs.iter().map(|d| self.load_plugin(d)).collect()
    }

    pub fn load_plugin(&self, dir: &Path) -> Result<String, String> {
        let manifest_path = dir.join("plugin.toml");
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
        let manifest =
            Manifest::parse(&text).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
        let component_path = dir.join(&manifest.component);
        if !component_path.starts_with(dir) || manifest.component.contains("..") {
            return Err(format!(
                "{}: `component` must name a file inside the plugin directory",
                manifest_path.display()
            ));
        }
        let wasm = std::fs::read(&component_path)
            .map_err(|e| format!("{}: {e}", component_path.display()))?;
        let name = manifest.name.clone();
        let operator = self.operator.get(&name);
        let plugin = Plugin::new(
            manifest,
            Origin::Directory(dir.to_path_buf()),
            wasm.into(),
            operator,
        )?;
        self.insert(plugin);
        Ok(name)
    }

    fn insert(&self, plugin: Plugin) {
        self.plugins
            .write()
            .unwrap()
            .insert(plugin.manifest.name.clone(), Arc::new(plugin));
    }

    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins.read().unwrap().get(name).cloned()
    }

    pub fn step_plugin_names(&self) -> Vec<String> {
        self.plugins
            .read()
            .unwrap()
            .values()
            .filter(|p| p.manifest.kind == PluginKind::Step)
            .map(|p| p.name().to_string())
            .collect()
    }

    pub fn all(&self) -> Vec<Arc<Plugin>> {
        self.plugins.read().unwrap().values().cloned().collect()
    }

    /// Checks a plugin folder the way a run would use it (manifest, component, linking against
    /// this host), copies it into `<data>/plugins/NAME` whole, and makes it available.
    pub fn install(
        &self,
        dir: &Path,
        data: &Path,
        runtime: &Runtime,
    ) -> Result<Arc<Plugin>, String> {
        let probe = Registry {
            plugins: Default::default(),
            operator: self.operator.clone(),
        };
        let name = probe.load_plugin(dir)?;
        let plugin = probe.get(&name).expect("just loaded");
        plugin.instance_pre(runtime)?;
        let plugins = data.join("plugins");
        let dest = plugins.join(&name);
        let staging = plugins.join(format!(".{name}.installing"));
        let io = |e: std::io::Error| format!("cannot install {name}: {e}");
        let _ = std::fs::remove_dir_all(&staging);
        let component = Path::new(&plugin.manifest.component);
        std::fs::create_dir_all(staging.join(component.parent().unwrap_or(Path::new(""))))
            .map_err(io)?;
        std::fs::copy(dir.join("plugin.toml"), staging.join("plugin.toml")).map_err(io)?;
        std::fs::copy(dir.join(component), staging.join(component)).map_err(io)?;
        // Swap in whole, so a reader sees the old plugin or the new one, never half of each.
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&staging, &dest).map_err(io)?;
        self.load_plugin(&dest)?;
        Ok(self.get(&name).expect("just installed"))
    }
}
