//! The files a project brings with it (scripts for `file:`, playbooks, Terraform directories):
//! collected where `apply` or `run` is invoked, bounded, content-addressed, and written
//! read-only into a run's workspace, so that programs need no grant outside it.
//!
//! What is collected: every file beneath the project directory except hidden ones (`.git`,
//! `.terraform`, dotfiles), what `.wasmopsignore` files exclude (gitignore syntax), the config
//! file (`wasmops.toml`) and any wasmops data directory (recognised by its `CACHEDIR.TAG` or
//! its name, `wasmops-data`). A symlink is followed only to a file inside the project.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The largest file a project may carry.
pub const MAX_FILE: u64 = 16 << 20;
/// All of a project's files together.
pub const MAX_TOTAL: u64 = 64 << 20;
/// How many files a project may carry.
pub const MAX_FILES: usize = 10_000;
/// The ignore file read in every directory of a project.
pub const IGNORE_FILE: &str = ".wasmopsignore";
/// Where in a run's workspace project files are written: `projects/<code>/…`.
pub const WORKSPACE_DIR: &str = "projects";

/// One file of a project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Hex SHA-256 of the contents: the name the contents are stored under.
    pub sha256: String,
    pub size: u64,
    /// Written executable (a script run directly, a Terraform provider).
    #[serde(default)]
    pub executable: bool,
}

/// A project's files: relative path (`/`-separated) → entry.
pub type FileSet = BTreeMap<String, FileEntry>;

/// Files read from a directory, with their contents by digest.
#[derive(Debug, Default)]
pub struct Collected {
    pub files: FileSet,
    pub contents: BTreeMap<String, Vec<u8>>,
}

/// The digest of `bytes`, as stored.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What to do with a file larger than [`MAX_FILE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oversized {
    /// Refuse the whole collection, naming the file (`apply`: the user chose the folder).
    Refuse,
    /// Leave it out (`wasmops run FILE`: whatever else lies beside the workflow, a built
    /// plugin or a download, must not stop the run).
    Skip,
}

/// Reads every file of the project in `dir` that travels with it.
pub fn collect(dir: &Path) -> Result<Collected, String> {
    collect_with(dir, Oversized::Refuse)
}

/// [`collect`], choosing what a file past [`MAX_FILE`] does.
pub fn collect_with(dir: &Path, oversized: Oversized) -> Result<Collected, String> {
    let root = dir
        .canonicalize()
        .map_err(|e| format!("project directory {}: {e}", dir.display()))?;
    let mut collected = Collected::default();
    let mut total = 0u64;
    let walker = ignore::WalkBuilder::new(&root)
        .standard_filters(false)
        .hidden(true)
        .add_custom_ignore_filename(IGNORE_FILE)
        .follow_links(false)
        .filter_entry(|entry| !is_excluded(entry.path()))
        .build();
    for entry in walker {
        let entry = entry.map_err(|e| format!("project files: {e}"))?;
        let path = entry.path();
        let kind = entry.file_type();
        let is_link = kind.is_some_and(|k| k.is_symlink());
        if !(kind.is_some_and(|k| k.is_file()) || is_link) {
            continue;
        }
        let relative = relative_name(&root, path)?;
        // A link travels as the file it names, and only when that file is the project's own.
        let source = if is_link {
            match path.canonicalize() {
                Ok(target) if target.starts_with(&root) && target.is_file() => target,
                _ => {
                    return Err(format!(
                        "{relative}: a symlink to something outside the project; \
                         list it in {IGNORE_FILE} or copy the file in"
                    ));
                }
            }
        } else {
            path.to_path_buf()
        };
        let meta = std::fs::metadata(&source).map_err(|e| format!("{relative}: {e}"))?;
        if meta.len() > MAX_FILE && oversized == Oversized::Skip {
            continue;
        }
        if meta.len() > MAX_FILE {
            return Err(format!(
                "{relative} is {} bytes; a project file may have at most {MAX_FILE} \
                 (list it in {IGNORE_FILE} if the run does not need it)",
                meta.len()
            ));
        }
        total += meta.len();
        if total > MAX_TOTAL || collected.files.len() >= MAX_FILES {
            return Err(format!(
                "the project's files pass {MAX_TOTAL} bytes or {MAX_FILES} files at {relative}; \
                 list what runs do not need in {IGNORE_FILE} (or give the workflow a folder \
                 of its own)"
            ));
        }
        let bytes = std::fs::read(&source).map_err(|e| format!("{relative}: {e}"))?;
        let sha256 = digest(&bytes);
        collected.files.insert(
            relative,
            FileEntry {
                sha256: sha256.clone(),
                size: bytes.len() as u64,
                executable: meta.permissions().mode() & 0o111 != 0,
            },
        );
        collected.contents.insert(sha256, bytes);
    }
    Ok(collected)
}

/// Never part of a project, whatever the ignore files say: the daemon's own files.
fn is_excluded(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name == "wasmops.toml"
        || name == "wasmops-data"
        || (path.is_dir() && path.join("CACHEDIR.TAG").is_file())
}

fn relative_name(root: &Path, path: &Path) -> Result<String, String> {
    let relative = path
        .strip_prefix(root)
        .map_err(|_| format!("{} is outside the project", path.display()))?;
    let name = relative
        .to_str()
        .ok_or_else(|| format!("{}: file names must be UTF-8", relative.display()))?
        .to_string();
    check_name(&name)?;
    Ok(name)
}

