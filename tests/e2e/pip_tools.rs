//! Python tools the tests drive (componentize-py, schemathesis), installed by the harness itself
//! when the machine lacks them: `cargo test --workspace` alone must pass on a fresh machine.
//!
//! A tool already on the machine at the pinned version is used as it is. Otherwise it is
//! installed once into a cache outside the clone (`$XDG_CACHE_HOME/wasmops/pip/NAME-VERSION`,
//! else `~/.cache/…`), under a file lock so that tests running at once install it only once,
//! and marked complete only after pip succeeded: with `pip install --target` for the tools the
//! tests run themselves, in a virtual environment for one a plugin runs (ansible-playbook), as
//! its users install it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where a tool's script and package are: prepend `bin` to PATH and `lib` to PYTHONPATH.
#[derive(Debug, Clone)]
pub struct PipTool {
    /// `None` when the machine's own install is used; else its `bin`, and the directory to put
    /// on PYTHONPATH (none for a virtual environment, whose interpreter finds its packages).
    installed: Option<(PathBuf, Option<PathBuf>)>,
}

impl PipTool {
    /// Makes `cmd` find this tool as a script on PATH and as a Python module.
    pub fn apply(&self, cmd: &mut Command) {
        let Some((bin, lib)) = &self.installed else {
            return;
        };
        let prepend = |var: &str, dir: &Path| {
            let mut paths = vec![dir.to_path_buf()];
            if let Some(old) = std::env::var_os(var) {
                paths.extend(std::env::split_paths(&old));
            }
            std::env::join_paths(paths).unwrap()
        };
        cmd.env("PATH", prepend("PATH", bin));
        if let Some(lib) = lib {
            cmd.env("PYTHONPATH", prepend("PYTHONPATH", lib));
        }
    }
}

impl PipTool {
    /// PATH with this tool's `bin` first, for a process started some other way.
    pub fn path(&self) -> String {
        let system = std::env::var("PATH").unwrap_or_default();
        match &self.installed {
            Some((bin, _)) => format!("{}:{system}", bin.display()),
            None => system,
        }
    }
}

/// How a tool is installed.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// `pip install --target`: a package directory for PYTHONPATH.
    Target,
    /// `python3 -m venv` and its own pip.
    Venv,
}

/// componentize-py at `version`: the machine's, or the harness's cached install.
pub fn componentize_py(version: &str) -> &'static PipTool {
    static TOOL: OnceLock<PipTool> = OnceLock::new();
    TOOL.get_or_init(|| {
        pinned(
            "componentize-py",
            version,
            Layout::Target,
            componentize_py_version,
        )
    })
}

/// The schemathesis the API test runs (its command line changes between major versions).
pub const SCHEMATHESIS: &str = "4.32.5";

/// schemathesis at [`SCHEMATHESIS`]: the machine's, or the harness's cached install.
pub fn schemathesis() -> &'static PipTool {
    static TOOL: OnceLock<PipTool> = OnceLock::new();
    TOOL.get_or_init(|| {
        pinned("schemathesis", SCHEMATHESIS, Layout::Target, |tool| {
            module_version(tool, "schemathesis")
        })
    })
}

/// The ansible-core the ansible plugin's tests run.
pub const ANSIBLE_CORE: &str = "2.19.14";

/// ansible-core at [`ANSIBLE_CORE`]: the machine's `ansible-playbook`, or the harness's install
/// in a virtual environment of its own. The daemon gets its `bin` on PATH; the sandbox grants
/// ansible-playbook its interpreter and the environment it lives in, as for a user's venv.
pub fn ansible_core() -> &'static PipTool {
    static TOOL: OnceLock<PipTool> = OnceLock::new();
    TOOL.get_or_init(|| {
        pinned("ansible-core", ANSIBLE_CORE, Layout::Venv, |tool| {
            // `ansible-playbook [core 2.19.14]`
            // Its temp files not in ~/.ansible: the tests check that nothing writes there.
            let scratch = std::env::temp_dir().join("wasmops-ansible-version");
            let mut cmd = Command::new("ansible-playbook");
            cmd.arg("--version")
                .env("ANSIBLE_HOME", &scratch)
                .env("ANSIBLE_LOCAL_TEMP", &scratch);
            tool.apply(&mut cmd);
            let out = cmd.output().ok().filter(|o| o.status.success())?;
            let text = String::from_utf8_lossy(&out.stdout);
            let first = text.lines().next()?;
            let core = first.split("[core ").nth(1)?;
            Some(core.trim_end_matches(']').trim().to_string())
        })
    })
}

/// `name` at `version`: the machine's own when `probe` finds that version there, else the
/// harness's install, which `probe` must then find.
fn pinned(
    name: &str,
    version: &str,
    layout: Layout,
    probe: fn(&PipTool) -> Option<String>,
) -> PipTool {
    if probe(&PipTool { installed: None }).as_deref() == Some(version) {
        return PipTool { installed: None };
    }
    let tool = install(name, version, layout);
    match probe(&tool) {
        Some(v) if v == version => tool,
        other => panic!("{name} {version} was installed by the test harness but reports {other:?}"),
    }
}

/// `MODULE.__version__` as `python3` sees it through `tool`.
fn module_version(tool: &PipTool, module: &str) -> Option<String> {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        &format!("import {module}; print({module}.__version__)"),
    ]);
    tool.apply(&mut cmd);
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `componentize-py --version` through `tool`: from the script, else the module.
fn componentize_py_version(tool: &PipTool) -> Option<String> {
    let mut script = Command::new("componentize-py");
    script.arg("--version");
    tool.apply(&mut script);
    let mut module = Command::new("python3");
    module.args([
        "-c",
        "import sys; from componentize_py import script; \
         sys.argv[0] = 'componentize-py'; sys.exit(script())",
        "--version",
    ]);
    tool.apply(&mut module);
    [script, module].into_iter().find_map(|mut cmd| {
        let out = cmd.output().ok().filter(|o| o.status.success())?;
        // `componentize-py 0.25.1`
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace().last().map(str::to_string)
    })
}

/// Installs `name==version` into the cache once, under a lock; returns where it is.
fn install(name: &str, version: &str, layout: Layout) -> PipTool {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("wasmops/pip");
    std::fs::create_dir_all(&cache).unwrap();
    let dir = cache.join(format!("{name}-{version}"));
    let lock = std::fs::File::create(cache.join(format!("{name}-{version}.lock"))).unwrap();
    lock.lock().unwrap();
    let complete = dir.join(".complete");
    if !complete.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!(
            "installing {name}=={version} for the tests into {}",
            dir.display()
        );
        let mut pip = Command::new("python3");
        if layout == Layout::Venv {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&dir)
                .output()
                .unwrap_or_else(|e| panic!("python3 -m venv: {e}; the tests need python3"));
            assert!(
                made.status.success(),
                "python3 -m venv {} failed:\n{}",
                dir.display(),
                String::from_utf8_lossy(&made.stderr)
            );
            pip = Command::new(dir.join("bin/python3"));
        }
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]);
        if layout == Layout::Target {
            pip.arg("--target").arg(&dir);
        }
        let out = pip
            .arg(format!("{name}=={version}"))
            .output()
            .unwrap_or_else(|e| panic!("python3 -m pip: {e}; the tests need python3 with pip"));
        assert!(
            out.status.success(),
            "pip install {name}=={version} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&complete, "").unwrap();
    }
    let lib = (layout == Layout::Target).then(|| dir.clone());
    PipTool {
        installed: Some((dir.join("bin"), lib)),
    }
}
