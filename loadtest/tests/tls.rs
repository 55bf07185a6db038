//! The TLS transports end to end, without the real server: the `aoba-loadtest` binary runs
//! `login` against a small in-test XMPP server (tokio-rustls with an rcgen-minted CA and a
//! certificate for `localhost`) that speaks just enough XMPP: STARTTLS (or TLS first, or a
//! WebSocket upgrade over TLS), SASL PLAIN, the restart, bind, initial presence and the
//! stream's end. The server records what each ClientHello carried (SNI, ALPN) and how each
//! handshake went (full or resumed); the test reads the loadtest's JSON report.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='fake' from='localhost' version='1.0'>";
const SASL: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const BIND: &str =
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";
const SECRET: &str = "S";

/// A CA, and a server config with a certificate for `localhost` signed by it.
struct Pki {
    ca_pem: String,
    server: Arc<ServerConfig>,
}

#[allow(deprecated)] // ring's provider: no post-quantum key exchange, which is fine here
fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "aoba-loadtest test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let mut server = ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    server.alpn_protocols = vec![b"xmpp-client".to_vec(), b"http/1.1".to_vec()];
    Pki {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// XEP-0368: TLS first.
    Tls,
    /// STARTTLS as it should go.
    Starttls,
    /// First features without <starttls/>.
    StarttlsNotOffered,
    /// <failure/> instead of <proceed/>.
    StarttlsFailure,
    /// Plaintext bytes after <proceed/>, in the same write.
    StarttlsJunk,
    /// WebSocket over TLS.
    Wss,
}

