//! XEP-0045 group chat between real clients, occupants spread over two shards.

mod common;
use common::*;

use common::muc::*;

#[tokio::test]
async fn create_lock_configure_join_in_order() {
    let s = Server::start();
    let (mut owner, mut other) = two(&s).await;
    let (on, bn) = (nick_of(&owner), nick_of(&other));
    let got = join(&mut owner, ROOM, &on, "").await;
    let me = got
        .iter()
        .find(|m| m.contains("code='110'"))
        .expect("own presence with 110");
    // §10.1.1 example 153: new room, owner, moderator, 110 and 201.
    assert!(
        me.contains("affiliation='owner'")
            && me.contains("role='moderator'")
            && me.contains("code='201'"),
        "{me}"
    );
    assert!(got.last().unwrap().contains("<subject/>"), "{got:?}");
    // Locked until configured: others get item-not-found.
    let e = join(&mut other, ROOM, &bn, "").await;
    assert!(e.last().unwrap().contains("<item-not-found"), "{e:?}");
    instant_room(&mut owner, ROOM).await;
    let got = join(&mut other, ROOM, &bn, "").await;
    // §7.2.3: others' presence first, then our own with 110, then the subject.
    let i_owner = got
        .iter()
        .position(|m| m.contains(&format!("from='{ROOM}/{on}'")))
        .expect("owner's presence");
    let i_self = got
        .iter()
        .position(|m| m.contains("code='110'"))
        .expect("own presence");
    assert!(i_owner < i_self && i_self < got.len() - 1, "{got:?}");
    assert!(
        got[i_self].contains("affiliation='none'") && got[i_self].contains("role='participant'"),
        "{}",
        got[i_self]
    );
    assert!(
        !got[i_owner].contains("jid="),
        "semi-anonymous room: no real JIDs to participants: {}",
        got[i_owner]
    );
    let p = owner.recv_until(&format!("from='{ROOM}/{bn}'")).await;
    assert!(
        !p.contains("code='110'") && p.contains(&format!("jid='{}'", other.jid)),
        "moderators see real JIDs: {p}"
    );
}

#[tokio::test]
async fn groupchat_is_reflected_to_all_with_id_and_stanza_id() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    let (an, bn) = (nick_of(&a), nick_of(&b));
    join(&mut a, ROOM, &an, "").await;
    instant_room(&mut a, ROOM).await;
    join(&mut b, ROOM, &bn, "").await;
    // XEP-0045 §7.4 example 60.
    a.send(&format!("<message from='{}' id='hysf1v37' to='{ROOM}' type='groupchat'><body>Harpier cries: &apos;tis time, &apos;tis time.</body></message>", a.jid)).await;
    for c in [&mut a, &mut b] {
        let m = c.recv_until("<message").await;
        assert!(
            m.contains(&format!("from='{ROOM}/{an}'"))
                && m.contains("id='hysf1v37'")
                && m.contains("type='groupchat'"),
            "{m}"
        );
        assert!(
            m.contains("<body>Harpier cries: &apos;tis time, &apos;tis time.</body>"),
            "{m}"
        );
        assert!(
            m.contains("<stanza-id xmlns='urn:xmpp:sid:0' id='")
                && m.contains(&format!("by='{ROOM}'")),
            "{m}"
        );
        assert!(m.contains(&format!("to='{}'", c.jid)), "{m}");
    }
    // A non-occupant is refused (§7.4: not-acceptable).
    let mut c = Client::online(&s, "carol", "r", 0).await;
    c.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='x'><body>hi</body></message>"
    ))
    .await;
    assert!(c.recv_until("id='x'").await.contains("<not-acceptable"));
}

#[tokio::test]
async fn nick_conflict_private_message_and_subject() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    let (an, bn) = (nick_of(&a), nick_of(&b));
    join(&mut a, ROOM, &an, "").await;
    instant_room(&mut a, ROOM).await;
    join(&mut b, ROOM, &bn, "").await;
    let mut c = Client::online(&s, "carol", "r", 0).await;
    let e = join(&mut c, ROOM, &an, "").await;
    assert!(e.last().unwrap().contains("<conflict"), "{e:?}");
    // §7.5 private message.
    b.send(&format!(
        "<message to='{ROOM}/{an}' type='chat' id='pm1'><body>psst</body></message>"
    ))
    .await;
    let m = a.recv_until("id='pm1'").await;
    assert!(
        m.contains(&format!("from='{ROOM}/{bn}'"))
            && m.contains("<x xmlns='http://jabber.org/protocol/muc#user'/>")
            && m.contains("<body>psst</body>"),
        "{m}"
    );
    // §8.1 subject, then a newcomer gets it on join.
    a.send(&format!("<message to='{ROOM}' type='groupchat' id='s1'><subject>Fire Burn and Cauldron Bubble!</subject></message>")).await;
    assert!(
        b.recv_until("id='s1'")
            .await
            .contains("<subject>Fire Burn and Cauldron Bubble!</subject>")
    );
    let got = join(&mut c, ROOM, "carol", "").await;
    let subj = got.last().unwrap();
    assert!(
        subj.contains("<subject>Fire Burn and Cauldron Bubble!</subject>")
            && subj.contains(&format!("from='{ROOM}/{an}'")),
        "{subj}"
    );
}

