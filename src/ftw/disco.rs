//! Service discovery and ping, both ways.
//!
//! - Rendered: the callbacks of `xmpp.discover.info` (`[{kind:"identity"|"feature"|"form",
//!   ...}...]`) and `xmpp.discover.items` (`[{jid, node?, name?}...]`), with the result's
//!   XEP-0059 summary as a third argument when it has one (`rsm.rs`). A disco#info query
//!   to the session is shown as `xmpp.discover.client`, a ping as `xmpp.ping`; each is
//!   answered by the browser if it said so at login, else on its behalf at once
//!   (`answers.rs`).
//! - Requested: `xmpp.discover.info`, `xmpp.discover.items` (both paged with `rsm`),
//!   `xmpp.ping` (all need a callback; a ping answers `true`), and the browser's answers
//!   `xmpp.discover.client` and `xmpp.ping.pong` (answer `true`).
//!
//! XEP-0030 (service discovery), XEP-0128 (extended info), XEP-0059 (result set
//! management), XEP-0199 (ping).

use super::common::{
    Obj, Outs, R, attr, client, el, iq, iq_reply, kids, opt_jid, opt_nonempty, opt_str, put,
    req_jid, req_str, sender,
};
use super::forms::data_form;
use super::render::{Ask, Asked, Out};
use super::request::{Answering, Event, Request};
use super::rsm;
use super::{Ctx, Pending, jid_object};
use crate::xml::ns::DATA as NS_DATA;
use crate::xml::ns::DISCO_INFO as NS_DISCO_INFO;
use crate::xml::ns::DISCO_ITEMS as NS_DISCO_ITEMS;
use crate::xml::ns::PING as NS_PING;
use crate::xml::stanza::Stanza;
use crate::xmpp::jid::Jid;
use serde_json::{Value, json};
use std::borrow::Cow;

/// What this client answers to disco#info, inside `<query/>`.
const CLIENT_FEATURES: &str = "<identity category='client' type='web' name='XMPP-FTW'/>\
    <feature var='http://jabber.org/protocol/disco#info'/>\
    <feature var='urn:xmpp:ping'/>\
    <feature var='urn:xmpp:receipts'/>\
    <feature var='http://jabber.org/protocol/chatstates'/>\
    <feature var='urn:xmpp:message-correct:0'/>\
    <feature var='http://jabber.org/protocol/xhtml-im'/>";

// ---------------------------------------------------------------------------------------
// Stanza → events

/// The callback arguments of a disco#info or disco#items result whose `<query/>` in `ns`
/// is `q`: `(null, list)`, and the RSM summary third when the query has a `<set/>`.
fn args(st: &Stanza, q: Option<usize>, list: Value) -> Vec<Value> {
    let mut args = vec![Value::Null, list];
    if let Some(rsm) = q.and_then(|q| rsm::summary(st, q)) {
        args.push(Value::Object(rsm));
    }
    args
}

