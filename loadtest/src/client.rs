//! One XMPP client: connect from a chosen loopback source address; for `wss` and `tls` the
//! TLS handshake (SNI and certificate name = the XMPP domain); over WebSocket, upgrade
//! (optionally with a JWT cookie and the `xmpp` subprotocol); then the negotiation, the same
//! over every transport (RFC 7395 `<open/>` on WebSocket, RFC 6120 `<stream:stream>` on
//! TCP): open, features, for `starttls` STARTTLS and a new stream over TLS, SASL PLAIN,
//! restart, bind, legacy session, initial presence.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::tls::{self, TlsClient};
use crate::transport::{Conn, ConnError, Frame, Io, MAX_ELEMENT, Transport, Ws};
use crate::xml;

pub const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Mint an HS256 JWT and send it as `Cookie: auth_token=...` on the upgrade (WebSocket only).
    JwtCookie,
    /// Mint an HS256 JWT and use it as the SASL PLAIN password.
    JwtPlain,
    /// SASL PLAIN with `--password`.
    Plain,
}

/// One server URL (`--url`) and its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddrV4,
}

/// The URL (index into `--url`'s list) of session `idx` (0-based, global over the run and
/// over `hold --procs` workers): round-robin by session index.
pub fn url_index(idx: usize, urls: usize) -> usize {
    idx % urls.max(1)
}

/// Everything a client needs to log in; shared by all sessions of a run.
#[derive(Clone, Debug)]
pub struct ClientCfg {
    pub transport: Transport,
    /// The `--url`s (at least one); session `idx` uses `targets[url_index(idx, len)]`.
    pub targets: Vec<Target>,
    pub domain: String,
    pub auth: AuthMode,
    pub jwt_secret: String,
    pub password: String,
    pub users_prefix: String,
    /// An Aoba cluster: every session's user, chosen by home node (`--cluster-nodes`).
    pub names: Option<Arc<Vec<String>>>,
    pub subprotocol: bool,
    /// An XMPP-FTW JSON session over Socket.IO instead of XMPP.
    pub ftw: bool,
    pub resource: String,
    pub timeout: Duration,
    pub src_addrs: u32,
    pub read_buffer: usize,
    /// The TLS client of `wss`, `starttls` and `tls` (None on `ws` and `tcp`).
    pub tls: Option<Arc<TlsClient>>,
}

impl ClientCfg {
    /// The server of session `idx` (0-based): always the same one for that index.
    pub fn target(&self, idx: usize) -> &Target {
        &self.targets[url_index(idx, self.targets.len())]
    }

    /// The user of session number `n` (1-based: session index + 1).
    pub fn user(&self, n: usize) -> String {
        match self.names.as_ref().and_then(|v| v.get(n.wrapping_sub(1))) {
            Some(u) => u.clone(),
            None => format!("{}{}", self.users_prefix, n),
        }
    }

    /// Source address for session `idx`: 127.0.0.1, 127.0.0.2, ... skipping .0 and .255.
    pub fn src_addr(&self, idx: usize) -> Ipv4Addr {
        let k = (idx as u32) % self.src_addrs.max(1);
        // 254 usable last octets per /24 (1..=254)
        let third = k / 254;
        let fourth = k % 254 + 1;
        let second = third / 256;
        Ipv4Addr::new(127, second as u8, (third % 256) as u8, fourth as u8)
    }

    fn ws_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer)
            .write_buffer_size(0)
            .max_message_size(Some(MAX_ELEMENT))
            .max_frame_size(Some(MAX_ELEMENT))
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
}

