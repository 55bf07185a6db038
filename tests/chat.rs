//! 1:1 chat, presence, receipts and iq routing between real clients, across shards.

mod common;
use common::*;

#[tokio::test]
async fn chat_across_shards_keeps_body_id_escaping_and_stamps_from() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    assert_ne!(s.home(&a), s.home(&b));
    let mut alice = Client::online(&s, &a, "web-1", 0).await;
    let mut bob = Client::online(&s, &b, "web-2", 0).await;
    let body = "Hi &amp; &lt;bye&gt; &quot;x&quot; — こんにちは 🌸";
    alice
        .send(&format!(
            "<message xmlns='jabber:client' to='{b}@localhost' from='mallory@evil.example/x' type='chat' id='m-1'><body>{body}</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        ))
        .await;
    let m = bob.recv_until("<message").await;
    assert!(m.contains(&format!("from='{a}@localhost/web-1'")), "{m}");
    assert!(
        !m.contains("mallory"),
        "spoofed from must be overwritten: {m}"
    );
    assert!(m.contains("id='m-1'") && m.contains("type='chat'"), "{m}");
    assert!(
        m.contains(&format!("<body>{body}</body>")),
        "body must arrive byte for byte: {m}"
    );
    assert!(m.contains("xmlns='jabber:client'"), "{m}");
    assert!(
        m.contains("<active xmlns='http://jabber.org/protocol/chatstates'/>"),
        "{m}"
    );
    // And back, to the bare JID, with a mixed-case address (normalized).
    bob.send(&format!(
        "<message to='{}@LOCALHOST' type='chat' id='m-2'><body>ok</body></message>",
        a.to_uppercase()
    ))
    .await;
    let m = alice.recv_until("<message").await;
    assert!(
        m.contains(&format!("from='{b}@localhost/web-2'"))
            && m.contains("id='m-2'")
            && m.contains("<body>ok</body>"),
        "{m}"
    );
}

#[tokio::test]
async fn every_login_reaches_its_home_shard() {
    // Connections land on any shard (SO_REUSEPORT); each is handed to its user's home.
    let s = Server::start();
    let mut clients = Vec::new();
    for i in 0..16 {
        clients.push(Client::login(&s, &format!("hand{i}"), Some("r")).await);
    }
    let log = s.log();
    assert!(
        log.contains("handoff to home shard"),
        "no connection was handed off:\n{log}"
    );
    // All of them work after the move.
    for c in clients.iter_mut() {
        assert!(c.ping_server("after").await.contains("type='result'"));
    }
}

#[tokio::test]
async fn bare_jid_goes_to_highest_priority_resources() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "one", 0).await;
    let mut hi = Client::online(&s, &b, "hi", 5).await;
    let mut lo = Client::online(&s, &b, "lo", 1).await;
    hi.recv_until("/lo'").await; // hi sees lo come online
    alice
        .send(&format!(
            "<message to='{b}@localhost' type='chat' id='x1'><body>to the best</body></message>"
        ))
        .await;
    let m = hi.recv_until("<message").await;
    assert!(m.contains("id='x1'"), "{m}");
    // lo must not have got x1: a marker sent after it to lo's full JID arrives first.
    alice
        .send(&format!(
            "<message to='{b}@localhost/lo' type='chat' id='marker'><body>m</body></message>"
        ))
        .await;
    let m = lo.recv_until("<message").await;
    assert!(
        m.contains("id='marker'"),
        "the lower-priority resource got the bare-JID message: {m}"
    );
    // Equal priorities: both get it.
    lo.send("<presence><priority>5</priority></presence>").await;
    hi.recv_until("<priority>5</priority>").await;
    alice
        .send(&format!(
            "<message to='{b}@localhost' type='chat' id='x2'><body>both</body></message>"
        ))
        .await;
    assert!(hi.recv_until("<message").await.contains("id='x2'"));
    assert!(lo.recv_until("<message").await.contains("id='x2'"));
    // A negative priority never gets bare-JID messages; with none left the message is stored
    // (RFC 6121 §8.5.2.1.1) and comes with the next non-negative presence.
    hi.send("<presence><priority>-1</priority></presence>")
        .await;
    lo.send("<presence><priority>-1</priority></presence>")
        .await;
    hi.recv_until("/lo'").await;
    alice
        .send(&format!(
            "<message to='{b}@localhost' type='chat' id='x3'><body>none</body></message>"
        ))
        .await;
    alice
        .send(&format!(
            "<message to='{b}@localhost/lo' type='chat' id='x4'><body>direct</body></message>"
        ))
        .await;
    assert!(
        lo.recv_until("<message").await.contains("id='x4'"),
        "x3 must not reach a negative priority"
    );
    hi.send("<presence><priority>1</priority></presence>").await;
    let m = hi.recv_until("id='x3'").await;
    assert!(m.contains("<delay xmlns='urn:xmpp:delay'"), "{m}");
}

