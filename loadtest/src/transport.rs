//! The transports a session runs over, behind one connection type: RFC 7395 WebSocket
//! (`ws://`, one element per text message) and RFC 6120 TCP (`tcp://`, one XML document
//! each way, split into elements by `split.rs`), each over a plain socket or over TLS
//! (`tls.rs`): `wss://` (the HTTPS upgrade), STARTTLS on `tcp://` and XEP-0368 direct TLS on
//! `tls://`. Every transport hands the session the same frames, so negotiation and the run
//! loop are written once (`client.rs`, `session.rs`).
//!
//! The byte stream under both framings is an `Io`: a plain `TcpStream` or a boxed rustls
//! `TlsStream` (boxed so that a plaintext session does not carry a TLS connection's size).
//! `wss` and `tls` do the TLS handshake right after connecting; `starttls` negotiates
//! `<starttls/>`/`<proceed/>` over the plaintext `XmlStream` (in `client::login`), takes the
//! socket back with `Conn::into_tcp` (which refuses if any byte after `<proceed/>` is
//! buffered), does the handshake on it and restarts the stream over a new `XmlStream`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::split::{Item, SplitError, Splitter};
use crate::tls::TlsStream;
use crate::xml;

pub const FRAMING_NS: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub type Ws = WebSocketStream<Io>;

/// Largest element accepted from the server (as the WebSocket client's message bound).
pub const MAX_ELEMENT: usize = 4 << 20;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// RFC 7395 XMPP over WebSocket (`--url ws://HOST:PORT/PATH`).
    Ws,
    /// RFC 7395 over WebSocket over TLS (`--url wss://HOST:PORT/PATH`; ALPN http/1.1).
    Wss,
    /// RFC 6120 XMPP over plaintext TCP (`--url tcp://HOST:PORT`, the server's c2s listener).
    Tcp,
    /// RFC 6120 over TCP, upgraded to TLS with STARTTLS before SASL (`--url tcp://HOST:PORT`).
    Starttls,
    /// XEP-0368 direct TLS: TLS first (ALPN xmpp-client), then RFC 6120 (`--url tls://HOST:PORT`).
    Tls,
}

/// Every transport, for messages and tests.
pub const TRANSPORTS: [Transport; 5] = [
    Transport::Ws,
    Transport::Wss,
    Transport::Tcp,
    Transport::Starttls,
    Transport::Tls,
];

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Wss => "wss",
            Transport::Tcp => "tcp",
            Transport::Starttls => "starttls",
            Transport::Tls => "tls",
        }
    }

    /// The URL scheme `--url` must have (STARTTLS starts as plain TCP: `tcp://`).
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Ws => "ws://",
            Transport::Wss => "wss://",
            Transport::Tcp | Transport::Starttls => "tcp://",
            Transport::Tls => "tls://",
        }
    }

    pub fn default_url(self) -> &'static str {
        match self {
            Transport::Ws => "ws://127.0.0.1:8082/xmpp",
            Transport::Wss => "wss://127.0.0.1:8443/xmpp",
            Transport::Tcp | Transport::Starttls => "tcp://127.0.0.1:5222",
            Transport::Tls => "tls://127.0.0.1:5223",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Transport::Ws => 80,
            Transport::Wss => 443,
            Transport::Tcp | Transport::Starttls => 5222,
            Transport::Tls => 5223,
        }
    }

    /// RFC 7395 (WebSocket) rather than RFC 6120 (TCP) framing.
    pub fn is_ws(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }

    /// The session runs over TLS (`wss`, `starttls`, `tls`).
    pub fn is_tls(self) -> bool {
        matches!(self, Transport::Wss | Transport::Starttls | Transport::Tls)
    }
}

