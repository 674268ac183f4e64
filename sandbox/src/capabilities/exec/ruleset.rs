//! The Landlock ruleset a confined program gets: the system paths every program needs, the
//! granted paths, and no more. Built in the daemon before any fork.

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope,
};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The newest Landlock ABI whose rights this module was tested with. Newer kernels keep
/// enforcing these rights; rights added later (e.g. V9's `ResolveUnix`) are left unhandled on
/// purpose until they are tested, because handling a right denies it everywhere not granted.
const TESTED_ABI: ABI = ABI::V7;

/// Read and execute: where programs, their shared libraries and data files live. `/bin`,
/// `/sbin`, `/lib*` are symlinks into `/usr` on merged-/usr systems (the rule then lands on the
/// target, harmlessly twice) and real directories elsewhere.
pub(super) const SYSTEM_EXEC: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"];

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

/// Opens every granted path and builds the ruleset: system paths readable (and executable
/// where programs live), `read_only` readable and executable, `read_write` fully usable but for
/// device nodes. With `deny_tcp`, TCP is refused too (the fallback when no network namespace
/// can be had).
pub(super) fn build(
    read_write: &[PathBuf],
    read_only: &[PathBuf],
    deny_tcp: bool,
) -> Result<OwnedFd, String> {
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
    let granted = read_only
        .iter()
        .map(|p| (p, exec))
        .chain(read_write.iter().map(|p| (p, all)));
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

/// A created ruleset handling one right and granting nothing: what the probe enforces on a
/// throwaway child to learn whether enforcing works at all.
pub(super) fn probe_ruleset() -> Result<Option<OwnedFd>, landlock::RulesetError> {
    Ruleset::default()
        .handle_access(AccessFs::ReadFile)
        .and_then(Ruleset::create)
        .map(Option::<OwnedFd>::from)
}
