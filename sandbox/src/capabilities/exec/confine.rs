//! What one program run through `exec` may touch, and arranging for its process to be held to
//! it: Landlock for files, a fresh network namespace for sockets.
//!
//! A plugin is sandboxed by wasmtime, but the programs it runs (Terraform, Ansible, scripts)
//! are native processes; without this they could read every host file the daemon can and reach
//! any host on the network. Support differs between kernels ([`super::probe`]), and
//! [`Unconfined`] says whether a daemon lacking a feature refuses to run programs or runs them
//! with what it has and a warning.

use super::child::{self, CAP_NET_RAW, ChildPlan, KEEP_CAPS, NetNs};
use super::probe::{ConfinementSupport, support};
use super::ruleset;
use crate::settings::Unconfined;
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
    /// Leave the child in the host's network namespace.
    pub network: bool,
    /// What to do when the kernel cannot provide all of it.
    pub unconfined: Unconfined,
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

    pub(super) fn apply_with(
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
            plan.ruleset = Some(ruleset::build(&self.read_write, &self.read_only, deny_tcp)?);
            plan.proc_self = true;
        }
        if child::is_root() {
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
        resolve_program(name)
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
