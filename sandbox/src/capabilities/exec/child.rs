//! Everything a confined program's process does between `fork` and `exec`, and the few raw
//! system calls around it: all of `exec`'s `unsafe` code.
//!
//! The daemon prepares everything before the fork (opening the granted paths, building the
//! Landlock ruleset, formatting the id maps) and leaves the child only system calls on memory
//! that already exists: `unshare`, writing its id maps, bringing up loopback, dropping a root
//! child's dangerous capabilities, and `landlock_restrict_self`. Nothing here allocates or takes
//! a lock, because another daemon thread may have held the allocator's lock at the moment of the
//! fork.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use tokio::process::Command;

/// Landlock's `LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR`, for the rule the
/// child adds on its own /proc entry (raw, since it is added after the fork).
const PROC_SELF_ACCESS: u64 = (1 << 2) | (1 << 3);
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

/// How the child leaves the host's network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum NetNs {
    #[default]
    Keep,
    /// unshare(CLONE_NEWNET): needs CAP_SYS_ADMIN.
    New,
    /// unshare(CLONE_NEWUSER | CLONE_NEWNET) mapping only our own uid and gid.
    NewWithUser,
}

/// Everything the child does between fork and exec, decided before the fork.
#[derive(Default)]
pub(super) struct ChildPlan {
    pub(super) netns: NetNs,
    /// "UID UID 1\n" and "GID GID 1\n": the child keeps its ids inside the user namespace.
    pub(super) uid_map: Vec<u8>,
    pub(super) gid_map: Vec<u8>,
    /// A created, not yet enforced, Landlock ruleset (close-on-exec, as the kernel makes it).
    pub(super) ruleset: Option<OwnedFd>,
    /// Let the child read its own /proc/<pid> (see `enter`).
    pub(super) proc_self: bool,
    /// The capabilities a root child may keep (a bit per capability number).
    pub(super) keep_caps: Option<u64>,
}

impl ChildPlan {
    pub(super) fn user_netns() -> Self {
        // SAFETY: getuid/getgid have no failure mode.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        ChildPlan {
            netns: NetNs::NewWithUser,
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
            ..ChildPlan::default()
        }
    }

    /// Runs in the child after fork: system calls only, on memory prepared before the fork.
    fn enter(&self) -> io::Result<()> {
        match self.netns {
            NetNs::Keep => {}
            NetNs::New => unshare(libc::CLONE_NEWNET)?,
            NetNs::NewWithUser => {
                unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET)?;
                // setgroups must be denied before an unprivileged process may write gid_map.
                write_file(c"/proc/self/setgroups", b"deny")?;
                write_file(c"/proc/self/uid_map", &self.uid_map)?;
                write_file(c"/proc/self/gid_map", &self.gid_map)?;
            }
        }
        if self.netns != NetNs::Keep {
            // The new namespace has only `lo`, down. Bringing it up lets a program talk to
            // itself on 127.0.0.1 (test servers, plugin RPC) while the host stays unreachable.
            // Failing that only leaves loopback down, which is still isolated.
            loopback_up();
        }
        if let Some(keep) = self.keep_caps {
            // Last: unshare and bringing up loopback needed CAP_SYS_ADMIN and CAP_NET_ADMIN.
            drop_capabilities(keep);
        }
        if let Some(ruleset) = &self.ruleset {
            if self.proc_self {
                // /proc/self must name the child, not the daemon, so this one rule is added
                // here rather than before the fork. Python, Node and the JVM read their own
                // status, maps, fd list and cgroup there; the rest of /proc (other processes'
                // environ and cmdline, the daemon's among them) stays closed. The O_PATH fd is
                // deliberately left open across exec: it pins the /proc/<pid> dentry, whose
                // inode the rule names; were it reclaimed, procfs would make a new inode and
                // the rule would silently stop matching. Failure only loses /proc/self. Only
                // this process (and what it execs) is covered: a forked descendant has a new
                // /proc/<pid>, which stays closed to it.
                add_proc_self_rule(ruleset.as_raw_fd());
            }
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a valid ruleset fd and no flags.
            let rc = unsafe {
                libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32)
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Runs `enter` in a forked child that exits at once, and returns what it reported.
    pub(super) fn try_in_child(&self) -> io::Result<()> {
        // SAFETY: the child runs `enter` (system calls only) and `_exit`s; it never returns
        // into Rust code that could touch state shared with the parent's other threads.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            let code = match self.enter() {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().unwrap_or(libc::EINVAL).clamp(1, 255),
            };
            // SAFETY: ends the child without running the parent's destructors or atexit hooks.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        loop {
            // SAFETY: waits for the child forked above.
            if unsafe { libc::waitpid(pid, &mut status, 0) } >= 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
            (true, 0) => Ok(()),
            (true, errno) => Err(io::Error::from_raw_os_error(errno)),
            _ => Err(io::Error::other("the test child was killed")),
        }
    }
}

