//! Rosters and subscriptions (RFC 6121 §2, §3, §4) between real clients on two shards.

mod common;
use common::*;

async fn roster_get(c: &mut Client, id: &str) -> String {
    c.send(&format!(
        "<iq id='{id}' type='get'><query xmlns='jabber:iq:roster'/></iq>"
    ))
    .await;
    c.recv_until(&format!("id='{id}'")).await
}

/// Online, with the roster requested (so it gets pushes) and initial presence sent.
async fn member(s: &Server, user: &str, res: &str) -> Client {
    let mut c = Client::login(s, user, Some(res)).await;
    roster_get(&mut c, "r0").await;
    c.send("<presence/>").await;
    c.recv_until("<presence").await;
    c
}

#[tokio::test]
async fn get_set_push_remove_and_versions() {
    let s = Server::start();
    let mut a1 = Client::login(&s, "juliet", Some("balcony")).await;
    let mut a2 = Client::login(&s, "juliet", Some("chamber")).await;
    // RFC 6121 §2.1.3 example: an empty roster, with its version.
    a1.send("<iq from='juliet@localhost/balcony' id='bv1bs71f' type='get'><query xmlns='jabber:iq:roster'/></iq>").await;
    let r = a1.recv_until("id='bv1bs71f'").await;
    assert!(
        r.contains("type='result'") && r.contains("<query xmlns='jabber:iq:roster' ver='0'"),
        "{r}"
    );
    roster_get(&mut a2, "g2").await;
    // §2.3.2 example: add an item; both interested resources get the push (§2.3.2, §2.1.6).
    a1.send("<iq from='juliet@localhost/balcony' id='rs1' type='set'><query xmlns='jabber:iq:roster'><item jid='nurse@localhost' name='Nurse'><group>Servants</group></item></query></iq>").await;
    for c in [&mut a1, &mut a2] {
        let p = c.recv_until("type='set'").await;
        assert!(p.contains("ver='1'") && p.contains("<item jid='nurse@localhost' name='Nurse' subscription='none'><group>Servants</group></item>"), "{p}");
    }
    assert!(a1.recv_until("id='rs1'").await.contains("type='result'"));
    // §2.6.3: asking with the current version gets an empty result.
    a2.send("<iq id='v1' type='get'><query xmlns='jabber:iq:roster' ver='1'/></iq>")
        .await;
    let r = a2.recv_until("id='v1'").await;
    assert!(r.contains("type='result'") && !r.contains("<query"), "{r}");
    let r = roster_get(&mut a2, "g3").await;
    assert!(r.contains("jid='nurse@localhost'"), "{r}");
    // Bad sets (§2.3.3).
    for (xml, cond) in [
        (
            "<item jid='a@localhost'/><item jid='b@localhost'/>",
            "bad-request",
        ),
        ("<item jid='a@localhost'><group/></item>", "not-acceptable"),
        ("<item jid='a@b@c'/>", "jid-malformed"),
    ] {
        a1.send(&format!(
            "<iq id='bad' type='set'><query xmlns='jabber:iq:roster'>{xml}</query></iq>"
        ))
        .await;
        let e = a1.recv_until("id='bad'").await;
        assert!(
            e.contains("type='error'") && e.contains(&format!("<{cond}")),
            "{xml}: {e}"
        );
    }
    // §2.1.2.5: a subscription other than "remove" is ignored, not refused (slixmpp sends
    // subscription='none' with every set): the item is stored, its state unchanged.
    a1.send("<iq id='sb' type='set'><query xmlns='jabber:iq:roster'><item jid='nurse@localhost' name='Nurse' subscription='both'><group>Servants</group></item></query></iq>").await;
    let p = a2.recv_until("type='set'").await;
    assert!(
        p.contains("<item jid='nurse@localhost' name='Nurse' subscription='none'>"),
        "{p}"
    );
    assert!(a1.recv_until("id='sb'").await.contains("type='result'"));
    // §2.5 remove: pushed as subscription='remove'.
    a1.send("<iq id='rm' type='set'><query xmlns='jabber:iq:roster'><item jid='nurse@localhost' subscription='remove'/></query></iq>").await;
    assert!(
        a2.recv_until("type='set'")
            .await
            .contains("subscription='remove'")
    );
    assert!(a1.recv_until("id='rm'").await.contains("type='result'"));
    a1.send("<iq id='rm2' type='set'><query xmlns='jabber:iq:roster'><item jid='nurse@localhost' subscription='remove'/></query></iq>").await;
    assert!(a1.recv_until("id='rm2'").await.contains("<item-not-found"));
}

