//! A real daemon on a free loopback port, with users and tokens, killed when dropped.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// jane@example.com, an admin in release-managers.
pub const JANE: &str = "jane-token-0123456789";
/// bob@example.com, an operator in developers.
pub const BOB: &str = "bob-token-9876543210";
/// ed@example.com, an editor (written as the list `roles = ["operator", "editor"]`).
pub const ED: &str = "ed-token-5555555555";
/// vic@example.com, a viewer (no role written: the default).
pub const VIC: &str = "vic-token-1111111111";

pub struct Daemon {
    pub url: String,
    pub data: PathBuf,
    config: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Where the daemon's own output goes: `daemon.log` beside the data directory.
    log: PathBuf,
    /// Its PATH, when not the tests' own.
    path: Option<String>,
}

/// A config with four users, one per role: jane (admin, release-managers), ed (editor), bob
/// (operator, developers) and vic (viewer, auditors).
pub fn write_config(dir: &Path) -> PathBuf {
    let hash = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
    let path = dir.join("wasmops.toml");
    std::fs::write(
        &path,
        format!(
            r#"[[users]]
name = "jane@example.com"
groups = ["platform", "release-managers"]
role = "admin"
token_sha256 = "{}"

[[users]]
name = "ed@example.com"
roles = ["operator", "editor"]
token_sha256 = "{}"

[[users]]
name = "bob@example.com"
groups = ["developers"]
role = "operator"
token_sha256 = "{}"

[[users]]
name = "vic@example.com"
groups = ["auditors"]
token_sha256 = "{}"
"#,
            hash(JANE),
            hash(ED),
            hash(BOB),
            hash(VIC)
        ),
    )
    .unwrap();
    path
}

impl Daemon {
    pub fn start(dir: &Path) -> Daemon {
        Daemon::start_with(dir, None)
    }

    /// A daemon whose config has `extra` appended (secrets, plugin grants).
    pub fn start_logged(dir: &Path, extra: &str) -> Daemon {
        Daemon::start_with(dir, Some(extra))
    }

    /// A daemon with `extra` config that finds programs on `path` first (a stand-in).
    pub fn start_with_path(dir: &Path, extra: &str, path: &Path) -> Daemon {
        let system = std::env::var("PATH").unwrap_or_default();
        let mut daemon = Daemon::prepare(dir, Some(extra));
        daemon.path = Some(format!("{}:{system}", path.display()));
        daemon.launch();
        daemon
    }

    fn start_with(dir: &Path, extra: Option<&str>) -> Daemon {
        let mut daemon = Daemon::prepare(dir, extra);
        daemon.launch();
        daemon
    }

    fn prepare(dir: &Path, extra: Option<&str>) -> Daemon {
        let config = write_config(dir);
        if let Some(extra) = extra {
            let text = std::fs::read_to_string(&config).unwrap();
            std::fs::write(&config, format!("{text}\n{extra}")).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Daemon {
            url: format!("http://127.0.0.1:{port}"),
            data: dir.join("data"),
            config,
            port,
            child: None,
            log: dir.join("daemon.log"),
            path: None,
        }
    }

    fn launch(&mut self) {
        let output = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .map(Stdio::from)
                .unwrap()
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmops"));
        // ansible-playbook on PATH, as the hello_world example's actions need, unless the test
        // gives a PATH of its own.
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| crate::pip_tools::ansible_core().path());
        command.env("PATH", path);
        let child = command
            .args(["up", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data")
            .arg(&self.data)
            .arg("--config")
            .arg(&self.config)
            .env_remove("WASMOPS_SERVER")
            .stdout(output())
            .stderr(output())
            .spawn()
            .expect("start wasmops up");
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if ureq::get(&format!("{}/healthz", self.url)).call().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let exited = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        panic!(
            "the daemon did not answer /healthz within 60s (exited: {exited:?}); the end of its log:\n{}",
            tail.join("\n")
        );
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as systemd stops a service: the daemon's exit status, once it has exited
    /// (within 60 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the daemon is running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the daemon did not exit within 60 s of SIGTERM");
    }

    /// Starts the daemon again after [`Daemon::terminate`].
    pub fn start_again(&mut self) {
        self.launch();
    }

    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// `wasmops ARGS` against this daemon as jane.
    pub fn cli(&self, args: &[&str]) -> crate::support::Ran {
        self.cli_as(JANE, args)
    }

    /// `wasmops ARGS` against this daemon with `token`.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> crate::support::Ran {
        Command::new(env!("CARGO_BIN_EXE_wasmops"))
            .args(args)
            .env("WASMOPS_SERVER", &self.url)
            .env("WASMOPS_TOKEN", token)
            .output()
            .unwrap()
            .into()
    }

    pub fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.url);
        let auth = token.map(|t| format!("Bearer {t}")).unwrap_or_default();
        let mut response = match method {
            "GET" => agent.get(&url).header("authorization", &auth).call(),
            "DELETE" => agent.delete(&url).header("authorization", &auth).call(),
            "PUT" => agent
                .put(&url)
                .header("authorization", &auth)
                .send_json(body.unwrap_or(json!({}))),
            _ => agent
                .post(&url)
                .header("authorization", &auth)
                .send_json(body.unwrap_or(json!({}))),
        }
        .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Some(JANE), "GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body:#}");
        body
    }

    /// GET as jane: the status, the JSON body, and the next page's path from a `Link` header.
    pub fn get_page(&self, path: &str) -> (u16, Value, Option<String>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .get(&format!("{}{path}", self.url))
            .header("authorization", &format!("Bearer {JANE}"))
            .call()
            .unwrap();
        let next = response
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(wasmops::daemon::api::next_page)
            .map(str::to_string);
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            next,
        )
    }

    pub fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(Some(token), "POST", path, Some(body))
    }

    /// Polls a run until `done` says so (or 60 s pass).
    pub fn wait_for(&self, run: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let value = self.get(&format!("/api/v1/runs/{run}"));
            if done(&value) {
                return value;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "run {run} never became {what}: {value:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// POSTs a decision. Right after a restart the daemon holds it until it has taken the run
    /// back, so a client never needs to try again.
    pub fn decide(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.post(token, path, body)
    }

    pub fn wait_status(&self, run: &str, status: &str) -> Value {
        self.wait_for(run, status, |r| r["status"] == status)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
