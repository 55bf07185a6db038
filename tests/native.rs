//! A real native client library against the RFC 6120 TCP listeners (plaintext, STARTTLS and
//! XEP-0368 direct TLS verifying a test CA): slixmpp (Python), pinned
//! in `tests/native/requirements.txt` and installed once per test binary into
//! `tests/native/.deps` (git-ignored) with `python3 -m pip install --target`. Each test starts
//! its own server (plaintext c2s, two shards), logs a WebSocket user in on the other shard
//! than the slixmpp user, and runs one scenario of `tests/native/scenarios.py` against it
//! while this side drives the WebSocket user. The verdict is both: the script's exit status
//! and this side's assertions; on failure the script's output (slixmpp's stanza log) and the
//! tail of the server log are printed (with `AOBA_NATIVE_LOG=1`, on success too). Needs
//! Python >= 3.11 with pip on PATH as `python3` (or `AOBA_PYTHON`), and PyPI for the first
//! install.

mod common;
use common::muc::join;
use common::python::python;
use common::*;

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Plaintext TCP c2s (tests and loopback only), and rooms created unlocked.
const CONFIG: &str = "[c2s]\nlisten = \"127.0.0.1:0\"\nallow_plaintext = true\n\n[muc]\nauto_create_unlocked = true\n";

/// Bounds one Python run (the scenario bounds itself at 60 s; this is the backstop).
const PY_BOUND: Duration = Duration::from_secs(90);

/// Bounds this side's wait for a step of the scenario.
const STEP_BOUND: Duration = Duration::from_secs(30);

/// The slixmpp user's resource.
const RESOURCE: &str = "slix";

fn native_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("native")
}

/// `pip install --target tests/native/.deps -r requirements.txt` once per test binary,
/// unless `.deps` already holds exactly these requirements for this Python version.
fn deps_ready() -> &'static Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY.get_or_init(|| common::python::deps(&native_dir(), "slixmpp"))
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The scenario's side of the conversation with this test: its `STEP name` lines on
/// stdout, and our answers on its stdin.
struct Link {
    lines: mpsc::UnboundedReceiver<String>,
    stdin: ChildStdin,
}

