//! The XEP-0045 flows clients use beyond joining and talking (issue 15): nickname changes
//! (§7.6), registration and reserved nicks (§7.10, §7.12), voice requests and their
//! approval (§7.13, §8.6), voice and moderator lists (§8.3–8.5, §9.8), instant, configured
//! and cancelled rooms (§10.1), IQs relayed to occupants (§17.4), XEP-0410 self-ping,
//! presence broadcast per role, and the room directory in XEP-0059 pages (§6.3). The stanzas clients send are the XEP's own examples, with
//! its names replaced by ours; occupants live on different shards.

mod common;
use common::muc::*;
use common::*;

const REGISTER: &str = "jabber:iq:register";
const DATA: &str = "jabber:x:data";
const ADMIN: &str = "http://jabber.org/protocol/muc#admin";

/// Three users, not all on one shard.
async fn three(s: &Server) -> (Client, Client, Client) {
    let (a, b) = s.users_apart();
    let c = (0..64)
        .map(|i| format!("third{i}"))
        .find(|c| s.home(c) == s.home(&a))
        .expect("a third user");
    (
        Client::online(s, &a, "pda", 0).await,
        Client::online(s, &b, "pda", 0).await,
        Client::online(s, &c, "pda", 0).await,
    )
}

/// An open room created by `owner` (an instant room, §10.1.2) with `owner` in it.
async fn open_room(owner: &mut Client) -> String {
    let n = nick_of(owner);
    join(owner, ROOM, &n, "").await;
    instant_room(owner, ROOM).await;
    n
}

/// Receives until a frame contains `pat`; returns every frame received, that one last.
async fn frames_until(c: &mut Client, pat: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let m = c.recv().await;
        let done = m.contains(pat);
        got.push(m);
        if done {
            return got;
        }
    }
}

async fn iq(c: &mut Client, id: &str, xml: &str) -> String {
    c.send(xml).await;
    c.recv_until(&format!("id='{id}'")).await
}

#[tokio::test]
async fn nickname_change_xep_0045_7_6() {
    let s = Server::start();
    let (mut a, mut b, mut c) = three(&s).await;
    let an = open_room(&mut a).await;
    join(&mut b, ROOM, "thirdwitch", "").await;
    let cn = nick_of(&c);
    join(&mut c, ROOM, &cn, "").await;
    // The owner makes b a member first: the affiliation follows the nick change.
    let r = iq(&mut a, "m1", &format!("<iq id='m1' to='{ROOM}' type='set'><query xmlns='{ADMIN}'><item affiliation='member' jid='{}'/></query></iq>", b.jid)).await;
    assert!(r.contains("type='result'"), "{r}");
    b.recv_until("affiliation='member'").await;
    c.recv_until(&format!("from='{ROOM}/thirdwitch'")).await;
    // Example 49: the occupant changes its nickname.
    b.send(&format!("<presence id='ifd1c35' to='{ROOM}/oldhag'/>"))
        .await;
    // Example 50: unavailable from the old nick with the new one and 303, then available
    // from the new nick; 110 only in the changer's copies.
    let got = frames_until(&mut b, &format!("from='{ROOM}/oldhag'")).await;
    let un = got
        .iter()
        .find(|m| m.contains(&format!("from='{ROOM}/thirdwitch'")) && m.contains("unavailable"))
        .unwrap_or_else(|| panic!("unavailable from the old nick: {got:?}"));
    assert!(
        un.contains("nick='oldhag'")
            && un.contains("code='303'")
            && un.contains("code='110'")
            && un.contains("affiliation='member'"),
        "{un}"
    );
    let av = got.last().unwrap();
    assert!(
        !av.contains("unavailable")
            && av.contains("code='110'")
            && av.contains("affiliation='member'")
            && av.contains("role='participant'"),
        "{av}"
    );
    for other in [&mut a, &mut c] {
        let got = frames_until(other, &format!("from='{ROOM}/oldhag'")).await;
        let un = got
            .iter()
            .find(|m| m.contains(&format!("from='{ROOM}/thirdwitch'")) && m.contains("unavailable"))
            .unwrap_or_else(|| panic!("{got:?}"));
        assert!(
            un.contains("type='unavailable'")
                && un.contains("nick='oldhag'")
                && un.contains("code='303'")
                && !un.contains("code='110'"),
            "{un}"
        );
        assert!(!got.last().unwrap().contains("code='110'"), "{got:?}");
    }
    // Messages now come from the new nick.
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='after'><body>renamed</body></message>"
    ))
    .await;
    let m = a.recv_until("id='after'").await;
    assert!(m.contains(&format!("from='{ROOM}/oldhag'")), "{m}");
    // Example 52: a nick in use by another occupant is a conflict, from the address asked for.
    b.send(&format!("<presence id='conf1' to='{ROOM}/{cn}'/>"))
        .await;
    let e = b.recv_until("id='conf1'").await;
    assert!(
        e.contains("type='error'")
            && e.contains(&format!("from='{ROOM}/{cn}'"))
            && e.contains("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>")
            && e.contains("type='cancel'"),
        "{e}"
    );
    // The old nick is free again: someone else may take it.
    let r = iq(&mut c, "n2", &format!("<iq id='n2' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")).await;
    assert!(r.contains("type='result'"), "{r}");
    c.send(&format!("<presence id='ch2' to='{ROOM}/thirdwitch'/>"))
        .await;
    let got = frames_until(&mut c, &format!("from='{ROOM}/thirdwitch'")).await;
    assert!(got.last().unwrap().contains("code='110'"), "{got:?}");
    let _ = an;
}

