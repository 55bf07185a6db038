//! The roster, both ways.
//!
//! - Rendered: the callback of `xmpp.roster.get` (`[item...]`), and `xmpp.roster.push` for
//!   each item of a roster push, which is acknowledged on the session's behalf; a push from
//!   anyone but the user's own account is refused.
//! - Requested: `xmpp.roster.get`, `xmpp.roster.add`, `xmpp.roster.edit`,
//!   `xmpp.roster.group`, `xmpp.roster.remove` (all need a callback; the last four answer
//!   `true`).
//!
//! RFC 6121 §2 (roster management).

use std::borrow::Cow;

use super::common::{
    Obj, Outs, R, attr, bare, client, el, event, iq, iq_reply, kids, opt_array, opt_str, put,
    req_jid, text,
};
use super::render::Out;
use super::request::{Event, Request};
use super::{Ctx, Pending, ReqError, jid_object};
use crate::xml::ns::ROSTER as NS_ROSTER;
use crate::xml::stanza::Stanza;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Stanza → events

/// The callback arguments' list of a roster get result.
pub(super) fn result(st: &Stanza) -> Value {
    st.child(0, "query", NS_ROSTER)
        .map(|q| {
            kids(st, q, "item", NS_ROSTER)
                .filter_map(|i| item(st, i))
                .collect()
        })
        .unwrap_or_else(|| json!([]))
}

/// RFC 6121 §2.1.6: a roster push comes from the user's own account (no `from`, or the
/// bare JID); anything else is a spoof.
pub(super) fn push_allowed(st: &Stanza, ctx: &Ctx) -> bool {
    attr(st, 0, "from").is_none_or(|f| f.eq_ignore_ascii_case(bare(ctx.jid)))
}

/// A roster push with query `q`: `xmpp.roster.push` per item, and the acknowledgement.
pub(super) fn push(st: &Stanza, q: usize, out: &mut Outs) {
    for i in kids(st, q, "item", NS_ROSTER) {
        if let Some(Value::Object(o)) = item(st, i) {
            event(out, "xmpp.roster.push", o);
        }
    }
    out.push(Out::Reply(iq_reply(st, "result", "")));
}

