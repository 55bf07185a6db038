//! Room administration, both ways.
//!
//! - Rendered: the callback of `xmpp.muc.room.config.get`, the room's configuration form
//!   as `{title?, instructions?, fields:[...]}`, and of `xmpp.muc.role.get`, the occupants
//!   of a role as `[{affiliation, jid, nick, role}...]`.
//! - Requested: `xmpp.muc.role.set`, `xmpp.muc.role.get`, `xmpp.muc.affiliation`,
//!   `xmpp.muc.room.config.get`, `xmpp.muc.room.config.set`, `xmpp.muc.cancel`,
//!   `xmpp.muc.destroy`; all need a callback, and all but the two gets answer `true`.
//!   Sent for the session: the empty form that makes a new room an instant room
//!   (`xmpp.muc.create` with `instant`).
//!
//! XEP-0045: roles and affiliations as muc#admin items (§8.2–§10.8) and the lists of a
//! role (§8.5, §9.8), configuration as a muc#owner form (§10.2), instant rooms and
//! cancelling a new room's configuration (§10.1.2, §10.1.3), destroying a room (§10.9);
//! XEP-0004 (data forms).

use super::super::Pending;
use super::super::common::{
    Obj, R, XMLNS, attr, el, iq, kids, opt_jid, put, req_enum, req_jid, req_str,
};
use super::super::forms::{data_form, submit_form, submitted_fields};
use super::super::jid_object;
use super::super::request::{Event, Request};
use super::{occupant, reason, room};
use crate::xml::ns::DATA as NS_DATA;
use crate::xml::ns::MUC_ADMIN as NS_MUC_ADMIN;
use crate::xml::ns::MUC_OWNER as NS_MUC_OWNER;
use crate::xml::ns::MUC_ROOMCONFIG;
use crate::xml::stanza::Stanza;
use crate::xmpp::jid::Jid;
use serde_json::{Value, json};

pub(super) const ROLES: &[&str] = &["none", "visitor", "participant", "moderator"];
const AFFILIATIONS: &[&str] = &["owner", "admin", "member", "outcast", "none"];

// ---------------------------------------------------------------------------------------
// Stanza → events

/// The callback's result of a room configuration get: the form, or no fields.
pub(in super::super) fn config_result(st: &Stanza) -> Value {
    st.child(0, "query", NS_MUC_OWNER)
        .and_then(|q| st.child(q, "x", NS_DATA))
        .map_or_else(|| json!({ "fields": [] }), |x| data_form(st, x))
}