#[tokio::test]
async fn leave_disconnect_and_the_last_one_out_destroys() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    let (an, bn) = (nick_of(&a), nick_of(&b));
    join(&mut a, ROOM, &an, "").await;
    instant_room(&mut a, ROOM).await;
    join(&mut b, ROOM, &bn, "").await;
    a.recv_until(&format!("from='{ROOM}/{bn}'")).await; // b's arrival
    // §7.14: the leaver gets 110, the others do not.
    b.send(&format!("<presence to='{ROOM}/{bn}' type='unavailable'/>"))
        .await;
    let p = b.recv_until("type='unavailable'").await;
    assert!(p.contains("code='110'") && p.contains("role='none'"), "{p}");
    let p = a.recv_until(&format!("from='{ROOM}/{bn}'")).await;
    assert!(
        p.contains("type='unavailable'") && !p.contains("code='110'"),
        "{p}"
    );
    // A session that just goes away leaves every room it was in.
    let mut c = Client::online(&s, "carol", "r", 0).await;
    join(&mut c, ROOM, "carol", "").await;
    a.recv_until(&format!("from='{ROOM}/carol'")).await;
    drop(c);
    let p = a.recv_until(&format!("from='{ROOM}/carol'")).await;
    assert!(p.contains("type='unavailable'"), "{p}");
    // The last occupant leaving a temporary room destroys it: joining again creates it.
    a.send(&format!("<presence to='{ROOM}/{an}' type='unavailable'/>"))
        .await;
    a.recv_until("type='unavailable'").await;
    let got = join(&mut a, ROOM, &an, "").await;
    assert!(got.iter().any(|m| m.contains("code='201'")), "{got:?}");
}

#[tokio::test]
async fn history_with_delay_and_limits() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    let an = nick_of(&a);
    join(&mut a, ROOM, &an, "").await;
    instant_room(&mut a, ROOM).await;
    for i in 1..=3 {
        a.send(&format!(
            "<message to='{ROOM}' type='groupchat' id='h{i}'><body>line {i}</body></message>"
        ))
        .await;
        a.recv_until(&format!("id='h{i}'")).await;
    }
    // §7.2.15 example 37: maxstanzas.
    let got = join(&mut b, ROOM, "bee", "<history maxstanzas='2'/>").await;
    let hist: Vec<&String> = got.iter().filter(|m| m.contains("<body>line")).collect();
    assert_eq!(hist.len(), 2, "{got:?}");
    assert!(
        hist[0].contains("line 2") && hist[1].contains("line 3"),
        "{hist:?}"
    );
    assert!(
        hist[0].contains("<delay xmlns='urn:xmpp:delay'")
            && hist[0].contains(&format!("from='{ROOM}/{an}'")),
        "{}",
        hist[0]
    );
    assert!(hist[0].contains(&format!("to='{}'", b.jid)), "{}", hist[0]);
    let mut c = Client::online(&s, "carol", "r", 0).await;
    let got = join(&mut c, ROOM, "carol", "<history maxchars='0'/>").await;
    assert!(!got.iter().any(|m| m.contains("<body>line")), "{got:?}");
}