/// A relative path that stays beneath where it is written: plain components only.
pub fn check_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("project file `{name}`: {why}"));
    if name.is_empty() || name.len() > 1024 {
        return bad("the path must have 1 to 1024 bytes");
    }
    if name.contains('\0') || name.contains('\\') {
        return bad("the path may not hold NUL or backslash");
    }
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.len() > 255 {
            return bad("every part of the path must be a plain name");
        }
    }
    Ok(())
}

/// Checks a file set received from elsewhere: names, digests and the limits.
pub fn check_set(files: &FileSet) -> Result<(), String> {
    if files.len() > MAX_FILES {
        return Err(format!(
            "a project may carry at most {MAX_FILES} files, not {}",
            files.len()
        ));
    }
    let mut total = 0u64;
    for (name, entry) in files {
        check_name(name)?;
        if entry.sha256.len() != 64 || !entry.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "project file `{name}`: `sha256` is not a hex SHA-256"
            ));
        }
        if entry.size > MAX_FILE {
            return Err(format!(
                "project file `{name}` is larger than {MAX_FILE} bytes"
            ));
        }
        total = total.saturating_add(entry.size);
    }
    if total > MAX_TOTAL {
        return Err(format!(
            "a project's files may have at most {MAX_TOTAL} bytes in all"
        ));
    }
    Ok(())
}

/// Writes `files` beneath `dest` (made afresh), reading contents with `read(sha256)`; files
/// and directories end read-only (0444/0555, executables 0555). Returns `dest`.
pub fn materialize(
    dest: &Path,
    files: &FileSet,
    mut read: impl FnMut(&str) -> Result<Vec<u8>, String>,
) -> Result<PathBuf, String> {
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    if dest.exists() {
        make_writable(dest);
        std::fs::remove_dir_all(dest).map_err(|e| io(dest, e))?;
    }
    std::fs::create_dir_all(dest).map_err(|e| io(dest, e))?;
    for (name, entry) in files {
        check_name(name)?;
        let path = dest.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let bytes = read(&entry.sha256)?;
        if digest(&bytes) != entry.sha256 {
            return Err(format!(
                "project file `{name}`: stored contents do not match"
            ));
        }
        std::fs::write(&path, &bytes).map_err(|e| io(&path, e))?;
        let mode = if entry.executable { 0o555 } else { 0o444 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io(&path, e))?;
    }
    seal_dirs(dest).map_err(|e| io(dest, e))?;
    Ok(dest.to_path_buf())
}

/// Directories beneath and at `dir` become 0555, deepest first.
fn seal_dirs(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            seal_dirs(&entry.path())?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
}

/// Undoes `seal_dirs` so a previous copy can be removed.
fn make_writable(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_the_project_but_never_the_daemons_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let write = |rel: &str, text: &str| {
            let path = p.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("project.yaml", "code: p\n");
        write("scripts/deploy.sh", "echo deploy\n");
        write("terraform/main.tf", "# tf\n");
        write("terraform/big.tfstate", "state\n");
        write(".wasmopsignore", "*.tfstate\n");
        write("wasmops.toml", "[secrets]\nx = \"y\"\n");
        write("wasmops-data/db", "sled");
        write(
            "elsewhere-data/CACHEDIR.TAG",
            "Signature: 8a477f597d28d172789f06886806bc55",
        );
        write("elsewhere-data/db", "sled");
        write(".git/config", "[core]\n");
        std::os::unix::fs::symlink(p.join("scripts/deploy.sh"), p.join("link.sh")).unwrap();
        std::fs::set_permissions(
            p.join("scripts/deploy.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();

        let collected = collect(p).unwrap();
        let names: Vec<&str> = collected.files.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "link.sh",
                "project.yaml",
                "scripts/deploy.sh",
                "terraform/main.tf"
            ]
        );
        assert!(collected.files["scripts/deploy.sh"].executable);
        assert!(!collected.files["project.yaml"].executable);

        // A link out of the project is an error that says what to do.
        std::os::unix::fs::symlink("/etc/passwd", p.join("passwd")).unwrap();
        let err = collect(p).unwrap_err();
        assert!(err.contains("passwd") && err.contains(IGNORE_FILE), "{err}");
    }

    #[test]
    fn files_are_written_read_only_and_checked() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("a/b")).unwrap();
        std::fs::write(src.path().join("a/b/run.sh"), "echo hi\n").unwrap();
        let collected = collect(src.path()).unwrap();
        let ws = tempfile::tempdir().unwrap();
        let dest = ws.path().join("projects/p");
        let read = |sha: &str| Ok(collected.contents[sha].clone());
        materialize(&dest, &collected.files, read).unwrap();
        let file = dest.join("a/b/run.sh");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "echo hi\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&file), mode(&dest.join("a"))), (0o444, 0o555));
        // Again over the sealed copy.
        materialize(&dest, &collected.files, read).unwrap();
        // Contents that do not match their digest are refused.
        let err = materialize(&dest, &collected.files, |_| Ok(b"tampered".to_vec())).unwrap_err();
        assert!(err.contains("do not match"), "{err}");
    }

    #[test]
    fn names_from_elsewhere_stay_beneath() {
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "", "a\\b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        check_name("scripts/deploy.sh").unwrap();
        let mut set = FileSet::new();
        set.insert(
            "x".into(),
            FileEntry {
                sha256: "zz".into(),
                size: 1,
                executable: false,
            },
        );
        assert!(check_set(&set).unwrap_err().contains("sha256"));
    }
}