pub fn mint_jwt(secret: &str, user: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = Claims {
        sub: user,
        iat: now,
        exp: now + 3600,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 encoding cannot fail")
}

/// Why a login failed; `reason` is a short, low-cardinality key for the failure table.
#[derive(Debug, Clone)]
pub struct LoginError {
    pub reason: String,
    pub detail: String,
}

impl LoginError {
    fn new(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        LoginError {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// A logged-in session ready for the scenario's run loop.
pub struct Session {
    pub conn: Conn,
    pub jid: String,
    pub login_time: Duration,
}

/// TCP connect with bind-before-connect to `src` (port chosen at connect time).
async fn tcp_connect(src: Ipv4Addr, dst: SocketAddrV4) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    // Let the kernel pick the source port at connect() so one source address can reuse a port
    // towards different destinations (IP_BIND_ADDRESS_NO_PORT, Linux >= 4.2).
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: valid fd, valid pointer to a c_int of the given length.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(src, 0)).into())?;
    let std_stream: std::net::TcpStream = sock.into();
    let ts = TcpSocket::from_std_stream(std_stream);
    ts.connect(SocketAddr::V4(dst)).await
}

struct Negotiator<'a> {
    conn: Conn,
    deadline: tokio::time::Instant,
    cfg: &'a ClientCfg,
}

impl Negotiator<'_> {
    /// The next frame, within the login deadline.
    async fn frame(&mut self, stage: &str) -> Result<Frame, LoginError> {
        match tokio::time::timeout_at(self.deadline, self.conn.recv()).await {
            Err(_) => Err(LoginError::new(format!("timeout:{stage}"), "")),
            Ok(Err(e)) => Err(LoginError::new(
                format!("{}:{stage}", e.login_prefix()),
                e.to_string(),
            )),
            Ok(Ok(None)) => Err(LoginError::new(format!("closed:{stage}"), "")),
            Ok(Ok(Some(f))) => Ok(f),
        }
    }

    /// The next message's text (XMPP-FTW over Socket.IO).
    async fn text(&mut self, stage: &str) -> Result<String, LoginError> {
        match self.frame(stage).await? {
            Frame::Open(s) => Ok(s),
            Frame::Stanza(s) => Ok(s.into()),
            Frame::Close => Err(LoginError::new(format!("closed:{stage}"), "")),
        }
    }

    /// Read frames until one whose root local name is in `want` (`open` for the stream's
    /// opening); fail on stream errors and the stream's end.
    async fn expect(&mut self, stage: &str, want: &[&str]) -> Result<String, LoginError> {
        loop {
            let frame = match self.frame(stage).await? {
                Frame::Open(o) if want.contains(&"open") => return Ok(o),
                Frame::Open(_) => continue,
                Frame::Close => return Err(LoginError::new(format!("closed:{stage}"), "")),
                Frame::Stanza(s) => String::from(s),
            };
            let local = xml::root_local(&frame);
            if want.contains(&local) {
                return Ok(frame);
            }
            match local {
                "close" => {
                    let uri = xml::root_attr(&frame, "see-other-uri").unwrap_or_default();
                    return Err(LoginError::new("redirect", uri));
                }
                "error"
                    if xml::root_name(&frame).contains("stream")
                        || frame.contains("xmpp-streams") =>
                {
                    return Err(LoginError::new(
                        format!("stream-error:{}", xml::error_condition(&frame)),
                        frame,
                    ));
                }
                _ => continue, // ignore anything else (e.g. early presence)
            }
        }
    }

    async fn send(&mut self, stage: &str, s: String) -> Result<(), LoginError> {
        let r = tokio::time::timeout_at(self.deadline, self.conn.send(s)).await;
        written(stage, r)
    }

    /// Open the stream (`<open/>` or the stream header), read the server's opening and the
    /// features.
    async fn open(&mut self, stage: &str) -> Result<String, LoginError> {
        let r = tokio::time::timeout_at(self.deadline, self.conn.open(&self.cfg.domain)).await;
        written(stage, r)?;
        let open = self.expect(stage, &["open", "features"]).await?;
        if xml::root_local(&open) == "features" {
            return Ok(open);
        }
        self.expect(stage, &["features"]).await
    }
}

/// The outcome of a write within the login deadline.
fn written(
    stage: &str,
    r: Result<Result<(), ConnError>, tokio::time::error::Elapsed>,
) -> Result<(), LoginError> {
    match r {
        Err(_) => Err(LoginError::new(format!("timeout:{stage}"), "")),
        Ok(Err(e)) => Err(LoginError::new(
            format!("{}:{stage}", e.login_prefix()),
            e.to_string(),
        )),
        Ok(Ok(())) => Ok(()),
    }
}

