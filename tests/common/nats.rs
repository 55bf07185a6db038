//! A real nats-server for the tests (Debian's package, installed if missing), on a free
//! loopback port, stopped by pid when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
    spawns: u32,
}

fn binary() -> &'static str {
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    READY.get_or_init(|| {
        let have = || {
            Command::new("nats-server")
                .arg("--version")
                .output()
                .is_ok()
        };
        assert!(
            super::tools::apt_ensure("nats-server", have),
            "nats-server is missing and apt-get could not install it"
        );
    });
    "nats-server"
}

impl Nats {
    pub fn start() -> Nats {
        let dir = super::temp_dir();
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut n = Nats {
                child: None,
                port,
                log: dir.join("nats"),
                spawns: 0,
            };
            if n.spawn() {
                return n;
            }
        }
        panic!("nats-server did not start");
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server on `self.port`; false if it did not come up. Ready means this
    /// child logged that it is ready (a connect alone could reach another test's server
    /// that took the same port first).
    fn spawn(&mut self) -> bool {
        self.spawns += 1;
        let path = self.log.with_extension(format!("{}.log", self.spawns));
        let log = std::fs::File::create(&path).unwrap();
        let mut child = Command::new(binary())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server");
        let until = Instant::now() + super::WAIT;
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains("Server is ready") {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Stops it (SIGKILL) and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("nats-server did not come back on port {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
