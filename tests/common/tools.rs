//! What the tests install and run besides the server: Debian packages (installed with
//! apt-get when missing), `npm ci` of a test directory's lockfile, and child output.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// Whether `have()` holds, after installing Debian's `package` with apt-get if it did not.
pub fn apt_ensure(package: &str, have: impl Fn() -> bool) -> bool {
    if !have() {
        let _ = Command::new("apt-get")
            .args(["update", "-q"])
            .stdin(Stdio::null())
            .status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status();
    }
    have()
}

/// `npm ci` in `dir` unless its node_modules is at least as new as its lockfile and holds
/// each of `modules`.
pub fn npm_ci(dir: &Path, modules: &[&str]) -> Result<(), String> {
    let installed = dir.join("node_modules").join(".package-lock.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = matches!(
        (modified(&installed), modified(&dir.join("package-lock.json"))),
        (Some(i), Some(l)) if i >= l
    );
    let have = modules.iter().all(|m| {
        dir.join("node_modules")
            .join(m)
            .join("package.json")
            .exists()
    });
    if fresh && have {
        return Ok(());
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run npm (Node.js and npm must be on PATH): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "npm ci in {} failed ({}):\n{}\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The last `lines` lines of `s`.
pub fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Reads a child's pipe to the end on its own thread.
pub fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    })
}

/// Waits for `child` (its stdout and stderr piped) at most `bound`, killing it past that:
/// its exit status (`None`: killed at the bound) and everything it printed on each.
pub fn wait_bounded(
    child: &mut std::process::Child,
    bound: std::time::Duration,
) -> (Option<std::process::ExitStatus>, String, String) {
    let out = drain(child.stdout.take().expect("stdout piped"));
    let err = drain(child.stderr.take().expect("stderr piped"));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for the child") {
            break Some(st);
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

/// A node scenario's verdict: `Ok` if it exited 0, else the whole story (what happened to
/// it, its stdout and stderr, and the tail of the server's log).
pub fn node_verdict(
    status: Option<std::process::ExitStatus>,
    bound: std::time::Duration,
    out: &str,
    err: &str,
    server_log: &str,
) -> Result<(), String> {
    if status.is_some_and(|st| st.success()) {
        return Ok(());
    }
    let why = match status {
        Some(st) => format!("exited with {st}"),
        None => format!("killed after {bound:?}"),
    };
    Err(format!(
        "node {why}\n--- node stdout ---\n{out}\n--- node stderr ---\n{err}\n--- aoba log (last 60 lines) ---\n{}",
        tail(server_log, 60)
    ))
}
