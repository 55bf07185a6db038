//! XEP-0199: the server answers pings, pings idle clients, and closes those that do not
//! answer with `connection-timeout`. Any traffic, WebSocket pongs included, is activity.

mod common;
use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::protocol::Message;

#[tokio::test]
async fn server_answers_pings_with_the_id() {
    // XEP-0199 §4.2 (client-to-server ping), example 3 and 4.
    let s = Server::start();
    let mut c = Client::login(&s, "juliet", Some("balcony")).await;
    c.send("<iq from='juliet@localhost/balcony' to='localhost' id='c2s1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    let r = c.recv_until("id='c2s1'").await;
    assert!(
        r.contains("type='result'")
            && r.contains("from='localhost'")
            && r.contains("to='juliet@localhost/balcony'"),
        "{r}"
    );
}

#[tokio::test]
async fn idle_client_is_pinged_then_closed_when_silent() {
    let s = Server::start_with(
        "[ping]\nclient_idle_ms = 300\nclient_ping_timeout_ms = 300\n",
        2,
    );
    let mut c = Client::login(&s, "juliet", Some("balcony")).await;
    let p = c.recv_until("<ping").await;
    assert!(
        p.contains("type='get'")
            && p.contains("from='localhost'")
            && p.contains("to='juliet@localhost/balcony'"),
        "{p}"
    );
    c.expect_stream_error("connection-timeout").await;
}

#[tokio::test]
async fn answering_the_ping_keeps_the_session() {
    let s = Server::start_with(
        "[ping]\nclient_idle_ms = 200\nclient_ping_timeout_ms = 2000\n",
        2,
    );
    let mut c = Client::login(&s, "juliet", Some("balcony")).await;
    for _ in 0..3 {
        let p = c.recv_until("<ping").await;
        let id = between(&p, "id='", "'").to_string();
        c.send(&format!("<iq type='result' id='{id}' to='localhost'/>"))
            .await;
    }
    assert!(c.ping_server("still").await.contains("type='result'"));
}

#[tokio::test]
async fn websocket_pongs_count_as_activity() {
    let s = Server::start_with(
        "[ping]\nclient_idle_ms = 400\nclient_ping_timeout_ms = 400\n",
        2,
    );
    let mut c = Client::login(&s, "juliet", Some("balcony")).await;
    // Unsolicited pongs (RFC 6455 §5.5.3) every 50 ms for ~2 s: never idle.
    for _ in 0..40 {
        c.ws.send(Message::Pong(Default::default())).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The first thing we get back is our own ping's answer, not a server ping or an error.
    let r = c.ping_server("mine").await;
    assert!(!r.contains("<ping") && r.contains("type='result'"), "{r}");
}

/// XEP-0202 Entity Time (§3, example 1 and 2): the server answers with its offset and the
/// time in UTC (XEP-0082), and disco#info lists the feature.
#[tokio::test]
async fn the_server_tells_its_time() {
    let s = Server::start();
    let mut c = Client::login(&s, "juliet", Some("balcony")).await;
    c.send("<iq type='get' from='juliet@localhost/balcony' to='localhost' id='time_1'><time xmlns='urn:xmpp:time'/></iq>").await;
    let r = c.recv_until("id='time_1'").await;
    assert!(
        r.contains("type='result'")
            && r.contains("<time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>"),
        "{r}"
    );
    let utc = between(&r, "<utc>", "</utc>");
    let t = humantime::parse_rfc3339(utc).unwrap();
    let off = t
        .duration_since(std::time::SystemTime::now())
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap();
    assert!(off.as_secs() < 600, "{utc}");
    c.send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    let d = c.recv_until("id='d1'").await;
    assert!(d.contains("<feature var='urn:xmpp:time'/>"), "{d}");
}