#[tokio::test]
async fn registration_and_reserved_nicks_xep_0045_7_10_7_12() {
    let s = Server::start();
    let (mut a, mut b, mut c) = three(&s).await;
    let an = open_room(&mut a).await;
    let bn = nick_of(&b);
    join(&mut b, ROOM, &bn, "").await;
    a.recv_until(&format!("from='{ROOM}/{bn}'")).await;
    // Example 77, no nick registered yet: an empty query.
    let r = iq(&mut b, "getnick1", &format!("<iq id='getnick1' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>")).await;
    assert!(
        r.contains("type='result'") && !r.contains("<identity"),
        "{r}"
    );
    // Example 66 → 70: the registration form.
    let r = iq(
        &mut b,
        "jw81b36f",
        &format!("<iq id='jw81b36f' to='{ROOM}' type='get'><query xmlns='{REGISTER}'/></iq>"),
    )
    .await;
    assert!(
        r.contains("type='result'")
            && r.contains(&format!("<x xmlns='{DATA}' type='form'>"))
            && r.contains("<value>http://jabber.org/protocol/muc#register</value>")
            && r.contains("var='muc#register_roomnick'"),
        "{r}"
    );
    // Example 71 → 75, and example 76: the new member's presence to everyone.
    let r = iq(&mut b, "nv71va54", &format!("<iq id='nv71va54' to='{ROOM}' type='set'><query xmlns='{REGISTER}'><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_first'><value>Brunhilde</value></field><field var='muc#register_last'><value>Entwhistle-Throckmorton</value></field><field var='muc#register_roomnick'><value>thirdwitch</value></field></x></query></iq>")).await;
    assert!(r.contains("type='result'"), "{r}");
    let p = a.recv_until(&format!("from='{ROOM}/{bn}'")).await;
    assert!(p.contains("affiliation='member'"), "{p}");
    // Example 69: already registered.
    let r = iq(
        &mut b,
        "reg2",
        &format!("<iq id='reg2' to='{ROOM}' type='get'><query xmlns='{REGISTER}'/></iq>"),
    )
    .await;
    assert!(
        r.contains("<registered/>") && r.contains("<username>thirdwitch</username>"),
        "{r}"
    );
    // Example 78: the reserved nick.
    let r = iq(&mut b, "getnick2", &format!("<iq id='getnick2' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>")).await;
    assert!(
        r.contains("<identity category='conference' name='thirdwitch' type='text'/>"),
        "{r}"
    );
    // Someone else may neither register nor enter with that nick (§7.10, §7.12).
    let r = iq(&mut c, "reg3", &format!("<iq id='reg3' to='{ROOM}' type='set'><query xmlns='{REGISTER}'><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>thirdwitch</value></field></x></query></iq>")).await;
    assert!(r.contains("<conflict "), "{r}");
    let e = join(&mut c, ROOM, "thirdwitch", "").await;
    assert!(e.last().unwrap().contains("<conflict "), "{e:?}");
    // A submission without the nick is a bad request.
    let r = iq(&mut c, "reg4", &format!("<iq id='reg4' to='{ROOM}' type='set'><query xmlns='{REGISTER}'><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field></x></query></iq>")).await;
    assert!(r.contains("<bad-request "), "{r}");
    // The member list names the new member.
    let r = iq(&mut a, "ml", &format!("<iq id='ml' to='{ROOM}' type='get'><query xmlns='{ADMIN}'><item affiliation='member'/></query></iq>")).await;
    assert!(
        r.contains(&format!("jid='{}'", b.jid.split('/').next().unwrap())),
        "{r}"
    );
    // A members-only room seats a member under its reserved nick, with 210 (§7.2.2, §7.10).
    configure(&mut a, ROOM, &[("muc#roomconfig_membersonly", "1")]).await;
    b.send(&format!("<presence type='unavailable' to='{ROOM}/{bn}'/>"))
        .await;
    b.recv_until("type='unavailable'").await;
    let got = join(&mut b, ROOM, "somethingelse", "").await;
    let me = got
        .iter()
        .find(|m| m.contains("code='110'"))
        .unwrap_or_else(|| panic!("{got:?}"));
    assert!(
        me.contains(&format!("from='{ROOM}/thirdwitch'")) && me.contains("code='210'"),
        "{me}"
    );
    // And its nick is locked there: changing it is not acceptable (§7.6, example 53).
    b.send(&format!("<presence id='lock1' to='{ROOM}/other'/>"))
        .await;
    let e = b.recv_until("id='lock1'").await;
    assert!(e.contains("<not-acceptable "), "{e}");
    // Outsiders of a members-only room may not register.
    let r = iq(&mut c, "reg5", &format!("<iq id='reg5' to='{ROOM}' type='set'><query xmlns='{REGISTER}'><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>hecate</value></field></x></query></iq>")).await;
    assert!(r.contains("<not-allowed "), "{r}");
    // Registering with a room that does not exist: item-not-found (example 67).
    let r = iq(&mut c, "reg6", &format!("<iq id='reg6' to='nosuch@conference.localhost' type='get'><query xmlns='{REGISTER}'/></iq>")).await;
    assert!(r.contains("<item-not-found "), "{r}");
    let _ = an;
}

