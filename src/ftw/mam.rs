//! The message archive, both ways.
//!
//! - Rendered: `xmpp.mam.message` for each archived message of a query (the chat fields of
//!   `xmpp.chat.message` plus `mam {to?, id?, queryId?}`), trusted only from the user's
//!   own archive or a room's; the callback of `xmpp.mam.query` as `(null, echo, rsm)`.
//! - Requested: `xmpp.mam.query` (`with`, `start`, `end`, `queryId`, `rsm`) and
//!   `xmpp.mam.preferences` (answers `true`); both need a callback. The `rsm` object and
//!   the summary are `rsm.rs`'s, shared with discovery.
//!
//! XEP-0313 (message archive management), XEP-0059 (result set management), XEP-0297
//! (forwarded messages).

use super::chat::{chat_fields, delay};
use super::common::{
    Obj, Outs, R, addr, attr, bare, el, event, iq, opt_array, opt_jid, opt_str, put, req_enum,
    sender, text,
};
use super::forms::submit_form;
use super::muc::from_room;
use super::request::{Event, Request};
use super::rsm;
use super::{Ctx, Pending, jid_object};
use crate::xml::ns::MAM as NS_MAM;
use crate::xml::stanza::Stanza;
use serde_json::Value;

/// The `default` values of archiving preferences.
const MAM_DEFAULTS: &[&str] = &["always", "never", "roster"];

// ---------------------------------------------------------------------------------------
// Stanza → events

/// Archive results come from the user's own archive (no `from`, or the bare JID) or from
/// a room's; anyone else could forge history.
pub(super) fn trusted(ctx: &Ctx, from: Option<&str>) -> bool {
    from.is_none_or(|f| f.eq_ignore_ascii_case(bare(ctx.jid)) || from_room(ctx, f).is_some())
}

/// `xmpp.mam.message`: the forwarded message's chat fields plus `mam {to?, id?, queryId?}`.
pub(super) fn render_result(st: &Stanza, ctx: &Ctx, result: usize, out: &mut Outs) {
    let Some(fwd) = st
        .children(result)
        .find(|&c| st.elems[c].local == "forwarded")
    else {
        return;
    };
    let Some(inner) = st.children(fwd).find(|&c| st.elems[c].local == "message") else {
        return;
    };
    let mut o = chat_fields(st, inner, &sender(st, inner, ctx));
    put(&mut o, "delay", delay(st, fwd));
    let mut mam = Obj::new();
    if let Some(to) = attr(st, inner, "to") {
        mam.insert("to".into(), jid_object(&to));
    }
    put(&mut mam, "id", attr(st, result, "id"));
    put(&mut mam, "queryId", attr(st, result, "queryid"));
    o.insert("mam".into(), Value::Object(mam));
    event(out, "xmpp.mam.message", o);
}

