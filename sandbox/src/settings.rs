//! Host-wide sandbox settings (`[sandbox]` in the config file).

/// Host-wide sandbox settings.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// When the kernel lacks Landlock or network namespaces: `refuse` to run programs
    /// (default) or `allow` them with what confinement there is.
    #[serde(default)]
    pub unconfined: Unconfined,
}

/// What to do when the kernel cannot confine a program as asked (`[sandbox] unconfined` in the
/// config file: `refuse` or `allow`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unconfined {
    /// Do not run the program; the step fails with the reason.
    #[default]
    Refuse,
    /// Run it with whatever confinement the kernel offers and a warning line.
    Allow,
}