#[tokio::test]
async fn subscription_handshake_then_presence_flows() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = member(&s, &a, "a").await;
    let mut bob = member(&s, &b, "b").await;
    // §3.1.1: alice asks.
    alice
        .send(&format!(
            "<presence id='xk3h1v69' to='{b}@localhost' type='subscribe'/>"
        ))
        .await;
    let p = alice.recv_until("jabber:iq:roster").await;
    assert!(
        p.contains("subscription='none'") && p.contains("ask='subscribe'"),
        "{p}"
    );
    let req = bob.recv_until("type='subscribe'").await;
    assert!(
        req.contains(&format!("from='{a}@localhost'")) && !req.contains(&format!("{a}@localhost/")),
        "bare from: {req}"
    );
    // §3.1.5: bob approves.
    bob.send(&format!(
        "<presence id='h4v1c4kj' to='{a}@localhost' type='subscribed'/>"
    ))
    .await;
    assert!(
        bob.recv_until("jabber:iq:roster")
            .await
            .contains("subscription='from'")
    );
    // Alice gets the roster push, then bob's approval (§3.1.6), and bob's current presence
    // (§3.1.5). The push and the approval wait for the commit of alice's roster change;
    // bob's presence was sent by bob's shard and may come before them.
    let (mut push, mut approval, mut presence) = (None, None, None);
    while push.is_none() || approval.is_none() || presence.is_none() {
        let m = alice.recv().await;
        if m.contains("jabber:iq:roster") {
            push = Some(m);
        } else if m.contains("type='subscribed'") {
            assert!(
                push.is_some(),
                "the approval came before the roster push: {m}"
            );
            assert!(m.contains(&format!("from='{b}@localhost'")), "{m}");
            approval = Some(m);
        } else if m.contains(&format!("from='{b}@localhost/b'")) {
            assert!(m.starts_with("<presence") && !m.contains("type="), "{m}");
            presence = Some(m);
        }
    }
    let push = push.unwrap();
    assert!(
        push.contains("subscription='to'") && !push.contains("ask="),
        "{push}"
    );
    // Bob's changes reach alice (a contact with 'to'); alice's do not reach bob.
    bob.send("<presence><show>away</show></presence>").await;
    assert!(
        alice
            .recv_until("<show>away</show>")
            .await
            .contains(&format!("from='{b}@localhost/b'"))
    );
    alice.send("<presence><show>dnd</show></presence>").await;
    alice.recv_until("<show>dnd</show>").await; // her own copy
    bob.send(&format!(
        "<message to='{b}@localhost/b' id='mark'><body>.</body></message>"
    ))
    .await;
    assert!(
        bob.recv_until("<message").await.contains("id='mark'"),
        "bob must not see alice's presence"
    );
    // Bob goes away: alice gets unavailable.
    drop(bob);
    let p = alice.recv_until("type='unavailable'").await;
    assert!(p.contains(&format!("from='{b}@localhost/b'")), "{p}");
}

#[tokio::test]
async fn requests_wait_for_an_offline_user_and_probes_answer_at_login() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    drop(Client::login(&s, &b, Some("once")).await); // bob exists, then leaves
    let mut alice = member(&s, &a, "a").await;
    alice
        .send(&format!("<presence to='{b}@localhost' type='subscribe'/>"))
        .await;
    alice.recv_until("ask='subscribe'").await;
    // Bob logs in later: the stored request is delivered (§3.1.3).
    let mut bob = Client::login(&s, &b, Some("b")).await;
    roster_get(&mut bob, "r0").await;
    bob.send("<presence/>").await;
    assert!(
        bob.recv_until("type='subscribe'")
            .await
            .contains(&format!("from='{a}@localhost'"))
    );
    bob.send(&format!("<presence to='{a}@localhost' type='subscribed'/>"))
        .await;
    bob.send(&format!("<presence to='{a}@localhost' type='subscribe'/>"))
        .await;
    alice.recv_until("type='subscribe'").await;
    alice
        .send(&format!("<presence to='{b}@localhost' type='subscribed'/>"))
        .await;
    assert!(
        bob.recv_until("subscription='both'")
            .await
            .contains("jabber:iq:roster")
    );
    // Now both ways: alice logs out and in again; probes bring bob's presence (§4.3).
    drop(alice);
    bob.recv_until("type='unavailable'").await;
    let mut alice = Client::login(&s, &a, Some("again")).await;
    alice.send("<presence/>").await;
    assert!(
        alice
            .recv_until(&format!("from='{b}@localhost/b'"))
            .await
            .starts_with("<presence")
    );
    assert!(
        bob.recv_until(&format!("from='{a}@localhost/again'"))
            .await
            .starts_with("<presence")
    );
}

