//! The admin API's user calls through real HTTP, checked from real XMPP clients: `PUT
//! /api/users/{user}` makes a user known before its first login (in strict mode a message
//! to it is stored instead of refused, and delivered at its first login); `PUT
//! /api/users/{user}/roster` provisions roster items the user's client gets (in its roster,
//! and as roster pushes while online) with presence flowing per the subscriptions; `DELETE
//! /api/users/{user}` closes its sessions and deletes its roster, offline messages,
//! archive and room affiliations, and says what it deleted. Every answer is durable (it
//! survives `kill -9` right after). Bad requests and limits are refused.

mod common;
use common::admin::{Api, with_token_file};
use common::*;

async fn roster(c: &mut Client, id: &str) -> String {
    c.send(&format!(
        "<iq id='{id}' type='get'><query xmlns='jabber:iq:roster'/></iq>"
    ))
    .await;
    c.recv_until(&format!("id='{id}'")).await
}

/// A MAM query of the client's own archive: the forwarded messages and the final iq.
async fn archive(c: &mut Client, id: &str) -> (Vec<String>, String) {
    c.send(&format!(
        "<iq type='set' id='{id}'><query xmlns='urn:xmpp:mam:2' queryid='q-{id}'/></iq>"
    ))
    .await;
    let mut results = Vec::new();
    loop {
        let m = c.recv().await;
        if m.contains(&format!("queryid='q-{id}'")) {
            results.push(m);
        } else if m.contains(&format!("id='{id}'")) {
            return (results, m);
        }
    }
}

