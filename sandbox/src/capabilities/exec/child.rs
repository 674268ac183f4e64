//! Everything a confined program's process does between `fork` and `exec`, and the few raw
//! system calls around it: all of `exec`'s `unsafe` code.
//!
//! The daemon prepares everything before the fork (opening the granted paths, building the
//! Landlock ruleset and the seccomp filter, formatting the id maps, turning paths into C
//! strings) and leaves the child only system calls on memory that already exists. Nothing here
//! allocates or takes a lock, because another daemon thread may have held the allocator's lock
//! at the moment of the fork.
//!
//! With a PID namespace the child starts two more processes (see [`ChildPlan::enter`]):
//!
//! ```text
//! daemon ── keeper (host PID ns; what the daemon waits for and kills)
//!             └── init (PID 1 of the new namespace: reaps, and its exit kills the namespace)
//!                   └── the program (confined, then exec)
//! ```
//!
//! Both are made with `clone(CLONE_VM)` on stacks allocated before the fork, not `fork`: a
//! fork copies the page tables of the daemon's whole address space (and the exit tears them
//! down), which cost milliseconds per program. Sharing the keeper's memory is safe because the
//! keeper only waits, init only reaps, and the program only makes system calls on prepared
//! memory before it execs itself (the standard library's exec is in the keeper's stack, which
//! the program must not return into).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use tokio::process::Command;

/// Landlock's `LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR`, for the rule the
/// child adds on its own /proc entry (raw, since it is added after the fork).
const PROC_SELF_ACCESS: u64 = (1 << 2) | (1 << 3);
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
/// `mount_setattr(2)`: apply to the whole subtree, and the read-only attribute.
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// The kernel's `struct mount_attr`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// One resource limit the program starts with.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rlimit {
    pub(super) resource: libc::__rlimit_resource_t,
    pub(super) soft: u64,
    pub(super) hard: u64,
}

/// Everything the child does between fork and exec, decided before the fork.
pub(super) struct ChildPlan {
    /// `CLONE_NEW*` flags for one `unshare`: network, PID, mount and user namespaces.
    pub(super) unshare: libc::c_int,
    /// With `CLONE_NEWUSER`: "INSIDE OUTSIDE 1\n" for uid and gid.
    pub(super) uid_map: Vec<u8>,
    pub(super) gid_map: Vec<u8>,
    /// With `CLONE_NEWNS`: every mount is made read-only but these (the workspace and the
    /// read-write grants), so no program can change a file's mode, owner, times or extended
    /// attributes outside them, which Landlock does not cover.
    pub(super) writable_mounts: Vec<CString>,
    /// A created, not yet enforced, Landlock ruleset (close-on-exec, as the kernel makes it).
    pub(super) ruleset: Option<OwnedFd>,
    /// Let the child read its own /proc/<pid> (see `confine_program`).
    pub(super) proc_self: bool,
    /// With `CLONE_NEWNS` and a ruleset: a fresh tmpfs on /dev/shm, the program's own (see
    /// `private_shm`).
    pub(super) private_shm: bool,
    /// The capabilities a child that stays root may keep (a bit per capability number).
    pub(super) keep_caps: Option<u64>,
    /// Switch to this uid and gid (no supplementary groups) before exec.
    pub(super) run_as: Option<(libc::uid_t, libc::gid_t)>,
    pub(super) rlimits: Vec<Rlimit>,
    /// Compiled seccomp filters, installed last.
    pub(super) seccomp: Vec<seccompiler::BpfProgram>,
    /// The daemon's pid: a keeper whose parent is already gone exits at once.
    pub(super) daemon_pid: libc::pid_t,
    /// `cgroup.procs` files of the run's cgroup, joined first so that everything the program
    /// starts is inside.
    pub(super) cgroup_procs: Vec<CString>,
    /// With a PID namespace: what init and the program need (see [`ChildPlan::under_init`]).
    pub(super) init: Option<InitPlan>,
}

