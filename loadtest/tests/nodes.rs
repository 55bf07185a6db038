//! Several `--url`s end to end: the `aoba-loadtest` binary spreads its sessions over TWO real
//! Aoba servers (each `aoba serve` on 127.0.0.1:0 with its own data directory), and the test
//! checks both the loadtest's JSON report (`per_url`) and what each server counted
//! (`aoba_logins_total{result="ok"}` on its admin `/metrics`).
//!
//! The server binary is `$AOBA_BIN`, else `aoba` next to the loadtest binary in the same
//! target directory, built with `cargo build -p aoba` if it is not there yet.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const SECRET: &str = "loadtest-nodes-secret-0123456789";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "aoba-lt-nodes-{}-{}-{name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The `aoba` server binary (see the module doc).
fn aoba_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("AOBA_BIN") {
        return PathBuf::from(p);
    }
    let lt = Path::new(env!("CARGO_BIN_EXE_aoba-loadtest"));
    let bin = lt.with_file_name("aoba");
    if !bin.exists() {
        // the same profile and target directory as this test's build
        let release = lt.parent().and_then(Path::file_name) == Some("release".as_ref());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()));
        cmd.args(["build", "-p", "aoba", "--bin", "aoba", "--manifest-path"])
            .arg(&manifest);
        if release {
            cmd.arg("--release");
        }
        if let Some(target) = lt.parent().and_then(Path::parent) {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let st = cmd.status().expect("run cargo build -p aoba");
        assert!(st.success(), "cargo build -p aoba failed");
    }
    assert!(
        bin.exists(),
        "no aoba binary at {} (build it with cargo build -p aoba, or set AOBA_BIN)",
        bin.display()
    );
    bin
}

/// One `aoba serve` on ephemeral loopback ports; killed (by its handle) on drop.
struct Node {
    child: Child,
    port: u16,
    admin_port: u16,
    dir: PathBuf,
}

fn port_after(line: &str, prefix: &str) -> Option<u16> {
    line.split(prefix)
        .nth(1)?
        .split(['/', ' '])
        .next()?
        .parse()
        .ok()
}

