//! What is said in rooms, both ways.
//!
//! - Rendered: `xmpp.muc.message` (groupchat, or `private: true` from one occupant;
//!   `content`, `state`, `delay`, `id`, `archived`), `xmpp.muc.subject` (`false` when
//!   cleared), `xmpp.muc.invite`, `xmpp.muc.invite.decline`, `xmpp.muc.error`
//!   (`type: "message"`). Status-code notices render nothing.
//! - Requested: `xmpp.muc.message` (to the room, or `to` one occupant; answers `{id}`),
//!   `xmpp.muc.subject`, `xmpp.muc.invite`, `xmpp.muc.invite.decline`. Only an occupant
//!   may send messages.
//!
//! XEP-0045 §7.4 (room messages), §7.5 (private messages), §7.8.2 (mediated invitations), §8.1
//! (subject); chat states, delay and stanza ids as in `chat.rs`.

use super::super::chat::{archived, body_and_state, content_and_state, delay};
use super::super::common::{
    Obj, Outs, R, attr, child_text, client, el, error_object, event, message, message_with_id,
    opt_str, own, put, req_jid, send, text,
};
use super::super::jid_object;
use super::super::request::{Event, Request};
use super::{occupant, reason, room};
use crate::xml::ns::MUC_USER as NS_MUC_USER;
use crate::xml::stanza::Stanza;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Stanza → events

