//! One XMPP-over-WebSocket client: connect from a chosen loopback source address, upgrade
//! (optionally with a JWT cookie and the `xmpp` subprotocol), and do the RFC 7395
//! negotiation: open, features, SASL PLAIN, restart, bind, legacy session, initial presence.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::xml;

pub const FRAMING_NS: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub type Ws = WebSocketStream<TcpStream>;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Mint an HS256 JWT and send it as `Cookie: auth_token=...` on the upgrade.
    JwtCookie,
    /// Mint an HS256 JWT and use it as the SASL PLAIN password.
    JwtPlain,
    /// SASL PLAIN with `--password`.
    Plain,
}

/// Everything a client needs to log in; shared by all sessions of a run.
#[derive(Clone, Debug)]
pub struct ClientCfg {
    pub url: String,
    pub addr: SocketAddrV4,
    pub domain: String,
    pub auth: AuthMode,
    pub jwt_secret: String,
    pub password: String,
    pub users_prefix: String,
    pub subprotocol: bool,
    /// An XMPP-FTW JSON session over Socket.IO instead of XMPP.
    pub ftw: bool,
    pub resource: String,
    pub timeout: Duration,
    pub src_addrs: u32,
    pub read_buffer: usize,
}

impl ClientCfg {
    pub fn user(&self, n: usize) -> String {
        format!("{}{}", self.users_prefix, n)
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
            .max_message_size(Some(4 << 20))
            .max_frame_size(Some(4 << 20))
    }
}

/// Parse `ws://HOST:PORT/path` and refuse anything that is not a loopback address.
pub fn parse_url(url: &str) -> Result<SocketAddrV4, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("--url must start with ws:// (got {url})"))?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|e| format!("bad port in {url}: {e}"))?,
        ),
        None => (hostport, 80),
    };
    let ip: Ipv4Addr = if host == "localhost" {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse()
            .map_err(|_| format!("host must be a 127.x.y.z address or localhost (got {host})"))?
    };
    if !ip.is_loopback() {
        return Err(format!("refusing to load a non-loopback address {ip}"));
    }
    Ok(SocketAddrV4::new(ip, port))
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
    pub ws: Ws,
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

/// Send one text frame.
pub async fn send(ws: &mut Ws, s: String) -> Result<(), WsError> {
    ws.send(Message::text(s)).await
}

/// Read the next text frame, skipping pings/pongs; `None` when the connection ended.
pub async fn recv(ws: &mut Ws) -> Result<Option<String>, WsError> {
    loop {
        match ws.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(e),
            Some(Ok(Message::Text(t))) => return Ok(Some(t.as_str().to_owned())),
            Some(Ok(Message::Binary(b))) => {
                return Ok(Some(String::from_utf8_lossy(&b).into_owned()));
            }
            Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(_)) => continue,
        }
    }
}

pub fn open_frame(domain: &str) -> String {
    format!("<open xmlns='{FRAMING_NS}' to='{domain}' version='1.0'/>")
}

pub fn close_frame() -> String {
    format!("<close xmlns='{FRAMING_NS}'/>")
}

struct Negotiator<'a> {
    ws: Ws,
    deadline: tokio::time::Instant,
    cfg: &'a ClientCfg,
}

