//! The command lines of the deployment files run the real server: `ExecStart` of
//! `deploy/aoba.service` and the `ENTRYPOINT` of `deploy/Dockerfile`, with their paths
//! pointed at a temporary configuration and data directory. Each starts, answers `/health`,
//! and stops cleanly on SIGTERM (what `systemctl stop` and `docker stop` send). The image
//! itself is not built here (no container engine, no registry).

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `argv` with `/usr/local/bin/aoba`, `/etc/aoba/aoba.toml` and `/var/lib/aoba`
/// replaced by the test binary, a test configuration and a fresh directory.
fn runs_and_stops(what: &str, argv: &[String]) {
    let dir = temp_dir();
    let cfg = dir.join("aoba.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let data = dir.join("state");
    let args: Vec<String> = argv
        .iter()
        .map(|a| match a.as_str() {
            "/etc/aoba/aoba.toml" => cfg.to_str().unwrap().to_string(),
            "/var/lib/aoba" => data.to_str().unwrap().to_string(),
            a => a.to_string(),
        })
        .collect();
    assert_eq!(args[0], "/usr/local/bin/aoba", "{what}: {argv:?}");
    assert!(
        args.contains(&cfg.to_str().unwrap().to_string())
            && args.contains(&data.to_str().unwrap().to_string()),
        "{what} names the configuration and the data directory: {argv:?}"
    );
    let mut child = Command::new(bin())
        .args(&args[1..])
        .env("AOBA_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut port = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(rest) = line.trim().strip_prefix("aoba listening on ws://") {
            port = rest.split(['/', ' ']).next().map(str::to_string);
        }
        if line.contains("aoba ready") {
            break;
        }
        line.clear();
    }
    let addr = port.unwrap_or_else(|| panic!("{what}: no listener line"));
    let mut t = std::net::TcpStream::connect(&addr).unwrap();
    t.set_read_timeout(Some(WAIT)).unwrap();
    t.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut r = String::new();
    let _ = t.read_to_string(&mut r);
    assert!(r.starts_with("HTTP/1.1 200"), "{what}: {r}");
    assert!(
        data.join("db").is_dir(),
        "{what}: the data directory is used"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert!(st.success(), "{what}: {st:?}");
}

#[test]
fn the_systemd_units_command_line_runs_the_server() {
    let unit = repo_file("deploy/aoba.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let argv: Vec<String> = exec.split_whitespace().map(str::to_string).collect();
    runs_and_stops("aoba.service ExecStart", &argv);
}

#[test]
fn the_dockerfiles_entrypoint_runs_the_server_and_exposes_the_default_ports() {
    let file = repo_file("deploy/Dockerfile");
    let entry = file
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT");
    let argv: Vec<String> = serde_json::from_str(entry).expect("ENTRYPOINT in exec form");
    runs_and_stops("Dockerfile ENTRYPOINT", &argv);
    let exposed: Vec<u16> = file
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .expect("EXPOSE")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let d = aoba::config::Config::default();
    assert!(exposed.contains(&d.server.listen.port()), "{exposed:?}");
    assert!(
        file.contains("cargo build --release --locked --bin aoba"),
        "the image builds this binary"
    );
}
