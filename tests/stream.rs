//! The stream and its transport: RFC 7395 open/close, stream errors (RFC 6120 §4.9),
//! RFC 6455 framing, binding and conflicts, health, shutdown and port ownership.

mod common;
use common::*;
use tokio_tungstenite::tungstenite::protocol::Message;

async fn opened(s: &Server) -> Client {
    let mut c = Client::connect(s, Some(&s.token("alice"))).await;
    c.open().await;
    c
}

#[tokio::test]
async fn bad_xml_gets_the_matching_stream_error() {
    let s = Server::start();
    for (xml, cond) in [
        ("<message><body>x</bodyy></message>", "not-well-formed"),
        ("<message><body>x</body>", "not-well-formed"),
        (
            "<message xmlns='jabber:client'><x:body>undeclared prefix</x:body></message>",
            "not-well-formed",
        ),
        ("<message a='1' a='2'/>", "not-well-formed"),
        ("<message><body>&foo;</body></message>", "not-well-formed"),
        ("<!-- comment --><message/>", "restricted-xml"),
        ("<?pi data?><message/>", "restricted-xml"),
        (
            "<!DOCTYPE message [<!ENTITY x 'y'>]><message>&x;</message>",
            "restricted-xml",
        ),
        ("<foo xmlns='urn:example:foo'/>", "unsupported-stanza-type"),
    ] {
        let mut c = opened(&s).await;
        c.send(xml).await;
        c.expect_stream_error(cond).await;
    }
    // Other connections are unharmed.
    let mut ok = Client::login(&s, "bob", None).await;
    assert!(ok.ping_server("still").await.contains("type='result'"));
}

#[tokio::test]
async fn open_is_checked() {
    let s = Server::start();
    for (open, cond) in [
        (
            "<open xmlns='jabber:client' to='localhost' version='1.0'/>",
            "invalid-namespace",
        ),
        (
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='2.0'/>",
            "unsupported-version",
        ),
        (
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>",
            "host-unknown",
        ),
    ] {
        let mut c = Client::connect(&s, None).await;
        c.send(open).await;
        // An <open/> comes first, then the error (RFC 6120 §4.9.1.2).
        let first = c.recv().await;
        assert!(first.starts_with("<open"), "{first}");
        c.expect_stream_error(cond).await;
    }
}

