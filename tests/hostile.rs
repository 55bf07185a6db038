//! Hostile clients against a real server with its DEFAULT limits: slowloris upgrades,
//! WebSocket frame abuse (RFC 6455), XML bombs (RFC 6120 §11), JID edge cases (RFC 7622),
//! SASL and JWT abuse, a reconnect storm with and without XEP-0198, and clients that make
//! the server write without ever reading.
//!
//! After every attack: the process is alive, its RSS is back near where it was before
//! (generous slack: +64 MiB or 2x), and a fresh pair of users can log in and talk.
//! No test asserts a timing; every loop is bounded in count and in time. Where a config
//! value is changed it is LOWERED, only to keep the test short, and says so.

mod common;
use common::*;
use futures_util::SinkExt;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::Message;

// ---------------------------------------------------------------------------------------
// Process health: alive, RSS, and a fresh pair of users who can still talk.

fn proc_status(s: &Server) -> String {
    std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap_or_default()
}

fn log_tail(s: &Server) -> String {
    let log = s.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn assert_alive(s: &Server) {
    let st = proc_status(s);
    let state = st
        .lines()
        .find(|l| l.starts_with("State:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("gone");
    assert!(
        !matches!(state, "Z" | "X" | "gone"),
        "server process is not alive (state {state}); log tail:\n{}",
        log_tail(s)
    );
}

/// The server's resident set size in KiB.
fn rss_kib(s: &Server) -> u64 {
    proc_status(s)
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS: server gone? log tail:\n{}", log_tail(s)))
}

/// What RSS may be after an attack: +64 MiB or twice the baseline, whichever is bigger.
fn rss_bound(base: u64) -> u64 {
    (base + 64 * 1024).max(2 * base)
}

static FRESH: AtomicUsize = AtomicUsize::new(0);

/// Two fresh sessions (users on different shards) exchange a message each way.
async fn healthy(s: &Server) {
    let n = FRESH.fetch_add(1, Ordering::Relaxed);
    let (a, b) = s.users_apart();
    let mut alice = Client::online(s, &a, &format!("h{n}"), 0).await;
    let mut bob = Client::online(s, &b, &format!("h{n}"), 0).await;
    let id = format!("hello{n}");
    alice
        .send(&format!(
            "<message to='{}' type='chat' id='{id}'><body>{id}</body></message>",
            bob.jid
        ))
        .await;
    let m = bob.recv_until(&format!("id='{id}'")).await;
    assert!(m.contains(&format!("<body>{id}</body>")), "{m}");
    bob.send(&format!(
        "<message to='{}' type='chat' id='re{id}'><body>re</body></message>",
        alice.jid
    ))
    .await;
    alice.recv_until(&format!("id='re{id}'")).await;
    for c in [&mut alice, &mut bob] {
        c.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
            .await;
        c.expect_end().await;
    }
}

/// The baseline: after one warm-up exchange, so lazily built state is counted.
async fn baseline(s: &Server) -> u64 {
    healthy(s).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    rss_kib(s)
}

/// After an attack whose connections are closed: alive, RSS back near the baseline
/// (polled for a bounded while), and still serving.
async fn check_after(s: &Server, base: u64, what: &str) {
    assert_alive(s);
    let bound = rss_bound(base);
    let start = Instant::now();
    let mut rss = rss_kib(s);
    while rss > bound && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rss = rss_kib(s);
    }
    assert!(
        rss <= bound,
        "{what}: RSS {} MiB did not come back near the baseline {} MiB",
        rss / 1024,
        base / 1024
    );
    healthy(s).await;
    assert_alive(s);
    eprintln!("{what}: RSS before {} KiB, after {rss} KiB", base);
}

/// Open connections, the /health request itself excluded (as in tests/loss.rs).
async fn connections(s: &Server) -> u64 {
    let out = s.http_get("/health").await;
    out.split("\"connections\":")
        .nth(1)
        .and_then(|r| r.split('}').next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX)
        .saturating_sub(1)
}

/// Polls /health (bounded) until at most `n` connections remain; returns the last count.
async fn connections_down_to(s: &Server, n: u64) -> u64 {
    let start = Instant::now();
    loop {
        let c = connections(s).await;
        if c <= n || start.elapsed() > Duration::from_secs(15) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Raw WebSocket helpers (frames tungstenite will not send).

const K: [u8; 4] = [0x5a, 0x13, 0xc7, 0x81];

/// One client frame, masked with `K`, any payload length (64-bit lengths included).
fn wsframe(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![b0];
    let n = payload.len();
    if n < 126 {
        v.push(0x80 | n as u8);
    } else if n <= 0xFFFF {
        v.push(0x80 | 126);
        v.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        v.push(0x80 | 127);
        v.extend_from_slice(&(n as u64).to_be_bytes());
    }
    v.extend_from_slice(&K);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ K[i % 4]));
    v
}

/// A masked header announcing a 64-bit `len`, with no payload behind it.
fn header64(b0: u8, len: u64) -> Vec<u8> {
    let mut v = vec![b0, 0x80 | 127];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&K);
    v
}

async fn raw_write(r: &mut Raw, bytes: &[u8]) -> std::io::Result<()> {
    r.tcp.write_all(bytes).await
}

async fn raw_text(r: &mut Raw, s: &str) {
    raw_write(r, &wsframe(0x81, s.as_bytes())).await.unwrap();
}

/// Text frames until one contains `pat`.
async fn raw_until(r: &mut Raw, pat: &str) -> String {
    loop {
        let (b0, p) = r
            .read_frame()
            .await
            .unwrap_or_else(|| panic!("connection ended while waiting for {pat}"));
        let t = String::from_utf8_lossy(&p).to_string();
        match b0 & 0x0F {
            0x1 if t.contains(pat) => return t,
            0x8 => panic!("closed ({:?}) while waiting for {pat}", p),
            _ => {}
        }
    }
}

/// Reads to the end of the connection: (text frames, close code if a close frame came).
async fn raw_end(r: &mut Raw) -> (Vec<String>, Option<u16>) {
    let mut texts = Vec::new();
    let mut code = None;
    while let Some((b0, p)) = r.read_frame().await {
        match b0 & 0x0F {
            0x1 => texts.push(String::from_utf8_lossy(&p).to_string()),
            0x8 if p.len() >= 2 => code = Some(u16::from_be_bytes([p[0], p[1]])),
            0x8 => code = Some(1005),
            _ => {}
        }
    }
    (texts, code)
}

/// Expects a WebSocket close with `code` and then the end of the TCP connection.
async fn raw_expect_close(r: &mut Raw, code: u16, what: &str) {
    let (texts, got) = raw_end(r).await;
    assert_eq!(got, Some(code), "{what}: close code (texts {texts:?})");
}

/// Expects `<stream:error>` with `cond` (then the connection ends).
async fn raw_expect_stream_error(r: &mut Raw, cond: &str, what: &str) {
    let (texts, _) = raw_end(r).await;
    assert!(
        texts.iter().any(|t| t.contains("<stream:error")
            && t.contains(&format!(
                "<{cond} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            ))),
        "{what}: expected stream error {cond}, got {texts:?}"
    );
}

/// Cookie login over a raw socket; returns it and the bound full JID.
async fn raw_login(s: &Server, user: &str, resource: &str) -> (Raw, String) {
    let r = Raw::connect(s, Some(&s.token(user))).await;
    raw_login_on(r, user, resource).await
}

/// The rest of a cookie login on a raw socket upgraded with `user`'s cookie.
async fn raw_login_on(mut r: Raw, user: &str, resource: &str) -> (Raw, String) {
    raw_text(&mut r, OPEN).await;
    raw_until(&mut r, "<stream:features").await;
    raw_text(
        &mut r,
        &format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
            b64(&format!("\0{user}\0x"))
        ),
    )
    .await;
    raw_until(&mut r, "<success").await;
    raw_text(&mut r, OPEN).await;
    raw_until(&mut r, "<stream:features").await;
    raw_text(&mut r, &format!("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>")).await;
    let b = raw_until(&mut r, "bind1").await;
    let jid = between(&b, "<jid>", "</jid>").to_string();
    (r, jid)
}

/// A raw upgraded socket whose receive buffer is small, so that what the server writes
/// and we never read piles up on the server's side quickly.
async fn raw_small_rcvbuf(s: &Server, cookie: Option<&str>) -> Raw {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(1024).unwrap();
    // A small MSS keeps the server's send buffer small too (Linux sizes it from the
    // MSS, which on loopback is otherwise 64 KiB).
    socket2::SockRef::from(&sock).set_tcp_mss(128).unwrap();
    let tcp = sock.connect(([127, 0, 0, 1], s.port).into()).await.unwrap();
    Raw::upgrade(tcp, cookie).await
}

// ---------------------------------------------------------------------------------------
// 1. Slowloris.

const UPGRADE: &str = "GET /xmpp HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nX-Slow: ";

/// Trickles `bytes` a few at a time; stops quietly if the server closes.
async fn trickle(tcp: &mut tokio::net::TcpStream, bytes: &[u8], chunk: usize, pause_ms: u64) {
    for c in bytes.chunks(chunk) {
        if tcp.write_all(c).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// 150 connections trickle an HTTP upgrade that never ends, 50 upgraded ones trickle a
/// WebSocket frame that never completes; logins keep working meanwhile, and when they go
/// the server forgets them. With the time to authenticate lowered (to keep the test
/// short), the server also ends trickling connections itself.
#[tokio::test]
async fn slowloris_upgrades_and_frames() {
    let s = Server::start();
    let base = baseline(&s).await;
    let token = s.token("slow");
    let mut tasks = Vec::new();
    for i in 0..200usize {
        let port = s.port;
        let cookie = token.clone();
        tasks.push(async move {
            let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            if i < 150 {
                // A request that grows slowly and never reaches its blank line.
                let mut req = UPGRADE.as_bytes().to_vec();
                req.extend(std::iter::repeat_n(b'a', 60 + i % 40));
                trickle(&mut tcp, &req, 3, 25 + (i % 7) as u64).await;
            } else {
                let req = format!(
                    "GET /xmpp HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nCookie: auth_token={cookie}\r\n\r\n"
                );
                tcp.write_all(req.as_bytes()).await.unwrap();
                // A 60 KB text frame announced, its payload sent a few bytes at a time.
                let mut f = wsframe(0x81, &vec![b' '; 60_000]);
                f.truncate(200);
                trickle(&mut tcp, &f, 3, 25 + (i % 7) as u64).await;
            }
            tcp
        });
    }
    let attack = futures_util::future::join_all(tasks);
    let during = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        healthy(&s).await; // while 200 connections trickle
        healthy(&s).await;
    };
    let (held, ()) = timeout(Duration::from_secs(30), async {
        tokio::join!(attack, during)
    })
    .await
    .expect("slowloris phase bounded");
    // All of them are still held open by the server (nothing was refused wrongly)...
    let open = connections(&s).await;
    assert!(
        open >= 200,
        "{open} connections open, expected the 200 slow ones"
    );
    healthy(&s).await;
    drop(held);
    // ...and forgotten once they go.
    assert_eq!(connections_down_to(&s, 0).await, 0);
    check_after(&s, base, "slowloris").await;

    // The server ends a trickling connection itself once the time to authenticate is over
    // (auth_timeout_ms lowered from 30 s to 1 s to keep the test short).
    let s = Server::start_with("[auth]\nauth_timeout_ms = 1000\n", 2);
    let mut ends = Vec::new();
    for i in 0..40usize {
        let port = s.port;
        ends.push(async move {
            let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let mut bytes = if i % 2 == 0 {
                let mut r = UPGRADE.as_bytes().to_vec();
                r.extend(std::iter::repeat_n(b'a', 2000));
                r
            } else {
                let mut r = b"GET /xmpp HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n".to_vec();
                // Upgraded without a cookie: the stream never authenticates.
                let mut f = wsframe(0x81, &vec![b' '; 60_000]);
                f.truncate(2000);
                r.extend(f);
                r
            };
            bytes.truncate(2000);
            // Keeps sending for up to ~8 s; the server must end it well before.
            let mut ended = false;
            for c in bytes.chunks(2) {
                if tcp.write_all(c).await.is_err() {
                    ended = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(8)).await;
            }
            if !ended {
                // Whatever was written, the server has closed by now: EOF or reset.
                let mut sink = Vec::new();
                ended = timeout(WAIT, tcp.read_to_end(&mut sink)).await.is_ok();
            }
            ended
        });
    }
    let ended = timeout(
        Duration::from_secs(30),
        futures_util::future::join_all(ends),
    )
    .await
    .expect("bounded");
    assert!(ended.iter().all(|e| *e), "{ended:?}");
    assert_eq!(connections_down_to(&s, 0).await, 0);
    healthy(&s).await;
    assert_alive(&s);
}

// ---------------------------------------------------------------------------------------
// 2. WebSocket frame abuse.

/// Each malformed frame on its own connection gets the RFC 6455 close code and the end of
/// the connection; a fragmented message in 10,000 one-byte pieces is one stanza.
#[tokio::test]
async fn websocket_frame_abuse() {
    let s = Server::start();
    let base = baseline(&s).await;
    let t = s.token("framer");
    let text = b"<message to='bob@localhost'/>";
    let mut cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "unmasked text frame",
            {
                let mut v = vec![0x81, text.len() as u8];
                v.extend_from_slice(text);
                v
            },
            1002,
        ),
        (
            "RSV1 set",
            {
                let mut v = wsframe(0x81, text);
                v[0] |= 0x40;
                v
            },
            1002,
        ),
        (
            "RSV2 set",
            {
                let mut v = wsframe(0x81, text);
                v[0] |= 0x20;
                v
            },
            1002,
        ),
        (
            "RSV3 set",
            {
                let mut v = wsframe(0x81, text);
                v[0] |= 0x10;
                v
            },
            1002,
        ),
        ("reserved data opcode 0x3", wsframe(0x83, text), 1002),
        ("reserved control opcode 0xB", wsframe(0x8B, b""), 1002),
        ("length 2^63 (top bit set)", header64(0x81, 1 << 63), 1002),
        (
            "length 2^64-1 (top bit set)",
            header64(0x81, u64::MAX),
            1002,
        ),
        ("ping with length 2^63", header64(0x89, 1 << 63), 1002),
        ("orphan continuation", wsframe(0x80, text), 1002),
        ("orphan non-final continuation", wsframe(0x00, text), 1002),
        (
            "text inside a fragmented text",
            {
                let mut v = wsframe(0x01, b"<message ");
                v.extend(wsframe(0x81, text));
                v
            },
            1002,
        ),
        ("binary frame", wsframe(0x82, text), 1003),
        ("fragmented binary frame", wsframe(0x02, text), 1003),
        ("ping with 126 bytes", wsframe(0x89, &[b'p'; 126]), 1002),
        ("pong with 200 bytes", wsframe(0x8A, &[b'p'; 200]), 1002),
        (
            "close with 126 bytes",
            {
                let mut p = 1000u16.to_be_bytes().to_vec();
                p.extend([b'r'; 124]);
                wsframe(0x88, &p)
            },
            1002,
        ),
        ("fragmented ping", wsframe(0x09, b"a"), 1002),
        (
            "fragmented close",
            wsframe(0x08, &1000u16.to_be_bytes()),
            1002,
        ),
        ("fragmented pong", wsframe(0x0A, b""), 1002),
        (
            "not UTF-8",
            wsframe(0x81, b"<message>\xff\xfe</message>"),
            1007,
        ),
        (
            "overlong UTF-8",
            wsframe(0x81, b"<message>\xc0\xaf</message>"),
            1007,
        ),
        (
            "UTF-8 surrogate",
            wsframe(0x81, b"<message>\xed\xa0\x80</message>"),
            1007,
        ),
        (
            "UTF-8 above U+10FFFF",
            wsframe(0x81, b"<message>\xf4\x90\x80\x80</message>"),
            1007,
        ),
        (
            "truncated UTF-8 at the end",
            wsframe(0x81, b"<message/>\xe2\x82"),
            1007,
        ),
        (
            "invalid UTF-8 across fragments",
            {
                let mut v = wsframe(0x01, b"<message><body>\xc3");
                v.extend(wsframe(0x80, b"(</body></message>"));
                v
            },
            1007,
        ),
    ];
    // A ping inside a fragmented message is fine, and pings are answered; then a bad one.
    cases.push((
        "fragmented ping after a good ping",
        {
            let mut v = wsframe(0x89, b"ok");
            v.extend(wsframe(0x09, b"a"));
            v
        },
        1002,
    ));
    for (what, bytes, code) in cases {
        let mut r = Raw::connect(&s, Some(&t)).await;
        let _ = raw_write(&mut r, &bytes).await;
        raw_expect_close(&mut r, code, what).await;
    }
    // The largest legal 64-bit length is over the stanza limit: policy-violation.
    for len in [(1u64 << 63) - 1, 1 << 32, 256 * 1024 + 1] {
        let mut r = Raw::connect(&s, Some(&t)).await;
        let _ = raw_write(&mut r, &header64(0x81, len)).await;
        raw_expect_stream_error(&mut r, "policy-violation", &format!("length {len}")).await;
    }

    // A valid character split across two fragments is fine.
    let (mut bob, bob_jid) = raw_login(&s, "bob", "frag").await;
    let (mut alice, _) = raw_login(&s, "alice", "frag").await;
    let msg = format!("<message to='{bob_jid}' id='split'><body>caf\u{e9}</body></message>");
    let cut = msg.find('\u{e9}').unwrap() + 1; // inside the two-byte é
    let mut v = wsframe(0x01, &msg.as_bytes()[..cut]);
    v.extend(wsframe(0x80, &msg.as_bytes()[cut..]));
    raw_write(&mut alice, &v).await.unwrap();
    let m = raw_until(&mut bob, "id='split'").await;
    assert!(m.contains("caf\u{e9}"), "{m}");

    // 10,000 one-byte fragments (with pings among them): one stanza, or a clean close.
    let head = format!("<message to='{bob_jid}' type='chat' id='frag10k'><body>");
    let tail = "</body></message>";
    let msg = format!(
        "{head}{}{tail}",
        "f".repeat(10_000 - head.len() - tail.len())
    );
    assert_eq!(msg.len(), 10_000);
    let mut v = Vec::with_capacity(80_000);
    for (i, b) in msg.bytes().enumerate() {
        let op = match i {
            0 => 0x01,
            9_999 => 0x80,
            _ => 0x00,
        };
        v.extend(wsframe(op, &[b]));
        if i % 1000 == 500 {
            v.extend(wsframe(0x89, b"mid"));
        }
    }
    raw_write(&mut alice, &v).await.unwrap();
    raw_text(
        &mut alice,
        "<iq type='get' id='after-frag' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    let mut pongs = 0;
    let accepted = loop {
        let Some((b0, p)) = alice.read_frame().await else {
            break false;
        };
        let t = String::from_utf8_lossy(&p).to_string();
        match b0 & 0x0F {
            0xA => pongs += 1,
            0x1 if t.contains("id='after-frag'") => break true,
            0x1 if t.contains("<stream:error") => {
                panic!("10,000 fragments refused with a stream error: {t}")
            }
            0x8 => {
                // A clean close is acceptable too.
                let code = u16::from_be_bytes([p[0], p[1]]);
                assert!(matches!(code, 1008 | 1009 | 1000), "close {code}");
                break false;
            }
            _ => {}
        }
    };
    if accepted {
        assert_eq!(pongs, 10, "each ping among the fragments answered");
        let m = raw_until(&mut bob, "id='frag10k'").await;
        assert!(m.contains(&"f".repeat(9_000)), "reassembled in order");
    }
    drop((alice, bob));
    check_after(&s, base, "frame abuse").await;
}

/// RFC 6455 §5.5.1 and §7.4: a close frame's body is empty or a 2-byte code (and UTF-8);
/// codes 1005, 1006 and 1015 and unassigned ones are never valid on the wire. The answer
/// to a bad one is 1002 (1007 for bad UTF-8), never an echo of the bad code.
#[tokio::test]
async fn websocket_close_frame_abuse() {
    let s = Server::start();
    let t = s.token("closer");
    let mut cases: Vec<(String, Vec<u8>, u16)> = vec![
        ("empty close".into(), wsframe(0x88, b""), 1000),
        (
            "close 1000".into(),
            wsframe(0x88, &1000u16.to_be_bytes()),
            1000,
        ),
        ("close 1-byte body".into(), wsframe(0x88, b"\x03"), 1002),
        (
            "close reason not UTF-8".into(),
            wsframe(0x88, b"\x03\xe8\xff\xfe"),
            1007,
        ),
    ];
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        cases.push((
            format!("close code {code}"),
            wsframe(0x88, &code.to_be_bytes()),
            1002,
        ));
    }
    let mut failures = Vec::new();
    for (what, bytes, want) in cases {
        let mut r = Raw::connect(&s, Some(&t)).await;
        let _ = raw_write(&mut r, &bytes).await;
        let (_, got) = raw_end(&mut r).await;
        if got != Some(want) {
            failures.push(format!("{what}: answered {got:?}, expected {want}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    healthy(&s).await;
}

// ---------------------------------------------------------------------------------------
// 3. XML bombs.

fn billion_laughs() -> String {
    let mut d = String::from("<!DOCTYPE message [<!ENTITY lol0 'lol'>");
    for i in 1..10 {
        d.push_str(&format!(
            "<!ENTITY lol{i} '{}'>",
            format!("&lol{};", i - 1).repeat(10)
        ));
    }
    d.push_str("]><message to='bob@localhost'><body>&lol9;</body></message>");
    d
}

/// Every bomb ends its stream with the RFC 6120 condition; what is merely big but legal
/// is delivered. The server's memory does not keep what the bombs asked for.
#[tokio::test]
async fn xml_bombs() {
    let s = Server::start();
    let base = baseline(&s).await;
    let max = 256 * 1024; // limits.max_stanza_bytes, default
    let nsdecls: String = (0..10_000)
        .map(|i| format!(" xmlns:p{i}='urn:p'"))
        .collect();
    let attrs_100k: String = (0..100_000).map(|i| format!(" a{i}=''")).collect();
    let attrs_20k: String = (0..20_000).map(|i| format!(" a{i}=''")).collect();
    let deep = |n: usize| format!("<message>{}", "<a>".repeat(n));
    let cases: Vec<(&str, String, &str)> = vec![
        ("billion laughs", billion_laughs(), "restricted-xml"),
        (
            "DOCTYPE alone",
            "<!DOCTYPE message [<!ENTITY a 'b'>]>".into(),
            "restricted-xml",
        ),
        (
            "external entity (XXE)",
            "<!DOCTYPE m [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><message><body>&x;</body></message>".into(),
            "restricted-xml",
        ),
        (
            "parameter entity",
            "<!DOCTYPE m [<!ENTITY % p SYSTEM 'http://127.0.0.1:1/x'> %p;]><message/>".into(),
            "restricted-xml",
        ),
        (
            "entity reference without a DTD",
            "<message><body>&lol9;</body></message>".into(),
            "not-well-formed",
        ),
        (
            "10,000 namespace declarations",
            format!("<message{nsdecls}/>"),
            "policy-violation",
        ),
        (
            "10,000 namespace declarations on a child",
            format!("<message><x{nsdecls}/></message>"),
            "policy-violation",
        ),
        (
            "100,000 attributes (over the size limit)",
            format!("<message{attrs_100k}/>"),
            "policy-violation",
        ),
        (
            "20,000 attributes (under the size limit)",
            format!("<message{attrs_20k}/>"),
            "policy-violation",
        ),
        (
            "100,000 levels (over the size limit)",
            deep(100_000),
            "policy-violation",
        ),
        (
            "80,000 levels (under the size limit)",
            deep(80_000),
            "policy-violation",
        ),
        (
            "40,000 levels, closed",
            format!(
                "<message>{}{}</message>",
                "<a>".repeat(40_000),
                "</a>".repeat(40_000)
            ),
            "policy-violation",
        ),
        (
            "processing instruction first",
            "<?evil x?><message/>".into(),
            "restricted-xml",
        ),
        (
            "processing instruction inside",
            "<message><body>x</body><?php system('id'); ?></message>".into(),
            "restricted-xml",
        ),
        (
            "processing instruction after",
            "<message/><?x?>".into(),
            "restricted-xml",
        ),
        (
            "comment inside",
            "<message><!-- c --><body>x</body></message>".into(),
            "restricted-xml",
        ),
        (
            "huge comment",
            format!("<message><!--{}--></message>", "c".repeat(200_000)),
            "restricted-xml",
        ),
        (
            "stanza one byte over the limit",
            {
                let head = "<message to='bob@localhost' x='";
                let tail = "'/>";
                format!("{head}{}{tail}", "v".repeat(max + 1 - head.len() - tail.len()))
            },
            "policy-violation",
        ),
        (
            "character reference to NUL",
            "<message><body>&#0;</body></message>".into(),
            "not-well-formed",
        ),
        (
            "huge character reference",
            format!("<message><body>&#x{};</body></message>", "F".repeat(100_000)),
            "not-well-formed",
        ),
    ];
    for (i, (what, xml, cond)) in cases.into_iter().enumerate() {
        let mut c = Client::login(&s, "bomber", Some(&format!("b{i}"))).await;
        c.send(&xml).await;
        let e = c.expect_stream_error(cond).await;
        assert!(e.contains(cond), "{what}: {e}");
    }

    // Big but legal: a huge attribute value, a stanza of exactly the limit, a wide tree,
    // many entity references. Each is delivered (or answered), and the stream goes on.
    let (a, b) = s.users_apart();
    let mut bob = Client::online(&s, &b, "big", 0).await;
    let mut alice = Client::online(&s, &a, "big", 0).await;
    let to = bob.jid.clone();
    let exact = {
        let head = format!("<message to='{to}' id='exact' x='");
        let tail = "'/>";
        format!("{head}{}{tail}", "v".repeat(max - head.len() - tail.len()))
    };
    assert_eq!(exact.len(), max);
    let legal: Vec<(&str, String)> = vec![
        (
            "huge",
            format!(
                "<message to='{to}' id='huge' x='{}'><body>b</body></message>",
                "A".repeat(250_000)
            ),
        ),
        ("exact", exact),
        (
            "amps",
            format!(
                "<message to='{to}' id='amps' x='{}'><body>{}</body></message>",
                "&amp;".repeat(20_000),
                "&#x1F600;&lt;".repeat(10_000)
            ),
        ),
        (
            "wide",
            format!(
                "<message to='{to}' id='wide'><x xmlns='urn:wide'>{}</x></message>",
                "<a/>".repeat(60_000)
            ),
        ),
    ];
    for (id, xml) in &legal {
        alice.send(xml).await;
        let m = bob.recv_until(&format!("id='{id}'")).await;
        assert!(m.len() >= 100_000, "{id}: {} bytes delivered", m.len());
    }
    // The server answers an IQ with a huge id by echoing it, and goes on.
    let big_id = "i".repeat(200_000);
    alice
        .send(&format!(
            "<iq type='get' id='{big_id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    assert!(alice.recv_until(&big_id).await.contains("type='result'"));
    assert!(alice.ping_server("after").await.contains("type='result'"));
    drop((alice, bob));
    check_after(&s, base, "xml bombs").await;
}

// ---------------------------------------------------------------------------------------
// 4. JID edge cases.

/// Sends a message to `to` (already XML-escaped) and returns the error answering it, if
/// one came before the answer to a ping sent right after.
async fn to_reply(c: &mut Client, to: &str, id: &str) -> Option<String> {
    c.send(&format!(
        "<message to='{to}' type='chat' id='{id}'><body>x</body></message>"
    ))
    .await;
    let pid = format!("p-{id}");
    c.send(&format!(
        "<iq type='get' id='{pid}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    let mut err = None;
    loop {
        let m = c.recv().await;
        if m.contains(&format!("id='{pid}'")) {
            break;
        }
        if m.contains(&format!("id='{id}'")) && m.contains("type='error'") {
            err = Some(m);
        }
    }
    // Storage-backed answers (offline refusal) may come after the ping: wait for one more.
    if err.is_none() {
        c.send("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
            .await;
        loop {
            let m = c.recv().await;
            if m.contains("id='p2'") {
                break;
            }
            if m.contains(&format!("id='{id}'")) && m.contains("type='error'") {
                err = Some(m);
            }
        }
    }
    err
}

/// An authenticated stream ready for bind.
async fn authed(s: &Server, user: &str) -> Client {
    let mut c = Client::connect(s, Some(&s.token(user))).await;
    c.jid = format!("{user}@localhost");
    c.open().await;
    assert!(c.auth_plain(user, "").await.contains("<success"));
    c.open().await;
    c
}

/// RFC 7622: every part 1..=1023 bytes, no empty part, forbidden characters refused.
/// A bad `to` is a jid-malformed stanza error and the stream goes on; a bad resource at
/// bind is bad-request. Characters that are not XML at all end the stream (not-well-formed).
#[tokio::test]
async fn jid_edge_cases() {
    let s = Server::start();
    let base = baseline(&s).await;
    let mut c = Client::login(&s, "jidder", Some("j")).await;
    let label63 = "d".repeat(63);
    let domain1023 = {
        // 15 labels of 63 + dots = 975 bytes, then one label to reach 1023.
        let mut d = [label63.as_str(); 15].join(".");
        d.push('.');
        d.push_str(&"e".repeat(1023 - d.len()));
        assert!(d.len() == 1023 && d.rsplit('.').next().unwrap().len() <= 63);
        d
    };
    let domain1024 = format!("{domain1023}e");
    let malformed: Vec<(&str, String)> = vec![
        ("localpart 1024", format!("{}@localhost", "a".repeat(1024))),
        (
            "resource 1024",
            format!("bob@localhost/{}", "r".repeat(1024)),
        ),
        ("domain 1024", domain1024.clone()),
        ("user at domain 1024", format!("bob@{domain1024}")),
        ("label 64", format!("bob@{}.localhost", "l".repeat(64))),
        ("domain 2000", format!("bob@{}", "x.".repeat(1000))),
        (
            "localpart lengthened over 1023 by lower-casing",
            format!("{}@localhost", "\u{130}".repeat(511)),
        ),
        ("empty localpart", "@localhost".into()),
        ("empty domain", "a@".into()),
        ("empty resource", "a@localhost/".into()),
        ("empty domain with resource", "a@/r".into()),
        ("only a resource", "/r".into()),
        ("only @", "@".into()),
        ("empty to", "".into()),
        ("a@b@c", "a@b@c".into()),
        ("space in localpart", "a b@localhost".into()),
        ("tab in localpart", "a&#x9;b@localhost".into()),
        ("DEL in localpart", "a&#x7F;@localhost".into()),
        ("C1 control in localpart", "a&#x85;@localhost".into()),
        ("C1 control in resource", "bob@localhost/r&#x9F;".into()),
        ("newline in resource", "bob@localhost/a&#xA;b".into()),
        ("leading space in resource", "bob@localhost/ r".into()),
        ("trailing space in resource", "bob@localhost/r ".into()),
        ("colon in localpart", "a:b@localhost".into()),
        ("quote in localpart", "a&quot;b@localhost".into()),
        ("apostrophe in localpart", "a&apos;b@localhost".into()),
        ("ampersand in localpart", "a&amp;b@localhost".into()),
        ("lt in localpart", "a&lt;b@localhost".into()),
        ("underscore in domain", "bob@local_host".into()),
        ("space in domain", "bob@local host".into()),
        ("empty label", "bob@a..localhost".into()),
        ("dot domain", "bob@.".into()),
        ("unterminated IPv6", "bob@[::1".into()),
        ("bad IPv6", "bob@[nonsense]".into()),
        ("ideographic space in domain", "bob@a\u{3000}b".into()),
    ];
    let mut wrong = Vec::new();
    for (i, (what, to)) in malformed.iter().enumerate() {
        let e = to_reply(&mut c, to, &format!("m{i}")).await;
        match e {
            Some(e) if e.contains("<jid-malformed") => {}
            other => wrong.push(format!("{what}: {other:?}")),
        }
    }
    // At the limits, and legal: not jid-malformed (they may be refused for other reasons).
    let legal: Vec<(&str, String)> = vec![
        ("localpart 1023", format!("{}@localhost", "a".repeat(1023))),
        (
            "resource 1023",
            format!("bob@localhost/{}", "r".repeat(1023)),
        ),
        ("domain 1023", domain1023.clone()),
        (
            "all parts at 1023",
            format!("{}@{domain1023}/{}", "a".repeat(1023), "r".repeat(1023)),
        ),
        ("resource with @ and /", "bob@localhost/a@b/c".into()),
        ("trailing dot", "bob@localhost.".into()),
        ("IPv6 literal", "bob@[::1]".into()),
    ];
    for (i, (what, to)) in legal.iter().enumerate() {
        if let Some(e) = to_reply(&mut c, to, &format!("l{i}")).await
            && e.contains("<jid-malformed")
        {
            wrong.push(format!("{what} (legal) refused: {e}"));
        }
    }
    // PRECIS would refuse a bidi override or a mix of directions; the server documents
    // that it does not check PRECIS classes (src/xmpp/jid.rs). Either answer is fine
    // here; what matters is that the stream goes on.
    for (i, to) in [
        "&#x202E;bob@localhost",
        "bob@a&#x5D0;1.example",
        "&#x5D0;a&#x202B;b@localhost/&#x200F;r",
        "bob@localhost/&#xFEFF;",
    ]
    .iter()
    .enumerate()
    {
        let _ = to_reply(&mut c, to, &format!("bidi{i}")).await;
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(c.ping_server("still").await.contains("type='result'"));

    // Characters that are not XML end the stream, in `to` as anywhere.
    for (i, to) in [
        "a&#x0;b@localhost",
        "a&#x1;@localhost",
        "bob@localhost/&#xFFFE;",
        "bob@localhost/&#xFFFF;",
        "bob@localhost/&#xD800;",
        "bob@localhost/&#x110000;",
    ]
    .iter()
    .enumerate()
    {
        let mut c = Client::login(&s, "jidder", Some(&format!("x{i}"))).await;
        c.send(&format!("<message to='{to}'><body>x</body></message>"))
            .await;
        c.expect_stream_error("not-well-formed").await;
    }
    // A literal U+FFFE (valid UTF-8, not an XML character).
    let mut c2 = Client::login(&s, "jidder", Some("lit")).await;
    c2.send("<message to='bob@localhost/\u{FFFE}'><body>x</body></message>")
        .await;
    c2.expect_stream_error("not-well-formed").await;

    // Bind: a bad resource is bad-request, the stream stays up and can bind afterwards.
    let mut b = authed(&s, "binder").await;
    for res in [
        "r".repeat(1024),
        "a&#x7F;b".into(),
        "a&#x85;b".into(),
        "a&#x9;b".into(),
        "\u{130}".repeat(600), // fine lower case or not: resources keep their case; 1200 bytes
    ] {
        let r = b.bind(Some(&res)).await;
        assert!(
            r.contains("type='error'") && r.contains("<bad-request"),
            "resource {:?}: {r}",
            &res[..res.len().min(40)]
        );
    }
    for (res, want) in [
        ("r".repeat(1023), "r".repeat(1023)),
        ("a@b/c".to_string(), "a@b/c".to_string()),
        (
            "it&apos;s &lt;me&gt;".to_string(),
            "it's &lt;me&gt;".to_string(),
        ),
    ] {
        let mut b = authed(&s, "binder").await;
        let r = b.bind(Some(&res)).await;
        assert!(r.contains("type='result'"), "{r}");
        assert!(
            r.contains(&format!("<jid>binder@localhost/{want}</jid>")),
            "{r}"
        );
        assert!(b.ping_server("bound").await.contains("type='result'"));
    }
    let r = b.bind(Some("ok")).await;
    assert!(r.contains("type='result'"), "bind after refusals: {r}");
    let mut b = authed(&s, "binder").await;
    b.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>a&#x0;</resource></bind></iq>").await;
    b.expect_stream_error("not-well-formed").await;
    drop((c, b));
    check_after(&s, base, "jid edge cases").await;
}

// ---------------------------------------------------------------------------------------
// 5. SASL and JWT abuse.

fn b64url(s: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn hs256_sig(msg: &str, secret: &[u8]) -> String {
    jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(secret),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap()
}

/// A token with any header, signed with HMAC-SHA256 over `header.claims` with `secret`.
fn hmac_token(header: &str, claims: &serde_json::Value, secret: &[u8]) -> String {
    let msg = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = hs256_sig(&msg, secret);
    format!("{msg}.{sig}")
}

/// Thousands of SASL failures pipelined on one connection are cut off after
/// `auth.max_auth_failures` (3) with policy-violation; 200 connections in a row doing the
/// same are each cut off; nothing accumulates.
#[tokio::test]
async fn sasl_failure_floods() {
    let s = Server::start();
    let base = baseline(&s).await;
    let max_failures = 3; // auth.max_auth_failures, default
    // One connection, 3,000 failures written without waiting for answers.
    let mut c = Client::connect(&s, None).await;
    c.open().await;
    let bad = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        b64("\0alice\0wrong")
    );
    let mut written = 0;
    for _ in 0..3_000 {
        if c.ws.feed(Message::text(bad.clone())).await.is_err() {
            break;
        }
        written += 1;
        if written % 100 == 0 && c.ws.flush().await.is_err() {
            break;
        }
    }
    let _ = c.ws.flush().await;
    let mut failures = 0;
    let mut stream_error = None;
    while let Some(m) = c.next_msg().await {
        if let Message::Text(t) = m {
            if t.contains("<failure") {
                failures += 1;
            }
            if t.contains("<stream:error") {
                stream_error = Some(t.to_string());
            }
        }
    }
    eprintln!(
        "{written} failures written, {failures} answered, stream error: {}",
        stream_error.is_some()
    );
    assert_eq!(
        failures, max_failures,
        "failures answered on one connection before it was closed"
    );
    let e = stream_error.expect("closed with a stream error");
    assert!(e.contains("<policy-violation"), "{e}");
    // 200 connections in a row (10 at a time), each with varied failures.
    let kinds = [
        ("PLAIN", b64("\0alice\0wrong")),
        ("PLAIN", "!!!not base64!!!".to_string()),
        ("PLAIN", b64("no nul separators")),
        ("SCRAM-SHA-1", b64("n,,n=alice,r=abc")),
        ("PLAIN", b64(&format!("\0bob\0{}", s.token("alice")))),
        ("PLAIN", "=".to_string()),
    ];
    let one = |i: usize| {
        let s = &s;
        let kinds = &kinds;
        async move {
            let mut c = Client::connect(s, None).await;
            c.open().await;
            for k in 0..max_failures {
                let (mech, payload) = &kinds[(i + k) % kinds.len()];
                c.send(&format!(
                    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mech}'>{payload}</auth>"
                ))
                .await;
                let r = c.recv().await;
                assert!(r.starts_with("<failure"), "{r}");
            }
            c.expect_stream_error("policy-violation").await;
        }
    };
    for chunk in (0..200).collect::<Vec<_>>().chunks(10) {
        timeout(
            Duration::from_secs(30),
            futures_util::future::join_all(chunk.iter().map(|&i| one(i))),
        )
        .await
        .expect("bounded");
    }
    assert_eq!(connections_down_to(&s, 0).await, 0);
    check_after(&s, base, "sasl failures").await;
}

/// Big tokens: a 100 KB password is just a failure (and the right one still works on the
/// same stream); a 100 KB cookie is refused before the upgrade (the request is over
/// limits.max_http_request_bytes); forged algorithms and claims are refused both ways.
#[tokio::test]
async fn jwt_abuse() {
    let s = Server::start();
    let base = baseline(&s).await;
    let now = now();
    // 100 KB password: random junk, then a validly signed 100 KB token.
    let junk = "J".repeat(100_000);
    let big_valid = token_claims(
        json!({"sub": "alice", "exp": now + 600, "pad": "p".repeat(100_000)}),
        SECRET,
    );
    let mut c = Client::connect(&s, None).await;
    c.open().await;
    let r = c.auth_plain("alice", &junk).await;
    assert!(r.contains("<not-authorized/>"), "{r}");
    let r = c.auth_plain("alice", &big_valid).await;
    eprintln!("100 KB validly signed token as SASL password: {r}");
    assert!(
        r.contains("<success") || r.contains("<not-authorized/>"),
        "100 KB valid token: {r}"
    );
    if r.contains("<not-authorized/>") {
        let r = c.auth_plain("alice", &s.token("alice")).await;
        assert!(r.contains("<success"), "{r}");
    }
    c.open().await;
    assert!(c.bind(Some("big")).await.contains("type='result'"));

    // 100 KB cookie: refused with 431 (or a reset while we were still writing), never 101.
    for cookie in [junk.clone(), big_valid.clone()] {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
            .await
            .unwrap();
        let req = format!(
            "GET /xmpp HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nCookie: auth_token={cookie}\r\n\r\n"
        );
        let _ = tcp.write_all(req.as_bytes()).await;
        let mut out = Vec::new();
        let _ = timeout(WAIT, tcp.read_to_end(&mut out))
            .await
            .expect("the server ends a too large request");
        let out = String::from_utf8_lossy(&out);
        eprintln!("100 KB cookie: {:?}", out.lines().next());
        assert!(
            out.is_empty() || out.starts_with("HTTP/1.1 431"),
            "100 KB cookie: {out}"
        );
    }
    // 40 headers (the parser takes 32): 431, not a crash.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    let hs: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    tcp.write_all(format!("GET /xmpp HTTP/1.1\r\nHost: x\r\n{hs}\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    let _ = timeout(WAIT, tcp.read_to_string(&mut out)).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    // Just under the request limit: a 7 KB valid token upgrades, an invalid one is a 401.
    let mid = token_claims(
        json!({"sub": "alice", "exp": now + 600, "pad": "p".repeat(6_000)}),
        SECRET,
    );
    assert_eq!(
        upgrade_status(&s, "/xmpp", Some(&mid), Some("xmpp")).await,
        101
    );
    assert_eq!(
        upgrade_status(&s, "/xmpp", Some(&"x".repeat(7_000)), Some("xmpp")).await,
        401
    );

    // Forged tokens (none of which tests/auth.rs covers).
    let claims = json!({"sub": "alice", "exp": now + 600});
    let body = b64url(claims.to_string().as_bytes());
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
    let rsa_priv = std::fs::read(keys.join("rs256-private.pem")).unwrap();
    let rsa_pub = std::fs::read(keys.join("rs256-public.pem")).unwrap();
    let ec_priv = std::fs::read(keys.join("es256-private.pem")).unwrap();
    let sign_with = |alg, key: &jsonwebtoken::EncodingKey| {
        jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, key).unwrap()
    };
    let hs_sig = hs256_sig(
        &format!("{}.{body}", b64url(br#"{"alg":"HS256","typ":"JWT"}"#)),
        SECRET.as_bytes(),
    );
    let mut forged: Vec<(&str, String)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        forged.push(("alg none (case variants)", format!("{h}.{body}.")));
        forged.push(("alg none without the last dot", format!("{h}.{body}")));
        // alg none carrying the signature a real HS256 token has.
        forged.push((
            "alg none with a valid HS256 signature",
            format!("{h}.{body}.{hs_sig}"),
        ));
    }
    forged.extend([
        (
            "RS256 header, HMAC-SHA256 signature with the server's secret",
            hmac_token(r#"{"alg":"RS256","typ":"JWT"}"#, &claims, SECRET.as_bytes()),
        ),
        (
            "ES256 header, HMAC-SHA256 signature with the server's secret",
            hmac_token(r#"{"alg":"ES256","typ":"JWT"}"#, &claims, SECRET.as_bytes()),
        ),
        (
            "HS512 header, HMAC-SHA256 signature with the server's secret",
            hmac_token(r#"{"alg":"HS512","typ":"JWT"}"#, &claims, SECRET.as_bytes()),
        ),
        (
            "RS256 token, properly signed with an RSA key",
            sign_with(
                jsonwebtoken::Algorithm::RS256,
                &jsonwebtoken::EncodingKey::from_rsa_pem(&rsa_priv).unwrap(),
            ),
        ),
        (
            "ES256 token, properly signed with an EC key",
            sign_with(
                jsonwebtoken::Algorithm::ES256,
                &jsonwebtoken::EncodingKey::from_ec_pem(&ec_priv).unwrap(),
            ),
        ),
        (
            "HS256 with a public key as secret",
            hmac_token(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, &rsa_pub),
        ),
        (
            "HS256 with an empty secret",
            hmac_token(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, b""),
        ),
        (
            "HS256 with the secret's prefix",
            hmac_token(
                r#"{"alg":"HS256","typ":"JWT"}"#,
                &claims,
                &SECRET.as_bytes()[..8],
            ),
        ),
        ("signature stripped", {
            let t = s.token("alice");
            t[..t.rfind('.').unwrap() + 1].to_string()
        }),
        ("signature truncated", {
            let t = s.token("alice");
            t[..t.len() - 4].to_string()
        }),
        ("claims swapped under a valid signature", {
            let t = s.token("bob");
            let mut p: Vec<&str> = t.split('.').collect();
            let other = b64url(
                json!({"sub": "admin", "exp": now + 600})
                    .to_string()
                    .as_bytes(),
            );
            p[1] = &other;
            p.join(".")
        }),
        ("four segments", format!("{}.x", s.token("alice"))),
        (
            "two segments",
            format!("{}.{body}", b64url(br#"{"alg":"HS256"}"#)),
        ),
        ("empty segments", "..".to_string()),
        (
            "header not JSON",
            format!("{}.{body}.{hs_sig}", b64url(b"not json")),
        ),
        (
            "sub is a number",
            token_claims(json!({"sub": 42, "exp": now + 600}), SECRET),
        ),
        (
            "sub is empty",
            token_claims(json!({"sub": "", "exp": now + 600}), SECRET),
        ),
        (
            "sub with a resource",
            token_claims(
                json!({"sub": "alice@localhost/evil", "exp": now + 600}),
                SECRET,
            ),
        ),
        (
            "sub a@b@localhost",
            token_claims(json!({"sub": "a@b@localhost", "exp": now + 600}), SECRET),
        ),
        (
            "sub with NUL",
            token_claims(json!({"sub": "ali\u{0}ce", "exp": now + 600}), SECRET),
        ),
        (
            "sub with a space",
            token_claims(json!({"sub": "al ice", "exp": now + 600}), SECRET),
        ),
        (
            "sub of 1024 bytes",
            token_claims(json!({"sub": "a".repeat(1024), "exp": now + 600}), SECRET),
        ),
        (
            "sub lengthened over 1023 by lower-casing",
            token_claims(
                json!({"sub": "\u{130}".repeat(511), "exp": now + 600}),
                SECRET,
            ),
        ),
        (
            "exp as a string",
            token_claims(
                json!({"sub": "alice", "exp": (now + 600).to_string()}),
                SECRET,
            ),
        ),
        (
            "exp in the past, nbf ignored",
            token_claims(json!({"sub": "alice", "exp": now - 1000, "nbf": 0}), SECRET),
        ),
    ]);
    let mut wrong = Vec::new();
    for (what, tok) in &forged {
        // As cookie: 401 (a cookie value cannot hold every byte; those go as SASL only).
        if tok.bytes().all(|b| b.is_ascii_graphic()) {
            let st = upgrade_status(&s, "/xmpp", Some(tok), Some("xmpp")).await;
            if st != 401 {
                wrong.push(format!("{what}: cookie upgrade answered {st}"));
            }
        }
        // As SASL PLAIN password: not-authorized, and the stream goes on.
        let mut c = Client::connect(&s, None).await;
        c.open().await;
        let r = c.auth_plain("alice", tok).await;
        if !r.contains("<not-authorized/>") {
            wrong.push(format!("{what}: SASL answered {r}"));
        }
        let r = c.auth_plain("alice", &s.token("alice")).await;
        assert!(r.contains("<success"), "{what}: the right token after: {r}");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    drop(c);
    check_after(&s, base, "jwt abuse").await;
}

// ---------------------------------------------------------------------------------------
// 6. Reconnect storm.

/// Makes the next drop of this connection a TCP RST.
fn set_rst(ws: &Ws) {
    if let tokio_tungstenite::MaybeTlsStream::Plain(t) = ws.get_ref() {
        socket2::SockRef::from(t)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
}

/// One user opens 2,000 bound connections (50 at a time) and drops each without
/// `<close/>`, by RST or plain FIN, half of them with resumable XEP-0198, some after
/// initial presence. Afterwards no ghost resource is left: /health counts no connection, a
/// new resource sees no other resource's presence, and a message to the bare JID goes to
/// offline storage and arrives exactly once at the next login.
#[tokio::test]
async fn reconnect_storm_leaves_no_ghosts() {
    // sm.resume_timeout_ms lowered from 300 s to 1 s to keep the test short.
    let s = Server::start_with("[sm]\nresume_timeout_ms = 1000\n", 2);
    let base = baseline(&s).await;
    let user = "stormy";
    const SLOTS: usize = 50;
    const PER_SLOT: usize = 40;
    let slot = |k: usize| {
        let s = &s;
        async move {
            for j in 0..PER_SLOT {
                let i = j * SLOTS + k;
                let sm = i % 4 < 2;
                // Slot resources: a new bind replaces the slot's previous session (live,
                // or detached for resumption); some get a generated resource instead.
                let resource = if !sm && i % 16 == 3 {
                    None
                } else {
                    Some(format!("s{k}"))
                };
                let mut c = Client::login(s, user, resource.as_deref()).await;
                if sm {
                    c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
                        .await;
                    let e = c.recv_until("urn:xmpp:sm:3").await;
                    assert!(e.contains("<enabled"), "{e}");
                }
                if i.is_multiple_of(3) {
                    c.send("<presence/>").await;
                    c.recv_until("<presence").await;
                }
                if i.is_multiple_of(2) {
                    set_rst(&c.ws);
                }
                drop(c);
            }
        }
    };
    timeout(
        Duration::from_secs(60),
        futures_util::future::join_all((0..SLOTS).map(slot)),
    )
    .await
    .expect("the storm is bounded");
    let left = connections_down_to(&s, 0).await;
    assert_eq!(left, 0, "connections still counted after the storm");
    // Wait (bounded) until every detached session has been resumed, replaced or expired.
    let start = Instant::now();
    loop {
        let log = s.log();
        let detached = log.matches("session detached for resumption").count();
        let gone = log.matches("detached session expired").count()
            + log
                .matches("detached session replaced by a new bind")
                .count()
            + log.matches("session resumed").count();
        if gone >= detached || start.elapsed() > Duration::from_secs(15) {
            eprintln!("storm: {detached} detached, {gone} expired or replaced");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Nobody is connected as the user: a message to the bare JID is stored...
    let mut sender = Client::online(&s, "stormsender", "x", 0).await;
    sender.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    sender.recv_until("<enabled").await;
    sender
        .send(&format!(
            "<message to='{user}@localhost' type='chat' id='after-storm'><body>hi</body></message>"
        ))
        .await;
    sender.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    loop {
        let m = sender.recv().await;
        assert!(!m.contains("id='after-storm'"), "refused: {m}");
        if m.contains("<a xmlns='urn:xmpp:sm:3'") {
            assert!(m.contains("h='1'"), "{m}");
            break;
        }
    }
    // ...and the next login gets it once, with no other resource of the user around.
    let mut me = Client::login(&s, user, Some("final")).await;
    me.send("<presence/>").await;
    let mut got = 0;
    let mut ghosts = Vec::new();
    let mut stored = None;
    let deadline = Instant::now() + WAIT;
    while stored.is_none() && Instant::now() < deadline {
        let m = me.recv().await;
        if m.starts_with("<presence")
            && m.contains(&format!("from='{user}@localhost/"))
            && !m.contains(&format!("from='{}'", me.jid))
        {
            ghosts.push(m.clone());
        }
        if m.contains("id='after-storm'") {
            got += 1;
            stored = Some(m);
        }
    }
    let stored = stored.expect("the stored message arrives");
    assert!(stored.contains("<delay xmlns='urn:xmpp:delay'"), "{stored}");
    // Anything that came between is counted too.
    me.send("<iq type='get' id='last' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let m = me.recv().await;
        if m.contains("id='after-storm'") {
            got += 1;
        }
        if m.starts_with("<presence")
            && m.contains(&format!("from='{user}@localhost/"))
            && !m.contains(&format!("from='{}'", me.jid))
        {
            ghosts.push(m.clone());
        }
        if m.contains("id='last'") {
            break;
        }
    }
    assert_eq!(got, 1, "the stored message exactly once");
    assert!(ghosts.is_empty(), "ghost resources: {ghosts:#?}");
    me.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        .await;
    me.expect_end().await;
    // Not again at the login after.
    let mut again = Client::login(&s, user, Some("again")).await;
    again.send("<presence/>").await;
    again.recv_until("<presence").await;
    again.ping_server("p1").await;
    again
        .send("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let m = again.recv().await;
        assert!(!m.contains("id='after-storm'"), "delivered twice: {m}");
        if m.contains("id='p2'") {
            break;
        }
    }
    drop((again, sender));
    assert_eq!(connections_down_to(&s, 0).await, 0);
    check_after(&s, base, "reconnect storm").await;
}

// ---------------------------------------------------------------------------------------
// 7. Clients that make the server write and never read.
//
// Every WebSocket message and control frame counts against the rate limit
// (limits.max_stanzas_per_sec = 200 by default), which shapes a flood by not reading. At
// 200 frames a second the default 4 MiB outbound bound takes minutes to fill, so these
// tests LOWER limits.outbound_queue_bytes_max (and limits.max_stanza_bytes, which it may
// not be below) to 16 KiB, only to keep them short; the rate limit stays at its default.

const SMALL_OUTBOUND: &str =
    "[limits]\nmax_stanza_bytes = 16384\noutbound_queue_bytes_max = 16384\n";

/// Writes `next()` again and again on a connection that never reads, until the server
/// closes it (true) or a bound on time or on the server's RSS is reached (false). A write
/// is never cancelled half way (that would cut a frame): it is awaited, with the bounds
/// checked on the side. Returns (closed, bytes sent, peak RSS in KiB).
async fn flood_until_closed(
    s: &Server,
    r: &mut Raw,
    mut next: impl FnMut() -> Vec<u8>,
    base: u64,
    what: &str,
) -> (bool, u64, u64) {
    let start = Instant::now();
    let cap = Duration::from_secs(25);
    let growth_bound = base + 160 * 1024; // far above any outbound bound
    let mut sent = 0u64;
    let mut peak = base;
    let closed = 'outer: loop {
        let b = next();
        let mut write = std::pin::pin!(r.tcp.write_all(&b));
        loop {
            tokio::select! {
                res = &mut write => match res {
                    Ok(()) => {
                        sent += b.len() as u64;
                        break;
                    }
                    // Reset or broken pipe: the server closed the connection.
                    Err(_) => break 'outer true,
                },
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            let rss = rss_kib(s);
            peak = peak.max(rss);
            if rss > growth_bound || start.elapsed() > cap {
                break 'outer false;
            }
        }
        let rss = rss_kib(s);
        peak = peak.max(rss);
        if rss > growth_bound || start.elapsed() > cap {
            break false;
        }
    };
    eprintln!(
        "{what}: closed={closed} after {} KiB sent in {:?}, server RSS {} -> peak {} MiB",
        sent >> 10,
        start.elapsed(),
        base / 1024,
        peak / 1024
    );
    (closed, sent, peak)
}

fn iq_ping(n: u32) -> Vec<u8> {
    wsframe(
        0x81,
        format!("<iq type='get' id='q{n}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
            .as_bytes(),
    )
}

/// A client that sends WebSocket pings (and some XEP-0199 pings) as fast as it can and
/// never reads is closed once what the server owes it passes the outbound bound; the
/// server's memory does not follow the flood.
#[tokio::test]
async fn ping_flood_without_reading_is_closed() {
    let s = Server::start_with(SMALL_OUTBOUND, 2);
    let base = baseline(&s).await;
    let small = raw_small_rcvbuf(&s, Some(&s.token("pinger"))).await;
    let (mut r, _) = raw_login_on(small, "pinger", "p").await;
    let ping = wsframe(0x89, &[b'p'; 125]);
    let mut n = 0;
    let (closed, _, peak) = flood_until_closed(
        &s,
        &mut r,
        || {
            n += 1;
            let mut b = ping.repeat(50);
            b.extend(iq_ping(n));
            b
        },
        base,
        "ping flood",
    )
    .await;
    drop(r);
    assert!(
        closed,
        "the server never closed a client that does not read its pongs (RSS {} -> {} MiB); log tail:\n{}",
        base / 1024,
        peak / 1024,
        log_tail(&s)
    );
    assert!(
        peak <= rss_bound(base),
        "RSS grew to {} MiB during the flood (baseline {} MiB)",
        peak / 1024,
        base / 1024
    );
    assert!(s.log().contains("slow consumer"), "{}", log_tail(&s));
    check_after(&s, base, "ping flood").await;
}

/// The same with XEP-0199 pings only.
#[tokio::test]
async fn iq_ping_flood_without_reading_is_closed() {
    let s = Server::start_with(SMALL_OUTBOUND, 2);
    let base = baseline(&s).await;
    let small = raw_small_rcvbuf(&s, Some(&s.token("iqpinger"))).await;
    let (mut r, _) = raw_login_on(small, "iqpinger", "p").await;
    let mut n = 0;
    let (closed, _, peak) = flood_until_closed(
        &s,
        &mut r,
        || {
            (0..50)
                .flat_map(|_| {
                    n += 1;
                    iq_ping(n)
                })
                .collect()
        },
        base,
        "iq ping flood",
    )
    .await;
    drop(r);
    assert!(
        closed,
        "not closed (RSS peak {} MiB); log tail:\n{}",
        peak / 1024,
        log_tail(&s)
    );
    assert!(peak <= rss_bound(base), "RSS peak {} MiB", peak / 1024);
    assert!(s.log().contains("slow consumer"), "{}", log_tail(&s));
    check_after(&s, base, "iq ping flood").await;
}

/// Negotiation and XEP-0198 nonzas are answered too: `<open/>` and `<abort/>` before
/// authentication, `<r/>` after `<enable/>`. Clients that send them fast and never read
/// are closed all the same (three at once).
#[tokio::test]
async fn nonza_flood_without_reading_is_closed() {
    let s = Server::start_with(SMALL_OUTBOUND, 2);
    let base = baseline(&s).await;
    let flood = |what: &'static str| {
        let s = &s;
        async move {
            let (mut r, frame) = match what {
                "r" => {
                    let small = raw_small_rcvbuf(s, Some(&s.token("nonza"))).await;
                    let (mut r, _) = raw_login_on(small, "nonza", "n").await;
                    raw_text(&mut r, "<enable xmlns='urn:xmpp:sm:3'/>").await;
                    raw_until(&mut r, "<enabled").await;
                    (r, wsframe(0x81, b"<r xmlns='urn:xmpp:sm:3'/>"))
                }
                "abort" => {
                    let mut r = raw_small_rcvbuf(s, None).await;
                    raw_text(&mut r, OPEN).await;
                    (
                        r,
                        wsframe(0x81, b"<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
                    )
                }
                _ => (
                    raw_small_rcvbuf(s, None).await,
                    wsframe(0x81, OPEN.as_bytes()),
                ),
            };
            let (closed, _, peak) = flood_until_closed(
                s,
                &mut r,
                || frame.repeat(50),
                base,
                &format!("<{what}/> flood"),
            )
            .await;
            (what, closed, peak)
        }
    };
    let results = futures_util::future::join_all(["open", "abort", "r"].map(flood)).await;
    let failures: Vec<String> = results
        .iter()
        .filter(|(_, closed, peak)| !closed || *peak > rss_bound(base))
        .map(|(what, closed, peak)| {
            format!(
                "<{what}/> flood: closed={closed}, RSS {} -> peak {} MiB",
                base / 1024,
                peak / 1024
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{failures:#?}\nlog tail:\n{}",
        log_tail(&s)
    );
    check_after(&s, base, "nonza flood").await;
}
