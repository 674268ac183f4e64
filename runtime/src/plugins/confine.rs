//! Confines programs run through `exec`: Landlock for files, a fresh network namespace for sockets.

// A plugin is sandboxed by wasmtime, but the programs it runs (Terraform, Ansible, scripts) are
// native processes; without this they could read every host file the daemon can and reach any
// host on the network. `Confinement::apply` prepares everything in the daemon (opening the
// granted paths, building the Landlock ruleset) and leaves the child, between `fork` and `exec`,
// only a few raw system calls: `unshare`, writing its id maps, bringing up loopback, dropping
// a root child's dangerous capabilities, and `landlock_restrict_self`. Nothing there allocates
// or takes a lock, because another daemon thread may have held the allocator's lock at the
// moment of the fork.
//
// Support differs between kernels, so `probe` really tries both features in a short-lived child
// and `Unconfined` says whether a daemon lacking one refuses to run programs or runs them with
// what it has and a warning.

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope,
};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tokio::process::Command;

/// The newest Landlock ABI whose rights this module was tested with. Newer kernels keep
/// enforcing these rights; rights added later (e.g. V9's `ResolveUnix`) are left unhandled on
/// purpose until they are tested, because handling a right denies it everywhere not granted.
const TESTED_ABI: ABI = ABI::V7;

/// Read and execute: where programs, their shared libraries and data files live. `/bin`,
/// `/sbin`, `/lib*` are symlinks into `/usr` on merged-/usr systems (the rule then lands on the
/// target, harmlessly twice) and real directories elsewhere.
const SYSTEM_EXEC: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"];

/// Read only, never execute: the few files under /etc that ordinary programs open at start-up.
/// Everything else in /etc (shadow, ssh host keys, /etc/ssl/private, the daemon's own config)
/// stays out of reach. Symlinks need no rule of their own: Landlock checks the file a path
/// resolves to, so /etc/alternatives/* and a symlinked /etc/localtime or /etc/os-release
/// already work through the /usr rule.
const SYSTEM_READ: &[&str] = &[
    // The dynamic loader's search cache and configuration.
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    // TLS trust stores (Debian and Red Hat layouts) and OpenSSL's configuration; not
    // /etc/ssl as a whole, which holds private/.
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust/extracted",
    // Time zone, where it is a copy rather than a symlink into /usr/share/zoneinfo.
    "/etc/localtime",
    "/etc/timezone",
    // Names for uids and gids: ssh refuses to start without a passwd entry, git, whoami and
    // Python's getpass look them up. /etc/shadow and /etc/gshadow are not included.
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    // Name resolution (`localhost` inside the isolated namespace too, DNS when network is
    // granted) and service/protocol names for getaddrinfo.
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    // CPU count and topology (glibc's get_nprocs, Node's os.cpus(), the Go runtime).
    "/sys/devices/system/cpu",
];

/// System-wide, non-secret /proc files (read only). Node's os.cpus() and os.totalmem(), psutil,
/// `free`, `uptime` and allocators (overcommit_memory) read them; `/proc/mounts` is a symlink
/// into /proc/self, covered by the child's own rule. Procfs makes a new inode whenever a
/// dentry is looked up afresh, so the daemon keeps these opened for its whole life (see
/// `pinned_proc`): a rule names an inode, and an evicted dentry would orphan it.
const SYSTEM_PROC: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/stat",
    "/proc/meminfo",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/version",
    "/proc/filesystems",
    "/proc/sys/vm/overcommit_memory",
];

/// Character devices and the rights each needs. `/dev/fd`, `/dev/stdin`, `/dev/stdout` and
/// `/dev/stderr` need no rule: they are magic links to already-open files (pipes are always
/// allowed). Left out: /dev/tty (the child has no controlling terminal), /dev/shm (shared with
/// every process on the host; grant it if a program needs POSIX semaphores), block devices.
const DEVICES: &[(&str, DeviceAccess)] = &[
    ("/dev/null", DeviceAccess::ReadWrite),
    ("/dev/zero", DeviceAccess::ReadWrite),
    ("/dev/full", DeviceAccess::ReadWrite),
    ("/dev/random", DeviceAccess::Read),
    ("/dev/urandom", DeviceAccess::Read),
];