#[tokio::test]
async fn unsubscribe_and_cancel() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = member(&s, &a, "a").await;
    let mut bob = member(&s, &b, "b").await;
    alice
        .send(&format!("<presence to='{b}@localhost' type='subscribe'/>"))
        .await;
    bob.recv_until("type='subscribe'").await;
    bob.send(&format!("<presence to='{a}@localhost' type='subscribed'/>"))
        .await;
    bob.recv_until("subscription='from'").await;
    // Bob's presence and alice's roster push, in either order (the push waits for a commit).
    let bob_res = format!("from='{b}@localhost/b'");
    let (mut pres, mut push) = (false, false);
    while !(pres && push) {
        let m = alice.recv().await;
        pres |= m.contains(&bob_res);
        push |= m.contains("jabber:iq:roster") && m.contains("subscription='to'");
    }
    // §3.3: alice unsubscribes from bob's presence.
    alice
        .send(&format!(
            "<presence to='{b}@localhost' type='unsubscribe'/>"
        ))
        .await;
    // Alice's roster push (after its commit) and bob's unavailable presence (§3.3.3),
    // in either order.
    let (mut push, mut unavailable) = (false, false);
    while !(push && unavailable) {
        let m = alice.recv().await;
        if m.contains("jabber:iq:roster") {
            assert!(m.contains("subscription='none'"), "{m}");
            push = true;
        } else if m.contains("type='unavailable'") {
            assert!(m.contains(&format!("from='{b}@localhost/b'")), "{m}");
            unavailable = true;
        }
    }
    // Bob gets the request and a roster push, in either order.
    let (mut got_req, mut got_push) = (false, false);
    while !(got_req && got_push) {
        let m = bob.recv().await;
        if m.contains("type='unsubscribe'") {
            assert!(m.contains(&format!("from='{a}@localhost'")), "{m}");
            got_req = true;
        } else if m.contains("jabber:iq:roster") {
            assert!(m.contains("subscription='none'"), "{m}");
            got_push = true;
        }
    }
}

#[tokio::test]
async fn rosters_survive_a_restart() {
    let mut s = Server::start();
    let mut c = Client::login(&s, "juliet", Some("r")).await;
    c.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    c.recv_until("<enabled").await;
    c.send("<iq id='add' type='set'><query xmlns='jabber:iq:roster'><item jid='romeo@localhost' name='Romeo'/></query></iq>").await;
    c.recv_until("id='add'").await;
    c.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    c.recv_until("<a xmlns").await; // durable
    drop(c);
    s.restart(true); // kill -9
    let mut c = Client::login(&s, "juliet", Some("r")).await;
    let r = roster_get(&mut c, "after").await;
    assert!(
        r.contains("<item jid='romeo@localhost' name='Romeo' subscription='none'/>")
            && r.contains("ver='1'"),
        "{r}"
    );
}

/// Issue 10: requests waiting for a roster that is still loading are bounded
/// (`limits.max_pending_iqs`, lowered to 5 here; the load is made slow by a debug-build
/// hook): past it `resource-constraint` at once, and the ones kept are all answered.
#[tokio::test]
async fn requests_waiting_for_a_roster_are_bounded() {
    let s = Server::start_with_env(
        "[limits]\nmax_pending_iqs = 5\n",
        1,
        &[("AOBA_FAULT_SLOW_READ_MS", "1500")],
    );
    let mut c = Client::login(&s, "juliet", Some("r")).await;
    for i in 0..8 {
        c.send(&format!(
            "<iq id='g{i}' type='get'><query xmlns='jabber:iq:roster'/></iq>"
        ))
        .await;
    }
    let mut results = 0;
    let mut refused = 0;
    while results + refused < 8 {
        let m = c.recv_until("<iq").await;
        if m.contains("type='result'") {
            results += 1;
        } else {
            assert!(m.contains("<resource-constraint"), "{m}");
            refused += 1;
        }
    }
    assert_eq!((results, refused), (5, 3));
}

