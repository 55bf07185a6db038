//! XMPP-FTW transport rules over raw WebSockets (the browser-level scenarios with the real
//! `socket.io-client` are in tests/ftw.rs): the Engine.IO handshake, keepalive and its
//! timeout, namespaces, malformed frames, the primus framing, and refused transports.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("nothing received within the test bound"),
        }
    }
}

/// Reads until a text frame containing `pat`; None if the socket closes first.
async fn until(ws: &mut Ws, pat: &str) -> Option<String> {
    loop {
        let t = next_text(ws).await?;
        if t.contains(pat) {
            return Some(t);
        }
    }
}

async fn send(ws: &mut Ws, s: &str) {
    ws.send(Message::text(s)).await.unwrap();
}

async fn socket_io(s: &Server, cookie: Option<&str>) -> Ws {
    let mut ws = ws_connect(s, "/socket.io/?EIO=4&transport=websocket", cookie, None)
        .await
        .expect("upgrade");
    let open = next_text(&mut ws).await.unwrap();
    assert!(open.starts_with("0{\"sid\":"), "{open}");
    send(&mut ws, "40").await;
    let c = next_text(&mut ws).await.unwrap();
    assert!(c.starts_with("40{\"sid\":"), "{c}");
    ws
}

/// A Socket.IO client logged in with the cookie of `user` as `user@localhost/resource`.
async fn json_login(s: &Server, user: &str, resource: &str) -> Ws {
    let mut ws = socket_io(s, Some(&s.token(user))).await;
    send(
        &mut ws,
        &format!("42[\"xmpp.login\",{{\"jid\":\"{user}@localhost\",\"resource\":\"{resource}\"}}]"),
    )
    .await;
    until(&mut ws, "xmpp.connection").await.unwrap();
    ws
}

#[tokio::test]
async fn engine_io_open_packet_announces_the_configured_keepalive() {
    let s = Server::start_with(
        "[ftw]\nping_interval_ms = 1234\nping_timeout_ms = 567\n[limits]\nmax_stanza_bytes = 40000\n",
        1,
    );
    let mut ws = ws_connect(&s, "/socket.io/?EIO=4&transport=websocket", None, None)
        .await
        .unwrap();
    let open = next_text(&mut ws).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
    assert_eq!(v["pingInterval"], 1234, "{open}");
    assert_eq!(v["pingTimeout"], 567, "{open}");
    assert_eq!(v["maxPayload"], 40000, "{open}");
    assert_eq!(v["upgrades"], serde_json::json!([]), "{open}");
    assert!(v["sid"].as_str().is_some_and(|s| !s.is_empty()), "{open}");
}

#[tokio::test]
async fn polling_and_old_protocols_get_engine_io_errors() {
    let s = Server::start_with("", 1);
    let r = s.http_get("/socket.io/?EIO=4&transport=polling").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(
        r.ends_with("{\"code\":0,\"message\":\"Transport unknown\"}"),
        "{r}"
    );
    let r = s.http_get("/socket.io/?EIO=3&transport=websocket").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(
        r.ends_with("{\"code\":5,\"message\":\"Unsupported protocol version\"}"),
        "{r}"
    );
    let s2 = Server::start_with("[ftw]\nenabled = false\n", 1);
    let r = s2.http_get("/socket.io/?EIO=4&transport=websocket").await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
}

#[tokio::test]
async fn a_client_that_does_not_answer_pings_is_closed_and_one_that_does_stays() {
    let s = Server::start_with("[ftw]\nping_interval_ms = 300\nping_timeout_ms = 300\n", 1);
    // Answers every ping: still there after several intervals.
    let mut good = json_login(&s, "user0", "a").await;
    // Never answers: closed after interval + timeout.
    let mut bad = json_login(&s, "user1", "b").await;
    let mut pings = 0;
    while pings < 4 {
        let t = next_text(&mut good)
            .await
            .expect("the answering client was closed");
        if t == "2" {
            pings += 1;
            send(&mut good, "3").await;
        }
    }
    // The silent one got one ping, then the connection error and the close.
    assert_eq!(next_text(&mut bad).await.as_deref(), Some("2"));
    let last = until(&mut bad, "xmpp.error")
        .await
        .expect("an xmpp.error before the close");
    assert!(last.contains("disconnected"), "{last}");
    assert!(next_text(&mut bad).await.is_none(), "closed");
    // And the server answers a client's own ping.
    send(&mut good, "2probe").await;
    assert!(until(&mut good, "3probe").await.is_some());
}