/// Connect to `target`, upgrade and negotiate session number `n` (user `{prefix}{n}`) from
/// source `src`. A server that sends the client elsewhere (RFC 7395 `see-other-uri`, an
/// Aoba cluster's `cluster.redirect`) is followed once; the login time includes both.
pub async fn login(
    cfg: &ClientCfg,
    target: &Target,
    n: usize,
    src: Ipv4Addr,
) -> Result<Session, LoginError> {
    let t0 = Instant::now();
    match login_at(cfg, target, n, src).await {
        Err(e) if e.reason == "redirect" => {
            let addr = crate::transport::parse_url(&e.detail, cfg.transport)
                .map_err(|m| LoginError::new("redirect:bad-uri", m))?;
            let other = Target {
                url: e.detail.clone(),
                addr,
            };
            let mut s = login_at(cfg, &other, n, src).await?;
            s.login_time = t0.elapsed();
            Ok(s)
        }
        r => r,
    }
}

async fn login_at(
    cfg: &ClientCfg,
    target: &Target,
    n: usize,
    src: Ipv4Addr,
) -> Result<Session, LoginError> {
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let user = cfg.user(n);
    let token = match cfg.auth {
        AuthMode::Plain => None,
        AuthMode::JwtCookie | AuthMode::JwtPlain => Some(mint_jwt(&cfg.jwt_secret, &user)),
    };

    let tcp = match tokio::time::timeout_at(deadline, tcp_connect(src, target.addr)).await {
        Err(_) => return Err(LoginError::new("timeout:connect", "")),
        Ok(Err(e)) => {
            let kind = match e.raw_os_error() {
                Some(libc::ECONNREFUSED) => "connect:refused".to_string(),
                Some(libc::EADDRNOTAVAIL) => "connect:addr-not-avail".to_string(),
                Some(libc::EMFILE) | Some(libc::ENFILE) => "connect:too-many-files".to_string(),
                Some(c) => format!("connect:errno-{c}"),
                None => "connect:other".to_string(),
            };
            return Err(LoginError::new(kind, e.to_string()));
        }
        Ok(Ok(s)) => s,
    };

    let conn = match cfg.transport {
        Transport::Ws => {
            Conn::Ws(upgrade(cfg, target, Io::Plain(tcp), token.as_deref(), deadline).await?)
        }
        Transport::Wss => {
            let io = tls_handshake(cfg, tcp, deadline).await?;
            Conn::Ws(upgrade(cfg, target, io, token.as_deref(), deadline).await?)
        }
        Transport::Tcp | Transport::Starttls => Conn::xml(Io::Plain(tcp), cfg.read_buffer),
        Transport::Tls => Conn::xml(tls_handshake(cfg, tcp, deadline).await?, cfg.read_buffer),
    };

    let mut ng = Negotiator {
        conn,
        deadline,
        cfg,
    };
    if cfg.ftw {
        return ftw_login(ng, &user, token.as_deref(), t0).await;
    }
    let mut features = ng.open("open").await?;

    if cfg.transport == Transport::Starttls {
        // RFC 6120 §5.4: <starttls/>, <proceed/>, the TLS handshake on the same socket, and
        // a new stream over TLS, whose features are the ones that count from here on.
        if !offers_starttls(&features) {
            return Err(LoginError::new("tls:not-offered", features));
        }
        ng.send("starttls", format!("<starttls xmlns='{TLS_NS}'/>"))
            .await?;
        let r = ng.expect("starttls", &["proceed", "failure"]).await?;
        if xml::root_local(&r) != "proceed" || !r.contains(TLS_NS) {
            return Err(LoginError::new("tls:failure", r));
        }
        let Negotiator {
            conn,
            deadline,
            cfg,
        } = ng;
        let tcp = conn
            .into_tcp()
            .map_err(|e| LoginError::new("tls:bytes-after-proceed", e))?;
        let io = tls_handshake(cfg, tcp, deadline).await?;
        ng = Negotiator {
            conn: Conn::xml(io, cfg.read_buffer),
            deadline,
            cfg,
        };
        features = ng.open("tls-restart").await?;
    }

    if !xml::has_element(&features, "mechanisms") && xml::has_element(&features, "starttls") {
        return Err(LoginError::new(
            "tls:required",
            format!("the server requires STARTTLS (use --transport starttls): {features}"),
        ));
    }
    if xml::has_element(&features, "mechanisms") {
        if !features.contains(">PLAIN<") {
            return Err(LoginError::new("sasl:no-plain", features));
        }
        let password = match cfg.auth {
            AuthMode::Plain => cfg.password.as_str(),
            _ => token.as_deref().unwrap_or(""),
        };
        let cred =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        ng.send(
            "auth",
            format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>"
            ),
        )
        .await?;
        let r = ng.expect("auth", &["success", "failure"]).await?;
        if xml::root_local(&r) == "failure" {
            return Err(LoginError::new(
                format!("sasl:{}", xml::error_condition(&r)),
                r,
            ));
        }
        features = ng.open("restart").await?;
    }

    if !xml::has_element(&features, "bind") {
        return Err(LoginError::new("no-bind-feature", features));
    }
    let res = xml::escape(&cfg.resource);
    ng.send(
        "bind",
        format!(
            "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{res}</resource></bind></iq>"
        ),
    )
    .await?;
    let jid = loop {
        let r = ng.expect("bind", &["iq"]).await?;
        if xml::root_attr(&r, "id") != Some("b1") {
            continue;
        }
        if xml::root_attr(&r, "type") != Some("result") {
            return Err(LoginError::new(
                format!("bind:{}", xml::error_condition(&r)),
                r,
            ));
        }
        match xml::child_text(&r, "jid") {
            Some(j) if !j.is_empty() => break j.to_string(),
            _ => return Err(LoginError::new("bind:no-jid", r)),
        }
    };

    // Legacy RFC 3921 session establishment, only when advertised and not optional.
    if features.contains("urn:ietf:params:xml:ns:xmpp-session") && !session_optional(&features) {
        ng.send(
            "session",
            "<iq xmlns='jabber:client' type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
                .to_string(),
        )
        .await?;
        loop {
            let r = ng.expect("session", &["iq"]).await?;
            if xml::root_attr(&r, "id") != Some("s1") {
                continue;
            }
            if xml::root_attr(&r, "type") != Some("result") {
                return Err(LoginError::new(
                    format!("session:{}", xml::error_condition(&r)),
                    r,
                ));
            }
            break;
        }
    }

    ng.send("presence", "<presence xmlns='jabber:client'/>".to_string())
        .await?;
    Ok(Session {
        conn: ng.conn,
        jid,
        login_time: t0.elapsed(),
    })
}

