//! One-to-one chat, both ways.
//!
//! - Rendered: `xmpp.chat.message` (body, or an XHTML body as `format: "xhtml"`; chat
//!   state, receipt request, correction, delay, stanza ids), `xmpp.chat.receipt`,
//!   `xmpp.chat.error`. Headlines and XEP-0280 carbon copies render nothing.
//! - Requested: `xmpp.chat.message` (answers `{id}`; `format: "xhtml"` adds the XHTML
//!   body), `xmpp.chat.receipt` (answers `true`).
//!
//! RFC 6121 §5 (messages), XEP-0085 (chat states), XEP-0184 (receipts), XEP-0308 (last
//! message correction), XEP-0203 (delay), XEP-0359 (stanza ids), XEP-0071 (XHTML-IM, in
//! `xhtml.rs`). The message fields read and written here are shared with rooms (`muc/`)
//! and the archive (`mam.rs`).

use super::common::{
    Obj, Outs, R, attr, client, el, error_object, event, kids, message, message_with_id, opt_enum,
    opt_nonempty, opt_text, own, put, req_jid, req_str, send, sender,
};
use super::render::Out;
use super::request::{Event, Request};
use super::{Ctx, jid_object, xhtml};
use crate::xml::ns::CARBONS as NS_CARBONS;
use crate::xml::ns::CHATSTATES as NS_CHATSTATES;
use crate::xml::ns::CORRECT as NS_CORRECT;
use crate::xml::ns::DELAY as NS_DELAY;
use crate::xml::ns::RECEIPTS as NS_RECEIPTS;
use crate::xml::ns::SID as NS_SID;
use crate::xml::stanza::Stanza;
use serde_json::{Value, json};

/// XEP-0085 chat states a message may carry.
const STATES: &[&str] = &["active", "composing", "paused", "inactive", "gone"];

// ---------------------------------------------------------------------------------------
// Stanza → events

/// A message of type `ty` from a contact (not a room, not an archive result).
pub(super) fn render(st: &Stanza, ctx: &Ctx, ty: &str, out: &mut Outs) {
    let carbon = st.children(0).any(|c| {
        let el = &st.elems[c];
        el.ns == NS_CARBONS && matches!(el.local, "received" | "sent")
    });
    if carbon {
        return;
    }
    let from = sender(st, 0, ctx);
    match ty {
        "error" => {
            let mut o = Obj::new();
            o.insert("from".into(), jid_object(&from));
            put(&mut o, "id", attr(st, 0, "id"));
            o.insert("error".into(), error_object(st, 0));
            event(out, "xmpp.chat.error", o);
        }
        "chat" | "normal" => {
            if let Some(r) = st.child(0, "received", NS_RECEIPTS)
                && let Some(id) = attr(st, r, "id").or_else(|| attr(st, 0, "id"))
            {
                let payload = json!({ "from": jid_object(&from), "id": id });
                out.push(Out::Event {
                    name: "xmpp.chat.receipt",
                    payload,
                });
            }
            let o = chat_fields(st, 0, &from);
            if ["content", "state", "replace"]
                .iter()
                .any(|k| o.contains_key(*k))
            {
                event(out, "xmpp.chat.message", o);
            }
        }
        _ => {} // headline, or groupchat from outside the MUC service
    }
}

/// The fields of `xmpp.chat.message` read from message `m`.
pub(super) fn chat_fields(st: &Stanza, m: usize, from: &str) -> Obj {
    let mut o = Obj::new();
    o.insert("from".into(), jid_object(from));
    content_and_state(st, m, &mut o);
    put(&mut o, "delay", delay(st, m));
    if st.child(m, "request", NS_RECEIPTS).is_some() {
        o.insert("receipt".into(), true.into());
    }
    let replace = st.child(m, "replace", NS_CORRECT);
    put(&mut o, "replace", replace.and_then(|r| attr(st, r, "id")));
    put(&mut o, "archived", archived(st, m));
    put(&mut o, "id", attr(st, m, "id"));
    o
}

/// `content` from `<body/>` (or, with `format: "xhtml"`, from a XEP-0071 `<html/>`,
/// sanitized) and `state` from a XEP-0085 chat state. Shared with rooms and the archive.
pub(super) fn content_and_state(st: &Stanza, m: usize, o: &mut Obj) {
    match xhtml::render(st, m) {
        Some(x) => {
            o.insert("content".into(), x.into());
            o.insert("format".into(), "xhtml".into());
        }
        None => put(o, "content", own(st, m, "body").map(|b| st.text(b))),
    }
    let state = st.children(m).find(|&c| st.elems[c].ns == NS_CHATSTATES);
    put(o, "state", state.map(|c| st.elems[c].local));
}

