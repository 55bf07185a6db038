//! Service discovery and ping, both ways.
//!
//! - Rendered: the callbacks of `xmpp.discover.info` (`[{kind:"identity"|"feature"|"form",
//!   ...}...]`) and `xmpp.discover.items` (`[{jid, node?, name?}...]`). A disco#info query
//!   to the session is answered on its behalf with the client's features and shown as
//!   `xmpp.discover.client`; a ping to the session is answered and shown as `xmpp.ping`.
//! - Requested: `xmpp.discover.info`, `xmpp.discover.items`, `xmpp.ping` (all need a
//!   callback; a ping answers `true`).
//!
//! XEP-0030 (service discovery), XEP-0128 (extended info), XEP-0199 (ping).

use super::common::{
    Obj, Outs, R, attr, el, event, iq, iq_reply, kids, opt_jid, opt_str, put, req_jid, sender,
};
use super::forms::data_form;
use super::render::Out;
use super::request::{Event, Request};
use super::{Ctx, Pending, jid_object};
use crate::xml::escape::escape_attr_to_string;
use crate::xml::ns::DATA as NS_DATA;
use crate::xml::ns::DISCO_INFO as NS_DISCO_INFO;
use crate::xml::ns::DISCO_ITEMS as NS_DISCO_ITEMS;
use crate::xml::ns::PING as NS_PING;
use crate::xml::stanza::Stanza;
use crate::xmpp::jid::Jid;
use serde_json::{Value, json};

/// What this client answers to disco#info, inside `<query/>`.
const CLIENT_FEATURES: &str = "<identity category='client' type='web' name='XMPP-FTW'/>\
    <feature var='http://jabber.org/protocol/disco#info'/>\
    <feature var='urn:xmpp:ping'/>\
    <feature var='urn:xmpp:receipts'/>\
    <feature var='http://jabber.org/protocol/chatstates'/>\
    <feature var='urn:xmpp:message-correct:0'/>";

// ---------------------------------------------------------------------------------------
// Stanza → events

/// The callback arguments' list of a disco#info result.
pub(super) fn info_result(st: &Stanza) -> Value {
    st.child(0, "query", NS_DISCO_INFO)
        .map(|q| st.children(q).filter_map(|c| info_entry(st, c)).collect())
        .unwrap_or_else(|| json!([]))
}

/// One child of a disco#info result: an identity, a feature or an extended-info form.
fn info_entry(st: &Stanza, c: usize) -> Option<Value> {
    let el = &st.elems[c];
    let mut o = Obj::new();
    match (el.local, el.ns) {
        ("identity", NS_DISCO_INFO) => {
            o.insert("kind".into(), "identity".into());
            put(&mut o, "category", attr(st, c, "category"));
            put(&mut o, "type", attr(st, c, "type"));
            put(&mut o, "name", attr(st, c, "name"));
        }
        ("feature", NS_DISCO_INFO) => {
            o.insert("kind".into(), "feature".into());
            o.insert("var".into(), attr(st, c, "var")?.into());
        }
        ("x", NS_DATA) => {
            o.insert("kind".into(), "form".into());
            o.insert("form".into(), data_form(st, c));
        }
        _ => return None,
    }
    Some(Value::Object(o))
}

/// The callback arguments' list of a disco#items result.
pub(super) fn items_result(st: &Stanza) -> Value {
    st.child(0, "query", NS_DISCO_ITEMS)
        .map(|q| {
            kids(st, q, "item", NS_DISCO_ITEMS)
                .filter_map(|i| {
                    let mut o = Obj::new();
                    o.insert("jid".into(), attr(st, i, "jid")?.into());
                    put(&mut o, "node", attr(st, i, "node"));
                    put(&mut o, "name", attr(st, i, "name"));
                    Some(Value::Object(o))
                })
                .collect()
        })
        .unwrap_or_else(|| json!([]))
}

