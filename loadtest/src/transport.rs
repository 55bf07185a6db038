//! The transports a session runs over, behind one connection type: RFC 7395 WebSocket
//! (`ws://`, one element per text message) and RFC 6120 TCP (`tcp://`, one XML document
//! each way, split into elements by `split.rs`). Both hand the session the same frames, so
//! negotiation and the run loop are written once.
//!
//! Adding STARTTLS or direct TLS (XEP-0368) later: a `Transport` variant (and its URL scheme
//! in `parse_url`), and a `Conn` variant holding an `XmlStream` over the TLS stream (the
//! stream type is generic); STARTTLS negotiates `<starttls/>`/`<proceed/>` over the
//! plaintext `XmlStream`, takes the socket back with `into_inner`, and wraps it.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::split::{Item, SplitError, Splitter};
use crate::xml;

pub const FRAMING_NS: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub type Ws = WebSocketStream<TcpStream>;

/// Largest element accepted from the server (as the WebSocket client's message bound).
pub const MAX_ELEMENT: usize = 4 << 20;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// RFC 7395 XMPP over WebSocket (`--url ws://HOST:PORT/PATH`).
    Ws,
    /// RFC 6120 XMPP over plaintext TCP (`--url tcp://HOST:PORT`, the server's c2s listener).
    Tcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Tcp => "tcp",
        }
    }

    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Ws => "ws://",
            Transport::Tcp => "tcp://",
        }
    }

    pub fn default_url(self) -> &'static str {
        match self {
            Transport::Ws => "ws://127.0.0.1:8082/xmpp",
            Transport::Tcp => "tcp://127.0.0.1:5222",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Transport::Ws => 80,
            Transport::Tcp => 5222,
        }
    }
}

/// Parse `ws://HOST:PORT/path` or `tcp://HOST:PORT` for `transport` and refuse anything that
/// is not a loopback address.
pub fn parse_url(url: &str, transport: Transport) -> Result<SocketAddrV4, String> {
    let rest = match url.strip_prefix(transport.scheme()) {
        Some(r) => r,
        None => {
            let other = [Transport::Ws, Transport::Tcp]
                .into_iter()
                .find(|t| url.starts_with(t.scheme()));
            return Err(match other {
                Some(t) => format!(
                    "--url {url} is a {} URL but --transport is {}: pass --transport {} or a URL like {}",
                    t.name(),
                    transport.name(),
                    t.name(),
                    transport.default_url()
                ),
                None => format!(
                    "--url must start with {} for --transport {} (got {url})",
                    transport.scheme(),
                    transport.name()
                ),
            });
        }
    };
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|e| format!("bad port in {url}: {e}"))?,
        ),
        None => (hostport, transport.default_port()),
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

/// What a connection read: the stream's opening (`<open/>` or the `<stream:stream>` header),
/// one stanza or other top-level element, or the stream's end (`<close/>`,
/// `</stream:stream>`). XMPP-FTW's Socket.IO messages are `Stanza`s too (their text).
#[derive(Debug)]
pub enum Frame {
    Open(String),
    Stanza(Text),
    Close,
}

/// A frame's text: the WebSocket message's own buffer (no copy), or an element split from
/// a TCP stream.
#[derive(Debug)]
pub enum Text {
    Ws(Utf8Bytes),
    Owned(String),
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Text::Ws(t) => t.as_str(),
            Text::Owned(s) => s,
        }
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        match t {
            Text::Ws(t) => t.as_str().to_owned(),
            Text::Owned(s) => s,
        }
    }
}

#[derive(Debug)]
pub enum ConnError {
    Ws(WsError),
    Io(std::io::Error),
    Split(SplitError),
}

impl ConnError {
    /// Short, low-cardinality key for error tables.
    pub fn short(&self) -> &'static str {
        use tokio_tungstenite::tungstenite::Error as E;
        match self {
            ConnError::Ws(E::ConnectionClosed | E::AlreadyClosed) => "closed",
            ConnError::Ws(E::Io(_)) | ConnError::Io(_) => "io",
            ConnError::Ws(E::Protocol(_)) => "protocol",
            ConnError::Ws(E::Capacity(_)) | ConnError::Split(SplitError::TooBig(_)) => "capacity",
            ConnError::Split(SplitError::Malformed(_)) => "malformed",
            ConnError::Ws(_) => "other",
        }
    }

    /// The login failure key's prefix (`ws-error:bind`, `tcp-error:bind`).
    pub fn login_prefix(&self) -> &'static str {
        match self {
            ConnError::Ws(_) => "ws-error",
            ConnError::Io(_) => "tcp-error",
            ConnError::Split(_) => "xml-error",
        }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Ws(e) => e.fmt(f),
            ConnError::Io(e) => e.fmt(f),
            ConnError::Split(e) => e.fmt(f),
        }
    }
}