#[tokio::test]
async fn close_is_answered_with_close() {
    let s = Server::start();
    let mut c = Client::login(&s, "alice", None).await;
    c.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        .await;
    assert!(
        c.recv()
            .await
            .contains("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
    );
    assert_eq!(c.expect_end().await, Some(1000));
}

#[tokio::test]
async fn bind_generated_resource_session_and_conflict() {
    let s = Server::start();
    let c = Client::login(&s, "alice", None).await;
    let res = c
        .jid
        .strip_prefix("alice@localhost/web-")
        .expect("generated web- resource");
    assert_eq!(res.len(), 10);
    let mut first = Client::login(&s, "alice", Some("desk")).await;
    // Legacy session establishment is answered (advertised as optional).
    first
        .send(
            "<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
        )
        .await;
    assert!(
        first
            .recv_until("id='sess'")
            .await
            .contains("type='result'")
    );
    let mut second = Client::login(&s, "alice", Some("desk")).await;
    assert_eq!(second.jid, "alice@localhost/desk");
    first.expect_stream_error("conflict").await;
    assert!(second.ping_server("p").await.contains("type='result'"));
    // An invalid resource is a bad request.
    let mut c = Client::connect(&s, Some(&s.token("alice"))).await;
    c.open().await;
    c.auth_plain("alice", "").await;
    c.open().await;
    let b = c.bind(Some(&"r".repeat(1100))).await; // over RFC 7622's 1023 bytes
    assert!(
        b.contains("type='error'") && b.contains("<bad-request"),
        "{b}"
    );
}

#[tokio::test]
async fn websocket_framing_rules() {
    let s = Server::start();
    let t = s.token("alice");
    let k = Some([7, 1, 3, 9]);
    // A message in three fragments, with a ping in between: reassembled, ping answered.
    let mut r = Raw::connect(&s, Some(&t)).await;
    let (a, b) = OPEN.split_at(20);
    let (b, c) = b.split_at(20);
    r.frame(0x01, a.as_bytes(), k).await;
    r.frame(0x89, b"hb", k).await;
    r.frame(0x00, b.as_bytes(), k).await;
    r.frame(0x80, c.as_bytes(), k).await;
    let (b0, p) = r.read_frame().await.unwrap();
    assert_eq!(
        (b0, p.as_slice()),
        (0x8A, &b"hb"[..]),
        "pong with the ping's payload first"
    );
    let (b0, p) = r.read_frame().await.unwrap();
    assert_eq!(b0, 0x81);
    assert!(String::from_utf8(p).unwrap().starts_with("<open"));
    for (b0, payload, mask, code) in [
        (0x81u8, &b"<x/>"[..], None, 1002u16), // unmasked client frame
        (0xC1, &b"<x/>"[..], k, 1002),         // RSV1 without an extension
        (0x83, &b"<x/>"[..], k, 1002),         // reserved opcode
        (0x82, &b"<x/>"[..], k, 1003),         // binary: RFC 7395 uses text
        (0x81, &[0xff, 0xfe, 0x3c][..], k, 1007), // not UTF-8
        (0x80, &b"<x/>"[..], k, 1002),         // continuation with nothing to continue
    ] {
        let mut r = Raw::connect(&s, Some(&t)).await;
        r.frame(b0, payload, mask).await;
        assert_eq!(r.expect_close().await, code, "frame {b0:#x}");
    }
    // A close frame is answered with a close frame.
    let mut r = Raw::connect(&s, Some(&t)).await;
    r.frame(0x88, &1000u16.to_be_bytes(), k).await;
    assert_eq!(r.expect_close().await, 1000);
}

#[tokio::test]
async fn health_reports_shards_and_connections() {
    let s = Server::start();
    let _c = Client::login(&s, "alice", None).await;
    let out = s.http_get("/health").await;
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    let body: serde_json::Value =
        serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["shards"], 2);
    assert!(body["connections"].as_u64().unwrap() >= 2, "{body}"); // the client and this request
}

#[tokio::test]
async fn sigterm_sends_system_shutdown_and_exits_zero() {
    let mut s = Server::start();
    let (a, b) = s.users_apart();
    let mut c1 = Client::online(&s, &a, "r", 0).await;
    let mut c2 = Client::online(&s, &b, "r", 0).await;
    let mut pending = Client::connect(&s, None).await; // not yet authenticated
    pending.open().await;
    let status = s.terminate().expect("exited within the bound");
    assert!(status.success(), "{status:?}");
    c1.expect_stream_error("system-shutdown").await;
    c2.expect_stream_error("system-shutdown").await;
    pending.expect_stream_error("system-shutdown").await;
}

#[test]
fn refuses_a_port_that_is_taken() {
    let s = Server::start();
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", s.port),
            "--jwt-secret",
            "x",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(temp_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use"), "{err}");
    // The same for a plain listener of another program.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--jwt-secret",
            "x",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(temp_dir())
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already in use")
    );
}

#[test]
fn check_config_validates() {
    let dir = temp_dir();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[server]\ndomain = \"chat.example\"\n[limits]\nmax_stanza_bytes = 65536\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check-config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("max_stanza_bytes = 65536"));
    for bad in [
        "[limits]\nmax_stanza_bytes = 10\n",
        "[server]\nnope = 1\n",
        "[auth]\njwt_algorithm = \"none\"\n",
        "[server]\ndomain = \"a b\"\n",
    ] {
        let f = dir.join("bad.toml");
        std::fs::write(&f, bad).unwrap();
        let out = std::process::Command::new(bin())
            .args(["check-config"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} should be refused");
    }
}

#[tokio::test]
async fn whitespace_keepalives_are_ignored() {
    let s = Server::start();
    let mut c = Client::login(&s, "alice", None).await;
    c.ws_send_raw(" ").await;
    assert!(c.ping_server("after-ws").await.contains("type='result'"));
}

trait RawSend {
    async fn ws_send_raw(&mut self, s: &str);
}

impl RawSend for Client {
    async fn ws_send_raw(&mut self, s: &str) {
        use futures_util::SinkExt;
        self.ws.send(Message::text(s)).await.unwrap();
    }
}