/// XEP-0203 `<delay/>` under `e`: `{when, from?, reason?}`.
pub(super) fn delay(st: &Stanza, e: usize) -> Option<Value> {
    let d = st.child(e, "delay", NS_DELAY)?;
    let mut o = Obj::new();
    o.insert("when".into(), attr(st, d, "stamp")?.into());
    put(&mut o, "from", attr(st, d, "from"));
    let reason = st.text(d);
    put(&mut o, "reason", (!reason.is_empty()).then_some(reason));
    Some(Value::Object(o))
}

/// XEP-0359 stanza ids: `[{by, id}...]`, `None` when there are none.
pub(super) fn archived(st: &Stanza, m: usize) -> Option<Value> {
    let ids: Vec<Value> = kids(st, m, "stanza-id", NS_SID)
        .filter_map(|s| {
            let (by, id) = (attr(st, s, "by")?, attr(st, s, "id")?);
            Some(json!({ "by": jid_object(&by), "id": id }))
        })
        .collect();
    (!ids.is_empty()).then(|| ids.into())
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// Whether the payload asks for a XEP-0184 receipt (then it needs a callback).
pub(super) fn wants_receipt(payload: &Value) -> bool {
    payload.get("receipt") == Some(&Value::Bool(true))
}

/// `xmpp.chat.message`: answers `{id}`.
pub(super) fn send_message(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let to = req_jid(m, "to")?;
    let mut inner = body_and_state(m)?;
    if wants_receipt(e.payload) {
        inner += &el("request", &[("xmlns", Some(NS_RECEIPTS))], "");
    }
    if let Some(r) = opt_nonempty(m, "replace")? {
        inner += &el(
            "replace",
            &[("id", Some(&r)), ("xmlns", Some(NS_CORRECT))],
            "",
        );
    }
    Ok(message_with_id("chat", to.as_str(), &inner, new_id))
}

/// `xmpp.chat.receipt`: answers `true`.
pub(super) fn send_receipt(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let to = req_jid(m, "to")?;
    let id = req_str(m, "id")?;
    let inner = el(
        "received",
        &[("xmlns", Some(NS_RECEIPTS)), ("id", Some(&id))],
        "",
    );
    Ok(send(
        message(None, to.as_str(), &inner, new_id).1,
        Some(Value::Bool(true)),
    ))
}

/// `<body>` (and, with `format: "xhtml"`, the XEP-0071 `<html/>`) and chat state of a
/// chat or groupchat message; content or state is required. Shared with rooms.
pub(super) fn body_and_state(m: &Obj) -> R<String> {
    let content = opt_nonempty(m, "content")?;
    let state = opt_enum(m, "state", STATES)?;
    let format = opt_enum(m, "format", xhtml::FORMATS)?;
    if content.is_none() && state.is_none() {
        return client("Message content or chat state not provided");
    }
    let mut s = match (format, content.as_deref()) {
        (Some("xhtml"), Some(c)) => xhtml::message_bodies(c)?,
        (_, c) => opt_text("body", c),
    };
    if let Some(st) = state {
        s += &el(st, &[("xmlns", Some(NS_CHATSTATES))], "");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn chat_message_with_everything() {
        // XEP-0184 example 1, XEP-0085 example 2, XEP-0308 example 2, XEP-0203, XEP-0359.
        let xml = "<message xmlns='jabber:client' from='bob@localhost/desk' \
            to='alice@localhost/web' type='chat' id='bad1'>\
            <body>But soft, what light through yonder window breaks?</body>\
            <active xmlns='http://jabber.org/protocol/chatstates'/>\
            <request xmlns='urn:xmpp:receipts'/>\
            <replace id='bad0' xmlns='urn:xmpp:message-correct:0'/>\
            <delay xmlns='urn:xmpp:delay' from='localhost' stamp='2002-09-10T23:08:25Z'>Offline Storage</delay>\
            <stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='s-1'/></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.chat.message",
                json!({
                    "from": {"user": "bob", "domain": "localhost", "resource": "desk"},
                    "content": "But soft, what light through yonder window breaks?",
                    "state": "active",
                    "receipt": true,
                    "replace": "bad0",
                    "delay": {"when": "2002-09-10T23:08:25Z", "from": "localhost", "reason": "Offline Storage"},
                    "archived": [{"by": {"user": "alice", "domain": "localhost"}, "id": "s-1"}],
                    "id": "bad1",
                })
            )]
        );
    }

    #[test]
    fn chat_state_only_and_plain_messages() {
        let xml = "<message from='bob@localhost/desk' type='chat'>\
            <composing xmlns='http://jabber.org/protocol/chatstates'/></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.chat.message",
                json!({
                    "from": {"user": "bob", "domain": "localhost", "resource": "desk"},
                    "state": "composing",
                })
            )]
        );
        let xml = "<message from='bob@localhost'><body>hi</body></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.chat.message",
                json!({
                    "from": {"user": "bob", "domain": "localhost"}, "content": "hi",
                })
            )]
        );
        // Nothing to show: no event.
        assert_eq!(
            deliver("<message from='bob@localhost' type='chat'><thread>t</thread></message>"),
            vec![]
        );
    }

    #[test]
    fn receipt() {
        // XEP-0184 example 2, and a receipt travelling with a chat state.
        let xml = "<message from='bob@localhost/desk' id='bi29sg183b4v' to='alice@localhost/web'>\
            <received xmlns='urn:xmpp:receipts' id='richard2-4.1.247'/></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.chat.receipt",
                json!({
                    "from": {"user": "bob", "domain": "localhost", "resource": "desk"},
                    "id": "richard2-4.1.247",
                })
            )]
        );
        let xml = "<message from='bob@localhost/desk' type='chat'>\
            <received xmlns='urn:xmpp:receipts' id='m9'/>\
            <paused xmlns='http://jabber.org/protocol/chatstates'/></message>";
        assert_eq!(
            deliver(xml),
            vec![
                ev(
                    "xmpp.chat.receipt",
                    json!({
                        "from": {"user": "bob", "domain": "localhost", "resource": "desk"}, "id": "m9",
                    })
                ),
                ev(
                    "xmpp.chat.message",
                    json!({
                        "from": {"user": "bob", "domain": "localhost", "resource": "desk"},
                        "state": "paused",
                    })
                ),
            ]
        );
    }

    #[test]
    fn chat_error() {
        let xml = "<message xmlns='jabber:client' from='nobody@localhost' to='alice@localhost/web' \
            type='error' id='m1'><body>hi</body><error type='cancel'>\
            <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.chat.error",
                json!({
                    "from": {"user": "nobody", "domain": "localhost"}, "id": "m1",
                    "error": {"type": "cancel", "condition": "service-unavailable"},
                })
            )]
        );
    }

    #[test]
    fn headlines_carbons_and_stray_groupchat_render_nothing() {
        for xml in [
            "<message from='news.localhost' type='headline'><body>Extra!</body></message>",
            // XEP-0280 example 12.
            "<message xmlns='jabber:client' from='alice@localhost' to='alice@localhost/web' type='chat'>\
             <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client' from='bob@localhost/desk' to='alice@localhost/phone' type='chat'>\
             <body>What man art thou?</body></message></forwarded></received></message>",
            "<message from='room@elsewhere.example/nick' type='groupchat'><body>x</body></message>",
        ] {
            assert_eq!(deliver(xml), vec![], "{xml}");
        }
    }

    #[test]
    fn chat() {
        let (x, t, i) = one(
            "xmpp.chat.message",
            json!({"to": "bob@localhost", "content": "<hi> & 'bye'", "state": "active", "receipt": true, "replace": "o'ld"}),
        );
        assert_eq!(
            x,
            format!(
                "<message {C} type='chat' to='bob@localhost' id='id1'><body>&lt;hi&gt; &amp; 'bye'</body>\
                 <active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/>\
                 <replace id='o&apos;ld' xmlns='urn:xmpp:message-correct:0'/></message>"
            )
        );
        assert_eq!((t, i), (None, Some(json!({"id": "id1"}))));
        let r = emit(
            "xmpp.chat.message",
            json!({"to": "bob@localhost", "state": "composing"}),
            false,
        )
        .unwrap();
        assert_eq!(
            r.stanzas,
            [format!(
                "<message {C} type='chat' to='bob@localhost' id='id1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
            )]
        );
        let (x, t, i) = one(
            "xmpp.chat.receipt",
            json!({"to": "bob@localhost/r", "id": "m'1"}),
        );
        assert_eq!(
            x,
            format!(
                "<message {C} to='bob@localhost/r' id='id1'><received xmlns='urn:xmpp:receipts' id='m&apos;1'/></message>"
            )
        );
        assert_eq!((t, i), (None, Some(json!(true))));
    }

    #[test]
    fn chat_errors() {
        let e = |p| err("xmpp.chat.message", p, false);
        assert_eq!(
            e(json!({"to": "bob@localhost", "content": "x", "receipt": true})),
            "Missing callback"
        );
        assert_eq!(e(json!(7)), "Message not an object");
        assert_eq!(e(json!({"content": "x"})), "Missing 'to' key");
        assert_eq!(e(json!({"to": "bob@", "content": "x"})), "Invalid JID");
        assert_eq!(
            e(json!({"to": "bob@localhost", "state": "typing"})),
            "Invalid 'state' value"
        );
        assert_eq!(
            e(json!({"to": "bob@localhost"})),
            "Message content or chat state not provided"
        );
        assert_eq!(
            e(json!({"to": "bob@localhost", "content": ""})),
            "Message content or chat state not provided"
        );
        assert_eq!(
            err("xmpp.chat.receipt", json!({"to": "bob@localhost"}), false),
            "Missing 'id' key"
        );
        assert_eq!(
            err("xmpp.chat.receipt", json!({"id": "1"}), false),
            "Missing 'to' key"
        );
    }
}
