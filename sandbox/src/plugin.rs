//! A loaded plugin: its manifest, digest and grants, and — compiled once, on first use — the
//! pre-instantiated component with its world's exports looked up.

use crate::bindings::{notifier, step, trigger};
use crate::capabilities::{Grants, OperatorGrant};
use crate::compile;
use crate::error::LoadError;
use crate::kind::PluginKind;
use crate::manifest::Manifest;
use crate::sandbox::Sandbox;
use crate::state::CallState;
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use wasmtime::component::InstancePre;

/// A plugin the sandbox has loaded. Use it only with the [`Sandbox`] that loaded it.
pub struct Plugin {
    /// What `plugin.toml` says.
    pub manifest: Manifest,
    /// sha256 of the component, hex.
    pub digest: String,
    /// What the host allows it, decided at load; read-only afterwards.
    grants: Grants,
    /// What the grants were decided from.
    basis: GrantBasis,
    wasm: Arc<[u8]>,
    linked: OnceLock<Result<Arc<Linked>, LoadError>>,
}

/// Where a plugin comes from, which decides what it gets when the operator wrote nothing
/// about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// Embedded in the binary: shipped, and reviewed, with the host.
    BuiltIn,
    /// Installed into the data directory or loaded from `--plugins`.
    Added,
}

/// What a plugin's grants were decided from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantBasis {
    /// The operator's `[plugins.NAME]` section narrowed its request.
    OperatorSection,
    /// A built-in without an operator section: its request stands.
    BuiltInRequest,
    /// An added plugin without an operator section: the defaults (log and workspace only).
    Defaults,
}

impl GrantBasis {
    /// One line for `plugins inspect`.
    pub fn describe(self, name: &str) -> String {
        match self {
            GrantBasis::OperatorSection => {
                format!("[plugins.{name}] in the config narrows what it requests")
            }
            GrantBasis::BuiltInRequest => {
                format!("built-in request (no [plugins.{name}] section narrows it)")
            }
            GrantBasis::Defaults => format!(
                "defaults: log and workspace only, no programs, hosts, secrets, variables or \
                 directories, default limits; write a [plugins.{name}] section (even an empty \
                 one) to grant what it requests"
            ),
        }
    }
}

/// A compiled, linked plugin, ready to instantiate.
pub(crate) struct Linked {
    pub(crate) pre: InstancePre<CallState>,
    /// One per kind it exports: its own first.
    pub(crate) exports: Vec<Exports>,
}

/// Where a plugin's world export lives in its component.
pub(crate) enum Exports {
    Step(step::GuestIndices),
    Trigger(trigger::GuestIndices),
    Notifier(notifier::GuestIndices),
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.manifest.name)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The name workflows use.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Which interface it exports.
    pub fn kind(&self) -> PluginKind {
        self.manifest.kind
    }

    /// Whether it exports `kind`'s interface: its own kind's, or one it also exports.
    pub fn is(&self, kind: PluginKind) -> bool {
        self.manifest.kind == kind || self.manifest.also.contains(&kind)
    }

    /// Its kinds, as listings show them: `step`, or `step+notifier`.
    pub fn kinds_label(&self) -> String {
        std::iter::once(self.manifest.kind)
            .chain(self.manifest.also.iter().copied())
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// What the host allows it: its request narrowed by the operator.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// What its grants were decided from.
    pub fn grant_basis(&self) -> GrantBasis {
        self.basis
    }

    /// What the API and `plugins list --output json` show of a plugin.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name(),
            "version": self.manifest.version,
            "kind": self.manifest.kind,
            "also": self.manifest.also,
            "world": self.manifest.world,
            "digest": format!("sha256:{}", self.digest),
            "requested": self.manifest.capabilities,
            "grants": self.grants,
            "grant_basis": self.basis,
        })
    }
}

impl Sandbox {
    /// Loads a plugin: decides its grants (its request narrowed by the operator's section for
    /// its name; without one, a built-in's request stands and an added plugin gets the
    /// defaults). Compiling waits for first use or [`Sandbox::pre_instantiate`].
    pub fn load(
        &self,
        manifest: Manifest,
        wasm: impl Into<Arc<[u8]>>,
        provenance: Provenance,
    ) -> Result<Plugin, LoadError> {
        let wasm = wasm.into();
        let (operator, basis) = match (self.operator.get(&manifest.name), provenance) {
            // Letting a plugin take a built-in's name is not consent to what it requests.
            (Some(section), Provenance::Added)
                if section.replace_builtin && section.only_replaces_builtin() =>
            {
                (
                    OperatorGrant {
                        replace_builtin: true,
                        ..OperatorGrant::defaults()
                    },
                    GrantBasis::Defaults,
                )
            }
            (Some(section), _) => (section.clone(), GrantBasis::OperatorSection),
            (None, Provenance::BuiltIn) => (OperatorGrant::default(), GrantBasis::BuiltInRequest),
            (None, Provenance::Added) => (OperatorGrant::defaults(), GrantBasis::Defaults),
        };
        let grants = Grants::decide(&manifest.capabilities, &manifest.limits, &operator).map_err(
            |error| LoadError::Grant {
                plugin: manifest.name.clone(),
                error,
            },
        )?;
        Ok(Plugin {
            digest: hex::encode(Sha256::digest(&wasm)),
            manifest,
            grants,
            basis,
            wasm,
            linked: OnceLock::new(),
        })
    }

    /// Compiles (or loads the cached compilation), links and checks the plugin's world export
    /// now, instead of on its first call: an install checks this before it copies anything.
    pub fn pre_instantiate(&self, plugin: &Plugin) -> Result<(), LoadError> {
        self.linked(plugin).map(|_| ())
    }

    pub(crate) fn linked(&self, plugin: &Plugin) -> Result<Arc<Linked>, LoadError> {
        plugin
            .linked
            .get_or_init(|| self.link(plugin).map(Arc::new))
            .clone()
    }

    fn link(&self, plugin: &Plugin) -> Result<Linked, LoadError> {
        let name = plugin.name().to_string();
        let runtime = self.runtime()?;
        let component = compile::component(
            &runtime.engine,
            self.cache_dir.as_deref(),
            &plugin.digest,
            &plugin.wasm,
        )
        .map_err(|e| LoadError::Compile {
            plugin: name.clone(),
            message: format!("{e:#}"),
        })?;
        let pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                plugin: name.clone(),
                message: format!("{e:#}"),
            })?;
        let kinds = std::iter::once(plugin.kind()).chain(plugin.manifest.also.iter().copied());
        let exports = kinds
            .map(|kind| {
                match kind {
                    PluginKind::Step => step::GuestIndices::new(&pre).map(Exports::Step),
                    PluginKind::Trigger => trigger::GuestIndices::new(&pre).map(Exports::Trigger),
                    PluginKind::Notifier => {
                        notifier::GuestIndices::new(&pre).map(Exports::Notifier)
                    }
                }
                .map_err(|e| LoadError::MissingExport {
                    plugin: name.clone(),
                    kind,
                    world: if kind == plugin.kind() {
                        plugin.manifest.world.clone()
                    } else {
                        crate::kind::newest_world(kind).to_string()
                    },
                    message: format!("{e:#}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Linked { pre, exports })
    }
}
