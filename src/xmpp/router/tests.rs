use super::*;
use crate::xml::stanza::Limits;

fn routed(xml: &str) -> Routed {
    let st = Stanza::parse(xml, &Limits::default()).unwrap();
    stamp(&st, Kind::Message, SType::Chat, "a@x/r", Some("b@x"))
}

fn text(r: &Routed) -> String {
    String::from_utf8(r.to_vec()).unwrap()
}

/// A relayed copy: new addresses after the sender's attributes, the id replaced, a
/// first child inserted (also into a self-closing stanza); the content shared.
#[test]
fn readdressed_and_content() {
    let r = routed("<message id='m&amp;1' type='chat' to='b@x'><body>hi</body></message>");
    assert_eq!(
        r.start_before_addresses(),
        b"<message id='m&amp;1' type='chat'  xmlns='jabber:client'"
    );
    assert_eq!(&r.content().unwrap()[..], b"<body>hi</body></message>");
    let c = r.readdressed("c@x/1", "room@m/O'N", Some("new&lt;"), b"<x/>");
    assert_eq!(
        text(&c),
        "<message id='new&lt;' type='chat'  xmlns='jabber:client' to='c@x/1' from='room@m/O&apos;N'><x/><body>hi</body></message>"
    );
    assert_eq!((&*c.to(), &*c.from()), ("c@x/1", "room@m/O'N"));
    let empty = routed("<message type='chat' to='b@x'/>");
    assert_eq!(empty.content(), None);
    assert_eq!(
        text(&empty.readdressed("c@x/1", "r@m", Some("ignored"), b"<x/>")),
        "<message type='chat'  xmlns='jabber:client' to='c@x/1' from='r@m'><x/></message>"
    );
    assert_eq!(
        text(&empty.readdressed("c@x/1", "r@m", None, b"")),
        "<message type='chat'  xmlns='jabber:client' to='c@x/1' from='r@m'/>"
    );
}

#[test]
fn splices_are_parts_of_the_one_payload() {
    let r = routed("<message to='b@x' type='chat'><body>hi</body></message>");
    let payload = r.payload.clone();
    let r = r
        .with_last_child(Bytes::from_static(b"<delay/>"))
        .ok()
        .unwrap()
        .with_first_child(Bytes::from_static(b"<stanza-id/>"))
        .ok()
        .unwrap();
    assert_eq!(
        text(&r),
        "<message  type='chat' xmlns='jabber:client' to='b@x' from='a@x/r'><stanza-id/><body>hi</body><delay/></message>"
    );
    // Five parts, and the message's bytes are slices of the one payload (no copy).
    let parts = r.parts();
    assert_eq!(parts.len(), 5);
    for i in [0, 2, 4] {
        let p = parts[i].as_ptr() as usize;
        let base = payload.as_ptr() as usize;
        assert!(p >= base && p + parts[i].len() <= base + payload.len());
    }
    // Routing still reads the addresses from the payload.
    assert_eq!((&*r.to(), &*r.from()), ("b@x", "a@x/r"));
}

#[test]
fn a_self_closing_stanza_has_no_room_for_a_child() {
    let r = routed("<message to='b@x' type='chat'/>");
    let r = r
        .with_first_child(Bytes::from_static(b"<x/>"))
        .err()
        .unwrap();
    let r = r
        .with_last_child(Bytes::from_static(b"<x/>"))
        .err()
        .unwrap();
    assert_eq!(r.parts().len(), 1);
}
