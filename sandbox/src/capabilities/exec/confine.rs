//! What one program run through `exec` may touch, and arranging for its process to be held to
//! it: Landlock for files, namespaces for the network, other processes and mounts, seccomp for
//! UNIX sockets, resource limits, and an unprivileged user when the daemon is root.
//!
//! A plugin is sandboxed by wasmtime, but the programs it runs (Terraform, Ansible, scripts)
//! are native processes; without this they could read every host file the daemon can and reach
//! any host on the network. Support differs between kernels ([`super::probe`]), and
//! [`Unconfined`] says whether a daemon lacking a feature refuses to run programs or runs them
//! with what it has and a warning.

pub(super) use super::cgroup::RunCgroup;
pub(super) use super::child::ExecTarget;
use super::child::{self, CAP_NET_RAW, ChildPlan, KEEP_CAPS, Rlimit};
use super::probe::{ConfinementSupport, support};
use super::{ruleset, syscalls};
use crate::settings::Unconfined;
use std::ffi::CString;
use std::path::PathBuf;
use tokio::process::Command;

/// The confinement of one program run.
#[derive(Clone, Debug, Default)]
pub struct Confinement {
    /// Read, write, create, remove and execute beneath these (the run workspace).
    pub read_write: Vec<PathBuf>,
    /// Read and execute beneath these: operator grants and the [`super::programs::program_roots`] of the
    /// granted programs.
    pub read_only: Vec<PathBuf>,
    /// Leave the child in the host's network namespace, with UNIX sockets.
    pub network: bool,
    /// What to do when the kernel cannot provide all of it.
    pub unconfined: Unconfined,
    /// The uid and gid the program runs as, when not the daemon's.
    pub run_as: Option<(u32, u32)>,
    /// Per-process resource limits.
    pub limits: ProgramLimits,
}

/// The resource limits every process of a program run starts with (`setrlimit`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgramLimits {
    /// Processes (and threads) of the program's user.
    pub processes: Option<u64>,
    /// Data memory (heap and private writable mappings) per process, in bytes.
    pub memory: Option<u64>,
    /// CPU seconds per process.
    pub cpu_seconds: Option<u64>,
    /// The largest file a process may write, in bytes.
    pub file_size: Option<u64>,
}

