//! Python packages for the tests that drive a Python library (slixmpp, prometheus_client):
//! `pip install --target DIR/.deps -r DIR/requirements.txt`, wheels only, once, unless
//! `.deps` already holds exactly these requirements for this Python version. Needs Python
//! >= 3.11 with pip on PATH as `python3` (or `AOBA_PYTHON`), and PyPI for the first install.

use std::path::Path;
use std::process::{Command, Stdio};

pub fn python() -> String {
    std::env::var("AOBA_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub fn run_out(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what} (Python >= 3.11 must be on PATH): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Installs `dir/requirements.txt` into `dir/.deps` if it is not there yet; `marker` is a
/// package directory that must exist once installed. Call it once per test binary (test
/// binaries run one after another, so two never install at once).
pub fn deps(dir: &Path, marker: &str) -> Result<(), String> {
    let deps = dir.join(".deps");
    let stamp = deps.join(".installed");
    let version = run_out(
        Command::new(python()).args([
            "-c",
            "import sys; assert sys.version_info >= (3, 11), sys.version; print(sys.version)",
        ]),
        "python3 (version check)",
    )?;
    let reqs = std::fs::read_to_string(dir.join("requirements.txt"))
        .map_err(|e| format!("{}: {e}", dir.join("requirements.txt").display()))?;
    let want = format!("{version}{reqs}");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) && deps.join(marker).is_dir() {
        return Ok(());
    }
    // Into a fresh directory, then in place: an interrupted install leaves no half
    // `.deps` that looks installed.
    let tmp = dir.join(".deps.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    run_out(
        Command::new(python())
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(["--no-input", "--no-warn-script-location", "--quiet"])
            .arg("--only-binary=:all:")
            .arg("--target")
            .arg(&tmp)
            .arg("-r")
            .arg(dir.join("requirements.txt"))
            .env("PIP_ROOT_USER_ACTION", "ignore"),
        &format!("pip install -r {}", dir.join("requirements.txt").display()),
    )?;
    std::fs::write(tmp.join(".installed"), &want).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&deps);
    std::fs::rename(&tmp, &deps).map_err(|e| format!("{}: {e}", deps.display()))?;
    Ok(())
}