#[tokio::test]
async fn other_namespaces_are_refused_and_events_need_a_login() {
    let s = Server::start_with("", 1);
    let mut ws = ws_connect(&s, "/socket.io/?EIO=4&transport=websocket", None, None)
        .await
        .unwrap();
    next_text(&mut ws).await.unwrap();
    send(&mut ws, "40/admin,").await;
    assert_eq!(
        next_text(&mut ws).await.as_deref(),
        Some("44/admin,{\"message\":\"Invalid namespace\"}")
    );
    send(&mut ws, "40").await;
    until(&mut ws, "40{\"sid\"").await.unwrap();
    send(&mut ws, "427[\"xmpp.roster.get\",{}]").await;
    let r = next_text(&mut ws).await.unwrap();
    assert!(r.starts_with("437[{"), "{r}");
    assert!(r.contains("\"condition\":\"not-connected\""), "{r}");
    send(&mut ws, "42[\"xmpp.ping\",{}]").await;
    let r = next_text(&mut ws).await.unwrap();
    assert!(r.starts_with("42[\"xmpp.error\""), "{r}");
    assert!(r.contains("not-connected"), "{r}");
}

#[tokio::test]
async fn a_malformed_frame_closes_that_socket_only() {
    let s = Server::start_with("", 2);
    let (a, b) = s.users_apart();
    let mut xml = Client::online(&s, &b, "desk", 0).await;
    let mut json = json_login(&s, &a, "web").await;
    let mut other = json_login(&s, "user9", "web").await;
    send(&mut json, "42[\"xmpp.chat.message\",{").await;
    assert!(until(&mut json, "never").await.is_none(), "closed");
    // Everyone else keeps chatting.
    send(
        &mut other,
        &format!(
            "42[\"xmpp.chat.message\",{{\"to\":\"{b}@localhost/desk\",\"content\":\"still here\"}}]"
        ),
    )
    .await;
    let m = xml.recv_until("still here").await;
    assert!(m.contains("from='user9@localhost/web'"), "{m}");
}

#[tokio::test]
async fn primus_framing_logs_in_with_a_jwt_password_and_acks_by_id() {
    let s = Server::start_with("", 2);
    let (a, _) = s.users_apart();
    let mut ws = ws_connect(&s, "/ftw", None, None).await.unwrap();
    send(&mut ws, "\"primus::ping::42\"").await;
    assert_eq!(
        next_text(&mut ws).await.as_deref(),
        Some("\"primus::pong::42\"")
    );
    send(
        &mut ws,
        &format!(
            "{{\"type\":0,\"data\":[\"xmpp.login\",{{\"jid\":\"{a}@localhost\",\"password\":\"not-a-jwt\"}}]}}"
        ),
    )
    .await;
    let e = until(&mut ws, "xmpp.error").await.unwrap();
    assert!(e.contains("login-fail"), "{e}");
    let tok = s.token(&a);
    send(
        &mut ws,
        &format!(
            "{{\"type\":0,\"data\":[\"xmpp.login\",{{\"jid\":\"{a}@localhost\",\"password\":\"{tok}\",\"resource\":\"p\"}}]}}"
        ),
    )
    .await;
    let c = until(&mut ws, "xmpp.connection").await.unwrap();
    assert!(
        c.starts_with("{\"type\":0,\"data\":[\"xmpp.connection\""),
        "{c}"
    );
    assert!(c.contains(&format!("\"user\":\"{a}\"")), "{c}");
    send(&mut ws, "{\"type\":0,\"data\":[\"xmpp.ping\",{}],\"id\":5}").await;
    assert_eq!(
        until(&mut ws, "\"type\":1").await.as_deref(),
        Some("{\"type\":1,\"id\":5,\"data\":[null,true]}")
    );
}