#[tokio::test]
async fn voice_request_and_approval_xep_0045_7_13_8_6() {
    let s = Server::start();
    let (mut a, mut b, mut c) = three(&s).await;
    let an = open_room(&mut a).await;
    configure(&mut a, ROOM, &[("muc#roomconfig_moderatedroom", "1")]).await;
    let got = join(&mut b, ROOM, "thirdwitch", "").await;
    assert!(got.iter().any(|m| m.contains("role='visitor'")), "{got:?}");
    // Someone not in the room may not ask.
    c.send(&format!("<message id='out1' to='{ROOM}'><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#role'><value>participant</value></field></x></message>")).await;
    assert!(c.recv_until("id='out1'").await.contains("<not-acceptable "));
    let cn = nick_of(&c);
    join(&mut c, ROOM, &cn, "").await;
    // Example 79: the visitor asks for voice.
    b.send(&format!("<message id='yd53c486' to='{ROOM}'><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#role' type='list-single' label='Requested role'><value>participant</value></field></x></message>")).await;
    // Example 108: the moderators get the approval form.
    let f = a.recv_until("muc#request_allow").await;
    assert!(
        f.contains(&format!("from='{ROOM}'"))
            && f.contains(&format!("<x xmlns='{DATA}' type='form'>"))
            && f.contains("<value>http://jabber.org/protocol/muc#request</value>")
            && f.contains(&format!("<value>{}</value>", b.jid))
            && f.contains("<value>thirdwitch</value>")
            && f.contains("var='muc#request_allow' type='boolean'"),
        "{f}"
    );
    // A participant is no moderator: its approval is refused.
    c.send(&format!("<message id='approve0' to='{ROOM}'><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#role'><value>participant</value></field><field var='muc#jid'><value>{}</value></field><field var='muc#roomnick'><value>thirdwitch</value></field><field var='muc#request_allow'><value>true</value></field></x></message>", b.jid)).await;
    assert!(c.recv_until("id='approve0'").await.contains("<forbidden "));
    // Example 109: the moderator approves; example 97: everyone learns of the voice.
    a.send(&format!("<message id='approve' to='{ROOM}'><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#role'><value>participant</value></field><field var='muc#jid'><value>{}</value></field><field var='muc#roomnick'><value>thirdwitch</value></field><field var='muc#request_allow'><value>true</value></field></x></message>", b.jid)).await;
    for x in [&mut a, &mut b, &mut c] {
        let p = x.recv_until(&format!("from='{ROOM}/thirdwitch'")).await;
        assert!(p.contains("role='participant'"), "{p}");
    }
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='v2'><body>thanks</body></message>"
    ))
    .await;
    assert!(
        a.recv_until("id='v2'")
            .await
            .contains("<body>thanks</body>")
    );
    let _ = an;
}