#[tokio::test]
async fn kick_ban_members_only_password() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    let (an, bn) = (nick_of(&a), nick_of(&b));
    join(&mut a, ROOM, &an, "").await;
    instant_room(&mut a, ROOM).await;
    join(&mut b, ROOM, &bn, "").await;
    // §8.2 kick: the kicked occupant gets 307 (and 110).
    a.send(&format!("<iq id='kick1' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='{bn}' role='none'><reason>Avaunt, you cullion!</reason></item></query></iq>")).await;
    assert!(a.recv_until("id='kick1'").await.contains("type='result'"));
    let p = b.recv_until("type='unavailable'").await;
    assert!(p.contains("code='307'") && p.contains("code='110'"), "{p}");
    // A participant may not kick.
    let mut c = Client::online(&s, "carol", "r", 0).await;
    join(&mut c, ROOM, "carol", "").await;
    c.send(&format!("<iq id='k2' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='{an}' role='none'/></query></iq>")).await;
    assert!(c.recv_until("id='k2'").await.contains("<not-allowed"));
    // §9.1 ban: removed with 301, and cannot come back.
    a.send(&format!("<iq id='ban1' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast' jid='carol@localhost'/></query></iq>")).await;
    assert!(a.recv_until("id='ban1'").await.contains("type='result'"));
    assert!(
        c.recv_until("type='unavailable'")
            .await
            .contains("code='301'")
    );
    assert!(
        join(&mut c, ROOM, "carol", "")
            .await
            .last()
            .unwrap()
            .contains("<forbidden")
    );
    // Members-only: registration-required until the owner grants membership.
    configure(&mut a, ROOM, &[("muc#roomconfig_membersonly", "1")]).await;
    assert!(
        join(&mut b, ROOM, &bn, "")
            .await
            .last()
            .unwrap()
            .contains("<registration-required")
    );
    a.send(&format!("<iq id='m1' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='{}'/></query></iq>", b.jid.split('/').next().unwrap())).await;
    assert!(a.recv_until("id='m1'").await.contains("type='result'"));
    assert!(
        join(&mut b, ROOM, &bn, "")
            .await
            .iter()
            .any(|m| m.contains("code='110'"))
    );
    a.send(&format!("<iq id='ml' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query></iq>")).await;
    let l = a.recv_until("id='ml'").await;
    assert!(
        l.contains(&format!("jid='{}'", b.jid.split('/').next().unwrap())),
        "{l}"
    );
    // Password protected.
    configure(
        &mut a,
        ROOM,
        &[
            ("muc#roomconfig_membersonly", "0"),
            ("muc#roomconfig_passwordprotectedroom", "1"),
            ("muc#roomconfig_roomsecret", "cauldronburn"),
        ],
    )
    .await;
    let mut d = Client::online(&s, "dave", "r", 0).await;
    assert!(
        join(&mut d, ROOM, "dave", "")
            .await
            .last()
            .unwrap()
            .contains("<not-authorized")
    );
    assert!(
        join(&mut d, ROOM, "dave", "<password>cauldronburn</password>")
            .await
            .iter()
            .any(|m| m.contains("code='110'"))
    );
}

#[tokio::test]
async fn moderated_rooms_silence_visitors() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    let (an, bn) = (nick_of(&a), nick_of(&b));
    join(&mut a, ROOM, &an, "").await;
    instant_room(&mut a, ROOM).await;
    configure(&mut a, ROOM, &[("muc#roomconfig_moderatedroom", "1")]).await;
    let got = join(&mut b, ROOM, &bn, "").await;
    assert!(
        got.iter()
            .any(|m| m.contains("code='110'") && m.contains("role='visitor'")),
        "{got:?}"
    );
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='v1'><body>may I?</body></message>"
    ))
    .await;
    assert!(b.recv_until("id='v1'").await.contains("<forbidden"));
    // §8.3 grant voice.
    a.send(&format!("<iq id='voice' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='{bn}' role='participant'/></query></iq>")).await;
    assert!(a.recv_until("id='voice'").await.contains("type='result'"));
    b.recv_until("role='participant'").await;
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='v2'><body>thanks</body></message>"
    ))
    .await;
    assert!(
        a.recv_until("id='v2'")
            .await
            .contains("<body>thanks</body>")
    );
}

#[tokio::test]
async fn max_occupants_and_multi_session_nicks() {
    let s = Server::start_with("[muc]\nmax_occupants = 2\nauto_create_unlocked = true\n", 2);
    let (mut a, mut b) = two(&s).await;
    let (an, bn) = (nick_of(&a), nick_of(&b));
    join(&mut a, ROOM, &an, "").await; // unlocked at once: no configuration needed
    join(&mut b, ROOM, &bn, "").await;
    let mut c = Client::online(&s, "carol", "r", 0).await;
    assert!(
        join(&mut c, ROOM, "carol", "")
            .await
            .last()
            .unwrap()
            .contains("<service-unavailable")
    );
    // The same user from a second resource with the same nick is the same occupant.
    let mut a2 = Client::online(&s, &an, "second", 0).await;
    assert!(
        join(&mut a2, ROOM, &an, "")
            .await
            .iter()
            .any(|m| m.contains("code='110'"))
    );
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='both'><body>to every resource</body></message>"
    ))
    .await;
    assert!(
        a.recv_until("id='both'")
            .await
            .contains("to every resource")
    );
    assert!(
        a2.recv_until("id='both'")
            .await
            .contains("to every resource")
    );
}

