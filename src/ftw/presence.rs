//! Presence and subscriptions with contacts, both ways (room presence is in `muc/`).
//!
//! - Rendered: `xmpp.presence` (`show`, `status`, `priority`, XEP-0115 `client: {node,
//!   ver, hash}`; `show: "offline"` when unavailable), `xmpp.presence.subscribe` (with a XEP-0172 `nick`),
//!   `xmpp.presence.subscribed`, `xmpp.presence.unsubscribe`, `xmpp.presence.unsubscribed`,
//!   `xmpp.presence.error`. Probes render nothing.
//! - Requested: `xmpp.presence` (with `client: {node, ver, hash}`, a XEP-0115 `<c/>`),
//!   `xmpp.presence.offline`, `xmpp.presence.get` (a probe),
//!   `xmpp.presence.subscribe`, `xmpp.presence.subscribed`, `xmpp.presence.unsubscribe`,
//!   `xmpp.presence.unsubscribed`; none has a callback result.
//!
//! RFC 6121 §3 (subscriptions) and §4 (availability), XEP-0115 (entity capabilities),
//! XEP-0172 (user nickname).

use std::borrow::Cow;

use super::common::{
    Obj, Outs, R, XMLNS, attr, child_text, el, error_object, event, opt_enum, opt_int, opt_jid,
    opt_nonempty, opt_obj, opt_str, opt_text, put, req, req_jid, send, sender,
};
use super::request::{Event, Request};
use super::{Ctx, jid_object};
use crate::xml::ns::CAPS as NS_CAPS;
use crate::xml::ns::NICK as NS_NICK;
use crate::xml::stanza::Stanza;
use crate::xmpp::jid::Jid;
use serde_json::Value;

/// The `<show/>` values a client may send.
const SHOWS: &[&str] = &["chat", "away", "xa", "dnd"];

// ---------------------------------------------------------------------------------------
// Stanza → events

/// A presence of type `ty` from a contact (or the MUC service outside a room).
pub(super) fn render(st: &Stanza, ctx: &Ctx, ty: Option<&str>, out: &mut Outs) {
    let from = jid_object(&sender(st, 0, ctx));
    let mut o = Obj::new();
    o.insert("from".into(), from);
    let name = match ty {
        Some("subscribe") => {
            put(&mut o, "nick", child_text(st, 0, "nick", NS_NICK));
            "xmpp.presence.subscribe"
        }
        Some("subscribed") => "xmpp.presence.subscribed",
        Some("unsubscribe") => "xmpp.presence.unsubscribe",
        Some("unsubscribed") => "xmpp.presence.unsubscribed",
        Some("error") => {
            let condition = error_object(st, 0).get("condition").cloned();
            put(&mut o, "error", condition);
            "xmpp.presence.error"
        }
        None | Some("unavailable") => {
            let show = match ty {
                Some(_) => Some(Cow::Borrowed("offline")),
                None => child_text(st, 0, "show", st.elems[0].ns).filter(|s| !s.is_empty()),
            };
            put(&mut o, "show", show);
            let status = child_text(st, 0, "status", st.elems[0].ns);
            put(&mut o, "status", status.filter(|s| !s.is_empty()));
            let priority = child_text(st, 0, "priority", st.elems[0].ns)
                .and_then(|p| p.trim().parse::<i64>().ok());
            put(&mut o, "priority", priority);
            put(&mut o, "client", caps(st));
            "xmpp.presence"
        }
        _ => return, // probe, or an unknown type
    };
    event(out, name, o);
}

