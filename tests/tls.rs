//! TLS through real sockets against a real server: STARTTLS on the TCP c2s listener
//! (required by default, plaintext injection refused), XEP-0368 direct TLS (ALPN
//! `xmpp-client`), wss on the HTTPS listener, the handshake timeout, certificate reload on
//! SIGHUP, and TLS session resumption across shards. Clients are rustls (blocking) with a
//! test CA minted by rcgen, and `openssl s_client` probes.

mod common;
use common::tls::{TestCa, Tls, connect, read_to_end, read_until, send, wrap};
use common::*;

use base64::Engine;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

fn plain_tcp(port: u16) -> TcpStream {
    let t = TcpStream::connect(("127.0.0.1", port)).unwrap();
    t.set_read_timeout(Some(WAIT)).unwrap();
    t
}

/// STARTTLS on a fresh TCP connection: features offer only STARTTLS (required), then
/// `<proceed/>`, then the handshake verifying the test CA.
fn starttls(ca: &TestCa, port: u16) -> Tls {
    starttls_with(&ca.client(&[]), port)
}

fn starttls_with(cfg: &std::sync::Arc<rustls::ClientConfig>, port: u16) -> Tls {
    let mut t = plain_tcp(port);
    send(&mut t, HEADER);
    let f = read_until(&mut t, "</stream:features>");
    assert!(
        f.starts_with("<?xml")
            && f.contains(
                "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
            )
            && !f.contains("mechanism"),
        "{f}"
    );
    send(
        &mut t,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    let p = read_until(&mut t, "/>");
    assert_eq!(p, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    wrap(cfg, t).expect("TLS handshake after <proceed/>")
}

/// SASL PLAIN with the JWT, restart, bind: returns the full JID.
fn login(s: &mut (impl Read + Write), server: &Server, user: &str) -> String {
    login_with(s, user, &server.token(user))
}

fn login_with(s: &mut (impl Read + Write), user: &str, token: &str) -> String {
    send(s, HEADER);
    let f = read_until(s, "</stream:features>");
    assert!(
        f.contains("<mechanism>PLAIN</mechanism>") && !f.contains("starttls"),
        "{f}"
    );
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{token}"));
    send(
        s,
        &format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>"),
    );
    let r = read_until(s, "/>");
    assert!(r.contains("<success"), "{r}");
    send(s, HEADER);
    read_until(s, "</stream:features>");
    send(
        s,
        "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>tls</resource></bind></iq>",
    );
    let b = read_until(s, "</iq>");
    assert!(b.contains("type='result'"), "{b}");
    between(&b, "<jid>", "</jid>").to_string()
}

fn ping(s: &mut (impl Read + Write), id: &str) {
    send(
        s,
        &format!("<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"),
    );
    let r = read_until(s, &format!("id='{id}'"));
    let r = read_until_str(s, r, "/>");
    assert!(r.contains("type='result'"), "{r}");
}

fn read_until_str(s: &mut impl Read, mut got: String, want: &str) -> String {
    while !got.contains(want) {
        got.push_str(&read_until(s, want));
    }
    got
}

fn c2s_config(ca: &TestCa, extra: &str) -> String {
    format!(
        "{}\n[c2s]\nlisten = \"127.0.0.1:0\"\nlisten_direct_tls = \"127.0.0.1:0\"\n{extra}",
        ca.config()
    )
}

/// STARTTLS is offered and required; after it, a TCP user logs in (its TLS state moving
/// with the connection to its home shard when another shard accepted it) and chats with a
/// WebSocket user, both ways.
#[tokio::test]
async fn starttls_login_and_chat_with_a_websocket_user() {
    let ca = TestCa::new();
    let s = Server::start_with(&c2s_config(&ca, ""), 2);
    let port = s.c2s_port.unwrap();
    // Users until some TLS connections were accepted on the other shard than their user's
    // home and moved there with their TLS state (each user is one more chance in two).
    let moved = || {
        s.log()
            .lines()
            .filter(|l| l.contains("handoff to home shard") && l.contains("tls=true"))
            .count()
    };
    for i in 0..40 {
        if i >= 4 && moved() >= 2 {
            break;
        }
        let user = format!("tls{i}");
        let web = format!("web{i}");
        let mut w = Client::online(&s, &web, "w", 0).await;
        let wj = w.jid.clone();
        let cfg = ca.client(&[]);
        let token = s.token(&user);
        let (jid, mut t) = tokio::task::spawn_blocking(move || {
            let mut t = starttls_with(&cfg, port);
            let jid = login_with(&mut t, &user, &token);
            send(&mut t, "<presence/>");
            read_until(&mut t, "<presence");
            (jid, t)
        })
        .await
        .unwrap();
        send(
            &mut t,
            &format!(
                "<message to='{wj}' type='chat' id='m{i}'><body>over TLS é {i}</body></message>"
            ),
        );
        let m = w.recv_until(&format!("over TLS é {i}")).await;
        assert!(m.contains(&format!("from='{jid}'")), "{m}");
        w.send(&format!(
            "<message to='{jid}' type='chat' id='r{i}'><body>back {i}</body></message>"
        ))
        .await;
        let got = tokio::task::spawn_blocking(move || {
            let r = read_until(&mut t, &format!("back {i}"));
            ping(&mut t, "p1");
            send(&mut t, "</stream:stream>");
            (r, read_to_end(&mut t))
        })
        .await
        .unwrap();
        assert!(got.0.contains(&format!("from='{wj}'")), "{}", got.0);
        assert!(got.1.contains("</stream:stream>"), "{}", got.1);
    }
    assert!(
        moved() >= 2,
        "no TLS connection was handed off:\n{}",
        s.log()
    );
}

/// With STARTTLS required, SASL before it is refused with `encryption-required`.
#[test]
fn sasl_before_starttls_is_refused() {
    let ca = TestCa::new();
    let s = Server::start_with(&c2s_config(&ca, ""), 1);
    let mut t = plain_tcp(s.c2s_port.unwrap());
    send(&mut t, HEADER);
    read_until(&mut t, "</stream:features>");
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("\0u1\0{}", s.token("u1")));
    send(
        &mut t,
        &format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>"),
    );
    let r = read_until(&mut t, "</failure>");
    assert!(r.contains("<encryption-required/>"), "{r}");
}

/// Plaintext injection: bytes after `<starttls/>` in the same write are refused with a
/// stream error, `<proceed/>` is never sent, and the bytes are never processed.
#[test]
fn bytes_after_starttls_are_refused() {
    let ca = TestCa::new();
    let s = Server::start_with(&c2s_config(&ca, ""), 1);
    let mut t = plain_tcp(s.c2s_port.unwrap());
    send(&mut t, HEADER);
    read_until(&mut t, "</stream:features>");
    send(
        &mut t,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let r = read_to_end(&mut t);
    assert!(
        r.contains("<policy-violation") && r.contains("data after &lt;starttls/&gt;")
            || r.contains("<policy-violation") && r.contains("data after"),
        "{r}"
    );
    assert!(!r.contains("proceed") && !r.contains("id='x'"), "{r}");
    // Whitespace after it is harmless: dropped, and TLS starts.
    let mut t = plain_tcp(s.c2s_port.unwrap());
    send(&mut t, HEADER);
    read_until(&mut t, "</stream:features>");
    send(
        &mut t,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n",
    );
    assert!(read_until(&mut t, "/>").contains("<proceed"));
    let mut tls = wrap(&ca.client(&[]), t).unwrap();
    login(&mut tls, &s, "u2");
}

/// `<starttls/>` where it is not offered (no certificates; already on TLS): `<failure/>`
/// and the end of the stream (RFC 6120 §5.4.2.2).
#[test]
fn starttls_where_not_offered_fails() {
    let s = Server::start_with(
        "[c2s]\nlisten = \"127.0.0.1:0\"\nallow_plaintext = true\n",
        1,
    );
    let mut t = plain_tcp(s.c2s_port.unwrap());
    send(&mut t, HEADER);
    let f = read_until(&mut t, "</stream:features>");
    assert!(!f.contains("starttls") && f.contains("PLAIN"), "{f}");
    send(
        &mut t,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    let r = read_to_end(&mut t);
    assert!(
        r.contains("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            && r.contains("</stream:stream>"),
        "{r}"
    );
    let ca = TestCa::new();
    let s = Server::start_with(&c2s_config(&ca, ""), 1);
    let mut t = connect(&ca.client(&[b"xmpp-client"]), s.direct_tls_port.unwrap()).unwrap();
    send(&mut t, HEADER);
    let f = read_until(&mut t, "</stream:features>");
    assert!(!f.contains("starttls"), "{f}");
    send(
        &mut t,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    let r = read_to_end(&mut t);
    assert!(
        r.contains("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
        "{r}"
    );
}

/// XEP-0368: TLS first with ALPN `xmpp-client`, the stream after it begins with `<?xml`,
/// login and ping; a client offering only another protocol is refused in the handshake.
#[test]
fn direct_tls_with_alpn() {
    let ca = TestCa::new();
    let s = Server::start_with(&c2s_config(&ca, ""), 2);
    let port = s.direct_tls_port.unwrap();
    let mut t = connect(&ca.client(&[b"xmpp-client"]), port).unwrap();
    assert_eq!(t.conn.alpn_protocol(), Some(&b"xmpp-client"[..]));
    send(&mut t, HEADER);
    let f = read_until(&mut t, "</stream:features>");
    assert!(f.starts_with("<?xml"), "{f}");
    assert!(f.contains("PLAIN") && !f.contains("starttls"), "{f}");
    // The login restarts from scratch on the same TLS stream.
    let mut t = connect(&ca.client(&[b"xmpp-client"]), port).unwrap();
    let jid = login(&mut t, &s, "d1");
    assert!(jid.starts_with("d1@localhost/"), "{jid}");
    ping(&mut t, "p");
    // Refused in the handshake (the `no_application_protocol` alert itself is checked by
    // the unit tests: here the client may see the reset of the closed socket first).
    let refused = connect(&ca.client(&[b"h2"]), port);
    assert!(refused.is_err(), "a client offering only h2 was served");
    // A client that does not know the CA refuses the server (and the server goes on).
    let other = TestCa::new();
    assert!(connect(&other.client(&[b"xmpp-client"]), port).is_err());
    let mut t = connect(&ca.client(&[]), port).unwrap();
    login(&mut t, &s, "d2");
}

/// wss: the HTTPS listener serves `/health` and the WebSocket upgrade at `/xmpp` with the
/// JWT cookie; a wss user chats with a direct-TLS user.
#[tokio::test]
async fn wss_login_and_chat() {
    use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};
    let ca = TestCa::new();
    let s = Server::start_args(
        &c2s_config(&ca, ""),
        2,
        &["--jwt-secret", SECRET, "--listen-tls", "127.0.0.1:0"],
    );
    let port = s.tls_port.expect("an HTTPS listener");
    let cfg = ca.client(&[b"http/1.1"]);
    let mut h = connect(&cfg, port).unwrap();
    send(&mut h, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let r = read_until(&mut h, "\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let direct = s.direct_tls_port.unwrap();
    let token = s.token("wss1");
    let dport = direct;
    let ca_c = ca.client(&[b"xmpp-client"]);
    let srv_tok = s.token("dt1");
    let out = tokio::task::spawn_blocking(move || {
        let stream = connect(&cfg, port).unwrap();
        let mut req = format!("wss://localhost:{port}/xmpp").into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
        req.headers_mut()
            .insert("Cookie", format!("auth_token={token}").parse().unwrap());
        let (mut ws, resp) = tungstenite::client(req, stream).expect("wss upgrade");
        assert_eq!(resp.status(), 101);
        let recv = |ws: &mut tungstenite::WebSocket<Tls>, want: &str| -> String {
            loop {
                match ws.read().expect("wss read") {
                    Message::Text(t) if t.contains(want) => return t.to_string(),
                    _ => {}
                }
            }
        };
        let open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
        ws.send(Message::text(open)).unwrap();
        recv(&mut ws, "<stream:features");
        ws.send(Message::text("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>=</auth>")).unwrap();
        recv(&mut ws, "<success");
        ws.send(Message::text(open)).unwrap();
        recv(&mut ws, "<stream:features");
        ws.send(Message::text("<iq type='set' id='b' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>w</resource></bind></iq>")).unwrap();
        let b = recv(&mut ws, "</iq>");
        let wjid = between(&b, "<jid>", "</jid>").to_string();
        // The direct-TLS user writes to the wss user.
        let mut d = connect(&ca_c, dport).unwrap();
        send(&mut d, HEADER);
        read_until(&mut d, "</stream:features>");
        let cred = base64::engine::general_purpose::STANDARD.encode(format!("\0dt1\0{srv_tok}"));
        send(&mut d, &format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>"));
        read_until(&mut d, "<success");
        send(&mut d, HEADER);
        read_until(&mut d, "</stream:features>");
        send(&mut d, "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
        let db = read_until(&mut d, "</iq>");
        let djid = between(&db, "<jid>", "</jid>").to_string();
        send(&mut d, &format!("<message to='{wjid}' type='chat'><body>to wss ☃</body></message>"));
        let m = recv(&mut ws, "to wss ☃");
        assert!(m.contains(&format!("from='{djid}'")), "{m}");
        ws.send(Message::text(format!("<message xmlns='jabber:client' to='{djid}' type='chat'><body>to direct</body></message>"))).unwrap();
        let back = read_until(&mut d, "to direct");
        (m, back, wjid)
    })
    .await
    .unwrap();
    assert!(out.1.contains(&format!("from='{}'", out.2)), "{}", out.1);
}

/// A client that does not finish its handshake is closed after `tls.handshake_timeout_ms`
/// (direct TLS: nothing sent; STARTTLS: nothing after `<proceed/>`).
#[test]
fn handshake_timeout_closes_the_connection() {
    let ca = TestCa::new();
    let cfg = format!(
        "{}handshake_timeout_ms = 300\n\n[c2s]\nlisten = \"127.0.0.1:0\"\nlisten_direct_tls = \"127.0.0.1:0\"\n",
        ca.config()
    );
    let s = Server::start_with(&cfg, 1);
    let mut idle = plain_tcp(s.direct_tls_port.unwrap());
    let mut b = [0u8; 64];
    assert_eq!(idle.read(&mut b).expect("closed, not timed out"), 0);
    // Half a ClientHello.
    let mut half = plain_tcp(s.direct_tls_port.unwrap());
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let n = half.read(&mut b).unwrap_or(0);
    assert!(n == 0 || half.read(&mut b).unwrap_or(0) == 0);
    let mut t = plain_tcp(s.c2s_port.unwrap());
    send(&mut t, HEADER);
    read_until(&mut t, "</stream:features>");
    send(
        &mut t,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    read_until(&mut t, "<proceed");
    assert_eq!(read_to_end(&mut t), "", "closed without a word");
    // A client that does finish is served.
    let mut ok = starttls(&ca, s.c2s_port.unwrap());
    login(&mut ok, &s, "fast");
    assert!(s.log().contains("TLS handshake timed out"), "{}", s.log());
}

/// SIGHUP: new connections get the new certificate, established ones go on; a broken
/// file keeps the current certificate.
#[test]
fn sighup_reloads_the_certificate() {
    let mut ca = TestCa::new();
    let s = Server::start_with(&c2s_config(&ca, ""), 2);
    let port = s.direct_tls_port.unwrap();
    let cfg = ca.client(&[]);
    let mut live = connect(&cfg, port).unwrap();
    login(&mut live, &s, "r1");
    let first = ca.leaf_der.clone();
    let served = |c: &Tls| c.conn.peer_certificates().unwrap()[0].clone();
    assert_eq!(served(&connect(&cfg, port).unwrap()), first);
    ca.issue(&["localhost"]);
    let second = ca.leaf_der.clone();
    assert_ne!(first, second);
    unsafe { libc::kill(s.pid() as i32, libc::SIGHUP) };
    let until = Instant::now() + WAIT;
    while served(&connect(&cfg, port).unwrap()) != second {
        assert!(Instant::now() < until, "the new certificate is not served");
        std::thread::sleep(Duration::from_millis(50));
    }
    ping(&mut live, "after-reload");
    // A key that does not load: the log says so, the second certificate stays.
    std::fs::write(&ca.key_file, "garbage").unwrap();
    unsafe { libc::kill(s.pid() as i32, libc::SIGHUP) };
    let until = Instant::now() + WAIT;
    while !s.log().contains("not reloaded") {
        assert!(Instant::now() < until, "no log line for the failed reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served(&connect(&cfg, port).unwrap()), second);
    ping(&mut live, "after-bad-reload");
}

/// One session-ticket key for every shard: a client reconnecting resumes its TLS session
/// whichever shard accepts it.
#[test]
fn tls_sessions_resume_on_any_shard() {
    let ca = TestCa::new();
    let s = Server::start_with(&c2s_config(&ca, ""), 2);
    let port = s.direct_tls_port.unwrap();
    let cfg = ca.client(&[b"xmpp-client"]);
    let mut kinds = Vec::new();
    for _ in 0..16 {
        let mut t = connect(&cfg, port).unwrap();
        // The stream's first reply comes after the session ticket (TLS 1.3).
        send(&mut t, HEADER);
        read_until(&mut t, "</stream:features>");
        kinds.push(t.conn.handshake_kind());
    }
    assert_eq!(kinds[0], Some(rustls::HandshakeKind::Full));
    assert!(
        kinds[1..]
            .iter()
            .all(|k| *k == Some(rustls::HandshakeKind::Resumed)),
        "{kinds:?}"
    );
    // Both shards resumed sessions (16 connections: all on one shard is 1 in 32,768).
    let log = s.log();
    for shard in 0..2 {
        assert!(
            log.lines().any(|l| l.contains("TLS handshake done")
                && l.contains("resumed=true")
                && l.contains(&format!("shard={shard}"))),
            "shard {shard} resumed nothing:\n{log}"
        );
    }
}

/// The `openssl` command line tool, installed from Debian's packages if it is missing.
fn openssl_ready() {
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    READY.get_or_init(|| {
        let have = || Command::new("openssl").arg("version").output().is_ok();
        assert!(
            common::tools::apt_ensure("openssl", have),
            "openssl is missing and apt-get could not install it"
        );
    });
}

fn openssl(args: &[&str], stdin: &str) -> String {
    openssl_ready();
    let mut c = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `openssl s_client`: STARTTLS for XMPP verifies against the CA; direct TLS negotiates
/// ALPN `xmpp-client`; TLS 1.2 works and resumes from a saved session; TLS 1.1 is refused.
#[test]
fn openssl_s_client_probes() {
    let ca = TestCa::new();
    let s = Server::start_with(&c2s_config(&ca, ""), 2);
    let c2s = format!("127.0.0.1:{}", s.c2s_port.unwrap());
    let direct = format!("127.0.0.1:{}", s.direct_tls_port.unwrap());
    let caf = ca.ca_file.to_str().unwrap();
    let o = openssl(
        &[
            "s_client",
            "-starttls",
            "xmpp",
            "-xmpphost",
            "localhost",
            "-connect",
            &c2s,
            "-CAfile",
            caf,
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
        ],
        "",
    );
    assert!(o.contains("Verify return code: 0 (ok)"), "{o}");
    let o = openssl(
        &[
            "s_client",
            "-alpn",
            "xmpp-client",
            "-servername",
            "localhost",
            "-connect",
            &direct,
            "-CAfile",
            caf,
            "-verify_return_error",
        ],
        "",
    );
    assert!(
        o.contains("ALPN protocol: xmpp-client") && o.contains("Verify return code: 0 (ok)"),
        "{o}"
    );
    let sess = ca.dir.join("sess.pem");
    let sess = sess.to_str().unwrap();
    let o = openssl(
        &[
            "s_client",
            "-tls1_2",
            "-servername",
            "localhost",
            "-connect",
            &direct,
            "-CAfile",
            caf,
            "-sess_out",
            sess,
        ],
        "",
    );
    assert!(o.contains("TLSv1.2") && o.contains("New,"), "{o}");
    let o = openssl(
        &[
            "s_client",
            "-tls1_2",
            "-servername",
            "localhost",
            "-connect",
            &direct,
            "-CAfile",
            caf,
            "-sess_in",
            sess,
        ],
        "",
    );
    assert!(o.contains("Reused,"), "{o}");
    let o = openssl(
        &[
            "s_client",
            "-tls1_1",
            "-servername",
            "localhost",
            "-connect",
            &direct,
        ],
        "",
    );
    assert!(
        o.contains("Cipher is (NONE)") && !o.contains("New, TLSv1.1"),
        "{o}"
    );
}

/// An OpenSSL client on direct TLS, with its stdin and stdout: what it printed so far.
struct SClient {
    child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl SClient {
    fn start(args: &[&str]) -> SClient {
        openssl_ready();
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl");
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for mut pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut b) {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&b[..n]));
                }
            });
        }
        SClient { child, out }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        // One write (atomic on a pipe): s_client may exit as soon as the server answers a
        // line, before a second write of its newline.
        let r = stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush());
        if let Err(e) = r {
            std::thread::sleep(Duration::from_millis(200));
            panic!(
                "openssl s_client is gone ({e}) before {line:?}: {}",
                self.out.lock().unwrap()
            );
        }
    }

    /// Waits until the output holds `what` `n` times (the whole output so far).
    fn wait_for(&self, what: &str, n: usize) -> String {
        let end = Instant::now() + WAIT;
        loop {
            let o = self.out.lock().unwrap().clone();
            if o.matches(what).count() >= n || Instant::now() > end {
                return o;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OpenSSL clients on every cipher suite of TLS 1.3 and 1.2 Aoba offers (its own record
/// layer after the handshake, on rustls's keys): the stream opens both ways; on TLS 1.3
/// the client renews its key and asks for ours (`K`), and the stream goes on under the
/// new keys both ways.
#[test]
fn openssl_every_cipher_suite_and_key_updates() {
    let ca = TestCa::new();
    let s = Server::start_with(&c2s_config(&ca, ""), 1);
    let direct = format!("127.0.0.1:{}", s.direct_tls_port.unwrap());
    let caf = ca.ca_file.to_str().unwrap();
    for (version, flag, suite, name) in [
        (
            "-tls1_3",
            "-ciphersuites",
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_128_GCM_SHA256",
        ),
        (
            "-tls1_3",
            "-ciphersuites",
            "TLS_AES_256_GCM_SHA384",
            "TLS_AES_256_GCM_SHA384",
        ),
        (
            "-tls1_3",
            "-ciphersuites",
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_CHACHA20_POLY1305_SHA256",
        ),
        (
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ),
        (
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ),
        (
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
        ),
    ] {
        let mut c = SClient::start(&[
            "s_client",
            version,
            flag,
            suite,
            "-alpn",
            "xmpp-client",
            "-servername",
            "localhost",
            "-connect",
            &direct,
            "-CAfile",
            caf,
            "-verify_return_error",
        ]);
        c.send(HEADER);
        let o = c.wait_for("</stream:features>", 1);
        assert!(
            o.contains(&format!("Cipher is {name}")) && o.contains("</stream:features>"),
            "{suite}: {o}"
        );
        let user = format!("ossl{}", name.len() + version.len() * 7);
        let cred = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{user}\0{}", s.token(&user)));
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>"
        ));
        let o = c.wait_for("<success", 1);
        assert!(o.contains("<success"), "{suite}: {o}");
        c.send(HEADER);
        c.wait_for("</stream:features>", 2);
        c.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
        let o = c.wait_for("id='b1'", 1);
        assert!(o.contains("<jid>"), "{suite}: {o}");
        let rounds = if version == "-tls1_3" { 3 } else { 1 };
        for round in 0..rounds {
            if version == "-tls1_3" {
                // A key update, our key update asked for too.
                c.send("K");
                c.wait_for("KEYUPDATE", round + 1);
            }
            c.send(&format!(
                "<iq type='get' id='k{round}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
            ));
            let o = c.wait_for(&format!("id='k{round}'"), 1);
            assert!(
                o.contains(&format!("id='k{round}'")),
                "{suite} round {round}: {o}"
            );
        }
        c.send("</stream:stream>");
        let o = c.wait_for("</stream:stream>", 1);
        assert!(o.contains("</stream:stream>"), "{suite}: {o}");
        assert!(!o.to_lowercase().contains("alert"), "{suite}: {o}");
    }
    let log = s.log();
    assert!(!log.contains("TLS error"), "{log}");
}

/// The limits of plain connections hold over TLS: a stanza over `limits.max_stanza_bytes`
/// (the default) ends the stream with `policy-violation`, sent inside TLS.
#[test]
fn stanza_size_limit_over_tls() {
    let ca = TestCa::new();
    let s = Server::start_with(&c2s_config(&ca, ""), 1);
    let max = aoba::config::Config::default().limits.max_stanza_bytes;
    let mut t = connect(&ca.client(&[b"xmpp-client"]), s.direct_tls_port.unwrap()).unwrap();
    let jid = login(&mut t, &s, "big1");
    let body = "x".repeat(max + 1);
    let _ = t.write_all(
        format!("<message to='{jid}' type='chat'><body>{body}</body></message>").as_bytes(),
    );
    let _ = t.flush();
    let r = read_to_end(&mut t);
    assert!(
        r.contains("<policy-violation") && r.contains("</stream:stream>"),
        "{r}"
    );
    assert!(!r.contains(&body[..100]), "the stanza was not delivered");
}