/// What the server saw.
#[derive(Default, Debug)]
struct Seen {
    /// SNI of each ClientHello.
    sni: Vec<Option<String>>,
    /// ALPN protocols offered in each ClientHello.
    alpn: Vec<Vec<String>>,
    /// Completed handshakes: true if resumed.
    resumed: Vec<bool>,
    /// Sessions that got as far as initial presence.
    logins: usize,
    /// Cookie headers of WebSocket upgrades.
    cookies: Vec<bool>,
    /// Anything the server found wrong in what the client sent.
    problems: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn note(seen: &Shared, problem: String) {
    seen.lock().unwrap().problems.push(problem);
}

/// Read until `needle` has arrived; hand out (and drop from `buf`) everything up to it.
async fn read_until<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
    needle: &str,
) -> Option<String> {
    loop {
        if let Some(i) = buf
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
        {
            let got: Vec<u8> = buf.drain(..i + needle.len()).collect();
            return String::from_utf8(got).ok();
        }
        let mut chunk = [0u8; 4096];
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The user and password of a SASL PLAIN `<auth>` element.
fn plain_creds(auth: &str) -> Option<(String, String)> {
    let b64 = auth.split('>').nth(1)?.split('<').next()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let mut parts = raw.split('\0');
    let (_authz, user, pass) = (parts.next()?, parts.next()?, parts.next()?);
    Some((user.to_string(), pass.to_string()))
}

/// The TLS handshake of the server side, recording the ClientHello and the handshake kind.
async fn accept_tls(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    seen: &Shared,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
        .await
        .ok()?;
    {
        let hello = start.client_hello();
        let mut s = seen.lock().unwrap();
        s.sni.push(hello.server_name().map(str::to_string));
        s.alpn.push(
            hello
                .alpn()
                .map(|a| a.map(|p| String::from_utf8_lossy(p).into_owned()).collect())
                .unwrap_or_default(),
        );
    }
    let tls = start.into_stream(config).await.ok()?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    seen.lock().unwrap().resumed.push(resumed);
    Some(tls)
}

/// RFC 6120 from the first stream header on: SASL PLAIN, restart, bind, presence, end.
async fn xmpp<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, seen: &Shared) -> Option<()> {
    let mut buf = Vec::new();
    let header = read_until(io, &mut buf, "streams'>").await?;
    if !header.contains("<stream:stream") || !header.contains("to='localhost'") {
        note(seen, format!("bad header {header}"));
    }
    io.write_all(format!("{HEADER}{SASL}").as_bytes())
        .await
        .ok()?;
    let auth = read_until(io, &mut buf, "</auth>").await?;
    let Some((user, pass)) = plain_creds(&auth) else {
        note(seen, format!("bad auth {auth}"));
        return None;
    };
    if pass.split('.').count() != 3 {
        note(seen, format!("the password of {user} is not a JWT: {pass}"));
    }
    io.write_all(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await
        .ok()?;
    read_until(io, &mut buf, "streams'>").await?;
    io.write_all(format!("{HEADER}{BIND}").as_bytes())
        .await
        .ok()?;
    read_until(io, &mut buf, "</iq>").await?;
    io.write_all(
        format!("<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>{user}@localhost/lt</jid></bind></iq>")
            .as_bytes(),
    )
    .await
    .ok()?;
    read_until(io, &mut buf, "<presence xmlns='jabber:client'/>").await?;
    seen.lock().unwrap().logins += 1;
    read_until(io, &mut buf, "</stream:stream>").await?;
    io.write_all(b"</stream:stream>").await.ok()?;
    io.shutdown().await.ok()
}

/// The same over RFC 7395 (one element per message), after the upgrade.
async fn xmpp_ws<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    seen: &Shared,
) -> Option<()> {
    async fn next<S: AsyncRead + AsyncWrite + Unpin>(
        ws: &mut tokio_tungstenite::WebSocketStream<S>,
    ) -> Option<String> {
        loop {
            match ws.next().await?.ok()? {
                Message::Text(t) => return Some(t.as_str().to_owned()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }
    let open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='fake' version='1.0'/>";
    let sasl = SASL.replace(
        "<stream:features>",
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    let bind = BIND.replace(
        "<stream:features>",
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    next(&mut ws).await.filter(|o| o.starts_with("<open"))?;
    ws.send(Message::text(open)).await.ok()?;
    ws.send(Message::text(sasl)).await.ok()?;
    let auth = next(&mut ws).await?;
    let (user, _) = plain_creds(&auth)?;
    ws.send(Message::text(
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    ))
    .await
    .ok()?;
    next(&mut ws).await.filter(|o| o.starts_with("<open"))?;
    ws.send(Message::text(open)).await.ok()?;
    ws.send(Message::text(bind)).await.ok()?;
    next(&mut ws).await.filter(|o| o.starts_with("<iq"))?;
    ws.send(Message::text(format!("<iq xmlns='jabber:client' type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>{user}@localhost/lt</jid></bind></iq>")))
        .await
        .ok()?;
    next(&mut ws).await.filter(|p| p.starts_with("<presence"))?;
    seen.lock().unwrap().logins += 1;
    next(&mut ws).await.filter(|c| c.starts_with("<close"))?;
    ws.send(Message::text(
        "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
    ))
    .await
    .ok()?;
    ws.close(None).await.ok()
}

async fn serve_one(mut tcp: TcpStream, mode: Mode, config: Arc<ServerConfig>, seen: Shared) {
    match mode {
        Mode::Tls => {
            if let Some(mut tls) = accept_tls(tcp, config, &seen).await {
                xmpp(&mut tls, &seen).await;
            }
        }
        Mode::Wss => {
            let Some(tls) = accept_tls(tcp, config, &seen).await else {
                return;
            };
            let seen2 = seen.clone();
            // the handshake's callback type is tungstenite's (an HTTP response as the error)
            #[allow(clippy::result_large_err)]
            let callback = move |req: &Request, mut resp: Response| {
                let cookie = req
                    .headers()
                    .get("cookie")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|c| c.starts_with("auth_token="));
                seen2.lock().unwrap().cookies.push(cookie);
                resp.headers_mut()
                    .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
                Ok(resp)
            };
            if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tls, callback).await {
                xmpp_ws(ws, &seen).await;
            }
        }
        _ => {
            let mut buf = Vec::new();
            if read_until(&mut tcp, &mut buf, "streams'>").await.is_none() {
                return;
            }
            let features = if mode == Mode::StarttlsNotOffered {
                SASL.to_string()
            } else {
                format!(
                    "<stream:features><starttls xmlns='{TLS_NS}'><required/></starttls></stream:features>"
                )
            };
            if tcp
                .write_all(format!("{HEADER}{features}").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            if mode == Mode::StarttlsNotOffered {
                let _ = read_until(&mut tcp, &mut buf, "never").await; // until the client leaves
                return;
            }
            let want = format!("<starttls xmlns='{TLS_NS}'/>");
            if read_until(&mut tcp, &mut buf, &want).await.is_none() {
                return;
            }
            if !buf.is_empty() {
                note(&seen, "the client wrote after <starttls/>".into());
            }
            let answer = match mode {
                Mode::StarttlsFailure => format!("<failure xmlns='{TLS_NS}'/></stream:stream>"),
                Mode::StarttlsJunk => format!("<proceed xmlns='{TLS_NS}'/><message/>"),
                _ => format!("<proceed xmlns='{TLS_NS}'/>"),
            };
            if tcp.write_all(answer.as_bytes()).await.is_err() || mode == Mode::StarttlsFailure {
                let _ = read_until(&mut tcp, &mut buf, "never").await;
                return;
            }
            if let Some(mut tls) = accept_tls(tcp, config, &seen).await {
                xmpp(&mut tls, &seen).await;
            }
        }
    }
}

/// A fake server on 127.0.0.1; returns its port and what it saw.
async fn fake_server(mode: Mode, config: Arc<ServerConfig>) -> (u16, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Shared = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve_one(tcp, mode, config.clone(), s.clone()));
        }
    });
    (port, seen)
}

fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "aoba-lt-tls-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `aoba-loadtest ARGS`; returns its exit code, stderr, and the JSON report if written.
async fn loadtest(args: &[String], json: &Path) -> (i32, String, Option<serde_json::Value>) {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_aoba-loadtest"))
            .args(args)
            .arg("--json")
            .arg(json)
            .args(["--no-progress", "--threads", "1", "--timeout", "20"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the loadtest ends by itself")
    .expect("the loadtest runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = std::fs::read_to_string(json)
        .ok()
        .map(|s| serde_json::from_str(&s).expect("the report is JSON"));
    (out.status.code().unwrap_or(-1), stderr, report)
}

struct Run {
    report: serde_json::Value,
    seen: Seen,
}

/// `login` of `sessions` sessions one after the other, over `transport` against a fake
/// server in `mode`.
async fn login(transport: &str, mode: Mode, sessions: usize, extra: &[&str]) -> Run {
    let pki = pki();
    let dir = scratch(transport);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let (port, seen) = fake_server(mode, pki.server.clone()).await;
    let url = match transport {
        "wss" => format!("wss://127.0.0.1:{port}/xmpp"),
        "tls" => format!("tls://127.0.0.1:{port}"),
        _ => format!("tcp://127.0.0.1:{port}"),
    };
    let mut args: Vec<String> = [
        "login",
        "--transport",
        transport,
        "--url",
        &url,
        "--ca",
        ca.to_str().unwrap(),
        "--jwt-secret",
        SECRET,
        "--sessions",
        &sessions.to_string(),
        "--rate",
        "1000",
        // one login at a time: each finds the tickets of the one before in the cache
        "--login-concurrency",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.contains(&"--domain") {
        args.extend(["--domain".into(), "localhost".into()]);
    }
    let json = dir.join("report.json");
    let (code, stderr, report) = loadtest(&args, &json).await;
    assert_eq!(code, 0, "{stderr}");
    let report = report.unwrap_or_else(|| panic!("no report; stderr: {stderr}"));
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(seen.problems.is_empty(), "{:?}", seen.problems);
    Run { report, seen }
}

fn failures(r: &serde_json::Value) -> Vec<(String, u64)> {
    r["login"]["failures"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

/// Two logins both succeed; the report names the transport and the resumption mode and
/// counts the handshakes as the server saw them.
fn assert_logged_in(run: &Run, transport: &str, resumption: &str, alpn: &[&str]) {
    let r = &run.report;
    assert_eq!(r["transport"], transport, "{r}");
    assert_eq!(r["tls_resumption"], resumption, "{r}");
    assert_eq!(r["login"]["ok"], 2, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(run.seen.logins, 2, "{:?}", run.seen);
    // SNI is the XMPP domain, not the URL's 127.0.0.1
    assert_eq!(run.seen.sni, vec![Some("localhost".to_string()); 2]);
    let alpn: Vec<String> = alpn.iter().map(|s| s.to_string()).collect();
    assert_eq!(run.seen.alpn, vec![alpn; 2]);
    let resumed = run.seen.resumed.iter().filter(|&&r| r).count() as u64;
    let full = run.seen.resumed.len() as u64 - resumed;
    assert_eq!(r["tls_full"], full, "{r}");
    assert_eq!(r["tls_resumed"], resumed, "{r}");
    assert_eq!(r["login"]["tls_full"], full, "{r}");
    if resumption == "on" {
        // the second login resumed with a ticket from the first
        assert_eq!((full, resumed), (1, 1), "{r}");
    } else {
        assert_eq!((full, resumed), (2, 0), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_logs_in_and_resumes() {
    let run = login("tls", Mode::Tls, 2, &[]).await;
    assert_logged_in(&run, "tls", "on", &["xmpp-client"]);
    let run = login("tls", Mode::Tls, 2, &["--tls-resumption", "off"]).await;
    assert_logged_in(&run, "tls", "off", &["xmpp-client"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_logs_in_and_resumes() {
    let run = login("starttls", Mode::Starttls, 2, &[]).await;
    assert_logged_in(&run, "starttls", "on", &[]);
    let run = login("starttls", Mode::Starttls, 2, &["--tls-resumption", "off"]).await;
    assert_logged_in(&run, "starttls", "off", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_logs_in_with_the_cookie() {
    let run = login("wss", Mode::Wss, 2, &[]).await;
    assert_logged_in(&run, "wss", "on", &["http/1.1"]);
    assert_eq!(run.seen.cookies, vec![true, true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_refusals_fail_the_login() {
    let run = login("starttls", Mode::StarttlsNotOffered, 1, &[]).await;
    assert_eq!(failures(&run.report), vec![("tls:not-offered".into(), 1)]);
    assert_eq!(run.report["tls_full"], 0);
    let run = login("starttls", Mode::StarttlsFailure, 1, &[]).await;
    assert_eq!(failures(&run.report), vec![("tls:failure".into(), 1)]);
    assert!(run.seen.sni.is_empty());
    // Bytes after <proceed/> are refused, never fed to TLS nor kept for the new stream (the
    // server writes them with <proceed/> in one write, which one loopback read returns whole).
    let run = login("starttls", Mode::StarttlsJunk, 1, &[]).await;
    assert_eq!(
        failures(&run.report),
        vec![("tls:bytes-after-proceed".into(), 1)]
    );
    assert!(run.seen.sni.is_empty(), "no handshake was started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_verified_for_the_domain() {
    // the server's certificate is for localhost: a session for example.org refuses it
    for transport in ["tls", "starttls"] {
        let mode = if transport == "tls" {
            Mode::Tls
        } else {
            Mode::Starttls
        };
        let run = login(transport, mode, 1, &["--domain", "example.org"]).await;
        assert_eq!(
            failures(&run.report),
            vec![("tls:certificate".into(), 1)],
            "{transport}"
        );
        assert_eq!(run.seen.sni, vec![Some("example.org".to_string())]);
        assert_eq!(run.seen.logins, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ca_is_not_trusted() {
    // the client trusts a different CA than the one that signed the server's certificate
    let other = pki();
    let pki = pki();
    let dir = scratch("other-ca");
    let ca = dir.join("other.pem");
    std::fs::write(&ca, &other.ca_pem).unwrap();
    let (port, seen) = fake_server(Mode::Tls, pki.server.clone()).await;
    let args: Vec<String> = [
        "login",
        "--transport",
        "tls",
        "--url",
        &format!("tls://127.0.0.1:{port}"),
        "--ca",
        ca.to_str().unwrap(),
        "--jwt-secret",
        SECRET,
        "--sessions",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, stderr, report) = loadtest(&args, &dir.join("r.json")).await;
    assert_eq!(code, 0, "{stderr}");
    let report = report.unwrap();
    assert_eq!(failures(&report), vec![("tls:certificate".into(), 1)]);
    assert!(stderr.contains("first login failure"), "{stderr}");
    assert_eq!(seen.lock().unwrap().logins, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn tls_transports_without_ca_are_refused() {
    let dir = scratch("no-ca");
    for (transport, url) in [
        ("tls", "tls://127.0.0.1:5223"),
        ("starttls", "tcp://127.0.0.1:5222"),
        ("wss", "wss://127.0.0.1:8443/xmpp"),
    ] {
        let args: Vec<String> = [
            "login",
            "--transport",
            transport,
            "--url",
            url,
            "--jwt-secret",
            SECRET,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let json = dir.join("r.json");
        let (code, stderr, report) = loadtest(&args, &json).await;
        assert_eq!(code, 2, "{transport}: {stderr}");
        assert!(stderr.contains("--ca"), "{stderr}");
        assert!(report.is_none());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
