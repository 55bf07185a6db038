//! Room occupancy, both ways.
//!
//! - Rendered: `xmpp.muc.roster` for each occupant's presence (`role`, `affiliation`,
//!   `jid`, status codes, `status: "unavailable"` on leaving); a nick change (303) as the
//!   old nick's unavailable presence with `nick` the new nick, `oldNick` the old one and
//!   the status codes as `status`; `xmpp.muc.destroy` when a room is destroyed,
//!   `xmpp.muc.error` (`type: "presence"`) when a join fails.
//! - Requested: `xmpp.muc.join` (`nick`, `password`, `history`; in a room the session is
//!   in, a new `nick` changes its nick), `xmpp.muc.create` (a join; `instant` makes the new
//!   room an instant room once it says it was created) and `xmpp.muc.leave` (`reason`);
//!   none has a callback result. All update the session's room map.
//!
//! XEP-0045 §7.2 (entering a room), §7.6 (changing nickname), §7.14 (exiting a room),
//! §10.1 (creating a room), §10.9 (destroying a room).

use super::super::common::{
    Obj, Outs, R, XMLNS, attr, child_text, client, el, error_object, event, invalid, kids, opt_int,
    opt_obj, opt_str, opt_text, put, req_str, send,
};
use super::super::jid_object;
use super::super::render::Out;
use super::super::request::{Event, Request, RoomChange};
use super::{occupant, room};
use crate::xml::ns::MUC as NS_MUC;
use crate::xml::ns::MUC_USER as NS_MUC_USER;
use crate::xml::stanza::Stanza;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Stanza → events

/// Presence of type `ty` from `room` (or occupant `nick`); `false` for a subscription
/// with the service itself, which renders as any other contact's.
pub(in super::super) fn render(
    st: &Stanza,
    room: &str,
    nick: Option<&str>,
    ty: Option<&str>,
    out: &mut Outs,
) -> bool {
    match ty {
        Some("error") => {
            let o = json!({ "type": "presence", "error": error_object(st, 0), "room": room });
            out.push(Out::Event {
                name: "xmpp.muc.error",
                payload: o,
            });
        }
        None | Some("unavailable") => occupant_presence(st, room, nick, ty.is_some(), out),
        _ => return false,
    }
    true
}