#[tokio::test]
async fn voice_and_moderator_lists_xep_0045_8_3_to_8_5_9_8() {
    let s = Server::start();
    let (mut a, mut b, mut c) = three(&s).await;
    let an = open_room(&mut a).await;
    join(&mut b, ROOM, "thirdwitch", "").await;
    let cn = nick_of(&c);
    join(&mut c, ROOM, &cn, "").await;
    // Example 99: revoke voice, with a reason; example 101: everyone sees the visitor.
    let r = iq(&mut a, "voice2", &format!("<iq id='voice2' to='{ROOM}' type='set'><query xmlns='{ADMIN}'><item nick='thirdwitch' role='visitor'><reason>Not so worthy after all!</reason></item></query></iq>")).await;
    assert!(r.contains("type='result'"), "{r}");
    for x in [&mut b, &mut c] {
        let p = x.recv_until(&format!("from='{ROOM}/thirdwitch'")).await;
        assert!(p.contains("role='visitor'"), "{p}");
    }
    // Example 95: and grant it back.
    let r = iq(&mut a, "voice1", &format!("<iq id='voice1' to='{ROOM}' type='set'><query xmlns='{ADMIN}'><item nick='thirdwitch' role='participant'><reason>A worthy witch indeed!</reason></item></query></iq>")).await;
    assert!(r.contains("type='result'"), "{r}");
    c.recv_until("role='participant'").await;
    // Example 103/104: the voice list, for moderators: nick, role, affiliation, full JID.
    let r = iq(&mut a, "voice3", &format!("<iq id='voice3' to='{ROOM}' type='get'><query xmlns='{ADMIN}'><item role='participant'/></query></iq>")).await;
    assert!(
        r.contains(&format!(
            "role='participant' nick='thirdwitch' affiliation='none' jid='{}'",
            b.jid
        )),
        "{r}"
    );
    // A participant may not read it (§8: moderators only).
    let r = iq(&mut c, "voice4", &format!("<iq id='voice4' to='{ROOM}' type='get'><query xmlns='{ADMIN}'><item role='participant'/></query></iq>")).await;
    assert!(r.contains("<forbidden "), "{r}");
    // The owner makes c an admin: c is a moderator now, and its voice cannot be revoked
    // by anyone (§8.4, example 102), nor its moderator status (§9.8).
    let r = iq(&mut a, "adm", &format!("<iq id='adm' to='{ROOM}' type='set'><query xmlns='{ADMIN}'><item affiliation='admin' jid='{}'/></query></iq>", c.jid.split('/').next().unwrap())).await;
    assert!(r.contains("type='result'"), "{r}");
    let r = iq(&mut a, "voicetest", &format!("<iq id='voicetest' to='{ROOM}' type='set'><query xmlns='{ADMIN}'><item nick='{cn}' role='visitor'/></query></iq>")).await;
    assert!(r.contains("<not-allowed "), "{r}");
    let r = iq(&mut a, "modtest", &format!("<iq id='modtest' to='{ROOM}' type='set'><query xmlns='{ADMIN}'><item nick='{cn}' role='participant'/></query></iq>")).await;
    assert!(r.contains("<not-allowed "), "{r}");
    // Example 146–148: the moderator list, for admins; the admin grants b moderator.
    let r = iq(&mut c, "mod4", &format!("<iq id='mod4' to='{ROOM}' type='set'><query xmlns='{ADMIN}'><item nick='thirdwitch' role='moderator'/></query></iq>")).await;
    assert!(r.contains("type='result'"), "{r}");
    let r = iq(&mut c, "mod3", &format!("<iq id='mod3' to='{ROOM}' type='get'><query xmlns='{ADMIN}'><item role='moderator'/></query></iq>")).await;
    for n in [an.as_str(), cn.as_str(), "thirdwitch"] {
        assert!(r.contains(&format!("nick='{n}'")), "{n}: {r}");
    }
    // b is a moderator without affiliation: the voice list is open to it, the moderator
    // list is not (§9: admins).
    let r = iq(&mut b, "mod5", &format!("<iq id='mod5' to='{ROOM}' type='get'><query xmlns='{ADMIN}'><item role='moderator'/></query></iq>")).await;
    assert!(r.contains("<forbidden "), "{r}");
    let r = iq(&mut b, "voice5", &format!("<iq id='voice5' to='{ROOM}' type='get'><query xmlns='{ADMIN}'><item role='participant'/></query></iq>")).await;
    assert!(r.contains("type='result'"), "{r}");
    // A role and an affiliation in one item: bad request (§17.4).
    let r = iq(&mut a, "both", &format!("<iq id='both' to='{ROOM}' type='set'><query xmlns='{ADMIN}'><item nick='thirdwitch' role='participant' affiliation='member'/></query></iq>")).await;
    assert!(r.contains("<bad-request "), "{r}");
}

#[tokio::test]
async fn instant_configured_and_cancelled_rooms_xep_0045_10_1() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    let (an, bn) = (nick_of(&a), nick_of(&b));
    // §10.1.3: the owner asks for the form (example 156) and submits it (example 159/160).
    join(&mut a, ROOM, &an, "").await;
    let r = iq(&mut a, "create1", &format!("<iq id='create1' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")).await;
    assert!(
        r.contains(&format!("<x xmlns='{DATA}' type='form'>"))
            && r.contains("var='muc#roomconfig_roomname'"),
        "{r}"
    );
    configure(&mut a, ROOM, &[("muc#roomconfig_roomname", "A Dark Cave")]).await;
    let got = join(&mut b, ROOM, &bn, "").await;
    assert!(got.iter().any(|m| m.contains("code='110'")), "{got:?}");
    b.send(&format!("<presence type='unavailable' to='{ROOM}/{bn}'/>"))
        .await;
    a.send(&format!("<presence type='unavailable' to='{ROOM}/{an}'/>"))
        .await;
    a.recv_until("code='110'").await;
    // A new locked room, cancelled (example 162): it is destroyed, its owner gets its
    // unavailable presence with <destroy/>, and the next join creates it afresh.
    let room2 = "coven@conference.localhost";
    join(&mut a, room2, &an, "").await;
    a.send(&format!("<iq id='create2' to='{room2}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='{DATA}' type='cancel'/></query></iq>")).await;
    let got = frames_until(&mut a, "id='create2'").await;
    assert!(got.last().unwrap().contains("type='result'"), "{got:?}");
    assert!(
        got.iter().any(|m| m.contains("type='unavailable'")
            && m.contains("<destroy")
            && m.contains("code='110'")),
        "{got:?}"
    );
    let got = join(&mut b, room2, &bn, "").await;
    assert!(
        got.iter()
            .any(|m| m.contains("code='201'") && m.contains("affiliation='owner'")),
        "a cancelled room is gone: {got:?}"
    );
}

