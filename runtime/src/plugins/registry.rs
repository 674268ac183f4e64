//! The registry of plugins by name: the built-ins embedded in the binary, those installed in the
//! data directory and those in `--plugins`, each loaded into the sandbox once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use wasmops_sandbox::{Manifest, Plugin, PluginKind, Provenance, Sandbox};

/// Why a plugin could not describe itself.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    /// No such step plugin.
    #[error("{0}")]
    NotFound(String),
    /// Its `describe` call failed (a trap, a timeout).
    #[error("{0}")]
    Failed(String),
}

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// Where a plugin came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    Directory(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built-in"),
            Origin::Directory(dir) => write!(f, "{}", dir.display()),
        }
    }
}

struct Entry {
    plugin: Arc<Plugin>,
    origin: Origin,
}

/// Interior mutability lets the daemon install a plugin while runs hold the registry.
pub struct Registry {
    sandbox: Arc<Sandbox>,
    plugins: RwLock<BTreeMap<String, Entry>>,
}

impl Registry {
    /// The built-in plugins.
    pub fn builtin(sandbox: Arc<Sandbox>) -> Result<Registry, String> {
        let registry = Registry {
            sandbox,
            plugins: Default::default(),
        };
        for (toml, wasm) in BUILTIN_PLUGINS {
            let manifest =
                Manifest::parse(toml).map_err(|e| format!("built-in plugin.toml: {e}"))?;
            let plugin = registry
                .sandbox
                .load(manifest, *wasm, Provenance::BuiltIn)
                .map_err(|e| e.to_string())?;
            registry.insert(plugin, Origin::Builtin)?;
        }
        Ok(registry)
    }

    /// Built-ins, then the plugins installed in `<data>/plugins`, then those in `extra` (a later
    /// plugin of the same name wins).
    pub fn load(
        sandbox: Arc<Sandbox>,
        data: Option<&Path>,
        extra: Option<&Path>,
    ) -> Result<Registry, String> {
        let registry = Registry::builtin(sandbox)?;
        if let Some(installed) = data.map(|d| d.join("plugins")).filter(|d| d.is_dir()) {
            registry.load_installed(&installed);
        }
        if let Some(dir) = extra {
            registry.load_dir(dir)?;
        }
        Ok(registry)
    }

    /// The sandbox the plugins are loaded into.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Adds every plugin directory under `dir` (or `dir` itself when it holds a plugin.toml).
    /// A plugin with the same name as a built-in replaces it only where the operator allows
    /// it; otherwise loading fails, naming the setting.
    pub fn load_dir(&self, dir: &Path) -> Result<Vec<String>, String> {
        if dir.join("plugin.toml").is_file() {
            return self.load_plugin(dir).map(|name| vec![name]);
        }
        plugin_dirs(dir)?
            .iter()
            .filter(|p| p.join("plugin.toml").is_file())
            .map(|d| self.load_plugin(d))
            .collect()
    }

    /// Adds what `wasmops plugins install` put in `dir`. A plugin that cannot be read or
    /// loaded (a folder made unreadable, a manifest edited by hand, a component cut short) is
    /// skipped with a warning naming it: one broken install must not keep the daemon from
    /// starting.
    fn load_installed(&self, dir: &Path) {
        let dirs = match plugin_dirs(dir) {
            Ok(dirs) => dirs,
            Err(e) => {
                tracing::warn!("no installed plugins loaded: {e}");
                return;
            }
        };
        for plugin in dirs {
            if let Err(e) = self.load_plugin(&plugin) {
                tracing::warn!("skipping the installed plugin in {}: {e}", plugin.display());
            }
        }
    }

    /// Loads the plugin in `dir` (plugin.toml and its component) and adds it.
    pub fn load_plugin(&self, dir: &Path) -> Result<String, String> {
        let plugin = self.read_plugin(dir)?;
        let name = plugin.name().to_string();
        self.insert(plugin, Origin::Directory(dir.to_path_buf()))?;
        Ok(name)
    }

    fn read_plugin(&self, dir: &Path) -> Result<Plugin, String> {
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
        self.sandbox
            .load(manifest, wasm, Provenance::Added)
            .map_err(|e| e.to_string())
    }

