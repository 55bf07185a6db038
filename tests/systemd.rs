//! systemd's notify protocol through a real datagram socket standing in for systemd:
//! `READY=1` after the listeners are up, `WATCHDOG=1` every half `WATCHDOG_USEC` while the
//! shards answer, `STOPPING=1` on SIGTERM.

mod common;
use common::*;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the bound");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn ready_watchdog_and_stopping() {
    let dir = temp_dir();
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let p = path.to_str().unwrap();
    let mut s = Server::start_env(
        "",
        2,
        &["--jwt-secret", SECRET],
        &[("NOTIFY_SOCKET", p), ("WATCHDOG_USEC", "200000")],
    );
    let first = next(&sock);
    assert!(first.starts_with("READY=1"), "{first}");
    // The watchdog is fed, several times, while both shards answer.
    let until = Instant::now() + WAIT;
    let mut fed = 0;
    while fed < 3 {
        assert!(Instant::now() < until, "the watchdog was fed {fed} times");
        if next(&sock) == "WATCHDOG=1" {
            fed += 1;
        }
    }
    assert!(s.terminate().is_some_and(|st| st.success()));
    let mut stopping = false;
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 512];
    while let Ok(n) = sock.recv(&mut buf) {
        stopping |= &buf[..n] == b"STOPPING=1";
    }
    assert!(stopping, "no STOPPING=1 on SIGTERM");
}

/// A stuck shard stops the watchdog's feeding (systemd would restart the process); when
/// it moves again, the feeding resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_shard_starves_the_watchdog() {
    let dir = temp_dir();
    let path = dir.join("notify.sock");
    let stall = dir.join("stall");
    std::fs::write(&stall, "").unwrap();
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let s = Server::start_env(
        "",
        2,
        &["--jwt-secret", SECRET],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
            ("AOBA_FAULT_STALL_ON", "stall-here"),
            ("AOBA_FAULT_STALL_FILE", stall.to_str().unwrap()),
        ],
    );
    assert!(next(&sock).starts_with("READY=1"));
    let mut c = Client::online(&s, "stuck", "r", 0).await;
    c.send("<message to='nobody@localhost' id='stall-here'><body>x</body></message>")
        .await;
    let until = Instant::now() + WAIT;
    while !s.log().contains("a shard did not answer") {
        assert!(
            Instant::now() < until,
            "the watchdog did not notice the stuck shard"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What was sent before the stall is drained; while the shard is stuck nothing comes.
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    while sock.recv(&mut buf).is_ok() {}
    sock.set_nonblocking(false).unwrap();
    std::fs::remove_file(&stall).unwrap();
    // Fed again once the shard moves.
    let fed = tokio::task::spawn_blocking(move || next(&sock))
        .await
        .unwrap();
    assert_eq!(fed, "WATCHDOG=1");
    drop(c);
}
