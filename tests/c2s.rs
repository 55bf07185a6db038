//! RFC 6120 client connections over TCP (issue 12, first step: plaintext, allowed for tests
//! and loopback with `c2s.allow_plaintext`). A raw TCP client speaks the stream as a
//! native client does: the XML declaration and stream header, SASL PLAIN with the JWT, the
//! stream restart, bind, and stanzas split at any byte; a WebSocket user on another shard
//! is on the other side.

mod common;
use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const C2S: &str = "[c2s]\nlisten = \"127.0.0.1:0\"\nallow_plaintext = true\n";

/// A native-style client: one XML document each way over a TCP socket.
struct Tcp {
    s: TcpStream,
    /// What was read and not yet matched.
    pending: String,
    jid: String,
}

impl Tcp {
    async fn connect(s: &Server) -> Tcp {
        let port = s.c2s_port.expect("a c2s listener");
        Tcp {
            s: TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
            pending: String::new(),
            jid: String::new(),
        }
    }

    async fn send(&mut self, xml: &str) {
        self.s.write_all(xml.as_bytes()).await.unwrap();
    }

    /// Reads until the stream so far contains `pat`; returns everything up to and
    /// including it (and keeps the rest).
    async fn until(&mut self, pat: &str) -> String {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = self.pending.find(pat) {
                let rest = self.pending.split_off(i + pat.len());
                return std::mem::replace(&mut self.pending, rest);
            }
            let n = tokio::time::timeout(WAIT, self.s.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {pat:?} within the bound; have {:?}", self.pending))
                .unwrap();
            assert!(
                n > 0,
                "closed while waiting for {pat:?}; have {:?}",
                self.pending
            );
            self.pending
                .push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
    }

    /// Reads until the server closes; returns all it sent.
    async fn until_closed(&mut self) -> String {
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(WAIT, self.s.read(&mut buf))
                .await
                .expect("the server closes")
                .unwrap_or(0);
            if n == 0 {
                return std::mem::take(&mut self.pending);
            }
            self.pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    fn header() -> String {
        "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>".to_string()
    }

    /// RFC 6120 §9.1: header, features, SASL PLAIN with the JWT, restart, bind.
    async fn login(s: &Server, user: &str, resource: &str) -> Tcp {
        let mut c = Tcp::connect(s).await;
        c.send(&Tcp::header()).await;
        let f = c.until("</stream:features>").await;
        assert!(
            f.starts_with("<?xml version='1.0'?><stream:stream ")
                && f.contains("<mechanism>PLAIN</mechanism>"),
            "{f}"
        );
        let creds = b64(&format!("\0{user}\0{}", s.token(user)));
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ))
        .await;
        c.until("<success").await;
        c.send(&Tcp::header()).await;
        let f = c.until("</stream:features>").await;
        assert!(
            f.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"),
            "{f}"
        );
        c.send(&format!("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>")).await;
        let b = c.until("</iq>").await;
        c.jid = between(&b, "<jid>", "</jid>").to_string();
        assert_eq!(c.jid, format!("{user}@localhost/{resource}"), "{b}");
        c
    }
}

#[tokio::test]
async fn a_tcp_client_logs_in_and_chats_with_a_websocket_user() {
    let s = Server::start_with(C2S, 2);
    let (a, b) = s.users_apart();
    let mut t = Tcp::login(&s, &a, "gajim").await;
    t.send("<presence/>").await;
    t.until("<presence").await;
    t.until("/>").await;
    let mut w = Client::online(&s, &b, "web", 0).await;
    // TCP → WebSocket, the stanza written in two pieces split inside a tag and inside a
    // multi-byte character, with a whitespace keepalive before it.
    let msg = format!(
        "<message to='{}' type='chat' id='t1'><body>héllo ☃ from tcp</body></message>",
        w.jid
    );
    let (x, y) = msg.as_bytes().split_at(msg.find('☃').unwrap() + 1);
    t.send(" \n").await;
    t.s.write_all(x).await.unwrap();
    t.s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    t.s.write_all(y).await.unwrap();
    let m = w.recv_until("id='t1'").await;
    assert!(
        m.contains("<body>héllo ☃ from tcp</body>") && m.contains(&format!("from='{}'", t.jid)),
        "{m}"
    );
    // WebSocket → TCP: no WebSocket framing on the TCP side, several stanzas in one read.
    for i in 0..3 {
        w.send(&format!(
            "<message to='{}' type='chat' id='w{i}'><body>back {i}</body></message>",
            t.jid
        ))
        .await;
    }
    let got = t.until("id='w2'").await;
    let got = got + &t.until("</message>").await;
    for i in 0..3 {
        assert!(got.contains(&format!("<body>back {i}</body>")), "{got}");
    }
    assert!(
        !got.contains('\u{81}'),
        "no WebSocket header bytes: {got:?}"
    );
    // The client ends the stream: the server answers `</stream:stream>` and closes.
    t.send("</stream:stream>").await;
    let end = t.until_closed().await;
    assert!(end.ends_with("</stream:stream>"), "{end}");
}