#[tokio::test]
async fn iq_to_an_occupant_is_relayed_without_real_jids() {
    let s = Server::start();
    let (mut a, mut b, mut c) = three(&s).await;
    let an = open_room(&mut a).await;
    join(&mut b, ROOM, "thirdwitch", "").await;
    a.recv_until(&format!("from='{ROOM}/thirdwitch'")).await;
    // A vCard request to an occupant reaches its real JID from the asker's occupant JID.
    a.send(&format!(
        "<iq id='v1' to='{ROOM}/thirdwitch' type='get'><vCard xmlns='vcard-temp'/></iq>"
    ))
    .await;
    let q = b.recv_until("vcard-temp").await;
    assert!(
        q.contains(&format!("from='{ROOM}/{an}'"))
            && q.contains(&format!("to='{}'", b.jid))
            && !q.contains(a.jid.split('/').next().unwrap()),
        "{q}"
    );
    let id = between(&q, " id='", "'").to_string();
    b.send(&format!("<iq id='{id}' to='{ROOM}/{an}' type='result'><vCard xmlns='vcard-temp'><FN>Third Witch</FN></vCard></iq>")).await;
    let r = a.recv_until("id='v1'").await;
    assert!(
        r.contains("type='result'")
            && r.contains(&format!("from='{ROOM}/thirdwitch'"))
            && r.contains("<FN>Third Witch</FN>")
            && !r.contains(b.jid.split('/').next().unwrap()),
        "{r}"
    );
    // Errors come back the same way.
    a.send(&format!(
        "<iq id='p1' to='{ROOM}/thirdwitch' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    let q = b.recv_until("urn:xmpp:ping").await;
    let id = between(&q, " id='", "'").to_string();
    b.send(&format!("<iq id='{id}' to='{ROOM}/{an}' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")).await;
    let r = a.recv_until("id='p1'").await;
    assert!(
        r.contains("type='error'") && r.contains("<service-unavailable"),
        "{r}"
    );
    // No such occupant; and a non-occupant may not reach occupants through the room.
    let r = iq(
        &mut a,
        "p2",
        &format!("<iq id='p2' to='{ROOM}/nobody' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"),
    )
    .await;
    assert!(r.contains("<item-not-found "), "{r}");
    let r = iq(
        &mut c,
        "p3",
        &format!(
            "<iq id='p3' to='{ROOM}/thirdwitch' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"
        ),
    )
    .await;
    assert!(r.contains("<not-acceptable "), "{r}");
    // A forged answer (an id the room never made) goes nowhere; b's next ping still works.
    b.send(&format!("<iq id='forged' to='{ROOM}/{an}' type='result'/>"))
        .await;
    let r = iq(
        &mut b,
        "p4",
        &format!(
            "<iq id='p4' to='{ROOM}/thirdwitch' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"
        ),
    )
    .await;
    assert!(r.contains("type='result'"), "{r}");
}

#[tokio::test]
async fn self_ping_xep_0410() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    let an = open_room(&mut a).await;
    // Example 4: rooms advertise the optimization.
    let r = iq(&mut a, "d1", &format!("<iq id='d1' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")).await;
    assert!(
        r.contains("http://jabber.org/protocol/muc#self-ping-optimization"),
        "{r}"
    );
    // Example 1, joined: the room answers itself.
    let r = iq(
        &mut a,
        "s2c1",
        &format!("<iq id='s2c1' type='get' to='{ROOM}/{an}'><ping xmlns='urn:xmpp:ping'/></iq>"),
    )
    .await;
    assert!(
        r.contains("type='result'") && r.contains(&format!("from='{ROOM}/{an}'")),
        "{r}"
    );
    // Example 2, not joined: not-acceptable, so the client rejoins.
    let r = iq(
        &mut b,
        "s2c2",
        &format!("<iq id='s2c2' type='get' to='{ROOM}/{an}'><ping xmlns='urn:xmpp:ping'/></iq>"),
    )
    .await;
    assert!(
        r.contains("type='error'") && r.contains("<not-acceptable "),
        "{r}"
    );
    // After a restart the room is gone (not persistent): the ping says so.
    let r = iq(&mut b, "s2c3", &format!("<iq id='s2c3' type='get' to='gone@conference.localhost/{an}'><ping xmlns='urn:xmpp:ping'/></iq>")).await;
    assert!(r.contains("type='error'"), "{r}");
}

#[tokio::test]
async fn presence_broadcast_per_role() {
    let s = Server::start();
    let (mut a, mut b, mut c) = three(&s).await;
    let an = open_room(&mut a).await;
    // Only moderators' presence is broadcast.
    a.send(&format!("<iq id='pb' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_presencebroadcast'><value>moderator</value></field></x></query></iq>")).await;
    assert!(a.recv_until("id='pb'").await.contains("type='result'"));
    let r = iq(&mut a, "form", &format!("<iq id='form' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")).await;
    let field = between(&r, "var='muc#roomconfig_presencebroadcast'", "</field>");
    // Each role is an option; only `moderator` is also a value now.
    assert!(
        field.contains("type='list-multi'")
            && field.matches("<value>moderator</value>").count() == 2
            && field.matches("<value>participant</value>").count() == 1
            && field.matches("<value>visitor</value>").count() == 1,
        "{field}"
    );
    // b joins as a participant: it sees the moderator and itself, nobody sees it.
    let got = join(&mut b, ROOM, "thirdwitch", "").await;
    assert!(
        got.iter()
            .any(|m| m.contains(&format!("from='{ROOM}/{an}'"))),
        "{got:?}"
    );
    assert!(got.iter().any(|m| m.contains("code='110'")), "{got:?}");
    let cn = nick_of(&c);
    let got = join(&mut c, ROOM, &cn, "").await;
    assert!(
        !got.iter()
            .any(|m| m.contains(&format!("from='{ROOM}/thirdwitch'"))),
        "a participant's presence is not sent to joiners: {got:?}"
    );
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='g1'><body>unseen but heard</body></message>"
    ))
    .await;
    for x in [&mut a, &mut c] {
        let got = frames_until(x, "id='g1'").await;
        assert!(
            !got.iter()
                .any(|m| m.starts_with("<presence")
                    && m.contains(&format!("from='{ROOM}/thirdwitch'"))),
            "{got:?}"
        );
    }
    // Made a moderator, b's presence is broadcast.
    let r = iq(&mut a, "mod", &format!("<iq id='mod' to='{ROOM}' type='set'><query xmlns='{ADMIN}'><item nick='thirdwitch' role='moderator'/></query></iq>")).await;
    assert!(r.contains("type='result'"), "{r}");
    let p = c.recv_until(&format!("from='{ROOM}/thirdwitch'")).await;
    assert!(p.contains("role='moderator'"), "{p}");
}

