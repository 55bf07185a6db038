//! Registering with a room and one's reserved nick, both ways.
//!
//! - Rendered: the callback of `xmpp.muc.register.info`, `{registered: true, nick}` for a
//!   user already registered, else `{instructions?, title?, form}` (the form as
//!   `forms.rs` renders it); the callback of `xmpp.muc.room.nick`, `{nick}`, or the error
//!   `item-not-found` when the user reserved none.
//! - Requested: `xmpp.muc.register.info`, `xmpp.muc.register` (`form`, the `muc#register`
//!   fields; answers `true`) and `xmpp.muc.room.nick`; all need a callback.
//!
//! XEP-0045 §7.10 (registering with a room), §7.12 (discovering one's reserved nick);
//! XEP-0077 (in-band registration, the query), XEP-0004 (data forms).

use super::super::Pending;
use super::super::common::{Obj, R, child_text, el, iq, put};
use super::super::forms::{data_form, submit_form, submitted_fields};
use super::super::request::{Event, Request};
use super::room;
use crate::xml::ns::DATA as NS_DATA;
use crate::xml::ns::DISCO_INFO as NS_DISCO_INFO;
use crate::xml::ns::MUC_REGISTER;
use crate::xml::ns::REGISTER as NS_REGISTER;
use crate::xml::stanza::Stanza;
use serde_json::{Value, json};

/// The disco#info node of one's reserved nick (§7.12).
const X_ROOMUSER_ITEM: &str = "x-roomuser-item";

// ---------------------------------------------------------------------------------------
// Stanza → events

/// The callback's result of a registration get (§7.10 examples 69, 70).
pub(in super::super) fn info_result(st: &Stanza) -> Value {
    let mut o = Obj::new();
    let Some(q) = st.child(0, "query", NS_REGISTER) else {
        return json!({ "form": { "fields": [] } });
    };
    if st.child(q, "registered", NS_REGISTER).is_some() {
        o.insert("registered".into(), true.into());
        put(&mut o, "nick", child_text(st, q, "username", NS_REGISTER));
        return Value::Object(o);
    }
    put(&mut o, "title", child_text(st, q, "title", NS_REGISTER));
    put(
        &mut o,
        "instructions",
        child_text(st, q, "instructions", NS_REGISTER),
    );
    let form = st
        .child(q, "x", NS_DATA)
        .map_or_else(|| json!({ "fields": [] }), |x| data_form(st, x));
    o.insert("form".into(), form);
    Value::Object(o)
}