/// RFC 6121 A.2.1 `| "None + Pending Out" | yes | no state change |`, A.3.1
/// `| "None + Pending In" | no | no state change |` and A.3.2
/// `| "None + Pending In" | yes | "None" |`: a request sent twice is routed twice but
/// changes nothing the second time (no roster push) and reaches the contact once; its
/// withdrawal reaches the contact, and the contact's server forgets the request.
#[tokio::test]
async fn a_repeated_request_is_delivered_once_and_its_withdrawal_is_delivered() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = member(&s, &a, "a").await;
    let mut bob = member(&s, &b, "b").await;
    let subscribe = format!("<presence to='{b}@localhost' type='subscribe'/>");
    alice.send(&subscribe).await;
    alice.send(&subscribe).await;
    let p = alice.recv_until("jabber:iq:roster").await;
    assert!(
        p.contains("ask='subscribe'") && p.contains("ver='1'"),
        "{p}"
    );
    bob.recv_until("type='subscribe'").await;
    alice
        .send(&format!(
            "<presence to='{b}@localhost' type='unsubscribe'/>"
        ))
        .await;
    loop {
        let m = bob.recv().await;
        assert!(!m.contains("type='subscribe'"), "delivered twice: {m}");
        if m.contains("type='unsubscribe'") {
            assert!(m.contains(&format!("from='{a}@localhost'")), "{m}");
            break;
        }
    }
    // Alice's versions: 1 the request, 2 its withdrawal (the repeat changed nothing).
    alice.send("<iq id='n' type='set'><query xmlns='jabber:iq:roster'><item jid='nurse@localhost'/></query></iq>").await;
    let p = alice.recv_until("jid='nurse@localhost'").await;
    assert!(p.contains("ver='3'"), "{p}");
    // The withdrawn request is not delivered to bob's next available resource (§3.1.3).
    let mut bob2 = Client::login(&s, &b, Some("b2")).await;
    bob2.send("<presence/>").await;
    bob2.send(&format!(
        "<message to='{}' id='mark'><body>.</body></message>",
        bob2.jid
    ))
    .await;
    loop {
        let m = bob2.recv().await;
        assert!(!m.contains("type='subscribe'"), "withdrawn, yet: {m}");
        if m.contains("id='mark'") {
            break;
        }
    }
}

/// RFC 6121 A.2.3 `| "None" | no | no state change |` and A.2.4
/// `| "None" | no | no state change |`: approving a request nobody made, or cancelling a
/// subscription nobody has, is not routed, changes no roster and sends no presence.
#[tokio::test]
async fn approving_or_cancelling_nothing_goes_nowhere() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = member(&s, &a, "a").await;
    let mut bob = member(&s, &b, "b").await;
    bob.send(&format!("<presence to='{a}@localhost' type='subscribed'/>"))
        .await;
    bob.send(&format!(
        "<presence to='{a}@localhost' type='unsubscribed'/>"
    ))
    .await;
    bob.send(&format!(
        "<message to='{a}@localhost/a' id='mark'><body>.</body></message>"
    ))
    .await;
    loop {
        let m = alice.recv().await;
        if m.contains("id='mark'") {
            break;
        }
        assert!(!m.starts_with("<presence"), "{m}");
    }
    let r = roster_get(&mut bob, "g").await;
    assert!(
        r.contains("ver='0'") && !r.contains(&format!("jid='{a}@localhost'")),
        "{r}"
    );
}

/// RFC 6121 A.2.4 `| "None + Pending In" | yes | "None" |`: denying a request routes the
/// `unsubscribed`, but no `unavailable` follows (the contact never had the user's
/// presence; §3.2.2 sends it when a subscription ends), and the request, which was no
/// roster item, is forgotten without a roster push.
#[tokio::test]
async fn denying_a_request_sends_no_presence_and_no_push() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = member(&s, &a, "a").await;
    let mut bob = member(&s, &b, "b").await;
    bob.send(&format!("<presence to='{a}@localhost' type='subscribe'/>"))
        .await;
    bob.recv_until("ask='subscribe'").await;
    alice.recv_until("type='subscribe'").await;
    alice
        .send(&format!(
            "<presence to='{b}@localhost' type='unsubscribed'/>"
        ))
        .await;
    alice
        .send(&format!(
            "<message to='{b}@localhost/b' id='mark'><body>.</body></message>"
        ))
        .await;
    let (mut denied, mut mark, mut push) = (false, false, false);
    while !(denied && mark && push) {
        let m = bob.recv().await;
        assert!(!m.contains("type='unavailable'"), "{m}");
        denied |= m.contains("type='unsubscribed'");
        mark |= m.contains("id='mark'");
        if m.contains("jabber:iq:roster") {
            assert!(
                m.contains("subscription='none'") && !m.contains("ask="),
                "{m}"
            );
            push = true;
        }
    }
    // Alice's next push is the next change she makes.
    alice.send("<iq id='n' type='set'><query xmlns='jabber:iq:roster'><item jid='nurse@localhost'/></query></iq>").await;
    let p = alice.recv_until("jabber:iq:roster").await;
    assert!(p.contains("jid='nurse@localhost'"), "{p}");
}
