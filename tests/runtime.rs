//! The runtime as an operator sees it: shards pinned to cores, one SO_REUSEPORT listener
//! per shard, io_uring or the epoll fallback (forced by config or environment), the file
//! limit raised and logged, flags and environment overriding the file.

mod common;
use common::*;

/// Listening sockets on `port`, from the kernel's table.
fn listeners_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[3] == "0A" && f[1].ends_with(&format!(":{port:04X}"))
        })
        .count()
}

#[tokio::test]
async fn shards_are_pinned_threads_each_with_a_listener() {
    let s = Server::start_with("", 2);
    assert_eq!(listeners_on(s.port), 2);
    let mut pinned = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", s.pid())).unwrap() {
        let p = task.unwrap().path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap();
        if let Some(n) = comm.trim().strip_prefix("shard-") {
            let status = std::fs::read_to_string(p.join("status")).unwrap();
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap()
                .trim()
                .to_string();
            pinned.push((n.to_string(), cpus));
        }
    }
    pinned.sort();
    let cores = std::thread::available_parallelism().unwrap().get();
    let expect: Vec<(String, String)> = (0..2)
        .map(|i| (i.to_string(), (i % cores).to_string()))
        .collect();
    assert_eq!(pinned, expect);
    let log = s.log();
    assert!(log.contains("RLIMIT_NOFILE"), "{log}");
    assert_eq!(log.matches("shard started").count(), 2, "{log}");
    assert!(
        log.contains("driver=\"io_uring\"") || log.contains("driver=\"epoll (legacy)\""),
        "{log}"
    );
}

async fn chat_works(s: &Server) {
    let (a, b) = s.users_apart();
    let mut alice = Client::online(s, &a, "x", 0).await;
    let mut bob = Client::online(s, &b, "y", 0).await;
    alice
        .send(&format!(
            "<message to='{b}@{}' type='chat' id='lg'><body>over epoll</body></message>",
            alice.jid.split(['@', '/']).nth(1).unwrap()
        ))
        .await;
    assert!(
        bob.recv_until("<message")
            .await
            .contains("<body>over epoll</body>")
    );
    // Enough logins that some are handed off between shards under this driver too.
    for i in 0..12 {
        let mut c = Client::login(s, &format!("lg{i}"), None).await;
        assert!(c.ping_server("p").await.contains("type='result'"));
    }
}

#[tokio::test]
async fn epoll_fallback_forced_by_config() {
    let s = Server::start_with("[server]\nforce_legacy_driver = true\n", 2);
    assert_eq!(
        s.log().matches("driver=\"epoll (legacy)\"").count(),
        2,
        "{}",
        s.log()
    );
    chat_works(&s).await;
    assert!(s.log().contains("handoff to home shard"));
}

#[tokio::test]
async fn epoll_fallback_forced_by_environment() {
    let s = Server::start_with_env("", 2, &[("MONOIO_FORCE_LEGACY_DRIVER", "1")]);
    assert_eq!(
        s.log().matches("driver=\"epoll (legacy)\"").count(),
        2,
        "{}",
        s.log()
    );
    chat_works(&s).await;
}

#[tokio::test]
async fn domain_flag_and_secret_from_environment() {
    let dir = temp_dir();
    let cfg = dir.join("aoba.toml");
    std::fs::write(&cfg, "[server]\ndomain = \"file.example\"\n").unwrap();
    let mut child = std::process::Command::new(bin())
        .args([
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "1",
            "--domain",
            "Chat.Example",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("AOBA_JWT_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let line = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let port: u16 = line
        .split("127.0.0.1:")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/xmpp");
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
    req.headers_mut().insert(
        "Cookie",
        format!("auth_token={}", token("erin", 60)).parse().unwrap(),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("token signed with AOBA_JWT_SECRET accepted");
    let mut c = Client {
        ws,
        jid: String::new(),
    };
    c.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='chat.example' version='1.0'/>")
        .await;
    let open = c.recv().await;
    assert!(
        open.contains("from='chat.example'"),
        "the flag overrides the file: {open}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn defaults_serve_localhost_8082() {
    let dir = temp_dir();
    let empty = dir.join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let out = std::process::Command::new(bin())
        .arg("check-config")
        .arg(&empty)
        .output()
        .unwrap();
    let cfg = String::from_utf8_lossy(&out.stdout);
    assert!(
        cfg.contains("listen = \"127.0.0.1:8082\"") && cfg.contains("domain = \"localhost\""),
        "{cfg}"
    );
    assert!(cfg.contains("max_stanza_bytes = 262144"), "{cfg}");
}

/// Crash-only (issue 10): a panic on a shard ends the whole process at once, logged with
/// its place, instead of leaving a server whose other shards stall on the dead one's
/// mailbox. The panic is injected (`AOBA_FAULT_PANIC_ON`, debug builds only): no client
/// input is known to cause one.
#[tokio::test]
async fn a_panic_ends_the_process_with_the_panic_logged() {
    let mut s = Server::start_with_env("", 2, &[("AOBA_FAULT_PANIC_ON", "trigger-a-panic-here")]);
    let mut c = Client::login(&s, "alice", None).await;
    c.send("<message to='bob@localhost' type='chat'><body>trigger-a-panic-here</body></message>")
        .await;
    let status = s
        .wait_exit()
        .expect("the process kept running after a panic");
    assert!(!status.success(), "{status:?}");
    let log = s.log();
    assert!(
        log.contains("panic: injected panic")
            && log.contains("ending the process (crash-only)")
            && log.contains("src/fault.rs"),
        "{log}"
    );
}