/// Capabilities a root child keeps: what working on files as root needs (chown, modes, files
/// of other owners, setuid for tools that drop privileges, low ports). Everything else goes
/// from the bounding, permitted, effective, inheritable and ambient sets, so not even exec as
/// uid 0 brings it back. Path rules cannot stop what it would allow: init_module loads a
/// kernel module from memory, ioperm and /dev/mem-style raw I/O, mount, BPF, perf, reboot,
/// the clock, open_by_handle_at (CAP_DAC_READ_SEARCH), reconfiguring the host's network when
/// it is granted. CAP_NET_RAW stays only when network is granted (ping in health checks).
pub(super) const KEEP_CAPS: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL (signals stay inside the Landlock domain anyway)
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    10, // CAP_NET_BIND_SERVICE
];
pub(super) const CAP_NET_RAW: u32 = 13;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Best effort: without CAP_SETPCAP (a daemon that is root in a container that took it away)
/// the bounding set stays as the container left it; the other sets always shrink.
fn drop_capabilities(keep: u64) {
    for cap in 0..64 {
        if keep & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments; EINVAL past the kernel's last capability.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        }
    }
    let mut header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: a v3 header and the two data words it calls for.
    unsafe {
        if libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        ) != 0
        {
            return;
        }
        for (i, word) in data.iter_mut().enumerate() {
            let keep = (keep >> (32 * i)) as u32;
            word.effective &= keep;
            word.permitted &= keep;
            word.inheritable &= keep;
        }
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        );
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
}

fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes only flags.
    if unsafe { libc::unshare(flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn write_file(path: &CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: a NUL-terminated path and a buffer of the given length.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if written != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

fn loopback_up() {
    // SAFETY: a zeroed ifreq naming "lo", passed to the interface ioctls on a socket we close.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return;
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut ifr) == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS, &ifr);
        }
        libc::close(sock);
    }
}

/// The kernel's `struct landlock_path_beneath_attr`, which is packed.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

fn add_proc_self_rule(ruleset: libc::c_int) {
    // SAFETY: a NUL-terminated path; the attr lives across the call.
    unsafe {
        let fd = libc::open(c"/proc/self".as_ptr(), libc::O_PATH | libc::O_DIRECTORY);
        if fd < 0 {
            return;
        }
        let attr = PathBeneathAttr {
            allowed_access: PROC_SELF_ACCESS,
            parent_fd: fd,
        };
        let rc = libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        );
        if rc != 0 {
            libc::close(fd);
        }
    }
}

/// Arranges for `cmd`'s child to enter `plan` between fork and exec.
pub(super) fn arrange(cmd: &mut Command, plan: ChildPlan) {
    // SAFETY: `ChildPlan::enter` only makes system calls on memory prepared before the fork;
    // it neither allocates nor locks.
    unsafe {
        cmd.pre_exec(move || plan.enter());
    }
}

/// SIGKILL to a whole process group: a program and everything it started.
pub(super) fn kill_process_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// The kernel's Landlock ABI version, or why there is none.
pub(super) fn landlock_abi() -> io::Result<i32> {
    // SAFETY: the version query takes no pointer the kernel writes to.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    if version < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i32::try_from(version).unwrap_or(i32::MAX))
    }
}

/// Whether the daemon runs as root (a root child keeps only file capabilities).
pub(super) fn is_root() -> bool {
    // SAFETY: geteuid has no failure mode.
    unsafe { libc::geteuid() == 0 }
}
