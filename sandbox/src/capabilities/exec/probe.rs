//! What this kernel lets the daemon enforce on programs, feature by feature, found by really
//! trying each in a short-lived child, once per process.

use super::child::{self, ChildPlan, ExecTarget};
use super::{ruleset, syscalls};
use serde::Serialize;
use std::ffi::CString;
use std::sync::OnceLock;

/// What this kernel lets the daemon enforce, found by trying it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfinementSupport {
    /// The kernel's Landlock ABI version, when Landlock is enabled and a ruleset could be
    /// enforced on a test child.
    pub landlock_abi: Option<i32>,
    /// A test child could move into a fresh network namespace.
    pub network_namespaces: bool,
    /// A test child could start a process in a fresh PID namespace.
    pub pid_namespaces: bool,
    /// A test child could make every mount read-only in a fresh mount namespace.
    pub read_only_mounts: bool,
    /// A test child could install a seccomp filter.
    pub seccomp: bool,
    /// A cgroup per program run can be made (v2 delegated, or v1 memory and pids): memory and
    /// processes bounded for the whole run, not only per process by rlimits. Not required.
    pub cgroups: bool,
    /// The namespaces need a user namespace too (no CAP_SYS_ADMIN in the daemon).
    pub needs_user_namespace: bool,
    /// One clause per feature, `; `-separated, with the reason when it is missing.
    pub detail: String,
}

/// One thing confinement is made of, as operators read it in refusals and warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Landlock: files outside the grants.
    Filesystem,
    /// Network namespaces: the host's network.
    Network,
    /// PID namespaces: other processes, and programs outliving their step.
    Processes,
    /// Mount namespaces: modes, owners, times and xattrs outside the workspace.
    Metadata,
    /// seccomp: UNIX sockets in the file system, open_by_handle_at, io_uring.
    Syscalls,
}

impl Feature {
    /// What is lost without it, and what provides it.
    pub fn describe(self) -> &'static str {
        match self {
            Feature::Filesystem => "filesystem confinement (Landlock)",
            Feature::Network => "network isolation (network namespaces)",
            Feature::Processes => "process isolation (PID namespaces)",
            Feature::Metadata => "read-only mounts outside the workspace (mount namespaces)",
            Feature::Syscalls => {
                "system call filtering (seccomp: UNIX sockets, open_by_handle_at, io_uring)"
            }
        }
    }
}

impl ConfinementSupport {
    /// One line for operators: `complete (…)` or `missing: …`, then the probe's detail.
    pub fn summary(&self) -> String {
        let missing = self.missing(false);
        if missing.is_empty() {
            format!("complete ({})", self.detail)
        } else {
            let names: Vec<&str> = missing.iter().map(|f| f.describe()).collect();
            format!("missing: {} ({})", names.join(", "), self.detail)
        }
    }

    /// Every feature works: programs can be fully confined.
    pub fn complete(&self) -> bool {
        self.missing(false).is_empty()
    }

    /// The features a program run lacks here; `network` is whether it is granted the network
    /// (which makes network isolation moot).
    pub fn missing(&self, network: bool) -> Vec<Feature> {
        let mut missing = Vec::new();
        if self.landlock_abi.is_none() {
            missing.push(Feature::Filesystem);
        }
        if !network && !self.network_namespaces {
            missing.push(Feature::Network);
        }
        if !self.pid_namespaces {
            missing.push(Feature::Processes);
        }
        if !self.read_only_mounts {
            missing.push(Feature::Metadata);
        }
        if !self.seccomp {
            missing.push(Feature::Syscalls);
        }
        missing
    }
}

/// The support of this kernel, probed once per process.
pub fn support() -> &'static ConfinementSupport {
    static SUPPORT: OnceLock<ConfinementSupport> = OnceLock::new();
    SUPPORT.get_or_init(probe)
}

/// Tries each feature in a short-lived forked child, as exec will use it. [`support`] caches
/// the answer.
pub fn probe() -> ConfinementSupport {
    let mut detail = Vec::new();
    let landlock_abi = probe_landlock(&mut detail);

    // Root (CAP_SYS_ADMIN) can unshare namespaces alone; anyone else, or root in a container
    // without that capability, needs a user namespace to own them.
    let (network_namespaces, needs_user_namespace) = probe_network(&mut detail);
    let namespaced = |flags: libc::c_int| {
        if needs_user_namespace {
            ChildPlan::in_user_namespace(flags)
        } else {
            ChildPlan {
                unshare: flags,
                ..ChildPlan::default()
            }
        }
    };

    // Init and the program are started as exec will start them, running `true`.
    let pid_namespaces = report(
        &mut detail,
        "PID and IPC namespaces",
        super::programs::resolve_program("true")
            .ok_or_else(|| std::io::Error::other("no `true` program to try it with"))
            .and_then(|path| ExecTarget::new(&path, [], []))
            .and_then(|target| {
                let mut plan = namespaced(libc::CLONE_NEWPID | libc::CLONE_NEWIPC);
                plan.under_init(target);
                plan.try_in_child()
            }),
    );
    let writable = CString::new(std::env::temp_dir().into_os_string().into_encoded_bytes())
        .unwrap_or_else(|_| c"/tmp".to_owned());
    let read_only_mounts = report(
        &mut detail,
        "read-only mount namespaces",
        ChildPlan {
            writable_mounts: vec![writable],
            ..namespaced(libc::CLONE_NEWNS)
        }
        .try_in_child(),
    );
    let seccomp = match syscalls::filters(false) {
        Ok(filters) => report(
            &mut detail,
            "seccomp",
            ChildPlan {
                seccomp: filters,
                ..ChildPlan::default()
            }
            .try_in_child(),
        ),
        Err(e) => {
            detail.push(format!("seccomp: unavailable: {e}"));
            false
        }
    };

    let cgroups = match super::cgroup::probe() {
        Ok(()) => {
            detail.push("cgroups: a cgroup per program run (memory and processes)".into());
            true
        }
        Err(e) => {
            detail.push(format!("cgroups: unavailable ({e}); rlimits only"));
            false
        }
    };
    ConfinementSupport {
        cgroups,
        landlock_abi,
        network_namespaces,
        pid_namespaces,
        read_only_mounts,
        seccomp,
        needs_user_namespace,
        detail: detail.join("; "),
    }
}