#[tokio::test]
async fn tcp_stream_errors_are_rfc_6120_stream_errors() {
    let s = Server::start_with(C2S, 2);
    // Bad XML: a stream error, then `</stream:stream>`, then the close.
    let mut t = Tcp::connect(&s).await;
    t.send(&Tcp::header()).await;
    t.until("</stream:features>").await;
    t.send("<message><body>x</wrong></message>").await;
    let end = t.until_closed().await;
    assert!(
        end.contains("<not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")
            && end.ends_with("</stream:error></stream:stream>"),
        "{end}"
    );
    // A header in another content namespace.
    let mut t = Tcp::connect(&s).await;
    t.send("<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>").await;
    let end = t.until_closed().await;
    assert!(end.contains("<invalid-namespace "), "{end}");
    // RFC 6120 §11.1: no comments, no DTD.
    let mut t = Tcp::connect(&s).await;
    t.send(&Tcp::header()).await;
    t.until("</stream:features>").await;
    t.send("<!-- hello -->").await;
    let end = t.until_closed().await;
    assert!(end.contains("<restricted-xml "), "{end}");
    // A stanza over the size limit (the default, 256 KiB) is refused before it is all
    // buffered: the server closes while the client is still sending.
    let mut t = Tcp::connect(&s).await;
    t.send(&Tcp::header()).await;
    t.until("</stream:features>").await;
    t.send("<message><body>").await;
    let chunk = "x".repeat(64 * 1024);
    let mut refused = false;
    for _ in 0..64 {
        if t.s.write_all(chunk.as_bytes()).await.is_err() {
            refused = true;
            break;
        }
    }
    let end = t.until_closed().await;
    assert!(refused || end.contains("<policy-violation "), "{end}");
    assert!(end.contains("<policy-violation "), "{end}");
}

#[tokio::test]
async fn a_tcp_session_resumes_over_websocket() {
    let s = Server::start_with(C2S, 2);
    let (a, b) = s.users_apart();
    let mut t = Tcp::login(&s, &a, "dino").await;
    t.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let e = t.until("/>").await;
    let id = between(&e, "id='", "'").to_string();
    t.send("<presence/>").await;
    t.until("<presence").await;
    t.until("/>").await;
    let mut w = Client::online(&s, &b, "web", 0).await;
    w.send(&format!(
        "<message to='{}' type='chat' id='m1'><body>one</body></message>",
        t.jid
    ))
    .await;
    t.until("<body>one</body>").await;
    // The TCP connection drops without acknowledging; a message arrives meanwhile.
    drop(t);
    w.send(&format!(
        "<message to='{a}@localhost/dino' type='chat' id='m2'><body>two</body></message>"
    ))
    .await;
    // The same user resumes over WebSocket and gets both, framed for WebSocket.
    let mut r = Client::connect(&s, None).await;
    r.open().await;
    r.auth_plain(&a, &s.token(&a)).await;
    r.open().await;
    r.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>"
    ))
    .await;
    let resumed = r.recv_until("<resumed").await;
    assert!(resumed.contains(&id), "{resumed}");
    let one = r.recv_until("<message").await;
    assert!(one.contains("<body>one</body>"), "{one}");
    let two = r.recv_until("<message").await;
    assert!(two.contains("<body>two</body>"), "{two}");
}

/// And back: a WebSocket session resumes over TCP, and gets what it missed as raw XML
/// (no WebSocket frame header).
#[tokio::test]
async fn a_websocket_session_resumes_over_tcp() {
    let s = Server::start_with(C2S, 2);
    let (a, b) = s.users_apart();
    let mut w = Client::login(&s, &a, Some("web")).await;
    w.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let e = w.recv_until("<enabled").await;
    let id = between(&e, "id='", "'").to_string();
    w.send("<presence/>").await;
    w.recv_until("<presence").await;
    let mut peer = Client::online(&s, &b, "p", 0).await;
    peer.send(&format!(
        "<message to='{a}@localhost/web' type='chat' id='m1'><body>one</body></message>"
    ))
    .await;
    w.recv_until("<body>one</body>").await;
    // The WebSocket drops without acknowledging; a message arrives meanwhile.
    drop(w);
    peer.send(&format!(
        "<message to='{a}@localhost/web' type='chat' id='m2'><body>two</body></message>"
    ))
    .await;
    // The same user resumes over TCP.
    let mut t = Tcp::connect(&s).await;
    t.send(&Tcp::header()).await;
    t.until("</stream:features>").await;
    let creds = b64(&format!("\0{a}\0{}", s.token(&a)));
    t.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
    ))
    .await;
    t.until("<success").await;
    t.send(&Tcp::header()).await;
    t.until("</stream:features>").await;
    t.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>"
    ))
    .await;
    let got = t.until("<body>two</body>").await;
    assert!(got.contains("<resumed") && got.contains(&id), "{got}");
    assert!(got.contains("<body>one</body>"), "{got}");
    // Raw XML on TCP: a WebSocket frame header (0x81, then the length) is not UTF-8, and
    // `until` fails on it.
    assert!(!got.contains("\u{fffd}"), "{got:?}");
}
