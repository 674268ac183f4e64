//! A cgroup per program run, where the daemon may make one: memory (shared mappings and all)
//! and process bounds for the whole run, which rlimits (per process, per user) cannot give.
//!
//! cgroup v2 is used when the daemon's own cgroup delegates the `memory` and `pids`
//! controllers to its children; otherwise the v1 `memory` and `pids` hierarchies when they are
//! mounted and writable (hybrid hosts such as this project's CI). Without either, the rlimits
//! stay the only bound and the probe says so. The program's processes join from inside the
//! child, before it execs, so nothing it starts is ever outside.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where this process's cgroups are, found once.
#[derive(Clone, Debug)]
enum Layout {
    /// The daemon's cgroup in the unified hierarchy, with memory and pids delegated.
    V2(PathBuf),
    /// The daemon's `memory` and `pids` cgroups in the v1 hierarchies.
    V1 { memory: PathBuf, pids: PathBuf },
}

fn layout() -> Result<&'static Layout, &'static str> {
    static LAYOUT: OnceLock<Result<Layout, String>> = OnceLock::new();
    LAYOUT
        .get_or_init(find_layout)
        .as_ref()
        .map_err(String::as_str)
}

fn find_layout() -> Result<Layout, String> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let path_of = |controller: &str| {
        own.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == controller)
                .then(|| path.trim_start_matches('/').to_string())
        })
    };
    if let (Some(memory), Some(pids)) = (path_of("memory"), path_of("pids")) {
        let memory = Path::new("/sys/fs/cgroup/memory").join(memory);
        let pids = Path::new("/sys/fs/cgroup/pids").join(pids);
        // The hierarchies' roots have no limit files of their own; their cgroup.procs is
        // there everywhere.
        if memory.join("cgroup.procs").exists() && pids.join("cgroup.procs").exists() {
            return Ok(Layout::V1 { memory, pids });
        }
    }
    if let Some(path) = path_of("") {
        let dir = Path::new("/sys/fs/cgroup").join(path);
        let delegated =
            std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        let words: Vec<&str> = delegated.split_whitespace().collect();
        if words.contains(&"memory") && words.contains(&"pids") {
            return Ok(Layout::V2(dir));
        }
        return Err(format!(
            "cgroup v2 without memory and pids delegated to {} (its cgroup.subtree_control)",
            dir.display()
        ));
    }
    Err("no cgroup v2 delegation and no v1 memory and pids hierarchies".into())
}

/// Whether per-run cgroups can be made here, or why not: tried by making and removing one,
/// after sweeping away what an earlier daemon left.
pub(super) fn probe() -> Result<(), String> {
    match layout()? {
        Layout::V2(dir) => sweep(dir),
        Layout::V1 { memory, pids } => {
            sweep(memory);
            sweep(pids);
        }
    }
    let cgroup = RunCgroup::create(1 << 30, 64)?;
    drop(cgroup);
    Ok(())
}

/// One program run's cgroup (one directory per hierarchy), removed when dropped.
pub(super) struct RunCgroup {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each, for the child to write itself into.
    procs: Vec<CString>,
    events: Events,
}

/// Where the kernel counts the bounds that were hit.
enum Events {
    V2 { memory: PathBuf, pids: PathBuf },
    V1 { memory: PathBuf, pids: PathBuf },
}

impl RunCgroup {
    /// A cgroup bounded to `memory` bytes and `processes` tasks in all.
    pub(super) fn create(memory: u64, processes: u64) -> Result<RunCgroup, String> {
        let name = format!("wasmops-{:016x}", rand_id());
        let io = |what: &Path, e: std::io::Error| format!("cgroup {}: {e}", what.display());
        let write =
            |file: PathBuf, value: String| std::fs::write(&file, value).map_err(|e| io(&file, e));
        let mut cgroup = RunCgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
            events: Events::V2 {
                memory: PathBuf::new(),
                pids: PathBuf::new(),
            },
        };
        match layout()? {
            Layout::V2(parent) => {
                let dir = parent.join(&name);
                std::fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
                cgroup.dirs.push(dir.clone());
                write(dir.join("memory.max"), memory.to_string())?;
                // Swapping out would let a program use far more than its bound, slowly.
                let _ = write(dir.join("memory.swap.max"), "0".into());
                write(dir.join("pids.max"), processes.to_string())?;
                cgroup.events = Events::V2 {
                    memory: dir.join("memory.events"),
                    pids: dir.join("pids.events"),
                };
            }
            Layout::V1 { memory: m, pids: p } => {
                let (mdir, pdir) = (m.join(&name), p.join(&name));
                for dir in [&mdir, &pdir] {
                    std::fs::create_dir(dir).map_err(|e| io(dir, e))?;
                    cgroup.dirs.push(dir.clone());
                }
                write(mdir.join("memory.limit_in_bytes"), memory.to_string())?;
                let _ = write(mdir.join("memory.memsw.limit_in_bytes"), memory.to_string());
                write(pdir.join("pids.max"), processes.to_string())?;
                cgroup.events = Events::V1 {
                    memory: mdir.join("memory.oom_control"),
                    pids: pdir.join("pids.events"),
                };
            }
        }
        cgroup.procs = cgroup
            .dirs
            .iter()
            .map(|d| CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| "cgroup path with a NUL byte".to_string())?;
        Ok(cgroup)
    }

    /// The `cgroup.procs` files the child joins.
    pub(super) fn procs(&self) -> Vec<CString> {
        self.procs.clone()
    }

    /// Which bound the run hit, if the kernel counted one.
    pub(super) fn bound_hit(&self) -> Option<&'static str> {
        let count = |file: &Path, key: &str| {
            std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let (memory, pids) = match &self.events {
            Events::V2 { memory, pids } | Events::V1 { memory, pids } => (memory, pids),
        };
        if count(memory, "oom_kill ") > 0 {
            Some("its memory limit was reached ([limits] program_memory, for the whole run)")
        } else if count(pids, "max ") > 0 {
            Some("its process limit was reached ([limits] processes)")
        } else {
            None
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        // Empty once its processes are gone, which after a kill (cancel, timeout) takes the
        // kernel a moment: try now, then keep trying on a thread of its own for a while.
        let dirs: Vec<PathBuf> = std::mem::take(&mut self.dirs)
            .into_iter()
            .filter(|d| std::fs::remove_dir(d).is_err() && d.exists())
            .collect();
        if !dirs.is_empty() {
            std::thread::spawn(move || {
                for _ in 0..100 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    if dirs
                        .iter()
                        .all(|d| std::fs::remove_dir(d).is_ok() || !d.exists())
                    {
                        return;
                    }
                }
            });
        }
    }
}

/// Removes the empty run cgroups a daemon killed mid-run left behind (a cgroup with
/// processes in it cannot be removed, so a running one is never touched).
fn sweep(parent: &Path) {
    if let Ok(entries) = std::fs::read_dir(parent) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("wasmops-") {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
