//! The seccomp filters every program gets.
//!
//! Refused whatever the grants, each because it goes around another layer:
//! - `open_by_handle_at` opens a file by inode handle, around every path rule;
//! - io_uring's own open, socket and connect operations would go around this filter;
//! - `keyctl`, `add_key`, `request_key`: the daemon's session keyring (and root's user keyring
//!   when programs stay root) would be readable, and nobody's keyring is shared by every run;
//! - new user namespaces (`unshare`/`clone` with `CLONE_NEWUSER`; `clone3`, whose flags seccomp
//!   cannot read, answers ENOSYS so that the C library falls back to `clone`): inside one a
//!   program holds every capability against the kernel's namespaced code, a frequent source of
//!   privilege escalations;
//! - setuid and setgid bits on files (`chmod` family, and creating a file with them): a binary
//!   left in a kept workspace would run as the program user, or as root, for anyone.
//!
//! Without a network grant, no UNIX sockets either. A network namespace isolates IP and
//! abstract sockets, but not sockets that live in the file system: `/run/docker.sock`, D-Bus
//! and the systemd managers would still answer, and through them a program could start
//! unconfined processes; a datagram socket can `sendto` `/dev/log` or the journal. Landlock
//! only learned to govern connecting to such sockets after the ABI this module is tested with,
//! a mount namespace would have to hide every directory a socket can live in, and seccomp
//! cannot read the path `connect` is given. So such a program may not create a UNIX socket at
//! all, nor a datagram socket pair (a stream pair reaches nothing outside the program and
//! stays allowed).

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Setuid and setgid mode bits.
const SUID_SGID: [u64; 2] = [libc::S_ISUID as u64, libc::S_ISGID as u64];

/// The filters to install, in order: the refusals answering EPERM ("Operation not
/// permitted", as Docker's default profile answers them), then `clone3` answering ENOSYS.
/// Compiled once per process for each answer to `network`.
pub(super) fn filters(network: bool) -> Result<Vec<BpfProgram>, String> {
    static COMPILED: [std::sync::OnceLock<Result<Vec<BpfProgram>, String>>; 2] =
        [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    COMPILED[usize::from(network)]
        .get_or_init(|| compile_filters(network))
        .clone()
}

fn compile_filters(network: bool) -> Result<Vec<BpfProgram>, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp: unsupported architecture: {e:?}"))?;
    let err = |e: seccompiler::BackendError| format!("seccomp filter: {e}");
    // The low 32 bits: every argument checked is an int or a flag word whose bits of interest
    // are there, and the upper half of a register holding an int is not defined.
    let cond = |arg: u8, op: SeccompCmpOp, value: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(err)
    };
    let rule = |conditions: Vec<SeccompCondition>| SeccompRule::new(conditions).map_err(err);
    // A rule per bit: the mode argument has either set.
    let mode_has_suid = |arg: u8| -> Result<Vec<SeccompRule>, String> {
        SUID_SGID
            .iter()
            .map(|&bit| rule(vec![cond(arg, SeccompCmpOp::MaskedEq(bit), bit)?]))
            .collect()
    };
    let new_user = libc::CLONE_NEWUSER as u64;
    // An empty rule list refuses the call whatever its arguments.
    let mut refused: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::from([
        (libc::SYS_open_by_handle_at, vec![]),
        (libc::SYS_io_uring_setup, vec![]),
        (libc::SYS_keyctl, vec![]),
        (libc::SYS_add_key, vec![]),
        (libc::SYS_request_key, vec![]),
        (
            libc::SYS_unshare,
            vec![rule(vec![cond(
                0,
                SeccompCmpOp::MaskedEq(new_user),
                new_user,
            )?])?],
        ),
        (
            libc::SYS_clone,
            vec![rule(vec![cond(
                0,
                SeccompCmpOp::MaskedEq(new_user),
                new_user,
            )?])?],
        ),
        (libc::SYS_chmod, mode_has_suid(1)?),
        (libc::SYS_fchmod, mode_has_suid(1)?),
        (libc::SYS_fchmodat, mode_has_suid(2)?),
        (libc::SYS_fchmodat2, mode_has_suid(2)?),
        (libc::SYS_creat, mode_has_suid(1)?),
        (libc::SYS_open, mode_has_suid(2)?),
        (libc::SYS_openat, mode_has_suid(3)?),
    ]);
    if !network {
        let unix = libc::AF_UNIX as u64;
        refused.insert(
            libc::SYS_socket,
            vec![rule(vec![cond(0, SeccompCmpOp::Eq, unix)?])?],
        );
        refused.insert(
            libc::SYS_socketpair,
            vec![rule(vec![
                cond(0, SeccompCmpOp::Eq, unix)?,
                // The type's low bits; SOCK_NONBLOCK and SOCK_CLOEXEC sit above them.
                cond(1, SeccompCmpOp::MaskedEq(0xf), libc::SOCK_DGRAM as u64)?,
            ])?],
        );
    }
    let compile = |rules, answer| {
        SeccompFilter::new(rules, SeccompAction::Allow, answer, arch)
            .map_err(err)
            .and_then(|f| BpfProgram::try_from(f).map_err(|e| format!("seccomp filter: {e}")))
    };
    Ok(vec![
        compile(refused, SeccompAction::Errno(libc::EPERM as u32))?,
        compile(
            BTreeMap::from([(libc::SYS_clone3, vec![])]),
            SeccompAction::Errno(libc::ENOSYS as u32),
        )?,
    ])
}