#[tokio::test]
async fn destroy_and_disco() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    let (an, bn) = (nick_of(&a), nick_of(&b));
    a.send("<iq id='di' to='conference.localhost' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    let d = a.recv_until("id='di'").await;
    assert!(
        d.contains("<identity category='conference' type='text'")
            && d.contains("<feature var='http://jabber.org/protocol/muc'/>"),
        "{d}"
    );
    join(&mut a, ROOM, &an, "").await;
    instant_room(&mut a, ROOM).await;
    join(&mut b, ROOM, &bn, "").await;
    a.send(&format!("<iq id='ri' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")).await;
    let d = a.recv_until("id='ri'").await;
    assert!(
        d.contains("muc_temporary")
            && d.contains("muc_open")
            && d.contains("muc_semianonymous")
            && d.contains("muc_unsecured"),
        "{d}"
    );
    // A participant cannot destroy; the owner can (§10.9).
    b.send(&format!("<iq id='d0' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>")).await;
    assert!(b.recv_until("id='d0'").await.contains("<forbidden"));
    a.send(&format!("<iq id='d1' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='coven@chat.shakespeare.lit'><reason>Macbeth doth come.</reason></destroy></query></iq>")).await;
    let p = b.recv_until("type='unavailable'").await;
    assert!(
        p.contains("<destroy><reason>Macbeth doth come.</reason></destroy>"),
        "{p}"
    );
    assert!(a.recv_until("id='d1'").await.contains("type='result'"));
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='gone'><body>?</body></message>"
    ))
    .await;
    assert!(b.recv_until("id='gone'").await.contains("<item-not-found"));
}

#[tokio::test]
async fn room_names_can_be_restricted_to_group_uuids() {
    let s = Server::start_with("[muc]\nrequire_group_uuid_names = true\n", 2);
    let mut a = Client::online(&s, "alice", "r", 0).await;
    let e = join(&mut a, "coven@conference.localhost", "alice", "").await;
    assert!(e.last().unwrap().contains("<not-allowed"), "{e:?}");
    assert!(
        join(&mut a, ROOM, "alice", "")
            .await
            .iter()
            .any(|m| m.contains("code='201'"))
    );
}

#[tokio::test]
async fn public_rooms_of_every_shard_are_listed() {
    let s = Server::start();
    let (mut a, _) = two(&s).await;
    let an = nick_of(&a);
    // Rooms whose homes are on both shards.
    let rooms: Vec<String> = (0..8)
        .map(|i| format!("room{i}@conference.localhost"))
        .collect();
    let homes: std::collections::HashSet<usize> = rooms
        .iter()
        .map(|r| aoba::runtime::home(r, 2).shard())
        .collect();
    assert_eq!(homes.len(), 2);
    for r in &rooms {
        join(&mut a, r, &an, "").await;
        instant_room(&mut a, r).await;
    }
    configure(&mut a, &rooms[0], &[("muc#roomconfig_publicroom", "0")]).await;
    // The directory is updated by messages between shards: ask until it has settled.
    let mut last = String::new();
    for _ in 0..50 {
        a.send("<iq id='items' to='conference.localhost' type='get'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>").await;
        last = a.recv_until("id='items'").await;
        if rooms[1..]
            .iter()
            .all(|r| last.contains(&format!("jid='{r}'")))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for r in &rooms[1..] {
        assert!(last.contains(&format!("jid='{r}'")), "{r} missing: {last}");
    }
    assert!(
        !last.contains(&format!("jid='{}'", rooms[0])),
        "hidden room listed: {last}"
    );
}

#[tokio::test]
async fn non_anonymous_rooms_and_role_and_membership_changes() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    let (an, bn) = (nick_of(&a), nick_of(&b));
    join(&mut a, ROOM, &an, "").await;
    instant_room(&mut a, ROOM).await;
    configure(&mut a, ROOM, &[("muc#roomconfig_whois", "anyone")]).await;
    let got = join(&mut b, ROOM, &bn, "").await;
    // §7.2.5: 100 in a non-anonymous room, and real JIDs for everyone.
    assert!(
        got.iter()
            .any(|m| m.contains("code='110'") && m.contains("code='100'")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|m| m.contains(&format!("from='{ROOM}/{an}'"))
                && m.contains(&format!("jid='{}'", a.jid))),
        "{got:?}"
    );
    a.recv_until(&format!("from='{ROOM}/{bn}'")).await;
    // §9.6 grant moderator (an admin's right; the owner has it).
    a.send(&format!("<iq id='mod' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='{bn}' role='moderator'/></query></iq>")).await;
    assert!(a.recv_until("id='mod'").await.contains("type='result'"));
    assert!(
        b.recv_until("role='moderator'")
            .await
            .contains(&format!("from='{ROOM}/{bn}'"))
    );
    // Membership revoked in a members-only room: removed with 321 (§9.4).
    let bb = b.jid.split('/').next().unwrap().to_string();
    a.send(&format!("<iq id='mem' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='{bb}'/></query></iq>")).await;
    assert!(a.recv_until("id='mem'").await.contains("type='result'"));
    configure(&mut a, ROOM, &[("muc#roomconfig_membersonly", "1")]).await;
    a.send(&format!("<iq id='rev' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='none' jid='{bb}'/></query></iq>")).await;
    assert!(a.recv_until("id='rev'").await.contains("type='result'"));
    assert!(
        b.recv_until("type='unavailable'")
            .await
            .contains("code='321'")
    );
}