/// XEP-0115 `<c/>`: `{node, ver, hash}` (the attributes it has).
fn caps(st: &Stanza) -> Option<Value> {
    let c = st.child(0, "c", NS_CAPS)?;
    let mut o = Obj::new();
    for k in ["node", "ver", "hash"] {
        put(&mut o, k, attr(st, c, k));
    }
    Some(Value::Object(o))
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// XEP-0115 `<c/>` from `client: {node, ver, hash}` (all three required), or nothing.
fn client_caps(m: &Obj) -> R<String> {
    let Some(c) = opt_obj(m, "client")? else {
        return Ok(String::new());
    };
    let node = req(opt_nonempty(c, "node")?, "node")?;
    let ver = req(opt_nonempty(c, "ver")?, "ver")?;
    let hash = req(opt_nonempty(c, "hash")?, "hash")?;
    Ok(el(
        "c",
        &[
            ("xmlns", Some(NS_CAPS)),
            ("hash", Some(&hash)),
            ("node", Some(&node)),
            ("ver", Some(&ver)),
        ],
        "",
    ))
}

/// `xmpp.presence`: availability, broadcast or directed (`to`).
pub(super) fn available(e: &Event) -> R<Request> {
    let m = e.lenient()?;
    let to = opt_jid(m, "to")?;
    let ty = opt_enum(m, "type", &["unavailable"])?;
    let show = opt_enum(m, "show", SHOWS)?;
    let status = opt_str(m, "status")?;
    let priority = opt_int(m, "priority", -128..=127)?.map(|p| p.to_string());
    let inner = opt_text("show", show)
        + &opt_text("status", status.as_deref())
        + &opt_text("priority", priority.as_deref())
        + &client_caps(m)?;
    let to = to.as_ref().map(Jid::as_str);
    Ok(send(
        el("presence", &[XMLNS, ("type", ty), ("to", to)], &inner),
        None,
    ))
}

/// `xmpp.presence.offline`: the payload is ignored.
pub(super) fn offline() -> Request {
    send(
        el("presence", &[XMLNS, ("type", Some("unavailable"))], ""),
        None,
    )
}

/// `xmpp.presence.get` (a probe to the full JID) and the four subscription events (to the
/// bare JID).
pub(super) fn typed(e: &Event) -> R<Request> {
    let m = e.obj()?;
    let to = req_jid(m, "to")?;
    let ty = if e.name == "presence.get" {
        "probe"
    } else {
        &e.name["presence.".len()..]
    };
    let to = if ty == "probe" {
        to.as_str()
    } else {
        to.bare()
    };
    Ok(send(
        el(
            "presence",
            &[XMLNS, ("type", Some(ty)), ("to", Some(to))],
            "",
        ),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn subscriptions() {
        // RFC 6121 §3.1.3 with a XEP-0172 nick.
        let xml = "<presence from='juliet@example.com' id='xk3h1v69' to='alice@localhost' \
            type='subscribe'><nick xmlns='http://jabber.org/protocol/nick'>Juliet</nick></presence>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.presence.subscribe",
                json!({
                    "from": {"user": "juliet", "domain": "example.com"}, "nick": "Juliet",
                })
            )]
        );
        for (ty, name) in [
            ("subscribed", "xmpp.presence.subscribed"),
            ("unsubscribe", "xmpp.presence.unsubscribe"),
            ("unsubscribed", "xmpp.presence.unsubscribed"),
        ] {
            let xml = format!("<presence from='juliet@example.com' type='{ty}'/>");
            assert_eq!(
                deliver(&xml),
                vec![ev(
                    name,
                    json!({"from": {"user": "juliet", "domain": "example.com"}})
                )]
            );
        }
    }

    #[test]
    fn presence_error_and_probe() {
        let xml = "<presence xmlns='jabber:client' from='juliet@example.com' type='error'>\
            <error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
            </error></presence>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.presence.error",
                json!({
                    "from": {"user": "juliet", "domain": "example.com"},
                    "error": "remote-server-not-found",
                })
            )]
        );
        assert_eq!(deliver("<presence from='localhost' type='probe'/>"), vec![]);
    }

    #[test]
    fn availability() {
        // RFC 6121 §4.7 examples.
        let xml = "<presence xmlns='jabber:client' from='romeo@example.net/orchard' \
            to='alice@localhost/web'><show>dnd</show><status>Wooing Juliet</status>\
            <priority>1</priority></presence>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.presence",
                json!({
                    "from": {"user": "romeo", "domain": "example.net", "resource": "orchard"},
                    "show": "dnd", "status": "Wooing Juliet", "priority": 1,
                })
            )]
        );
        let xml = "<presence from='romeo@example.net/orchard' type='unavailable'>\
            <status>Gone home</status><priority>x</priority></presence>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.presence",
                json!({
                    "from": {"user": "romeo", "domain": "example.net", "resource": "orchard"},
                    "show": "offline", "status": "Gone home",
                })
            )]
        );
        // Presence from a JID on the MUC domain without a resource and no x: nothing breaks.
        assert_eq!(deliver("<presence from='conference.localhost'/>"), vec![]);
    }

    #[test]
    fn presence() {
        let (x, t, i) = one(
            "xmpp.presence",
            json!({"show": "away", "status": "a<b & 'c'", "priority": -5}),
        );
        assert_eq!(
            x,
            format!(
                "<presence {C}><show>away</show><status>a&lt;b &amp; 'c'</status><priority>-5</priority></presence>"
            )
        );
        assert_eq!((t, i), (None, None));
        assert_eq!(
            xml("xmpp.presence", json!(null)),
            format!("<presence {C}/>")
        );
        assert_eq!(
            xml(
                "xmpp.presence",
                json!({"to": {"user": "bob", "domain": "localhost", "resource": "r'1"}, "type": "unavailable", "priority": "3"})
            ),
            format!(
                "<presence {C} type='unavailable' to='bob@localhost/r&apos;1'><priority>3</priority></presence>"
            )
        );
        assert_eq!(
            xml("xmpp.presence.offline", json!(null)),
            format!("<presence {C} type='unavailable'/>")
        );
        assert_eq!(
            xml("xmpp.presence.get", json!({"to": "Bob@localhost/x"})),
            format!("<presence {C} type='probe' to='bob@localhost/x'/>")
        );
        for ty in ["subscribe", "subscribed", "unsubscribe", "unsubscribed"] {
            assert_eq!(
                xml(
                    &format!("xmpp.presence.{ty}"),
                    json!({"to": "bob@localhost/x"})
                ),
                format!("<presence {C} type='{ty}' to='bob@localhost'/>")
            );
        }
    }

    #[test]
    fn caps_both_ways() {
        // XEP-0115 example 1, and the original gateway's fixture (presence/xep-0115).
        let x = "<presence from='romeo@montague.lit/orchard'>\
            <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' \
            node='http://code.google.com/p/exodus' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>";
        assert_eq!(
            deliver(x),
            vec![ev(
                "xmpp.presence",
                json!({
                    "from": {"user": "romeo", "domain": "montague.lit", "resource": "orchard"},
                    "client": {"node": "http://code.google.com/p/exodus",
                               "ver": "QgayPKawpkPSDYmwT/WM94uAlu0=", "hash": "sha-1"},
                })
            )]
        );
        let x = "<presence from='juliet@example.com/balcony' type='unavailable'>\
            <c xmlns='http://jabber.org/protocol/caps' hash='hash-value' node='node-value' \
            ver='ver-value'/></presence>";
        assert_eq!(
            deliver(x),
            vec![ev(
                "xmpp.presence",
                json!({
                    "from": {"user": "juliet", "domain": "example.com", "resource": "balcony"},
                    "show": "offline",
                    "client": {"node": "node-value", "ver": "ver-value", "hash": "hash-value"},
                })
            )]
        );
        // A <c/> in another namespace is not caps.
        assert_eq!(
            deliver("<presence from='a@b/c'><c xmlns='urn:other' node='n'/></presence>"),
            vec![ev(
                "xmpp.presence",
                json!({"from": {"user": "a", "domain": "b", "resource": "c"}})
            )]
        );
        assert_eq!(
            xml(
                "xmpp.presence",
                json!({"show": "chat", "client": {"node": "https://app.example/#x", "ver": "a'b=", "hash": "sha-1"}})
            ),
            format!(
                "<presence {C}><show>chat</show><c xmlns='http://jabber.org/protocol/caps' \
                 hash='sha-1' node='https://app.example/#x' ver='a&apos;b='/></presence>"
            )
        );
        let e = |client| err("xmpp.presence", json!({ "client": client }), false);
        assert_eq!(e(json!("sha-1")), "Invalid 'client' value");
        assert_eq!(e(json!({"ver": "v", "hash": "h"})), "Missing 'node' key");
        assert_eq!(e(json!({"node": "n", "hash": "h"})), "Missing 'ver' key");
        assert_eq!(
            e(json!({"node": "n", "ver": "v", "hash": ""})),
            "Missing 'hash' key"
        );
        assert_eq!(
            e(json!({"node": "n", "ver": [], "hash": "h"})),
            "Invalid 'ver' value"
        );
    }

    #[test]
    fn presence_errors() {
        assert_eq!(
            err("xmpp.presence", json!("x"), false),
            "Message not an object"
        );
        assert_eq!(
            err("xmpp.presence", json!({"type": "probe"}), false),
            "Invalid 'type' value"
        );
        assert_eq!(
            err("xmpp.presence", json!({"show": "busy"}), false),
            "Invalid 'show' value"
        );
        assert_eq!(
            err("xmpp.presence", json!({"priority": 128}), false),
            "Invalid 'priority' value"
        );
        assert_eq!(
            err("xmpp.presence", json!({"priority": 1.5}), false),
            "Invalid 'priority' value"
        );
        assert_eq!(
            err("xmpp.presence", json!({"status": {}}), false),
            "Invalid 'status' value"
        );
        assert_eq!(
            err("xmpp.presence", json!({"to": "a@b@c"}), false),
            "Invalid JID"
        );
        assert_eq!(
            err("xmpp.presence.subscribe", json!({}), false),
            "Missing 'to' key"
        );
        assert_eq!(
            err("xmpp.presence.get", json!(null), false),
            "Message not an object"
        );
        assert_eq!(
            err("xmpp.presence.get", json!({"to": {"user": "x"}}), false),
            "Invalid JID"
        );
        assert_eq!(
            err("xmpp.presence.get", json!({"to": 5}), false),
            "Invalid JID"
        );
    }
}