/// A registration's result means stored: kill -9 right after it, and the reserved nick and
/// the membership are there after the restart.
#[tokio::test]
async fn a_registration_survives_kill_9_right_after_its_result() {
    let mut s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "pda", 0).await;
    open_room(&mut alice).await;
    configure(&mut alice, ROOM, &[("muc#roomconfig_persistentroom", "1")]).await;
    let mut bob = Client::online(&s, &b, "pda", 0).await;
    let r = iq(&mut bob, "nv71va54", &format!("<iq id='nv71va54' to='{ROOM}' type='set'><query xmlns='{REGISTER}'><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>thirdwitch</value></field></x></query></iq>")).await;
    assert!(r.contains("type='result'"), "{r}");
    drop((alice, bob));
    s.restart(true); // kill -9
    let mut bob = Client::online(&s, &b, "pda", 0).await;
    let r = iq(&mut bob, "getnick1", &format!("<iq id='getnick1' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>")).await;
    assert!(r.contains("name='thirdwitch'"), "{r}");
    let mut carol = Client::online(&s, "carol", "pda", 0).await;
    let e = join(&mut carol, ROOM, "thirdwitch", "").await;
    assert!(e.last().unwrap().contains("<conflict "), "{e:?}");
    let got = join(&mut bob, ROOM, "thirdwitch", "").await;
    assert!(
        got.iter()
            .any(|m| m.contains("code='110'") && m.contains("affiliation='member'")),
        "{got:?}"
    );
}

