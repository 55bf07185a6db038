//! XEP-0198 stream management: acks, resumption after a dropped connection, and expiry.

mod common;
use common::*;

/// Connects and authenticates as `user`, stopping where bind or resume would come.
async fn authenticated(s: &Server, user: &str) -> Client {
    let mut c = Client::connect(s, Some(&s.token(user))).await;
    c.jid = format!("{user}@localhost");
    c.open().await;
    assert!(c.auth_plain(user, "").await.contains("<success"));
    let f = c.open().await;
    assert!(f.contains("<sm xmlns='urn:xmpp:sm:3'/>"), "{f}");
    c
}

async fn enable_resumable(c: &mut Client) -> String {
    // XEP-0198 §5, example 7.
    c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let e = c.recv_until("<enabled").await;
    assert!(e.contains("resume='true'") && e.contains("max='"), "{e}");
    between(&e, "id='", "'").to_string()
}

#[tokio::test]
async fn a_dropped_session_resumes_with_exactly_what_was_not_acknowledged() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "phone", 0).await;
    let mut bob = Client::online(&s, &b, "desk", 0).await;
    let id = enable_resumable(&mut alice).await;
    for i in 1..=3 {
        bob.send(&format!(
            "<message to='{a}@localhost/phone' type='chat' id='m{i}'><body>{i}</body></message>"
        ))
        .await;
        assert!(
            alice
                .recv_until("<message")
                .await
                .contains(&format!("id='m{i}'"))
        );
    }
    // Alice acknowledges only the first, then her connection just drops.
    alice.send("<a xmlns='urn:xmpp:sm:3' h='1'/>").await;
    alice.ping_server("sync").await; // the ack was read before the drop
    drop(alice);
    // While she is away: a message to her full JID waits for her (no error to bob).
    bob.send(&format!(
        "<message to='{a}@localhost/phone' type='chat' id='m4'><body>4</body></message>"
    ))
    .await;
    bob.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    bob.recv_until("<enabled").await;
    bob.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    bob.recv_until("<a xmlns").await;
    // XEP-0198 §5, example 11: resume on a new connection.
    let mut alice = authenticated(&s, &a).await;
    alice
        .send(&format!(
            "<resume xmlns='urn:xmpp:sm:3' h='1' previd='{id}'/>"
        ))
        .await;
    let r = alice.recv_until("<resumed").await;
    assert!(
        r.contains(&format!("previd='{id}'")) && r.contains("h='1'"),
        "her one ping was handled: {r}"
    );
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = alice.recv().await;
        if m.starts_with("<message") {
            got.push(between(&m, "id='", "'").to_string());
        }
    }
    assert_eq!(got, ["m2", "m3", "m4"]);
    alice.jid = format!("{a}@localhost/phone");
    assert!(alice.ping_server("after").await.contains("type='result'"));
    bob.send(&format!(
        "<message to='{a}@localhost/phone' type='chat' id='m5'><body>5</body></message>"
    ))
    .await;
    assert!(
        alice.recv_until("<message").await.contains("id='m5'"),
        "nothing replayed twice"
    );
}

#[tokio::test]
async fn unknown_ids_fail_and_bind_still_works() {
    let s = Server::start();
    let mut c = authenticated(&s, "alice").await;
    c.send("<resume xmlns='urn:xmpp:sm:3' h='0' previd='nope'/>")
        .await;
    assert!(c.recv_until("<failed").await.contains("<item-not-found"));
    assert!(
        c.bind(Some("r"))
            .await
            .contains("<jid>alice@localhost/r</jid>")
    );
}

#[tokio::test]
async fn after_the_window_everything_held_goes_to_offline_storage() {
    let s = Server::start_args(
        "[sm]\nresume_timeout_ms = 300\n",
        2,
        &["--jwt-secret", SECRET],
    );
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "phone", 0).await;
    let mut bob = Client::online(&s, &b, "desk", 0).await;
    enable_resumable(&mut alice).await;
    alice.send(&format!("<presence to='{b}@localhost'/>")).await; // so bob learns when she is gone
    bob.recv_until(&format!("from='{a}@localhost/phone'")).await;
    bob.send(&format!(
        "<message to='{a}@localhost/phone' type='chat' id='x1'><body>unacked</body></message>"
    ))
    .await;
    alice.recv_until("id='x1'").await;
    drop(alice);
    bob.send(&format!(
        "<message to='{a}@localhost/phone' type='chat' id='x2'><body>while away</body></message>"
    ))
    .await;
    // The window passes: she goes unavailable, and both messages are stored for her.
    assert!(
        bob.recv_until("type='unavailable'")
            .await
            .contains(&format!("from='{a}@localhost/phone'"))
    );
    let mut alice = Client::login(&s, &a, Some("laptop")).await;
    alice.send("<presence/>").await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = alice.recv().await;
        if m.starts_with("<message") {
            assert!(m.contains("<delay xmlns='urn:xmpp:delay'"), "{m}");
            got.push(between(&m, "id='", "'").to_string());
        }
    }
    got.sort();
    assert_eq!(got, ["x1", "x2"]);
}

