//! Nothing lost: offline messages (XEP-0160) with delay stamps (XEP-0203), kept over a
//! restart and over `kill -9` once acknowledged (XEP-0198 `<a/>`), quotas, messages for users
//! who never logged in, and the limits that keep strangers from filling the store.

mod common;
use common::*;

async fn seen(s: &Server, user: &str) {
    // A first login records the user; then it goes away.
    let c = Client::login(s, user, Some("first")).await;
    drop(c);
}

async fn enable_sm(c: &mut Client) {
    c.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    assert!(c.recv_until("urn:xmpp:sm:3").await.contains("<enabled"));
}

/// Sends `<r/>` and waits for `<a h='n'/>`: everything sent before is settled.
async fn acked(c: &mut Client, n: u32) {
    c.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let a = c.recv_until("<a xmlns='urn:xmpp:sm:3'").await;
    assert!(a.contains(&format!("h='{n}'")), "{a}");
}

async fn bodies_after_presence(c: &mut Client, n: usize) -> Vec<String> {
    c.send("<presence/>").await;
    let mut got = Vec::new();
    while got.len() < n {
        let m = c.recv().await;
        if m.starts_with("<message") {
            got.push(m);
        }
    }
    got
}

#[tokio::test]
async fn offline_message_arrives_with_delay_and_its_receipt_request() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    seen(&s, &b).await;
    let mut alice = Client::online(&s, &a, "a", 0).await;
    enable_sm(&mut alice).await;
    // XEP-0184 example 1, to a user who is offline.
    alice.send(&format!("<message id='richard2-4.1.247' to='{b}@localhost' type='chat'><body>My lord, dispatch; read o'er these articles.</body><request xmlns='urn:xmpp:receipts'/></message>")).await;
    acked(&mut alice, 1).await; // no error came back before the ack
    let mut bob = Client::login(&s, &b, Some("later")).await;
    let got = bodies_after_presence(&mut bob, 1).await;
    let m = &got[0];
    assert!(
        m.contains("id='richard2-4.1.247'") && m.contains("<request xmlns='urn:xmpp:receipts'/>"),
        "{m}"
    );
    assert!(
        m.contains("<delay xmlns='urn:xmpp:delay' from='localhost' stamp='")
            && m.contains(&format!("from='{a}@localhost/a'")),
        "{m}"
    );
    bob.send(&format!("<message to='{a}@localhost/a' id='rcpt'><received xmlns='urn:xmpp:receipts' id='richard2-4.1.247'/></message>")).await;
    assert!(
        alice
            .recv_until("id='rcpt'")
            .await
            .contains("<received xmlns='urn:xmpp:receipts' id='richard2-4.1.247'/>")
    );
}

#[tokio::test]
async fn strangers_quota_and_types_that_are_not_stored() {
    let s = Server::start_with(
        "[storage]\noffline_quota = 2\naccept_unknown_users = false\n",
        2,
    );
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "a", 0).await;
    enable_sm(&mut alice).await;
    // Never logged in: service-unavailable, not stored.
    alice
        .send("<message to='stranger@localhost' type='chat' id='s1'><body>hello?</body></message>")
        .await;
    assert!(
        alice
            .recv_until("id='s1'")
            .await
            .contains("<service-unavailable")
    );
    seen(&s, &b).await;
    for i in 1..=3 {
        alice
            .send(&format!(
                "<message to='{b}@localhost' type='chat' id='q{i}'><body>q{i}</body></message>"
            ))
            .await;
    }
    // The third is over the quota and comes back.
    let e = alice.recv_until("id='q3'").await;
    assert!(
        e.contains("type='error'") && e.contains("<service-unavailable"),
        "{e}"
    );
    // Headline, groupchat and error messages are not stored (RFC 6121 §8.5.2).
    alice
        .send(&format!(
            "<message to='{b}@localhost' type='headline' id='h'><body>news</body></message>"
        ))
        .await;
    alice
        .send(&format!(
            "<message to='{b}@localhost' type='error' id='e'><body>err</body></message>"
        ))
        .await;
    acked(&mut alice, 6).await;
    let mut bob = Client::login(&s, &b, Some("r")).await;
    // A negative priority gets nothing; the first non-negative one gets everything.
    bob.send("<presence><priority>-1</priority></presence>")
        .await;
    bob.recv_until("<presence").await;
    let got = bodies_after_presence(&mut bob, 2).await;
    assert!(
        got[0].contains("id='q1'") && got[1].contains("id='q2'"),
        "{got:?}"
    );
    bob.send(&format!(
        "<message to='{b}@localhost/r' type='chat' id='mark'><body>.</body></message>"
    ))
    .await;
    let next = bob.recv_until("<message").await;
    assert!(
        next.contains("id='mark'"),
        "nothing else was stored: {next}"
    );
}

/// Issue 10, finding 5: with JWT auth the application owns the user list; a user who
/// signed up and is messaged before their first login gets the message (the default).
#[tokio::test]
async fn users_who_never_logged_in_get_their_messages() {
    let s = Server::start();
    let mut alice = Client::online(&s, "alice", "a", 0).await;
    enable_sm(&mut alice).await;
    alice
        .send("<message to='newcomer@localhost' type='chat' id='n1'><body>welcome</body></message>")
        .await;
    acked(&mut alice, 1).await;
    let mut n = Client::login(&s, "newcomer", Some("r")).await;
    assert!(bodies_after_presence(&mut n, 1).await[0].contains("<body>welcome</body>"));
}