/// Parse `ws://` or `wss://HOST:PORT/path`, `tcp://HOST:PORT` (tcp, starttls) or
/// `tls://HOST:PORT` for `transport` and refuse anything that is not a loopback address.
pub fn parse_url(url: &str, transport: Transport) -> Result<SocketAddrV4, String> {
    let rest = match url.strip_prefix(transport.scheme()) {
        Some(r) => r,
        None => {
            let fits: Vec<&str> = TRANSPORTS
                .into_iter()
                .filter(|t| url.starts_with(t.scheme()))
                .map(Transport::name)
                .collect();
            if fits.is_empty() {
                return Err(format!(
                    "--url must start with {} for --transport {} (got {url})",
                    transport.scheme(),
                    transport.name()
                ));
            }
            let suggest = match &fits[..] {
                [one] => one.to_string(),
                [first, more @ ..] => format!("{first} (or {})", more.join(", ")),
                [] => unreachable!("not empty"),
            };
            return Err(format!(
                "--url {url} is a URL for --transport {} but --transport is {}: pass --transport {suggest} or a URL like {}",
                fits.join(" or "),
                transport.name(),
                transport.default_url()
            ));
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
    /// A TLS error under an RFC 6120 stream (a bad record, an alert from the server).
    Tls(std::io::Error),
    Split(SplitError),
}

impl ConnError {
    /// Short, low-cardinality key for error tables.
    pub fn short(&self) -> &'static str {
        use tokio_tungstenite::tungstenite::Error as E;
        match self {
            ConnError::Ws(E::ConnectionClosed | E::AlreadyClosed) => "closed",
            ConnError::Ws(E::Io(_)) | ConnError::Io(_) => "io",
            ConnError::Tls(_) => "tls",
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
            ConnError::Tls(_) => "tls-error",
            ConnError::Split(_) => "xml-error",
        }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Ws(e) => e.fmt(f),
            ConnError::Io(e) | ConnError::Tls(e) => e.fmt(f),
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
        // tokio-rustls reports TLS errors as io::Errors wrapping the rustls::Error
        if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
            ConnError::Tls(e)
        } else {
            ConnError::Io(e)
        }
    }
}

impl From<SplitError> for ConnError {
    fn from(e: SplitError) -> Self {
        ConnError::Split(e)
    }
}

