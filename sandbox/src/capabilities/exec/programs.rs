//! Where granted programs live: each name resolved once to an absolute path on the daemon's
//! PATH, and the read-only roots a program needs to start (its install prefix, its
//! interpreter's).

use super::ruleset::SYSTEM_EXEC;
use std::path::{Path, PathBuf};

/// Finds `program` on the host PATH.
pub fn resolve_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Read-only roots a granted program needs besides the system paths, for
/// [`super::confine::Confinement::read_only`]. `program` is the resolved path (as from
/// [`resolve_program`]).
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
        resolve_program(name)
    } else {
        Some(interpreter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