#[tokio::test]
async fn full_jid_reaches_a_connected_resource_even_before_presence() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "one", 0).await;
    let mut bob = Client::login(&s, &b, Some("quiet")).await; // no initial presence
    alice
        .send(&format!(
            "<message to='{b}@localhost/quiet' type='chat' id='f1'><body>psst</body></message>"
        ))
        .await;
    assert!(bob.recv_until("<message").await.contains("id='f1'"));
    // ...but a bare-JID message does not reach an unavailable resource (RFC 6121 §8.5.2):
    // it is stored until the resource becomes available.
    alice
        .send(&format!(
            "<message to='{b}@localhost' type='chat' id='f2'><body>hello?</body></message>"
        ))
        .await;
    alice
        .send(&format!(
            "<message to='{b}@localhost/quiet' type='chat' id='f3'><body>direct</body></message>"
        ))
        .await;
    assert!(
        bob.recv_until("<message").await.contains("id='f3'"),
        "f2 must not arrive before presence"
    );
    bob.send("<presence/>").await;
    assert!(
        bob.recv_until("id='f2'")
            .await
            .contains("<delay xmlns='urn:xmpp:delay'")
    );
}

#[tokio::test]
async fn offline_user_gets_service_unavailable_with_the_id() {
    // Strict mode: only users seen before get offline messages.
    let s = Server::start_with("[storage]\naccept_unknown_users = false\n", 2);
    let mut alice = Client::online(&s, "alice", "one", 0).await;
    alice.send("<message to='nobody@localhost' type='chat' id='o&amp;1'><body>anyone?</body></message>").await;
    let e = alice.recv_until("<message").await;
    assert!(
        e.contains("type='error'")
            && e.contains("id='o&amp;1'")
            && e.contains("from='nobody@localhost'"),
        "{e}"
    );
    assert!(e.contains("<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"), "{e}");
    // Errors and headlines to nobody are dropped, not bounced: the next reply is the ping.
    alice
        .send("<message to='nobody@localhost' type='headline' id='h'><body>news</body></message>")
        .await;
    let r = alice.ping_server("after-headline").await;
    assert!(r.contains("type='result'"), "{r}");
}

#[tokio::test]
async fn receipts_round_trip_with_ids_preserved() {
    // XEP-0184 §5, examples 1–3 (sendMessageWithReceipt / receiveDeliveryReceipt).
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "a", 0).await;
    let mut bob = Client::online(&s, &b, "b", 0).await;
    alice
        .send(&format!(
            "<message from='{a}@localhost/a' id='richard2-4.1.247' to='{b}@localhost' type='chat'><body>My lord, dispatch; read o'er these articles.</body><request xmlns='urn:xmpp:receipts'/></message>"
        ))
        .await;
    let m = bob.recv_until("<message").await;
    assert!(
        m.contains("id='richard2-4.1.247'") && m.contains("<request xmlns='urn:xmpp:receipts'/>"),
        "{m}"
    );
    bob.send(&format!("<message id='bi29sg183b4v' to='{a}@localhost/a'><received xmlns='urn:xmpp:receipts' id='richard2-4.1.247'/></message>")).await;
    let r = alice.recv_until("<message").await;
    assert!(
        r.contains("<received xmlns='urn:xmpp:receipts' id='richard2-4.1.247'/>")
            && r.contains("id='bi29sg183b4v'"),
        "{r}"
    );
    assert!(r.contains(&format!("from='{b}@localhost/b'")), "{r}");
}

