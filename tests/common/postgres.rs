//! A throwaway PostgreSQL 15 for tests (shared by the unit tests of `src/storage` and the
//! integration tests): finds Debian's binaries (installs `postgresql` with apt-get when they
//! are missing and we are root), runs `initdb` and `postgres` in a fresh temporary
//! directory on a free loopback port with its own socket directory, as the `postgres`
//! system user when we are root (PostgreSQL refuses root; a dedicated `aoba-pg` user is
//! created if there is no `postgres` user), and stops what it started, by pid.
//!
//! - `shared()`: one server per test binary, started on first use, stopped at exit (an
//!   `atexit` hook; the postmaster also gets SIGKILL if the test process dies first:
//!   `PR_SET_PDEATHSIG`, from a thread that lives as long as the process).
//! - `database()`: a fresh database on the shared server, its connection URL.
//! - `PgServer::start()`: a private server a test can stop and start again (`Drop` stops
//!   it and removes its directory, also when the test panics).
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);
static SHARED: OnceLock<PgServer> = OnceLock::new();

pub struct PgServer {
    child: Mutex<Option<Child>>,
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    /// (uid, gid) to run as, when we are root.
    user: Option<(u32, u32)>,
}

/// The shared server of this test binary.
pub fn shared() -> &'static PgServer {
    SHARED.get_or_init(|| {
        let s = PgServer::start();
        unsafe { libc::atexit(stop_shared) };
        s
    })
}

extern "C" fn stop_shared() {
    if let Some(s) = SHARED.get() {
        s.stop();
        let _ = std::fs::remove_dir_all(&s.dir);
    }
}

/// A fresh, empty database on the shared server: its URL.
pub fn database() -> String {
    shared().create_database()
}

fn bin_dir() -> PathBuf {
    let find = || -> Option<PathBuf> {
        let v15 = PathBuf::from("/usr/lib/postgresql/15/bin");
        if v15.join("postgres").exists() {
            return Some(v15);
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|p| p.join("postgres").exists())
            .collect();
        found.sort();
        found.pop()
    };
    if let Some(d) = find() {
        return d;
    }
    assert!(
        unsafe { libc::geteuid() } == 0,
        "PostgreSQL binaries not found in /usr/lib/postgresql and not root: install postgresql"
    );
    // Debian's package would start its own cluster: forbid service starts meanwhile.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists() && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok();
    if ours {
        let _ =
            std::fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    }
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if ours {
        let _ = std::fs::remove_file(policy);
    }
    assert!(ok, "apt-get install postgresql failed");
    find().expect("postgresql installed but no binaries in /usr/lib/postgresql/*/bin")
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let c = std::ffi::CString::new(name).ok()?;
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn run_as() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    if let Some(u) = lookup_user("postgres").or_else(|| lookup_user("aoba-pg")) {
        return Some(u);
    }
    let _ = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "aoba-pg",
        ])
        .status();
    Some(lookup_user("aoba-pg").expect("could not create the aoba-pg user"))
}

/// Runs `f` on a thread of its own: the synchronous client starts a runtime of its own,
/// which tokio refuses inside a `#[tokio::test]`.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl PgServer {
    /// initdb in a fresh directory, then the server, ready to accept connections.
    pub fn start() -> PgServer {
        let bin = bin_dir();
        let user = run_as();
        let dir = std::env::temp_dir().join(format!(
            "aoba-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        if let Some((uid, gid)) = user {
            for d in [dir.clone(), dir.join("sock")] {
                std::os::unix::fs::chown(&d, Some(uid), Some(gid)).unwrap();
            }
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-D", "data", "-U", "postgres", "-A", "trust", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync", "--no-instructions"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = PgServer {
            child: Mutex::new(None),
            dir,
            port: free_port(),
            bin,
            user,
        };
        s.start_again();
        s
    }

    /// (Re)starts the server on its directory and port, and waits until it answers.
    pub fn start_again(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .unwrap();
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.args(["-D", "data", "-p", &self.port.to_string(), "-k"])
            .arg(self.dir.join("sock"))
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        unsafe {
            cmd.pre_exec(|| {
                // The postmaster dies with the thread that spawned it (below: one that lives
                // as long as the test process), so a killed test run leaves nothing behind.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(cmd.spawn());
            loop {
                std::thread::park();
            }
        });
        let child = rx.recv().unwrap().expect("spawn postgres");
        *self.child.lock().unwrap() = Some(child);
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let url = self.url("postgres");
            if off_runtime(|| postgres::Client::connect(&url, postgres::NoTls).is_ok()) {
                return;
            }
            let exited = self
                .child
                .lock()
                .unwrap()
                .as_mut()
                .is_some_and(|c| !matches!(c.try_wait(), Ok(None)));
            if exited || Instant::now() > until {
                let log =
                    std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
                panic!("postgres did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server it started (fast shutdown, SIGINT; SIGKILL after 30 s), by pid.
    pub fn stop(&self) {
        let Some(mut c) = self.child.lock().ok().and_then(|mut g| g.take()) else {
            return;
        };
        unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
        let until = Instant::now() + Duration::from_secs(30);
        while matches!(c.try_wait(), Ok(None)) {
            if Instant::now() > until {
                let _ = c.kill();
                let _ = c.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        )
    }

    /// `SELECT count(*) ...` (or any one bigint) in database `db`, from any context.
    pub fn query_i64(&self, db: &str, sql: &str) -> i64 {
        off_runtime(|| self.connect(db).query_one(sql, &[]).expect(sql).get(0))
    }

    /// A superuser connection to database `db` (not from inside a tokio runtime: see
    /// `off_runtime`).
    pub fn connect(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(db), postgres::NoTls).expect("connect to test postgres")
    }

    /// Creates a fresh database; its URL.
    pub fn create_database(&self) -> String {
        let name = format!(
            "aoba_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        off_runtime(|| {
            self.connect("postgres")
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create database")
        });
        self.url(&name)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