impl Negotiator<'_> {
    /// Read frames until one whose root local name is in `want`; fail on stream errors/close.
    /// The next text frame, within the login deadline.
    async fn frame(&mut self, stage: &str) -> Result<String, LoginError> {
        match tokio::time::timeout_at(self.deadline, recv(&mut self.ws)).await {
            Err(_) => Err(LoginError::new(format!("timeout:{stage}"), "")),
            Ok(Err(e)) => Err(LoginError::new(format!("ws-error:{stage}"), e.to_string())),
            Ok(Ok(None)) => Err(LoginError::new(format!("closed:{stage}"), "")),
            Ok(Ok(Some(f))) => Ok(f),
        }
    }

    async fn expect(&mut self, stage: &str, want: &[&str]) -> Result<String, LoginError> {
        loop {
            let frame = self.frame(stage).await?;
            let local = xml::root_local(&frame);
            if want.contains(&local) {
                return Ok(frame);
            }
            match local {
                "error"
                    if xml::root_name(&frame).contains("stream")
                        || frame.contains("xmpp-streams") =>
                {
                    return Err(LoginError::new(
                        format!("stream-error:{}", xml::error_condition(&frame)),
                        frame,
                    ));
                }
                "close" => return Err(LoginError::new(format!("closed:{stage}"), frame)),
                _ => continue, // ignore anything else (e.g. early presence)
            }
        }
    }

    async fn send(&mut self, stage: &str, s: String) -> Result<(), LoginError> {
        match tokio::time::timeout_at(self.deadline, send(&mut self.ws, s)).await {
            Err(_) => Err(LoginError::new(format!("timeout:{stage}"), "")),
            Ok(Err(e)) => Err(LoginError::new(format!("ws-error:{stage}"), e.to_string())),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Send `<open/>`, read `<open/>` and the features.
    async fn open(&mut self, stage: &str) -> Result<String, LoginError> {
        let o = open_frame(&self.cfg.domain);
        self.send(stage, o).await?;
        let open = self.expect(stage, &["open", "features"]).await?;
        if xml::root_local(&open) == "features" {
            return Ok(open);
        }
        self.expect(stage, &["features"]).await
    }
}

/// Connect, upgrade and negotiate session number `n` (user `{prefix}{n}`) from source `src`.
pub async fn login(cfg: &ClientCfg, n: usize, src: Ipv4Addr) -> Result<Session, LoginError> {
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let user = cfg.user(n);
    let token = match cfg.auth {
        AuthMode::Plain => None,
        AuthMode::JwtCookie | AuthMode::JwtPlain => Some(mint_jwt(&cfg.jwt_secret, &user)),
    };

    let tcp = match tokio::time::timeout_at(deadline, tcp_connect(src, cfg.addr)).await {
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

    let url = if cfg.ftw {
        format!("ws://{}/socket.io/?EIO=4&transport=websocket", cfg.addr)
    } else {
        cfg.url.clone()
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
        let v = format!("auth_token={}", token.as_deref().unwrap_or(""));
        req.headers_mut().insert(
            "Cookie",
            HeaderValue::from_str(&v).map_err(|e| LoginError::new("bad-cookie", e.to_string()))?,
        );
    }
    let hs = tokio_tungstenite::client_async_with_config(req, tcp, Some(cfg.ws_config()));
    let ws = match tokio::time::timeout_at(deadline, hs).await {
        Err(_) => return Err(LoginError::new("timeout:upgrade", "")),
        Ok(Err(WsError::Http(resp))) => {
            return Err(LoginError::new(
                format!("upgrade:http-{}", resp.status().as_u16()),
                "",
            ));
        }
        Ok(Err(e)) => return Err(LoginError::new("upgrade:error", e.to_string())),
        Ok(Ok((ws, _resp))) => ws,
    };

    let mut ng = Negotiator { ws, deadline, cfg };
    if cfg.ftw {
        return ftw_login(ng, &user, token.as_deref(), t0).await;
    }
    let mut features = ng.open("open").await?;

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
        ws: ng.ws,
        jid,
        login_time: t0.elapsed(),
    })
}

/// XMPP-FTW over Socket.IO: Engine.IO open, namespace connect, `xmpp.login` (the cookie,
/// or the JWT as password), then initial presence.
async fn ftw_login(
    mut ng: Negotiator<'_>,
    user: &str,
    token: Option<&str>,
    t0: Instant,
) -> Result<Session, LoginError> {
    let open = ng.frame("eio-open").await?;
    if !open.starts_with("0{") {
        return Err(LoginError::new("ftw:no-open", open));
    }
    ng.send("sio-connect", "40".into()).await?;
    loop {
        let f = ng.frame("sio-connect").await?;
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
        let f = ng.frame("login").await?;
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
        ws: ng.ws,
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

/// Close politely: `<close/>`, then the WebSocket close handshake (bounded by `wait`).
pub async fn close(mut ws: Ws, wait: Duration) {
    let _ = tokio::time::timeout(wait, async {
        let _ = send(&mut ws, close_frame()).await;
        let _ = ws.close(None).await;
        // drain until the server closes
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("ws://127.0.0.1:8082/xmpp").unwrap(),
            "127.0.0.1:8082".parse().unwrap()
        );
        assert_eq!(
            parse_url("ws://localhost:15280/xmpp-websocket")
                .unwrap()
                .port(),
            15280
        );
        assert!(parse_url("ws://10.0.0.1:80/").is_err());
        assert!(parse_url("wss://127.0.0.1/").is_err());
    }

    #[test]
    fn src_addrs() {
        let mut cfg = ClientCfg {
            url: String::new(),
            addr: "127.0.0.1:1".parse().unwrap(),
            domain: "d".into(),
            auth: AuthMode::Plain,
            jwt_secret: String::new(),
            password: String::new(),
            users_prefix: "user".into(),
            subprotocol: true,
            ftw: false,
            resource: "lt".into(),
            timeout: Duration::from_secs(1),
            src_addrs: 1000,
            read_buffer: 4096,
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