/// What the program's process execs itself under a PID namespace's init, and the stacks
/// init and the program run on, allocated before the fork.
pub(super) struct InitPlan {
    target: ExecTarget,
    stacks: Vec<u8>,
}

/// Stack for each of init and the program before it execs (a few frames of system calls).
const STACK: usize = 256 << 10;

impl InitPlan {
    /// The top of stack `i` (stacks grow down), 16-byte aligned.
    fn stack_top(&self, i: usize) -> *mut libc::c_void {
        let end = self.stacks.as_ptr() as usize + (i + 1) * STACK;
        (end & !15) as *mut libc::c_void
    }
}

/// A program's path, arguments and environment as the C arrays `execve` takes, built before
/// the fork.
pub(super) struct ExecTarget {
    path: CString,
    /// Owned here; `argv` and `envp` point into their heap buffers, which never move.
    _strings: Vec<CString>,
    /// Pointers (as addresses, so the plan stays `Send`) ending in 0.
    argv: Vec<usize>,
    envp: Vec<usize>,
}

impl ExecTarget {
    /// `path` run with `args` (argv[0] is the path) and exactly `env`.
    pub(super) fn new<'a>(
        path: &std::path::Path,
        args: impl IntoIterator<Item = &'a std::ffi::OsStr>,
        env: impl IntoIterator<Item = (&'a std::ffi::OsStr, &'a std::ffi::OsStr)>,
    ) -> io::Result<ExecTarget> {
        let c = |bytes: &[u8]| {
            CString::new(bytes).map_err(|_| io::Error::other("a NUL byte in an argument"))
        };
        let path = c(path.as_os_str().as_encoded_bytes())?;
        let mut argv_strings = vec![path.clone()];
        for arg in args {
            argv_strings.push(c(arg.as_encoded_bytes())?);
        }
        let mut env_strings = Vec::new();
        for (key, value) in env {
            let mut pair = key.as_encoded_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_encoded_bytes());
            env_strings.push(c(&pair)?);
        }
        let pointers = |strings: &[CString]| {
            let mut v: Vec<usize> = strings.iter().map(|s| s.as_ptr() as usize).collect();
            v.push(0);
            v
        };
        let argv = pointers(&argv_strings);
        let envp = pointers(&env_strings);
        argv_strings.extend(env_strings);
        Ok(ExecTarget {
            path,
            _strings: argv_strings,
            argv,
            envp,
        })
    }
}

impl Default for ChildPlan {
    /// A plan that changes nothing, knowing the daemon's pid.
    fn default() -> Self {
        ChildPlan {
            unshare: 0,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            writable_mounts: Vec::new(),
            ruleset: None,
            proc_self: false,
            private_shm: false,
            keep_caps: None,
            run_as: None,
            rlimits: Vec::new(),
            seccomp: Vec::new(),
            // SAFETY: getpid has no failure mode.
            daemon_pid: unsafe { libc::getpid() },
            cgroup_procs: Vec::new(),
            init: None,
        }
    }
}