impl Node {
    fn start(name: &str) -> Node {
        let dir = scratch(name);
        let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let mut child = Command::new(aoba_bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(["--shards", "1", "--jwt-secret", SECRET, "--data-dir"])
            .arg(dir.join("data"))
            .env_remove("AOBA_JWT_SECRET")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn aoba");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut port, mut admin_port) = (None, None);
        for l in lines.by_ref() {
            let l = l.unwrap_or_default();
            if l == "aoba ready" {
                break;
            }
            // "aoba listening on ws://ADDR/xmpp shards=N", "admin listening on http://ADDR"
            if l.starts_with("aoba listening on ws://") {
                port = port_after(&l, "ws://127.0.0.1:");
            } else if l.contains("admin listening on http://") {
                admin_port = port_after(&l, "http://127.0.0.1:");
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let log = || std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
        let (Some(port), Some(admin_port)) = (port, admin_port) else {
            panic!("aoba did not start:\n{}", log())
        };
        Node {
            child,
            port,
            admin_port,
            dir,
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/xmpp", self.port)
    }

    /// A value of the admin `/metrics` (Prometheus text): the line that starts with `key `.
    fn metric(&self, key: &str) -> f64 {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", self.admin_port)).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = tcp.read_to_string(&mut out);
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /metrics:\n{out}"))
    }

    fn logins_ok(&self) -> u64 {
        self.metric("aoba_logins_total{result=\"ok\"}") as u64
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    json: Option<serde_json::Value>,
}

/// `aoba-loadtest ARGS --jwt-secret S --no-progress --json FILE`.
fn loadtest(args: &[&str]) -> Run {
    let dir = scratch("run");
    let json = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_aoba-loadtest"))
        .args(args)
        .args(["--jwt-secret", SECRET, "--no-progress", "--json"])
        .arg(&json)
        .output()
        .expect("run aoba-loadtest");
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        json: std::fs::read_to_string(&json)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    run
}

impl Run {
    fn report(&self) -> &serde_json::Value {
        assert_eq!(self.code, Some(0), "{}\n{}", self.stdout, self.stderr);
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("no JSON report:\n{}\n{}", self.stdout, self.stderr))
    }
}

/// `[(url, sessions, logins_ok)]` of a report.
fn per_url(r: &serde_json::Value) -> Vec<(String, u64, u64)> {
    r["per_url"]
        .as_array()
        .expect("per_url")
        .iter()
        .map(|u| {
            (
                u["url"].as_str().unwrap().to_string(),
                u["sessions"].as_u64().unwrap(),
                u["logins_ok"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `hold` (in one process and over 3 worker processes) and `login` over two servers: 20
/// sessions each, no error, and each server counted its 20 logins; `chat` and `muc` over
/// the same two servers deliver everything (peers and rooms stay on one URL).
#[test]
fn sessions_spread_over_two_servers() {
    let (a, b) = (Node::start("a"), Node::start("b"));
    let (ua, ub) = (a.url(), b.url());
    let two = [("hold", "1"), ("hold", "3"), ("login", "1")];
    let mut logins = (0, 0);
    for (scenario, procs) in two {
        let mut args = vec![scenario, "--url", &ua, "--url", &ub, "--sessions", "40"];
        args.extend(["--duration", "1", "--rate", "200", "--login-rate", "200"]);
        args.extend(["--procs", procs]);
        let run = loadtest(&args);
        let r = run.report();
        let what = format!("{scenario} --procs {procs}: {}", run.stdout);
        assert_eq!(r["sessions"], 40, "{what}");
        assert_eq!(r["errors"], 0, "{what}");
        assert_eq!(r["login"]["ok"], 40, "{what}");
        assert_eq!(r["url"], format!("{ua},{ub}"), "{what}");
        assert_eq!(
            per_url(r),
            [(ua.clone(), 20, 20), (ub.clone(), 20, 20)],
            "{what}"
        );
        if scenario == "hold" {
            assert_eq!(r["held_sessions"], 40, "{what}");
            assert_eq!(r["procs"], procs.parse::<u64>().unwrap(), "{what}");
        }
        // the summary lists each URL
        assert!(
            run.stdout
                .contains(&format!("  {ua}: sessions 20  logins ok 20")),
            "{what}"
        );
        // each server saw its own 20 logins, no more
        logins = (logins.0 + 20, logins.1 + 20);
        assert_eq!((a.logins_ok(), b.logins_ok()), logins, "{what}");
    }

    // chat: 2 x 5 sessions; every message stays on its server and arrives
    let run = loadtest(&[
        "chat",
        "--url",
        &ua,
        "--url",
        &ub,
        "--sessions",
        "10",
        "--rate",
        "50",
        "--duration",
        "1",
        "--settle",
        "0.2",
        "--drain",
        "5",
    ]);
    let r = run.report();
    let what = format!("chat: {}", run.stdout);
    assert_eq!(
        per_url(r),
        [(ua.clone(), 5, 5), (ub.clone(), 5, 5)],
        "{what}"
    );
    assert_eq!(r["sent"], 50, "{what}");
    assert_eq!(r["delivered"], 50, "{what}");
    assert_eq!(
        (r["lost"].as_u64(), r["errors"].as_u64()),
        (Some(0), Some(0)),
        "{what}"
    );

    // muc: 2 rooms of 3, one on each server; everyone gets every message of their room
    let run = loadtest(&[
        "muc",
        "--url",
        &ua,
        "--url",
        &ub,
        "--rooms",
        "2",
        "--occupants",
        "3",
        "--rate",
        "20",
        "--duration",
        "1",
        "--settle",
        "0.2",
        "--drain",
        "5",
    ]);
    let r = run.report();
    let what = format!("muc: {}\n{}", run.stdout, run.stderr);
    assert_eq!(
        per_url(r),
        [(ua.clone(), 3, 3), (ub.clone(), 3, 3)],
        "{what}"
    );
    assert_eq!(r["expected"], 20 * 3, "{what}");
    assert_eq!(r["delivered"], r["expected"], "{what}");
    assert_eq!(
        (r["lost"].as_u64(), r["errors"].as_u64()),
        (Some(0), Some(0)),
        "{what}"
    );

    // what the tool refuses before connecting: a URL of the wrong transport, named
    let bad = format!("tcp://127.0.0.1:{}", b.port);
    let run = loadtest(&["login", "--url", &ua, "--url", &bad, "--sessions", "2"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains(&bad), "{}", run.stderr);
    // muc rooms that cannot be split evenly over the URLs
    let run = loadtest(&["muc", "--url", &format!("{ua},{ub}"), "--rooms", "3"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("multiple of the number of URLs"),
        "{}",
        run.stderr
    );
}

/// One URL: the report is as before, plus a `per_url` of one entry; no per-URL lines in
/// the summary.
#[test]
fn one_url_is_unchanged() {
    let a = Node::start("one");
    let ua = a.url();
    let run = loadtest(&["login", "--url", &ua, "--sessions", "6", "--rate", "100"]);
    let r = run.report();
    assert_eq!(r["url"], ua.as_str());
    assert_eq!(r["errors"], 0);
    assert_eq!(per_url(r), [(ua.clone(), 6, 6)]);
    assert!(
        run.stdout
            .starts_with(&format!("== login over ws ({ua}) ==")),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(": sessions "), "{}", run.stdout);
    assert_eq!(a.logins_ok(), 6);
}