/// `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>` among the stream features.
fn offers_starttls(features: &str) -> bool {
    xml::has_element(features, "starttls") && features.contains(TLS_NS)
}

/// The TLS handshake over the connected socket, within the login deadline.
async fn tls_handshake(
    cfg: &ClientCfg,
    tcp: TcpStream,
    deadline: tokio::time::Instant,
) -> Result<Io, LoginError> {
    let Some(tls) = &cfg.tls else {
        return Err(LoginError::new("tls:no-config", "no TLS client configured"));
    };
    match tokio::time::timeout_at(deadline, tls.handshake(tcp)).await {
        Err(_) => Err(LoginError::new("timeout:tls", "")),
        Ok(Err(e)) => Err(LoginError::new(tls::handshake_reason(&e), e.to_string())),
        Ok(Ok(s)) => Ok(Io::Tls(Box::new(s))),
    }
}

/// The WebSocket upgrade (with the `xmpp` subprotocol and the JWT cookie if asked), over the
/// plain socket (`ws`) or TLS (`wss`).
async fn upgrade(
    cfg: &ClientCfg,
    target: &Target,
    io: Io,
    token: Option<&str>,
    deadline: tokio::time::Instant,
) -> Result<Ws, LoginError> {
    let url = if cfg.ftw {
        format!(
            "{}{}/socket.io/?EIO=4&transport=websocket",
            cfg.transport.scheme(),
            target.addr
        )
    } else {
        target.url.clone()
    };
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| LoginError::new("bad-url", e.to_string()))?;
    if cfg.subprotocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
    }
    if cfg.auth == AuthMode::JwtCookie {
        let v = format!("auth_token={}", token.unwrap_or(""));
        req.headers_mut().insert(
            "Cookie",
            HeaderValue::from_str(&v).map_err(|e| LoginError::new("bad-cookie", e.to_string()))?,
        );
    }
    let hs = tokio_tungstenite::client_async_with_config(req, io, Some(cfg.ws_config()));
    match tokio::time::timeout_at(deadline, hs).await {
        Err(_) => Err(LoginError::new("timeout:upgrade", "")),
        Ok(Err(WsError::Http(resp))) => Err(LoginError::new(
            format!("upgrade:http-{}", resp.status().as_u16()),
            "",
        )),
        Ok(Err(e)) => Err(LoginError::new("upgrade:error", e.to_string())),
        Ok(Ok((ws, _resp))) => Ok(ws),
    }
}

