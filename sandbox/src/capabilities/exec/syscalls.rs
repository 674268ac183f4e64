//! The seccomp filter every program gets: no `open_by_handle_at` and no io_uring, and without a
//! network grant, no UNIX sockets.
//!
//! `open_by_handle_at` opens a file by inode handle, around every path rule; io_uring's own
//! open, socket and connect operations would go around this filter. Both are refused whatever
//! the grants.
//!
//! A network namespace isolates IP and abstract sockets, but not sockets that live in the file
//! system: `/run/docker.sock`, D-Bus and the systemd managers would still answer, and through
//! them a program could start unconfined processes. Landlock only learned to govern connecting
//! to such sockets after the ABI this module is tested with, a mount namespace would have to
//! hide every directory a socket can live in, and seccomp cannot read the path `connect` is
//! given. So a program without a network grant may not create a UNIX socket at all
//! (`socketpair`, which reaches nothing outside the program, stays allowed).

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// The filter: the refused calls fail with EPERM ("Operation not permitted", as Docker's
/// default profile answers io_uring, so programs fall back to plain system calls); everything
/// else is allowed.
pub(super) fn filter(network: bool) -> Result<BpfProgram, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp: unsupported architecture: {e:?}"))?;
    let err = |e: seccompiler::BackendError| format!("seccomp filter: {e}");
    // An empty rule list refuses the call whatever its arguments.
    let mut rules = BTreeMap::from([
        (libc::SYS_open_by_handle_at, vec![]),
        (libc::SYS_io_uring_setup, vec![]),
    ]);
    if !network {
        let unix = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            libc::AF_UNIX as u64,
        )
        .map_err(err)?;
        rules.insert(
            libc::SYS_socket,
            vec![SeccompRule::new(vec![unix]).map_err(err)?],
        );
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    BpfProgram::try_from(filter).map_err(|e| format!("seccomp filter: {e}"))
}
