//! XEP-0313 message archive (MAM v2) with XEP-0059 paging, for users and rooms.

mod common;
use common::*;

/// Runs a query; returns the result messages and the iq result (with <fin/>).
async fn query(c: &mut Client, to: Option<&str>, id: &str, inner: &str) -> (Vec<String>, String) {
    let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
    c.send(&format!("<iq type='set' id='{id}'{to}><query xmlns='urn:xmpp:mam:2' queryid='q-{id}'>{inner}</query></iq>")).await;
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

fn bodies(results: &[String]) -> Vec<String> {
    results
        .iter()
        .map(|m| between(m, "<body>", "</body>").to_string())
        .collect()
}

fn rsm(max: usize, extra: &str) -> String {
    format!("<set xmlns='http://jabber.org/protocol/rsm'><max>{max}</max>{extra}</set>")
}

#[tokio::test]
async fn one_to_one_archive_with_stanza_ids_filters_and_pages() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "a", 0).await;
    let mut bob = Client::online(&s, &b, "b", 0).await;
    for i in 1..=3 {
        alice
            .send(&format!(
                "<message to='{b}@localhost' type='chat' id='a{i}'><body>a{i}</body></message>"
            ))
            .await;
        let m = bob.recv_until(&format!("id='a{i}'")).await;
        // XEP-0359: the delivered copy is named by the recipient's archive.
        assert!(
            m.contains("<stanza-id xmlns='urn:xmpp:sid:0' id='")
                && m.contains(&format!("by='{b}@localhost'")),
            "{m}"
        );
        bob.send(&format!(
            "<message to='{a}@localhost/a' type='chat' id='b{i}'><body>b{i}</body></message>"
        ))
        .await;
        alice.recv_until(&format!("id='b{i}'")).await;
    }
    // A chat state without a body is not archived.
    alice.send(&format!("<message to='{b}@localhost' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")).await;
    // XEP-0313 §4.1 example 2: everything, in order, each forwarded with its delay.
    let (res, fin) = query(&mut alice, None, "juliet1", "").await;
    assert_eq!(bodies(&res), ["a1", "b1", "a2", "b2", "a3", "b3"]);
    assert!(
        res[0].contains(
            "<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='"
        ),
        "{}",
        res[0]
    );
    assert!(
        fin.contains("type='result'")
            && fin.contains("<fin xmlns='urn:xmpp:mam:2' complete='true'>"),
        "{fin}"
    );
    // Paging: max 2, then after the last id, then the newest page via <before/>.
    let (p1, fin1) = query(&mut alice, None, "p1", &rsm(2, "")).await;
    assert_eq!(bodies(&p1), ["a1", "b1"]);
    assert!(fin1.contains("complete='false'"), "{fin1}");
    let last = between(&fin1, "<last>", "</last>").to_string();
    let (p2, _) = query(
        &mut alice,
        None,
        "p2",
        &rsm(2, &format!("<after>{last}</after>")),
    )
    .await;
    assert_eq!(bodies(&p2), ["a2", "b2"]);
    let (newest, _) = query(&mut alice, None, "p3", &rsm(2, "<before/>")).await;
    assert_eq!(bodies(&newest), ["a3", "b3"]);
    // Filter by 'with' through the data form (§4.1.1); bob's archive sees the same messages.
    let form = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>{b}@localhost</value></field></x>"
    );
    let (w, _) = query(&mut alice, None, "w", &form).await;
    assert_eq!(w.len(), 6);
    let (bobs, _) = query(&mut bob, None, "bq", "").await;
    assert_eq!(bodies(&bobs), ["a1", "b1", "a2", "b2", "a3", "b3"]);
    // A time range in the future is empty; an unknown id is item-not-found; others' archives are not ours.
    let future = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='start'><value>2999-01-01T00:00:00Z</value></field></x>";
    assert!(query(&mut alice, None, "f", future).await.0.is_empty());
    let (_, e) = query(&mut alice, None, "u", &rsm(2, "<after>nope</after>")).await;
    assert!(e.contains("<item-not-found"), "{e}");
    let (_, e) = query(&mut alice, Some(&format!("{b}@localhost")), "o", "").await;
    assert!(e.contains("<forbidden"), "{e}");
}

#[tokio::test]
async fn the_archive_survives_kill_9() {
    let mut s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "a", 0).await;
    alice.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    alice.recv_until("<enabled").await;
    drop(Client::login(&s, &b, Some("once")).await);
    for i in 0..5 {
        alice
            .send(&format!(
                "<message to='{b}@localhost' type='chat' id='k{i}'><body>k{i}</body></message>"
            ))
            .await;
    }
    alice.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    assert!(alice.recv_until("<a xmlns").await.contains("h='5'"));
    s.restart(true);
    let mut alice = Client::online(&s, &a, "a", 0).await;
    let (res, _) = query(&mut alice, None, "after", "").await;
    assert_eq!(bodies(&res), ["k0", "k1", "k2", "k3", "k4"]);
}

