//! The elements the gateway feeds its own stream, byte for byte.
use super::*;

#[test]
fn login_elements() {
    assert_eq!(
        open_element("localhost"),
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
    );
    assert_eq!(
        close_element(),
        "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
    );
    // "\0juliet\0it's <&>", base64.
    assert_eq!(
        auth_element("juliet", "it's <&>"),
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABpdCdzIDwmPg==</auth>"
    );
    assert_eq!(
        auth_element("", ""),
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AAA=</auth>"
    );
    assert_eq!(
        bind_element(Some("it's <b>&amp;\r")),
        "<iq type='set' id='ftw-bind' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>it's &lt;b&gt;&amp;amp;&#13;</resource></bind></iq>"
    );
    assert_eq!(
        bind_element(Some("")),
        "<iq type='set' id='ftw-bind' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource></resource></bind></iq>"
    );
    assert_eq!(
        bind_element(None),
        "<iq type='set' id='ftw-bind' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'></bind></iq>"
    );
}

/// `xmpp.muc.create {instant: true}`: the empty form goes once, and only when the room
/// says the join created it.
#[test]
fn instant_room_form_once_when_created() {
    let mut s = State::new(Proto::SocketIo, "localhost".into(), None);
    let room = "r@conference.localhost";
    let joined = |instant| Joined {
        nick: "n".into(),
        instant,
    };
    s.rooms.insert(room.into(), joined(true));
    assert_eq!(s.in_room("other@conference.localhost", true), None);
    let form = s.in_room(room, true).expect("the instant form");
    assert_eq!(form, super::super::muc::admin::instant_form(room, "ftw1"));
    assert_eq!(s.in_room(room, true), None, "sent once");
    // A room that existed already (no 201) settles it too.
    s.rooms.insert(room.into(), joined(true));
    assert_eq!(s.in_room(room, false), None);
    assert_eq!(s.in_room(room, true), None);
    // A plain join (or create without instant) never sends it.
    s.rooms.insert(room.into(), joined(false));
    assert_eq!(s.in_room(room, true), None);
    assert!(s.rooms.contains_key(room), "the room stays joined");
}
