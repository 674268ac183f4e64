//! Builds the built-in plugins (`plugins/*`), the test plugins (`tests/plugins/*`) and the
//! template renderer (`template/renderer`) for wasm32-wasip2, and generates the code that embeds
//! the built-ins and the renderer in the binary.
//!
//! This mirrors how wasmtime builds its test programs: a nested `cargo build` for the wasm target
//! into a target directory of its own, so the host build and the wasm build never share a lock.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());

    for watched in [
        "plugins",
        "sdk",
        "wit",
        "template",
        "tests/plugins",
        "runtime/templates",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let builtins = plugin_crates(&root.join("plugins"));
    let test_plugins = plugin_crates(&root.join("tests/plugins"));
    let wasm_target_dir = wasm_target_dir(&root, &out_dir);
    let toolchain = WasmToolchain::find(&root);
    if !ensure_wasm_target(&toolchain) {
        // `cargo::error` has said why; cargo fails the build after this script returns.
        return;
    }
    build_wasm(
        &toolchain,
        &root,
        &wasm_target_dir,
        builtins
            .iter()
            .chain(&test_plugins)
            .map(|krate| krate.package.as_str())
            .chain([RENDERER_PACKAGE]),
    );

    let wasm_dir = wasm_target_dir.join("wasm32-wasip2/release");
    let mut table = String::from("/// Built-in plugins: (plugin.toml, component bytes).\n");
    table.push_str("pub static BUILTIN_PLUGINS: &[(&str, &[u8])] = &[\n");
    for krate in &builtins {
        let wasm = wasm_dir.join(format!("{}.wasm", krate.lib_name));
        writeln!(
            table,
            "    (include_str!({:?}), include_bytes!({:?})),",
            krate.dir.join("plugin.toml"),
            wasm
        )
        .unwrap();
    }
    table.push_str("];\n");
    fs::write(out_dir.join("builtin_plugins.rs"), table).unwrap();
    fs::write(
        out_dir.join("template_renderer.rs"),
        format!(
            "/// The template renderer component.\nstatic TEMPLATE_RENDERER: &[u8] = include_bytes!({:?});\n",
            wasm_dir.join(format!("{}.wasm", RENDERER_PACKAGE.replace('-', "_")))
        ),
    )
    .unwrap();

    embed_scaffold_files(&root, &out_dir);

    // Tests find the hostile and helper plugins here; each is a folder with plugin.toml and .wasm.
    let test_plugin_dir = out_dir.join("test-plugins");
    for krate in &test_plugins {
        let dest = test_plugin_dir.join(&krate.name);
        fs::create_dir_all(&dest).unwrap();
        fs::copy(krate.dir.join("plugin.toml"), dest.join("plugin.toml")).unwrap();
        let wasm = format!("{}.wasm", krate.lib_name);
        fs::copy(wasm_dir.join(&wasm), dest.join(&wasm)).unwrap();
    }
    println!(
        "cargo:rustc-env=WASMOPS_TEST_PLUGINS={}",
        test_plugin_dir.display()
    );
}

struct PluginCrate {
    /// Folder name, which is also the plugin name.
    name: String,
    dir: PathBuf,
    package: String,
    /// The crate name with `-` as `_`: the stem of the .wasm file cargo writes.
    lib_name: String,
}

fn plugin_crates(dir: &Path) -> Vec<PluginCrate> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut crates: Vec<PluginCrate> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file() && p.join("plugin.toml").is_file())
        .map(|dir| {
            let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            let package = manifest
                .lines()
                .find_map(|l| l.trim().strip_prefix("name = "))
                .expect("plugin Cargo.toml has a package name")
                .trim_matches('"')
                .to_string();
            PluginCrate {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                lib_name: package.replace('-', "_"),
                package,
                dir,
            }
        })
        .collect();
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    crates
}

/// `<target>/wasm-plugins`, beside the host build, so it is shared by every profile and survives
/// `OUT_DIR` churn; falls back to `OUT_DIR` when the layout is unusual.
fn wasm_target_dir(root: &Path, out_dir: &Path) -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_relative() { root.join(p) } else { p })
        .or_else(|| {
            // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out
            out_dir.ancestors().nth(4).map(Path::to_path_buf)
        })
        .unwrap_or_else(|| out_dir.to_path_buf());
    target.join("wasm-plugins")
}

const WASM_TARGET: &str = "wasm32-wasip2";

/// The component templates are evaluated in (see `wasmops_sandbox::TemplateRenderer`).
const RENDERER_PACKAGE: &str = "wasmops-template-renderer";

/// The toolchain the plugins are built with. Under rustup, the one `rust-toolchain.toml` pins,
/// whichever builds the host (`cargo +nightly fuzz` included): the plugins do not change with
/// the host toolchain, and only the pinned one is sure to have (or get) the wasm target.
/// Without rustup, the toolchain running this build.
enum WasmToolchain {
    Rustup(String),
    Current,
}