#[tokio::test]
async fn acknowledging_more_than_was_sent_is_a_stream_error() {
    let s = Server::start();
    let mut c = Client::online(&s, "alice", "r", 0).await;
    enable_resumable(&mut c).await;
    c.send("<a xmlns='urn:xmpp:sm:3' h='5'/>").await;
    c.expect_stream_error("undefined-condition").await;
}

#[tokio::test]
async fn a_closed_stream_is_not_resumable() {
    let s = Server::start();
    let mut c = Client::online(&s, "alice", "r", 0).await;
    let id = enable_resumable(&mut c).await;
    c.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        .await;
    c.expect_end().await;
    let mut c = authenticated(&s, "alice").await;
    c.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' h='0' previd='{id}'/>"
    ))
    .await;
    assert!(c.recv_until("<failed").await.contains("<item-not-found"));
}

/// Waits (bounded) until the server's log shows `n` sessions detached.
async fn detached(s: &Server, n: usize) {
    for _ in 0..400 {
        if s.log().matches("session detached for resumption").count() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the server did not see {n} drops");
}

/// Issue 10, finding 2: a message to the bare JID reaches the live resource and two
/// resources waiting for resumption (equal priority). When the waiting sessions end (here
/// replaced by fresh binds), their copies are not routed again: the live resource had it
/// already. (Before: the live resource got it seven times.) A message only a waiting
/// session held goes to the other resource, once.
#[tokio::test]
async fn a_copy_someone_got_is_not_routed_again_when_a_detached_session_ends() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut desk = Client::online(&s, &a, "desk", 0).await;
    for res in ["phone1", "phone2", "phone3"] {
        let mut p = Client::online(&s, &a, res, 0).await;
        enable_resumable(&mut p).await;
        drop(p); // no </close>: waits for <resume/>
    }
    detached(&s, 3).await;
    let mut bob = Client::online(&s, &b, "desk", 0).await;
    bob.send(&format!(
        "<message to='{a}@localhost' type='chat' id='bare1'><body>to all</body></message>"
    ))
    .await;
    bob.send(&format!(
        "<message to='{a}@localhost/phone3' type='chat' id='only3'><body>to one</body></message>"
    ))
    .await;
    assert!(desk.recv_until("<message").await.contains("id='bare1'"));
    // Both are with their recipients (bob's ack says so) before the waiting sessions end.
    bob.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    bob.recv_until("<enabled").await;
    bob.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    bob.recv_until("<a xmlns").await;
    // Fresh logins take the three resources over: the detached sessions end.
    let mut fresh = Vec::new();
    for res in ["phone1", "phone2", "phone3"] {
        fresh.push(Client::login(&s, &a, Some(res)).await);
    }
    bob.send(&format!(
        "<message to='{a}@localhost/desk' type='chat' id='marker'><body>end</body></message>"
    ))
    .await;
    let mut got = Vec::new();
    loop {
        let m = desk.recv_until("<message").await;
        let id = between(&m, "id='", "'").to_string();
        got.push(id.clone());
        if id == "marker" {
            break;
        }
    }
    // The message phone3 alone held went to the user's other resource, once: phone3's new
    // session has not sent initial presence (nor, maybe, enabled stream management).
    assert_eq!(got, ["only3", "marker"], "desk got {got:?}");
    drop(fresh);
}

/// The server asks for acks as soon as a stanza is unacknowledged (one request at a time),
/// so a client that drops and logs in afresh can get again only what was in flight.
#[tokio::test]
async fn the_server_asks_for_an_ack_right_after_a_stanza() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "phone", 0).await;
    enable_resumable(&mut alice).await;
    let mut bob = Client::online(&s, &b, "desk", 0).await;
    for i in 0..3 {
        bob.send(&format!(
            "<message to='{a}@localhost' type='chat' id='q{i}'><body>{i}</body></message>"
        ))
        .await;
        assert!(
            alice
                .recv_until("<message")
                .await
                .contains(&format!("id='q{i}'"))
        );
        let r = alice.recv().await;
        assert!(r.starts_with("<r xmlns='urn:xmpp:sm:3'"), "{r}");
        alice
            .send(&format!("<a xmlns='urn:xmpp:sm:3' h='{}'/>", i + 1))
            .await;
    }
}