/// Messages that reach `c` before the answer to a ping sent now.
async fn messages_before_ping(c: &mut Client, id: &str) -> Vec<String> {
    c.send(&format!(
        "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    let mut got = Vec::new();
    loop {
        let m = c.recv().await;
        if m.contains(&format!("id='{id}'")) {
            return got;
        }
        if m.starts_with("<message") {
            got.push(m);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioned_user_gets_messages_before_its_first_login() {
    let dir = tempfile::tempdir().unwrap();
    // Strict mode: only known users get offline messages.
    let mut s = with_token_file(dir.path(), "[storage]\naccept_unknown_users = false\n", 2);
    let api = Api(&s);
    let mut alice = Client::online(&s, "alice", "a", 0).await;
    alice
        .send("<message to='zoe@localhost' type='chat' id='m1'><body>before</body></message>")
        .await;
    let e = alice.recv_until("id='m1'").await;
    assert!(
        e.contains("type='error'") && e.contains("<service-unavailable"),
        "{e}"
    );
    api.refused("GET", "/api/users/zoe", "", 404, "item-not-found");
    let v = api.ok("PUT", "/api/users/zoe", "");
    assert_eq!(
        (&v["user"], &v["created"]),
        (&"zoe@localhost".into(), &true.into())
    );
    let v = api.ok("PUT", "/api/users/zoe@localhost", "{}");
    assert_eq!(v["created"], false, "{v}");
    let v = api.ok("GET", "/api/users/zoe", "");
    assert_eq!((&v["known"], &v["sessions"]), (&true.into(), &0.into()));
    // Durable: known after kill -9 right after the answer.
    drop(alice);
    s.restart(true);
    let api = Api(&s);
    assert_eq!(api.ok("GET", "/api/users/zoe", "")["known"], true);
    let mut alice = Client::online(&s, "alice", "a", 0).await;
    alice
        .send("<message to='zoe@localhost' type='chat' id='m2'><body>welcome</body></message>")
        .await;
    assert!(
        messages_before_ping(&mut alice, "p1").await.is_empty(),
        "no error"
    );
    let mut zoe = Client::online(&s, "zoe", "z", 0).await;
    let m = zoe.recv_until("<body>welcome</body>").await;
    assert!(m.contains("<delay xmlns='urn:xmpp:delay'"), "{m}");
    assert_eq!(api.ok("GET", "/api/users/zoe", "")["sessions"], 1);
    // Bad requests.
    api.refused(
        "PUT",
        "/api/users/zoe",
        r#"{"password": "x"}"#,
        400,
        "bad-request",
    );
    api.refused("PUT", "/api/users/zoe", "{not json", 400, "bad-request");
    api.refused(
        "PUT",
        "/api/users/zoe@elsewhere.example",
        "",
        400,
        "jid-malformed",
    );
    api.refused("PUT", "/api/users/a%20b", "", 400, "jid-malformed");
    api.refused("PUT", "/api/users/%40localhost", "", 400, "jid-malformed");
    assert_eq!(api.call("POST", "/api/users/zoe", "").0, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioned_roster() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_token_file(dir.path(), "max_items_per_request = 3\n", 2);
    let api = Api(&s);
    // A mutual subscription: one item in each roster.
    let v = api.ok(
        "PUT",
        "/api/users/alice/roster",
        r#"{"items": [{"jid": "bob@localhost", "name": "Bob <B>", "groups": ["Friends", "Friends", "Work"], "subscription": "both"},
                      {"jid": "dan@localhost", "subscription": "to"}]}"#,
    );
    let r = v["roster"].as_array().unwrap();
    assert_eq!(r.len(), 2, "{v}");
    assert_eq!(
        (&r[0]["jid"], &r[0]["subscription"], &r[0]["groups"]),
        (
            &"bob@localhost".into(),
            &"both".into(),
            &serde_json::json!(["Friends", "Work"])
        )
    );
    api.ok(
        "PUT",
        "/api/users/bob@localhost/roster",
        r#"{"items": [{"jid": "alice@localhost", "subscription": "both"}]}"#,
    );
    // Durable: kill -9 right after the answers.
    s.restart(true);
    let api = Api(&s);
    let mut alice = Client::login(&s, "alice", Some("a")).await;
    let r = roster(&mut alice, "r1").await;
    assert!(
        r.contains("<item jid='bob@localhost' name='Bob &lt;B&gt;' subscription='both'><group>Friends</group><group>Work</group></item>"),
        "{r}"
    );
    assert!(
        r.contains("<item jid='dan@localhost' subscription='to'/>"),
        "{r}"
    );
    alice.send("<presence/>").await;
    alice.recv_until("<presence").await;
    // Presence flows both ways per the subscriptions.
    let mut bob = Client::login(&s, "bob", Some("b")).await;
    bob.send("<presence><status>here</status></presence>").await;
    let p = alice.recv_until("from='bob@localhost/b'").await;
    assert!(p.contains("<status>here</status>"), "{p}");
    let p = bob.recv_until("from='alice@localhost/a'").await;
    assert!(p.starts_with("<presence"), "{p}");

    // A roster push to the online user (RFC 6121 §2.1.6), and presence at once: carol
    // gains a `from` subscription, so she gets alice's current presence.
    let mut carol = Client::online(&s, "carol", "c", 0).await;
    let v = api.ok(
        "PUT",
        "/api/users/alice/roster",
        r#"{"items": [{"jid": "carol@localhost", "name": "Carol", "subscription": "from"}]}"#,
    );
    assert_eq!(v["roster"].as_array().unwrap().len(), 3, "{v}");
    let push = alice.recv_until("jabber:iq:roster").await;
    assert!(
        push.contains("type='set'")
            && push.contains("<item jid='carol@localhost' name='Carol' subscription='from'/>"),
        "{push}"
    );
    let p = carol.recv_until("from='alice@localhost/a'").await;
    assert!(
        p.starts_with("<presence") && !p.contains("unavailable"),
        "{p}"
    );
    // Removed: a push with subscription='remove', and carol sees alice go.
    api.ok(
        "PUT",
        "/api/users/alice/roster",
        r#"{"items": [{"jid": "carol@localhost", "subscription": "remove"}]}"#,
    );
    let push = alice.recv_until("jabber:iq:roster").await;
    assert!(
        push.contains("<item jid='carol@localhost'") && push.contains("subscription='remove'"),
        "{push}"
    );
    let p = carol.recv_until("from='alice@localhost/a'").await;
    assert!(p.contains("type='unavailable'"), "{p}");
    let r = roster(&mut alice, "r2").await;
    assert!(!r.contains("carol@localhost"), "{r}");

    // Bad requests.
    let path = "/api/users/alice/roster";
    api.refused("PUT", path, "{not json", 400, "bad-request");
    api.refused("PUT", path, "", 400, "bad-request");
    api.refused(
        "PUT",
        path,
        r#"{"items": [{"jid": "x@localhost", "subscription": "mutual"}]}"#,
        400,
        "bad-request",
    );
    api.refused(
        "PUT",
        path,
        r#"{"items": [{"jid": "alice@localhost"}]}"#,
        400,
        "bad-request",
    );
    api.refused(
        "PUT",
        path,
        r#"{"items": [{"jid": "x@localhost/r"}]}"#,
        400,
        "jid-malformed",
    );
    api.refused(
        "PUT",
        path,
        r#"{"items": [{"jid": "x@localhost", "groups": [""]}]}"#,
        400,
        "bad-request",
    );
    api.refused(
        "PUT",
        path,
        r#"{"items": [{"jid": "x@localhost", "ask": true}]}"#,
        400,
        "bad-request",
    );
    api.refused(
        "PUT",
        "/api/users/x@elsewhere.example/roster",
        r#"{"items": []}"#,
        400,
        "jid-malformed",
    );
    let four: Vec<String> = (0..4)
        .map(|i| format!(r#"{{"jid": "u{i}@localhost"}}"#))
        .collect();
    let t = api.refused(
        "PUT",
        path,
        &format!(r#"{{"items": [{}]}}"#, four.join(",")),
        400,
        "policy-violation",
    );
    assert!(t.contains("admin.max_items_per_request"), "{t}");
    let v = api.ok(
        "PUT",
        path,
        &format!(r#"{{"items": [{}]}}"#, four[..3].join(",")),
    );
    assert_eq!(v["roster"].as_array().unwrap().len(), 5, "{v}");
    assert_eq!(api.call("GET", path, "").0, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_deletes_what_is_stored_for_it() {
    const ROOM: &str = "group-0c0ffee0-1234-4abc-8def-000000000001@conference.localhost";
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_token_file(dir.path(), "", 2);
    let api = Api(&s);
    // Archive: alice and bob talk.
    let mut alice = Client::online(&s, "alice", "a", 0).await;
    let mut bob = Client::online(&s, "bob", "b", 0).await;
    for i in 0..2 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='x{i}'><body>hello {i}</body></message>"
            ))
            .await;
        bob.recv_until(&format!("id='x{i}'")).await;
    }
    drop(alice);
    // A roster item and a room affiliation.
    api.ok(
        "PUT",
        "/api/users/alice/roster",
        r#"{"items": [{"jid": "bob@localhost", "subscription": "both"}]}"#,
    );
    api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}"),
        r#"{"members_only": true}"#,
    );
    api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}/affiliations"),
        r#"{"items": [{"jid": "alice@localhost", "affiliation": "member"}, {"jid": "bob@localhost", "affiliation": "member"}]}"#,
    );
    // Rooms load on demand: after a restart the room is stored, not in memory, and the
    // deletion must still find her affiliation in it.
    drop(bob);
    s.restart(false);
    let api = Api(&s);
    let mut bob = Client::online(&s, "bob", "b", 0).await;
    // Offline messages, for a session that did not send presence (nothing is flushed).
    let mut quiet = Client::login(&s, "alice", Some("q")).await;
    for i in 0..3 {
        bob.send(&format!(
            "<message to='alice@localhost' type='chat' id='o{i}'><body>offline {i}</body></message>"
        ))
        .await;
    }
    assert!(messages_before_ping(&mut bob, "p0").await.is_empty());

    let v = api.ok("DELETE", "/api/users/alice", "");
    assert_eq!(
        v["deleted"],
        // The archive: the two messages she sent, and the three she was sent offline.
        serde_json::json!({"record": true, "sessions": 1, "roster": 1, "offline": 3,
                           "archive": 5, "affiliations": 1}),
        "{v}"
    );
    // The session was closed.
    let e = quiet.expect_stream_error("policy-violation").await;
    assert!(e.contains("account deleted"), "{e}");
    api.refused("GET", "/api/users/alice", "", 404, "item-not-found");
    // Durable: kill -9 right after the answer.
    drop(bob);
    s.restart(true);
    let api = Api(&s);
    api.refused("GET", "/api/users/alice", "", 404, "item-not-found");
    let room = api.ok("GET", &format!("/api/rooms/{ROOM}"), "");
    assert_eq!(
        room["affiliations"],
        serde_json::json!([{"jid": "bob@localhost", "affiliation": "member"}]),
        "{room}"
    );
    // Alice logs in afresh: an empty roster, no offline messages, an empty archive, and
    // the members-only room refuses her.
    let mut alice = Client::login(&s, "alice", Some("a")).await;
    let r = roster(&mut alice, "r1").await;
    assert!(r.contains("type='result'") && !r.contains("<item"), "{r}");
    alice.send("<presence/>").await;
    assert!(messages_before_ping(&mut alice, "p1").await.is_empty());
    let (res, fin) = archive(&mut alice, "m1").await;
    assert!(res.is_empty() && fin.contains("<fin"), "{res:?} {fin}");
    let last = common::muc::join(&mut alice, ROOM, "A", "")
        .await
        .pop()
        .unwrap();
    assert!(last.contains("<registration-required"), "{last}");
    // Bob's own data is his: his archive still has the conversation.
    let mut bob = Client::login(&s, "bob", Some("b")).await;
    let (res, _) = archive(&mut bob, "m2").await;
    assert_eq!(res.len(), 5, "{res:?}");
    // Deleting a user nothing is stored for.
    api.refused("DELETE", "/api/users/nobody", "", 404, "item-not-found");
    api.refused(
        "DELETE",
        "/api/users/x@elsewhere.example",
        "",
        400,
        "jid-malformed",
    );
}

/// Sessions waiting for XEP-0198 resumption end too: one that dropped before the deletion,
/// and one that the deletion closed (it detaches as a lost connection would). What they
/// held is deleted with the rest; nothing of the user is left online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_ends_its_resumable_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_token_file(dir.path(), "", 2);
    let api = Api(&s);
    let mut dropped = Client::online(&s, "alice", "one", 0).await;
    resumable(&mut dropped).await;
    let mut live = Client::online(&s, "alice", "two", 0).await;
    resumable(&mut live).await;
    // The first connection is lost (no <close/>): its session waits for <resume/>.
    drop(dropped);
    // (The gauge is sampled once a second.)
    let until = std::time::Instant::now() + WAIT;
    loop {
        let stats = api.ok("GET", "/api/stats", "");
        if stats["sm_detached_sessions"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the dropped session did not detach: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut bob = Client::online(&s, "bob", "b", 0).await;
    let v = api.ok("DELETE", "/api/users/alice", "");
    assert_eq!(v["deleted"]["sessions"], 2, "{v}");
    live.expect_stream_error("policy-violation").await;
    // Nothing of alice is left: no session (live or detached), nothing stored.
    api.refused("GET", "/api/users/alice", "", 404, "item-not-found");
    let until = std::time::Instant::now() + WAIT;
    while api.ok("GET", "/api/stats", "")["sm_detached_sessions"] != 0 {
        assert!(
            std::time::Instant::now() < until,
            "a detached session is left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (st, b) = api.call("GET", "/api/users/alice/sessions", "");
    assert_eq!(st, 200);
    assert!(json_sessions_empty(&b), "{b}");
    // A message to her now goes to offline storage as to any stranger, not to a session.
    bob.send("<message to='alice@localhost' type='chat' id='z'><body>late</body></message>")
        .await;
    assert!(messages_before_ping(&mut bob, "p").await.is_empty());
}

fn json_sessions_empty(b: &str) -> bool {
    common::admin::json(b)["sessions"]
        .as_array()
        .is_some_and(|v| v.is_empty())
}

async fn resumable(c: &mut Client) {
    c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let e = c.recv_until("urn:xmpp:sm:3").await;
    assert!(e.contains("<enabled") && e.contains("resume='true'"), "{e}");
}
