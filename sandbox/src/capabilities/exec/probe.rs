//! What this kernel lets the daemon enforce on programs: Landlock and network namespaces,
//! found by really trying each in a short-lived child, once per process.

use super::child::{self, ChildPlan, NetNs};
use super::ruleset;
use std::sync::OnceLock;

/// What this kernel lets the daemon enforce, found by trying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfinementSupport {
    /// The kernel's Landlock ABI version, when Landlock is enabled and a ruleset could be
    /// enforced on a test child.
    pub landlock_abi: Option<i32>,
    /// A test child could move into a fresh network namespace.
    pub network_namespaces: bool,
    /// The namespace needed a user namespace too (no CAP_SYS_ADMIN in the daemon).
    pub network_needs_user_namespace: bool,
    /// One clause per feature, `; `-separated, with the reason when it is missing.
    pub detail: String,
}

impl ConfinementSupport {
    /// Both features work: programs can be fully confined.
    pub fn complete(&self) -> bool {
        self.landlock_abi.is_some() && self.network_namespaces
    }
}

/// The support of this kernel, probed once per process.
pub fn support() -> &'static ConfinementSupport {
    static SUPPORT: OnceLock<ConfinementSupport> = OnceLock::new();
    SUPPORT.get_or_init(probe)
}

/// Tries Landlock and network namespaces in short-lived forked children. It costs two forks;
/// [`support`] caches the answer.
pub fn probe() -> ConfinementSupport {
    let mut detail = Vec::new();

    let landlock_abi = match child::landlock_abi() {
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
            None
        }
        // Enforce a one-right ruleset on a throwaway child, as exec will.
        Ok(version) => match ruleset::probe_ruleset() {
            Ok(Some(fd)) => {
                let plan = ChildPlan {
                    ruleset: Some(fd),
                    ..ChildPlan::default()
                };
                match plan.try_in_child() {
                    Ok(()) => {
                        detail.push(format!("landlock: ABI {version}, enforced on a test child"));
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
        },
    };

    // Root (CAP_SYS_ADMIN) can unshare the network alone; anyone else, or root in a container
    // without that capability, needs a user namespace to own the new network namespace.
    let mut network_namespaces = false;
    let mut network_needs_user_namespace = false;
    let mut plain_error = None;
    if child::is_root() {
        let plan = ChildPlan {
            netns: NetNs::New,
            ..ChildPlan::default()
        };
        match plan.try_in_child() {
            Ok(()) => {
                network_namespaces = true;
                detail.push(
                    "network namespaces: unshare(CLONE_NEWNET) works (CAP_SYS_ADMIN)".to_string(),
                );
            }
            Err(e) => plain_error = Some(e),
        }
    }
    if !network_namespaces {
        match ChildPlan::user_netns().try_in_child() {
            Ok(()) => {
                network_namespaces = true;
                network_needs_user_namespace = true;
                detail.push(format!(
                    "network namespaces: unshare(CLONE_NEWUSER|CLONE_NEWNET) works{}",
                    plain_error
                        .map(|e| format!(" (CLONE_NEWNET alone failed: {e})"))
                        .unwrap_or_default()
                ));
            }
            Err(e) => detail.push(format!(
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
            )),
        }
    }

    ConfinementSupport {
        landlock_abi,
        network_namespaces,
        network_needs_user_namespace,
        detail: detail.join("; "),
    }
}