/// Issue 10, finding 6: re-routing skipped any frame whose bytes mentioned the carbons
/// namespace (to skip carbon copies), so a message marked `<private/>` (XEP-0280 §6) was
/// lost when the session holding it ended unacknowledged. Carbons are flagged now.
#[tokio::test]
async fn a_private_message_held_by_an_ended_session_is_not_lost() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut phone = Client::online(&s, &a, "phone", 0).await;
    enable_resumable(&mut phone).await;
    let mut bob = Client::online(&s, &b, "desk", 0).await;
    bob.send(&format!("<message to='{a}@localhost' type='chat' id='p1'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/></message>")).await;
    assert!(phone.recv_until("<message").await.contains("id='p1'"));
    drop(phone); // never acknowledged
    detached(&s, 1).await;
    // A fresh login of the same resource ends the waiting session: p1 goes to storage.
    let mut fresh = Client::login(&s, &a, Some("phone")).await;
    fresh.send("<presence/>").await;
    let m = fresh.recv_until("<message").await;
    assert!(
        m.contains("id='p1'") && m.contains("<body>secret</body>"),
        "{m}"
    );
}

/// Issue 10, finding 6: `<r/>` used to start a barrier through every shard and the storage
/// thread per request, outside the rate limit. Now each `<r/>` costs a token like any frame,
/// and a connection has one barrier in flight: a flood of them is answered, each with its
/// own `<a/>` carrying the right count, and the stream stays up.
#[tokio::test]
async fn a_flood_of_ack_requests_is_answered_one_by_one() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "phone", 0).await;
    alice.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    alice.recv_until("<enabled").await;
    alice
        .send(&format!(
            "<message to='{b}@localhost' type='chat' id='m'><body>x</body></message>"
        ))
        .await;
    for _ in 0..500 {
        alice.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    }
    let mut acks = 0;
    while acks < 500 {
        let m = alice
            .recv_until_within("<a xmlns", std::time::Duration::from_secs(60))
            .await;
        assert!(m.contains("h='1'"), "{m}");
        acks += 1;
    }
    let pong = alice.ping_server("alive").await;
    assert!(pong.contains("type='result'"), "{pong}");
}

/// `<resumed h/>` tells the client its first h stanzas are done, so it will not send them
/// again: it leaves only once what they caused is committed. Commits are slowed to 1 s
/// (a debug-build hook); the client sends five messages to an offline user, drops, resumes
/// and the server is killed with SIGKILL the moment `<resumed/>` arrives: after the
/// restart all five are in the recipient's offline storage. (Before, `<resumed h='6'/>`
/// came at once and the kill lost them.) Rounds alternate between a session the server
/// saw drop and one taken over from a connection it still thought live.
#[tokio::test]
async fn resumed_comes_only_after_what_it_counts_is_stored() {
    for round in 0..3 {
        let mut s = Server::start_with_env("", 2, &[("AOBA_FAULT_SLOW_COMMIT_MS", "1000")]);
        let (a, b) = s.users_apart();
        let mut alice = Client::online(&s, &a, "phone", 0).await;
        let id = enable_resumable(&mut alice).await;
        for i in 0..5 {
            alice
                .send(&format!(
                    "<message to='{b}@localhost' type='chat' id='r{round}m{i}'><body>{i}</body></message>"
                ))
                .await;
        }
        alice.ping_server("sync").await; // all five were read
        drop(alice);
        if round != 1 {
            detached(&s, 1).await;
        }
        let mut alice = authenticated(&s, &a).await;
        alice
            .send(&format!(
                "<resume xmlns='urn:xmpp:sm:3' h='0' previd='{id}'/>"
            ))
            .await;
        let r = alice.recv_until("<resumed").await;
        assert!(r.contains("h='6'"), "five messages and a ping: {r}");
        s.restart(true); // SIGKILL at once
        let mut bob = Client::online(&s, &b, "desk", 0).await;
        let mut got = Vec::new();
        while got.len() < 5 {
            let m = bob.recv().await;
            if m.starts_with("<message") {
                got.push(between(&m, "id='", "'").to_string());
            }
        }
        let want: Vec<String> = (0..5).map(|i| format!("r{round}m{i}")).collect();
        assert_eq!(got, want, "round {round}");
    }
}