#[tokio::test]
async fn a_bad_cookie_is_refused_at_the_upgrade() {
    let s = Server::start_with("", 1);
    let bad = token_claims(
        serde_json::json!({"sub": "user0", "exp": 4_000_000_000u64}),
        "wrong-secret",
    );
    let r = ws_connect(
        &s,
        "/socket.io/?EIO=4&transport=websocket",
        Some(&bad),
        None,
    )
    .await;
    assert!(r.is_err(), "upgraded with a bad cookie");
    let r = ws_connect(&s, "/ftw", Some(&bad), None).await;
    assert!(r.is_err(), "upgraded with a bad cookie");
}

#[tokio::test]
async fn callbacks_waiting_for_answers_are_bounded() {
    let s = Server::start_with("[ftw]\nmax_pending_callbacks = 2\n", 2);
    let (a, b) = s.users_apart();
    let mut xml = Client::online(&s, &b, "desk", 0).await;
    let mut json = json_login(&s, &a, "web").await;
    // The XML user receives the disco requests and does not answer (yet).
    let ask = |n: u32| format!("42{n}[\"xmpp.discover.info\",{{\"of\":\"{b}@localhost/desk\"}}]");
    send(&mut json, &ask(1)).await;
    send(&mut json, &ask(2)).await;
    let q1 = xml.recv_until("disco#info").await;
    xml.recv_until("disco#info").await;
    send(&mut json, &ask(3)).await;
    let r = until(&mut json, "433[").await.unwrap();
    assert!(r.contains("\"condition\":\"resource-constraint\""), "{r}");
    assert!(r.contains("\"type\":\"wait\""), "{r}");
    // An answer frees a place: the next request goes out again.
    let id = between(&q1, "id='", "'").to_string();
    xml.send(&format!(
        "<iq type='result' to='{a}@localhost/web' id='{id}'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc'/><feature var='urn:xmpp:ping'/></query></iq>"
    ))
    .await;
    let r = until(&mut json, "431[").await.unwrap();
    assert!(r.starts_with("431[null,["), "{r}");
    assert!(r.contains("\"var\":\"urn:xmpp:ping\""), "{r}");
    send(&mut json, &ask(4)).await;
    let q4 = xml.recv_until("disco#info").await;
    assert!(q4.contains("type='get'"), "{q4}");
}

#[tokio::test]
async fn a_frame_over_max_payload_ends_that_session_with_xmpp_error() {
    let s = Server::start_with("[limits]\nmax_stanza_bytes = 1024\n", 1);
    let mut json = json_login(&s, "user0", "web").await;
    let big = "x".repeat(2000);
    send(
        &mut json,
        &format!("42[\"xmpp.chat.message\",{{\"to\":\"user1@localhost\",\"content\":\"{big}\"}}]"),
    )
    .await;
    let e = until(&mut json, "xmpp.error")
        .await
        .expect("xmpp.error first");
    assert!(e.contains("policy-violation"), "{e}");
    assert!(next_text(&mut json).await.is_none(), "closed");
}

#[tokio::test]
async fn the_socket_io_path_is_configurable() {
    let s = Server::start_with("[ftw]\nsocketio_path = \"/rt/\"\n", 1);
    let r = s.http_get("/socket.io/?EIO=4&transport=websocket").await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let mut ws = ws_connect(&s, "/rt/?EIO=4&transport=websocket", None, None)
        .await
        .expect("upgrade at the configured path");
    let open = next_text(&mut ws).await.unwrap();
    assert!(open.starts_with("0{\"sid\":"), "{open}");
}