/// The callback arguments of a disco#info result: `(null, list[, rsm])`.
pub(super) fn info_args(st: &Stanza) -> Vec<Value> {
    let q = st.child(0, "query", NS_DISCO_INFO);
    let list = q
        .map(|q| st.children(q).filter_map(|c| info_entry(st, c)).collect())
        .unwrap_or_else(|| json!([]));
    args(st, q, list)
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

/// The callback arguments of a disco#items result: `(null, list[, rsm])`.
pub(super) fn items_args(st: &Stanza) -> Vec<Value> {
    let q = st.child(0, "query", NS_DISCO_ITEMS);
    let list = q
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
        .unwrap_or_else(|| json!([]));
    args(st, q, list)
}

/// Who asked `st`, as the browser's answer names it (`to`, parsed as a JID is).
fn asker(st: &Stanza, ctx: &Ctx) -> String {
    let from = sender(st, 0, ctx);
    Jid::parse(&from).map_or(from, |j| j.as_str().to_string())
}

/// A ping to the session: `xmpp.ping` (`from`, `id`), answered by the browser with
/// `xmpp.ping.pong` if it answers pings, else by the server at once.
pub(super) fn render_ping(st: &Stanza, ctx: &Ctx, out: &mut Outs) {
    let id = attr(st, 0, "id");
    let mut o = Obj::new();
    o.insert("from".into(), jid_object(&sender(st, 0, ctx)));
    put(&mut o, "id", id.clone());
    out.push(Out::Ask(Box::new(Ask {
        kind: Asked::Ping,
        from: asker(st, ctx),
        id: id.map(Cow::into_owned),
        node: None,
        event: "xmpp.ping",
        payload: Value::Object(o),
        auto: iq_reply(st, "result", ""),
    })));
}

/// A disco#info query `q` to the session: `xmpp.discover.client` (`from` as a string,
/// `id`, and `node` when the query names one), answered by the browser if it answers
/// these, else by the server at once with the client's features (echoing the node).
pub(super) fn render_info_query(st: &Stanza, ctx: &Ctx, q: usize, out: &mut Outs) {
    let node = attr(st, q, "node").map(Cow::into_owned);
    let query = el(
        "query",
        &[("xmlns", Some(NS_DISCO_INFO)), ("node", node.as_deref())],
        CLIENT_FEATURES,
    );
    let id = attr(st, 0, "id");
    let mut o = Obj::new();
    o.insert("from".into(), sender(st, 0, ctx).into());
    put(&mut o, "id", id.clone());
    put(&mut o, "node", node.clone());
    out.push(Out::Ask(Box::new(Ask {
        kind: Asked::DiscoInfo,
        from: asker(st, ctx),
        id: id.map(Cow::into_owned),
        node,
        event: "xmpp.discover.client",
        payload: Value::Object(o),
        auto: iq_reply(st, "result", &query),
    })));
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// `xmpp.discover.info` and `xmpp.discover.items` of `of` (and `node`), paged with `rsm`.
pub(super) fn discover(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let of = req_jid(m, "of")?;
    let node = opt_str(m, "node")?;
    let set = rsm::request(m)?;
    let (ns, pending) = match e.name {
        "discover.info" => (NS_DISCO_INFO, Pending::DiscoInfo),
        _ => (NS_DISCO_ITEMS, Pending::DiscoItems),
    };
    let query = el(
        "query",
        &[("xmlns", Some(ns)), ("node", node.as_deref())],
        &set,
    );
    Ok(iq("get", Some(of.as_str()), &query, pending, new_id))
}

/// `xmpp.discover.client`: the browser's answer to the disco#info query `id` from `to`,
/// with `features` (`[{kind:"identity", category, type, name?}|{kind:"feature", var}...]`,
/// as `xmpp.discover.info` gives them; entries without a `kind` are skipped, as the
/// original gateway did). Answers `true`.
pub(super) fn discover_client(e: &Event) -> R<Request> {
    let m = e.obj()?;
    let to = req_jid(m, "to")?;
    let id = req_str(m, "id")?;
    let bad = || client("Badly formatted 'features' key");
    let list = match m.get("features") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(list)) => list,
        Some(_) => return bad(),
    };
    let mut inner = String::new();
    for item in list {
        let Some(f) = item.as_object() else {
            return bad();
        };
        let nonempty = |k| opt_nonempty(f, k).ok().flatten();
        match f.get("kind") {
            None | Some(Value::Null) => continue,
            Some(k) if k == "identity" => {
                let (Some(category), Some(ty)) = (nonempty("category"), nonempty("type")) else {
                    return bad();
                };
                let name = nonempty("name");
                inner += &el(
                    "identity",
                    &[
                        ("category", Some(&category)),
                        ("type", Some(&ty)),
                        ("name", name.as_deref()),
                    ],
                    "",
                );
            }
            Some(k) if k == "feature" => {
                let Some(var) = nonempty("var") else {
                    return bad();
                };
                inner += &el("feature", &[("var", Some(&var))], "");
            }
            Some(_) => return bad(),
        }
    }
    Ok(answering(Asked::DiscoInfo, to, id, inner))
}

/// `xmpp.ping.pong`: the browser's answer to the ping `id` from `to`. Answers `true`.
pub(super) fn pong(e: &Event) -> R<Request> {
    let m = e.obj()?;
    let id = req_str(m, "id")?;
    let to = req_jid(m, "to")?;
    Ok(answering(Asked::Ping, to, id, String::new()))
}