impl WasmToolchain {
    fn find(root: &Path) -> WasmToolchain {
        let pinned = fs::read_to_string(root.join("rust-toolchain.toml"))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let value = l.trim().strip_prefix("channel")?.trim().strip_prefix('=')?;
                    Some(value.trim().trim_matches('"').to_string())
                })
            });
        match pinned {
            Some(channel) if env::var_os("RUSTUP_TOOLCHAIN").is_some() => {
                WasmToolchain::Rustup(channel)
            }
            _ => WasmToolchain::Current,
        }
    }

    /// `program` (`cargo`, `rustc`) of this toolchain.
    fn command(&self, program: &str) -> Command {
        match self {
            WasmToolchain::Rustup(channel) => {
                let mut cmd = Command::new("rustup");
                cmd.args(["run", channel, program])
                    .env_remove("RUSTUP_TOOLCHAIN")
                    .env_remove("RUSTC")
                    .env_remove("RUSTC_WRAPPER");
                cmd
            }
            WasmToolchain::Current => {
                let var = if program == "cargo" { "CARGO" } else { "RUSTC" };
                Command::new(env::var(var).unwrap_or_else(|_| program.into()))
            }
        }
    }
}

/// The plugins compile to `wasm32-wasip2`. A toolchain that rustup installed before
/// `rust-toolchain.toml` named the target (a developer machine, a CI image) lacks it, and the
/// nested build would then fail with a page of `can't find crate for std`: add it with rustup
/// when rustup manages the toolchain, and otherwise stop with one sentence saying what to run.
fn ensure_wasm_target(toolchain: &WasmToolchain) -> bool {
    let sysroot = toolchain
        .command("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let has_target = |sysroot: &Path| {
        sysroot
            .join("lib/rustlib")
            .join(WASM_TARGET)
            .join("lib")
            .is_dir()
    };
    if sysroot.as_deref().is_some_and(has_target) {
        return true;
    }
    match toolchain {
        WasmToolchain::Rustup(channel) => {
            println!(
                "cargo::warning=adding the {WASM_TARGET} target to the {channel} toolchain with \
                 rustup (the built-in plugins compile to it)"
            );
            let added = Command::new("rustup")
                .args(["target", "add", WASM_TARGET, "--toolchain", channel])
                .output();
            match added {
                Ok(out) if out.status.success() => return true,
                Ok(out) => println!(
                    "cargo::error=`rustup target add {WASM_TARGET} --toolchain {channel}` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(e) => {
                    println!("cargo::error=cannot run rustup to add the {WASM_TARGET} target: {e}");
                }
            }
        }
        WasmToolchain::Current => println!(
            "cargo::error=the {WASM_TARGET} target is not installed (sysroot {}); the built-in \
             plugins compile to it: install it (`rustup target add {WASM_TARGET}`, or your \
             distribution's rust-std for {WASM_TARGET}) and build again",
            sysroot.map_or_else(|| "unknown".into(), |p| p.display().to_string())
        ),
    }
    false
}

fn build_wasm<'a>(
    toolchain: &WasmToolchain,
    root: &Path,
    target_dir: &Path,
    packages: impl Iterator<Item = &'a str>,
) {
    let mut cmd = toolchain.command("cargo");
    cmd.current_dir(root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(target_dir)
        // Flags meant for the host build must not leak into the wasm build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS");
    for package in packages {
        cmd.arg("-p").arg(package);
    }
    let status = cmd.status().expect("run cargo for the wasm plugins");
    assert!(status.success(), "building the wasm plugins failed");
}

/// `wasmops plugin new` writes the SDK, the WIT and language templates into a fresh folder, so a
/// plugin author needs nothing but the binary. This embeds those files.
fn embed_scaffold_files(root: &Path, out_dir: &Path) {
    let mut table = String::new();
    for (name, dir, prefix) in [
        ("SDK_FILES", root.join("sdk"), ""),
        ("WIT_FILES", root.join("wit"), ""),
        // The Python example is the template: `plugin new` renames it.
        (
            "PYTHON_TEMPLATE",
            root.join("examples/plugins/hello-python"),
            "",
        ),
    ] {
        let mut files = Vec::new();
        collect_files(&dir, &dir, &mut files);
        files.retain(|(rel, _)| {
            !rel.starts_with("target") && !rel.ends_with(".wasm") && !rel.contains("__pycache__")
        });
        writeln!(table, "pub static {name}: &[(&str, &str)] = &[").unwrap();
        for (rel, path) in files {
            writeln!(
                table,
                "    ({:?}, include_str!({:?})),",
                format!("{prefix}{rel}"),
                path
            )
            .unwrap();
        }
        table.push_str("];\n");
    }
    writeln!(
        table,
        "pub static PYTHON_README: &str = include_str!({:?});",
        root.join("runtime/templates/python-README.md")
    )
    .unwrap();
    fs::write(out_dir.join("scaffold_files.rs"), table).unwrap();
}

fn collect_files(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_files(base, &path, out);
        } else {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, path));
        }
    }
}