/// A ping to the session: `xmpp.ping`, and the answer.
pub(super) fn render_ping(st: &Stanza, ctx: &Ctx, out: &mut Outs) {
    let mut o = Obj::new();
    o.insert("from".into(), jid_object(&sender(st, 0, ctx)));
    put(&mut o, "id", attr(st, 0, "id"));
    event(out, "xmpp.ping", o);
    out.push(Out::Reply(iq_reply(st, "result", "")));
}

/// A disco#info query `q` to the session: the answer (echoing the node), and
/// `xmpp.discover.client`.
pub(super) fn render_info_query(st: &Stanza, ctx: &Ctx, q: usize, out: &mut Outs) {
    let mut query = format!("<query xmlns='{NS_DISCO_INFO}'");
    if let Some(node) = attr(st, q, "node") {
        query.push_str(" node='");
        query.push_str(&escape_attr_to_string(&node));
        query.push('\'');
    }
    query.push('>');
    query.push_str(CLIENT_FEATURES);
    query.push_str("</query>");
    out.push(Out::Reply(iq_reply(st, "result", &query)));
    let mut o = Obj::new();
    o.insert("from".into(), sender(st, 0, ctx).into());
    put(&mut o, "id", attr(st, 0, "id"));
    event(out, "xmpp.discover.client", o);
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// `xmpp.discover.info` and `xmpp.discover.items` of `of` (and `node`).
pub(super) fn discover(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let of = req_jid(m, "of")?;
    let node = opt_str(m, "node")?;
    let (ns, pending) = match e.name {
        "discover.info" => (NS_DISCO_INFO, Pending::DiscoInfo),
        _ => (NS_DISCO_ITEMS, Pending::DiscoItems),
    };
    let query = el(
        "query",
        &[("xmlns", Some(ns)), ("node", node.as_deref())],
        "",
    );
    Ok(iq("get", Some(of.as_str()), &query, pending, new_id))
}

/// `xmpp.ping` to `to`, or to the server.
pub(super) fn ping(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let to = opt_jid(e.lenient()?, "to")?;
    let to = to.as_ref().map_or(e.ctx.domain, Jid::as_str);
    let ping = el("ping", &[("xmlns", Some(NS_PING))], "");
    Ok(iq("get", Some(to), &ping, Pending::True, new_id))
}

#[cfg(test)]
mod tests {
    use super::super::Pending;
    use super::super::render::Out;
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn disco_info_result() {
        // XEP-0030 example 2, with a XEP-0128 extended-info form.
        let xml = "<iq type='result' from='plays.shakespeare.lit' to='alice@localhost/web' id='q1'>\
            <query xmlns='http://jabber.org/protocol/disco#info'>\
            <identity category='conference' type='text' name='Play-Specific Chatrooms'/>\
            <identity category='directory' type='chatroom'/>\
            <feature var='http://jabber.org/protocol/disco#info'/>\
            <feature var='http://jabber.org/protocol/muc'/>\
            <x xmlns='jabber:x:data' type='result'>\
            <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
            </x></query></iq>";
        assert_eq!(
            answer(xml, Pending::DiscoInfo),
            vec![
                json!(null),
                json!([
                    {"kind": "identity", "category": "conference", "type": "text",
                     "name": "Play-Specific Chatrooms"},
                    {"kind": "identity", "category": "directory", "type": "chatroom"},
                    {"kind": "feature", "var": "http://jabber.org/protocol/disco#info"},
                    {"kind": "feature", "var": "http://jabber.org/protocol/muc"},
                    {"kind": "form", "form": {"fields": [
                        {"var": "FORM_TYPE", "type": "hidden", "required": false,
                         "value": "urn:xmpp:dataforms:softwareinfo"}
                    ]}},
                ])
            ]
        );
    }

    #[test]
    fn disco_items_result() {
        // XEP-0030 example 10.
        let xml = "<iq type='result' from='shakespeare.lit' id='q1'>\
            <query xmlns='http://jabber.org/protocol/disco#items'>\
            <item jid='people.shakespeare.lit' name='Directory of Characters'/>\
            <item jid='plays.shakespeare.lit'/>\
            <item jid='pubsub.shakespeare.lit' node='songs' name='Songs'/>\
            <item name='no jid'/></query></iq>";
        assert_eq!(
            answer(xml, Pending::DiscoItems),
            vec![
                json!(null),
                json!([
                    {"jid": "people.shakespeare.lit", "name": "Directory of Characters"},
                    {"jid": "plays.shakespeare.lit"},
                    {"jid": "pubsub.shakespeare.lit", "node": "songs", "name": "Songs"},
                ])
            ]
        );
    }

    #[test]
    fn ping_is_answered() {
        // XEP-0199 example 1.
        let xml = "<iq from='capulet.lit' to='alice@localhost/web' id='s2c1' type='get'>\
            <ping xmlns='urn:xmpp:ping'/></iq>";
        assert_eq!(
            deliver(xml),
            vec![
                ev(
                    "xmpp.ping",
                    json!({"from": {"domain": "capulet.lit"}, "id": "s2c1"})
                ),
                Out::Reply("<iq type='result' to='capulet.lit' id='s2c1'/>".into()),
            ]
        );
    }

    #[test]
    fn disco_info_request_is_answered() {
        // XEP-0115 style query on a caps node; the node is echoed, values escaped.
        let xml = "<iq from='bob@localhost/desk&apos;s' id='d&amp;1' type='get'>\
            <query xmlns='http://jabber.org/protocol/disco#info' node='https://xmpp-ftw#abc='/></iq>";
        assert_eq!(
            deliver(xml),
            vec![
                Out::Reply(
                    "<iq type='result' to='bob@localhost/desk&apos;s' id='d&amp;1'>\
                     <query xmlns='http://jabber.org/protocol/disco#info' node='https://xmpp-ftw#abc='>\
                     <identity category='client' type='web' name='XMPP-FTW'/>\
                     <feature var='http://jabber.org/protocol/disco#info'/>\
                     <feature var='urn:xmpp:ping'/><feature var='urn:xmpp:receipts'/>\
                     <feature var='http://jabber.org/protocol/chatstates'/>\
                     <feature var='urn:xmpp:message-correct:0'/></query></iq>"
                        .into()
                ),
                ev("xmpp.discover.client", json!({"from": "bob@localhost/desk's", "id": "d&1"})),
            ]
        );
    }

    #[test]
    fn disco_and_ping() {
        assert_eq!(
            tracked(
                "xmpp.discover.info",
                json!({"of": "localhost", "node": "n'<"}),
                Pending::DiscoInfo
            ),
            format!(
                "<iq {C} type='get' to='localhost' id='id1'><query xmlns='http://jabber.org/protocol/disco#info' node='n&apos;&lt;'/></iq>"
            )
        );
        assert_eq!(
            tracked(
                "xmpp.discover.items",
                json!({"of": {"domain": "conference.localhost"}}),
                Pending::DiscoItems
            ),
            format!(
                "<iq {C} type='get' to='conference.localhost' id='id1'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
            )
        );
        for p in [json!(null), json!({})] {
            assert_eq!(
                tracked("xmpp.ping", p, Pending::True),
                format!(
                    "<iq {C} type='get' to='localhost' id='id1'><ping xmlns='urn:xmpp:ping'/></iq>"
                )
            );
        }
        assert_eq!(
            xml("xmpp.ping", json!({"to": "bob@localhost/r"})),
            format!(
                "<iq {C} type='get' to='bob@localhost/r' id='id1'><ping xmlns='urn:xmpp:ping'/></iq>"
            )
        );
        assert_eq!(
            err("xmpp.discover.info", json!({}), false),
            "Missing callback"
        );
        assert_eq!(
            err("xmpp.discover.items", json!(null), true),
            "Message not an object"
        );
        assert_eq!(
            err("xmpp.discover.items", json!({}), true),
            "Missing 'of' key"
        );
        assert_eq!(
            err("xmpp.discover.info", json!({"of": ""}), true),
            "Invalid JID"
        );
        assert_eq!(err("xmpp.ping", json!(null), false), "Missing callback");
        assert_eq!(err("xmpp.ping", json!({"to": "a@"}), true), "Invalid JID");
    }
}
