//! The capabilities a plugin can be granted, each in three phases, and the table that lists them.
//!
//! A capability is one file here implementing `HostCapability` (in `phases.rs`):
//! - **link**, once per engine: its host functions go into the linker every plugin shares;
//! - **grant**, once per plugin load: what `plugin.toml` requests, narrowed by the operator's
//!   `[plugins.NAME]` section (never widened), becomes the plugin's grant;
//! - **prepare**, once per call: the grant and the call's [`CallEnv`] become the state the host
//!   functions see (a WASI preopen, an allow-list, the secret values).
//!
//! The phases themselves are in `phases.rs`.
//!
//! Adding one means adding its file (with its own request, operator and grant types) and one
//! entry in the `capabilities!` table at the bottom; the combined `Request`, `OperatorGrant`
//! and `Grants` that hold every capability's part, and the link, grant and prepare passes over
//! all of them, are generated from the table.

pub mod env;
pub mod exec;
pub mod files;
pub mod http;
pub mod log;
mod phases;
pub mod secrets;

pub(crate) use phases::{CallData, Prepare, Shared};
pub use phases::{CallEnv, FileMode};

use crate::error::GrantError;
use crate::limits::{Limits, parse_duration, parse_size};
use phases::HostCapability;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use wasmtime::component::Linker;

/// The operator's limits for one plugin: lower than `plugin.toml` asks (higher values are
/// ignored).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct OperatorLimits {
    /// e.g. `64MiB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// e.g. `5m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// e.g. `128`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    /// e.g. `1GiB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program_memory: Option<String>,
    /// e.g. `2m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program_cpu: Option<String>,
    /// e.g. `1GiB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_size: Option<String>,
}

/// The memory and time one call of the plugin gets, and what its programs may use.
#[derive(Clone, Debug, Serialize)]
pub struct LimitGrant {
    /// Linear memory in bytes.
    pub memory: u64,
    /// Wall time of one call.
    #[serde(serialize_with = "humantime_text")]
    pub timeout: Duration,
    /// Processes and threads of its programs at once.
    pub processes: u64,
    /// Data memory per program process, in bytes.
    pub program_memory: u64,
    /// CPU time per program process.
    #[serde(serialize_with = "humantime_text")]
    pub program_cpu: Duration,
    /// How large the workspace may grow while programs run, in bytes.
    pub workspace_size: u64,
}

impl Default for LimitGrant {
    fn default() -> Self {
        LimitGrant::decide(&Limits::default(), &OperatorLimits::default())
            .expect("the default limits are valid")
    }
}

fn humantime_text<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

impl LimitGrant {
    fn decide(limits: &Limits, operator: &OperatorLimits) -> Result<LimitGrant, String> {
        let size = |asked: u64, lower: &Option<String>| {
            lower
                .as_deref()
                .map_or(Ok(asked), |l| parse_size(l).map(|l| asked.min(l)))
        };
        let time = |asked: Duration, lower: &Option<String>| {
            lower
                .as_deref()
                .map_or(Ok(asked), |l| parse_duration(l).map(|l| asked.min(l)))
        };
        Ok(LimitGrant {
            memory: size(limits.memory()?, &operator.memory)?,
            timeout: time(limits.timeout()?, &operator.timeout)?,
            processes: limits
                .processes()?
                .min(operator.processes.unwrap_or(u64::MAX))
                .max(1),
            program_memory: size(limits.program_memory()?, &operator.program_memory)?,
            program_cpu: time(limits.program_cpu()?, &operator.program_cpu)?,
            workspace_size: size(limits.workspace_size()?, &operator.workspace_size)?,
        })
    }
}