#[tokio::test]
async fn room_archive_for_occupants() {
    let s = Server::start_with("[muc]\nauto_create_unlocked = true\n", 2);
    let (a, b) = s.users_apart();
    let room = "group-0b5d4a9c-6a1e-4c59-9b31-2f3a4e5d6c7b@conference.localhost";
    let mut alice = Client::online(&s, &a, "a", 0).await;
    alice
        .send(&format!(
            "<presence to='{room}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .await;
    alice.recv_until("<subject").await;
    for i in 1..=3 {
        alice
            .send(&format!(
                "<message to='{room}' type='groupchat' id='g{i}'><body>g{i}</body></message>"
            ))
            .await;
        let m = alice.recv_until(&format!("id='g{i}'")).await;
        assert!(m.contains(&format!("by='{room}'")), "{m}");
    }
    let (res, fin) = query(&mut alice, Some(room), "rq", "").await;
    assert_eq!(bodies(&res), ["g1", "g2", "g3"]);
    assert!(
        res[0].contains(&format!("from='{room}'")) && fin.contains("complete='true'"),
        "{fin}"
    );
    // Somebody who is not in the room may not read it.
    let mut bob = Client::online(&s, &b, "b", 0).await;
    let (_, e) = query(&mut bob, Some(room), "no", "").await;
    assert!(e.contains("<forbidden"), "{e}");
}

#[tokio::test]
async fn preferences_retention_and_disco() {
    let s = Server::start_with("[mam]\nretention_s = 2\n", 2);
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "a", 0).await;
    drop(Client::login(&s, &b, Some("once")).await);
    // XEP-0313 §7: archive nothing by default except bob.
    alice.send("<iq type='set' id='juliet2'><prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>nobody@localhost</jid></always><never/></prefs></iq>").await;
    let p = alice.recv_until("id='juliet2'").await;
    assert!(p.contains("<prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>nobody@localhost</jid></always><never></never></prefs>"), "{p}");
    alice
        .send(&format!(
            "<message to='{b}@localhost' type='chat' id='n1'><body>not kept</body></message>"
        ))
        .await;
    alice
        .send("<iq type='get' id='pg'><prefs xmlns='urn:xmpp:mam:2'/></iq>")
        .await;
    assert!(
        alice
            .recv_until("id='pg'")
            .await
            .contains("default='never'")
    );
    assert!(
        query(&mut alice, None, "q1", "").await.0.is_empty(),
        "default never"
    );
    alice
        .send("<iq type='set' id='pa'><prefs xmlns='urn:xmpp:mam:2' default='always'/></iq>")
        .await;
    alice.recv_until("id='pa'").await;
    alice.send(&format!("<message to='{b}@localhost' type='chat' id='k1'><body>kept for a while</body></message>")).await;
    assert_eq!(
        bodies(&query(&mut alice, None, "q2", "").await.0),
        ["kept for a while"]
    );
    // Retention (2 s here) deletes it on the storage thread.
    let mut gone = false;
    for i in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if query(&mut alice, None, &format!("r{i}"), "")
            .await
            .0
            .is_empty()
        {
            gone = true;
            break;
        }
    }
    assert!(gone, "retention never ran");
    // Disco lists what works: MAM on the account, offline storage and the MUC service on the server.
    alice.send(&format!("<iq type='get' id='da' to='{a}@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")).await;
    assert!(
        alice
            .recv_until("id='da'")
            .await
            .contains("<feature var='urn:xmpp:mam:2'/>")
    );
    alice.send("<iq type='get' id='ds' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    assert!(
        alice
            .recv_until("id='ds'")
            .await
            .contains("<feature var='msgoffline'/>")
    );
    alice.send("<iq type='get' id='di' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>").await;
    assert!(
        alice
            .recv_until("id='di'")
            .await
            .contains("<item jid='conference.localhost'/>")
    );
}

/// XEP-0359 §3: the recipient's `<stanza-id/>` names one message wherever it goes: the
/// resource it was delivered to, the recipient's other resource (a XEP-0280 carbon), the
/// offline copy, and the recipient's archive (the result's id).
#[tokio::test]
async fn the_recipients_stanza_id_is_the_same_everywhere_the_message_goes() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "a", 0).await;
    let mut b1 = Client::online(&s, &b, "b1", 0).await;
    let mut b2 = Client::online(&s, &b, "b2", 0).await;
    b2.send("<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
        .await;
    b2.recv_until("id='c1'").await;
    let sid = |m: &str| between(m, "<stanza-id xmlns='urn:xmpp:sid:0' id='", "'").to_string();
    alice
        .send(&format!(
            "<message to='{b}@localhost/b1' type='chat' id='s1'><body>one</body></message>"
        ))
        .await;
    let got = b1.recv_until("id='s1'").await;
    let id = sid(&got);
    assert_eq!(id.len(), 16, "{got}");
    let carbon = b2.recv_until("<received xmlns='urn:xmpp:carbons:2'>").await;
    assert!(carbon.contains("<body>one</body>"), "{carbon}");
    assert_eq!(sid(&carbon), id, "the carbon: {carbon}");
    let (res, _) = query(&mut b1, None, "q1", "").await;
    let archived = res.iter().find(|m| m.contains("<body>one</body>")).unwrap();
    assert_eq!(
        between(
            archived,
            "<result xmlns='urn:xmpp:mam:2' queryid='q-q1' id='",
            "'"
        ),
        id
    );
    assert_eq!(sid(archived), id, "the archive: {archived}");
    // Nobody of bob's online: stored, and named the same way when it comes back.
    drop((b1, b2));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    alice
        .send(&format!(
            "<message to='{b}@localhost' type='chat' id='s2'><body>two</body></message>"
        ))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut b3 = Client::online(&s, &b, "b3", 0).await;
    let stored = b3.recv_until("id='s2'").await;
    assert!(stored.contains("<delay xmlns='urn:xmpp:delay'"), "{stored}");
    let id2 = sid(&stored);
    assert_eq!(id2.len(), 16, "{stored}");
    let (res, _) = query(&mut b3, None, "q2", "").await;
    let archived = res.iter().find(|m| m.contains("<body>two</body>")).unwrap();
    assert_eq!(sid(archived), id2, "the archive: {archived}");
}