/// `muc.max_registrations_per_room`: past it, `resource-constraint`; a registered user may
/// still change its nick.
#[tokio::test]
async fn registrations_per_room_are_bounded() {
    let s = Server::start_with("[muc]\nmax_registrations_per_room = 1\n", 2);
    let (mut a, mut b, mut c) = three(&s).await;
    open_room(&mut a).await;
    let reg = |id: &str, nick: &str| {
        format!(
            "<iq id='{id}' to='{ROOM}' type='set'><query xmlns='{REGISTER}'><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>{nick}</value></field></x></query></iq>"
        )
    };
    let r = iq(&mut b, "r1", &reg("r1", "thirdwitch")).await;
    assert!(r.contains("type='result'"), "{r}");
    let r = iq(&mut c, "r2", &reg("r2", "hecate")).await;
    assert!(r.contains("<resource-constraint "), "{r}");
    let r = iq(&mut b, "r3", &reg("r3", "oldhag")).await;
    assert!(r.contains("type='result'"), "{r}");
    // The bound counts users: the nick b gave up makes no room for another user.
    let r = iq(&mut c, "r4", &reg("r4", "thirdwitch")).await;
    assert!(r.contains("<resource-constraint "), "{r}");
}

/// §10.2.1: a configuration change is announced to the occupants (104), with 172 when real
/// JIDs become visible to all and 173 when they stop being.
#[tokio::test]
async fn configuration_changes_are_announced_xep_0045_10_2_1() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    open_room(&mut a).await;
    join(&mut b, ROOM, "thirdwitch", "").await;
    configure(
        &mut a,
        ROOM,
        &[("muc#roomconfig_roomname", "A Darker Cave")],
    )
    .await;
    let m = b.recv_until("<status code='104'/>").await;
    assert!(
        m.starts_with("<message")
            && m.contains(&format!("from='{ROOM}'"))
            && m.contains("type='groupchat'")
            && !m.contains("code='172'"),
        "{m}"
    );
    configure(&mut a, ROOM, &[("muc#roomconfig_whois", "anyone")]).await;
    let m = b.recv_until("<status code='104'/>").await;
    assert!(m.contains("<status code='172'/>"), "{m}");
    configure(&mut a, ROOM, &[("muc#roomconfig_whois", "moderators")]).await;
    let m = b.recv_until("<status code='104'/>").await;
    assert!(m.contains("<status code='173'/>"), "{m}");
}

/// A user in a room under two nicks (two resources): an affiliation change reaches the
/// presence of both occupants, and a ban removes both.
#[tokio::test]
async fn an_affiliation_change_reaches_every_occupant_of_the_user() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut a = Client::online(&s, &a, "pda", 0).await;
    open_room(&mut a).await;
    let mut b1 = Client::online(&s, &b, "one", 0).await;
    let mut b2 = Client::online(&s, &b, "two", 0).await;
    join(&mut b1, ROOM, "first", "").await;
    join(&mut b2, ROOM, "second", "").await;
    let bare = b1.jid.split('/').next().unwrap().to_string();
    let r = iq(&mut a, "m", &format!("<iq id='m' to='{ROOM}' type='set'><query xmlns='{ADMIN}'><item affiliation='member' jid='{bare}'/></query></iq>")).await;
    assert!(r.contains("type='result'"), "{r}");
    for nick in ["first", "second"] {
        let p = b1.recv_until(&format!("from='{ROOM}/{nick}'")).await;
        let p = if p.contains("affiliation='member'") {
            p
        } else {
            b1.recv_until(&format!("from='{ROOM}/{nick}'")).await
        };
        assert!(p.contains("affiliation='member'"), "{nick}: {p}");
    }
    let r = iq(&mut a, "ban", &format!("<iq id='ban' to='{ROOM}' type='set'><query xmlns='{ADMIN}'><item affiliation='outcast' jid='{bare}'/></query></iq>")).await;
    assert!(r.contains("type='result'"), "{r}");
    // Each session gets its own occupant's removal (with 110).
    for c in [&mut b1, &mut b2] {
        loop {
            let p = c.recv_until("code='301'").await;
            if p.contains("code='110'") {
                assert!(p.contains("type='unavailable'"), "{p}");
                break;
            }
        }
    }
}

/// The rooms (their JIDs, in order) and the XEP-0059 `<set/>` of a directory answer.
fn directory_page(answer: &str) -> (Vec<String>, String) {
    let rooms = answer
        .split("<item jid='")
        .skip(1)
        .map(|i| i.split('\'').next().unwrap().to_string())
        .collect();
    let set = answer.find("<set").map_or(String::new(), |i| {
        let end = answer
            .find("</set>")
            .map_or(answer.len(), |e| e + "</set>".len());
        answer[i..end].to_string()
    });
    (rooms, set)
}

/// The `<set/>` of a page from `first` (at `index`) to `last` of `count` rooms.
fn page_set(first: &str, index: usize, last: &str, count: usize) -> String {
    format!(
        "<set xmlns='http://jabber.org/protocol/rsm'><first index='{index}'>{first}</first>\
         <last>{last}</last><count>{count}</count></set>"
    )
}