#[tokio::test]
async fn offline_messages_survive_a_restart() {
    let mut s = Server::start();
    let (a, b) = s.users_apart();
    seen(&s, &b).await;
    let mut alice = Client::online(&s, &a, "a", 0).await;
    enable_sm(&mut alice).await;
    alice
        .send(&format!(
            "<message to='{b}@localhost' type='chat' id='r1'><body>kept</body></message>"
        ))
        .await;
    acked(&mut alice, 1).await;
    drop(alice);
    s.restart(false);
    let mut bob = Client::login(&s, &b, Some("r")).await;
    assert!(bodies_after_presence(&mut bob, 1).await[0].contains("<body>kept</body>"));
}

/// The crash test: acknowledged messages survive SIGKILL, exactly, in order.
#[tokio::test]
async fn acknowledged_messages_survive_kill_9() {
    let mut s = Server::start();
    let (a, b) = s.users_apart();
    seen(&s, &b).await;
    let mut alice = Client::online(&s, &a, "a", 0).await;
    enable_sm(&mut alice).await;
    let n = 50;
    for i in 0..n {
        alice
            .send(&format!(
                "<message to='{b}@localhost' type='chat' id='k{i}'><body>n{i}</body></message>"
            ))
            .await;
    }
    acked(&mut alice, n).await;
    s.restart(true); // kill -9
    let mut bob = Client::login(&s, &b, Some("r")).await;
    let got = bodies_after_presence(&mut bob, n as usize).await;
    for (i, m) in got.iter().enumerate() {
        assert!(
            m.contains(&format!("id='k{i}'")) && m.contains("<delay xmlns='urn:xmpp:delay'"),
            "#{i}: {m}"
        );
    }
    bob.send(&format!(
        "<message to='{b}@localhost/r' type='chat' id='mark'><body>.</body></message>"
    ))
    .await;
    assert!(
        bob.recv_until("<message").await.contains("id='mark'"),
        "no duplicates after the {n}"
    );
}

/// One sender may leave messages for at most `storage.max_unknown_recipients_per_hour`
/// never-seen users (lowered here to keep the test short); past it a clear
/// `policy-violation`, while known users, already-counted strangers and other senders are
/// served as before.
#[tokio::test]
async fn a_sender_reaching_too_many_strangers_gets_policy_violation() {
    let s = Server::start_with("[storage]\nmax_unknown_recipients_per_hour = 3\n", 1);
    let mut spam = Client::online(&s, "spammer", "a", 0).await;
    for i in 0..3 {
        spam.send(&format!(
            "<message to='new{i}@localhost' type='chat' id='n{i}'><body>hi</body></message>"
        ))
        .await;
    }
    spam.send("<message to='new3@localhost' type='chat' id='n3'><body>hi</body></message>")
        .await;
    let e = spam.recv_until("id='n3'").await;
    assert!(
        e.contains("type='error'")
            && e.contains("<policy-violation")
            && e.contains("never logged in"),
        "{e}"
    );
    // A stranger already counted is still fine; so is a known user.
    seen(&s, "known").await;
    enable_sm(&mut spam).await;
    spam.send("<message to='new0@localhost' type='chat' id='again'><body>2</body></message>")
        .await;
    spam.send("<message to='known@localhost' type='chat' id='k'><body>3</body></message>")
        .await;
    acked(&mut spam, 2).await;
    // Another sender is not affected.
    let mut other = Client::online(&s, "friend", "a", 0).await;
    enable_sm(&mut other).await;
    other
        .send("<message to='new3@localhost' type='chat' id='f'><body>welcome</body></message>")
        .await;
    acked(&mut other, 1).await;
    let mut n0 = Client::login(&s, "new0", Some("r")).await;
    let got = bodies_after_presence(&mut n0, 2).await;
    assert!(
        got[0].contains("id='n0'") && got[1].contains("id='again'"),
        "{got:?}"
    );
    let mut n3 = Client::login(&s, "new3", Some("r")).await;
    assert!(bodies_after_presence(&mut n3, 1).await[0].contains("id='f'"));
}

/// Users are never all loaded (issue 14): a shard remembers at most
/// `storage.users_cache_max` users as recorded and asks storage about the others when it
/// matters. After a restart nothing is remembered, and strict mode still stores offline
/// messages for every recorded user (looked up one at a time) and refuses a never-seen
/// one; the cache never holds more than its bound.
#[tokio::test]
async fn users_are_looked_up_when_needed_never_all_loaded() {
    let mut s = Server::start_with(
        "[storage]\naccept_unknown_users = false\nusers_cache_max = 2\n",
        1,
    );
    for i in 0..5 {
        seen(&s, &format!("rec{i}")).await;
    }
    seen(&s, "alice").await;
    s.restart(false);
    // Sampled once a second: two samples later, still nothing remembered.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(s.metric("aoba_users_cached"), 0.0, "users loaded at start");
    let mut alice = Client::login(&s, "alice", Some("a")).await;
    enable_sm(&mut alice).await;
    for i in 0..5 {
        alice
            .send(&format!(
                "<message to='rec{i}@localhost' type='chat' id='r{i}'><body>{i}</body></message>"
            ))
            .await;
    }
    alice
        .send("<message to='never@localhost' type='chat' id='nv'><body>?</body></message>")
        .await;
    let e = alice.recv_until("id='nv'").await;
    assert!(
        e.contains("type='error'") && e.contains("<service-unavailable"),
        "{e}"
    );
    acked(&mut alice, 6).await;
    for i in [0, 4] {
        let mut r = Client::login(&s, &format!("rec{i}"), Some("r")).await;
        let got = bodies_after_presence(&mut r, 1).await;
        assert!(got[0].contains(&format!("id='r{i}'")), "{got:?}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(s.metric("aoba_users_cached") <= 2.0);
}
