//! The run workspace as programs use it: handing it to the unprivileged user programs run as,
//! and measuring how much it holds.
//!
//! Programs of parallel steps share the workspace and may rename anything in it while the
//! daemon walks it, swapping a directory for a symlink to `/etc` between two system calls. So
//! the walks go by descriptor (rustix's `*at` calls): every name is looked up relative to a
//! directory already opened inside the workspace, never followed when it is a symlink, and
//! changed (`chownat` without following) where it was found. A swap then only changes which
//! workspace entry is seen, never reaches outside.

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Entries visited at most per walk: a workspace with more is treated as over any size bound
/// rather than walked forever.
const MAX_ENTRIES: usize = 1_000_000;

/// Opens a directory beneath `parent` without following a symlink.
fn open_dir_at(parent: &OwnedFd, name: impl rustix::path::Arg) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn open_root(root: &Path) -> Result<OwnedFd, String> {
    rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("workspace {}: {e}", root.display()))
}

/// Calls `visit(dir, name, stat)` for every entry beneath `root` (not `root` itself), depth
/// first, descending into directories by descriptor. `visit` returns false to stop.
fn walk(
    root: &Path,
    mut visit: impl FnMut(&OwnedFd, &CStr, &Stat) -> bool,
) -> Result<bool, String> {
    let mut stack = vec![open_root(root)?];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let entries = Dir::read_from(&dir).map_err(|e| format!("workspace: {e}"))?;
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            seen += 1;
            if seen > MAX_ENTRIES {
                return Err(format!("the workspace has more than {MAX_ENTRIES} entries"));
            }
            // Removed or swapped since it was listed: whatever is there now is seen next time.
            let Ok(stat) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            if !visit(&dir, name, &stat) {
                return Ok(false);
            }
            if FileType::from_raw_mode(stat.st_mode) == FileType::Directory
                && let Ok(child) = open_dir_at(&dir, name)
            {
                stack.push(child);
            }
        }
    }
    Ok(true)
}

/// Gives every entry of `root` the daemon created (owned by root) to `uid:gid`, so that
/// programs running as that user can use the files the plugin wrote. Left alone: what the
/// daemon made read-only for everyone (the run's copy of its project files, which programs
/// read but must not change), and a regular file with more than one link (it could be a host
/// file linked in, though the workspace being a mount of its own for programs already forbids
/// that).
pub(super) fn hand_over(root: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let (uid, gid) = (
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    );
    let root_fd = open_root(root)?;
    let root_stat = rustix::fs::fstat(&root_fd).map_err(|e| format!("workspace: {e}"))?;
    if root_stat.st_uid == 0 {
        rustix::fs::fchown(&root_fd, uid, gid)
            .map_err(|e| format!("cannot hand the workspace to the program user: {e}"))?;
    }
    let mut failure = None;
    walk(root, |dir, name, stat| {
        let linked_file =
            FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile && stat.st_nlink > 1;
        let read_only = stat.st_mode & 0o222 == 0;
        if stat.st_uid == 0
            && !linked_file
            && !read_only
            && let Err(e) = rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
            && e != rustix::io::Errno::NOENT
        {
            failure = Some(format!(
                "cannot hand {} to the program user: {e}",
                name.to_string_lossy()
            ));
            return false;
        }
        true
    })?;
    failure.map_or(Ok(()), Err)
}

/// The bytes held beneath `root` (allocated blocks, so sparse files count as what they use),
/// once they pass `limit`; `None` while they do not.
pub(super) fn size_beyond(root: &Path, limit: u64) -> Option<u64> {
    let mut total = 0u64;
    match walk(root, |_, _, stat| {
        total = total.saturating_add((stat.st_blocks as u64).saturating_mul(512));
        total <= limit
    }) {
        Ok(true) => None,
        Ok(false) => Some(total),
        // Too many entries to count is over any bound; an unreadable root is not measurable.
        Err(_) => Some(total.max(limit.saturating_add(1))),
    }
}