/// The RSM summary of a MAM `<fin/>`: `{count?, first?, first-index?, last?, complete}`.
pub(super) fn fin(st: &Stanza) -> Value {
    let fin = st.child(0, "fin", NS_MAM);
    let mut o = fin.and_then(|f| rsm::summary(st, f)).unwrap_or_default();
    let complete = fin.and_then(|f| attr(st, f, "complete"));
    o.insert(
        "complete".into(),
        matches!(complete.as_deref(), Some("true" | "1")).into(),
    );
    Value::Object(o)
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// `xmpp.mam.query`: the callback gets back what was asked (`echo`) and the RSM summary.
pub(super) fn query(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.lenient()?;
    let query_id = opt_str(m, "queryId")?;
    let mut echo = Obj::new();
    let mut fields = vec![];
    if let Some(with) = opt_jid(m, "with")? {
        echo.insert("with".into(), with.as_str().into());
        fields.push(("with".to_string(), None, vec![with.as_str().to_string()]));
    }
    for k in ["start", "end"] {
        if let Some(v) = opt_str(m, k)? {
            echo.insert(k.into(), v.clone().into());
            fields.push((k.to_string(), None, vec![v]));
        }
    }
    let mut inner = submit_form(NS_MAM, &fields);
    inner += &rsm::request(m)?;
    let query_id = query_id.unwrap_or_else(&mut *new_id);
    let query = el(
        "query",
        &[("xmlns", Some(NS_MAM)), ("queryid", Some(&query_id))],
        &inner,
    );
    let pending = Pending::Mam {
        echo: Value::Object(echo),
    };
    Ok(iq("set", None, &query, pending, new_id))
}

/// `xmpp.mam.preferences`: `default`, and the `always` / `never` JID lists.
pub(super) fn preferences(e: &Event, new_id: &mut dyn FnMut() -> String) -> R<Request> {
    let m = e.obj()?;
    let default = req_enum(m, "default", MAM_DEFAULTS)?;
    let mut inner = String::new();
    for k in ["always", "never"] {
        let mut jids = String::new();
        for v in opt_array(m, k)?.map_or(&[][..], |a| a) {
            jids += &text("jid", addr(v)?.as_str());
        }
        inner += &el(k, &[], &jids);
    }
    let prefs = el(
        "prefs",
        &[("xmlns", Some(NS_MAM)), ("default", Some(default))],
        &inner,
    );
    Ok(iq("set", None, &prefs, Pending::True, new_id))
}

#[cfg(test)]
mod tests {
    use super::super::Pending;
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn mam_result() {
        // XEP-0313 example 5.
        let kind = Pending::Mam {
            echo: json!({"with": "juliet@capulet.lit"}),
        };
        let xml = "<iq type='result' id='q1'><fin xmlns='urn:xmpp:mam:2' complete='true'>\
            <set xmlns='http://jabber.org/protocol/rsm'>\
            <first index='0'>28482-98726-73623</first><last>09af3-cc343-b409f</last>\
            <count>5</count></set></fin></iq>";
        assert_eq!(
            answer(xml, kind.clone()),
            vec![
                json!(null),
                json!({"with": "juliet@capulet.lit"}),
                json!({"first": "28482-98726-73623", "first-index": 0,
                       "last": "09af3-cc343-b409f", "count": 5, "complete": true}),
            ]
        );
        let xml = "<iq type='result' id='q1'><fin xmlns='urn:xmpp:mam:2'>\
            <set xmlns='http://jabber.org/protocol/rsm'><count>nope</count></set></fin></iq>";
        assert_eq!(answer(xml, kind)[2], json!({"complete": false}));
    }

    #[test]
    fn mam_message() {
        // XEP-0313 example 4.
        let xml = "<message xmlns='jabber:client' id='aeb213' to='alice@localhost/web'>\
            <result xmlns='urn:xmpp:mam:2' queryid='f27' id='28482-98726-73623'>\
            <forwarded xmlns='urn:xmpp:forward:0'>\
            <delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/>\
            <message xmlns='jabber:client' from='witch@shakespeare.lit' to='macbeth@shakespeare.lit' id='w1'>\
            <body>Hail to thee</body></message></forwarded></result></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.mam.message",
                json!({
                    "from": {"user": "witch", "domain": "shakespeare.lit"},
                    "content": "Hail to thee",
                    "id": "w1",
                    "delay": {"when": "2010-07-10T23:08:25Z"},
                    "mam": {"to": {"user": "macbeth", "domain": "shakespeare.lit"},
                            "id": "28482-98726-73623", "queryId": "f27"},
                })
            )]
        );
        // From a stranger it is not an archive result.
        let forged = xml.replace("id='aeb213'", "id='aeb213' from='mallory@evil.example'");
        assert_eq!(deliver(&forged), vec![]);
    }

    #[test]
    fn mam() {
        let p = json!({"queryId": "q'1", "with": "Bob@localhost", "start": "2020-01-01T00:00:00Z", "rsm": {"max": 10, "before": true}});
        let r = emit("xmpp.mam.query", p, true).unwrap();
        assert_eq!(
            r.stanzas,
            [format!(
                "<iq {C} type='set' id='id1'><query xmlns='urn:xmpp:mam:2' queryid='q&apos;1'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
                 <field var='with'><value>bob@localhost</value></field>\
                 <field var='start'><value>2020-01-01T00:00:00Z</value></field></x>\
                 <set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set></query></iq>"
            )]
        );
        let echo = json!({"with": "bob@localhost", "start": "2020-01-01T00:00:00Z"});
        assert_eq!(r.track, Some(("id1".into(), Pending::Mam { echo })));
        assert_eq!(r.immediate, None);

        let r = emit(
            "xmpp.mam.query",
            json!({"end": "e<", "rsm": {"after": "x&y", "before": "b"}}),
            true,
        )
        .unwrap();
        assert_eq!(
            r.stanzas,
            [format!(
                "<iq {C} type='set' id='id2'><query xmlns='urn:xmpp:mam:2' queryid='id1'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
                 <field var='end'><value>e&lt;</value></field></x>\
                 <set xmlns='http://jabber.org/protocol/rsm'><after>x&amp;y</after><before>b</before></set></query></iq>"
            )]
        );
        assert_eq!(
            r.track,
            Some((
                "id2".into(),
                Pending::Mam {
                    echo: json!({"end": "e<"})
                }
            ))
        );
        let r = emit("xmpp.mam.query", json!(null), true).unwrap();
        assert_eq!(
            r.track,
            Some(("id2".into(), Pending::Mam { echo: json!({}) }))
        );

        assert_eq!(
            tracked(
                "xmpp.mam.preferences",
                json!({"default": "roster", "always": ["a@localhost", {"user": "b", "domain": "localhost"}]}),
                Pending::True
            ),
            format!(
                "<iq {C} type='set' id='id1'><prefs xmlns='urn:xmpp:mam:2' default='roster'>\
                 <always><jid>a@localhost</jid><jid>b@localhost</jid></always><never/></prefs></iq>"
            )
        );
    }

    #[test]
    fn mam_errors() {
        assert_eq!(err("xmpp.mam.query", json!({}), false), "Missing callback");
        assert_eq!(
            err("xmpp.mam.query", json!("x"), true),
            "Message not an object"
        );
        assert_eq!(
            err("xmpp.mam.query", json!({"with": "@"}), true),
            "Invalid JID"
        );
        assert_eq!(
            err("xmpp.mam.query", json!({"rsm": 3}), true),
            "Invalid 'rsm' value"
        );
        assert_eq!(
            err("xmpp.mam.query", json!({"rsm": {"max": "many"}}), true),
            "Invalid 'max' value"
        );
        assert_eq!(
            err("xmpp.mam.preferences", json!({}), false),
            "Missing callback"
        );
        assert_eq!(
            err("xmpp.mam.preferences", json!(true), true),
            "Message not an object"
        );
        assert_eq!(
            err("xmpp.mam.preferences", json!({}), true),
            "Missing 'default' key"
        );
        assert_eq!(
            err(
                "xmpp.mam.preferences",
                json!({"default": "sometimes"}),
                true
            ),
            "Invalid 'default' value"
        );
        assert_eq!(
            err(
                "xmpp.mam.preferences",
                json!({"default": "never", "never": "a@b"}),
                true
            ),
            "Invalid 'never' value"
        );
        assert_eq!(
            err(
                "xmpp.mam.preferences",
                json!({"default": "never", "never": ["a@"]}),
                true
            ),
            "Invalid JID"
        );
    }
}