/// The callback's arguments for the reserved-nick query (§7.12 examples 77, 78): the
/// identity's name, or `item-not-found` without one.
pub(in super::super) fn nick_result(st: &Stanza) -> Vec<Value> {
    let name = st
        .child(0, "query", NS_DISCO_INFO)
        .and_then(|q| st.child(q, "identity", NS_DISCO_INFO))
        .and_then(|i| st.attr(i, "name"))
        .map(|a| a.value());
    match name {
        Some(nick) => vec![Value::Null, json!({ "nick": nick })],
        None => vec![json!({ "type": "cancel", "condition": "item-not-found" })],
    }
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// `xmpp.muc.register.info` (the form, or that the user is registered) and
/// `xmpp.muc.register` (`form` submitted as `muc#register`).
pub(in super::super) fn register(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let room = room(m, e.ctx)?;
    let ns = [("xmlns", Some(NS_REGISTER))];
    if e.name == "muc.register.info" {
        let query = el("query", &ns, "");
        return Ok(iq(
            "get",
            Some(room.as_str()),
            &query,
            Pending::RoomRegister,
            new_id,
        ));
    }
    let form = submit_form(MUC_REGISTER, &submitted_fields(m)?);
    let query = el("query", &ns, &form);
    Ok(iq(
        "set",
        Some(room.as_str()),
        &query,
        Pending::True,
        new_id,
    ))
}

/// `xmpp.muc.room.nick`: disco#info on the room's `x-roomuser-item` node.
pub(in super::super) fn room_nick(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let room = room(e.obj()?, e.ctx)?;
    let attrs = [
        ("xmlns", Some(NS_DISCO_INFO)),
        ("node", Some(X_ROOMUSER_ITEM)),
    ];
    let query = el("query", &attrs, "");
    Ok(iq(
        "get",
        Some(room.as_str()),
        &query,
        Pending::RoomNick,
        new_id,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::super::Pending;
    use super::super::super::testing::*;
    use super::{NS_DISCO_INFO, NS_REGISTER};
    use serde_json::json;

    #[test]
    fn register_info_results() {
        // The original gateway's fixtures (XEP-0045 examples 69 and 70, abridged).
        let xml = "<iq from='coven@conference.localhost' id='q1' to='alice@localhost/web' type='result'>\
            <query xmlns='jabber:iq:register'><registered/><username>not &amp; woman&apos;s</username>\
            </query></iq>";
        assert_eq!(
            answer(xml, Pending::RoomRegister),
            vec![
                json!(null),
                json!({"registered": true, "nick": "not & woman's"})
            ]
        );
        let xml = "<iq from='coven@conference.localhost' id='q1' type='result'>\
            <query xmlns='jabber:iq:register'>\
            <instructions>To register online visit http://witches.lit</instructions>\
            <x xmlns='jabber:x:data' type='form'><title>Fire Chat Registration</title>\
            <instructions>Please return the following information</instructions>\
            <field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>\
            <field label='Nickname' type='text-single' var='muc#register_roomnick'><required/></field>\
            </x></query></iq>";
        assert_eq!(
            answer(xml, Pending::RoomRegister),
            vec![
                json!(null),
                json!({
                    "instructions": "To register online visit http://witches.lit",
                    "form": {
                        "title": "Fire Chat Registration",
                        "instructions": "Please return the following information",
                        "fields": [
                            {"var": "FORM_TYPE", "type": "hidden", "required": false,
                             "value": "http://jabber.org/protocol/muc#register"},
                            {"var": "muc#register_roomnick", "type": "text-single",
                             "label": "Nickname", "required": true},
                        ]
                    }
                })
            ]
        );
        for xml in [
            "<iq id='q1' type='result'/>",
            "<iq id='q1' type='result'><query xmlns='jabber:iq:register'/></iq>",
        ] {
            assert_eq!(
                answer(xml, Pending::RoomRegister),
                vec![json!(null), json!({"form": {"fields": []}})]
            );
        }
    }

    #[test]
    fn room_nick_results() {
        // The original gateway's fixtures (XEP-0045 examples 77 and 78).
        let xml = "<iq from='coven@conference.localhost' id='q1' type='result'>\
            <query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'>\
            <identity category='conference' name='first&apos;witch' type='text'/></query></iq>";
        assert_eq!(
            answer(xml, Pending::RoomNick),
            vec![json!(null), json!({"nick": "first'witch"})]
        );
        let none = json!({"type": "cancel", "condition": "item-not-found"});
        for xml in [
            "<iq id='q1' type='result'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>",
            "<iq id='q1' type='result'/>",
            "<iq id='q1' type='result'><query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='conference' type='text'/></query></iq>",
        ] {
            assert_eq!(answer(xml, Pending::RoomNick), vec![none.clone()], "{xml}");
        }
        // The room's own error passes through.
        let xml = "<iq id='q1' type='error'><error type='cancel'>\
            <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
            <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such room</text></error></iq>";
        assert_eq!(
            answer(xml, Pending::RoomNick),
            vec![
                json!({"type": "cancel", "condition": "item-not-found", "description": "no such room"})
            ]
        );
    }

    #[test]
    fn register_requests() {
        let room = "group-x@conference.localhost";
        assert_eq!(
            tracked(
                "xmpp.muc.register.info",
                json!({"room": "group-x"}),
                Pending::RoomRegister
            ),
            format!("<iq {C} type='get' to='{room}' id='id1'><query xmlns='{NS_REGISTER}'/></iq>")
        );
        let form = json!([{"var": "muc#register_roomnick", "value": "O'Neil <&>"}]);
        assert_eq!(
            tracked(
                "xmpp.muc.register",
                json!({"room": room, "form": form}),
                Pending::True
            ),
            format!(
                "<iq {C} type='set' to='{room}' id='id1'><query xmlns='{NS_REGISTER}'>\
                 <x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#register</value></field>\
                 <field var='muc#register_roomnick'><value>O'Neil &lt;&amp;&gt;</value></field>\
                 </x></query></iq>"
            )
        );
        assert_eq!(
            tracked(
                "xmpp.muc.room.nick",
                json!({"room": "group-x"}),
                Pending::RoomNick
            ),
            format!(
                "<iq {C} type='get' to='{room}' id='id1'>\
                 <query xmlns='{NS_DISCO_INFO}' node='x-roomuser-item'/></iq>"
            )
        );
    }

    #[test]
    fn register_errors() {
        for ev in ["register.info", "register", "room.nick"] {
            let ev = format!("xmpp.muc.{ev}");
            assert_eq!(err(&ev, json!({"room": "g"}), false), "Missing callback");
            assert_eq!(err(&ev, json!("g"), true), "Message not an object");
            assert_eq!(err(&ev, json!({}), true), "Missing 'room' key");
            assert_eq!(err(&ev, json!({"room": "@x"}), true), "Invalid JID");
        }
        let e = |p| err("xmpp.muc.register", p, true);
        assert_eq!(e(json!({"room": "g"})), "Missing 'form' key");
        assert_eq!(
            e(json!({"room": "g", "form": "nick"})),
            "Invalid 'form' value"
        );
        assert_eq!(
            e(json!({"room": "g", "form": [{"value": "n"}]})),
            "Missing 'var' key"
        );
        assert_eq!(
            e(json!({"room": "g", "form": [{"var": "v", "value": [{}]}]})),
            "Invalid 'value' value"
        );
    }
}
