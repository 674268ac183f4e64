//! Programs that try to get out from under the daemon: leaving their process group, signalling
//! the daemon, outliving their step or a cancel. Each is tried against one running daemon,
//! which must go on serving runs afterwards.

use crate::daemon::{apply_hello_world, daemon_with_hello_world, publish, start};
use crate::daemon_support::Daemon;
use crate::support::step;
use std::time::{Duration, Instant};

/// Pids of the host's processes whose command line is exactly `sleep SECONDS`.
fn sleepers(seconds: u32) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", &format!("^sleep {seconds}$")])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The script of a step that starts a survivor of every kind it can, then tries to kill the
/// daemon and its own namespace's init.
fn escape_script(seconds: u32, then: &str) -> String {
    format!(
        "setsid sleep {seconds} > /dev/null 2>&1 < /dev/null & \
         (setsid bash -c 'sleep {seconds} & disown' > /dev/null 2>&1 &) ; \
         nohup sleep {seconds} > /dev/null 2>&1 & \
         kill -9 $PPID 2>/dev/null && echo killed-parent; kill -9 1 2>/dev/null && echo killed-init; \
         {then}"
    )
}

fn still_serves(d: &Daemon) {
    publish(
        d,
        "hello_world",
        "after",
        "steps:\n  - name: Echo\n    uses: script\n    with: { run: \"echo still here\" }\n",
    );
    let id = start(
        d,
        "/projects/hello_world/workflows/after",
        serde_json::json!({}),
    );
    let run = d.wait_status(&id, "succeeded");
    assert_eq!(step(&run, "1")["summary"], "still here");
}

#[test]
fn programs_do_not_outlive_their_step_or_a_cancel_and_cannot_touch_the_daemon() {
    let (_sb, d) = daemon_with_hello_world();
    // Distinct durations make this test's sleepers findable among the host's processes.
    let seconds = 7000 + (std::process::id() % 1000);
    let yaml = |then: &str| {
        format!(
            "steps:\n  - name: Escape\n    uses: script\n    with:\n      run: {:?}\n",
            escape_script(seconds, then)
        )
    };

    publish(&d, "hello_world", "escape", &yaml("echo finished"));
    let id = start(
        &d,
        "/projects/hello_world/workflows/escape",
        serde_json::json!({}),
    );
    let run = d.wait_status(&id, "succeeded");
    assert_eq!(step(&run, "1")["summary"], "finished", "{run:#}");
    wait_until("the step's survivors are gone", || {
        sleepers(seconds).is_empty()
    });
    let logs = d.cli(&["runs", "logs", &id]);
    assert!(
        !logs.stdout.contains("killed-parent") && !logs.stdout.contains("killed-init"),
        "{}",
        logs.stdout
    );

    // The same, cancelled while the step still runs.
    publish(&d, "hello_world", "escape-slow", &yaml("sleep 120"));
    let id = start(
        &d,
        "/projects/hello_world/workflows/escape-slow",
        serde_json::json!({}),
    );
    wait_until("the survivors have started", || {
        sleepers(seconds).len() >= 3
    });
    let cancelled = d.cli(&["runs", "cancel", &id]);
    assert_eq!(cancelled.code, 0, "{}", cancelled.stderr);
    d.wait_status(&id, "cancelled");
    wait_until("the cancelled step's survivors are gone", || {
        sleepers(seconds).is_empty()
    });

    // The daemon that ran all of that still serves runs.
    still_serves(&d);
}

#[test]
fn a_step_that_fills_the_disk_is_stopped_at_its_workspace_size() {
    let sb = crate::support::Sandbox::new();
    let config = sb.write(
        "wasmops.toml",
        "[plugins.script]\nworkspace_size = \"8MiB\"\n",
    );
    let config = config.to_str().unwrap();
    // Many files, none too large by itself: the workspace watch stops it.
    let (code, run) = sb.run_json(
        "steps:\n  - name: Fill\n    uses: script\n    with:\n      run: |\n        for i in $(seq 200); do head -c 1048576 /dev/zero > f$i; sleep 0.02; done\n",
        &["--config", config],
    );
    assert_ne!(code, 0);
    let fill = step(&run, "1");
    assert_eq!(fill["status"], "failed", "{run:#}");
    let error = fill["error"].as_str().unwrap_or_default();
    assert!(error.contains("[limits] workspace_size"), "{run:#}");
    // One file past the bound: the kernel stops the writer.
    let (code, run) = sb.run_json(
        "steps:\n  - name: Big\n    uses: script\n    with: { run: \"head -c 20000000 /dev/zero > big\" }\n",
        &["--config", config],
    );
    assert_ne!(code, 0);
    let big = step(&run, "1");
    assert_eq!(big["status"], "failed", "{run:#}");
    assert!(
        big["error"]
            .as_str()
            .unwrap_or_default()
            .contains("larger than the workspace limit"),
        "{run:#}"
    );
}