/// A message of type `ty` from `room` or its occupant `nick`.
pub(in super::super) fn render(
    st: &Stanza,
    ty: &str,
    room: &str,
    nick: Option<&str>,
    out: &mut Outs,
) {
    let mut o = Obj::new();
    o.insert("room".into(), room.into());
    if ty == "error" {
        o.insert("type".into(), "message".into());
        o.insert("error".into(), error_object(st, 0));
        put(&mut o, "content", own(st, 0, "body").map(|b| st.text(b)));
        return event(out, "xmpp.muc.error", o);
    }
    if let Some(x) = st.child(0, "x", NS_MUC_USER) {
        for (local, name) in [
            ("invite", "xmpp.muc.invite"),
            ("decline", "xmpp.muc.invite.decline"),
        ] {
            let Some(inv) = st.child(x, local, NS_MUC_USER) else {
                continue;
            };
            if let Some(from) = attr(st, inv, "from") {
                o.insert("from".into(), jid_object(&from));
            }
            put(&mut o, "reason", child_text(st, inv, "reason", NS_MUC_USER));
            if local == "invite" {
                put(
                    &mut o,
                    "password",
                    child_text(st, x, "password", NS_MUC_USER),
                );
            }
            return event(out, name, o);
        }
        // XEP-0045 §10.2.1: the room's configuration changed (104; 172/173: real JIDs
        // now shown to all, or not): `xmpp.muc.room.config` with the status codes.
        let codes: Vec<Value> = st
            .children(x)
            .filter(|&c| st.elems[c].local == "status")
            .filter_map(|c| attr(st, c, "code")?.parse::<u16>().ok())
            .map(Value::from)
            .collect();
        if nick.is_none() && !codes.is_empty() && own(st, 0, "body").is_none() {
            o.insert("status".into(), Value::Array(codes));
            return event(out, "xmpp.muc.room.config", o);
        }
    }
    if nick.is_none() && ty != "groupchat" && super::voice::render_request(st, room, out) {
        return;
    }
    let body = own(st, 0, "body");
    match ty {
        "groupchat" => {
            if body.is_none()
                && let Some(s) = own(st, 0, "subject")
            {
                let subject = st.text(s);
                let subject = if subject.is_empty() {
                    Value::Bool(false)
                } else {
                    subject.into()
                };
                o.insert("subject".into(), subject);
                return event(out, "xmpp.muc.subject", o);
            }
            put(&mut o, "nick", nick);
            o.insert("private".into(), false.into());
            content_and_state(st, 0, &mut o);
            if body.is_none() && (nick.is_none() || !o.contains_key("state")) {
                return;
            }
            put(&mut o, "delay", delay(st, 0));
            put(&mut o, "id", attr(st, 0, "id"));
            put(&mut o, "archived", archived(st, 0));
            event(out, "xmpp.muc.message", o);
        }
        "chat" => {
            put(&mut o, "nick", nick);
            o.insert("private".into(), true.into());
            content_and_state(st, 0, &mut o);
            if !o.contains_key("content") && !o.contains_key("state") {
                return;
            }
            put(&mut o, "delay", delay(st, 0));
            event(out, "xmpp.muc.message", o);
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// `xmpp.muc.message`: groupchat to the room, or private (`to`: a nick); answers `{id}`.
pub(in super::super) fn send_message(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let room = room(m, e.ctx)?;
    // Only an occupant speaks in a room or to its occupants (XEP-0045 §7.4, §7.5).
    if (e.nick_in)(room.as_str()).is_none() {
        return client("Not in room");
    }
    let mut inner = body_and_state(m)?;
    Ok(match opt_str(m, "to")? {
        Some(nick) => {
            let to = occupant(&room, &nick)?;
            inner += &el("x", &[("xmlns", Some(NS_MUC_USER))], "");
            message_with_id("chat", to.as_str(), &inner, new_id)
        }
        None => message_with_id("groupchat", room.as_str(), &inner, new_id),
    })
}

/// `xmpp.muc.subject`: an absent subject clears it.
pub(in super::super) fn subject(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let room = room(m, e.ctx)?;
    let subject = text("subject", &opt_str(m, "subject")?.unwrap_or_default());
    Ok(send(
        message(Some("groupchat"), room.as_str(), &subject, new_id).1,
        None,
    ))
}

/// `xmpp.muc.invite` and `xmpp.muc.invite.decline`, mediated by the room.
pub(in super::super) fn invite(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let room = room(m, e.ctx)?;
    let to = req_jid(m, "to")?;
    let name = if e.name == "muc.invite" {
        "invite"
    } else {
        "decline"
    };
    let inner = el(name, &[("to", Some(to.as_str()))], &reason(m)?);
    let x = el("x", &[("xmlns", Some(NS_MUC_USER))], &inner);
    Ok(send(message(None, room.as_str(), &x, new_id).1, None))
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::*;
    use super::NS_MUC_USER;
    use serde_json::json;

    #[test]
    fn room_configuration_change() {
        // XEP-0045 §10.2.1 example 172, with 172 (now non-anonymous).
        let xml = "<message from='coven@conference.localhost' to='alice@localhost/web' type='groupchat'>\
            <x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/><status code='172'/></x></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.room.config",
                json!({"room": "coven@conference.localhost", "status": [104, 172]})
            )]
        );
    }

    #[test]
    fn muc_subject() {
        // XEP-0045 examples 40 and 190.
        let xml = "<message from='coven@conference.localhost/wiccarocks' to='alice@localhost/web' \
            type='groupchat' id='5BCE07C5'><subject>Fire Burn and Cauldron Bubble!</subject></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.subject",
                json!({
                    "room": "coven@conference.localhost",
                    "subject": "Fire Burn and Cauldron Bubble!",
                })
            )]
        );
        let xml =
            "<message from='coven@conference.localhost' type='groupchat'><subject/></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.subject",
                json!({"room": "coven@conference.localhost", "subject": false})
            )]
        );
    }

    #[test]
    fn muc_groupchat_message() {
        // XEP-0045 example 48, a history message (example 34) and a room message.
        let xml = "<message xmlns='jabber:client' from='coven@conference.localhost/thirdwitch' \
            id='hysf1v37' to='alice@localhost/web' type='groupchat'>\
            <body>Harpier cries: &apos;tis time, &apos;tis time.</body>\
            <stanza-id xmlns='urn:xmpp:sid:0' by='coven@conference.localhost' id='arch-1'/></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.message",
                json!({
                    "room": "coven@conference.localhost", "nick": "thirdwitch", "private": false,
                    "content": "Harpier cries: 'tis time, 'tis time.", "id": "hysf1v37",
                    "archived": [{"by": {"user": "coven", "domain": "conference.localhost"}, "id": "arch-1"}],
                })
            )]
        );
        let xml = "<message from='coven@conference.localhost/firstwitch' type='groupchat'>\
            <body>Thrice the brinded cat hath mew'd.</body><subject>ignored</subject>\
            <delay xmlns='urn:xmpp:delay' from='coven@conference.localhost' stamp='2002-10-13T23:58:37Z'/>\
            </message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.message",
                json!({
                    "room": "coven@conference.localhost", "nick": "firstwitch", "private": false,
                    "content": "Thrice the brinded cat hath mew'd.",
                    "delay": {"when": "2002-10-13T23:58:37Z", "from": "coven@conference.localhost"},
                })
            )]
        );
        let xml = "<message from='coven@conference.localhost' type='groupchat'>\
            <body>Room is now logged.</body></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.message",
                json!({
                    "room": "coven@conference.localhost", "private": false,
                    "content": "Room is now logged.",
                })
            )]
        );
        let xml = "<message from='coven@conference.localhost/secondwitch' type='groupchat'>\
            <composing xmlns='http://jabber.org/protocol/chatstates'/></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.message",
                json!({
                    "room": "coven@conference.localhost", "nick": "secondwitch", "private": false,
                    "state": "composing",
                })
            )]
        );
        // A status-code notification (XEP-0045 example 89) is no message: it is the
        // configuration change of `xmpp.muc.room.config`.
        let xml = "<message from='coven@conference.localhost' type='groupchat'>\
            <x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.room.config",
                json!({"room": "coven@conference.localhost", "status": [104]})
            )]
        );
    }

    #[test]
    fn muc_private_message() {
        // XEP-0045 example 51.
        let xml = "<message from='coven@conference.localhost/wiccarocks' to='alice@localhost/web' \
            type='chat' id='p1'><body>I&apos;ll give thee a wind.</body>\
            <active xmlns='http://jabber.org/protocol/chatstates'/>\
            <x xmlns='http://jabber.org/protocol/muc#user'/></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.message",
                json!({
                    "room": "coven@conference.localhost", "nick": "wiccarocks", "private": true,
                    "content": "I'll give thee a wind.", "state": "active",
                })
            )]
        );
    }

    #[test]
    fn muc_message_error() {
        // XEP-0045 example 53.
        let xml = "<message from='coven@conference.localhost' to='alice@localhost/web' type='error' id='e1'>\
            <body>I&apos;ll give thee a wind.</body>\
            <error by='coven@conference.localhost' type='modify'>\
            <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.error",
                json!({
                    "type": "message", "room": "coven@conference.localhost",
                    "error": {"type": "modify", "condition": "not-acceptable"},
                    "content": "I'll give thee a wind.",
                })
            )]
        );
    }

    #[test]
    fn muc_invite_and_decline() {
        // XEP-0045 examples 57 and 60.
        let xml = "<message from='coven@conference.localhost' id='nzd143v8' to='alice@localhost'>\
            <x xmlns='http://jabber.org/protocol/muc#user'>\
            <invite from='crone1@shakespeare.lit/desktop'>\
            <reason>Hey Hecate, this is the place for all good witches!</reason></invite>\
            <password>cauldronburn</password></x></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.invite",
                json!({
                    "room": "coven@conference.localhost",
                    "from": {"user": "crone1", "domain": "shakespeare.lit", "resource": "desktop"},
                    "reason": "Hey Hecate, this is the place for all good witches!",
                    "password": "cauldronburn",
                })
            )]
        );
        let xml = "<message from='coven@conference.localhost' id='jk2vs61v' to='alice@localhost/web'>\
            <x xmlns='http://jabber.org/protocol/muc#user'><decline from='hecate@shakespeare.lit'>\
            <reason>Sorry, I&apos;m too busy right now.</reason></decline></x></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.invite.decline",
                json!({
                    "room": "coven@conference.localhost",
                    "from": {"user": "hecate", "domain": "shakespeare.lit"},
                    "reason": "Sorry, I'm too busy right now.",
                })
            )]
        );
    }

    #[test]
    fn muc_messages() {
        let (x, t, i) = one(
            "xmpp.muc.message",
            json!({"room": "group-x", "content": "a<b"}),
        );
        assert_eq!(
            x,
            format!(
                "<message {C} type='groupchat' to='group-x@conference.localhost' id='id1'><body>a&lt;b</body></message>"
            )
        );
        assert_eq!((t, i), (None, Some(json!({"id": "id1"}))));
        assert_eq!(
            xml(
                "xmpp.muc.message",
                json!({"room": "group-x", "state": "paused", "to": "B'b"})
            ),
            format!(
                "<message {C} type='chat' to='group-x@conference.localhost/B&apos;b' id='id1'>\
                 <paused xmlns='http://jabber.org/protocol/chatstates'/><x xmlns='{NS_MUC_USER}'/></message>"
            )
        );
        assert_eq!(
            xml(
                "xmpp.muc.subject",
                json!({"room": "group-x", "subject": "s&t"})
            ),
            format!(
                "<message {C} type='groupchat' to='group-x@conference.localhost' id='id1'><subject>s&amp;t</subject></message>"
            )
        );
        assert_eq!(
            xml("xmpp.muc.subject", json!({"room": "group-x"})),
            format!(
                "<message {C} type='groupchat' to='group-x@conference.localhost' id='id1'><subject/></message>"
            )
        );
        assert_eq!(
            xml(
                "xmpp.muc.invite",
                json!({"room": "group-x", "to": "bob@localhost", "reason": "<come>"})
            ),
            format!(
                "<message {C} to='group-x@conference.localhost' id='id1'><x xmlns='{NS_MUC_USER}'>\
                 <invite to='bob@localhost'><reason>&lt;come&gt;</reason></invite></x></message>"
            )
        );
        assert_eq!(
            xml(
                "xmpp.muc.invite.decline",
                json!({"room": "group-x", "to": "bob@localhost"})
            ),
            format!(
                "<message {C} to='group-x@conference.localhost' id='id1'><x xmlns='{NS_MUC_USER}'>\
                 <decline to='bob@localhost'/></x></message>"
            )
        );
        assert_eq!(
            err("xmpp.muc.message", json!({"room": "group-x"}), false),
            "Message content or chat state not provided"
        );
        assert_eq!(
            err(
                "xmpp.muc.message",
                json!({"room": "group-x", "content": "x", "to": ""}),
                false
            ),
            "Invalid JID"
        );
        assert_eq!(
            err("xmpp.muc.invite", json!({"room": "g"}), false),
            "Missing 'to' key"
        );
        assert_eq!(
            err(
                "xmpp.muc.invite.decline",
                json!({"room": "g", "to": "x@"}),
                false
            ),
            "Invalid JID"
        );
        assert_eq!(
            err("xmpp.muc.subject", json!(null), false),
            "Message not an object"
        );
    }
}
