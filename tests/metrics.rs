//! `GET /metrics` on the admin listener during a small load: the text parses with
//! prometheus_client's parser (the reference implementation, pinned in
//! `tests/metrics/requirements.txt`), and the counters match what the load did (logins,
//! a failed login, messages, a room, an archive query, an offline message), summed over
//! the shards and per shard. The deploy files (Grafana dashboard, alert rules) use only
//! metrics that exist.

mod common;
use common::muc::{instant_room, join};
use common::python::python;
use common::*;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("metrics")
}

fn deps_ready() -> &'static Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY.get_or_init(|| common::python::deps(&dir(), "prometheus_client"))
}

/// The body of a GET on the admin port.
fn get(s: &Server, path: &str) -> (String, String) {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.admin_port.unwrap())).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

/// Samples by name and sorted `k=v` labels.
#[derive(Debug)]
struct Scrape {
    samples: HashMap<(String, String), f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    fn v(&self, name: &str, labels: &str) -> f64 {
        *self
            .samples
            .get(&(name.to_string(), labels.to_string()))
            .unwrap_or_else(|| panic!("no sample {name}{{{labels}}}"))
    }

    /// The sum of a metric's samples whose labels contain `having`.
    fn sum(&self, name: &str, having: &str) -> f64 {
        self.samples
            .iter()
            .filter(|((n, l), _)| n == name && l.contains(having))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Scrapes and parses with prometheus_client (the test fails if it does not parse).
fn scrape(s: &Server, per_shard: bool) -> Scrape {
    tokio::task::block_in_place(|| scrape_now(s, per_shard))
}

fn scrape_now(s: &Server, per_shard: bool) -> Scrape {
    if let Err(e) = deps_ready() {
        panic!("{e}");
    }
    let (head, body) = get(
        s,
        if per_shard {
            "/metrics?per_shard=1"
        } else {
            "/metrics"
        },
    );
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("text/plain; version=0.0.4"),
        "{head}"
    );
    let mut child = Command::new(python())
        .arg(dir().join("parse.py"))
        .env("PYTHONPATH", dir().join(".deps"))
        .env("PYTHONNOUSERSITE", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = std::str::from_utf8(&out.stdout).unwrap().lines();
    let fams: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let types = fams["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f[0].as_str().unwrap().into(), f[1].as_str().unwrap().into()))
        .collect();
    let mut samples = HashMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let mut labels: Vec<String> = v["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, x)| format!("{k}={}", x.as_str().unwrap()))
            .collect();
        labels.sort();
        samples.insert(
            (v["name"].as_str().unwrap().to_string(), labels.join(",")),
            v["value"].as_f64().unwrap(),
        );
    }
    Scrape { samples, types }
}

/// Waits (bounded) until a scrape satisfies `ok` (gauges are sampled once a second).
fn scrape_until(s: &Server, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let until = Instant::now() + WAIT;
    loop {
        let m = scrape(s, false);
        if ok(&m) || Instant::now() > until {
            return m;
        }
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(200)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_a_small_load_did() {
    let s = Server::start();
    let before = scrape(&s, false);
    assert_eq!(before.v("aoba_sessions", ""), 0.0);
    assert_eq!(before.types["aoba_storage_commit_seconds"], "histogram");
    assert_eq!(before.types["aoba_logins"], "counter");
    // Three users log in; one login fails (a bad token over SASL PLAIN).
    let (ua, ub) = s.users_apart();
    let mut a = Client::online(&s, &ua, "m", 0).await;
    let mut b = Client::online(&s, &ub, "m", 0).await;
    let mut c = Client::online(&s, "carol", "m", 0).await;
    let mut bad = Client::connect(&s, None).await;
    bad.open().await;
    let f = bad.auth_plain("mallory", "not-a-token").await;
    assert!(f.contains("<not-authorized/>"), "{f}");
    // Five messages a → b, each delivered.
    for i in 0..5 {
        a.send(&format!(
            "<message to='{}' type='chat' id='m{i}'><body>hi {i}</body></message>",
            b.jid
        ))
        .await;
        b.recv_until(&format!("hi {i}")).await;
    }
    // A room with a and b; two groupchat messages.
    let room = "group-00000000-0000-4000-8000-00000000abcd@conference.localhost";
    join(&mut a, room, "a", "").await;
    instant_room(&mut a, room).await;
    join(&mut b, room, "b", "").await;
    for i in 0..2 {
        a.send(&format!(
            "<message to='{room}' type='groupchat' id='g{i}'><body>room {i}</body></message>"
        ))
        .await;
        b.recv_until(&format!("room {i}")).await;
        a.recv_until(&format!("room {i}")).await;
    }
    // An archive query.
    a.send("<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='x'/></iq>")
        .await;
    a.recv_until("<fin").await;
    // carol goes offline; a message to her is stored, then delivered when she is back.
    c.send("<presence type='unavailable'/>").await;
    drop(c);
    let m = scrape_until(&s, |m| m.v("aoba_sessions", "") == 2.0);
    assert_eq!(m.v("aoba_sessions", ""), 2.0, "carol's session ended");
    a.send("<message to='carol@localhost' type='chat' id='off'><body>while away</body></message>")
        .await;
    let m = scrape_until(&s, |m| m.v("aoba_offline_stored_total", "") >= 1.0);
    assert_eq!(m.v("aoba_offline_stored_total", ""), 1.0);
    let mut c = Client::online(&s, "carol", "m", 0).await;
    c.recv_until("while away").await;

    let m = scrape_until(&s, |m| {
        m.v("aoba_muc_rooms", "") >= 1.0 && m.v("aoba_offline_delivered_total", "") >= 1.0
    });
    assert_eq!(
        m.v("aoba_logins_total", "result=ok"),
        4.0,
        "three users and carol again"
    );
    assert_eq!(m.v("aoba_logins_total", "result=failed"), 1.0);
    assert_eq!(
        m.v("aoba_auth_failures_total", "reason=not-authorized"),
        1.0
    );
    assert_eq!(m.v("aoba_sessions", ""), 3.0);
    assert_eq!(m.v("aoba_users_online", ""), 3.0);
    assert_eq!(
        m.v("aoba_connections", "transport=ws"),
        4.0,
        "a, b, carol and the bad login"
    );
    // Messages in: 5 chat + 2 groupchat + 1 to carol.
    assert_eq!(m.v("aoba_stanzas_in_total", "kind=message"), 8.0);
    assert!(m.v("aoba_stanzas_in_total", "kind=presence") >= 7.0);
    // Four binds, the room's configuration, the archive query.
    assert!(m.v("aoba_stanzas_in_total", "kind=iq") >= 6.0);
    // Out: b got 5 chats; each groupchat reached both occupants; carol got her message.
    assert!(m.v("aoba_stanzas_out_total", "kind=message") >= 5.0 + 4.0 + 1.0);
    assert_eq!(m.v("aoba_muc_rooms", ""), 1.0);
    assert_eq!(m.v("aoba_muc_occupants", ""), 2.0);
    assert_eq!(m.v("aoba_muc_messages_total", ""), 2.0);
    assert_eq!(m.v("aoba_mam_queries_total", ""), 1.0);
    assert_eq!(m.v("aoba_offline_delivered_total", ""), 1.0);
    assert!(m.v("aoba_bytes_in_total", "") > 1000.0);
    assert!(m.v("aoba_bytes_out_total", "") > 1000.0);
    assert!(m.v("aoba_storage_commit_seconds_count", "") >= 1.0);
    assert_eq!(
        m.v("aoba_storage_commit_seconds_count", ""),
        m.v("aoba_storage_commit_seconds_bucket", "le=+Inf")
    );
    assert_eq!(m.v("aoba_storage_commit_failures_total", ""), 0.0);
    assert!(m.v("process_resident_memory_bytes", "") > 1e6);
    assert_eq!(m.v("aoba_build_info", "version=0.1.0"), 1.0);
    assert_eq!(m.v("aoba_ftw_sessions", ""), 0.0);
    // Per shard: the same numbers, split by a shard label, over both shards.
    let p = scrape(&s, true);
    for (name, labels) in [
        ("aoba_logins_total", "result=ok"),
        ("aoba_stanzas_in_total", "kind=message"),
        ("aoba_sessions", ""),
    ] {
        let per: f64 = (0..2)
            .map(|i| {
                let l = if labels.is_empty() {
                    format!("shard={i}")
                } else {
                    format!("{labels},shard={i}")
                };
                p.v(name, &l)
            })
            .sum();
        assert_eq!(per, m.v(name, labels), "{name}{{{labels}}} per shard");
    }
    assert!(p.sum("aoba_mailbox_depth", "shard=") >= 0.0);
    // No label carries a JID or a room.
    for (n, l) in m.samples.keys() {
        assert!(!l.contains('@'), "{n}{{{l}}}");
    }
    drop((a, b, c, bad));
}

/// A stream error and a stanza error are counted by condition; a wrong path or method
/// gets 404 / 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_condition() {
    let s = Server::start();
    let mut a = Client::online(&s, "erin", "m", 0).await;
    // A message to a server that does not exist here: remote-server-not-found.
    a.send("<message to='x@elsewhere.example' type='chat' id='e1'><body>x</body></message>")
        .await;
    a.recv_until("id='e1'").await;
    let mut x = Client::connect(&s, None).await;
    x.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='2.0'/>")
        .await;
    x.recv_until("unsupported-version").await;
    let m = scrape_until(&s, |m| {
        m.v("aoba_stream_errors_total", "condition=unsupported-version") >= 1.0
    });
    assert_eq!(
        m.v(
            "aoba_stanza_errors_total",
            "condition=remote-server-not-found"
        ),
        1.0
    );
    assert_eq!(
        m.v("aoba_stream_errors_total", "condition=unsupported-version"),
        1.0
    );
    let (h, _) = tokio::task::block_in_place(|| get(&s, "/nope"));
    assert!(h.starts_with("HTTP/1.1 404"), "{h}");
    // A request over `admin.max_request_bytes` (the default): 400, and the listener goes on.
    let big = format!("/metrics?{}", "x".repeat(20 * 1024));
    let (h, _) = tokio::task::block_in_place(|| get(&s, &big));
    assert!(h.starts_with("HTTP/1.1 400"), "{h}");
    assert!(scrape(&s, false).v("aoba_sessions", "") >= 1.0);
    // A Content-Length that would wrap around: refused, and the listener goes on.
    let (h, _) = tokio::task::block_in_place(|| {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", s.admin_port.unwrap())).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(
            format!(
                "POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                usize::MAX
            )
            .as_bytes(),
        )
        .unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        (out.clone(), out)
    });
    assert!(h.starts_with("HTTP/1.1 400"), "{h}");
    assert!(scrape(&s, false).v("aoba_sessions", "") >= 1.0);
}

/// Every `aoba_*` metric the Grafana dashboard and the alert rules use exists.
#[test]
fn deploy_files_use_only_existing_metrics() {
    let s = Server::start_with("", 1);
    let m = scrape(&s, false);
    let mut names: std::collections::HashSet<String> = m.types.keys().cloned().collect();
    for (n, _) in m.samples.keys() {
        names.insert(n.clone());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut used = 0;
    for f in ["grafana-dashboard.json", "prometheus-alerts.yml"] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        if f.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&text).expect("the dashboard is JSON");
        }
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(at) = text[i..].find("aoba_") {
            let start = i + at;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            let name = &text[start..end];
            i = end;
            if name == "aoba_" {
                continue; // prose ("aoba_* metrics")
            }
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum");
            assert!(
                names.contains(name) || names.contains(base),
                "{f} uses {name}, which /metrics does not have"
            );
            used += 1;
        }
        assert!(
            text.contains("up{") || f.ends_with(".json"),
            "{f}: no server-down rule"
        );
    }
    assert!(used >= 10, "the deploy files use {used} metrics");
}