/// Every class of escape a script can try, through one running daemon that inherited a
/// descriptor from whatever started it; afterwards the same daemon still runs workflows.
#[test]
fn a_hostile_script_under_the_daemon_meets_every_bound() {
    use std::os::fd::AsRawFd;
    let sb = crate::support::Sandbox::new();
    // Outside the workspace: a file to tamper with, a UNIX socket server, and a secret file
    // the daemon's parent left open as fd 77 without close-on-exec.
    let victim = sb.write("outside/victim", "untouched");
    let socket_path = sb.path("outside/host.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let secret = sb.write("outside/inherited", "inherited-secret-77");
    let file = std::fs::File::open(&secret).unwrap();
    // SAFETY: dup2 onto a descriptor number this test owns for its duration.
    assert_eq!(unsafe { libc::dup2(file.as_raw_fd(), 77) }, 77);
    let d = Daemon::start_logged(
        sb.dir.path(),
        "[plugins.script]\nprocesses = 40\nprogram_memory = \"512MiB\"\n",
    );
    // SAFETY: closing the descriptor made above, now that the daemon has inherited it.
    unsafe { libc::close(77) };
    apply_hello_world(&d);
    let before = std::fs::metadata(&victim).unwrap();
    let script = format!(
        "v={victim}; s={sock}\n\
         cat <&77 && echo LEAK-fd || echo fd-closed\n\
         chmod 777 $v && echo LEAK-chmod || echo chmod-denied\n\
         chown 1:1 $v && echo LEAK-chown || echo chown-denied\n\
         touch -d 2001-01-01 $v && echo LEAK-touch || echo touch-denied\n\
         python3 -c \"import os; os.setxattr('$v', 'user.x', b'1')\" && echo LEAK-xattr || echo xattr-denied\n\
         python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('$s')\" && echo LEAK-socket || echo socket-denied\n\
         python3 -c \"import os\nn = 0\nfor _ in range(200):\n  try:\n    pid = os.fork()\n  except OSError:\n    break\n  if pid == 0:\n    import time; time.sleep(3); os._exit(0)\n  n += 1\nprint('forked', n)\"\n\
         python3 -c 'b = bytearray(4 << 30)' && echo LEAK-memory || echo memory-denied\n\
         echo done",
        victim = victim.display(),
        sock = socket_path.display(),
    );
    let yaml =
        format!("steps:\n  - name: Hostile\n    uses: script\n    with:\n      run: {script:?}\n");
    publish(&d, "hello_world", "hostile", &yaml);
    let id = start(
        &d,
        "/projects/hello_world/workflows/hostile",
        serde_json::json!({}),
    );
    let run = d.wait_status(&id, "succeeded");
    assert_eq!(step(&run, "1")["summary"], "done", "{run:#}");
    let logs = d.cli(&["runs", "logs", &id]).stdout;
    assert!(!logs.contains("LEAK"), "{logs}");
    assert!(!logs.contains("inherited-secret-77"), "{logs}");
    for denied in [
        "fd-closed",
        "chmod-denied",
        "chown-denied",
        "touch-denied",
        "xattr-denied",
        "socket-denied",
        "memory-denied",
    ] {
        assert!(logs.contains(denied), "{denied}: {logs}");
    }
    let forked: u32 = logs
        .lines()
        .find_map(|l| l.split("forked ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(forked < 40, "{forked} processes");
    let after = std::fs::metadata(&victim).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (before.mode(), before.uid(), before.mtime()),
        (after.mode(), after.uid(), after.mtime())
    );
    assert!(
        listener.accept().is_err(),
        "the host socket saw a connection"
    );
    still_serves(&d);
}
