//! Test harness: a real `aoba` process on an ephemeral loopback port and real WebSocket
//! clients (tokio-tungstenite). Timeouts here only bound a test's run; no test asserts
//! how long something took.
#![allow(dead_code)]

pub mod admin;
pub mod muc;
pub mod nats;
#[path = "postgres.rs"]
pub mod pgtest;
pub mod python;
pub mod tls;
pub mod tools;

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "test-secret-0123456789abcdef";
pub const DOMAIN: &str = "localhost";
pub const WAIT: Duration = Duration::from_secs(10);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    /// The TCP c2s port, when the configuration has a `[c2s]` listener.
    pub c2s_port: Option<u16>,
    /// The HTTPS (wss) port, with `server.listen_tls` or `--listen-tls`.
    pub tls_port: Option<u16>,
    /// The XEP-0368 direct TLS port, with `c2s.listen_direct_tls`.
    pub direct_tls_port: Option<u16>,
    /// The admin port (`GET /metrics`).
    pub admin_port: Option<u16>,
    pub dir: PathBuf,
    pub shards: usize,
    config: String,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_aoba")
}

pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "aoba-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Server {
    pub fn start() -> Server {
        Server::start_with("", 2)
    }

    /// Starts `aoba serve` with `config` (TOML) and `shards` shards on 127.0.0.1:0.
    pub fn start_with(config: &str, shards: usize) -> Server {
        Server::start_args(config, shards, &["--jwt-secret", SECRET])
    }

    pub fn start_args(config: &str, shards: usize, extra: &[&str]) -> Server {
        Server::start_env(config, shards, extra, &[])
    }

    /// `start_with`, plus environment variables (e.g. the debug-build fault hooks of
    /// `src/fault.rs`).
    pub fn start_with_env(config: &str, shards: usize, env: &[(&str, &str)]) -> Server {
        Server::start_env(config, shards, &["--jwt-secret", SECRET], env)
    }

    pub fn start_env(config: &str, shards: usize, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_in(temp_dir(), config, shards, extra, env)
    }

    /// Stops the server (SIGKILL when `kill`, else SIGTERM) and starts it again on the same
    /// data directory.
    pub fn restart(&mut self, kill: bool) {
        self.restart_env(kill, &[]);
    }

    /// `restart`, with environment variables for the new process (the fault hooks).
    pub fn restart_env(&mut self, kill: bool, env: &[(&str, &str)]) {
        if kill {
            let mut c = self.child.take().unwrap();
            let _ = c.kill();
            let _ = c.wait();
        } else {
            assert!(self.terminate().is_some_and(|s| s.success()));
        }
        let dir = std::mem::take(&mut self.dir);
        let next = Server::start_in(
            dir,
            &self.config.clone(),
            self.shards,
            &["--jwt-secret", SECRET],
            env,
        );
        let old = std::mem::replace(self, next);
        std::mem::forget(old); // its directory is ours now
    }

    /// A new server (same configuration) on a copy of `data`, a data directory (a restored
    /// backup).
    pub fn start_on_copy(&self, data: &std::path::Path) -> Server {
        fn copy(from: &std::path::Path, to: &std::path::Path) {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                let dest = to.join(e.file_name());
                if e.file_type().unwrap().is_dir() {
                    copy(&e.path(), &dest);
                } else {
                    std::fs::copy(e.path(), dest).unwrap();
                }
            }
        }
        let dir = temp_dir();
        copy(data, &dir.join("data"));
        Server::start_in(
            dir,
            &self.config.clone(),
            self.shards,
            &["--jwt-secret", SECRET],
            &[],
        )
    }

    /// `start_with` on a given listen address (a port known before the start).
    pub fn start_listen(config: &str, shards: usize, listen: &str) -> Server {
        Server::start_at(
            temp_dir(),
            config,
            shards,
            &["--jwt-secret", SECRET],
            &[],
            listen,
            "127.0.0.1:0",
        )
    }

    fn start_in(
        dir: PathBuf,
        config: &str,
        shards: usize,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Server::start_at(
            dir,
            config,
            shards,
            extra,
            env,
            "127.0.0.1:0",
            "127.0.0.1:0",
        )
    }

    /// `start_with` with the admin listener on a given address (known before the start).
    pub fn start_admin_at(config: &str, shards: usize, admin: &str) -> Server {
        Server::start_at(
            temp_dir(),
            config,
            shards,
            &["--jwt-secret", SECRET],
            &[],
            "127.0.0.1:0",
            admin,
        )
    }

    /// Starts `aoba serve` in `dir`, its listeners on `listen` and `admin`.
    fn start_at(
        dir: PathBuf,
        config: &str,
        shards: usize,
        extra: &[&str],
        env: &[(&str, &str)],
        listen: &str,
        admin: &str,
    ) -> Server {
        let cfg = dir.join("aoba.toml");
        std::fs::write(&cfg, config).unwrap();
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stderr.log"))
            .unwrap();
        let mut child = Command::new(bin())
            .args([
                "serve",
                "--config",
                cfg.to_str().unwrap(),
                "--listen",
                listen,
            ])
            .args([
                "--shards",
                &shards.to_string(),
                "--data-dir",
                dir.join("data").to_str().unwrap(),
                "--admin-listen",
                admin,
            ])
            .args(extra)
            .env("AOBA_LOG", "info")
            .env_remove("AOBA_JWT_SECRET")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn aoba");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_else(|| {
            let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            panic!("aoba did not start:\n{log}")
        });
        // "aoba listening on ws://127.0.0.1:PORT/xmpp shards=N"
        let port: u16 = first
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        // Then a line per other listener ("aoba c2s listening on tcp://127.0.0.1:PORT",
        // "aoba listening on wss://127.0.0.1:PORT/xmpp", "aoba c2s listening on
        // tls://127.0.0.1:PORT"), then "aoba ready".
        let (mut c2s_port, mut tls_port, mut direct_tls_port) = (None, None, None);
        let mut admin_port = None;
        for l in lines.by_ref() {
            let l = l.unwrap_or_default();
            if l == "aoba ready" {
                break;
            }
            let port = l
                .split("127.0.0.1:")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or_else(|| panic!("unexpected listener line {l:?}"));
            if l.contains("admin listening on http://") {
                admin_port = Some(port);
            } else if l.contains("tcp://") {
                c2s_port = Some(port);
            } else if l.contains("wss://") {
                tls_port = Some(port);
            } else if l.contains("tls://") {
                direct_tls_port = Some(port);
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Server {
            child: Some(child),
            port,
            c2s_port,
            tls_port,
            direct_tls_port,
            admin_port,
            dir,
            shards,
            config: config.to_string(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// A plain HTTP/1.1 GET on the server's port: the whole response as text.
    pub async fn http_get(&self, path: &str) -> String {
        self.http_request("GET", path).await
    }

    /// A plain HTTP/1.1 request without a body: the whole response as text.
    pub async fn http_request(&self, method: &str, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        tcp.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        let _ = tokio::time::timeout(WAIT, tcp.read_to_string(&mut out)).await;
        out
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// A valid HS256 token for `user`, as `aoba token` makes it.
    pub fn token(&self, user: &str) -> String {
        token(user, 3600)
    }

    /// Waits (bounded by `WAIT`) for the process to end by itself.
    pub fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        for _ in 0..(WAIT.as_millis() / 20) {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The admin listener's `/metrics` text.
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let port = self.admin_port.expect("an admin listener");
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    /// The value of an unlabelled series in `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let out = self.metrics();
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    }

    /// `kill -9`: the process ends at once, whatever it was doing.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        for _ in 0..300 {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The home shard of a user of this server.
    pub fn home(&self, user: &str) -> usize {
        aoba::runtime::home(&format!("{user}@{DOMAIN}"), self.shards).shard()
    }

    /// Two users whose home shards differ (so their messages cross a mailbox).
    pub fn users_apart(&self) -> (String, String) {
        let names: Vec<String> = (0..64).map(|i| format!("user{i}")).collect();
        let a = &names[0];
        let b = names
            .iter()
            .find(|b| self.home(b) != self.home(a))
            .expect("users on two shards");
        (a.clone(), b.clone())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn token(user: &str, ttl_s: u64) -> String {
    let mut cfg = aoba::config::Config::default();
    cfg.auth.jwt_secret = SECRET.into();
    aoba::xmpp::jwt::mint(&cfg.auth, Some(SECRET), user, ttl_s).unwrap()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token from arbitrary claims, signed HS256 with `secret`.
pub fn token_claims(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `path`, with the `xmpp` subprotocol unless `protocol` is None.
pub async fn ws_connect(
    server: &Server,
    path: &str,
    cookie: Option<&str>,
    protocol: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = server.url(path).into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    if let Some(c) = cookie {
        req.headers_mut().insert(
            "Cookie",
            HeaderValue::from_str(&format!("theme=dark; auth_token={c}")).unwrap(),
        );
    }
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connect timed out")?;
    if protocol.is_some() {
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap()),
            Some("xmpp")
        );
    }
    Ok(ws)
}

/// The HTTP status of a refused upgrade.
pub async fn upgrade_status(
    server: &Server,
    path: &str,
    cookie: Option<&str>,
    protocol: Option<&str>,
) -> u16 {
    match ws_connect(server, path, cookie, protocol).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

pub struct Client {
    pub ws: Ws,
    pub jid: String,
}

pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub const OPEN: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

impl Client {
    pub async fn connect(server: &Server, cookie: Option<&str>) -> Client {
        Client {
            ws: ws_connect(server, "/xmpp", cookie, Some("xmpp"))
                .await
                .expect("upgrade"),
            jid: String::new(),
        }
    }

    pub async fn send(&mut self, s: &str) {
        self.ws.send(Message::text(s)).await.expect("send");
    }

    /// The next frame of any kind (None: the connection ended).
    pub async fn next_msg(&mut self) -> Option<Message> {
        match tokio::time::timeout(WAIT, self.ws.next()).await {
            Ok(Some(Ok(m))) => Some(m),
            Ok(Some(Err(_))) | Ok(None) => None,
            Err(_) => panic!("{}: nothing received within the test bound", self.jid),
        }
    }

    /// The next text frame.
    pub async fn recv(&mut self) -> String {
        loop {
            match self.next_msg().await {
                Some(Message::Text(t)) => return t.to_string(),
                Some(Message::Close(c)) => {
                    panic!("{}: closed {c:?} while waiting for a stanza", self.jid)
                }
                Some(_) => continue,
                None => panic!("{}: connection ended while waiting for a stanza", self.jid),
            }
        }
    }

    /// Skips text frames until one contains `pat`.
    pub async fn recv_until(&mut self, pat: &str) -> String {
        loop {
            let m = self.recv().await;
            if m.contains(pat) {
                return m;
            }
        }
    }

    /// `recv_until` for a client that wrote faster than the rate limit: its writes finished
    /// into kernel buffers long before the server read them, so the answer may take up to
    /// `bound` (the server is still reading at the shaped rate).
    pub async fn recv_until_within(&mut self, pat: &str, bound: Duration) -> String {
        let jid = self.jid.clone();
        tokio::time::timeout(bound, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) if t.contains(pat) => return t.to_string(),
                    Some(Ok(_)) => {}
                    _ => panic!("{jid}: the connection ended while waiting for {pat}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{jid}: no {pat} within {bound:?}"))
    }

    /// Expects `<stream:error>` with `cond`, then `<close/>`, then the end of the connection.
    pub async fn expect_stream_error(&mut self, cond: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.next_msg().await {
                Some(Message::Text(t)) if t.contains("<stream:error") => {
                    assert!(
                        t.contains(&format!(
                            "<{cond} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                        )),
                        "expected {cond}, got {t}"
                    );
                    let close = self.recv().await;
                    assert!(
                        close.contains("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'"),
                        "expected <close/>, got {close}"
                    );
                    self.expect_end().await;
                    return t.to_string();
                }
                Some(Message::Text(t)) => seen.push(t.to_string()),
                Some(_) => {}
                None => panic!("connection ended without stream error {cond}; saw {seen:?}"),
            }
        }
    }

    /// Reads until the connection ends; returns the WebSocket close code if one came.
    pub async fn expect_end(&mut self) -> Option<u16> {
        let mut code = None;
        loop {
            match self.next_msg().await {
                Some(Message::Close(c)) => code = c.map(|c| u16::from(c.code)),
                Some(_) => {}
                None => return code,
            }
        }
    }

    /// `<open/>` → the server's `<open/>` and features.
    pub async fn open(&mut self) -> String {
        self.send(OPEN).await;
        let open = self.recv().await;
        assert!(
            open.starts_with("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'"),
            "{open}"
        );
        assert!(
            open.contains("from='localhost'") && open.contains("version='1.0'"),
            "{open}"
        );
        self.recv_until("<stream:features").await
    }

    pub async fn auth_plain(&mut self, authcid: &str, password: &str) -> String {
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
            b64(&format!("\0{authcid}\0{password}"))
        ))
        .await;
        self.recv().await
    }

    pub async fn bind(&mut self, resource: Option<&str>) -> String {
        let r = resource
            .map(|r| format!("<resource>{r}</resource>"))
            .unwrap_or_default();
        self.send(&format!("<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>{r}</bind></iq>")).await;
        self.recv_until("bind1").await
    }

    /// Cookie login (the Aoba API): upgrade with the JWT cookie, SASL auto-succeeds, bind.
    pub async fn login(server: &Server, user: &str, resource: Option<&str>) -> Client {
        let mut c = Client::connect(server, Some(&server.token(user))).await;
        c.jid = format!("{user}@{DOMAIN}");
        let f = c.open().await;
        assert!(f.contains("<mechanism>PLAIN</mechanism>"), "{f}");
        let s = c.auth_plain(user, "ignored").await;
        assert!(s.contains("<success"), "{s}");
        let f = c.open().await;
        assert!(f.contains("urn:ietf:params:xml:ns:xmpp-bind"), "{f}");
        let b = c.bind(resource).await;
        assert!(b.contains("type='result'"), "{b}");
        c.jid = between(&b, "<jid>", "</jid>").to_string();
        c
    }

    /// Login and initial presence with `priority`.
    pub async fn online(server: &Server, user: &str, resource: &str, priority: i8) -> Client {
        let mut c = Client::login(server, user, Some(resource)).await;
        c.send(&format!(
            "<presence xmlns='jabber:client'><priority>{priority}</priority></presence>"
        ))
        .await;
        // Our own presence comes back (RFC 6121 §4.2.2).
        c.recv_until("<presence").await;
        c
    }

    /// Sends a message to `to` and waits until the recipient `marker` confirms ordering:
    /// used to show that something did NOT arrive before it.
    pub async fn ping_server(&mut self, id: &str) -> String {
        self.send(&format!(
            "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
        self.recv_until(&format!("id='{id}'")).await
    }
}

pub fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let i = s.find(a).unwrap_or_else(|| panic!("{a} not in {s}")) + a.len();
    let j = s[i..].find(b).unwrap_or_else(|| panic!("{b} not in {s}")) + i;
    &s[i..j]
}

/// A raw WebSocket over TCP, for frames tungstenite will not send (unmasked, RSV bits...).
pub struct Raw {
    pub tcp: tokio::net::TcpStream,
}

impl Raw {
    pub async fn connect(server: &Server, cookie: Option<&str>) -> Raw {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        Raw::upgrade(tcp, cookie).await
    }

    /// The WebSocket upgrade to `/xmpp` on a connected socket (one the test tuned).
    pub async fn upgrade(mut tcp: tokio::net::TcpStream, cookie: Option<&str>) -> Raw {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let cookie = cookie
            .map(|c| format!("Cookie: auth_token={c}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET /xmpp HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n{cookie}\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert!(
                n == 1,
                "closed during handshake: {}",
                String::from_utf8_lossy(&got)
            );
            got.push(b[0]);
        }
        let head = String::from_utf8(got).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{head}"
        );
        Raw { tcp }
    }

    /// Writes one frame; `mask` None sends it unmasked.
    pub async fn frame(&mut self, b0: u8, payload: &[u8], mask: Option<[u8; 4]>) {
        use tokio::io::AsyncWriteExt;
        let mut v = vec![b0];
        let m = if mask.is_some() { 0x80 } else { 0 };
        if payload.len() < 126 {
            v.push(m | payload.len() as u8);
        } else {
            v.push(m | 126);
            v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        match mask {
            Some(k) => {
                v.extend_from_slice(&k);
                v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => v.extend_from_slice(payload),
        }
        self.tcp.write_all(&v).await.unwrap();
    }

    /// Reads one server frame: (first byte, payload). None at end of stream.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let mut h = [0u8; 2];
        tokio::time::timeout(WAIT, self.tcp.read_exact(&mut h))
            .await
            .expect("read bound")
            .ok()?;
        assert_eq!(h[1] & 0x80, 0, "server frames are never masked");
        let len = match h[1] & 0x7F {
            126 => {
                let mut l = [0u8; 2];
                self.tcp.read_exact(&mut l).await.ok()?;
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                self.tcp.read_exact(&mut l).await.ok()?;
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut p = vec![0u8; len];
        self.tcp.read_exact(&mut p).await.ok()?;
        Some((h[0], p))
    }

    /// Reads frames until a close frame; returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            match self.read_frame().await {
                Some((b0, p)) if b0 & 0x0F == 0x8 => return u16::from_be_bytes([p[0], p[1]]),
                Some(_) => continue,
                None => panic!("connection ended without a close frame"),
            }
        }
    }
}