fn answering(kind: Asked, to: Jid, id: String, inner: String) -> Request {
    Request {
        answer: Some(Answering {
            kind,
            to: to.as_str().to_string(),
            id,
            inner,
        }),
        immediate: Some(Value::Bool(true)),
        ..Default::default()
    }
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
    use super::super::render::{Ask, Asked, Out};
    use super::super::request::Answering;
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

    /// A paged room directory (XEP-0059 §3, example 18): the summary is the third argument.
    #[test]
    fn paged_disco_results() {
        let xml = "<iq type='result' from='conference.localhost' id='q1'>\
            <query xmlns='http://jabber.org/protocol/disco#items'>\
            <item jid='12@conference.localhost'/>\
            <item jid='adium@conference.localhost' name='Adium'/>\
            <set xmlns='http://jabber.org/protocol/rsm'>\
            <first index='0'>12@conference.localhost</first>\
            <last>adium@conference.localhost</last><count>150</count></set></query></iq>";
        assert_eq!(
            answer(xml, Pending::DiscoItems),
            vec![
                json!(null),
                json!([
                    {"jid": "12@conference.localhost"},
                    {"jid": "adium@conference.localhost", "name": "Adium"},
                ]),
                json!({"count": 150, "first": "12@conference.localhost", "first-index": 0,
                       "last": "adium@conference.localhost"}),
            ]
        );
        // An empty page: only the count.
        let xml = "<iq type='result' id='q1'><query xmlns='http://jabber.org/protocol/disco#items'>\
            <set xmlns='http://jabber.org/protocol/rsm'><count>150</count></set></query></iq>";
        assert_eq!(
            answer(xml, Pending::DiscoItems),
            vec![json!(null), json!([]), json!({"count": 150})]
        );
        // disco#info with a <set/> (the original gateway read it there too).
        let xml = "<iq type='result' id='q1'><query xmlns='http://jabber.org/protocol/disco#info'>\
            <feature var='urn:xmpp:ping'/>\
            <set xmlns='http://jabber.org/protocol/rsm'><first>f</first><last>l</last></set>\
            </query></iq>";
        assert_eq!(
            answer(xml, Pending::DiscoInfo),
            vec![
                json!(null),
                json!([{"kind": "feature", "var": "urn:xmpp:ping"}]),
                json!({"first": "f", "last": "l"}),
            ]
        );
    }

    #[test]
    fn ping_is_asked() {
        // XEP-0199 example 1.
        let xml = "<iq from='capulet.lit' to='alice@localhost/web' id='s2c1' type='get'>\
            <ping xmlns='urn:xmpp:ping'/></iq>";
        assert_eq!(
            deliver(xml),
            vec![Out::Ask(Box::new(Ask {
                kind: Asked::Ping,
                from: "capulet.lit".into(),
                id: Some("s2c1".into()),
                node: None,
                event: "xmpp.ping",
                payload: json!({"from": {"domain": "capulet.lit"}, "id": "s2c1"}),
                auto: "<iq type='result' to='capulet.lit' id='s2c1'/>".into(),
            }))]
        );
        // The asker is named as a JID is written (the browser's `to` is parsed so too).
        let xml = "<iq from='Bob@LocalHost/Desk' type='get'><ping xmlns='urn:xmpp:ping'/></iq>";
        match &deliver(xml)[..] {
            [Out::Ask(a)] => {
                assert_eq!(
                    (a.from.as_str(), a.id.as_deref()),
                    ("bob@localhost/Desk", None)
                );
                assert_eq!(a.auto, "<iq type='result' to='Bob@LocalHost/Desk'/>");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn disco_info_request_is_asked() {
        // XEP-0115 style query on a caps node; the node is echoed, values escaped.
        let xml = "<iq from='bob@localhost/desk&apos;s' id='d&amp;1' type='get'>\
            <query xmlns='http://jabber.org/protocol/disco#info' node='https://xmpp-ftw#abc='/></iq>";
        assert_eq!(
            deliver(xml),
            vec![Out::Ask(Box::new(Ask {
                kind: Asked::DiscoInfo,
                from: "bob@localhost/desk's".into(),
                id: Some("d&1".into()),
                node: Some("https://xmpp-ftw#abc=".into()),
                event: "xmpp.discover.client",
                payload: json!({"from": "bob@localhost/desk's", "id": "d&1", "node": "https://xmpp-ftw#abc="}),
                auto: "<iq type='result' to='bob@localhost/desk&apos;s' id='d&amp;1'>\
                     <query xmlns='http://jabber.org/protocol/disco#info' node='https://xmpp-ftw#abc='>\
                     <identity category='client' type='web' name='XMPP-FTW'/>\
                     <feature var='http://jabber.org/protocol/disco#info'/>\
                     <feature var='urn:xmpp:ping'/><feature var='urn:xmpp:receipts'/>\
                     <feature var='http://jabber.org/protocol/chatstates'/>\
                     <feature var='urn:xmpp:message-correct:0'/>\
                     <feature var='http://jabber.org/protocol/xhtml-im'/></query></iq>"
                    .into(),
            }))]
        );
    }

    #[test]
    fn the_browser_answers() {
        let r = emit(
            "xmpp.discover.client",
            json!({"to": {"user": "bob", "domain": "localhost", "resource": "desk"}, "id": "d1", "features": [
                {"kind": "identity", "category": "client", "type": "web", "name": "My <App>"},
                {"kind": "feature", "var": "urn:xmpp:ping"},
                {"var": "skipped: no kind"},
                {"kind": "feature", "var": "http://jabber.org/protocol/caps"},
            ]}),
            false,
        )
        .unwrap();
        assert_eq!(
            r.answer,
            Some(Answering {
                kind: Asked::DiscoInfo,
                to: "bob@localhost/desk".into(),
                id: "d1".into(),
                inner: "<identity category='client' type='web' name='My &lt;App&gt;'/>\
                        <feature var='urn:xmpp:ping'/><feature var='http://jabber.org/protocol/caps'/>"
                    .into(),
            })
        );
        assert_eq!(
            (r.stanzas.len(), r.track, r.immediate),
            (0, None, Some(json!(true)))
        );
        let r = emit(
            "xmpp.ping.pong",
            json!({"to": "Bob@localhost/desk", "id": 7}),
            true,
        )
        .unwrap();
        assert_eq!(
            r.answer,
            Some(Answering {
                kind: Asked::Ping,
                to: "bob@localhost/desk".into(),
                id: "7".into(),
                inner: String::new(),
            })
        );
        let e = |ev, p| err(ev, p, true);
        assert_eq!(
            e("xmpp.ping.pong", json!({"to": "bob@localhost"})),
            "Missing 'id' key"
        );
        assert_eq!(e("xmpp.ping.pong", json!({"id": "1"})), "Missing 'to' key");
        assert_eq!(
            e("xmpp.discover.client", json!({"id": "1"})),
            "Missing 'to' key"
        );
        assert_eq!(
            e("xmpp.discover.client", json!({"to": "a@b"})),
            "Missing 'id' key"
        );
        for bad in [
            json!("x"),
            json!(["urn:xmpp:ping"]),
            json!([{"kind": "feature"}]),
            json!([{"kind": "identity", "category": "client"}]),
            json!([{"kind": "item", "jid": "x"}]),
            json!([{"kind": "feature", "var": {}}]),
        ] {
            assert_eq!(
                e(
                    "xmpp.discover.client",
                    json!({"to": "a@b", "id": "1", "features": bad})
                ),
                "Badly formatted 'features' key",
                "{bad}"
            );
        }
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
        // XEP-0059 §2.2 and §2.5, as the original gateway sent them.
        assert_eq!(
            tracked(
                "xmpp.discover.items",
                json!({"of": "conference.localhost", "rsm": {"max": 20, "after": "a@conference.localhost"}}),
                Pending::DiscoItems
            ),
            format!(
                "<iq {C} type='get' to='conference.localhost' id='id1'><query xmlns='http://jabber.org/protocol/disco#items'>\
                 <set xmlns='http://jabber.org/protocol/rsm'><max>20</max><after>a@conference.localhost</after></set></query></iq>"
            )
        );
        assert_eq!(
            tracked(
                "xmpp.discover.info",
                json!({"of": "localhost", "node": "n", "rsm": {"before": true}}),
                Pending::DiscoInfo
            ),
            format!(
                "<iq {C} type='get' to='localhost' id='id1'><query xmlns='http://jabber.org/protocol/disco#info' node='n'>\
                 <set xmlns='http://jabber.org/protocol/rsm'><before/></set></query></iq>"
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
        assert_eq!(
            err(
                "xmpp.discover.items",
                json!({"of": "localhost", "rsm": [1]}),
                true
            ),
            "Invalid 'rsm' value"
        );
        assert_eq!(
            err(
                "xmpp.discover.items",
                json!({"of": "localhost", "rsm": {"max": -1}}),
                true
            ),
            "Invalid 'max' value"
        );
        assert_eq!(err("xmpp.ping", json!(null), false), "Missing callback");
        assert_eq!(err("xmpp.ping", json!({"to": "a@"}), true), "Invalid JID");
    }
}