impl OperatorGrant {
    /// A section that says nothing but `replace_builtin = true`: letting a plugin take a
    /// built-in's name is not consent to everything it requests.
    pub fn only_replaces_builtin(&self) -> bool {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_object().cloned())
            // A switch left off (`allow_private_http = false`) says no more than its absence.
            .is_some_and(|keys| {
                keys.iter()
                    .all(|(k, v)| k == "replace_builtin" || *v == serde_json::Value::Bool(false))
            })
    }

    /// What an added plugin gets when the operator wrote no section for it: every list empty,
    /// no network for its programs, no private hosts, and no limit above the defaults. Its log
    /// and the workspace (which the host gives every step) stay as requested.
    pub fn defaults() -> OperatorGrant {
        let mut grant: OperatorGrant =
            toml::from_str("exec = []\nnetwork = false\nhttp = []\nsecrets = []\nenv = []\n")
                .expect("the default operator section parses");
        let limits = LimitGrant::default();
        grant.limits = OperatorLimits {
            memory: Some(limits.memory.to_string()),
            timeout: Some(limits.timeout.as_secs().to_string()),
            processes: Some(limits.processes),
            program_memory: Some(limits.program_memory.to_string()),
            program_cpu: Some(limits.program_cpu.as_secs().to_string()),
            workspace_size: Some(limits.workspace_size.to_string()),
        };
        grant
    }
}

/// The keys of `[limits]` an operator section may lower.
const LIMIT_KEYS: &[&str] = &[
    "memory",
    "timeout",
    "processes",
    "program_memory",
    "program_cpu",
    "workspace_size",
];

/// A call's store data that holds every capability's state.
pub(crate) trait HasCapabilities: CallData {
    fn capabilities(&mut self) -> &mut CallCapabilities;
}

/// What programs started through `exec` inherit from the other grants.
pub(crate) fn shared(grants: &Grants) -> Shared {
    Shared {
        dirs: grants.files.dirs.clone(),
        env: grants.env.values(),
    }
}

/// Refuses keys no capability knows, naming the ones that exist.
fn refuse_unknown(
    unknown: &BTreeMap<String, toml::Value>,
    table: &str,
    known: &[&str],
) -> Result<(), String> {
    match unknown.keys().next() {
        None => Ok(()),
        Some(key) => Err(format!(
            "unknown capability `{key}` in {table}; known: {}",
            known.join(", ")
        )),
    }
}