#[tokio::test]
async fn presence_to_own_resources_directed_and_unavailable_at_the_end() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut bob = Client::online(&s, &b, "desk", 0).await;
    let mut a1 = Client::online(&s, &a, "one", 0).await;
    let mut a2 = Client::login(&s, &a, Some("two")).await;
    a2.send("<presence><show>away</show><status>lunch</status><priority>3</priority></presence>")
        .await;
    // a2 gets its own presence and the other resource's (RFC 6121 §4.2.2, §4.4.2).
    let mut got = [
        a2.recv_until("<presence").await,
        a2.recv_until("<presence").await,
    ];
    got.sort();
    assert!(
        got.iter()
            .any(|p| p.contains(&format!("from='{a}@localhost/one'"))),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|p| p.contains(&format!("from='{a}@localhost/two'"))
                && p.contains("<show>away</show>")),
        "{got:?}"
    );
    let p = a1.recv_until("/two'").await;
    assert!(
        p.contains("<status>lunch</status>") && p.contains("<priority>3</priority>"),
        "{p}"
    );
    // Directed presence reaches bob, and bob gets unavailable when the session ends.
    a2.send(&format!(
        "<presence to='{b}@localhost'><show>chat</show></presence>"
    ))
    .await;
    let p = bob.recv_until("<presence").await;
    assert!(
        p.contains(&format!("from='{a}@localhost/two'")) && p.contains("<show>chat</show>"),
        "{p}"
    );
    drop(a2); // the connection just goes away
    let p = bob.recv_until("<presence").await;
    assert!(
        p.contains("type='unavailable'") && p.contains(&format!("from='{a}@localhost/two'")),
        "{p}"
    );
    let p = a1.recv_until("type='unavailable'").await;
    assert!(p.contains(&format!("from='{a}@localhost/two'")), "{p}");
}

#[tokio::test]
async fn iq_is_routed_to_full_jids_and_answered_for_the_rest() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "a", 0).await;
    let mut bob = Client::online(&s, &b, "b", 0).await;
    alice
        .send(&format!(
            "<iq type='get' id='v1' to='{b}@localhost/b'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await;
    let q = bob.recv_until("<iq").await;
    assert!(
        q.contains("id='v1'") && q.contains(&format!("from='{a}@localhost/a'")),
        "{q}"
    );
    bob.send(&format!("<iq type='result' id='v1' to='{a}@localhost/a'><query xmlns='jabber:iq:version'><name>bot</name></query></iq>")).await;
    let r = alice.recv_until("id='v1'").await;
    assert!(
        r.contains("type='result'") && r.contains("<name>bot</name>"),
        "{r}"
    );
    // To a resource that is not there: service-unavailable with the id.
    alice
        .send(&format!(
            "<iq type='get' id='v2' to='{b}@localhost/gone'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await;
    let e = alice.recv_until("id='v2'").await;
    assert!(
        e.contains("type='error'") && e.contains("<service-unavailable"),
        "{e}"
    );
    // To the server: handled (disco, version) or service-unavailable.
    alice.send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    let d = alice.recv_until("id='d1'").await;
    assert!(
        d.contains("<identity category='server' type='im'")
            && d.contains("<feature var='urn:xmpp:ping'/>"),
        "{d}"
    );
    alice
        .send("<iq type='get' id='u1' to='localhost'><query xmlns='urn:example:unknown'/></iq>")
        .await;
    let u = alice.recv_until("id='u1'").await;
    assert!(
        u.contains("type='error'") && u.contains("<service-unavailable"),
        "{u}"
    );
    alice
        .send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let r = alice.recv_until("id='r1'").await;
    assert!(
        r.contains("type='result'") && r.contains("<query xmlns='jabber:iq:roster' ver='0'"),
        "{r}"
    );
    // A get with two children, or no id, is a bad request.
    alice
        .send("<iq type='get' id='bad'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>")
        .await;
    assert!(alice.recv_until("id='bad'").await.contains("<bad-request"));
}

#[tokio::test]
async fn malformed_and_remote_addresses_get_errors() {
    let s = Server::start();
    let mut alice = Client::online(&s, "alice", "a", 0).await;
    alice
        .send("<message to='a@b@c' type='chat' id='j1'><body>x</body></message>")
        .await;
    let e = alice.recv_until("id='j1'").await;
    assert!(
        e.contains("<jid-malformed") && e.contains("type='error'"),
        "{e}"
    );
    alice
        .send("<message to='bob@example.org' type='chat' id='r1'><body>x</body></message>")
        .await;
    let e = alice.recv_until("id='r1'").await;
    assert!(e.contains("<remote-server-not-found"), "{e}");
    alice.send("<presence type='bogus' id='p1'/>").await;
    assert!(alice.recv_until("id='p1'").await.contains("<bad-request"));
}
