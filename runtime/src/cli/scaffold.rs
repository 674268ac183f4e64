//! `wasmops plugin new NAME --lang rust|python`: a plugin folder that builds with one command.

use anyhow::{Context, Result, bail};
use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/scaffold_files.rs"));

pub fn new_plugin(name: &str, lang: &str, parent: &Path) -> Result<std::path::PathBuf> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "plugin name `{name}`: use lowercase letters, digits and `-`, starting with a letter"
        );
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let files: Vec<(String, String)> = match lang {
        "rust" => rust_files(name),
        "python" => python_files(name),
        other => bail!("--lang `{other}`: choose rust or python"),
    };
    for (rel, text) in files {
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        if rel.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(dir)
}

fn wit_files() -> impl Iterator<Item = (String, String)> {
    WIT_FILES
        .iter()
        .map(|(rel, text)| (format!("wit/{rel}"), text.to_string()))
}

fn rust_files(name: &str) -> Vec<(String, String)> {
    let lib = name.replace('-', "_");
    let mut files: Vec<(String, String)> = SDK_FILES
        .iter()
        .filter(|(rel, _)| rel.starts_with("src/") || *rel == "README.md")
        .map(|(rel, text)| (format!("wasmops-sdk/{rel}"), text.to_string()))
        .collect();
    files.extend(wit_files());
    files.push((
        "wasmops-sdk/Cargo.toml".into(),
        format!(
            "[package]\nname = \"wasmops-sdk\"\nversion = \"{}\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\nwit-bindgen = {{ version = \"0.61\", default-features = false, features = [\"macros\", \"realloc\", \"std\"] }}\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = \"1\"\n",
            env!("CARGO_PKG_VERSION")
        ),
    ));
    files.push((
        "Cargo.toml".into(),
        format!(
            "[package]\nname = \"{name}\"\ndescription = \"A wasmops step plugin\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nwasmops-sdk = {{ path = \"wasmops-sdk\" }}\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\n\n[workspace]\n\n[profile.release]\nstrip = true\n"
        ),
    ));
    files.push((
        ".cargo/config.toml".into(),
        "# Plugins are WebAssembly components: `cargo build --release` builds one.\n[build]\ntarget = \"wasm32-wasip2\"\n".into(),
    ));
    files.push((
        "rust-toolchain.toml".into(),
        "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-wasip2\"]\n".into(),
    ));
    files.push((".gitignore".into(), "target/\n".into()));
    files.push((
        "plugin.toml".into(),
        format!(
            "name = \"{name}\"\nversion = \"0.1.0\"\nkind = \"step\"\nworld = \"wasmops:plugin/step-plugin@0.1.0\"\n\
             component = \"target/wasm32-wasip2/release/{lib}.wasm\"\ndescription = \"Greets someone\"\n\n\
             # Deny by default: ask only for what the plugin needs.\n[capabilities]\n\
             # exec = [\"bash\"]\n# http = [\"https://api.example.com\"]\n# secrets = [\"{lib}_*\"]\n\
             # files = [{{ path = \"workspace\", mode = \"rw\" }}]\n\n[limits]\nmemory = \"32MiB\"\ntimeout = \"5m\"\n"
        ),
    ));
    files.push((
        "src/lib.rs".into(),
        format!(
            "//! `{name}`: a wasmops step plugin.\n\nuse serde::Deserialize;\nuse wasmops_sdk::prelude::*;\n\n\
             /// The step's `with:` block.\n#[derive(Deserialize)]\n#[serde(deny_unknown_fields)]\nstruct Config {{\n    name: String,\n}}\n\n\
             struct Plugin;\n\nimpl Step for Plugin {{\n    type Config = Config;\n\n\
             \x20   fn run(ctx: &Context, config: Config) -> Result<Outcome, Error> {{\n\
             \x20       wasmops_sdk::info!(\"greeting {{}} in run {{}}\", config.name, ctx.run_id);\n\
             \x20       let greeting = format!(\"hello, {{}}\", config.name);\n\
             \x20       Ok(Outcome::summary(&greeting).with_output(\"greeting\", greeting))\n    }}\n}}\n\n\
             wasmops_sdk::step_plugin!(Plugin);\n"
        ),
    ));
    files.push((
        "README.md".into(),
        format!(
            "# {name}\n\nA wasmops step plugin.\n\n```sh\ncargo build --release          # builds the component (target/wasm32-wasip2/release/{lib}.wasm)\n\
             wasmops plugins install .       # or run with --plugins DIR pointing at the parent folder\n```\n\n\
             Use it in a workflow:\n\n```yaml\nsteps:\n  - uses: {name}\n    with: {{ name: world }}\n```\n\n\
             The SDK is vendored in `wasmops-sdk/` (see its README) and the WIT contract in `wit/`.\n"
        ),
    ));
    files
}

fn python_files(name: &str) -> Vec<(String, String)> {
    let module = name.replace('-', "_");
    // The example, renamed, reading the WIT the scaffold writes beside it.
    let mut files: Vec<(String, String)> = PYTHON_TEMPLATE
        .iter()
        .map(|(rel, text)| {
            let text = text
                .replace("../../../wit", "wit")
                .replace("hello-python", name)
                .replace("hello_python", &module);
            (rel.to_string(), text)
        })
        .collect();
    let readme = PYTHON_README
        .replace("{{name}}", name)
        .replace("{{module}}", &module);
    files.push(("README.md".into(), readme));
    files.extend(wit_files());
    files
}