/// Generates, from one line per capability, the structs and loops the sandbox uses: the
/// request (`[capabilities]`), the operator section, the grants in force, a call's state, and
/// the link / grant / prepare passes over every capability.
macro_rules! capabilities {
    ($($field:ident: $cap:ty => ($request:ty, $operator:ty, $grant:ty)),* $(,)?) => {
        /// What a plugin asks for in `plugin.toml`'s `[capabilities]` table, capability by
        /// capability. Nothing outside it is ever granted.
        #[derive(Clone, Debug, Default, Serialize, Deserialize)]
        #[serde(try_from = "RequestTable")]
        pub struct Request {
            $(
                #[doc = concat!("The `", stringify!($field), "` request.")]
                #[serde(flatten)]
                pub $field: $request,
            )*
        }

        #[derive(Deserialize)]
        struct RequestTable {
            $(#[serde(flatten)] $field: $request,)*
            #[serde(flatten)]
            unknown: BTreeMap<String, toml::Value>,
        }

        impl TryFrom<RequestTable> for Request {
            type Error = String;
            fn try_from(table: RequestTable) -> Result<Request, String> {
                refuse_unknown(&table.unknown, "[capabilities]", &request_keys())?;
                Ok(Request { $($field: table.$field,)* })
            }
        }

        /// The operator's word on one plugin (`[plugins.NAME]` in the config file): each list
        /// narrows what `plugin.toml` requests, and a few settings only the operator can give.
        #[derive(Clone, Debug, Default, Serialize, Deserialize)]
        #[serde(try_from = "OperatorTable")]
        pub struct OperatorGrant {
            $(
                #[doc = concat!("The operator's `", stringify!($field), "` settings.")]
                #[serde(flatten)]
                pub $field: $operator,
            )*
            /// Lower limits than `plugin.toml` asks for.
            #[serde(flatten)]
            pub limits: OperatorLimits,
            /// An installed plugin of this name may take the place of the built-in one.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            pub replace_builtin: bool,
        }

        #[derive(Deserialize)]
        struct OperatorTable {
            $(#[serde(flatten)] $field: $operator,)*
            #[serde(flatten)]
            limits: OperatorLimits,
            #[serde(default)]
            replace_builtin: bool,
            #[serde(flatten)]
            unknown: BTreeMap<String, toml::Value>,
        }

        impl TryFrom<OperatorTable> for OperatorGrant {
            type Error = String;
            fn try_from(table: OperatorTable) -> Result<OperatorGrant, String> {
                refuse_unknown(&table.unknown, "the plugin's operator section", &operator_keys())?;
                Ok(OperatorGrant {
                    $($field: table.$field,)*
                    limits: table.limits,
                    replace_builtin: table.replace_builtin,
                })
            }
        }

        /// What the host allows one plugin: its request narrowed by the operator, capability
        /// by capability, and its limits.
        #[derive(Clone, Debug, Default, Serialize)]
        pub struct Grants {
            $(
                #[doc = concat!("The `", stringify!($field), "` grant.")]
                #[serde(flatten)]
                pub $field: $grant,
            )*
            /// Memory and time per call.
            #[serde(flatten)]
            pub limits: LimitGrant,
        }

        impl Grants {
            /// Decides every grant of a plugin: phase 2.
            pub(crate) fn decide(
                request: &Request,
                limits: &Limits,
                operator: &OperatorGrant,
            ) -> Result<Grants, GrantError> {
                Ok(Grants {
                    $($field: <$cap as HostCapability>::grant(&request.$field, &operator.$field)?,)*
                    limits: LimitGrant::decide(limits, &operator.limits)
                        .map_err(GrantError::limits)?,
                })
            }
        }

        /// Every key of `[capabilities]`, capability by capability.
        fn request_keys() -> Vec<&'static str> {
            [$(<$cap as HostCapability>::REQUEST_KEYS),*].concat()
        }

        /// Every key of an operator section: the capabilities', then the limits'.
        fn operator_keys() -> Vec<&'static str> {
            [$(<$cap as HostCapability>::OPERATOR_KEYS,)* LIMIT_KEYS, &["replace_builtin"]].concat()
        }

        /// Every capability's state for one call.
        pub(crate) struct CallCapabilities {
            $(pub(crate) $field: <$cap as HostCapability>::State,)*
        }

        /// Phase 1 for every capability.
        pub(crate) fn link_all<T: HasCapabilities>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
            $(<$cap as HostCapability>::link(linker, |state| &mut state.capabilities().$field)?;)*
            Ok(())
        }

        /// Phase 3 for every capability.
        pub(crate) fn prepare_all(
            grants: &Grants,
            cx: &mut Prepare<'_>,
        ) -> Result<CallCapabilities, String> {
            Ok(CallCapabilities {
                $($field: <$cap as HostCapability>::prepare(&grants.$field, cx)?,)*
            })
        }
    };
}