#[tokio::test]
async fn history_by_time_and_the_history_cap() {
    let s = Server::start_with("[muc]\nhistory_max = 2\nhistory_default = 2\n", 2);
    let (mut a, mut b) = two(&s).await;
    let an = nick_of(&a);
    join(&mut a, ROOM, &an, "").await;
    instant_room(&mut a, ROOM).await;
    configure(&mut a, ROOM, &[("muc#maxhistoryfetch", "10")]).await; // capped at history_max
    for i in 1..=4 {
        a.send(&format!(
            "<message to='{ROOM}' type='groupchat' id='t{i}'><body>t{i}</body></message>"
        ))
        .await;
        a.recv_until(&format!("id='t{i}'")).await;
    }
    let got = join(&mut b, ROOM, "bee", "<history seconds='3600'/>").await;
    let hist: Vec<&String> = got.iter().filter(|m| m.contains("<body>t")).collect();
    assert_eq!(hist.len(), 2, "{got:?}");
    assert!(hist[1].contains("<body>t4</body>"));
    let mut c = Client::online(&s, "carol", "r", 0).await;
    let got = join(
        &mut c,
        ROOM,
        "carol",
        "<history since='2999-01-01T00:00:00Z'/>",
    )
    .await;
    assert!(!got.iter().any(|m| m.contains("<body>t")), "{got:?}");
}

#[tokio::test]
async fn rooms_per_shard_limit() {
    let s = Server::start_with("[muc]\nmax_rooms_per_shard = 1\n", 1);
    let mut a = Client::online(&s, "alice", "r", 0).await;
    assert!(
        join(&mut a, ROOM, "alice", "")
            .await
            .iter()
            .any(|m| m.contains("code='201'"))
    );
    let e = join(&mut a, "second@conference.localhost", "alice", "").await;
    assert!(e.last().unwrap().contains("<resource-constraint"), "{e:?}");
}

#[tokio::test]
async fn forged_stanza_ids_and_prefixed_presence_children_do_not_reach_others() {
    let s = Server::start();
    let (mut a, mut b) = two(&s).await;
    let (an, bn) = (nick_of(&a), nick_of(&b));
    join(&mut a, ROOM, &an, "").await;
    instant_room(&mut a, ROOM).await;
    // A presence child using a prefix declared on the presence element itself.
    b.send(&format!("<presence xmlns:e='urn:example:ext' to='{ROOM}/{bn}'><x xmlns='{MUC}'/><status>here</status><e:mood>odd</e:mood></presence>")).await;
    let mut got = Vec::new();
    loop {
        let m = b.recv().await;
        let done = m.contains("<subject");
        got.push(m);
        if done {
            break;
        }
    }
    let p = a.recv_until(&format!("from='{ROOM}/{bn}'")).await;
    assert!(
        p.contains("<status>here</status>") && !p.contains("mood"),
        "{p}"
    );
    // XEP-0359 §4: a stanza-id claiming to be the room's is stripped; the room adds its own.
    b.send(&format!("<message to='{ROOM}' type='groupchat' id='f1'><body>x</body><stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='{ROOM}'/></message>")).await;
    let m = a.recv_until("id='f1'").await;
    assert!(
        !m.contains("id='forged'") && m.matches("<stanza-id").count() == 1,
        "{m}"
    );
}