/// XMPP-FTW over Socket.IO: Engine.IO open, namespace connect, `xmpp.login` (the cookie,
/// or the JWT as password), then initial presence.
async fn ftw_login(
    mut ng: Negotiator<'_>,
    user: &str,
    token: Option<&str>,
    t0: Instant,
) -> Result<Session, LoginError> {
    let open = ng.text("eio-open").await?;
    if !open.starts_with("0{") {
        return Err(LoginError::new("ftw:no-open", open));
    }
    ng.send("sio-connect", "40".into()).await?;
    loop {
        let f = ng.text("sio-connect").await?;
        if f.starts_with("40") {
            break;
        }
    }
    let domain = &ng.cfg.domain;
    let res = &ng.cfg.resource;
    let password = match (ng.cfg.auth, token) {
        (AuthMode::JwtPlain, Some(t)) => format!(",\"password\":\"{t}\""),
        _ => String::new(),
    };
    ng.send(
        "login",
        format!(
            "42[\"xmpp.login\",{{\"jid\":\"{user}@{domain}\",\"resource\":\"{res}\"{password}}}]"
        ),
    )
    .await?;
    let jid = loop {
        let f = ng.text("login").await?;
        if f.starts_with("42[\"xmpp.connection\"") {
            break format!("{user}@{domain}/{res}");
        }
        if f.starts_with("42[\"xmpp.error\"") {
            return Err(LoginError::new("ftw:login-fail", f));
        }
    };
    ng.send("presence", "42[\"xmpp.presence\",{}]".into())
        .await?;
    Ok(Session {
        conn: ng.conn,
        jid,
        login_time: t0.elapsed(),
    })
}

fn session_optional(features: &str) -> bool {
    match features.find("urn:ietf:params:xml:ns:xmpp-session") {
        Some(i) => {
            let rest = &features[i..];
            let end = rest
                .find("</session>")
                .unwrap_or(rest.find("/>").unwrap_or(rest.len()));
            rest[..end].contains("<optional")
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn src_addrs() {
        let mut cfg = ClientCfg {
            transport: Transport::Ws,
            targets: vec![Target {
                url: String::new(),
                addr: "127.0.0.1:1".parse().unwrap(),
            }],
            domain: "d".into(),
            auth: AuthMode::Plain,
            jwt_secret: String::new(),
            password: String::new(),
            users_prefix: "user".into(),
            names: None,
            subprotocol: true,
            ftw: false,
            resource: "lt".into(),
            timeout: Duration::from_secs(1),
            src_addrs: 1000,
            read_buffer: 4096,
            tls: None,
        };
        assert_eq!(cfg.src_addr(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(cfg.src_addr(253), Ipv4Addr::new(127, 0, 0, 254));
        assert_eq!(cfg.src_addr(254), Ipv4Addr::new(127, 0, 1, 1));
        cfg.src_addrs = 1;
        assert_eq!(cfg.src_addr(77), Ipv4Addr::new(127, 0, 0, 1));
    }

    #[test]
    fn session_feature() {
        assert!(session_optional(
            "<stream:features><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>"
        ));
        assert!(!session_optional(
            "<stream:features><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/><bind/></stream:features>"
        ));
    }

    #[test]
    fn jwt_shape() {
        let t = mint_jwt("S", "user1");
        assert_eq!(t.split('.').count(), 3);
    }
}