    fn insert(&self, plugin: Plugin, origin: Origin) -> Result<(), String> {
        let name = plugin.name().to_string();
        self.check_may_take(&name, &origin)?;
        let entry = Entry {
            plugin: Arc::new(plugin),
            origin,
        };
        self.plugins
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name, entry);
        Ok(())
    }

    /// A plugin from a directory may not take a built-in's name unless the operator says so:
    /// `wait`, `script` and the rest are what workflows and approvals rely on.
    fn check_may_take(&self, name: &str, origin: &Origin) -> Result<(), String> {
        let builtin = self.origin(name) == Some(Origin::Builtin);
        if builtin && *origin != Origin::Builtin && !self.sandbox.may_replace_builtin(name) {
            return Err(format!(
                "plugin `{name}` would replace the built-in `{name}`; the operator allows that \
                 with `[plugins.{name}] replace_builtin = true` in the config file"
            ));
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.read().get(name).map(|e| e.plugin.clone())
    }

    /// Plugin `name`, or a message that lists the installed ones.
    pub fn find(&self, name: &str) -> Result<Arc<Plugin>, String> {
        self.get(name).ok_or_else(|| {
            let known: Vec<String> = self.all().iter().map(|p| p.name().to_string()).collect();
            format!("no plugin `{name}`; installed: {}", known.join(", "))
        })
    }

    /// An environment for a call outside any run (describe, validate): no workspace, and
    /// a log that only redacts.
    pub fn detached_env(&self, timeout: Option<std::time::Duration>) -> wasmops_sandbox::CallEnv {
        wasmops_sandbox::CallEnv {
            log: wasmops_sandbox::CallLog::new(self.sandbox.secrets().redactor().clone()),
            workspace: None,
            sources: Vec::new(),
            timeout,
        }
    }

    /// What step plugin `name` says about itself: `{name, description, config_schema,
    /// outputs}`.
    pub async fn describe(&self, name: &str) -> Result<serde_json::Value, DescribeError> {
        let plugin = self.find(name).map_err(DescribeError::NotFound)?;
        if !plugin.is(PluginKind::Step) {
            return Err(DescribeError::NotFound(format!(
                "`{name}` is a {} plugin; only step plugins describe a `with:` block",
                plugin.kind()
            )));
        }
        let info = self
            .sandbox
            .step_describe(&plugin, self.detached_env(None))
            .await
            .map_err(|e| DescribeError::Failed(e.to_string()))?;
        let schema: serde_json::Value =
            serde_json::from_str(&info.config_schema).unwrap_or(serde_json::Value::Null);
        Ok(serde_json::json!({
            "name": name,
            "description": info.description,
            "config_schema": schema,
            "outputs": info.outputs,
        }))
    }

    pub fn origin(&self, name: &str) -> Option<Origin> {
        self.read().get(name).map(|e| e.origin.clone())
    }

    /// Names of the plugins of one kind, sorted.
    pub fn names(&self, kind: PluginKind) -> Vec<String> {
        self.read()
            .values()
            .filter(|e| e.plugin.is(kind))
            .map(|e| e.plugin.name().to_string())
            .collect()
    }

    pub fn all(&self) -> Vec<Arc<Plugin>> {
        self.read().values().map(|e| e.plugin.clone()).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.plugins
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks a plugin folder the way a run would use it (manifest, component, linking against
    /// this host, the export of its kind), copies it into `<data>/plugins/NAME` whole, and makes
    /// it available.
    pub fn install(&self, dir: &Path, data: &Path) -> Result<Arc<Plugin>, String> {
        // The name and component path, from the folder as it is now; everything that is checked
        // is checked again on the copy below, which is what gets installed.
        let first = self.read_plugin(dir)?;
        let name = first.name().to_string();
        let plugins = data.join("plugins");
        let dest = plugins.join(&name);
        // The manifest allows plain words only; never touch anything but a child of plugins/.
        if dest.parent() != Some(plugins.as_path()) || dest.file_name() != Some(name.as_ref()) {
            return Err(format!(
                "plugin name `{name}` does not name a directory of its own"
            ));
        }
        self.check_may_take(&name, &Origin::Directory(dest.clone()))?;
        let io = |e: std::io::Error| format!("cannot install {name}: {e}");
        // A staging folder of this install's own: two installs of one name never share one.
        let staging = plugins.join(format!(".{name}.{:08x}.installing", rand::random::<u32>()));
        let component = Path::new(&first.manifest.component);
        let component_dir = staging.join(component.parent().unwrap_or(Path::new("")));
        std::fs::create_dir_all(&component_dir).map_err(io)?;
        let staged = (|| {
            copy_synced(&dir.join("plugin.toml"), &staging.join("plugin.toml"))?;
            copy_synced(&dir.join(component), &staging.join(component))?;
            let mut synced = component_dir.clone();
            while synced.starts_with(&staging) {
                sync_dir(&synced)?;
                if !synced.pop() {
                    break;
                }
            }
            Ok(())
        })()
        .map_err(io)
        .and_then(|()| {
            // The copy is what is checked: a folder changed between the reads installs
            // nothing it did not check.
            let plugin = self.read_plugin(&staging)?;
            if plugin.name() != name {
                return Err(format!("plugin `{name}` changed while it was installed"));
            }
            self.sandbox
                .pre_instantiate(&plugin)
                .map_err(|e| e.to_string())
        });
        if let Err(e) = staged {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        // Swap in whole (an exchange when one is installed already), so a reader or a crash
        // sees the old plugin or the new one, never neither; then make it durable.
        let swapped = if dest.exists() {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &staging,
                rustix::fs::CWD,
                &dest,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .map_err(std::io::Error::from)
        } else {
            std::fs::rename(&staging, &dest)
        };
        swapped.map_err(io)?;
        sync_dir(&plugins).map_err(io)?;
        // After an exchange the staging path holds the old copy.
        let _ = std::fs::remove_dir_all(&staging);
        self.load_plugin(&dest)?;
        self.get(&name)
            .ok_or_else(|| format!("plugin `{name}` vanished while it was installed"))
    }
}

/// Copies a file and flushes the copy to disk.
fn copy_synced(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::copy(from, to)?;
    std::fs::File::open(to)?.sync_all()
}

/// Flushes a directory's entries to disk.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The folders directly in `dir`, sorted, but for hidden ones: `.NAME.installing` is an
/// install in progress (or one that died half-way).
fn plugin_dirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read plugin directory {}: {e}", dir.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}