#[tokio::test]
async fn persistent_rooms_keep_config_affiliations_and_subject_over_kill_9() {
    let mut s = Server::start();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "a", 0).await;
    join(&mut alice, ROOM, "alice", "").await;
    instant_room(&mut alice, ROOM).await;
    configure(
        &mut alice,
        ROOM,
        &[
            ("muc#roomconfig_persistentroom", "1"),
            ("muc#roomconfig_roomname", "Coven"),
            ("muc#roomconfig_membersonly", "1"),
        ],
    )
    .await;
    alice.send(&format!("<iq id='m' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='{b}@localhost'/></query></iq>")).await;
    alice.recv_until("id='m'").await;
    alice.send(&format!("<message to='{ROOM}' type='groupchat' id='s'><subject>Double, double toil</subject></message>")).await;
    alice.recv_until("id='s'").await;
    // Everything the room did is durable once alice's stanzas are acknowledged.
    alice.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    alice.recv_until("<enabled").await;
    alice.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    alice.recv_until("<a xmlns").await;
    drop(alice);
    s.restart(true); // kill -9
    let mut carol = Client::online(&s, "carol", "r", 0).await;
    assert!(
        join(&mut carol, ROOM, "carol", "")
            .await
            .last()
            .unwrap()
            .contains("<registration-required"),
        "members-only kept"
    );
    let mut bob = Client::online(&s, &b, "b", 0).await;
    let got = join(&mut bob, ROOM, "bob", "").await;
    assert!(
        got.iter()
            .any(|m| m.contains("code='110'") && m.contains("affiliation='member'")),
        "{got:?}"
    );
    assert!(
        got.last()
            .unwrap()
            .contains("<subject>Double, double toil</subject>"),
        "{got:?}"
    );
    bob.send(&format!("<iq id='ri' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")).await;
    let d = bob.recv_until("id='ri'").await;
    assert!(
        d.contains("name='Coven'") && d.contains("muc_persistent") && d.contains("muc_membersonly"),
        "{d}"
    );
    // The last occupant leaving does not destroy a persistent room.
    bob.send(&format!("<presence to='{ROOM}/bob' type='unavailable'/>"))
        .await;
    bob.recv_until("type='unavailable'").await;
    assert!(
        !join(&mut bob, ROOM, "bob", "")
            .await
            .iter()
            .any(|m| m.contains("code='201'")),
        "not re-created"
    );
}

#[tokio::test]
async fn mediated_invitations_and_declines_pass_through_the_room() {
    let s = Server::start_with("", 2);
    let (mut a, mut b) = two(&s).await;
    join(&mut a, ROOM, "owner", "").await;
    instant_room(&mut a, ROOM).await;
    configure(
        &mut a,
        ROOM,
        &[
            ("muc#roomconfig_membersonly", "1"),
            ("muc#roomconfig_passwordprotectedroom", "1"),
            ("muc#roomconfig_roomsecret", "cauldronburn"),
        ],
    )
    .await;
    // XEP-0045 example 56: the invitation to the room...
    let b_bare = b.jid.split('/').next().unwrap().to_string();
    a.send(&format!("<message to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='{b_bare}'><reason>Hey Hecate, this is the place for all good witches!</reason></invite></x></message>")).await;
    // ...example 57: passed on from the room, naming the inviter, with the password.
    let inv = b.recv_until("<invite").await;
    assert!(inv.contains(&format!("from='{ROOM}'")), "{inv}");
    assert!(inv.contains(&format!("<invite from='{}'>", a.jid)), "{inv}");
    assert!(
        inv.contains("<reason>Hey Hecate, this is the place for all good witches!</reason>"),
        "{inv}"
    );
    assert!(inv.contains("<password>cauldronburn</password>"), "{inv}");
    // The invitee of a members-only room became a member: it may join.
    let got = join(&mut b, ROOM, "hecate", "<password>cauldronburn</password>").await;
    assert!(got.last().unwrap().contains("<subject"), "{got:?}");
    b.send(&format!(
        "<presence to='{ROOM}/hecate' type='unavailable'/>"
    ))
    .await;
    b.recv_until("type='unavailable'").await;
    // Example 59/60: a decline from a non-occupant goes back to the inviter.
    b.send(&format!("<message to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'><decline to='{}'><reason>Sorry, I'm too busy right now.</reason></decline></x></message>", a.jid)).await;
    let d = a.recv_until("<decline").await;
    assert!(d.contains(&format!("from='{ROOM}'")), "{d}");
    assert!(d.contains(&format!("<decline from='{}'>", b.jid)), "{d}");
    // Only owners and admins invite to a members-only room; non-occupants not at all.
    let c_user = "user40".to_string();
    let mut c = Client::online(&s, &c_user, "r", 0).await;
    c.send(&format!("<message to='{ROOM}' id='inv2'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='{b_bare}'/></x></message>")).await;
    let e = c.recv_until("id='inv2'").await;
    assert!(
        e.contains("type='error'") && e.contains("not-acceptable"),
        "{e}"
    );
    join(&mut b, ROOM, "hecate", "<password>cauldronburn</password>").await;
    b.send(&format!("<message to='{ROOM}' id='inv3'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='{c_user}@localhost'/></x></message>")).await;
    let e = b.recv_until("id='inv3'").await;
    assert!(e.contains("type='error'") && e.contains("forbidden"), "{e}");
}

#[tokio::test]
async fn an_occupant_that_never_sent_initial_presence_leaves_when_its_session_ends() {
    // RFC 6121 §4.6.3: directed presence (a room join is one) gets `unavailable` when the
    // session ends, whether or not the session was available.
    let s = Server::start_with("", 2);
    let (a, b) = s.users_apart();
    let mut owner = Client::online(&s, &a, "r", 0).await;
    join(&mut owner, ROOM, "owner", "").await;
    instant_room(&mut owner, ROOM).await;
    let mut quiet = Client::login(&s, &b, Some("r")).await; // no initial presence
    join(&mut quiet, ROOM, "quiet", "").await;
    owner.recv_until(&format!("from='{ROOM}/quiet'")).await;
    quiet
        .send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        .await;
    drop(quiet);
    let gone = owner.recv_until(&format!("from='{ROOM}/quiet'")).await;
    assert!(gone.contains("type='unavailable'"), "{gone}");
}