/// XEP-0045 §6.3 with XEP-0059: the directory of public rooms comes in pages of at most
/// `muc.directory_page_max`, in JID order, whichever shard each room lives on.
#[tokio::test]
async fn the_room_directory_pages_xep_0059() {
    let s = Server::start_with("[muc]\ndirectory_page_max = 3\n", 2);
    let (mut a, mut b) = two(&s).await;
    let an = nick_of(&a);
    // Seven public rooms (created out of order) on both shards, and one hidden room.
    let names = [
        "kilo", "alpha", "hotel", "echo", "golf", "bravo", "delta", "zulu",
    ];
    let rooms: Vec<String> = names
        .iter()
        .map(|n| format!("{n}@conference.localhost"))
        .collect();
    let homes: std::collections::HashSet<usize> = rooms
        .iter()
        .map(|r| aoba::runtime::home(r, 2).shard())
        .collect();
    assert_eq!(homes.len(), 2, "rooms on both shards");
    for r in &rooms {
        join(&mut a, r, &an, "").await;
        instant_room(&mut a, r).await;
    }
    configure(&mut a, &rooms[7], &[("muc#roomconfig_publicroom", "0")]).await;
    let mut public: Vec<String> = rooms[..7].to_vec();
    public.sort();
    let disco = |id: &str, set: &str| {
        format!(
            "<iq type='get' id='{id}' to='conference.localhost'>\
             <query xmlns='http://jabber.org/protocol/disco#items'>{set}</query></iq>"
        )
    };
    let rsm = |inner: &str| format!("<set xmlns='http://jabber.org/protocol/rsm'>{inner}</set>");
    // The directory is updated by messages between shards: ask (§2.7, the count alone)
    // until it has settled.
    let settled = "<set xmlns='http://jabber.org/protocol/rsm'><count>7</count></set>";
    let mut last = String::new();
    for _ in 0..100 {
        last = iq(&mut b, "n", &disco("n", &rsm("<max>0</max>"))).await;
        if directory_page(&last).1 == settled {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        directory_page(&last),
        (vec![], settled.to_string()),
        "{last}"
    );

    // No <set/>: the first page of three, and the <set/> that says there are seven.
    let r = iq(&mut b, "p0", &disco("p0", "")).await;
    assert!(r.contains("type='result'"), "{r}");
    assert_eq!(
        directory_page(&r),
        (public[..3].to_vec(), page_set(&public[0], 0, &public[2], 7)),
        "{r}"
    );

    // §2.2: paging forwards with <after/> walks every public room once, in JID order.
    let mut seen: Vec<String> = Vec::new();
    let mut after = String::new();
    for page in 0.. {
        assert!(page < 5, "too many pages: {seen:?}");
        let id = format!("f{page}");
        let set = if after.is_empty() {
            rsm("<max>3</max>")
        } else {
            rsm(&format!("<max>3</max><after>{after}</after>"))
        };
        let r = iq(&mut b, &id, &disco(&id, &set)).await;
        let (got, set) = directory_page(&r);
        if got.is_empty() {
            assert_eq!(set, settled, "{r}");
            break;
        }
        let index = seen.len();
        assert_eq!(set, page_set(&got[0], index, got.last().unwrap(), 7), "{r}");
        after = got.last().unwrap().clone();
        seen.extend(got);
    }
    assert_eq!(seen, public);

    // §2.5: an empty <before/> is the last page; §2.3: <before/> a JID, the page before it.
    let r = iq(&mut b, "l", &disco("l", &rsm("<max>3</max><before/>"))).await;
    assert_eq!(
        directory_page(&r),
        (public[4..].to_vec(), page_set(&public[4], 4, &public[6], 7)),
        "{r}"
    );
    let before = rsm(&format!("<max>2</max><before>{}</before>", public[4]));
    let r = iq(&mut b, "bk", &disco("bk", &before)).await;
    assert_eq!(
        directory_page(&r),
        (
            public[2..4].to_vec(),
            page_set(&public[2], 2, &public[3], 7)
        ),
        "{r}"
    );

    // A larger <max/> is capped to the page size.
    let r = iq(&mut b, "big", &disco("big", &rsm("<max>1000</max>"))).await;
    assert_eq!(directory_page(&r).0, public[..3].to_vec(), "{r}");

    // §2.6: a page at an index.
    let r = iq(
        &mut b,
        "ix",
        &disco("ix", &rsm("<max>2</max><index>5</index>")),
    )
    .await;
    assert_eq!(
        directory_page(&r),
        (public[5..].to_vec(), page_set(&public[5], 5, &public[6], 7)),
        "{r}"
    );

    // A <max/> that is no number is a bad request.
    let r = iq(&mut b, "bad", &disco("bad", &rsm("<max>many</max>"))).await;
    assert!(
        r.contains("type='error'") && r.contains("<bad-request"),
        "{r}"
    );

    // XEP-0059 §4: the service says it pages.
    let r = iq(
        &mut b,
        "inf",
        "<iq type='get' id='inf' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    assert!(
        r.contains("<feature var='http://jabber.org/protocol/rsm'/>"),
        "{r}"
    );
}