#[tokio::test]
async fn a_socket_io_disconnect_ends_the_session_and_contacts_see_it_go() {
    let s = Server::start_with("", 2);
    let (a, b) = s.users_apart();
    let mut xml = Client::online(&s, &b, "desk", 0).await;
    let mut json = json_login(&s, &a, "web").await;
    // Directed presence to the XML user, so it gets the unavailable at the end (RFC 6121 §4.6).
    send(
        &mut json,
        &format!("42[\"xmpp.presence\",{{\"to\":\"{b}@localhost/desk\"}}]"),
    )
    .await;
    let p = xml.recv_until("<presence").await;
    assert!(p.contains(&format!("from='{a}@localhost/web'")), "{p}");
    send(&mut json, "41").await;
    assert!(until(&mut json, "never").await.is_none(), "closed");
    let gone = xml.recv_until("type='unavailable'").await;
    assert!(
        gone.contains(&format!("from='{a}@localhost/web'")),
        "{gone}"
    );
}

/// Mutated frames (bytes flipped, cut, duplicated) from a set of valid ones: each either
/// gets an answer or closes its own socket; the server keeps serving everyone else.
#[tokio::test]
async fn mutated_frames_never_harm_the_server() {
    let s = Server::start_with("", 2);
    let (a, b) = s.users_apart();
    let mut xml = Client::online(&s, &b, "desk", 0).await;
    let valid = [
        "42[\"xmpp.chat.message\",{\"to\":\"user1@localhost\",\"content\":\"hi\"}]",
        "427[\"xmpp.roster.get\",{}]",
        "428[\"xmpp.discover.info\",{\"of\":\"localhost\"}]",
        "42[\"xmpp.presence\",{\"show\":\"away\",\"priority\":5}]",
        "429[\"xmpp.mam.query\",{\"rsm\":{\"max\":2}}]",
        "4210[\"xmpp.muc.join\",{\"room\":\"group-x\",\"nick\":\"n\",\"history\":{\"maxstanzas\":1}}]",
        "4211[\"xmpp.roster.add\",{\"jid\":\"x@localhost\",\"groups\":[\"a\",\"b\"]}]",
    ];
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut json = json_login(&s, &a, "web").await;
    let (mut sent, mut closes) = (0, 0);
    while sent < 200 {
        let mut f: Vec<u8> = valid[rnd(valid.len())].as_bytes().to_vec();
        for _ in 0..1 + rnd(3) {
            if f.is_empty() {
                f.push(b'4');
            }
            let i = rnd(f.len());
            match rnd(4) {
                0 => {
                    let pool = b"{}[]\",:0a\\\x01";
                    f[i] = pool[rnd(pool.len())]
                }
                1 => f.truncate(i.max(1)),
                2 => {
                    let c = f[i];
                    f.insert(i, c)
                }
                _ => {
                    f.remove(i);
                }
            }
        }
        let text = String::from_utf8_lossy(&f).into_owned();
        let _ = json.send(Message::text(text)).await;
        // Read what came back; a closed socket (a malformed frame) gets a new session.
        let closed = loop {
            match tokio::time::timeout(std::time::Duration::from_millis(20), json.next()).await {
                Err(_) => break false,
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break true,
                Ok(Some(Ok(_))) => continue,
            }
        };
        if closed {
            closes += 1;
            json = json_login(&s, &a, "web").await;
        }
        sent += 1;
    }
    // Everyone else is unharmed: the XML user and a fresh JSON session still chat.
    let mut other = json_login(&s, "user9", "web").await;
    send(
        &mut other,
        &format!("42[\"xmpp.chat.message\",{{\"to\":\"{b}@localhost/desk\",\"content\":\"after the storm\"}}]"),
    )
    .await;
    let m = xml.recv_until("after the storm").await;
    assert!(m.contains("from='user9@localhost/web'"), "{m}");
    // The mutations are varied enough to close sockets, and not so bad that all do.
    assert!(closes > 10 && closes < 190, "{closes} closes of 200");
    assert!(
        s.log().lines().all(|l| !l.contains("panicked")),
        "a panic in the server log"
    );
}