impl From<WsError> for ConnError {
    fn from(e: WsError) -> Self {
        ConnError::Ws(e)
    }
}

impl From<std::io::Error> for ConnError {
    fn from(e: std::io::Error) -> Self {
        ConnError::Io(e)
    }
}

impl From<SplitError> for ConnError {
    fn from(e: SplitError) -> Self {
        ConnError::Split(e)
    }
}

/// An RFC 6120 stream over any byte stream (plain TCP now; TLS later).
pub struct XmlStream<S> {
    io: S,
    split: Splitter,
    /// Stanzas fed and not yet flushed.
    out: Vec<u8>,
    /// Bytes asked of each read.
    read_chunk: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> XmlStream<S> {
    pub fn new(io: S, read_chunk: usize) -> Self {
        XmlStream {
            io,
            split: Splitter::new(MAX_ELEMENT),
            out: Vec::new(),
            read_chunk: read_chunk.max(256),
        }
    }

    /// The next item of the server's stream. Cancel safe: the only await is one read into
    /// the splitter's buffer, and everything scanned stays in `self`.
    async fn recv(&mut self) -> Result<Option<Frame>, ConnError> {
        loop {
            if let Some(item) = self.split.next_item()? {
                return Ok(Some(match item {
                    Item::Header(h) => Frame::Open(h),
                    Item::Element(e) => Frame::Stanza(Text::Owned(e)),
                    Item::End => Frame::Close,
                }));
            }
            let buf = self.split.buffer();
            if buf.capacity() - buf.len() < self.read_chunk / 4 {
                buf.reserve(self.read_chunk);
            }
            if self.io.read_buf(buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let r = self.io.write_all(&self.out).await;
            self.out.clear();
            if self.out.capacity() > 64 * 1024 {
                self.out = Vec::new();
            }
            r?;
        }
        self.io.flush().await
    }
}

/// One client connection, whatever its transport.
pub enum Conn {
    Ws(Ws),
    Tcp(XmlStream<TcpStream>),
}

impl Conn {
    /// Write the stream's opening: `<open/>`, or the XML declaration and stream header.
    pub async fn open(&mut self, domain: &str) -> Result<(), ConnError> {
        let s = match self {
            Conn::Ws(_) => format!("<open xmlns='{FRAMING_NS}' to='{domain}' version='1.0'/>"),
            Conn::Tcp(_) => format!(
                "<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
            ),
        };
        self.send(s).await
    }

    /// Write one element (or XMPP-FTW message) now.
    pub async fn send(&mut self, s: String) -> Result<(), ConnError> {
        match self {
            Conn::Ws(ws) => Ok(ws.send(Message::text(s)).await?),
            Conn::Tcp(x) => {
                x.out.extend_from_slice(s.as_bytes());
                Ok(x.flush().await?)
            }
        }
    }

    /// Queue one element; `flush` writes what was queued.
    pub async fn feed(&mut self, s: String) -> Result<(), ConnError> {
        match self {
            Conn::Ws(ws) => Ok(ws.feed(Message::text(s)).await?),
            Conn::Tcp(x) => {
                x.out.extend_from_slice(s.as_bytes());
                Ok(())
            }
        }
    }

    pub async fn flush(&mut self) -> Result<(), ConnError> {
        match self {
            Conn::Ws(ws) => Ok(ws.flush().await?),
            Conn::Tcp(x) => Ok(x.flush().await?),
        }
    }

    /// The next frame; `None` when the connection ended (without `<close/>` or
    /// `</stream:stream>`). WebSocket pings, pongs and binary messages are skipped. Cancel
    /// safe (usable in `select!`).
    pub async fn recv(&mut self) -> Result<Option<Frame>, ConnError> {
        match self {
            Conn::Ws(ws) => loop {
                match ws.next().await {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(Message::Text(t))) => {
                        return Ok(Some(match xml::root_local(&t) {
                            "open" if t.contains(FRAMING_NS) => Frame::Open(t.as_str().to_owned()),
                            "close" if t.contains(FRAMING_NS) => Frame::Close,
                            _ => Frame::Stanza(Text::Ws(t)),
                        }));
                    }
                    Some(Ok(Message::Binary(b))) => {
                        let s = String::from_utf8_lossy(&b).into_owned();
                        return Ok(Some(Frame::Stanza(Text::Owned(s))));
                    }
                    Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Ok(_)) => continue,
                }
            },
            Conn::Tcp(x) => x.recv().await,
        }
    }