impl ProgramLimits {
    fn rlimits(&self) -> Vec<Rlimit> {
        let limit = |resource, value: Option<u64>, hard_slack: u64| {
            value.map(|v| Rlimit {
                resource,
                soft: v,
                hard: v.saturating_add(hard_slack),
            })
        };
        [
            limit(libc::RLIMIT_NPROC, self.processes, 0),
            limit(libc::RLIMIT_DATA, self.memory, 0),
            // A second past the soft limit, SIGXCPU becomes SIGKILL.
            limit(libc::RLIMIT_CPU, self.cpu_seconds, 1),
            limit(libc::RLIMIT_FSIZE, self.file_size, 0),
            // No core dumps of a program's memory (secrets) into the workspace.
            Some(Rlimit {
                resource: libc::RLIMIT_CORE,
                soft: 0,
                hard: 0,
            }),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl Confinement {
    /// Arranges for `cmd`'s child to be confined. Call once per spawn, after setting the
    /// working directory (which must lie beneath a granted path). Returns a warning line for
    /// the step log when [`Unconfined::Allow`] let it run with less than asked; an error when
    /// [`Unconfined::Refuse`] stops it, or a granted path cannot be opened.
    ///
    /// `target` is what `cmd` runs (path, arguments, the whole environment): under a PID
    /// namespace the program's process execs it itself.
    ///
    /// A failure inside the child (after the probe succeeded) shows as the spawn's OS error,
    /// or under a PID namespace as exit code 126 or 127 with a line on standard error.
    pub(super) fn apply(
        &self,
        cmd: &mut Command,
        target: ExecTarget,
        cgroup: Option<&RunCgroup>,
    ) -> Result<Option<String>, String> {
        self.apply_with(support(), cmd, target, cgroup)
    }

    pub(super) fn apply_with(
        &self,
        support: &ConfinementSupport,
        cmd: &mut Command,
        target: ExecTarget,
        cgroup: Option<&RunCgroup>,
    ) -> Result<Option<String>, String> {
        let missing = support.missing(self.network);
        let warning = if missing.is_empty() {
            None
        } else {
            let what = missing
                .iter()
                .map(|f| f.describe())
                .collect::<Vec<_>>()
                .join(", ");
            match self.unconfined {
                Unconfined::Refuse => {
                    return Err(format!(
                        "exec refused: this kernel cannot provide {what} ({}); \
                         the daemon is set to refuse partly confined programs \
                         ([sandbox] unconfined = \"allow\" runs them with what there is)",
                        support.detail
                    ));
                }
                Unconfined::Allow => Some(format!(
                    "warning: running without {what}, which this kernel lacks ({})",
                    support.detail
                )),
            }
        };

        let mut flags = 0;
        let isolate_network = !self.network && support.network_namespaces;
        if isolate_network {
            flags |= libc::CLONE_NEWNET;
        }
        if support.pid_namespaces {
            // And System V IPC with it: a shared memory segment would outlive the program and
            // hold memory no rlimit counts.
            flags |= libc::CLONE_NEWPID | libc::CLONE_NEWIPC;
        }
        if support.read_only_mounts {
            flags |= libc::CLONE_NEWNS;
        }
        let mut plan = if flags != 0 && support.needs_user_namespace {
            ChildPlan::in_user_namespace(flags)
        } else {
            ChildPlan {
                unshare: flags,
                ..ChildPlan::default()
            }
        };
        if support.read_only_mounts {
            plan.writable_mounts = self
                .read_write
                .iter()
                .map(|p| {
                    CString::new(p.as_os_str().as_encoded_bytes())
                        .map_err(|_| format!("exec confinement: {} has a NUL byte", p.display()))
                })
                .collect::<Result<_, _>>()?;
        }
        if support.landlock_abi.is_some() {
            // Without a namespace, Landlock can still refuse TCP (not UDP) on ABI 4+.
            let deny_tcp = !self.network && !isolate_network;
            plan.ruleset = Some(ruleset::build(&self.read_write, &self.read_only, deny_tcp)?);
            plan.proc_self = true;
            plan.private_shm = support.read_only_mounts;
        }
        if support.seccomp {
            plan.seccomp = syscalls::filters(self.network)?;
        }
        if support.pid_namespaces {
            plan.under_init(target);
        }
        plan.rlimits = self.limits.rlimits();
        plan.cgroup_procs = cgroup.map(RunCgroup::procs).unwrap_or_default();
        plan.run_as = self.run_as;
        if child::is_root() && self.run_as.is_none_or(|(uid, _)| uid == 0) {
            let raw = if self.network { 1 << CAP_NET_RAW } else { 0 };
            plan.keep_caps = Some(KEEP_CAPS.iter().fold(raw, |m, c| m | 1 << c));
        }

        child::arrange(cmd, plan);
        Ok(warning)
    }
}

#[cfg(test)]
mod tests {
    use super::super::probe::probe;
    use super::super::programs::{program_roots, resolve_program};
    use super::*;
    use std::ffi::OsStr;
    use std::path::Path;
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
        let path = std::env::var_os("PATH").unwrap_or_default();
        let env = [
            (OsStr::new("PATH"), path.as_os_str()),
            (OsStr::new("HOME"), cwd.as_os_str()),
            (OsStr::new("LANG"), OsStr::new("C.UTF-8")),
        ];
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let target = ExecTarget::new(program, args.iter().map(OsStr::new), env).unwrap();
        let warning = conf
            .apply_with(support, &mut cmd, target, None)
            .expect("apply");
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
        // Refused twice over: by Landlock, and before it by the read-only mount.
        assert!(
            out.stderr.contains("Permission denied") || out.stderr.contains("Read-only"),
            "{}",
            out.stderr
        );
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
            needs_user_namespace: true,
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
        // SAFETY: getuid has no failure mode.
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
            // SAFETY: geteuid has no failure mode.
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
    async fn programs_that_leave_the_group_die_with_the_program() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let conf = workspace_only(workspace.path());
        // A setsid'd, double-forked sleeper that would outlive its parent anywhere else. Its
        // own pid file is in the workspace; after the program ends it must be gone.
        let out = bash(
            &conf,
            "setsid bash -c '(sleep 300 & echo $! > pid; wait)' > /dev/null 2>&1 & \
             for i in $(seq 50); do [ -s pid ] && break; sleep 0.1; done; \
             echo \"ppid=$PPID self=$$\"; kill -9 1 || echo init-unkillable",
            workspace.path(),
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        // Its parent is the namespace's init, PID 1, and it is PID 2: the daemon is invisible.
        assert!(out.stdout.contains("ppid=1 self=2"), "{}", out.stdout);
        // Nor can it kill the namespace's init to escape it.
        assert!(out.stdout.contains("init-unkillable"), "{}", out.stdout);
        let sleepers = std::process::Command::new("pgrep")
            .args(["-f", "sleep 300"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&sleepers.stdout).trim().is_empty(),
            "a setsid survivor outlived the program: pids {}",
            String::from_utf8_lossy(&sleepers.stdout)
        );
    }

    #[tokio::test]
    async fn metadata_outside_the_workspace_cannot_change() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::fs::write(&target, "x").unwrap();
        let before = std::fs::metadata(&target).unwrap();
        let conf = workspace_only(workspace.path());
        let out = bash(
            &conf,
            &format!(
                "chmod 4777 {0} || echo chmod-denied; chown 1:1 {0} || echo chown-denied; \
                 touch -d 2001-01-01 {0} || echo touch-denied; \
                 python3 -c 'import os; os.setxattr(\"{0}\", \"user.x\", b\"1\")' \
                   || echo xattr-denied; \
                 echo in > mine && chmod 600 mine && touch -d 2001-01-01 mine && echo own-ok",
                target.display()
            ),
            workspace.path(),
        )
        .await;
        for denied in [
            "chmod-denied",
            "chown-denied",
            "touch-denied",
            "xattr-denied",
        ] {
            assert!(out.stdout.contains(denied), "{denied}: {}", out.stdout);
        }
        assert!(
            out.stdout.contains("own-ok"),
            "{} {}",
            out.stdout,
            out.stderr
        );
        let after = std::fs::metadata(&target).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (before.mode(), before.uid(), before.mtime()),
            (after.mode(), after.uid(), after.mtime())
        );
    }

    #[tokio::test]
    async fn inherited_descriptors_are_closed() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "inherited-secret").unwrap();
        // An fd without close-on-exec, as whatever started the daemon might leave one.
        let file = std::fs::File::open(&secret).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        let conf = workspace_only(workspace.path());
        let out = bash(
            &conf,
            &format!("cat <&{fd} || echo fd-closed; ls /proc/self/fd"),
            workspace.path(),
        )
        .await;
        assert!(out.stdout.contains("fd-closed"), "{}", out.stdout);
        assert!(!out.stdout.contains("inherited-secret"), "{}", out.stdout);
        drop(file);
    }

    #[tokio::test]
    async fn unix_sockets_need_the_network_grant() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let path = outside.path().join("host.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let script = format!(
            "import socket; s = socket.socket(socket.AF_UNIX); s.connect({:?}); print('connected')",
            path.display().to_string()
        );
        let python = on_path("python3");
        let mut conf = for_program(workspace.path(), &python);
        let out = run(&conf, &python, &["-c", &script], workspace.path()).await;
        assert!(!out.ok, "{}", out.stdout);
        assert!(
            out.stderr.contains("Operation not permitted"),
            "{}",
            out.stderr
        );
        assert!(
            listener.accept().is_err(),
            "the host socket saw a connection"
        );

        conf.network = true;
        let out = run(&conf, &python, &["-c", &script], workspace.path()).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(listener.accept().is_ok());
    }

    #[tokio::test]
    async fn calls_that_go_around_other_layers_are_refused() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let log = outside.path().join("log.sock");
        let host_log = std::os::unix::net::UnixDatagram::bind(&log).unwrap();
        host_log.set_nonblocking(true).unwrap();
        let python = on_path("python3");
        let conf = for_program(workspace.path(), &python);
        let script = format!(
            "import os, socket, ctypes\n\
             def tried(name, f):\n\
             \x20   try:\n\
             \x20       f(); print(name, 'allowed')\n\
             \x20   except OSError as e:\n\
             \x20       print(name, 'refused', e.errno)\n\
             def dgram():\n\
             \x20   a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
             \x20   a.sendto(b'forged', {log:?})\n\
             tried('dgram-pair', dgram)\n\
             tried('stream-pair', lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM))\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             def call(nr, *args):\n\
             \x20   if libc.syscall(nr, *args) < 0: raise OSError(ctypes.get_errno(), 'x')\n\
             tried('keyctl', lambda: call(250, 0, -3, 0))\n\
             tried('userns', lambda: call(272, 0x10000000))\n\
             open('tool', 'w').close()\n\
             tried('setuid', lambda: os.chmod('tool', 0o4755))\n\
             tried('plain-chmod', lambda: os.chmod('tool', 0o755))\n",
            log = log.display().to_string()
        );
        let out = run(&conf, &python, &["-c", &script], workspace.path()).await;
        assert!(out.ok, "{}", out.stderr);
        for refused in ["dgram-pair", "keyctl", "userns", "setuid"] {
            assert!(
                out.stdout.contains(&format!("{refused} refused 1")),
                "{refused}: {}",
                out.stdout
            );
        }
        for allowed in ["stream-pair", "plain-chmod"] {
            assert!(
                out.stdout.contains(&format!("{allowed} allowed")),
                "{allowed}: {}",
                out.stdout
            );
        }
        let mut buf = [0u8; 16];
        assert!(
            host_log.recv(&mut buf).is_err(),
            "the host socket got a datagram"
        );
    }

    #[tokio::test]
    async fn process_and_memory_limits_hold() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let python = on_path("python3");
        let conf = Confinement {
            // A uid of its own, so that the process count is this test's alone.
            run_as: Some((64_999, 64_999)),
            limits: ProgramLimits {
                processes: Some(20),
                memory: Some(256 << 20),
                cpu_seconds: Some(1),
                file_size: Some(1 << 20),
            },
            ..for_program(workspace.path(), &python)
        };
        workspace_to(workspace.path(), 64_999);
        // A fork bomb stops at the limit; the test machine and the daemon carry on.
        let out = run(
            &conf,
            &python,
            &[
                "-c",
                "import os, time\nn = 0\nfor _ in range(100):\n    try:\n        pid = os.fork()\n\
                 \n    except OSError:\n        break\n    if pid == 0:\n        time.sleep(5)\n\
                 \n        os._exit(0)\n    n += 1\nprint('started', n)",
            ],
            workspace.path(),
        )
        .await;
        let started: usize = out
            .stdout
            .trim()
            .strip_prefix("started ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{} {}", out.stdout, out.stderr));
        assert!(started < 20, "{started} processes started");
        // A 4 GiB allocation fails instead of taking the machine's memory.
        let out = run(
            &conf,
            &python,
            &["-c", "b = bytearray(4 << 30)"],
            workspace.path(),
        )
        .await;
        assert!(!out.ok);
        assert!(out.stderr.contains("MemoryError"), "{}", out.stderr);
        // A file past the size bound is cut off by SIGXFSZ (128 + 25 through init).
        let args = ["-c", "head -c 2000000 /dev/zero > big"];
        let mut cmd = Command::new("/bin/bash");
        cmd.args(args).current_dir(workspace.path());
        let target =
            ExecTarget::new(Path::new("/bin/bash"), args.iter().map(OsStr::new), []).unwrap();
        conf.apply(&mut cmd, target, None).unwrap();
        let status = cmd.status().await.unwrap();
        assert_eq!(status.code(), Some(128 + libc::SIGXFSZ));
    }

    /// Shared memory escapes RLIMIT_DATA and a root program escapes RLIMIT_NPROC; the run's
    /// cgroup bounds both, and says which bound was hit.
    #[tokio::test]
    async fn the_runs_cgroup_bounds_shared_memory_and_a_root_fork_bomb() {
        require_support();
        assert!(support().cgroups, "no cgroups here: {}", support().detail);
        let workspace = tempfile::tempdir().unwrap();
        let python = on_path("python3");
        let conf = for_program(workspace.path(), &python);
        let run_in = |code: &'static str, cgroup: RunCgroup| {
            let conf = conf.clone();
            let python = python.clone();
            let cwd = workspace.path().to_path_buf();
            async move {
                let args = ["-c", code];
                let mut cmd = Command::new(&python);
                cmd.args(args)
                    .current_dir(&cwd)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let target = ExecTarget::new(&python, args.iter().map(OsStr::new), []).unwrap();
                conf.apply(&mut cmd, target, Some(&cgroup)).unwrap();
                let out = cmd.output().await.unwrap();
                (out, cgroup.bound_hit())
            }
        };
        let shared = "import mmap\nm = mmap.mmap(-1, 1 << 30)\nfor i in range(0, 1 << 30, 4096): m[i] = 1\nprint('touched')";
        let (out, hit) = run_in(shared, RunCgroup::create(128 << 20, 100).unwrap()).await;
        assert!(
            !out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(hit.is_some_and(|h| h.contains("program_memory")), "{hit:?}");

        let bomb = "import os, time\nn = 0\nfor _ in range(100):\n  try:\n    pid = os.fork()\n  except OSError:\n    break\n  if pid == 0:\n    time.sleep(3); os._exit(0)\n  n += 1\nprint(n)";
        let (out, hit) = run_in(bomb, RunCgroup::create(1 << 30, 10).unwrap()).await;
        let started: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(started < 10, "{started}");
        assert!(hit.is_some_and(|h| h.contains("processes")), "{hit:?}");
    }

    #[tokio::test]
    async fn a_root_daemon_runs_programs_as_the_program_user() {
        require_support();
        assert!(child::is_root(), "this test needs a root daemon");
        // The workspace beneath a directory only root may enter, as `./wasmops-data` beneath
        // a root home is.
        let private = tempfile::tempdir().unwrap();
        let workspace = private.path().join("ws");
        std::fs::create_dir(&workspace).unwrap();
        let python = on_path("python3");
        let conf = Confinement {
            run_as: Some((65534, 65534)),
            ..for_program(&workspace, &python)
        };
        workspace_to(&workspace, 65534);
        // python3 may live beneath /root (pyenv): reaching it needs the kept search right,
        // for access(2) (which Ansible checks every file with) as for open(2).
        let out = run(
            &conf,
            &python,
            &[
                "-c",
                "import os; open('w', 'w').write('ok'); s = open('/proc/self/status').read(); \
                 open('/dev/shm/wasmops-probe', 'w').write('x'); \
                 print(os.getuid(), os.getgid(), os.getgroups(), \
                 s.split('CapEff:')[1].split()[0], s.split('CapPrm:')[1].split()[0], \
                 s.split('CapBnd:')[1].split()[0], os.access(os.path.abspath('w'), os.R_OK))",
            ],
            &workspace,
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert_eq!(
            out.stdout.trim(),
            "65534 65534 [] 0000000000000004 0000000000000004 0000000000000004 True"
        );
        // /dev/shm was the program's own.
        assert!(!Path::new("/dev/shm/wasmops-probe").exists());
    }

    fn true_target() -> ExecTarget {
        ExecTarget::new(Path::new("/bin/true"), [], []).unwrap()
    }

    fn workspace_to(dir: &Path, uid: u32) {
        std::os::unix::fs::chown(dir, Some(uid), Some(uid)).unwrap();
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

    /// What exec gives `program`: the workspace read-write, its install prefixes read-only.
    fn for_program(workspace: &Path, program: &Path) -> Confinement {
        Confinement {
            read_write: vec![workspace.to_path_buf()],
            read_only: program_roots(program),
            ..Confinement::default()
        }
    }

    fn on_path(name: &str) -> PathBuf {
        resolve_program(name)
            .unwrap_or_else(|| panic!("`{name}` is not on PATH; this test needs it"))
    }

    #[tokio::test]
    async fn python_starts_with_its_program_roots() {
        require_support();
        let workspace = tempfile::tempdir().unwrap();
        let python = on_path("python3");
        let conf = for_program(workspace.path(), &python);
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
        let conf = for_program(workspace.path(), &node);
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
    fn missing_support_refuses_or_warns() {
        let none = ConfinementSupport {
            landlock_abi: None,
            network_namespaces: false,
            pid_namespaces: false,
            read_only_mounts: false,
            seccomp: false,
            cgroups: false,
            needs_user_namespace: false,
            detail: "landlock: not built into this kernel".into(),
        };
        let mut conf = Confinement::default();
        let err = conf
            .apply_with(&none, &mut Command::new("true"), true_target(), None)
            .unwrap_err();
        assert!(err.contains("Landlock") && err.contains("network"), "{err}");
        assert!(err.contains("not built into this kernel"), "{err}");

        conf.unconfined = Unconfined::Allow;
        let warning = conf
            .apply_with(&none, &mut Command::new("true"), true_target(), None)
            .unwrap()
            .expect("a warning");
        assert!(warning.starts_with("warning:"), "{warning}");

        // Network granted: only Landlock is missing.
        conf.network = true;
        let warning = conf
            .apply_with(&none, &mut Command::new("true"), true_target(), None)
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
            pid_namespaces: true,
            read_only_mounts: true,
            seccomp: true,
            cgroups: true,
            needs_user_namespace: false,
            detail: String::new(),
        };
        let err = conf
            .apply_with(&full, &mut Command::new("true"), true_target(), None)
            .unwrap_err();
        assert!(err.contains("/nonexistent/wasmops-grant"), "{err}");
    }
}
