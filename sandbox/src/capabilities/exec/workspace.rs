//! The run workspace as programs use it: handing it to the unprivileged user programs run as,
//! and measuring how much it holds.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Entries visited at most per walk: a workspace with more is treated as over any size bound
/// rather than walked forever.
const MAX_ENTRIES: usize = 1_000_000;

/// Gives every entry of `root` the daemon created (owned by root) to `uid:gid`, so that programs
/// running as that user can use the files the plugin wrote. Symlinks are changed themselves,
/// never followed; a regular file with more than one link is left alone (it could be a host
/// file linked in, though the workspace being a mount of its own already forbids that).
pub(super) fn hand_over(root: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(path) = stack.pop() {
        seen += 1;
        if seen > MAX_ENTRIES {
            return Err(format!(
                "the workspace has more than {MAX_ENTRIES} entries to hand to the program user"
            ));
        }
        let meta = fs::symlink_metadata(&path)
            .map_err(|e| format!("workspace {}: {e}", path.display()))?;
        let linked_file = meta.file_type().is_file() && meta.nlink() > 1;
        if meta.uid() == 0 && !linked_file {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(|e| format!("cannot hand {} to the program user: {e}", path.display()))?;
        }
        if meta.is_dir() {
            let entries =
                fs::read_dir(&path).map_err(|e| format!("workspace {}: {e}", path.display()))?;
            stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    Ok(())
}

/// The bytes held beneath `root` (allocated blocks, so sparse files count as what they use),
/// stopping as soon as it passes `limit`.
pub(super) fn size_beyond(root: &Path, limit: u64) -> Option<u64> {
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut total = 0u64;
    let mut seen = 0usize;
    while let Some(path) = stack.pop() {
        seen += 1;
        if seen > MAX_ENTRIES {
            return Some(total.max(limit.saturating_add(1)));
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue; // removed while we looked
        };
        total = total.saturating_add(meta.blocks().saturating_mul(512));
        if total > limit {
            return Some(total);
        }
        if meta.is_dir()
            && let Ok(entries) = fs::read_dir(&path)
        {
            stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    None
}