/// Issue 10, finding 6: archive results and carbons nest the message three levels deeper
/// than a client may send it. The JSON renderer parsed delivered stanzas with the client
/// limits and dropped such a result with a warning; now it arrives as an event.
#[tokio::test]
async fn a_deep_message_still_arrives_as_an_archive_result() {
    let s = Server::start_with("", 2);
    let (a, b) = s.users_apart();
    let mut json = json_login(&s, &a, "web").await;
    let mut xml = Client::online(&s, &b, "desk", 0).await;
    // Depth 30 of the 32 a client may send: <message> then 29 nested extension elements.
    let open: String = (1..30)
        .map(|i| format!("<x{i} xmlns='urn:example:deep'>"))
        .collect();
    let close: String = (1..30).rev().map(|i| format!("</x{i}>")).collect();
    xml.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    xml.recv_until("<enabled").await;
    xml.send(&format!(
        "<message to='{a}@localhost/web' type='chat' id='deep'><body>deep one</body>{open}{close}</message>"
    ))
    .await;
    xml.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    xml.recv_until("<a xmlns").await; // archived
    until(&mut json, "deep one").await.expect("live copy"); // the message itself
    send(
        &mut json,
        &format!("427[\"xmpp.mam.query\",{{\"with\":\"{b}@localhost\"}}]"),
    )
    .await;
    let m = until(&mut json, "xmpp.mam.message")
        .await
        .expect("the archive result was dropped");
    assert!(m.contains("deep one"), "{m}");
}

/// Issue 10, finding 6: frames queued for a JSON session used to be rendered to JSON when
/// queued, so when the session dropped they were no longer stanzas and were lost instead
/// of routed again. A JSON client that stops reading (tiny receive buffer) and drops:
/// what the server never wrote reaches the user's next session through offline storage.
#[tokio::test]
async fn what_a_dropped_json_session_was_never_sent_is_routed_again() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = Server::start_with("", 2);
    let (a, b) = s.users_apart();
    drop(Client::login(&s, &a, Some("first")).await); // a known user
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(1024).unwrap();
    socket2::SockRef::from(&sock).set_tcp_mss(128).unwrap();
    let tcp = sock.connect(([127, 0, 0, 1], s.port).into()).await.unwrap();
    let mut req = s
        .url("/socket.io/?EIO=4&transport=websocket")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Cookie",
        format!("auth_token={}", s.token(&a)).parse().unwrap(),
    );
    let (mut json, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
    next_text(&mut json).await.unwrap(); // open
    send(&mut json, "40").await;
    next_text(&mut json).await.unwrap();
    send(
        &mut json,
        &format!("42[\"xmpp.login\",{{\"jid\":\"{a}@localhost\",\"resource\":\"web\"}}]"),
    )
    .await;
    until(&mut json, "xmpp.connection").await.unwrap();
    // The JSON client stops reading; bob sends 300 messages of 1 KB to it.
    let mut bob = Client::online(&s, &b, "desk", 0).await;
    bob.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    bob.recv_until("<enabled").await;
    const N: usize = 300;
    let pad = "p".repeat(1000);
    for i in 0..N {
        bob.send(&format!(
            "<message to='{a}@localhost/web' type='chat' id='j{i}'><body>j{i} {pad}</body></message>"
        ))
        .await;
    }
    bob.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let ack = bob.recv_until("<a xmlns").await;
    assert!(ack.contains(&format!("h='{N}'")), "{ack}");
    drop(json); // gone, with most of it never written
    // Wait (bounded) until the server has seen the drop: bob's connection and the
    // health request's own are left.
    for _ in 0..400 {
        if s.http_get("/health").await.contains("\"connections\":2") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut alice = Client::login(&s, &a, Some("desk")).await;
    alice.send("<presence/>").await;
    let mut seen = std::collections::HashSet::new();
    loop {
        let m = alice.recv_until("<message").await;
        let id = between(&m, "id='", "'").to_string();
        assert!(seen.insert(id.clone()), "{id} twice");
        if id == format!("j{}", N - 1) {
            break;
        }
    }
}