#[derive(Clone, Copy)]
enum DeviceAccess {
    Read,
    /// Truncate too: the shell opens `> /dev/null` with O_TRUNC, which Landlock checks.
    ReadWrite,
}

/// Landlock's `LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR`, for the rule the
/// child adds on its own /proc entry (raw, since it is added after the fork).
const PROC_SELF_ACCESS: u64 = (1 << 2) | (1 << 3);
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

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
    pub fn complete(&self) -> bool {
        self.landlock_abi.is_some() && self.network_namespaces
    }
}

/// The confinement of one program run.
#[derive(Clone, Debug, Default)]
pub struct Confinement {
    /// Read, write, create, remove and execute beneath these (the run workspace).
    pub read_write: Vec<PathBuf>,
    /// Read and execute beneath these: operator grants and the [`program_roots`] of the
    /// granted programs.
    pub read_only: Vec<PathBuf>,
    /// Leave the child in the host's network namespace.
    pub network: bool,
    pub unconfined: Unconfined,
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

    // SAFETY: the version query takes no pointer the kernel writes to.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    let landlock_abi = if version < 0 {
        let err = io::Error::last_os_error();
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
    } else {
        // Enforce a one-right ruleset on a throwaway child, as exec will.
        let ruleset = Ruleset::default()
            .handle_access(AccessFs::ReadFile)
            .and_then(|r| r.create())
            .map(Option::<OwnedFd>::from);
        match ruleset {
            Ok(Some(fd)) => {
                let plan = ChildPlan {
                    ruleset: Some(fd),
                    ..ChildPlan::default()
                };
                match plan.try_in_child() {
                    Ok(()) => {
                        detail.push(format!("landlock: ABI {version}, enforced on a test child"));
                        Some(version as i32)
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
    };

    // Root (CAP_SYS_ADMIN) can unshare the network alone; anyone else, or root in a container
    // without that capability, needs a user namespace to own the new network namespace.
    let mut network_namespaces = false;
    let mut network_needs_user_namespace = false;
    let mut plain_error = None;
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } == 0 {
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

impl Confinement {
    /// Arranges for `cmd`'s child to be confined. Call once per spawn, after setting the
    /// working directory (which must lie beneath a granted path). Returns a warning line for
    /// the step log when [`Unconfined::Allow`] let it run with less than asked; an error when
    /// [`Unconfined::Refuse`] stops it, or a granted path cannot be opened.
    ///
    /// A failure inside the child (after the probe succeeded) shows as the spawn's OS error.
    pub fn apply(&self, cmd: &mut Command) -> Result<Option<String>, String> {
        self.apply_with(support(), cmd)
    }

    fn apply_with(
        &self,
        support: &ConfinementSupport,
        cmd: &mut Command,
    ) -> Result<Option<String>, String> {
        let mut missing = Vec::new();
        if support.landlock_abi.is_none() {
            missing.push("filesystem confinement (Landlock)");
        }
        let isolate_network = !self.network && support.network_namespaces;
        if !self.network && !support.network_namespaces {
            missing.push("network isolation (network namespaces)");
        }
        let warning = if missing.is_empty() {
            None
        } else {
            let what = missing.join(" and ");
            match self.unconfined {
                Unconfined::Refuse => {
                    return Err(format!(
                        "exec refused: this kernel cannot provide {what} ({}); \
                         the daemon is set to refuse unconfined programs",
                        support.detail
                    ));
                }
                Unconfined::Allow => Some(format!(
                    "warning: running without {what}, which this kernel lacks ({})",
                    support.detail
                )),
            }
        };

        let mut plan = ChildPlan::default();
        if isolate_network {
            plan = if support.network_needs_user_namespace {
                ChildPlan::user_netns()
            } else {
                ChildPlan {
                    netns: NetNs::New,
                    ..ChildPlan::default()
                }
            };
        }
        if support.landlock_abi.is_some() {
            // Without a namespace, Landlock can still refuse TCP (not UDP) on ABI 4+.
            let deny_tcp = !self.network && !isolate_network;
            plan.ruleset = Some(self.ruleset(deny_tcp)?);
            plan.proc_self = true;
        }
        // SAFETY: geteuid has no failure mode.
        if unsafe { libc::geteuid() } == 0 {
            let raw = if self.network { 1 << CAP_NET_RAW } else { 0 };
            plan.keep_caps = Some(KEEP_CAPS.iter().fold(raw, |m, c| m | 1 << c));
        }

        // SAFETY: `ChildPlan::enter` only makes system calls on memory prepared before the
        // fork; it neither allocates nor locks.
        unsafe {
            cmd.pre_exec(move || plan.enter());
        }
        Ok(warning)
    }

    /// Opens every granted path and builds the ruleset in the daemon, before any fork.
    fn ruleset(&self, deny_tcp: bool) -> Result<OwnedFd, String> {
        let read = AccessFs::ReadFile | AccessFs::ReadDir;
        let exec = AccessFs::from_read(TESTED_ABI);
        // Everything but creating device nodes: a block device made in the workspace would
        // be a window onto the raw disk, beneath every path rule.
        let all = AccessFs::from_all(TESTED_ABI) & !(AccessFs::MakeChar | AccessFs::MakeBlock);
        let err = |e: landlock::RulesetError| format!("exec confinement: {e}");

        let mut ruleset = Ruleset::default().handle_access(all).map_err(err)?;
        if deny_tcp {
            ruleset = ruleset
                .handle_access(AccessNet::from_all(TESTED_ABI))
                .map_err(err)?;
        }
        // Signals and abstract UNIX sockets stay within the sandbox: a program cannot kill
        // the daemon or talk to a host service's abstract socket (ABI 6+).
        let mut ruleset = ruleset
            .scope(Scope::from_all(TESTED_ABI))
            .map_err(err)?
            .create()
            .map_err(err)?;

        // Defaults that do not exist on this host are simply not granted.
        let mut rules: Vec<(PathFd, BitFlags<AccessFs>)> = Vec::new();
        let defaults = SYSTEM_EXEC
            .iter()
            .map(|p| (*p, exec))
            .chain(SYSTEM_READ.iter().map(|p| (*p, read)))
            .chain(DEVICES.iter().map(|(p, a)| {
                (
                    *p,
                    match a {
                        DeviceAccess::Read => AccessFs::ReadFile.into(),
                        DeviceAccess::ReadWrite => {
                            AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate
                        }
                    },
                )
            }));
        for (path, access) in defaults {
            if let Ok(fd) = PathFd::new(path) {
                rules.push((fd, access));
            }
        }
        for fd in pinned_proc() {
            ruleset = ruleset
                .add_rule(PathBeneath::new(fd.as_fd(), read))
                .map_err(err)?;
        }
        // Granted paths must exist: a typo should fail loudly, not silently deny.
        let granted = self
            .read_only
            .iter()
            .map(|p| (p, exec))
            .chain(self.read_write.iter().map(|p| (p, all)));
        for (path, access) in granted {
            let fd = PathFd::new(path)
                .map_err(|e| format!("exec confinement: granted path {}: {e}", path.display()))?;
            rules.push((fd, access));
        }
        for (fd, access) in rules {
            ruleset = ruleset
                .add_rule(PathBeneath::new(fd, access))
                .map_err(err)?;
        }
        Option::<OwnedFd>::from(ruleset)
            .ok_or_else(|| "exec confinement: Landlock ruleset was not created".to_string())
    }
}

/// The `SYSTEM_PROC` files that exist here, opened once and never closed, so that their
/// dentries (and with them the inodes the rules name) stay put.
fn pinned_proc() -> &'static [OwnedFd] {
    static PINNED: OnceLock<Vec<OwnedFd>> = OnceLock::new();
    PINNED.get_or_init(|| {
        SYSTEM_PROC
            .iter()
            .filter_map(|p| PathFd::new(p).ok())
            // PathFd has no into_inner; keep a duplicate of its O_PATH, close-on-exec fd.
            .filter_map(|fd| fd.as_fd().try_clone_to_owned().ok())
            .collect()
    })
}

/// How the child leaves the host's network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum NetNs {
    #[default]
    Keep,
    /// unshare(CLONE_NEWNET): needs CAP_SYS_ADMIN.
    New,
    /// unshare(CLONE_NEWUSER | CLONE_NEWNET) mapping only our own uid and gid.
    NewWithUser,
}

/// Everything the child does between fork and exec, decided before the fork.
#[derive(Default)]
struct ChildPlan {
    netns: NetNs,
    /// "UID UID 1\n" and "GID GID 1\n": the child keeps its ids inside the user namespace.
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    /// A created, not yet enforced, Landlock ruleset (close-on-exec, as the kernel makes it).
    ruleset: Option<OwnedFd>,
    /// Let the child read its own /proc/<pid> (see `enter`).
    proc_self: bool,
    /// The capabilities a root child may keep (a bit per capability number).
    keep_caps: Option<u64>,
}

impl ChildPlan {
    fn user_netns() -> Self {
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
    fn try_in_child(&self) -> io::Result<()> {
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
const KEEP_CAPS: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL (signals stay inside the Landlock domain anyway)
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    10, // CAP_NET_BIND_SERVICE
];
const CAP_NET_RAW: u32 = 13;

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

/// Read-only roots a granted program needs besides the system paths, for
/// [`Confinement::read_only`]. `program` is the resolved path (as from
/// [`super::exec::resolve_program`]).
///
/// The rule, applied to the path as given and to its canonical target (after symlinks):
/// - a file in a directory named `bin`, `sbin` or `shims` whose parent looks like an install
///   prefix (it has `lib`, `lib64` or `libexec`) yields that prefix, since interpreters load
///   their standard library from it: `/opt/pyenv/versions/3.11.7/bin/python3` →
///   `/opt/pyenv/versions/3.11.7`, the pyenv shim `/opt/pyenv/shims/python3` →
///   `/opt/pyenv` (its libexec, version file and versions);
/// - otherwise the directory holding the file (`/opt/terraform/terraform` → `/opt/terraform`);
/// - never `/`, a top-level directory (`/opt`, `/root`) or a home directory (`$HOME`,
///   `/home/NAME`): the next candidate is taken instead (`~/bin/tool` → `~/bin`, so `~/.ssh`
///   stays closed), and failing both, the file alone (`/opt/tool` → `/opt/tool`).
///
/// A script's `#!` interpreter (through `/usr/bin/env NAME` too, looked up on PATH) gets the
/// same treatment, two levels deep. Roots beneath the system paths, already readable, are left
/// out, as are roots inside another returned root.
pub fn program_roots(program: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    collect_roots(program, 0, &mut roots);
    let system: Vec<PathBuf> = SYSTEM_EXEC
        .iter()
        .filter_map(|p| Path::new(p).canonicalize().ok())
        .collect();
    roots.retain(|r| !system.iter().any(|s| r.starts_with(s)));
    roots.sort();
    roots.dedup();
    let all = roots.clone();
    roots.retain(|r| !all.iter().any(|o| o != r && r.starts_with(o)));
    roots
}

fn collect_roots(program: &Path, depth: u8, out: &mut Vec<PathBuf>) {
    if !program.is_absolute() {
        return;
    }
    out.push(install_root(program));
    let canonical = program.canonicalize().ok();
    if let Some(canonical) = &canonical
        && canonical != program
    {
        out.push(install_root(canonical));
    }
    if depth < 2
        && let Some(interpreter) = shebang(canonical.as_deref().unwrap_or(program))
    {
        collect_roots(&interpreter, depth + 1, out);
    }
}

fn install_root(file: &Path) -> PathBuf {
    let Some(dir) = file.parent() else {
        return file.to_path_buf();
    };
    let is_bin = dir
        .file_name()
        .is_some_and(|n| n == "bin" || n == "sbin" || n == "shims");
    let prefix = dir.parent().filter(|prefix| {
        is_bin
            && ["lib", "lib64", "libexec"]
                .iter()
                .any(|l| prefix.join(l).is_dir())
    });
    [prefix, Some(dir)]
        .into_iter()
        .flatten()
        .find(|candidate| !too_broad(candidate))
        .map_or_else(|| file.to_path_buf(), Path::to_path_buf)
}

/// `/`, `/x`, the daemon's home and any `/home/NAME` would grant far more than a program.
fn too_broad(dir: &Path) -> bool {
    dir.components().count() <= 2
        || dir.parent() == Some(Path::new("/home"))
        || std::env::var_os("HOME").is_some_and(|home| dir == Path::new(&home))
}

/// The interpreter named by a script's `#!` line, resolving `env NAME` on PATH.
fn shebang(file: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(file).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n')?];
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    let interpreter = PathBuf::from(words.next()?);
    if interpreter.file_name().is_some_and(|n| n == "env") {
        // `env -S python3 -u` and `env python3`: the first word not an option.
        let name = words.find(|w| !w.starts_with('-'))?;
        super::exec::resolve_program(name)
    } else {
        Some(interpreter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    /// Confinement is a security feature: a machine without it must fail these tests, not
    /// skip them.
    fn require_support() {
        let s = probe();
        assert!(
            s.complete(),
            "this kernel cannot confine exec'd programs, so the confinement tests cannot run: {}",
            s.detail
        );
    }

    struct Out {
        ok: bool,
        stdout: String,
        stderr: String,
    }

    /// Runs like exec.rs does: cleared environment, cwd and HOME in the workspace.
    async fn run(conf: &Confinement, program: &Path, args: &[&str], cwd: &Path) -> Out {
        run_with(conf, support(), program, args, cwd).await.1
    }

    /// `run` against a given support, returning apply's warning too.
    async fn run_with(
        conf: &Confinement,
        support: &ConfinementSupport,
        program: &Path,
        args: &[&str],
        cwd: &Path,
    ) -> (Option<String>, Out) {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", cwd)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let warning = conf.apply_with(support, &mut cmd).expect("apply");
        if support.complete() {
            assert_eq!(warning, None, "full support expected");
        }
        let out = cmd.output().await.expect("spawn");
        let out = Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (warning, out)
    }

    async fn bash(conf: &Confinement, script: &str, cwd: &Path) -> Out {
        run(conf, Path::new("/bin/bash"), &["-c", script], cwd).await
    }

    fn workspace_only(workspace: &Path) -> Confinement {
        Confinement {
            read_write: vec![workspace.to_path_buf()],
            ..Confinement::default()
        }
    }

    #[test]
    fn probe_finds_both_features() {
        let s = probe();
        assert!(s.landlock_abi.is_some_and(|v| v >= 1), "{}", s.detail);
        assert!(s.network_namespaces, "{}", s.detail);
    }

    #[tokio::test]
    async fn files_outside_the_grants_are_denied() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "s3cret").unwrap();
        let conf = workspace_only(workspace.path());

        let out = bash(
            &conf,
            &format!("cat {}", secret.display()),
            workspace.path(),
        )
        .await;
        assert!(!out.ok, "read outside the grants succeeded: {}", out.stdout);
        assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
        assert!(!out.stdout.contains("s3cret"));

        // Nor may it list the directory, or write next to it.
        let out = bash(
            &conf,
            &format!(
                "ls {0} || echo listing-denied; echo x > {0}/new || echo write-denied",
                outside.path().display()
            ),
            workspace.path(),
        )
        .await;
        assert!(out.stdout.contains("listing-denied"), "{}", out.stdout);
        assert!(out.stdout.contains("write-denied"), "{}", out.stdout);
        assert!(!outside.path().join("new").exists());

        // System secrets and the rest of /proc are out of reach too.
        let out = bash(
            &conf,
            "cat /etc/shadow || echo shadow-denied; cat /proc/1/environ || echo proc-denied",
            workspace.path(),
        )
        .await;
        assert!(out.stdout.contains("shadow-denied"), "{}", out.stdout);
        assert!(out.stdout.contains("proc-denied"), "{}", out.stdout);
    }

    #[tokio::test]
    async fn the_workspace_is_read_write() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        std::fs::write(workspace.path().join("in.txt"), "hello\n").unwrap();
        let conf = workspace_only(workspace.path());

        let out = bash(
            &conf,
            "cat in.txt > out.txt && mkdir -p sub/dir && echo more >> sub/dir/f \
             && mv sub/dir/f moved && rm in.txt && cat out.txt moved \
             && cat /dev/urandom | head -c 4 > /dev/null && echo done > /dev/null",
            workspace.path(),
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert_eq!(out.stdout, "hello\nmore\n");
        assert!(!workspace.path().join("in.txt").exists());

        // Scripts written to the workspace can be run (Terraform runs its providers from it).
        let out = bash(
            &conf,
            "printf '#!/bin/sh\\necho ran\\n' > s.sh && chmod +x s.sh && ./s.sh",
            workspace.path(),
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert_eq!(out.stdout, "ran\n");
    }

    #[tokio::test]
    async fn read_only_grants_cannot_be_written_or_run_from_elsewhere() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let shared = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(shared.path().join("data"), "shared data\n").unwrap();
        let tool = elsewhere.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\necho tool ran\n").unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let conf = Confinement {
            read_write: vec![workspace.path().to_path_buf()],
            read_only: vec![shared.path().to_path_buf()],
            ..Confinement::default()
        };
        let data = shared.path().join("data");

        let out = bash(&conf, &format!("cat {}", data.display()), workspace.path()).await;
        assert!(out.ok, "{}", out.stderr);
        assert_eq!(out.stdout, "shared data\n");

        let out = bash(
            &conf,
            &format!(
                "echo x >> {0} || echo append-denied; touch {1}/new || echo create-denied; \
                 rm -f {0} || echo remove-denied",
                data.display(),
                shared.path().display()
            ),
            workspace.path(),
        )
        .await;
        assert!(out.stdout.contains("append-denied"), "{}", out.stdout);
        assert!(out.stdout.contains("create-denied"), "{}", out.stdout);
        assert!(out.stdout.contains("remove-denied"), "{}", out.stdout);
        assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
        assert_eq!(std::fs::read_to_string(&data).unwrap(), "shared data\n");

        // A program outside every grant cannot be executed, even by absolute path.
        let out = bash(&conf, &tool.display().to_string(), workspace.path()).await;
        assert!(!out.ok, "{}", out.stdout);
        assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    }

    #[tokio::test]
    async fn the_network_is_isolated_unless_granted() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = format!("echo hi > /dev/tcp/127.0.0.1/{port}");

        let mut conf = workspace_only(workspace.path());
        let out = bash(&conf, &script, workspace.path()).await;
        assert!(!out.ok, "connected to the host's loopback from the sandbox");
        assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
        assert!(
            listener.accept().is_err(),
            "the host listener saw a connection"
        );

        // "Connection refused", not "Network is unreachable": loopback is up, but it is the
        // namespace's own.

        conf.network = true;
        let out = bash(&conf, &script, workspace.path()).await;
        assert!(
            out.ok,
            "granted network but could not connect: {}",
            out.stderr
        );
        let (mut stream, _) = listener
            .accept()
            .expect("the host listener saw no connection");
        stream.set_nonblocking(false).unwrap();
        let mut got = String::new();
        std::io::Read::read_to_string(&mut stream, &mut got).unwrap();
        assert_eq!(got, "hi\n");
    }

    #[tokio::test]
    async fn the_user_namespace_route_isolates_too() {
        // The route a daemon without CAP_SYS_ADMIN takes, forced here since tests run as root.
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let forced = ConfinementSupport {
            network_needs_user_namespace: true,
            ..probe()
        };
        let conf = workspace_only(workspace.path());
        let script = format!(
            "echo hi > /dev/tcp/127.0.0.1/{port} || echo refused; \
             read -r m < /proc/self/uid_map; echo \"$m\"; echo x > f && cat f"
        );
        let (_, out) = run_with(
            &conf,
            &forced,
            Path::new("/bin/bash"),
            &["-c", &script],
            workspace.path(),
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains("refused"), "{}", out.stdout);
        assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
        // Our own id mapped to itself, and nothing else.
        let uid = unsafe { libc::getuid() };
        let map: Vec<&str> = out
            .stdout
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(map, [uid.to_string(), uid.to_string(), "1".to_string()]);
        assert!(listener.accept().is_err());
    }

    #[tokio::test]
    async fn without_namespaces_allow_falls_back_to_landlock_tcp_rules() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let no_netns = ConfinementSupport {
            network_namespaces: false,
            ..probe()
        };
        let conf = Confinement {
            unconfined: Unconfined::Allow,
            ..workspace_only(workspace.path())
        };
        let (warning, out) = run_with(
            &conf,
            &no_netns,
            Path::new("/bin/bash"),
            &["-c", &format!("echo hi > /dev/tcp/127.0.0.1/{port}")],
            workspace.path(),
        )
        .await;
        let warning = warning.expect("a warning that the network is not isolated");
        assert!(warning.contains("network isolation"), "{warning}");
        assert!(!out.ok, "connected although TCP should be denied");
        assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
        assert!(listener.accept().is_err());
    }

    #[tokio::test]
    async fn a_root_child_keeps_only_file_capabilities() {
        require_support();
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test checks what a root daemon's children keep; run it as root"
        );
        let workspace = tempfile::tempdir().unwrap();
        let conf = workspace_only(workspace.path());
        // Builtins only, so /proc/self is bash's own entry.
        let out = bash(
            &conf,
            "while IFS= read -r l; do [[ $l == CapBnd* || $l == CapEff* ]] && echo \"$l\"; \
             done < /proc/self/status; mknod disk b 8 0 || echo mknod-denied",
            workspace.path(),
        )
        .await;
        let expected = format!("{:016x}", KEEP_CAPS.iter().fold(0u64, |m, c| m | 1 << c));
        assert!(
            out.stdout.contains(&format!("CapEff:\t{expected}")),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains(&format!("CapBnd:\t{expected}")),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("mknod-denied"), "{}", out.stdout);
        assert!(!workspace.path().join("disk").exists());
    }

    #[tokio::test]
    async fn signals_stay_inside_the_sandbox() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let conf = workspace_only(workspace.path());
        let out = bash(
            &conf,
            &format!(
                "kill -0 {} || echo outside-denied; kill -0 $$ && echo self-ok",
                std::process::id()
            ),
            workspace.path(),
        )
        .await;
        assert!(out.stdout.contains("outside-denied"), "{}", out.stdout);
        assert!(out.stdout.contains("self-ok"), "{}", out.stdout);
    }

    fn on_path(name: &str) -> PathBuf {
        super::super::exec::resolve_program(name)
            .unwrap_or_else(|| panic!("`{name}` is not on PATH; this test needs it"))
    }

    #[tokio::test]
    async fn python_starts_with_its_program_roots() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let python = on_path("python3");
        let conf = Confinement {
            read_write: vec![workspace.path().to_path_buf()],
            read_only: program_roots(&python),
            ..Confinement::default()
        };
        let out = run(
            &conf,
            &python,
            &[
                "-c",
                "import ssl, json, subprocess, os; \
                 open('w.txt', 'w').write('ok'); \
                 print(json.dumps([subprocess.run(['true']).returncode, open('w.txt').read(), \
                 len(os.listdir('/proc/self/fd')) > 0]))",
            ],
            workspace.path(),
        )
        .await;
        assert!(
            out.ok,
            "python3 ({}) failed: {}",
            python.display(),
            out.stderr
        );
        assert_eq!(out.stdout.trim(), r#"[0, "ok", true]"#, "{}", out.stderr);
    }

    #[tokio::test]
    async fn node_starts_with_its_program_roots() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let node = on_path("node");
        let conf = Confinement {
            read_write: vec![workspace.path().to_path_buf()],
            read_only: program_roots(&node),
            ..Confinement::default()
        };
        let out = run(
            &conf,
            &node,
            &[
                "-e",
                "const fs = require('fs'); fs.writeFileSync('n.txt', 'ok'); \
                 console.log(require('os').cpus().length > 0, fs.readFileSync('n.txt', 'utf8'), \
                 require('crypto').randomBytes(4).length)",
            ],
            workspace.path(),
        )
        .await;
        assert!(out.ok, "node ({}) failed: {}", node.display(), out.stderr);
        assert_eq!(out.stdout.trim(), "true ok 4", "{}", out.stderr);
    }

    #[test]
    fn program_roots_pick_install_prefixes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        // An interpreter install: prefix/bin/tool3 -> tool3.1, with prefix/lib.
        let prefix = root.join("versions/3.1");
        std::fs::create_dir_all(prefix.join("bin")).unwrap();
        std::fs::create_dir_all(prefix.join("lib")).unwrap();
        std::fs::write(prefix.join("bin/tool3.1"), "\x7fELF").unwrap();
        std::os::unix::fs::symlink("tool3.1", prefix.join("bin/tool3")).unwrap();
        assert_eq!(
            program_roots(&prefix.join("bin/tool3")),
            vec![prefix.clone()]
        );

        // A shim directory next to libexec, whose script names the interpreter above.
        std::fs::create_dir_all(root.join("shims")).unwrap();
        std::fs::create_dir_all(root.join("libexec")).unwrap();
        let shim = root.join("shims/tool3");
        std::fs::write(&shim, format!("#!{}\n", prefix.join("bin/tool3").display())).unwrap();
        assert_eq!(program_roots(&shim), vec![root.clone()]);

        // A lone binary in a plain directory: just that directory.
        std::fs::create_dir_all(root.join("opt/terraform")).unwrap();
        let tf = root.join("opt/terraform/terraform");
        std::fs::write(&tf, "\x7fELF").unwrap();
        assert_eq!(program_roots(&tf), vec![root.join("opt/terraform")]);

        // A symlink into that directory from a bin without a prefix: both directories.
        std::fs::create_dir_all(root.join("links/bin")).unwrap();
        std::os::unix::fs::symlink(&tf, root.join("links/bin/terraform")).unwrap();
        assert_eq!(
            program_roots(&root.join("links/bin/terraform")),
            vec![root.join("links/bin"), root.join("opt/terraform")]
        );

        // System programs need nothing extra; broad directories are never returned.
        assert_eq!(
            program_roots(Path::new("/usr/bin/env")),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            install_root(Path::new("/opt/tool")),
            PathBuf::from("/opt/tool")
        );
        assert!(too_broad(Path::new("/")) && too_broad(Path::new("/root")));
        assert!(too_broad(Path::new("/home/alice")));
        assert!(!too_broad(Path::new("/srv/tools/.pyenv")));
    }

    #[test]
    fn missing_support_refuses_or_warns() {
        let none = ConfinementSupport {
            landlock_abi: None,
            network_namespaces: false,
            network_needs_user_namespace: false,
            detail: "landlock: not built into this kernel".into(),
        };
        let mut conf = Confinement::default();
        let err = conf
            .apply_with(&none, &mut Command::new("true"))
            .unwrap_err();
        assert!(err.contains("Landlock") && err.contains("network"), "{err}");
        assert!(err.contains("not built into this kernel"), "{err}");

        conf.unconfined = Unconfined::Allow;
        let warning = conf
            .apply_with(&none, &mut Command::new("true"))
            .unwrap()
            .expect("a warning");
        assert!(warning.starts_with("warning:"), "{warning}");

        // Network granted: only Landlock is missing.
        conf.network = true;
        let warning = conf
            .apply_with(&none, &mut Command::new("true"))
            .unwrap()
            .unwrap();
        assert!(!warning.contains("network"), "{warning}");
    }

    #[test]
    fn a_missing_grant_is_an_error() {
        let conf = Confinement {
            read_only: vec![PathBuf::from("/nonexistent/wasmops-grant")],
            ..Confinement::default()
        };
        let full = ConfinementSupport {
            landlock_abi: Some(7),
            network_namespaces: true,
            network_needs_user_namespace: false,
            detail: String::new(),
        };
        let err = conf
            .apply_with(&full, &mut Command::new("true"))
            .unwrap_err();
        assert!(err.contains("/nonexistent/wasmops-grant"), "{err}");
    }
}