/// Records one feature's trial in `detail` and says whether it worked.
fn report(detail: &mut Vec<String>, feature: &str, result: std::io::Result<()>) -> bool {
    match result {
        Ok(()) => {
            detail.push(format!("{feature}: available"));
            true
        }
        Err(e) => {
            detail.push(format!("{feature}: unavailable: {e}"));
            false
        }
    }
}

/// Enforces a one-right ruleset on a throwaway child, as exec will.
fn probe_landlock(detail: &mut Vec<String>) -> Option<i32> {
    let version = match child::landlock_abi() {
        Ok(version) => version,
        Err(err) => {
            detail.push(match err.raw_os_error() {
                Some(libc::EOPNOTSUPP) => "landlock: built into the kernel but not enabled \
                                       (add `landlock` to the lsm= boot parameter)"
                    .to_string(),
                Some(libc::ENOSYS) => "landlock: not built into this kernel \
                                   (needs Linux 5.13+ with CONFIG_SECURITY_LANDLOCK)"
                    .to_string(),
                _ => format!("landlock: unavailable: {err}"),
            });
            return None;
        }
    };
    match ruleset::probe_ruleset() {
        Ok(Some(fd)) => {
            let plan = ChildPlan {
                ruleset: Some(fd),
                ..ChildPlan::default()
            };
            match plan.try_in_child() {
                Ok(()) => {
                    detail.push(format!(
                        "landlock: ABI {version}, enforced on a test child{}",
                        if version < 6 {
                            " (signal and abstract-socket scoping need ABI 6; \
                             PID and network namespaces cover them)"
                        } else {
                            ""
                        }
                    ));
                    Some(version)
                }
                Err(e) => {
                    detail.push(format!(
                        "landlock: ABI {version} reported but restrict_self failed: {e}"
                    ));
                    None
                }
            }
        }
        Ok(None) => {
            detail.push(format!(
                "landlock: ABI {version} reported but no ruleset was created"
            ));
            None
        }
        Err(e) => {
            detail.push(format!("landlock: cannot create a ruleset: {e}"));
            None
        }
    }
}

/// Whether a child can get a network namespace, and whether it needs a user namespace for it.
fn probe_network(detail: &mut Vec<String>) -> (bool, bool) {
    let mut plain_error = None;
    if child::is_root() {
        let plan = ChildPlan {
            unshare: libc::CLONE_NEWNET,
            ..ChildPlan::default()
        };
        match plan.try_in_child() {
            Ok(()) => {
                detail.push(
                    "network namespaces: unshare(CLONE_NEWNET) works (CAP_SYS_ADMIN)".to_string(),
                );
                return (true, false);
            }
            Err(e) => plain_error = Some(e),
        }
    }
    match ChildPlan::in_user_namespace(libc::CLONE_NEWNET).try_in_child() {
        Ok(()) => {
            detail.push(format!(
                "network namespaces: unshare(CLONE_NEWUSER|CLONE_NEWNET) works{}",
                plain_error
                    .map(|e| format!(" (CLONE_NEWNET alone failed: {e})"))
                    .unwrap_or_default()
            ));
            (true, true)
        }
        Err(e) => {
            detail.push(format!(
                "network namespaces: unavailable: {}unshare(CLONE_NEWUSER|CLONE_NEWNET): {e}{}",
                plain_error
                    .map(|e| format!("unshare(CLONE_NEWNET): {e}; "))
                    .unwrap_or_default(),
                if e.raw_os_error() == Some(libc::EPERM) || e.raw_os_error() == Some(libc::ENOSPC) {
                    " (unprivileged user namespaces disabled? see the sysctls \
                     kernel.unprivileged_userns_clone and user.max_user_namespaces, \
                     or an AppArmor userns restriction)"
                } else {
                    ""
                }
            ));
            // Without user namespaces, the other namespaces are tried plainly (root only).
            (false, !child::is_root())
        }
    }
}