impl Link {
    /// Waits (bounded) until the scenario prints `STEP name`.
    async fn step(&mut self, name: &str) {
        let want = format!("STEP {name}");
        tokio::time::timeout(STEP_BOUND, async {
            loop {
                match self.lines.recv().await {
                    Some(l) if l == want => return,
                    Some(_) => {}
                    None => panic!("the scenario ended before step {name:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the scenario did not reach step {name:?}"));
    }

    /// Writes `word` on a line of the scenario's stdin.
    fn say(&mut self, word: &str) {
        writeln!(self.stdin, "{word}")
            .and_then(|_| self.stdin.flush())
            .expect("write to the scenario");
    }
}

/// How the slixmpp user connects: plaintext TCP, STARTTLS, or XEP-0368 direct TLS (both
/// verifying the server's certificate against a test CA).
#[derive(Clone, Copy)]
enum Mode {
    Plain,
    StartTls,
    Direct,
}

impl Mode {
    /// The server (two shards) for this mode, its CA, and the scenario's environment.
    fn setup(
        self,
    ) -> (
        Server,
        Option<common::tls::TestCa>,
        Vec<(&'static str, String)>,
    ) {
        if let Mode::Plain = self {
            return (Server::start_with(CONFIG, 2), None, Vec::new());
        }
        let ca = common::tls::TestCa::new();
        let cfg = format!(
            "{}\n[c2s]\nlisten = \"127.0.0.1:0\"\nlisten_direct_tls = \"127.0.0.1:0\"\n\n[muc]\nauto_create_unlocked = true\n",
            ca.config()
        );
        let s = Server::start_with(&cfg, 2);
        let (name, port) = match self {
            Mode::StartTls => ("starttls", s.c2s_port),
            _ => ("direct", s.direct_tls_port),
        };
        let env = vec![
            ("AOBA_TLS", name.to_string()),
            ("AOBA_CA", ca.ca_file.display().to_string()),
            ("AOBA_C2S_PORT", port.unwrap().to_string()),
        ];
        (s, Some(ca), env)
    }
}

/// Runs `python3 scenarios.py name` against `s` (the slixmpp user `a`, with `env` added)
/// while `peer` drives the other side. Panics with the scenario's output and the server
/// log's tail unless the script exits 0 and `peer` completes.
async fn scenario<F, Fut>(
    s: &Server,
    name: &str,
    a: &str,
    peer_jid: &str,
    env: &[(&str, &str)],
    peer: F,
) where
    F: FnOnce(Link) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Err(e) = deps_ready() {
        panic!("{e}");
    }
    let dir = native_dir();
    let mut child = Command::new(python())
        .arg("scenarios.py")
        .arg(name)
        .current_dir(&dir)
        .env("PYTHONPATH", dir.join(".deps"))
        .env("PYTHONNOUSERSITE", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUTF8", "1")
        .env(
            "AOBA_C2S_PORT",
            s.c2s_port.expect("a c2s listener").to_string(),
        )
        .env("AOBA_DOMAIN", DOMAIN)
        .env("AOBA_USER", a)
        .env("AOBA_TOKEN", s.token(a))
        .env("AOBA_PEER", peer_jid)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} (Python must be on PATH): {e}", python()));
    // stdout: kept, and each line passed on to `Link::step`; stderr: kept.
    let out = Arc::new(Mutex::new(String::new()));
    let (tx, lines) = mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    let kept = out.clone();
    let out_thread = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            kept.lock().unwrap().push_str(&format!("{l}\n"));
            let _ = tx.send(l);
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let link = Link {
        lines,
        stdin: child.stdin.take().unwrap(),
    };
    let mut task = Some(tokio::spawn(peer(link)));
    let mut peer_result = None;
    // Wait for the script; stop it early if this side failed.
    let start = Instant::now();
    let status = loop {
        if task.as_ref().is_some_and(|t| t.is_finished()) {
            peer_result = Some(task.take().unwrap().await);
        }
        if let Some(st) = child.try_wait().expect("wait for python") {
            break Some(st);
        }
        if start.elapsed() > PY_BOUND || matches!(peer_result, Some(Err(_))) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ok = status.is_some_and(|st| st.success());
    let peer_result = match (peer_result, task) {
        (Some(r), _) => Some(r),
        (None, Some(mut t)) if ok => match tokio::time::timeout(STEP_BOUND, &mut t).await {
            Ok(r) => Some(r),
            Err(_) => {
                t.abort();
                None
            }
        },
        (None, Some(t)) => {
            t.abort();
            None
        }
        (None, None) => None,
    };
    let _ = out_thread.join();
    let err = err_thread.join().unwrap();
    let out = out.lock().unwrap().clone();
    let peer_ok = matches!(peer_result, Some(Ok(())));
    if ok && peer_ok {
        if std::env::var_os("AOBA_NATIVE_LOG").is_some() {
            eprintln!(
                "--- scenario {name}: python stdout ---\n{out}\n--- python stderr ---\n{err}"
            );
        }
        return;
    }
    let why = match status {
        Some(st) => format!("python exited with {st}"),
        None if start.elapsed() > PY_BOUND => format!("python killed after {PY_BOUND:?}"),
        None => "python stopped (the WebSocket side failed)".to_string(),
    };
    let peer_why = match peer_result {
        Some(Ok(())) => "done".to_string(),
        Some(Err(e)) if e.is_panic() => {
            let p = e.into_panic();
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into())
        }
        Some(Err(e)) => e.to_string(),
        None => "not finished (stopped)".to_string(),
    };
    panic!(
        "native scenario {name} failed: {why}\n--- WebSocket side: {peer_why}\n--- python stdout ---\n{out}\n--- python stderr (last 200 lines) ---\n{}\n--- aoba log (last 60 lines) ---\n{}",
        tail(&err, 200),
        tail(&s.log(), 60)
    );
}

/// Double quotes as single ones: slixmpp writes `"`, the server's own stanzas `'`.
fn norm(s: &str) -> String {
    s.replace('"', "'")
}

/// A room name `group-<uuid v4>` (random).
fn room() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "group-{}-{}-{}-{}-{}@conference.{DOMAIN}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Login over TCP (SASL PLAIN with the JWT, bind), presence, a roster item, a ping to the
/// server; chat both ways with a WebSocket user on the other shard.
async fn slixmpp_logs_in_and_chats_with_a_websocket_user(mode: Mode) {
    let (s, _ca, tls) = mode.setup();
    let tls: Vec<(&str, &str)> = tls.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = s.users_apart();
    let mut w = Client::online(&s, &b, "web", 0).await;
    let slix = format!("{a}@{DOMAIN}/{RESOURCE}");
    let peer = w.jid.clone();
    scenario(&s, "chat", &a, &peer, &tls, move |_| async move {
        let m = norm(&w.recv_until("hello from slixmpp").await);
        assert!(
            m.starts_with("<message")
                && m.contains(&format!("from='{slix}'"))
                && m.contains(&format!("to='{}'", w.jid))
                && m.contains("type='chat'")
                && m.contains("<body>hello from slixmpp ☃ &lt;&amp;&gt;</body>"),
            "{m}"
        );
        w.send(&format!(
            "<message to='{slix}' type='chat' id='w1'><body>hello from websocket ☃ &lt;&amp;&gt;</body></message>"
        ))
        .await;
    })
    .await;
}

/// XEP-0184: slixmpp asks a receipt of the WebSocket user and gets it; the WebSocket user
/// asks one of slixmpp, whose xep_0184 plugin sends it.
async fn slixmpp_delivery_receipts_both_ways(mode: Mode) {
    let (s, _ca, tls) = mode.setup();
    let tls: Vec<(&str, &str)> = tls.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = s.users_apart();
    let mut w = Client::online(&s, &b, "web", 0).await;
    let slix = format!("{a}@{DOMAIN}/{RESOURCE}");
    let peer = w.jid.clone();
    scenario(&s, "receipts", &a, &peer, &tls, move |_| async move {
        let m = norm(&w.recv_until("receipt please").await);
        assert!(
            m.contains(&format!("from='{slix}'"))
                && m.contains("id='slix-r1'")
                && m.contains("<request xmlns='urn:xmpp:receipts'"),
            "{m}"
        );
        w.send(&format!("<message to='{slix}' id='w-ack1'><received xmlns='urn:xmpp:receipts' id='slix-r1'/></message>")).await;
        w.send(&format!("<message to='{slix}' type='chat' id='w-r1'><body>receipt from you too</body><request xmlns='urn:xmpp:receipts'/></message>")).await;
        let r = norm(&w.recv_until("urn:xmpp:receipts").await);
        assert!(
            r.starts_with("<message")
                && r.contains(&format!("from='{slix}'"))
                && r.contains("<received xmlns='urn:xmpp:receipts' id='w-r1'"),
            "{r}"
        );
        w.send(&format!(
            "<message to='{slix}' type='chat' id='w-bye'><body>bye</body></message>"
        ))
        .await;
    })
    .await;
}

/// XEP-0045: slixmpp joins the room a WebSocket user is in; groupchat both ways; it leaves.
async fn slixmpp_groupchat_with_a_websocket_occupant(mode: Mode) {
    let (s, _ca, tls) = mode.setup();
    let tls: Vec<(&str, &str)> = tls.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = s.users_apart();
    let mut w = Client::online(&s, &b, "web", 0).await;
    let room = room();
    let got = join(&mut w, &room, "web", "").await;
    assert!(got.iter().all(|m| !m.contains("type='error'")), "{got:?}");
    let peer = w.jid.clone();
    let mut env = vec![("AOBA_ROOM", room.as_str()), ("AOBA_PEER_NICK", "web")];
    env.extend(tls.iter().copied());
    let r = room.clone();
    scenario(&s, "muc", &a, &peer, &env, move |_| async move {
        let occupant = format!("from='{r}/{RESOURCE}'");
        let p = norm(&w.recv_until(&occupant).await);
        assert!(p.starts_with("<presence") && !p.contains("type="), "{p}");
        let m = norm(&w.recv_until("hello room from slixmpp").await);
        assert!(
            m.contains(&occupant)
                && m.contains("type='groupchat'")
                && m.contains(&format!("to='{}'", w.jid)),
            "{m}"
        );
        w.send(&format!("<message to='{r}' type='groupchat' id='w-g1'><body>hello room from websocket</body></message>")).await;
        // Our own message reflected, then slixmpp leaves.
        w.recv_until("id='w-g1'").await;
        let left = norm(&w.recv_until(&occupant).await);
        assert!(
            left.starts_with("<presence") && left.contains("type='unavailable'"),
            "{left}"
        );
    })
    .await;
}

/// XEP-0198: slixmpp enables resumption, its TCP connection drops without
/// `</stream:stream>`, the WebSocket user sends a message meanwhile, slixmpp reconnects
/// and resumes: that message reaches it once, and the message it sent just before the
/// drop (read by the server, not yet acknowledged to slixmpp) reaches the WebSocket user once.
async fn slixmpp_resumes_a_dropped_tcp_session(mode: Mode) {
    let (s, _ca, tls) = mode.setup();
    let tls: Vec<(&str, &str)> = tls.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = s.users_apart();
    let mut w = Client::online(&s, &b, "web", 0).await;
    let slix = format!("{a}@{DOMAIN}/{RESOURCE}");
    let peer = w.jid.clone();
    scenario(&s, "sm", &a, &peer, &tls, move |mut link| async move {
        let m = norm(&w.recv_until("before the drop").await);
        assert!(m.contains(&format!("from='{slix}'")), "{m}");
        link.step("dropped").await;
        w.send(&format!(
            "<message to='{slix}' type='chat' id='w-away'><body>while away</body></message>"
        ))
        .await;
        link.say("sent");
        // Everything up to slixmpp's "resumed": no second "before the drop".
        let mut before = 1;
        loop {
            let m = w.recv().await;
            if m.contains("<body>before the drop</body>") {
                before += 1;
            }
            if m.contains("<body>resumed</body>") {
                assert!(m.contains(&format!("from='{slix}'")), "{m}");
                break;
            }
        }
        assert_eq!(
            before, 1,
            "'before the drop' reached the WebSocket user {before} times"
        );
        w.send(&format!(
            "<message to='{slix}' type='chat' id='w-bye'><body>bye</body></message>"
        ))
        .await;
    })
    .await;
}

#[tokio::test]
async fn slixmpp_logs_in_and_chats_with_a_websocket_user_plaintext() {
    slixmpp_logs_in_and_chats_with_a_websocket_user(Mode::Plain).await;
}

#[tokio::test]
async fn slixmpp_chat_over_starttls() {
    slixmpp_logs_in_and_chats_with_a_websocket_user(Mode::StartTls).await;
}

#[tokio::test]
async fn slixmpp_chat_over_direct_tls() {
    slixmpp_logs_in_and_chats_with_a_websocket_user(Mode::Direct).await;
}

#[tokio::test]
async fn slixmpp_delivery_receipts_both_ways_plaintext() {
    slixmpp_delivery_receipts_both_ways(Mode::Plain).await;
}

#[tokio::test]
async fn slixmpp_receipts_over_starttls() {
    slixmpp_delivery_receipts_both_ways(Mode::StartTls).await;
}

#[tokio::test]
async fn slixmpp_receipts_over_direct_tls() {
    slixmpp_delivery_receipts_both_ways(Mode::Direct).await;
}

#[tokio::test]
async fn slixmpp_groupchat_with_a_websocket_occupant_plaintext() {
    slixmpp_groupchat_with_a_websocket_occupant(Mode::Plain).await;
}

#[tokio::test]
async fn slixmpp_muc_over_starttls() {
    slixmpp_groupchat_with_a_websocket_occupant(Mode::StartTls).await;
}

#[tokio::test]
async fn slixmpp_muc_over_direct_tls() {
    slixmpp_groupchat_with_a_websocket_occupant(Mode::Direct).await;
}

#[tokio::test]
async fn slixmpp_resumes_a_dropped_tcp_session_plaintext() {
    slixmpp_resumes_a_dropped_tcp_session(Mode::Plain).await;
}

#[tokio::test]
async fn slixmpp_sm_over_starttls() {
    slixmpp_resumes_a_dropped_tcp_session(Mode::StartTls).await;
}

#[tokio::test]
async fn slixmpp_sm_over_direct_tls() {
    slixmpp_resumes_a_dropped_tcp_session(Mode::Direct).await;
}