/// Removes `relative` (a file or a whole directory) beneath `root` without following a
/// symlink on the way: a program that replaced `.wasmops` with a link to a host directory
/// makes this remove nothing rather than something outside. A missing entry is not an error.
pub fn remove_beneath(root: &Path, relative: &Path) -> std::io::Result<()> {
    let components: Vec<&std::ffi::OsStr> = relative
        .components()
        .map(|c| match c {
            std::path::Component::Normal(name) => Ok(name),
            _ => Err(std::io::Error::other(
                "only plain names beneath the workspace",
            )),
        })
        .collect::<Result<_, _>>()?;
    let Some((last, parents)) = components.split_last() else {
        return Ok(());
    };
    let missing = |e: rustix::io::Errno| {
        if e == rustix::io::Errno::NOENT {
            None
        } else {
            Some(std::io::Error::from(e))
        }
    };
    let mut dir = match open_root(root) {
        Ok(fd) => fd,
        Err(_) if !root.exists() => return Ok(()),
        Err(e) => return Err(std::io::Error::other(e)),
    };
    for name in parents {
        dir = match open_dir_at(&dir, *name) {
            Ok(fd) => fd,
            Err(e) => return missing(e).map_or(Ok(()), Err),
        };
    }
    // /proc/self/fd/N names the directory opened above, not whatever its path holds now, and
    // the standard library's removal does not follow a symlink it finds beneath.
    let path = Path::new("/proc/self/fd")
        .join(std::os::fd::AsRawFd::as_raw_fd(&dir).to_string())
        .join(last);
    let removed = match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
        Ok(_) => std::fs::remove_file(&path),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn removal_never_follows_a_planted_symlink() {
        let workspace = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host.path().join("outputs")).unwrap();
        std::fs::write(host.path().join("outputs/keep"), "precious").unwrap();
        std::os::unix::fs::symlink(host.path(), workspace.path().join(".wasmops")).unwrap();
        remove_beneath(workspace.path(), Path::new(".wasmops/outputs")).unwrap_err();
        remove_beneath(workspace.path(), Path::new(".wasmops/outputs/keep")).unwrap_err();
        assert!(host.path().join("outputs/keep").exists());

        // The real thing goes, and a missing one is fine.
        std::fs::remove_file(workspace.path().join(".wasmops")).unwrap();
        std::fs::create_dir_all(workspace.path().join(".wasmops/outputs/x")).unwrap();
        std::fs::write(workspace.path().join(".wasmops/outputs/x/f"), "raw").unwrap();
        remove_beneath(workspace.path(), Path::new(".wasmops/outputs")).unwrap();
        assert!(!workspace.path().join(".wasmops/outputs").exists());
        remove_beneath(workspace.path(), Path::new(".wasmops/outputs")).unwrap();
    }

    /// A program swapping a directory for a symlink to a host directory while the daemon
    /// hands the workspace over must never get a host file chowned.
    #[test]
    fn hand_over_never_leaves_the_workspace_under_a_racing_swap() {
        let workspace = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("target"), "host file").unwrap();
        let d = workspace.path().join("d");
        let l = workspace.path().join("l");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("target"), "ours").unwrap();
        std::os::unix::fs::symlink(host.path(), &l).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let racer = {
            let stop = stop.clone();
            let (d, l) = (d.clone(), l.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &d,
                        rustix::fs::CWD,
                        &l,
                        rustix::fs::RenameFlags::EXCHANGE,
                    );
                }
            })
        };
        // Every walk looks `d` and `l` up again; the host's root-owned file is what a walk that
        // followed a swapped-in symlink would chown.
        for _ in 0..300 {
            hand_over(workspace.path(), 65533, 65533).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        racer.join().unwrap();
        let meta = std::fs::metadata(host.path().join("target")).unwrap();
        let host_dir = std::fs::metadata(host.path()).unwrap();
        assert_eq!(
            (meta.uid(), host_dir.uid()),
            (0, 0),
            "a host file was chowned"
        );
    }
}