/// Occupant presence: `xmpp.muc.destroy` for a destroyed room, else `xmpp.muc.roster`.
fn occupant_presence(
    st: &Stanza,
    room: &str,
    nick: Option<&str>,
    unavailable: bool,
    out: &mut Outs,
) {
    let mut o = Obj::new();
    o.insert("room".into(), room.into());
    let x = st.child(0, "x", NS_MUC_USER);
    if let Some(d) = x.and_then(|x| st.child(x, "destroy", NS_MUC_USER)) {
        put(&mut o, "reason", child_text(st, d, "reason", NS_MUC_USER));
        put(&mut o, "alternative", attr(st, d, "jid"));
        return event(out, "xmpp.muc.destroy", o);
    }
    let Some(nick) = nick else { return };
    o.insert("nick".into(), nick.into());
    let item = x.and_then(|x| st.child(x, "item", NS_MUC_USER));
    if let Some(item) = item {
        put(&mut o, "role", attr(st, item, "role"));
        put(&mut o, "affiliation", attr(st, item, "affiliation"));
        if let Some(jid) = attr(st, item, "jid") {
            o.insert("jid".into(), jid_object(&jid));
        }
    }
    let codes: Vec<u64> = x
        .map(|x| {
            kids(st, x, "status", NS_MUC_USER)
                .filter_map(|s| attr(st, s, "code")?.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let new_nick = item
        .and_then(|i| attr(st, i, "nick"))
        .filter(|_| unavailable && codes.contains(&303));
    let mut own = None;
    if let Some(new_nick) = new_nick {
        // §7.6, as the original gateway renders it: the new nick as `nick`, the codes
        // (303, and 110 for one's own) as `status`; the old nick beside it.
        o.insert("nick".into(), new_nick.into());
        o.insert("oldNick".into(), nick.into());
        o.insert("status".into(), codes.into());
    } else if unavailable {
        o.insert("status".into(), "unavailable".into());
        if !codes.is_empty() {
            o.insert("codes".into(), codes.into());
        }
    } else {
        // The session's own presence: what `xmpp.muc.create` waits for.
        own = codes.contains(&110).then(|| Out::InRoom {
            room: room.to_string(),
            created: codes.contains(&201),
        });
        o.insert("status".into(), codes.into());
    }
    event(out, "xmpp.muc.roster", o);
    out.extend(own);
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// `xmpp.muc.join`: presence to `room/nick`, with the password and history wanted. In a
/// room the session is in under another nick, the room takes it as a nick change (§7.6),
/// as the original gateway has it.
pub(in super::super) fn join(e: &Event) -> R<Request> {
    enter(e.obj()?, e, false)
}

/// `xmpp.muc.create`: a join, which creates the room (status 201); with `instant: true`
/// the session submits the empty configuration form when the 201 arrives (§10.1.2), else
/// a locked room waits for `xmpp.muc.room.config.set` or `xmpp.muc.cancel` (§10.1.3).
pub(in super::super) fn create(e: &Event) -> R<Request> {
    let m = e.obj()?;
    let instant = match m.get("instant") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return invalid("instant"),
    };
    enter(m, e, instant)
}

/// The join presence (§7.2.1) to `room/nick` of payload `m`, with its `password` and
/// `history`; the session's room map notes the nick and `instant`.
fn enter(m: &Obj, e: &Event, instant: bool) -> R<Request> {
    let room = room(m, e.ctx)?;
    let to = occupant(&room, &req_str(m, "nick")?)?;
    let mut inner = opt_text("password", opt_str(m, "password")?.as_deref());
    if let Some(h) = opt_obj(m, "history")? {
        let mut attrs = vec![];
        for k in ["maxchars", "maxstanzas", "seconds"] {
            attrs.push((k, opt_int(h, k, 0..=i64::MAX)?.map(|n| n.to_string())));
        }
        attrs.push(("since", opt_str(h, "since")?));
        if attrs.iter().any(|(_, v)| v.is_some()) {
            let attrs: Vec<_> = attrs.iter().map(|(k, v)| (*k, v.as_deref())).collect();
            inner += &el("history", &attrs, "");
        }
    }
    let x = el("x", &[("xmlns", Some(NS_MUC))], &inner);
    let mut r = send(
        el("presence", &[XMLNS, ("to", Some(to.as_str()))], &x),
        None,
    );
    r.room = Some(RoomChange::Joined {
        room: room.as_str().to_string(),
        nick: to.resource().unwrap_or_default().to_string(),
        instant,
    });
    Ok(r)
}

/// `xmpp.muc.leave`: unavailable presence to the nick this session joined with.
pub(in super::super) fn leave(e: &Event) -> R<Request> {
    let m = e.obj()?;
    let room = room(m, e.ctx)?;
    let inner = opt_text("status", opt_str(m, "reason")?.as_deref());
    let Some(nick) = (e.nick_in)(room.as_str()) else {
        return client("Not in room");
    };
    let to = occupant(&room, &nick)?;
    let attrs = [
        XMLNS,
        ("type", Some("unavailable")),
        ("to", Some(to.as_str())),
    ];
    let mut r = send(el("presence", &attrs, &inner), None);
    r.room = Some(RoomChange::Left(room.as_str().to_string()));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::super::super::render::Out;
    use super::super::super::testing::*;
    use super::NS_MUC;
    use serde_json::json;

    #[test]
    fn muc_roster() {
        // XEP-0045 example 24 (self-presence).
        let xml = "<presence from='coven@conference.localhost/thirdwitch' id='n13mt3l' \
            to='alice@localhost/web'><x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='member' jid='alice@localhost/web' role='participant'/>\
            <status code='100'/><status code='110'/><status code='210'/></x></presence>";
        assert_eq!(
            deliver(xml),
            vec![
                ev(
                    "xmpp.muc.roster",
                    json!({
                        "room": "coven@conference.localhost", "nick": "thirdwitch",
                        "role": "participant", "affiliation": "member",
                        "jid": {"user": "alice", "domain": "localhost", "resource": "web"},
                        "status": [100, 110, 210],
                    })
                ),
                Out::InRoom {
                    room: "coven@conference.localhost".into(),
                    created: false
                },
            ]
        );
        // XEP-0045 example 153: the room was created (201) and waits for its owner.
        let xml = "<presence from='coven@conference.localhost/firstwitch' to='alice@localhost/web'>\
            <x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='owner' role='moderator'/>\
            <status code='110'/><status code='201'/></x></presence>";
        assert_eq!(
            deliver(xml),
            vec![
                ev(
                    "xmpp.muc.roster",
                    json!({
                        "room": "coven@conference.localhost", "nick": "firstwitch",
                        "role": "moderator", "affiliation": "owner", "status": [110, 201],
                    })
                ),
                Out::InRoom {
                    room: "coven@conference.localhost".into(),
                    created: true
                },
            ]
        );
        // Another occupant's 201 is no news about the session's own rooms.
        let xml = "<presence from='coven@conference.localhost/firstwitch'>\
            <x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='owner' role='moderator'/><status code='201'/></x></presence>";
        assert_eq!(deliver(xml).len(), 1);
        let xml = "<presence from='coven@conference.localhost/firstwitch'>\
            <x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='owner' role='moderator'/></x></presence>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.roster",
                json!({
                    "room": "coven@conference.localhost", "nick": "firstwitch",
                    "role": "moderator", "affiliation": "owner", "status": [],
                })
            )]
        );
    }

    #[test]
    fn muc_roster_unavailable_and_nick_change() {
        // XEP-0045 example 84 (nick change) and an ordinary leave.
        let xml = "<presence from='coven@conference.localhost/thirdwitch' to='alice@localhost/web' \
            type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='member' jid='hag66@shakespeare.lit/pda' nick='oldhag' role='participant'/>\
            <status code='303'/></x></presence>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.roster",
                json!({
                    "room": "coven@conference.localhost", "nick": "thirdwitch",
                    "role": "participant", "affiliation": "member",
                    "jid": {"user": "hag66", "domain": "shakespeare.lit", "resource": "pda"},
                    "nick": "oldhag", "oldNick": "thirdwitch", "status": [303],
                })
            )]
        );
        // The changer's own copy (example 84 with 110), then its new presence (example 85).
        let xml = "<presence from='coven@conference.localhost/thirdwitch' to='alice@localhost/web' \
            type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='member' nick='A &amp; &apos;b&apos;' role='participant'/>\
            <status code='303'/><status code='110'/></x></presence>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.roster",
                json!({
                    "room": "coven@conference.localhost", "nick": "A & 'b'",
                    "oldNick": "thirdwitch", "role": "participant", "affiliation": "member",
                    "status": [303, 110],
                })
            )]
        );
        // 303 without the new nick (a broken room) is an ordinary leave.
        let xml = "<presence from='coven@conference.localhost/thirdwitch' type='unavailable'>\
            <x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='none' role='none'/><status code='303'/></x></presence>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.roster",
                json!({
                    "room": "coven@conference.localhost", "nick": "thirdwitch",
                    "role": "none", "affiliation": "none", "status": "unavailable",
                    "codes": [303],
                })
            )]
        );
        let xml = "<presence from='coven@conference.localhost/secondwitch' type='unavailable'>\
            <x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='none' role='none'/></x></presence>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.roster",
                json!({
                    "room": "coven@conference.localhost", "nick": "secondwitch",
                    "role": "none", "affiliation": "none", "status": "unavailable",
                })
            )]
        );
    }

    #[test]
    fn muc_destroy_and_presence_error() {
        // XEP-0045 examples 203 and 28.
        let xml = "<presence from='heath@conference.localhost/firstwitch' to='alice@localhost/web' \
            type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='none' role='none'/>\
            <destroy jid='coven@conference.localhost'><reason>Macbeth doth come.</reason></destroy>\
            </x></presence>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.destroy",
                json!({
                    "room": "heath@conference.localhost",
                    "reason": "Macbeth doth come.",
                    "alternative": "coven@conference.localhost",
                })
            )]
        );
        let xml = "<presence from='coven@conference.localhost/thirdwitch' id='273hs51g' \
            to='alice@localhost/web' type='error'><x xmlns='http://jabber.org/protocol/muc'/>\
            <error by='coven@conference.localhost' type='cancel'>\
            <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.error",
                json!({
                    "type": "presence", "room": "coven@conference.localhost",
                    "error": {"type": "cancel", "condition": "conflict"},
                })
            )]
        );
    }

    #[test]
    fn muc_presence() {
        let (x, t, i) = one(
            "xmpp.muc.join",
            json!({"room": "group-x", "nick": "A'<&", "password": "p&w", "history": {"maxstanzas": 20, "since": "1970-01-01T00:00:00Z"}}),
        );
        assert_eq!(
            x,
            format!(
                "<presence {C} to='group-x@conference.localhost/A&apos;&lt;&amp;'><x xmlns='{NS_MUC}'>\
                 <password>p&amp;w</password><history maxstanzas='20' since='1970-01-01T00:00:00Z'/></x></presence>"
            )
        );
        assert_eq!((t, i), (None, None));
        assert_eq!(
            xml(
                "xmpp.muc.join",
                json!({"room": "Group-X@conference.localhost", "nick": "al"})
            ),
            format!(
                "<presence {C} to='group-x@conference.localhost/al'><x xmlns='{NS_MUC}'/></presence>"
            )
        );
        assert_eq!(
            xml(
                "xmpp.muc.leave",
                json!({"room": "group-x@conference.localhost", "reason": "bye & <go>"})
            ),
            format!(
                "<presence {C} type='unavailable' to='group-x@conference.localhost/Al&apos;&lt;&amp;'>\
                 <status>bye &amp; &lt;go&gt;</status></presence>"
            )
        );
        assert_eq!(
            xml("xmpp.muc.leave", json!({"room": "group-x"})),
            format!(
                "<presence {C} type='unavailable' to='group-x@conference.localhost/Al&apos;&lt;&amp;'/>"
            )
        );
    }

    #[test]
    fn muc_create_and_nick_change() {
        use super::super::super::request::RoomChange;
        let r = emit(
            "xmpp.muc.create",
            json!({"room": "new", "nick": "al", "instant": true}),
            false,
        )
        .unwrap();
        assert_eq!(
            r.stanzas,
            vec![format!(
                "<presence {C} to='new@conference.localhost/al'><x xmlns='{NS_MUC}'/></presence>"
            )]
        );
        assert_eq!((r.track, r.immediate), (None, None));
        assert_eq!(
            r.room,
            Some(RoomChange::Joined {
                room: "new@conference.localhost".into(),
                nick: "al".into(),
                instant: true
            })
        );
        for instant in [json!(false), json!(null)] {
            let r = emit(
                "xmpp.muc.create",
                json!({"room": "new", "nick": "al", "instant": instant}),
                true,
            )
            .unwrap();
            assert!(
                matches!(r.room, Some(RoomChange::Joined { instant: false, .. })),
                "{r:?}"
            );
        }
        // §7.6: a join with another nick in a room the session is in changes its nick.
        let r = emit(
            "xmpp.muc.join",
            json!({"room": "group-x", "nick": "B'"}),
            false,
        )
        .unwrap();
        assert_eq!(
            r.stanzas,
            vec![format!(
                "<presence {C} to='group-x@conference.localhost/B&apos;'><x xmlns='{NS_MUC}'/></presence>"
            )]
        );
        assert_eq!(
            r.room,
            Some(RoomChange::Joined {
                room: "group-x@conference.localhost".into(),
                nick: "B'".into(),
                instant: false
            })
        );
        let e = |p| err("xmpp.muc.create", p, false);
        assert_eq!(e(json!({"nick": "n"})), "Missing 'room' key");
        assert_eq!(e(json!({"room": "r"})), "Missing 'nick' key");
        assert_eq!(
            e(json!({"room": "r", "nick": "n", "instant": "yes"})),
            "Invalid 'instant' value"
        );
        assert_eq!(e(json!({"room": "r@", "nick": "n"})), "Invalid JID");
        assert_eq!(e(json!([])), "Message not an object");
    }

    #[test]
    fn muc_presence_errors() {
        assert_eq!(
            err("xmpp.muc.join", json!("r"), false),
            "Message not an object"
        );
        assert_eq!(
            err("xmpp.muc.join", json!({"nick": "n"}), false),
            "Missing 'room' key"
        );
        assert_eq!(
            err("xmpp.muc.join", json!({"room": "r"}), false),
            "Missing 'nick' key"
        );
        assert_eq!(
            err("xmpp.muc.join", json!({"room": "a b", "nick": "n"}), false),
            "Invalid JID"
        );
        assert_eq!(
            err(
                "xmpp.muc.join",
                json!({"room": {"domain": "conference.localhost"}, "nick": "n"}),
                false
            ),
            "Invalid JID"
        );
        assert_eq!(
            err("xmpp.muc.join", json!({"room": "r", "nick": " n"}), false),
            "Invalid JID"
        );
        assert_eq!(
            err(
                "xmpp.muc.join",
                json!({"room": "r", "nick": "n", "history": 5}),
                false
            ),
            "Invalid 'history' value"
        );
        assert_eq!(
            err(
                "xmpp.muc.join",
                json!({"room": "r", "nick": "n", "history": {"seconds": -1}}),
                false
            ),
            "Invalid 'seconds' value"
        );
        assert_eq!(
            err("xmpp.muc.leave", json!({"room": "other"}), false),
            "Not in room"
        );
        assert_eq!(
            err(
                "xmpp.muc.message",
                json!({"room": "other", "content": "x"}),
                true
            ),
            "Not in room"
        );
        assert_eq!(
            err(
                "xmpp.muc.message",
                json!({"room": "other", "content": "x", "to": "n"}),
                false
            ),
            "Not in room"
        );
        assert_eq!(
            err("xmpp.muc.leave", json!({}), false),
            "Missing 'room' key"
        );
    }
}