/// The callback's result of a role list: `[{affiliation, jid, nick, role}...]` (`jid` as an
/// object, left out when the room does not give it).
pub(in super::super) fn role_list(st: &Stanza) -> Value {
    let Some(q) = st.child(0, "query", NS_MUC_ADMIN) else {
        return json!([]);
    };
    let items = kids(st, q, "item", NS_MUC_ADMIN).map(|i| {
        let mut o = Obj::new();
        put(&mut o, "affiliation", attr(st, i, "affiliation"));
        if let Some(jid) = attr(st, i, "jid") {
            o.insert("jid".into(), jid_object(&jid));
        }
        put(&mut o, "nick", attr(st, i, "nick"));
        put(&mut o, "role", attr(st, i, "role"));
        Value::Object(o)
    });
    Value::Array(items.collect())
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// The instant room of §10.1.2 (example 155): the empty submitted form, to `room`, sent for
/// the session when its `xmpp.muc.create {instant: true}` created the room. Its result
/// answers no callback.
pub(in super::super) fn instant_form(room: &str, id: &str) -> String {
    let x = el(
        "x",
        &[("xmlns", Some(NS_DATA)), ("type", Some("submit"))],
        "",
    );
    let query = el("query", &[("xmlns", Some(NS_MUC_OWNER))], &x);
    el(
        "iq",
        &[
            XMLNS,
            ("type", Some("set")),
            ("to", Some(room)),
            ("id", Some(id)),
        ],
        &query,
    )
}

/// `xmpp.muc.role.set` (an occupant's role, by nick) and `xmpp.muc.affiliation` (a user's
/// affiliation, by bare JID).
pub(in super::super) fn set_item(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let room = room(m, e.ctx)?;
    let item = if e.name == "muc.role.set" {
        let nick = req_str(m, "nick")?;
        occupant(&room, &nick)?;
        let role = req_enum(m, "role", ROLES)?;
        el(
            "item",
            &[("nick", Some(&nick)), ("role", Some(role))],
            &reason(m)?,
        )
    } else {
        let jid = req_jid(m, "jid")?;
        let aff = req_enum(m, "affiliation", AFFILIATIONS)?;
        el(
            "item",
            &[("jid", Some(jid.bare())), ("affiliation", Some(aff))],
            &reason(m)?,
        )
    };
    let query = el("query", &[("xmlns", Some(NS_MUC_ADMIN))], &item);
    Ok(iq(
        "set",
        Some(room.as_str()),
        &query,
        Pending::True,
        new_id,
    ))
}

/// `xmpp.muc.role.get`: the occupants of `role` (§8.5 voice list, §9.8 moderators).
pub(in super::super) fn role_get(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let room = room(m, e.ctx)?;
    let role = req_enum(m, "role", ROLES)?;
    let item = el("item", &[("role", Some(role))], "");
    let query = el("query", &[("xmlns", Some(NS_MUC_ADMIN))], &item);
    Ok(iq(
        "get",
        Some(room.as_str()),
        &query,
        Pending::RoleList,
        new_id,
    ))
}

/// `xmpp.muc.room.config.get`: the callback gets the form.
pub(in super::super) fn config_get(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let room = room(e.obj()?, e.ctx)?;
    let query = el("query", &[("xmlns", Some(NS_MUC_OWNER))], "");
    Ok(iq(
        "get",
        Some(room.as_str()),
        &query,
        Pending::RoomConfig,
        new_id,
    ))
}

/// `xmpp.muc.room.config.set`: `form` is `[{var, type?, value?}...]`.
pub(in super::super) fn config_set(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let room = room(m, e.ctx)?;
    let form = submit_form(MUC_ROOMCONFIG, &submitted_fields(m)?);
    let query = el("query", &[("xmlns", Some(NS_MUC_OWNER))], &form);
    Ok(iq(
        "set",
        Some(room.as_str()),
        &query,
        Pending::True,
        new_id,
    ))
}

/// `xmpp.muc.cancel`: cancels the configuration of a new room (§10.1.3, example 162),
/// which destroys it.
pub(in super::super) fn cancel(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let room = room(e.obj()?, e.ctx)?;
    let x = el(
        "x",
        &[("xmlns", Some(NS_DATA)), ("type", Some("cancel"))],
        "",
    );
    let query = el("query", &[("xmlns", Some(NS_MUC_OWNER))], &x);
    Ok(iq(
        "set",
        Some(room.as_str()),
        &query,
        Pending::True,
        new_id,
    ))
}

/// `xmpp.muc.destroy`, with a `reason` and an `alternative` room.
pub(in super::super) fn destroy(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let room = room(m, e.ctx)?;
    let alt = opt_jid(m, "alternative")?;
    let destroy = el(
        "destroy",
        &[("jid", alt.as_ref().map(Jid::as_str))],
        &reason(m)?,
    );
    let query = el("query", &[("xmlns", Some(NS_MUC_OWNER))], &destroy);
    Ok(iq(
        "set",
        Some(room.as_str()),
        &query,
        Pending::True,
        new_id,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::super::Pending;
    use super::super::super::testing::*;
    use super::{NS_MUC_ADMIN, NS_MUC_OWNER};
    use serde_json::json;

    #[test]
    fn room_config_result() {
        // XEP-0045 example 163 (abridged).
        let xml = "<iq from='coven@conference.localhost' id='q1' to='alice@localhost/web' type='result'>\
            <query xmlns='http://jabber.org/protocol/muc#owner'>\
            <x xmlns='jabber:x:data' type='form'>\
            <title>Configuration for &quot;coven&quot; Room</title>\
            <instructions>Complete this form to modify the configuration of your room.</instructions>\
            <field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
            <field type='fixed'><value>Room configuration</value></field>\
            <field label='Natural-Language Room Name' type='text-single' var='muc#roomconfig_roomname'>\
            <value>A Dark Cave</value></field>\
            <field label='Short Description of Room' type='text-multi' var='muc#roomconfig_roomdesc'>\
            <value>The place for all good witches!</value><value>Second line</value></field>\
            <field label='Make Room Persistent?' type='boolean' var='muc#roomconfig_persistentroom'>\
            <required/><value>0</value></field>\
            <field label='Maximum Number of Occupants' type='list-single' var='muc#roomconfig_maxusers'>\
            <value>10</value><option label='10'><value>10</value></option>\
            <option><value>20</value></option></field>\
            <field label='Roles for which Presence is Broadcasted' type='list-multi' var='muc#roomconfig_presencebroadcast'>\
            <value>moderator</value><value>participant</value>\
            <option label='Moderator'><value>moderator</value></option></field>\
            <field label='Room Admins' type='jid-multi' var='muc#roomconfig_roomadmins'/>\
            <field type='text-private' var='muc#roomconfig_roomsecret'/>\
            </x></query></iq>";
        assert_eq!(
            answer(xml, Pending::RoomConfig),
            vec![
                json!(null),
                json!({
                    "title": "Configuration for \"coven\" Room",
                    "instructions": "Complete this form to modify the configuration of your room.",
                    "fields": [
                        {"var": "FORM_TYPE", "type": "hidden", "required": false,
                         "value": "http://jabber.org/protocol/muc#roomconfig"},
                        {"var": "muc#roomconfig_roomname", "type": "text-single",
                         "label": "Natural-Language Room Name", "required": false,
                         "value": "A Dark Cave"},
                        {"var": "muc#roomconfig_roomdesc", "type": "text-multi",
                         "label": "Short Description of Room", "required": false,
                         "value": ["The place for all good witches!", "Second line"]},
                        {"var": "muc#roomconfig_persistentroom", "type": "boolean",
                         "label": "Make Room Persistent?", "required": true, "value": "0"},
                        {"var": "muc#roomconfig_maxusers", "type": "list-single",
                         "label": "Maximum Number of Occupants", "required": false, "value": "10",
                         "options": [{"label": "10", "value": "10"}, {"value": "20"}]},
                        {"var": "muc#roomconfig_presencebroadcast", "type": "list-multi",
                         "label": "Roles for which Presence is Broadcasted", "required": false,
                         "value": ["moderator", "participant"],
                         "options": [{"label": "Moderator", "value": "moderator"}]},
                        {"var": "muc#roomconfig_roomadmins", "type": "jid-multi",
                         "label": "Room Admins", "required": false, "value": []},
                        {"var": "muc#roomconfig_roomsecret", "type": "text-private",
                         "required": false},
                    ]
                })
            ]
        );
        assert_eq!(
            answer("<iq type='result' id='q1'/>", Pending::RoomConfig),
            vec![json!(null), json!({"fields": []})]
        );
    }

    #[test]
    fn muc_admin() {
        let room = "group-x@conference.localhost";
        assert_eq!(
            tracked(
                "xmpp.muc.role.set",
                json!({"room": "group-x", "nick": "B&b", "role": "visitor", "reason": "r'"}),
                Pending::True
            ),
            format!(
                "<iq {C} type='set' to='{room}' id='id1'><query xmlns='{NS_MUC_ADMIN}'>\
                 <item nick='B&amp;b' role='visitor'><reason>r'</reason></item></query></iq>"
            )
        );
        assert_eq!(
            tracked(
                "xmpp.muc.affiliation",
                json!({"room": room, "jid": "bob@localhost/x", "affiliation": "outcast"}),
                Pending::True
            ),
            format!(
                "<iq {C} type='set' to='{room}' id='id1'><query xmlns='{NS_MUC_ADMIN}'>\
                 <item jid='bob@localhost' affiliation='outcast'/></query></iq>"
            )
        );
        assert_eq!(
            tracked(
                "xmpp.muc.room.config.get",
                json!({"room": "group-x"}),
                Pending::RoomConfig
            ),
            format!("<iq {C} type='get' to='{room}' id='id1'><query xmlns='{NS_MUC_OWNER}'/></iq>")
        );
        let form = json!([
            {"var": "muc#roomconfig_roomname", "value": "A & <B>"},
            {"var": "muc#roomconfig_persistentroom", "value": true, "type": "boolean"},
            {"var": "muc#roomconfig_maxusers", "value": 30},
            {"var": "muc#roomconfig_roomowners", "value": ["a@localhost", "b@localhost"], "type": "jid-multi"},
        ]);
        assert_eq!(
            tracked(
                "xmpp.muc.room.config.set",
                json!({"room": "group-x", "form": form}),
                Pending::True
            ),
            format!(
                "<iq {C} type='set' to='{room}' id='id1'><query xmlns='{NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
                 <field var='muc#roomconfig_roomname'><value>A &amp; &lt;B&gt;</value></field>\
                 <field var='muc#roomconfig_persistentroom' type='boolean'><value>1</value></field>\
                 <field var='muc#roomconfig_maxusers'><value>30</value></field>\
                 <field var='muc#roomconfig_roomowners' type='jid-multi'><value>a@localhost</value><value>b@localhost</value></field>\
                 </x></query></iq>"
            )
        );
        assert_eq!(
            tracked(
                "xmpp.muc.destroy",
                json!({"room": "group-x", "reason": "gone & done", "alternative": "new@conference.localhost"}),
                Pending::True
            ),
            format!(
                "<iq {C} type='set' to='{room}' id='id1'><query xmlns='{NS_MUC_OWNER}'>\
                 <destroy jid='new@conference.localhost'><reason>gone &amp; done</reason></destroy></query></iq>"
            )
        );
        assert_eq!(
            xml("xmpp.muc.destroy", json!({"room": "group-x"})),
            format!(
                "<iq {C} type='set' to='{room}' id='id1'><query xmlns='{NS_MUC_OWNER}'><destroy/></query></iq>"
            )
        );
    }

    #[test]
    fn role_list_result() {
        // The original gateway's fixture (XEP-0045 example 104), and our room's order.
        let xml = "<iq from='coven@conference.localhost' id='q1' to='alice@localhost/web' type='result'>\
            <query xmlns='http://jabber.org/protocol/muc#admin'>\
            <item affiliation='none' jid='fairyqueen@midsummer.lit/in-love' nick='Titania' role='participant'/>\
            <item role='participant' nick='O&apos;beron &amp; co' affiliation='member' jid='oberon@midsummer.lit'/>\
            <item role='visitor' nick='Puck'/></query></iq>";
        assert_eq!(
            answer(xml, Pending::RoleList),
            vec![
                json!(null),
                json!([
                    {"affiliation": "none", "nick": "Titania", "role": "participant",
                     "jid": {"user": "fairyqueen", "domain": "midsummer.lit", "resource": "in-love"}},
                    {"affiliation": "member", "nick": "O'beron & co", "role": "participant",
                     "jid": {"user": "oberon", "domain": "midsummer.lit"}},
                    {"nick": "Puck", "role": "visitor"},
                ])
            ]
        );
        let empty =
            "<iq id='q1' type='result'><query xmlns='http://jabber.org/protocol/muc#admin'/></iq>";
        assert_eq!(
            answer(empty, Pending::RoleList),
            vec![json!(null), json!([])]
        );
        assert_eq!(
            answer("<iq id='q1' type='result'/>", Pending::RoleList),
            vec![json!(null), json!([])]
        );
    }

    #[test]
    fn role_get_cancel_and_instant_form() {
        let room = "group-x@conference.localhost";
        assert_eq!(
            tracked(
                "xmpp.muc.role.get",
                json!({"room": "group-x", "role": "participant"}),
                Pending::RoleList
            ),
            format!(
                "<iq {C} type='get' to='{room}' id='id1'><query xmlns='{NS_MUC_ADMIN}'>\
                 <item role='participant'/></query></iq>"
            )
        );
        assert_eq!(
            tracked("xmpp.muc.cancel", json!({"room": room}), Pending::True),
            format!(
                "<iq {C} type='set' to='{room}' id='id1'><query xmlns='{NS_MUC_OWNER}'>\
                 <x xmlns='jabber:x:data' type='cancel'/></query></iq>"
            )
        );
        // XEP-0045 example 155.
        assert_eq!(
            super::instant_form("o'<&@conference.localhost", "ftw7"),
            format!(
                "<iq {C} type='set' to='o&apos;&lt;&amp;@conference.localhost' id='ftw7'>\
                 <query xmlns='{NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query></iq>"
            )
        );
    }

    #[test]
    fn muc_admin_errors() {
        for ev in [
            "role.set",
            "role.get",
            "affiliation",
            "room.config.get",
            "room.config.set",
            "cancel",
            "destroy",
        ] {
            assert_eq!(
                err(&format!("xmpp.muc.{ev}"), json!(1), false),
                "Missing callback"
            );
            assert_eq!(
                err(&format!("xmpp.muc.{ev}"), json!(1), true),
                "Message not an object"
            );
            assert_eq!(
                err(&format!("xmpp.muc.{ev}"), json!({}), true),
                "Missing 'room' key"
            );
        }
        let e = |ev, p| err(ev, p, true);
        assert_eq!(
            e("xmpp.muc.role.set", json!({"room": "g", "role": "none"})),
            "Missing 'nick' key"
        );
        assert_eq!(
            e("xmpp.muc.role.set", json!({"room": "g", "nick": "n"})),
            "Missing 'role' key"
        );
        assert_eq!(
            e(
                "xmpp.muc.role.set",
                json!({"room": "g", "nick": "n", "role": "king"})
            ),
            "Invalid 'role' value"
        );
        assert_eq!(
            e("xmpp.muc.role.get", json!({"room": "g"})),
            "Missing 'role' key"
        );
        assert_eq!(
            e("xmpp.muc.role.get", json!({"room": "g", "role": "owner"})),
            "Invalid 'role' value"
        );
        assert_eq!(e("xmpp.muc.cancel", json!({"room": "a b"})), "Invalid JID");
        assert_eq!(
            e(
                "xmpp.muc.affiliation",
                json!({"room": "g", "affiliation": "none"})
            ),
            "Missing 'jid' key"
        );
        assert_eq!(
            e("xmpp.muc.affiliation", json!({"room": "g", "jid": "<x>"})),
            "Invalid JID"
        );
        assert_eq!(
            e(
                "xmpp.muc.affiliation",
                json!({"room": "g", "jid": "a@b", "affiliation": "boss"})
            ),
            "Invalid 'affiliation' value"
        );
        assert_eq!(
            e("xmpp.muc.room.config.set", json!({"room": "g"})),
            "Missing 'form' key"
        );
        assert_eq!(
            e("xmpp.muc.room.config.set", json!({"room": "g", "form": {}})),
            "Invalid 'form' value"
        );
        assert_eq!(
            e(
                "xmpp.muc.room.config.set",
                json!({"room": "g", "form": [1]})
            ),
            "Invalid 'form' value"
        );
        assert_eq!(
            e(
                "xmpp.muc.room.config.set",
                json!({"room": "g", "form": [{"value": 1}]})
            ),
            "Missing 'var' key"
        );
        assert_eq!(
            e(
                "xmpp.muc.room.config.set",
                json!({"room": "g", "form": [{"var": "v", "value": {}}]})
            ),
            "Invalid 'value' value"
        );
        assert_eq!(
            e(
                "xmpp.muc.destroy",
                json!({"room": "g", "alternative": "a@"})
            ),
            "Invalid JID"
        );
    }
}