/// Issue 10, finding 3: an owner's configuration and an admin's affiliation change of a
/// persistent room are answered only after they are committed: SIGKILL right after the
/// result keeps them (run several times: the race was 1 in 3).
#[tokio::test]
async fn owner_and_admin_results_mean_stored_even_under_kill_9() {
    let mut s = Server::start();
    let (a, b) = s.users_apart();
    for i in 0..5 {
        let room = format!("group-{i:08}-e89b-12d3-a456-426614174000@conference.localhost");
        let mut alice = Client::online(&s, &a, "a", 0).await;
        join(&mut alice, &room, "alice", "").await;
        instant_room(&mut alice, &room).await;
        configure(
            &mut alice,
            &room,
            &[
                ("muc#roomconfig_persistentroom", "1"),
                ("muc#roomconfig_roomname", &format!("Room{i}")),
            ],
        )
        .await; // the result has arrived
        s.restart(true);
        let mut bob = Client::online(&s, &b, "b", 0).await;
        bob.send(&format!("<iq id='ri' to='{room}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")).await;
        let d = bob.recv_until("id='ri'").await;
        assert!(
            d.contains(&format!("name='Room{i}'")) && d.contains("muc_persistent"),
            "round {i}: {d}"
        );
        let mut alice = Client::online(&s, &a, "a", 0).await;
        alice.send(&format!("<iq id='m' to='{room}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='{b}@localhost'/></query></iq>")).await;
        let r = alice.recv_until("id='m'").await;
        assert!(r.contains("type='result'"), "{r}");
        s.restart(true);
        let mut alice = Client::online(&s, &a, "a", 0).await;
        alice.send(&format!("<iq id='ml' to='{room}' type='get'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query></iq>")).await;
        let r = alice.recv_until("id='ml'").await;
        assert!(
            r.contains(&format!("jid='{b}@localhost'")),
            "round {i}: {r}"
        );
    }
}

/// Issue 10, finding 6: `<history seconds/>` with a number far past the epoch used to
/// overflow a time subtraction and panic the room's shard. It means "all history" now.
#[tokio::test]
async fn history_seconds_past_the_epoch_means_all_of_it() {
    let s = Server::start_with("", 2);
    let (mut a, mut b) = two(&s).await;
    join(&mut a, ROOM, "owner", "").await;
    instant_room(&mut a, ROOM).await;
    a.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='h1'><body>old</body></message>"
    ))
    .await;
    a.recv_until("id='h1'").await;
    let got = join(
        &mut b,
        ROOM,
        "late",
        "<history seconds='10000000000000000000'/>",
    )
    .await;
    assert!(
        got.iter().any(|m| m.contains("<body>old</body>")),
        "{got:?}"
    );
    // The room's shard is alive and serving.
    a.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='h2'><body>new</body></message>"
    ))
    .await;
    assert!(b.recv_until("id='h2'").await.contains("<body>new</body>"));
}

/// Issue 10, finding 4: a room whose messages are archived says so in disco#info (XEP-0313
/// §6.1, XEP-0359), or clients never ask it for history; with the archive off it does not.
#[tokio::test]
async fn rooms_advertise_their_archive_only_when_there_is_one() {
    for (cfg, archived) in [("", true), ("[mam]\nenabled = false\n", false)] {
        let s = Server::start_with(cfg, 2);
        let (mut a, _b) = two(&s).await;
        join(&mut a, ROOM, "owner", "").await;
        instant_room(&mut a, ROOM).await;
        a.send(&format!("<iq id='di' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")).await;
        let d = a.recv_until("id='di'").await;
        assert_eq!(
            d.contains("<feature var='urn:xmpp:mam:2'/>"),
            archived,
            "{cfg:?}: {d}"
        );
        assert!(d.contains("<feature var='urn:xmpp:sid:0'/>"), "{d}");
    }
}