impl ChildPlan {
    /// A plan with a user namespace that maps our own ids to themselves, plus `flags`.
    pub(super) fn in_user_namespace(flags: libc::c_int) -> Self {
        // SAFETY: getuid/getgid have no failure mode.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        ChildPlan {
            unshare: libc::CLONE_NEWUSER | flags,
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
            ..ChildPlan::default()
        }
    }

    /// Runs in the child after fork: system calls only, on memory prepared before the fork.
    /// Returns in the process that goes on to exec the program.
    fn enter(&self) -> io::Result<()> {
        for procs in &self.cgroup_procs {
            // "0" is the writing process itself.
            write_file(procs, b"0")?;
        }
        if self.unshare != 0 {
            unshare(self.unshare)?;
        }
        if self.unshare & libc::CLONE_NEWUSER != 0 {
            // setgroups must be denied before an unprivileged process may write gid_map.
            write_file(c"/proc/self/setgroups", b"deny")?;
            write_file(c"/proc/self/uid_map", &self.uid_map)?;
            write_file(c"/proc/self/gid_map", &self.gid_map)?;
        }
        if self.unshare & libc::CLONE_NEWNET != 0 {
            // The new namespace has only `lo`, down. Bringing it up lets a program talk to
            // itself on 127.0.0.1 (test servers, plugin RPC) while the host stays unreachable.
            // Failing that only leaves loopback down, which is still isolated.
            loopback_up();
        }
        if self.unshare & libc::CLONE_NEWNS != 0 {
            self.read_only_mounts()?;
        }
        if self.unshare & libc::CLONE_NEWPID != 0 {
            // The keeper stays in the daemon's namespace; its child is the new one's init,
            // whose exit, for any reason, kills every process left in the namespace (those
            // that called setsid or double-forked included).
            self.keep_init_until_it_exits()?;
        }
        self.confine_program()?;
        // No namespace to die with: at least die with the daemon. After the uid change, which
        // clears the death signal.
        die_with_parent(self.daemon_pid)
    }

    /// Every mount read-only but the writable ones, in this (new, private) mount namespace.
    fn read_only_mounts(&self) -> io::Result<()> {
        // Nothing done here may reach the host's mount table.
        mount(None, c"/", libc::MS_REC | libc::MS_PRIVATE)?;
        // A bind mount of each writable path onto itself makes it a mount of its own, so
        // the read-only flag can be taken off it alone afterwards.
        for path in &self.writable_mounts {
            mount(Some(path), path, libc::MS_BIND | libc::MS_REC)?;
        }
        mount_setattr(c"/", MOUNT_ATTR_RDONLY, 0)?;
        for path in &self.writable_mounts {
            mount_setattr(path, 0, MOUNT_ATTR_RDONLY)?;
        }
        if self.private_shm {
            private_shm()?;
        }
        // The working directory was entered before the bind mounts and still points beneath
        // them, into the now read-only original; entering it again by path lands on top.
        let mut cwd = [0u8; libc::PATH_MAX as usize];
        // SAFETY: a buffer of the given length, on the stack; chdir reads the NUL-terminated
        // path getcwd wrote into it.
        unsafe {
            if libc::getcwd(cwd.as_mut_ptr().cast(), cwd.len()).is_null()
                || libc::chdir(cwd.as_ptr().cast()) != 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// The last steps in the program's own process: limits, identity, descriptors, Landlock,
    /// seccomp.
    fn confine_program(&self) -> io::Result<()> {
        for limit in &self.rlimits {
            let value = libc::rlimit {
                rlim_cur: limit.soft,
                rlim_max: limit.hard,
            };
            // SAFETY: a valid resource and a struct that lives across the call.
            if unsafe { libc::setrlimit(limit.resource, &value) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some((uid, gid)) = self.run_as {
            // The bounding set can only shrink while CAP_SETPCAP is effective: before the uid
            // change.
            drop_bounding(1 << CAP_DAC_READ_SEARCH);
            // SAFETY: integer arguments only. The secure bits first, while CAP_SETPCAP is
            // effective: the uid change then leaves the capability sets alone (they are cut
            // to one just below, and the spawn fails unless that took), and access(2), which
            // otherwise judges a non-root caller without capabilities, honours the one kept,
            // as open(2) does. Ansible checks every file with access(2) before opening it.
            // Groups next, while we may still change them.
            unsafe {
                if libc::prctl(
                    libc::PR_SET_SECUREBITS,
                    SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED,
                    0,
                    0,
                    0,
                ) != 0
                    || libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            // Only the right to look through directories, kept across exec: programs
            // installed under a private home (pyenv, nvm, cargo install) must still start, and
            // the workspace may sit beneath a directory only root may enter. Landlock, not file
            // modes, decides what can be read; open_by_handle_at, the one call this
            // capability would let go around Landlock, is refused by the seccomp filter.
            limit_capabilities(1 << CAP_DAC_READ_SEARCH, true)?;
        } else if let Some(keep) = self.keep_caps {
            // After unshare and bringing up loopback, which needed CAP_SYS_ADMIN and
            // CAP_NET_ADMIN.
            limit_capabilities(keep, false)?;
        }
        // Whatever started the daemon may have left descriptors open without close-on-exec;
        // none of them may reach the program. Marked rather than closed: the standard
        // library's pipe that reports a failed exec must stay open until the exec.
        // SAFETY: integer arguments only.
        if unsafe { libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        if let Some(ruleset) = &self.ruleset {
            if self.proc_self {
                // /proc/self must name the program, not the daemon, so this one rule is added
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
            if self.private_shm {
                add_shm_rule(ruleset.as_raw_fd());
            }
            set_no_new_privs()?;
            // SAFETY: a valid ruleset fd and no flags.
            let rc = unsafe {
                libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32)
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        for filter in &self.seccomp {
            // Sets no_new_privs itself; allocates nothing on the way to the kernel.
            seccompiler::apply_filter(filter).map_err(|e| match e {
                seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e) => e,
                _ => io::Error::from_raw_os_error(libc::EINVAL),
            })?;
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
        match wait_for(pid)? {
            Exit::Code(0) => Ok(()),
            Exit::Code(errno) => Err(io::Error::from_raw_os_error(errno)),
            Exit::Signal(_) => Err(io::Error::other("the test child was killed")),
        }
    }
}

impl ChildPlan {
    /// Gives the plan the stacks and exec target a PID namespace needs.
    pub(super) fn under_init(&mut self, target: ExecTarget) {
        self.init = Some(InitPlan {
            target,
            stacks: vec![0; 2 * STACK],
        });
    }

    /// In the keeper: starts init on the first stack, then waits for it and exits the way it
    /// did. Never returns but with an error from before init started.
    fn keep_init_until_it_exits(&self) -> io::Result<()> {
        let Some(init) = &self.init else {
            return Err(io::Error::other("a PID namespace needs an exec target"));
        };
        die_with_parent(self.daemon_pid)?;
        // Handlers the daemon installed (the runtime's SIGCHLD) must not run in processes
        // that share this memory.
        // SAFETY: resetting a disposition to the default.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
        let arg = self as *const ChildPlan as *mut libc::c_void;
        // SAFETY: `init_main` runs on its own stack in this process's memory and reads the
        // plan, which lives until this process exits (it only waits below).
        let init = unsafe {
            libc::clone(
                init_main,
                init.stack_top(0),
                libc::CLONE_VM | libc::SIGCHLD,
                arg,
            )
        };
        if init < 0 {
            return Err(io::Error::last_os_error());
        }
        // The parent's read end of the standard library's exec-error pipe sees end-of-file only
        // once every copy of the write end is closed: ours must go now.
        close_above_stderr();
        exit_like(wait_for(init))
    }
}

/// Init (PID 1): starts the program on the second stack, reaps every process that ends up
/// here, and exits the way the program did (which kills the rest).
extern "C" fn init_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the keeper's plan, alive while the keeper waits for us.
    let plan = unsafe { &*(arg as *const ChildPlan) };
    let Some(init) = &plan.init else {
        exit_like(Ok(Exit::Code(127)));
    };
    // SAFETY: getppid has no failure mode.
    if die_with_parent(unsafe { libc::getppid() }).is_err() {
        exit_like(Ok(Exit::Code(127)));
    }
    // SAFETY: as for init; CLONE_VFORK holds us until the program has exec'd or exited, so
    // the two never run on shared memory at once.
    let program = unsafe {
        libc::clone(
            program_main,
            init.stack_top(1),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        )
    };
    if program < 0 {
        report(b"wasmops: cannot start the program's process", errno());
        exit_like(Ok(Exit::Code(127)));
    }
    close_above_stderr();
    loop {
        let mut status = 0;
        // SAFETY: waits for any child; `status` lives across the call.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == program {
            exit_like(Ok(Exit::from_status(status)));
        }
        if pid < 0 && errno() != libc::EINTR {
            exit_like(Ok(Exit::Code(127)));
        }
    }
}

/// The program's process: confines itself and execs the target.
extern "C" fn program_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the keeper's plan, alive while the keeper waits.
    let plan = unsafe { &*(arg as *const ChildPlan) };
    if let Err(e) = plan.confine_program() {
        report(
            b"wasmops: cannot confine the program",
            e.raw_os_error().unwrap_or(0),
        );
        // SAFETY: ends the process without running destructors.
        unsafe { libc::_exit(126) };
    }
    if let Some(InitPlan { target, .. }) = &plan.init {
        // SAFETY: NUL-terminated strings and NULL-terminated pointer arrays, all owned by the
        // plan; execve only returns on failure.
        unsafe {
            libc::execve(
                target.path.as_ptr(),
                target.argv.as_ptr().cast(),
                target.envp.as_ptr().cast(),
            );
        }
        report(b"wasmops: cannot execute the program", errno());
    }
    // SAFETY: as above.
    unsafe { libc::_exit(127) }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Writes `message: errno N` to standard error without allocating.
fn report(message: &[u8], errno: i32) {
    let mut line = [0u8; 160];
    let mut len = 0;
    for &b in message.iter().chain(b": errno ") {
        if len < line.len() {
            line[len] = b;
            len += 1;
        }
    }
    let mut digits = [0u8; 10];
    let mut n = errno.unsigned_abs();
    let mut d = 0;
    loop {
        digits[d] = b'0' + (n % 10) as u8;
        d += 1;
        n /= 10;
        if n == 0 || d == digits.len() {
            break;
        }
    }
    for &b in digits[..d].iter().rev().chain(b"\n") {
        if len < line.len() {
            line[len] = b;
            len += 1;
        }
    }
    // SAFETY: a buffer of `len` initialised bytes.
    unsafe { libc::write(2, line.as_ptr().cast(), len) };
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    fn from_status(status: libc::c_int) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }
}

fn wait_for(pid: libc::pid_t) -> io::Result<Exit> {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` lives across the call.
        if unsafe { libc::waitpid(pid, &mut status, 0) } >= 0 {
            return Ok(Exit::from_status(status));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Ends this process as `exit` says its child ended: the same code, or 128 + the signal (a
/// namespace's init cannot be killed by its own signal, so the shell's convention it is).
fn exit_like(exit: io::Result<Exit>) -> ! {
    let code = match exit {
        Ok(Exit::Code(code)) => code,
        Ok(Exit::Signal(signal)) => 128 + signal,
        Err(_) => 127,
    };
    // SAFETY: ends the process without running destructors or atexit hooks.
    unsafe { libc::_exit(code) }
}

/// SIGKILL when the parent dies; if it is already gone (the race the man page warns about),
/// exit now.
fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl and getppid with integer arguments only.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != parent {
            libc::_exit(127);
        }
    }
    Ok(())
}

fn close_above_stderr() {
    // SAFETY: integer arguments only.
    unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
}

fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn mount(source: Option<&CStr>, target: &CStr, flags: libc::c_ulong) -> io::Result<()> {
    // SAFETY: NUL-terminated strings (or null) that live across the call.
    let rc = unsafe {
        libc::mount(
            source.map_or(std::ptr::null(), CStr::as_ptr),
            target.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn mount_setattr(path: &CStr, set: u64, clear: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a NUL-terminated path and an attr struct of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Capabilities a child that stays root keeps: what working on files as root needs (chown,
/// modes, files of other owners, setuid for tools that drop privileges, low ports). Everything
/// else goes from the bounding, permitted, effective, inheritable and ambient sets, so not even
/// exec as uid 0 brings it back. Path rules cannot stop what it would allow: init_module loads
/// a kernel module from memory, ioperm and /dev/mem-style raw I/O, mount, BPF, perf, reboot,
/// the clock, open_by_handle_at (CAP_DAC_READ_SEARCH), reconfiguring the host's network when
/// it is granted. CAP_NET_RAW stays only when network is granted (ping in health checks).
pub(super) const KEEP_CAPS: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL (signals stay inside the PID namespace and the Landlock domain anyway)
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    10, // CAP_NET_BIND_SERVICE
];
pub(super) const CAP_NET_RAW: u32 = 13;
const CAP_DAC_READ_SEARCH: u32 = 2;

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

/// Keeps only the `keep` capabilities of those this process has, in the effective, permitted and
/// inheritable sets, and with `ambient` raises them into the ambient set so that exec by a
/// non-root user keeps them. Best effort: without CAP_SETPCAP (a daemon that is root in a
/// container that took it away) the bounding set stays as the container left it; the other
/// sets always shrink.
fn limit_capabilities(keep: u64, ambient: bool) -> io::Result<()> {
    drop_bounding(keep);
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
            return Err(io::Error::last_os_error());
        }
        for (i, word) in data.iter_mut().enumerate() {
            let keep = word.permitted & (keep >> (32 * i)) as u32;
            word.effective = keep;
            word.permitted = keep;
            word.inheritable = keep;
        }
        if libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        if ambient {
            for cap in (0..64).filter(|c| keep & (1u64 << c) != 0) {
                libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap, 0, 0);
            }
        }
    }
    Ok(())
}

/// Drops every capability but `keep` from the bounding set (needs CAP_SETPCAP in effect).
fn drop_bounding(keep: u64) {
    for cap in 0..64 {
        if keep & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments; EINVAL past the kernel's last capability.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        }
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

/// `SECBIT_NO_SETUID_FIXUP` and its lock (linux/securebits.h).
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;

/// The kernel's `struct landlock_path_beneath_attr`, which is packed.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// POSIX shared memory and semaphores (`shm_open`, `sem_open`: Python's multiprocessing, which
/// Ansible needs) live in /dev/shm. The host's is shared by every process on the machine, so a
/// program gets an empty tmpfs of its own there instead, in its private mount namespace, sized
/// like a scratch space and charged to its memory limit. No /dev/shm on this host: nothing to
/// replace.
fn private_shm() -> io::Result<()> {
    // SAFETY: NUL-terminated strings that live across the call.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            c"/dev/shm".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"size=64m,mode=1777".as_ptr().cast(),
        )
    };
    match rc {
        0 => Ok(()),
        _ if errno() == libc::ENOENT => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Landlock's rights on the private /dev/shm: read, write, truncate, create and remove files.
/// Truncate (ABI 3) is dropped when the kernel's ruleset does not handle it.
const SHM_ACCESS: u64 = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8);
const TRUNCATE_ACCESS: u64 = 1 << 14;

/// The rule for the tmpfs `private_shm` mounted: its root is a new inode, which no rule made
/// before the fork can name. The O_PATH fd stays open across exec, pinning it (as for
/// /proc/self). Failure only leaves /dev/shm closed.
fn add_shm_rule(ruleset: libc::c_int) {
    // SAFETY: a NUL-terminated path; the attr lives across each call.
    unsafe {
        let fd = libc::open(c"/dev/shm".as_ptr(), libc::O_PATH | libc::O_DIRECTORY);
        if fd < 0 {
            return;
        }
        for access in [SHM_ACCESS | TRUNCATE_ACCESS, SHM_ACCESS] {
            let attr = PathBeneathAttr {
                allowed_access: access,
                parent_fd: fd,
            };
            let rc = libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset,
                LANDLOCK_RULE_PATH_BENEATH,
                &attr as *const PathBeneathAttr,
                0u32,
            );
            if rc == 0 {
                return;
            }
        }
        libc::close(fd);
    }
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
