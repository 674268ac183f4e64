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

/// One program run's cgroup: a slot (one directory per hierarchy) with the run's bounds
/// written into it, and the counts of bounds hit before the run, to tell this run's apart.
pub(super) struct RunCgroup {
    slot: Option<Slot>,
    baseline: (u64, u64),
}

/// Cgroup directories for one program run at a time. Making a memory cgroup costs
/// milliseconds (and removing one waits for the kernel to take it offline), so empty slots go
/// back to a small pool instead.
struct Slot {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each, for the child to write itself into.
    procs: Vec<CString>,
    /// Where the kernel writes the memory and pids limits, and counts the bounds hit.
    memory_limit: PathBuf,
    pids_limit: PathBuf,
    memory_events: PathBuf,
    pids_events: PathBuf,
}

/// Empty slots kept for the next program runs.
static POOL: std::sync::Mutex<Vec<Slot>> = std::sync::Mutex::new(Vec::new());
const POOL_SIZE: usize = 16;

impl Slot {
    fn create() -> Result<Slot, String> {
        // The daemon's pid in the name tells a later daemon's sweep whose slot it is.
        let name = format!("wasmops-{}-{:016x}", std::process::id(), rand_id());
        let io = |what: &Path, e: std::io::Error| format!("cgroup {}: {e}", what.display());
        let mut dirs = Vec::new();
        let slot = match layout()? {
            Layout::V2(parent) => {
                let dir = parent.join(&name);
                std::fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
                dirs.push(dir.clone());
                // Swapping out would let a program use far more than its bound, slowly.
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                Slot {
                    memory_limit: dir.join("memory.max"),
                    pids_limit: dir.join("pids.max"),
                    memory_events: dir.join("memory.events"),
                    pids_events: dir.join("pids.events"),
                    dirs,
                    procs: Vec::new(),
                }
            }
            Layout::V1 { memory, pids } => {
                let (mdir, pdir) = (memory.join(&name), pids.join(&name));
                for dir in [&mdir, &pdir] {
                    if let Err(e) = std::fs::create_dir(dir) {
                        for made in &dirs {
                            let _ = std::fs::remove_dir(made);
                        }
                        return Err(io(dir, e));
                    }
                    dirs.push(dir.clone());
                }
                Slot {
                    memory_limit: mdir.join("memory.limit_in_bytes"),
                    pids_limit: pdir.join("pids.max"),
                    memory_events: mdir.join("memory.oom_control"),
                    pids_events: pdir.join("pids.events"),
                    dirs,
                    procs: Vec::new(),
                }
            }
        };
        let procs = slot
            .dirs
            .iter()
            .map(|d| CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()))
            .collect::<Result<_, _>>();
        match procs {
            Ok(procs) => Ok(Slot { procs, ..slot }),
            Err(_) => {
                slot.remove_later();
                Err("cgroup path with a NUL byte".into())
            }
        }
    }

    fn bound(&self, memory: u64, processes: u64) -> Result<(), String> {
        let write = |file: &Path, value: u64| {
            std::fs::write(file, value.to_string())
                .map_err(|e| format!("cgroup {}: {e}", file.display()))
        };
        write(&self.memory_limit, memory)?;
        // v1 only: memory and swap together, where swap accounting is on.
        if let Some(dir) = self.memory_limit.parent() {
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                let _ = write(&memsw, memory);
            }
        }
        write(&self.pids_limit, processes)
    }

    /// The kernel's counts so far: memory-cgroup OOM kills, and forks refused at pids.max.
    fn counts(&self) -> (u64, u64) {
        let count = |file: &Path, key: &str| {
            std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        (
            count(&self.memory_events, "oom_kill "),
            count(&self.pids_events, "max "),
        )
    }

    fn is_empty(&self) -> bool {
        self.dirs.iter().all(|d| {
            std::fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty())
        })
    }

    /// Removes the directories once their processes are gone, which after a kill (cancel,
    /// timeout) takes the kernel a moment, on a thread of its own.
    fn remove_later(self) {
        std::thread::spawn(move || {
            for _ in 0..100 {
                if self
                    .dirs
                    .iter()
                    .all(|d| std::fs::remove_dir(d).is_ok() || !d.exists())
                {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
    }
}

impl RunCgroup {
    /// A cgroup bounded to `memory` bytes and `processes` tasks in all.
    pub(super) fn create(memory: u64, processes: u64) -> Result<RunCgroup, String> {
        let pooled = POOL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let slot = match pooled {
            Some(slot) if slot.bound(memory, processes).is_ok() => slot,
            Some(stale) => {
                stale.remove_later();
                let slot = Slot::create()?;
                slot.bound(memory, processes)?;
                slot
            }
            None => {
                let slot = Slot::create()?;
                if let Err(e) = slot.bound(memory, processes) {
                    slot.remove_later();
                    return Err(e);
                }
                slot
            }
        };
        Ok(RunCgroup {
            baseline: slot.counts(),
            slot: Some(slot),
        })
    }

    /// The `cgroup.procs` files the child joins.
    pub(super) fn procs(&self) -> Vec<CString> {
        self.slot
            .as_ref()
            .map(|s| s.procs.clone())
            .unwrap_or_default()
    }

    /// Which bound this run hit, if the kernel counted one.
    pub(super) fn bound_hit(&self) -> Option<&'static str> {
        let (oom, max) = self.slot.as_ref()?.counts();
        if oom > self.baseline.0 {
            Some("its memory limit was reached ([limits] program_memory, for the whole run)")
        } else if max > self.baseline.1 {
            Some("its process limit was reached ([limits] processes)")
        } else {
            None
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let mut pool = POOL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < POOL_SIZE && slot.is_empty() {
            pool.push(slot);
        } else {
            drop(pool);
            slot.remove_later();
        }
    }
}

/// Removes the empty run cgroups a daemon killed mid-run left behind (a cgroup with
/// processes in it cannot be removed, so a running one is never touched). Only those of
/// daemons that are gone: another daemon on this host (tests run several at once) keeps its
/// empty slots in its pool, and a slot swept away between its making and its program joining
/// would fail that program.
fn sweep(parent: &Path) {
    if let Ok(entries) = std::fs::read_dir(parent) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("wasmops-")) else {
                continue;
            };
            let owner = rest
                .split_once('-')
                .and_then(|(pid, _)| pid.parse::<u32>().ok());
            if owner.is_some_and(|pid| Path::new("/proc").join(pid.to_string()).exists()) {
                continue;
            }
            let _ = std::fs::remove_dir(entry.path());
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
