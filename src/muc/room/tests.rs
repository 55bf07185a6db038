//! What a room writes of its occupants and its iq results, byte for byte; nicks carry
//! `'`, `<`, `&`. `pub(super)`: the other room files' tests build on `room` and
//! `routed`.
use super::*;
use crate::xmpp::router::stamp;

pub(in crate::muc) const ROOM: &str = "coven@conference.localhost";

/// A room of alice (owner, nick `O'Neil <&>`) and bob (nick `b&'<`), both away.
pub(in crate::muc) fn room() -> Room {
    let mut room = Room::new(ROOM, "coven", "alice@localhost", &MucConfig::default());
    for (nick, jid, role) in [
        ("O'Neil <&>", "alice@localhost/web", Role::Moderator),
        ("b&'<", "bob@localhost/desk", Role::Participant),
    ] {
        let jid = Jid::parse(jid).unwrap();
        let sess = Sess::new(&jid, 1);
        let presence = "<show>away</show>".to_string();
        let o = Occupant::new(nick, jid.bare(), sess, role, presence);
        room.occupants.add(o);
    }
    room
}

/// `xml` as routing stamps it, from `from`.
pub(in crate::muc) fn routed(kind: Kind, stype: SType, from: &str, xml: &str) -> Routed {
    let st = Stanza::parse(xml, &Limits::default()).unwrap();
    let to = st.attr(0, "to").map(|a| a.value().into_owned());
    stamp(&st, kind, stype, from, to.as_deref())
}

pub(in crate::muc) fn text(r: &Routed) -> &str {
    std::str::from_utf8(&r.payload).unwrap()
}

/// Occupant presence: to one session (`presence_to`), and the head and tail of a
/// broadcast around a `to` (`presence_head_tail`), with and without the real JID.
#[test]
fn occupant_presence() {
    let room = room();
    let r = room.presence_to(0, "bob@localhost/desk", Role::Participant, &[]);
    assert_eq!(
        text(&r),
        "<presence xmlns='jabber:client' to='bob@localhost/desk' \
         from='coven@conference.localhost/O&apos;Neil &lt;&amp;&gt;'><show>away</show>\
         <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/></x></presence>"
    );
    assert_eq!(
        (&*r.to(), &*r.from()),
        (
            "bob@localhost/desk",
            "coven@conference.localhost/O'Neil <&>"
        )
    );
    let r = room.presence_to(1, "alice@localhost/web", Role::Moderator, &[100]);
    assert_eq!(
        text(&r),
        "<presence xmlns='jabber:client' to='alice@localhost/web' \
         from='coven@conference.localhost/b&amp;&apos;&lt;'><show>away</show>\
         <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant' jid='bob@localhost/desk'/>\
         <status code='100'/></x></presence>"
    );
    let o = &room.occupants[0];
    let real = Some("alice@localhost/web");
    let whole = |(h, t): (Bytes, Bytes)| {
        format!(
            "{}alice@localhost/web{}",
            std::str::from_utf8(&h).unwrap(),
            std::str::from_utf8(&t).unwrap()
        )
    };
    assert_eq!(
        whole(room.presence_head_tail(o, Role::Moderator, false, real, &[201, 110], "", None)),
        "<presence xmlns='jabber:client' from='coven@conference.localhost/O&apos;Neil &lt;&amp;&gt;' \
         to='alice@localhost/web'><show>away</show><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='owner' role='moderator' jid='alice@localhost/web'/>\
         <status code='201'/><status code='110'/></x></presence>"
    );
    let destroy = "<destroy><reason>Macbeth's &lt;&amp;&gt;</reason></destroy>";
    assert_eq!(
        whole(room.presence_head_tail(o, Role::None, true, real, &[110], destroy, None)),
        "<presence xmlns='jabber:client' from='coven@conference.localhost/O&apos;Neil &lt;&amp;&gt;' \
         type='unavailable' to='alice@localhost/web'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='owner' role='none' jid='alice@localhost/web'/>\
         <destroy><reason>Macbeth's &lt;&amp;&gt;</reason></destroy><status code='110'/></x></presence>"
    );
    assert_eq!(
        whole(room.presence_head_tail(o, Role::Moderator, false, None, &[], "", None)),
        "<presence xmlns='jabber:client' from='coven@conference.localhost/O&apos;Neil &lt;&amp;&gt;' \
         to='alice@localhost/web'><show>away</show><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='owner' role='moderator'/></x></presence>"
    );
}

/// An iq result: the request's `id` as it came (any quotes), `/>` when empty.
#[test]
fn iq_results() {
    let get = |id: &str| {
        routed(
            Kind::Iq,
            SType::Get,
            "alice@localhost/web",
            &format!("<iq to='{ROOM}' type='get'{id}><query xmlns='q'/></iq>"),
        )
    };
    let r = result_of(&get(" id=\"d'1\""), "<query xmlns='q'/>");
    assert_eq!(
        text(&r),
        "<iq xmlns='jabber:client' to='alice@localhost/web' from='coven@conference.localhost' \
         type='result' id=\"d'1\"><query xmlns='q'/></iq>"
    );
    assert_eq!((&*r.to(), &*r.from()), ("alice@localhost/web", ROOM));
    assert_eq!(
        text(&result_of(&get(" id='c1'"), "")),
        "<iq xmlns='jabber:client' to='alice@localhost/web' from='coven@conference.localhost' \
         type='result' id='c1'/>"
    );
    assert_eq!(
        text(&result_of(&get(""), "<q/>")),
        "<iq xmlns='jabber:client' to='alice@localhost/web' from='coven@conference.localhost' \
         type='result'><q/></iq>"
    );
}