/// The byte stream under a connection: a plain socket, or TLS over one (boxed: a rustls
/// connection is a few hundred bytes plus its buffers, which a plaintext session need not
/// carry).
pub enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An RFC 6120 stream over any byte stream (`Io`: plain TCP or TLS).
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

    /// The byte stream back, for STARTTLS. Refused (with the count) if bytes the server sent
    /// after the last element are buffered: after `<proceed/>` the next bytes must be the
    /// TLS handshake's, and plaintext read before it may be neither dropped nor carried
    /// into the TLS stream.
    pub fn into_inner(self) -> Result<S, usize> {
        match self.split.unread() {
            0 => Ok(self.io),
            n => Err(n),
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

/// One client connection, whatever its transport: RFC 7395 over a WebSocket (`ws`, `wss`)
/// or an RFC 6120 stream (`tcp`, `starttls`, `tls`), each over a plain or a TLS `Io`.
pub enum Conn {
    Ws(Ws),
    Tcp(XmlStream<Io>),
}

impl Conn {
    /// An RFC 6120 stream over `io` (the framing starts afresh: a new stream).
    pub fn xml(io: Io, read_chunk: usize) -> Self {
        Conn::Tcp(XmlStream::new(io, read_chunk))
    }

    /// The plain socket of an RFC 6120 stream, for STARTTLS after `<proceed/>`. Fails if the
    /// connection is a WebSocket or already TLS, or if bytes after `<proceed/>` are buffered.
    pub fn into_tcp(self) -> Result<TcpStream, String> {
        match self {
            Conn::Ws(_) => Err("STARTTLS on a WebSocket connection".into()),
            Conn::Tcp(x) => match x.into_inner() {
                Ok(Io::Plain(tcp)) => Ok(tcp),
                Ok(Io::Tls(_)) => Err("STARTTLS on a connection that is already TLS".into()),
                Err(n) => Err(format!(
                    "{n} bytes after <proceed/> before the TLS handshake"
                )),
            },
        }
    }

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
                            // RFC 7395 §3.6.1: a close that sends the client elsewhere is
                            // the login's to follow.
                            "close" if t.contains(FRAMING_NS) && !t.contains("see-other-uri") => {
                                Frame::Close
                            }
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
        for t in TRANSPORTS {
            assert!(parse_url(t.default_url(), t).is_ok(), "{}", t.name());
        }
    }

    #[test]
    fn tls_urls() {
        let (ws, wss, tcp) = (Transport::Ws, Transport::Wss, Transport::Tcp);
        let (starttls, tls) = (Transport::Starttls, Transport::Tls);
        assert_eq!(
            parse_url("wss://127.0.0.1:5281/xmpp-websocket", wss).unwrap(),
            "127.0.0.1:5281".parse().unwrap()
        );
        assert_eq!(parse_url("wss://localhost/xmpp", wss).unwrap().port(), 443);
        // STARTTLS starts as plain TCP: tcp://, default port 5222
        assert_eq!(
            parse_url("tcp://127.0.0.2:5222", starttls).unwrap(),
            "127.0.0.2:5222".parse().unwrap()
        );
        assert_eq!(parse_url("tcp://localhost", starttls).unwrap().port(), 5222);
        // direct TLS: tls://, default port 5223
        assert_eq!(
            parse_url("tls://127.0.0.1:15223", tls).unwrap(),
            "127.0.0.1:15223".parse().unwrap()
        );
        assert_eq!(parse_url("tls://localhost", tls).unwrap().port(), 5223);
        assert_eq!(tls.default_url(), "tls://127.0.0.1:5223");
        assert_eq!(starttls.default_url(), "tcp://127.0.0.1:5222");
        // loopback only, on every scheme
        for (url, t) in [
            ("wss://10.0.0.1:443/xmpp", wss),
            ("wss://example.org/xmpp", wss),
            ("tcp://192.168.1.1:5222", starttls),
            ("tls://8.8.8.8:5223", tls),
            ("tls://[::1]:5223", tls),
        ] {
            assert!(parse_url(url, t).is_err(), "{url}");
        }
        // a scheme that belongs to another transport names it
        let e = parse_url("tls://127.0.0.1:5223", starttls).unwrap_err();
        assert!(e.contains("pass --transport tls "), "{e}");
        let e = parse_url("tcp://127.0.0.1:5222", tls).unwrap_err();
        assert!(e.contains("--transport tcp (or starttls)"), "{e}");
        assert!(e.contains("tls://127.0.0.1:5223"), "{e}");
        let e = parse_url("ws://127.0.0.1:8082/xmpp", wss).unwrap_err();
        assert!(e.contains("pass --transport ws "), "{e}");
        let e = parse_url("wss://127.0.0.1:8443/xmpp", ws).unwrap_err();
        assert!(e.contains("pass --transport wss "), "{e}");
        assert!(parse_url("tls://127.0.0.1:5223", tcp).is_err());
        assert!(parse_url("https://127.0.0.1/xmpp", wss).is_err());
        assert!(
            TRANSPORTS
                .iter()
                .all(|t| t.is_tls() != matches!(t, Transport::Ws | Transport::Tcp))
        );
    }

    /// STARTTLS takes the socket back only if nothing after `<proceed/>` was read: the
    /// bytes that follow it must be the TLS handshake's.
    #[tokio::test]
    async fn into_inner_refuses_bytes_after_proceed() {
        let proceed = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
        for (extra, unread) in [("", 0), ("\x16\x03\x01", 3), (" ", 1)] {
            let (client, mut server) = tokio::io::duplex(4096);
            // everything is written before the client reads: its first read gets it all
            server
                .write_all(format!("{proceed}{extra}").as_bytes())
                .await
                .unwrap();
            let mut x = XmlStream::new(client, 4096);
            assert!(matches!(x.recv().await.unwrap(), Some(Frame::Open(_))));
            let Some(Frame::Stanza(p)) = x.recv().await.unwrap() else {
                panic!()
            };
            assert_eq!(xml::root_local(&p), "proceed");
            match x.into_inner() {
                Ok(_) => assert_eq!(unread, 0, "{extra:?} taken along"),
                Err(n) => assert_eq!(n, unread),
            }
        }
    }

    #[test]
    fn tls_errors_are_told_apart() {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        let c = ConnError::from(e);
        assert_eq!((c.short(), c.login_prefix()), ("tls", "tls-error"));
        let c = ConnError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!((c.short(), c.login_prefix()), ("io", "tcp-error"));
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
        let mut c = Conn::xml(Io::Plain(tcp), 16);
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