    /// Close politely, bounded by `wait`: `<close/>` and the WebSocket close handshake, or
    /// `</stream:stream>`; then read until the server ends its side.
    pub async fn close(self, wait: Duration) {
        match self {
            Conn::Ws(mut ws) => {
                let _ = tokio::time::timeout(wait, async {
                    let _ = ws
                        .send(Message::text(format!("<close xmlns='{FRAMING_NS}'/>")))
                        .await;
                    let _ = ws.close(None).await;
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
            }
            Conn::Tcp(mut x) => {
                let _ = tokio::time::timeout(wait, async {
                    x.out.extend_from_slice(b"</stream:stream>");
                    if x.flush().await.is_err() {
                        return;
                    }
                    // until the server's `</stream:stream>` or its close
                    while let Ok(Some(f)) = x.recv().await {
                        if matches!(f, Frame::Close) {
                            break;
                        }
                    }
                    let _ = x.io.shutdown().await;
                })
                .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ws = Transport::Ws;
        let tcp = Transport::Tcp;
        assert_eq!(
            parse_url("ws://127.0.0.1:8082/xmpp", ws).unwrap(),
            "127.0.0.1:8082".parse().unwrap()
        );
        assert_eq!(
            parse_url("ws://localhost:15280/xmpp-websocket", ws)
                .unwrap()
                .port(),
            15280
        );
        assert!(parse_url("ws://10.0.0.1:80/", ws).is_err());
        assert!(parse_url("wss://127.0.0.1/", ws).is_err());
        assert_eq!(
            parse_url("tcp://127.0.0.1:5223", tcp).unwrap(),
            "127.0.0.1:5223".parse().unwrap()
        );
        assert_eq!(parse_url("tcp://localhost", tcp).unwrap().port(), 5222);
        assert!(parse_url("tcp://192.168.1.1:5222", tcp).is_err());
        let e = parse_url("ws://127.0.0.1:8082/xmpp", tcp).unwrap_err();
        assert!(e.contains("--transport"), "{e}");
        let e = parse_url("tcp://127.0.0.1:5222", ws).unwrap_err();
        assert!(e.contains("--transport tcp"), "{e}");
        for t in [ws, tcp] {
            assert!(parse_url(t.default_url(), t).is_ok());
        }
    }

    /// A TCP connection against a scripted server: the stream split across writes at odd
    /// places comes out as frames; queued stanzas are written as they are, without framing.
    #[tokio::test]
    async fn tcp_frames_over_a_socket() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = vec![0u8; 4096];
            let mut n = 0;
            while !got[..n].ends_with(b"<b/><c/>") {
                n += s.read(&mut got[n..]).await.unwrap();
            }
            let script = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'><stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features> <message><body>h\u{e9}</body></message></stream:stream>";
            for chunk in script.as_bytes().chunks(7) {
                s.write_all(chunk).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            String::from_utf8(got[..n].to_vec()).unwrap()
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut c = Conn::Tcp(XmlStream::new(tcp, 16));
        c.open("localhost").await.unwrap();
        c.feed("<b/>".into()).await.unwrap();
        c.feed("<c/>".into()).await.unwrap();
        c.flush().await.unwrap();
        let Some(Frame::Open(h)) = c.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!(xml::root_attr(&h, "id"), Some("1"));
        let Some(Frame::Stanza(f)) = c.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!(xml::root_local(&f), "features");
        let Some(Frame::Stanza(m)) = c.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!(&*m, "<message><body>h\u{e9}</body></message>");
        assert!(matches!(c.recv().await.unwrap(), Some(Frame::Close)));
        let sent = server.await.unwrap();
        assert!(
            sent.starts_with("<?xml version='1.0'?><stream:stream to='localhost' ")
                && sent.ends_with("'><b/><c/>"),
            "{sent}"
        );
        assert!(c.recv().await.unwrap().is_none());
    }
}