/// A roster `<item/>`: `{jid, subscription, name?, ask?, groups?}`; `None` without a jid.
fn item(st: &Stanza, item: usize) -> Option<Value> {
    let mut o = Obj::new();
    o.insert("jid".into(), jid_object(&attr(st, item, "jid")?));
    let subscription = attr(st, item, "subscription");
    o.insert(
        "subscription".into(),
        subscription.unwrap_or(Cow::Borrowed("none")).into(),
    );
    put(&mut o, "name", attr(st, item, "name"));
    put(&mut o, "ask", attr(st, item, "ask"));
    let groups: Vec<Value> = kids(st, item, "group", NS_ROSTER)
        .map(|g| st.text(g).into())
        .collect();
    if !groups.is_empty() {
        o.insert("groups".into(), groups.into());
    }
    Some(Value::Object(o))
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// `xmpp.roster.get`: the callback gets the items.
pub(super) fn get(new_id: &mut dyn FnMut() -> String) -> Request {
    iq(
        "get",
        None,
        &el("query", &[("xmlns", Some(NS_ROSTER))], ""),
        Pending::Roster,
        new_id,
    )
}

/// `xmpp.roster.add`, `.edit`, `.group` (an item with its name and groups; only `add` may
/// leave out `groups`) and `.remove`.
pub(super) fn set(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let jid = req_jid(m, "jid")?;
    let item = if e.name == "roster.remove" {
        el(
            "item",
            &[("jid", Some(jid.bare())), ("subscription", Some("remove"))],
            "",
        )
    } else {
        let name = opt_str(m, "name")?;
        let groups = match opt_array(m, "groups")? {
            None if e.name != "roster.add" => return client("Missing 'groups' key"),
            g => g.map_or(&[][..], |g| g),
        };
        let mut inner = String::new();
        for g in groups {
            inner += &text(
                "group",
                g.as_str()
                    .ok_or_else(|| ReqError::Client("Invalid 'groups' value".into()))?,
            );
        }
        el(
            "item",
            &[("jid", Some(jid.bare())), ("name", name.as_deref())],
            &inner,
        )
    };
    let query = el("query", &[("xmlns", Some(NS_ROSTER))], &item);
    Ok(iq("set", None, &query, Pending::True, new_id))
}

#[cfg(test)]
mod tests {
    use super::super::Pending;
    use super::super::render::Out;
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn roster_result() {
        // RFC 6121 §2.1.4.
        let xml = "<iq xmlns='jabber:client' id='q1' to='alice@localhost/web' type='result'>\
            <query xmlns='jabber:iq:roster' ver='ver11'>\
            <item jid='romeo@example.net' name='Romeo' subscription='both'>\
            <group>Friends</group><group>Lovers</group></item>\
            <item jid='mercutio@example.com' name='Mercutio' subscription='from'/>\
            <item jid='benvolio@example.net' ask='subscribe'/>\
            <item name='no jid'/></query></iq>";
        assert_eq!(
            answer(xml, Pending::Roster),
            vec![
                json!(null),
                json!([
                    {"jid": {"user": "romeo", "domain": "example.net"}, "name": "Romeo",
                     "subscription": "both", "groups": ["Friends", "Lovers"]},
                    {"jid": {"user": "mercutio", "domain": "example.com"}, "name": "Mercutio",
                     "subscription": "from"},
                    {"jid": {"user": "benvolio", "domain": "example.net"},
                     "subscription": "none", "ask": "subscribe"},
                ])
            ]
        );
        // An empty result (roster versioning) is an empty list.
        assert_eq!(
            answer("<iq type='result' id='q1'/>", Pending::Roster),
            vec![json!(null), json!([])]
        );
    }

    #[test]
    fn roster_push_is_acknowledged() {
        // RFC 6121 §2.1.6, from the bare JID and without from; removal passes through.
        let xml = "<iq xmlns='jabber:client' from='alice@localhost' id='a78b4q6ha463' \
            to='alice@localhost/web' type='set'><query xmlns='jabber:iq:roster'>\
            <item jid='nurse@example.com' name='Nurse' subscription='none' ask='subscribe'>\
            <group>Servants</group></item></query></iq>";
        assert_eq!(
            deliver(xml),
            vec![
                ev(
                    "xmpp.roster.push",
                    json!({
                        "jid": {"user": "nurse", "domain": "example.com"}, "name": "Nurse",
                        "subscription": "none", "ask": "subscribe", "groups": ["Servants"],
                    })
                ),
                Out::Reply("<iq type='result' to='alice@localhost' id='a78b4q6ha463'/>".into()),
            ]
        );
        let xml = "<iq id='p2' type='set'><query xmlns='jabber:iq:roster'>\
            <item jid='nurse@example.com' subscription='remove'/></query></iq>";
        assert_eq!(
            deliver(xml),
            vec![
                ev(
                    "xmpp.roster.push",
                    json!({
                        "jid": {"user": "nurse", "domain": "example.com"}, "subscription": "remove",
                    })
                ),
                Out::Reply("<iq type='result' id='p2'/>".into()),
            ]
        );
    }

    #[test]
    fn spoofed_roster_push_is_refused() {
        let xml = "<iq from='mallory@evil.example/x' id='p3' type='set'>\
            <query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>";
        assert_eq!(
            deliver(xml),
            vec![Out::Reply(
                "<iq type='error' to='mallory@evil.example/x' id='p3'><error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                    .into()
            )]
        );
    }

    #[test]
    fn roster() {
        assert_eq!(
            tracked("xmpp.roster.get", json!({}), Pending::Roster),
            format!("<iq {C} type='get' id='id1'><query xmlns='jabber:iq:roster'/></iq>")
        );
        assert_eq!(
            tracked(
                "xmpp.roster.add",
                json!({"jid": "bob@localhost", "name": "B'<&", "groups": ["a&b", "c"]}),
                Pending::True
            ),
            format!(
                "<iq {C} type='set' id='id1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='B&apos;&lt;&amp;'>\
                 <group>a&amp;b</group><group>c</group></item></query></iq>"
            )
        );
        assert_eq!(
            xml("xmpp.roster.add", json!({"jid": "bob@localhost"})),
            format!(
                "<iq {C} type='set' id='id1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>"
            )
        );
        for ev in ["xmpp.roster.edit", "xmpp.roster.group"] {
            assert_eq!(
                tracked(
                    ev,
                    json!({"jid": "bob@localhost", "groups": []}),
                    Pending::True
                ),
                format!(
                    "<iq {C} type='set' id='id1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>"
                )
            );
        }
        assert_eq!(
            tracked(
                "xmpp.roster.remove",
                json!({"jid": "bob@localhost"}),
                Pending::True
            ),
            format!(
                "<iq {C} type='set' id='id1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>"
            )
        );
    }

    #[test]
    fn roster_errors() {
        for ev in ["get", "add", "edit", "group", "remove"] {
            assert_eq!(
                err(&format!("xmpp.roster.{ev}"), json!("nope"), false),
                "Missing callback"
            );
        }
        assert_eq!(
            err("xmpp.roster.add", json!([]), true),
            "Message not an object"
        );
        assert_eq!(err("xmpp.roster.add", json!({}), true), "Missing 'jid' key");
        assert_eq!(
            err("xmpp.roster.add", json!({"jid": "@x"}), true),
            "Invalid JID"
        );
        assert_eq!(
            err(
                "xmpp.roster.add",
                json!({"jid": "a@b", "groups": "g"}),
                true
            ),
            "Invalid 'groups' value"
        );
        assert_eq!(
            err(
                "xmpp.roster.add",
                json!({"jid": "a@b", "groups": [1]}),
                true
            ),
            "Invalid 'groups' value"
        );
        assert_eq!(
            err("xmpp.roster.edit", json!({"jid": "a@b"}), true),
            "Missing 'groups' key"
        );
        assert_eq!(
            err("xmpp.roster.remove", json!({}), true),
            "Missing 'jid' key"
        );
    }
}
