//! Voice requests, both ways.
//!
//! - Rendered: `xmpp.muc.voice` for a moderator, when the room passes on an occupant's
//!   request for voice (its approval form): `{room, nick, jid?, role}`. The moderator
//!   grants voice with `xmpp.muc.role.set` (`role: "participant"`). The original gateway had
//!   no such event (the form rendered as an empty `xmpp.muc.message`).
//! - Requested: `xmpp.muc.voice` (`role`, normally `participant`): the request form to
//!   the room; no callback result.
//!
//! XEP-0045 §7.13 (requesting voice, example 79), §8.6 (approving it, example 108).

use super::super::common::{
    Obj, Outs, R, attr, child_text, el, event, kids, message, req_enum, send, text,
};
use super::super::jid_object;
use super::super::request::{Event, Request};
use super::admin::ROLES;
use super::room;
use crate::xml::ns::DATA as NS_DATA;
use crate::xml::ns::MUC_REQUEST;
use crate::xml::stanza::Stanza;

// ---------------------------------------------------------------------------------------
// Stanza → events

/// A message from the room itself (`room`, no nick) carrying a `muc#request` form: an
/// occupant's request for voice, shown to a moderator. Returns whether it was one.
pub(in super::super) fn render_request(st: &Stanza, room: &str, out: &mut Outs) -> bool {
    let Some(x) = st.child(0, "x", NS_DATA) else {
        return false;
    };
    let mut form_type = None;
    let mut o = Obj::new();
    o.insert("room".into(), room.into());
    for f in kids(st, x, "field", NS_DATA) {
        let Some(value) = child_text(st, f, "value", NS_DATA) else {
            continue;
        };
        let value = value.trim();
        match attr(st, f, "var").as_deref() {
            Some("FORM_TYPE") => form_type = Some(value.to_string()),
            Some("muc#roomnick") => {
                o.insert("nick".into(), value.into());
            }
            Some("muc#jid") if !value.is_empty() => {
                o.insert("jid".into(), jid_object(value));
            }
            Some("muc#role") => {
                o.insert("role".into(), value.into());
            }
            _ => {}
        }
    }
    if form_type.as_deref() != Some(MUC_REQUEST) || !o.contains_key("nick") {
        return false;
    }
    event(out, "xmpp.muc.voice", o);
    true
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// `xmpp.muc.voice`: the request form of example 79, for `role`.
pub(in super::super) fn request(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let room = room(m, e.ctx)?;
    let role = req_enum(m, "role", ROLES)?;
    let form_type = el(
        "field",
        &[("var", Some("FORM_TYPE"))],
        &text("value", MUC_REQUEST),
    );
    let role = el(
        "field",
        &[
            ("var", Some("muc#role")),
            ("type", Some("list-single")),
            ("label", Some("Requested role")),
        ],
        &text("value", role),
    );
    let x = el(
        "x",
        &[("xmlns", Some(NS_DATA)), ("type", Some("submit"))],
        &(form_type + &role),
    );
    Ok(send(message(None, room.as_str(), &x, new_id).1, None))
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::*;
    use serde_json::json;

    /// XEP-0045 example 108, as the room sends it to a moderator.
    const APPROVAL: &str = "<message xmlns='jabber:client' to='alice@localhost/web' \
        from='coven@conference.localhost'><x xmlns='jabber:x:data' type='form'>\
        <title>Voice request</title><instructions>To approve this request…</instructions>\
        <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#request</value></field>\
        <field var='muc#role' type='list-single' label='Requested role'><value>participant</value></field>\
        <field var='muc#jid' type='jid-single' label='User ID'><value>hag66@shakespeare.lit/pda</value></field>\
        <field var='muc#roomnick' type='text-single' label='Room Nickname'><value>third &amp; &apos;witch&apos;</value></field>\
        <field var='muc#request_allow' type='boolean' label='Grant voice to this person?'><value>false</value></field>\
        </x></message>";

    #[test]
    fn voice_request_reaches_a_moderator() {
        assert_eq!(
            deliver(APPROVAL),
            vec![ev(
                "xmpp.muc.voice",
                json!({
                    "room": "coven@conference.localhost", "nick": "third & 'witch'",
                    "role": "participant",
                    "jid": {"user": "hag66", "domain": "shakespeare.lit", "resource": "pda"},
                })
            )]
        );
        // Without the real JID (a room that hides it), still shown.
        let anon = APPROVAL.replace("hag66@shakespeare.lit/pda", "");
        assert_eq!(
            deliver(&anon),
            vec![ev(
                "xmpp.muc.voice",
                json!({"room": "coven@conference.localhost", "nick": "third & 'witch'", "role": "participant"})
            )]
        );
        // Another form, a form without a nick, a form from an occupant or as groupchat:
        // not a voice request.
        for xml in [
            APPROVAL.replace("muc#request<", "muc#register<"),
            APPROVAL.replace("var='muc#roomnick'", "var='other'"),
            APPROVAL.replace(
                "from='coven@conference.localhost'",
                "from='coven@conference.localhost/bob'",
            ),
            APPROVAL.replace("<message ", "<message type='groupchat' "),
        ] {
            assert!(
                deliver(&xml).iter().all(|o| !matches!(
                    o,
                    super::super::super::render::Out::Event {
                        name: "xmpp.muc.voice",
                        ..
                    }
                )),
                "{xml}"
            );
        }
    }

    #[test]
    fn voice_request_form() {
        // XEP-0045 example 79.
        let (x, t, i) = one(
            "xmpp.muc.voice",
            json!({"room": "group-x", "role": "participant"}),
        );
        assert_eq!(
            x,
            format!(
                "<message {C} to='group-x@conference.localhost' id='id1'>\
                 <x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>\
                 <field var='muc#role' type='list-single' label='Requested role'><value>participant</value></field>\
                 </x></message>"
            )
        );
        assert_eq!((t, i), (None, None));
        // No callback needed, as in the original gateway.
        assert!(
            emit(
                "xmpp.muc.voice",
                json!({"room": "r", "role": "participant"}),
                false
            )
            .is_ok()
        );
        let e = |p| err("xmpp.muc.voice", p, false);
        assert_eq!(e(json!({"role": "participant"})), "Missing 'room' key");
        assert_eq!(e(json!({"room": "r"})), "Missing 'role' key");
        assert_eq!(
            e(json!({"room": "r", "role": "boss"})),
            "Invalid 'role' value"
        );
        assert_eq!(e(json!(7)), "Message not an object");
    }
}