/// Rooms load on demand (issue 14: nothing loads every room). After a restart no room is
/// in memory; the public directory still lists every stored public room; the first
/// stanza for a room loads it (its configuration kept, not created anew) while a burst
/// behind it waits in order, and the sender's `<a h/>` comes only after all of it was
/// handled. Room reads are slowed to 300 ms (a debug-build hook) so that an ack or a join
/// overtaking the read would show.
#[tokio::test]
async fn rooms_load_when_first_used_never_all_at_start() {
    let mut s = Server::start();
    let (a, b) = s.users_apart();
    let room = |i: usize| format!("group-{i:08}-e89b-12d3-a456-426614174999@conference.localhost");
    let mut alice = Client::online(&s, &a, "a", 0).await;
    for i in 0..4 {
        join(&mut alice, &room(i), "alice", "").await;
        instant_room(&mut alice, &room(i)).await;
        configure(
            &mut alice,
            &room(i),
            &[
                ("muc#roomconfig_persistentroom", "1"),
                ("muc#roomconfig_publicroom", if i == 3 { "0" } else { "1" }),
                ("muc#roomconfig_roomname", &format!("Lazy{i}")),
            ],
        )
        .await;
    }
    drop(alice);
    s.restart_env(false, &[("AOBA_FAULT_SLOW_READ_MS", "300")]);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(s.metric("aoba_muc_rooms"), 0.0, "rooms loaded at start");
    let mut bob = Client::online(&s, &b, "b", 0).await;
    bob.send("<iq id='items' to='conference.localhost' type='get'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>").await;
    let items = bob.recv_until("id='items'").await;
    for i in 0..3 {
        assert!(items.contains(&format!("name='Lazy{i}'")), "{items}");
    }
    assert!(!items.contains("Lazy3"), "a hidden room listed: {items}");
    // A join, a message and an ack request at once, to a room not in memory.
    bob.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    bob.recv_until("<enabled").await;
    bob.send(&format!(
        "<presence to='{}/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
        room(2)
    ))
    .await;
    bob.send(&format!(
        "<message to='{}' type='groupchat' id='g1'><body>first</body></message>",
        room(2)
    ))
    .await;
    bob.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let mut seen = Vec::new();
    loop {
        let m = bob.recv().await;
        let ack = m.starts_with("<a xmlns='urn:xmpp:sm:3'");
        seen.push(m);
        if ack {
            break;
        }
    }
    let pos = |pat: &str| seen.iter().position(|m| m.contains(pat));
    let joined = pos("code='110'").unwrap_or_else(|| panic!("no join: {seen:?}"));
    let echo = pos("id='g1'").unwrap_or_else(|| panic!("no echo: {seen:?}"));
    assert!(joined < echo && echo < seen.len() - 1, "{seen:?}");
    assert!(
        !seen[joined].contains("code='201'"),
        "created anew: {seen:?}"
    );
    assert!(seen.last().unwrap().contains("h='2'"), "{seen:?}");
    bob.send(&format!(
        "<iq id='ri' to='{}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        room(2)
    ))
    .await;
    let info = bob.recv_until("id='ri'").await;
    assert!(
        info.contains("name='Lazy2'") && info.contains("muc_persistent"),
        "{info}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        s.metric("aoba_muc_rooms"),
        1.0,
        "only the room used is loaded"
    );
}

/// `muc.held_while_loading_max`, exceeded: with room reads slowed to 500 ms (a debug-build
/// hook) and a bound of 2, a burst of five messages to a stored room not in memory keeps
/// the first two (they reach the room once it is read) and refuses the rest with
/// `resource-constraint`, never silently; the sender's ack covers all five.
#[tokio::test]
async fn stanzas_past_the_loading_bound_are_refused_not_dropped() {
    let mut s = Server::start_with("[muc]\nheld_while_loading_max = 2\n", 1);
    let (a, b) = ("alice", "bob");
    let room = "group-00000042-e89b-12d3-a456-426614174999@conference.localhost";
    let mut alice = Client::online(&s, a, "a", 0).await;
    join(&mut alice, room, "alice", "").await;
    instant_room(&mut alice, room).await;
    configure(&mut alice, room, &[("muc#roomconfig_persistentroom", "1")]).await;
    drop(alice);
    s.restart_env(false, &[("AOBA_FAULT_SLOW_READ_MS", "500")]);
    let mut bob = Client::online(&s, b, "b", 0).await;
    bob.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    bob.recv_until("<enabled").await;
    // Not an occupant: each message that reaches the room is refused by it as such
    // (not-acceptable); those past the bound never reach it (resource-constraint).
    for i in 0..5 {
        bob.send(&format!(
            "<message to='{room}' type='groupchat' id='b{i}'><body>{i}</body></message>"
        ))
        .await;
    }
    bob.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let mut errors = Vec::new();
    loop {
        let m = bob.recv().await;
        if m.starts_with("<a xmlns='urn:xmpp:sm:3'") {
            assert!(m.contains("h='5'"), "{m}");
            break;
        }
        if m.contains("type='error'") {
            errors.push(m);
        }
    }
    let by = |cond: &str| errors.iter().filter(|e| e.contains(cond)).count();
    assert_eq!(by("<resource-constraint"), 3, "{errors:?}");
    assert_eq!(by("<not-acceptable"), 2, "{errors:?}");
}