capabilities! {
    log: log::Log => (log::LogRequest, log::LogOperator, log::LogGrant),
    secrets: secrets::SecretsCapability
        => (secrets::SecretsRequest, secrets::SecretsOperator, secrets::SecretsGrant),
    env: env::Env => (env::EnvRequest, env::EnvOperator, env::EnvGrant),
    files: files::Files => (files::FilesRequest, files::FilesOperator, files::FilesGrant),
    http: http::Http => (http::HttpRequest, http::HttpOperator, http::HttpGrant),
    exec: exec::Exec => (exec::ExecRequest, exec::ExecOperator, exec::ExecGrant),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use std::path::PathBuf;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
name = "tf"
version = "1"
kind = "step"
component = "tf.wasm"
[capabilities]
exec = ["bash", "terraform-not-installed"]
http = ["https://registry.terraform.io", "https://*.amazonaws.com"]
secrets = ["aws_*", "slack"]
files = [{ path = "workspace", mode = "rw" }, { path = "/srv/modules", mode = "rw" }]
network = true
[limits]
memory = "128MiB"
timeout = "30m"
"#,
        )
        .unwrap()
    }

    fn grants(operator: &OperatorGrant) -> Grants {
        let m = manifest();
        Grants::decide(&m.capabilities, &m.limits, operator).unwrap()
    }

    #[test]
    fn without_operator_config_the_request_stands_but_operator_only_grants_do_not() {
        let g = grants(&OperatorGrant::default());
        assert!(g.exec.programs.contains_key("bash"));
        assert_eq!(g.exec.missing_programs, ["terraform-not-installed"]);
        assert_eq!(g.http.http_entries.len(), 2);
        assert_eq!(g.files.workspace, Some(FileMode::Rw));
        assert!(
            g.files.dirs.is_empty(),
            "host directories need the operator"
        );
        assert!(!g.http.allow_private_http);
        assert!(g.exec.network);
    }

    #[test]
    fn the_operator_narrows_and_never_widens() {
        let op: OperatorGrant = toml::from_str(
            r#"
exec = ["bash", "curl"]
http = ["https://registry.terraform.io"]
secrets = ["slack", "github_token"]
files = [{ path = "/srv/modules", mode = "ro" }, { path = "/etc", mode = "rw" }]
network = false
memory = "1GiB"
timeout = "5m"
"#,
        )
        .unwrap();
        let g = grants(&op);
        assert_eq!(
            g.exec.programs.keys().collect::<Vec<_>>(),
            ["bash"],
            "curl was never requested"
        );
        assert_eq!(g.http.http_entries, ["https://registry.terraform.io"]);
        assert_eq!(g.secrets.secrets, ["slack"]);
        assert_eq!(
            g.files.dirs,
            [(PathBuf::from("/srv/modules"), FileMode::Ro)]
        );
        assert!(!g.exec.network);
        assert_eq!(
            g.limits.memory,
            128 << 20,
            "a higher operator limit is ignored"
        );
        assert_eq!(g.limits.timeout, Duration::from_secs(300));
    }

    #[test]
    fn a_section_that_only_replaces_a_builtin_is_not_a_grant() {
        let only: OperatorGrant = toml::from_str("replace_builtin = true").unwrap();
        assert!(only.only_replaces_builtin());
        let more: OperatorGrant = toml::from_str("replace_builtin = true\nexec = []").unwrap();
        assert!(!more.only_replaces_builtin());
        assert!(!OperatorGrant::defaults().only_replaces_builtin());
        let empty: OperatorGrant = toml::from_str("").unwrap();
        assert!(
            empty.only_replaces_builtin(),
            "an empty section has no keys at all"
        );
    }

    #[test]
    fn grants_serialize_flat_as_the_api_documents_them() {
        let json = serde_json::to_value(grants(&OperatorGrant::default())).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "allow_private_http",
                "dirs",
                "env",
                "http_entries",
                "memory",
                "missing_programs",
                "network",
                "processes",
                "program_cpu",
                "program_memory",
                "programs",
                "secrets",
                "timeout",
                "workspace",
                "workspace_size"
            ]
        );
    }

    /// Two capabilities sharing a key would make serde hand it to the first and leave the
    /// other at its default; the key lists are what the tables really read, and never overlap.
    #[test]
    fn each_key_belongs_to_one_capability_and_is_read() {
        let mut listed = request_keys();
        let request = serde_json::to_value(Request::default()).unwrap();
        let mut read: Vec<&str> = request
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        listed.sort_unstable();
        read.sort_unstable();
        assert_eq!(listed, read, "REQUEST_KEYS against the fields serde reads");
        listed.dedup();
        assert_eq!(listed.len(), read.len(), "a request key is shared");

        let mut operator = operator_keys();
        let count = operator.len();
        operator.sort_unstable();
        operator.dedup();
        assert_eq!(operator.len(), count, "an operator key is shared");
        for key in operator {
            // A value of the wrong type is fine; only an unknown key would say so.
            let err = toml::from_str::<OperatorGrant>(&format!("{key} = {{ nested = 1 }}"));
            let text = err.map(|_| String::new()).unwrap_or_else(|e| e.to_string());
            assert!(!text.contains("unknown capability"), "{key}: {text}");
        }
    }

    #[test]
    fn a_key_no_capability_knows_is_refused_where_it_is_written() {
        let err = toml::from_str::<OperatorGrant>("exce = [\"bash\"]\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown capability `exce`"),
            "{err}"
        );
        let err = Manifest::parse(
            "name='x'\nversion='1'\nkind='step'\ncomponent='x.wasm'\n[capabilities]\nnetwrk=true\n",
        )
        .unwrap_err();
        assert!(err.contains("unknown capability `netwrk`"), "{err}");
        assert!(
            err.contains("known: secrets, env, files, http, http_pace, exec, network"),
            "{err}"
        );
    }
}
