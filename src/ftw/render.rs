//! Stanzas delivered to a JSON session, as XMPP-FTW events (helper-owned; see mod.rs).
//!
//! One stanza, read once from the borrowed view, becomes zero or more [`Out`]s: events for
//! the browser, the answer to a callback waiting on an iq, and automatic replies (pings,
//! roster pushes, disco#info, refusals) sent on the session's behalf. Payload shapes follow
//! the XMPP-FTW event table. Anything odd (a missing attribute, an unknown type) is skipped
//! or left out of the payload; nothing here panics on input.

use std::borrow::Cow;

use super::{Ctx, Pending, jid_object};
use crate::xml::escape::escape_attr_to_string;
use crate::xml::stanza::Stanza;
use serde_json::{Map, Value, json};
use smallvec::SmallVec;

/// What one delivered stanza becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Emit event `name` with `payload` to the browser.
    Event { name: &'static str, payload: Value },
    /// The answer to the callback waiting for iq `iq_id`: the callback's arguments,
    /// e.g. `[null, true]`, `[{type, condition, description?}]`, `[null, echo, rsm]`.
    Answer { iq_id: String, args: Vec<Value> },
    /// A stanza to send on the session's behalf (an automatic answer).
    Reply(String),
}

const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_ROSTER: &str = "jabber:iq:roster";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_DATA: &str = "jabber:x:data";
const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";
const NS_DELAY: &str = "urn:xmpp:delay";
const NS_PING: &str = "urn:xmpp:ping";
const NS_RECEIPTS: &str = "urn:xmpp:receipts";
const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
const NS_CORRECT: &str = "urn:xmpp:message-correct:0";
const NS_SID: &str = "urn:xmpp:sid:0";
const NS_CARBONS: &str = "urn:xmpp:carbons:2";
const NS_NICK: &str = "http://jabber.org/protocol/nick";

/// What this client answers to disco#info (XEP-0030), inside `<query/>`.
const CLIENT_FEATURES: &str = "<identity category='client' type='web' name='XMPP-FTW'/>\
    <feature var='http://jabber.org/protocol/disco#info'/>\
    <feature var='urn:xmpp:ping'/>\
    <feature var='urn:xmpp:receipts'/>\
    <feature var='http://jabber.org/protocol/chatstates'/>\
    <feature var='urn:xmpp:message-correct:0'/>";

/// The refusal of any other request addressed to the session.
const SERVICE_UNAVAILABLE: &str = "<error type='cancel'>\
    <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";

type Outs = SmallVec<[Out; 2]>;
type Obj = Map<String, Value>;

/// Renders one stanza delivered to the session. `pending(id)` says whether an iq result
/// or error with that id answers a waiting callback, and how to read it.
pub fn render(
    st: &Stanza,
    ctx: &Ctx,
    pending: &dyn Fn(&str) -> Option<Pending>,
) -> SmallVec<[Out; 2]> {
    let mut out = Outs::new();
    let Some(root) = st.elems.first() else {
        return out;
    };
    if !matches!(root.ns, "" | "jabber:client") {
        return out;
    }
    match root.local {
        "iq" => iq(st, ctx, pending, &mut out),
        "message" => message(st, ctx, &mut out),
        "presence" => presence(st, ctx, &mut out),
        _ => {}
    }
    out
}

// ---------------------------------------------------------------------------------------
// iq

fn iq(st: &Stanza, ctx: &Ctx, pending: &dyn Fn(&str) -> Option<Pending>, out: &mut Outs) {
    match attr(st, 0, "type").as_deref() {
        Some(ty @ ("result" | "error")) => {
            let Some(id) = attr(st, 0, "id") else { return };
            let Some(kind) = pending(&id) else { return };
            let args = if ty == "error" {
                vec![error_object(st, 0)]
            } else {
                result_args(st, &kind)
            };
            out.push(Out::Answer {
                iq_id: id.into_owned(),
                args,
            });
        }
        Some(ty @ ("get" | "set")) => request(st, ctx, ty == "get", out),
        _ => {}
    }
}

/// The callback arguments for an iq result of the given kind.
fn result_args(st: &Stanza, kind: &Pending) -> Vec<Value> {
    let query = |ns| st.child(0, "query", ns);
    let list = match kind {
        Pending::True => Value::Bool(true),
        Pending::Roster => query(NS_ROSTER)
            .map(|q| {
                kids(st, q, "item", NS_ROSTER)
                    .filter_map(|i| roster_item(st, i))
                    .collect()
            })
            .unwrap_or_else(|| json!([])),
        Pending::DiscoInfo => query(NS_DISCO_INFO)
            .map(|q| {
                st.children(q)
                    .filter_map(|c| disco_info_entry(st, c))
                    .collect()
            })
            .unwrap_or_else(|| json!([])),
        Pending::DiscoItems => query(NS_DISCO_ITEMS)
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
            .unwrap_or_else(|| json!([])),
        Pending::RoomConfig => query(NS_MUC_OWNER)
            .and_then(|q| st.child(q, "x", NS_DATA))
            .map_or_else(|| json!({ "fields": [] }), |x| data_form(st, x)),
        Pending::Mam { echo, .. } => return vec![Value::Null, echo.clone(), mam_fin(st)],
    };
    vec![Value::Null, list]
}

/// One child of a disco#info result: an identity, a feature or an extended-info form.
fn disco_info_entry(st: &Stanza, c: usize) -> Option<Value> {
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

/// The RSM summary of a MAM `<fin/>`: `{first?, last?, count?, complete}`.
fn mam_fin(st: &Stanza) -> Value {
    let mut o = Obj::new();
    let fin = st.child(0, "fin", NS_MAM);
    if let Some(set) = fin.and_then(|f| st.child(f, "set", NS_RSM)) {
        put(&mut o, "first", child_text(st, set, "first", NS_RSM));
        put(&mut o, "last", child_text(st, set, "last", NS_RSM));
        let count = child_text(st, set, "count", NS_RSM).and_then(|c| c.trim().parse::<u64>().ok());
        put(&mut o, "count", count);
    }
    let complete = fin.and_then(|f| attr(st, f, "complete"));
    o.insert(
        "complete".into(),
        matches!(complete.as_deref(), Some("true" | "1")).into(),
    );
    Value::Object(o)
}

/// A get or set addressed to the session: ping, roster push and disco#info are answered,
/// everything else is refused with service-unavailable.
fn request(st: &Stanza, ctx: &Ctx, get: bool, out: &mut Outs) {
    let payload = st.children(0).next().map(|p| (p, &st.elems[p]));
    let id = attr(st, 0, "id");
    match payload.map(|(p, el)| (p, el.local, el.ns, get)) {
        Some((_, "ping", NS_PING, true)) => {
            let mut o = Obj::new();
            o.insert("from".into(), jid_object(&sender(st, 0, ctx)));
            put(&mut o, "id", id);
            event(out, "xmpp.ping", o);
            out.push(Out::Reply(iq_reply(st, "result", "")));
        }
        Some((q, "query", NS_ROSTER, false)) if roster_push_allowed(st, ctx) => {
            for item in kids(st, q, "item", NS_ROSTER) {
                if let Some(Value::Object(o)) = roster_item(st, item) {
                    event(out, "xmpp.roster.push", o);
                }
            }
            out.push(Out::Reply(iq_reply(st, "result", "")));
        }
        Some((q, "query", NS_DISCO_INFO, true)) => {
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
            put(&mut o, "id", id);
            event(out, "xmpp.discover.client", o);
        }
        _ => out.push(Out::Reply(iq_reply(st, "error", SERVICE_UNAVAILABLE))),
    }
}

/// RFC 6121 §2.1.6: a roster push comes from the user's own account (no `from`, or the
/// bare JID); anything else is a spoof.
fn roster_push_allowed(st: &Stanza, ctx: &Ctx) -> bool {
    attr(st, 0, "from").is_none_or(|f| f.eq_ignore_ascii_case(bare(ctx.jid)))
}

/// `<iq type=TYPE to=FROM id=ID>inner</iq>`, answering the delivered iq.
fn iq_reply(st: &Stanza, ty: &str, inner: &str) -> String {
    let mut s = format!("<iq type='{ty}'");
    for (name, value) in [("to", attr(st, 0, "from")), ("id", attr(st, 0, "id"))] {
        if let Some(v) = value {
            s.push_str(&format!(" {name}='{}'", escape_attr_to_string(&v)));
        }
    }
    if inner.is_empty() {
        s.push_str("/>");
    } else {
        s.push('>');
        s.push_str(inner);
        s.push_str("</iq>");
    }
    s
}

/// A roster `<item/>`: `{jid, subscription, name?, ask?, groups?}`; `None` without a jid.
fn roster_item(st: &Stanza, item: usize) -> Option<Value> {
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
// message

fn message(st: &Stanza, ctx: &Ctx, out: &mut Outs) {
    let from = attr(st, 0, "from");
    let ty = attr(st, 0, "type");
    let ty = ty.as_deref().unwrap_or("normal");

    if let Some(result) = st.child(0, "result", NS_MAM)
        && archive_trusted(ctx, from.as_deref())
    {
        mam_message(st, ctx, result, out);
        return;
    }
    if let Some((room, nick)) = from.as_deref().and_then(|f| muc_from(ctx, f)) {
        muc_message(st, ty, room, nick, out);
        return;
    }
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

/// Archive results come from the user's own archive (no `from`, or the bare JID) or from
/// a room's; anyone else could forge history.
fn archive_trusted(ctx: &Ctx, from: Option<&str>) -> bool {
    from.is_none_or(|f| f.eq_ignore_ascii_case(bare(ctx.jid)) || muc_from(ctx, f).is_some())
}

/// `xmpp.mam.message`: the forwarded message's chat fields plus `mam {to?, id?, queryId?}`.
fn mam_message(st: &Stanza, ctx: &Ctx, result: usize, out: &mut Outs) {
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

/// The fields of `xmpp.chat.message` read from message `m`.
fn chat_fields(st: &Stanza, m: usize, from: &str) -> Obj {
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

/// `content` from `<body/>` and `state` from a XEP-0085 chat state.
fn content_and_state(st: &Stanza, m: usize, o: &mut Obj) {
    put(o, "content", own(st, m, "body").map(|b| st.text(b)));
    let state = st.children(m).find(|&c| st.elems[c].ns == NS_CHATSTATES);
    put(o, "state", state.map(|c| st.elems[c].local));
}

/// XEP-0203 `<delay/>` under `e`: `{when, from?, reason?}`.
fn delay(st: &Stanza, e: usize) -> Option<Value> {
    let d = st.child(e, "delay", NS_DELAY)?;
    let mut o = Obj::new();
    o.insert("when".into(), attr(st, d, "stamp")?.into());
    put(&mut o, "from", attr(st, d, "from"));
    let reason = st.text(d);
    put(&mut o, "reason", (!reason.is_empty()).then_some(reason));
    Some(Value::Object(o))
}

/// XEP-0359 stanza ids: `[{by, id}...]`, `None` when there are none.
fn archived(st: &Stanza, m: usize) -> Option<Value> {
    let ids: Vec<Value> = kids(st, m, "stanza-id", NS_SID)
        .filter_map(|s| {
            let (by, id) = (attr(st, s, "by")?, attr(st, s, "id")?);
            Some(json!({ "by": jid_object(&by), "id": id }))
        })
        .collect();
    (!ids.is_empty()).then(|| ids.into())
}

/// A message from a room or an occupant (XEP-0045).
fn muc_message(st: &Stanza, ty: &str, room: &str, nick: Option<&str>, out: &mut Outs) {
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
// presence

fn presence(st: &Stanza, ctx: &Ctx, out: &mut Outs) {
    let from = attr(st, 0, "from");
    let ty = attr(st, 0, "type");
    let ty = ty.as_deref();
    if let Some((room, nick)) = from.as_deref().and_then(|f| muc_from(ctx, f)) {
        match ty {
            Some("error") => {
                let o = json!({ "type": "presence", "error": error_object(st, 0), "room": room });
                out.push(Out::Event {
                    name: "xmpp.muc.error",
                    payload: o,
                });
                return;
            }
            None | Some("unavailable") => {
                return muc_presence(st, room, nick, ty.is_some(), out);
            }
            _ => {} // subscriptions with the service itself: as any other contact
        }
    }
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
            "xmpp.presence"
        }
        _ => return, // probe, or an unknown type
    };
    event(out, name, o);
}

/// Occupant presence: `xmpp.muc.destroy` for a destroyed room, else `xmpp.muc.roster`.
fn muc_presence(st: &Stanza, room: &str, nick: Option<&str>, unavailable: bool, out: &mut Outs) {
    let mut o = Obj::new();
    o.insert("room".into(), room.into());
    let x = st.child(0, "x", NS_MUC_USER);
    if let Some(d) = x.and_then(|x| st.child(x, "destroy", NS_MUC_USER)) {
        put(&mut o, "reason", child_text(st, d, "reason", NS_MUC_USER));
        put(&mut o, "alternative", attr(st, d, "jid"));
        return event(out, "xmpp.muc.destroy", o);
    }
    let Some(nick) = nick else { return };
    o.insert("nick".into(), nick.into());
    let item = x.and_then(|x| st.child(x, "item", NS_MUC_USER));
    if let Some(item) = item {
        put(&mut o, "role", attr(st, item, "role"));
        put(&mut o, "affiliation", attr(st, item, "affiliation"));
        if let Some(jid) = attr(st, item, "jid") {
            o.insert("jid".into(), jid_object(&jid));
        }
    }
    let codes: Vec<u64> = x
        .map(|x| {
            kids(st, x, "status", NS_MUC_USER)
                .filter_map(|s| attr(st, s, "code")?.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if codes.contains(&303) {
        put(&mut o, "newNick", item.and_then(|i| attr(st, i, "nick")));
    }
    if unavailable {
        o.insert("status".into(), "unavailable".into());
        if !codes.is_empty() {
            o.insert("codes".into(), codes.into());
        }
    } else {
        o.insert("status".into(), codes.into());
    }
    event(out, "xmpp.muc.roster", o);
}

// ---------------------------------------------------------------------------------------
// helpers

/// `{type, condition, description?, application?}` from the `<error/>` of stanza `e`.
/// A stanza without one still answers its callback: `cancel` / `undefined-condition`.
fn error_object(st: &Stanza, e: usize) -> Value {
    let err = own(st, e, "error");
    let ty = err.and_then(|x| attr(st, x, "type"));
    let (mut condition, mut description, mut application) = (None, None, None);
    for c in err.into_iter().flat_map(|x| st.children(x)) {
        let el = &st.elems[c];
        if el.ns != NS_STANZAS {
            application.get_or_insert_with(|| json!({ "condition": el.local, "xmlns": el.ns }));
        } else if el.local == "text" {
            description.get_or_insert_with(|| st.text(c));
        } else {
            condition.get_or_insert(el.local);
        }
    }
    let mut o = Obj::new();
    o.insert("type".into(), ty.unwrap_or(Cow::Borrowed("cancel")).into());
    o.insert(
        "condition".into(),
        condition.unwrap_or("undefined-condition").into(),
    );
    put(&mut o, "description", description);
    put(&mut o, "application", application);
    Value::Object(o)
}

/// A data form (XEP-0004): `{title?, instructions?, fields:[...]}`.
fn data_form(st: &Stanza, x: usize) -> Value {
    let mut o = Obj::new();
    put(&mut o, "title", child_text(st, x, "title", NS_DATA));
    let instructions: Vec<_> = kids(st, x, "instructions", NS_DATA)
        .map(|i| st.text(i))
        .collect();
    if !instructions.is_empty() {
        o.insert("instructions".into(), instructions.join("\n").into());
    }
    let fields: Vec<Value> = kids(st, x, "field", NS_DATA)
        .filter_map(|f| form_field(st, f))
        .collect();
    o.insert("fields".into(), fields.into());
    Value::Object(o)
}

/// One form field: `{var, type?, label?, required, value?, options?}`; `None` without a
/// var (fixed text has nothing to submit).
fn form_field(st: &Stanza, f: usize) -> Option<Value> {
    let mut o = Obj::new();
    o.insert("var".into(), attr(st, f, "var")?.into());
    let ty = attr(st, f, "type");
    let multi = matches!(
        ty.as_deref(),
        Some("list-multi" | "jid-multi" | "text-multi")
    );
    put(&mut o, "type", ty);
    put(&mut o, "label", attr(st, f, "label"));
    let required = st.child(f, "required", NS_DATA).is_some();
    o.insert("required".into(), required.into());
    let mut values = kids(st, f, "value", NS_DATA).map(|v| Value::from(st.text(v)));
    if multi {
        o.insert("value".into(), values.collect::<Vec<_>>().into());
    } else {
        put(&mut o, "value", values.next());
    }
    let options: Vec<Value> = kids(st, f, "option", NS_DATA)
        .filter_map(|opt| {
            let mut o = Obj::new();
            put(&mut o, "label", attr(st, opt, "label"));
            o.insert(
                "value".into(),
                child_text(st, opt, "value", NS_DATA)?.into(),
            );
            Some(Value::Object(o))
        })
        .collect();
    if !options.is_empty() {
        o.insert("options".into(), options.into());
    }
    Some(Value::Object(o))
}

fn event(out: &mut Outs, name: &'static str, payload: Obj) {
    out.push(Out::Event {
        name,
        payload: Value::Object(payload),
    });
}

/// Inserts `key` only when there is a value (XMPP-FTW omits absent keys).
fn put(o: &mut Obj, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        o.insert(key.into(), v.into());
    }
}

/// The decoded attribute `name` of element `e`.
fn attr<'a>(st: &Stanza<'a>, e: usize, name: &str) -> Option<Cow<'a, str>> {
    st.attr(e, name).map(|a| a.value())
}

/// The children of `e` named `local` in namespace `ns`.
fn kids<'s>(
    st: &'s Stanza,
    e: usize,
    local: &'s str,
    ns: &'s str,
) -> impl Iterator<Item = usize> + 's {
    st.children(e)
        .filter(move |&c| st.elems[c].local == local && st.elems[c].ns == ns)
}

/// The first child `local` in `e`'s own namespace (`<body/>` of a message, whether the
/// message declares `jabber:client` or inherits no namespace at all).
fn own(st: &Stanza, e: usize, local: &str) -> Option<usize> {
    st.child(e, local, st.elems.get(e)?.ns)
}

/// The decoded text of the first child `local` in `ns`.
fn child_text<'a>(st: &Stanza<'a>, e: usize, local: &str, ns: &str) -> Option<Cow<'a, str>> {
    st.child(e, local, ns).map(|c| st.text(c))
}

/// Who sent element `e`: its `from`, or the user's own account when it has none
/// (RFC 6120 §8.1.2.1).
fn sender(st: &Stanza, e: usize, ctx: &Ctx) -> String {
    attr(st, e, "from").map_or_else(|| bare(ctx.jid).to_owned(), Cow::into_owned)
}

fn bare(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(b, _)| b)
}

/// `(room, nick?)` when `jid` is on the MUC service.
fn muc_from<'j>(ctx: &Ctx, jid: &'j str) -> Option<(&'j str, Option<&'j str>)> {
    let (room, nick) = match jid.split_once('/') {
        Some((b, r)) => (b, Some(r)),
        None => (jid, None),
    };
    let domain = room.split_once('@').map_or(room, |(_, d)| d);
    ctx.muc_domain
        .is_some_and(|d| d.eq_ignore_ascii_case(domain))
        .then_some((room, nick))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::stanza::Limits;

    const CTX: Ctx<'static> = Ctx {
        jid: "alice@localhost/web",
        domain: "localhost",
        muc_domain: Some("conference.localhost"),
    };

    fn run_with(xml: &str, pending: Option<Pending>) -> Vec<Out> {
        let st = Stanza::parse(xml, &Limits::default()).expect("test stanza parses");
        render(&st, &CTX, &|_: &str| pending.clone()).into_vec()
    }

    fn run(xml: &str) -> Vec<Out> {
        run_with(xml, None)
    }

    fn ev(name: &'static str, payload: Value) -> Out {
        Out::Event { name, payload }
    }

    fn answer(xml: &str, kind: Pending) -> Vec<Value> {
        match run_with(xml, Some(kind)).as_slice() {
            [Out::Answer { iq_id, args }] => {
                assert_eq!(iq_id, "q1");
                args.clone()
            }
            other => panic!("expected one answer, got {other:?}"),
        }
    }

    // Rule 1 ---------------------------------------------------------------------------

    #[test]
    fn non_stanzas_render_nothing() {
        for xml in [
            "<r xmlns='urn:xmpp:sm:3'/>",
            "<enabled xmlns='urn:xmpp:sm:3' id='x' resume='true'/>",
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>",
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>\
             <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
            "<message xmlns='urn:xmpp:sm:3'><body>not a stanza</body></message>",
        ] {
            assert_eq!(run(xml), vec![], "{xml}");
        }
    }

    // Rule 2 ---------------------------------------------------------------------------

    #[test]
    fn iq_result_without_pending_callback_is_dropped() {
        let xml = "<iq type='result' id='q1' to='alice@localhost/web'/>";
        assert_eq!(run(xml), vec![]);
        assert_eq!(run("<iq type='result' to='alice@localhost/web'/>"), vec![]);
    }

    #[test]
    fn iq_result_true() {
        let xml = "<iq xmlns='jabber:client' type='result' id='q1' from='localhost'/>";
        assert_eq!(answer(xml, Pending::True), vec![json!(null), json!(true)]);
    }

    #[test]
    fn iq_error_answers_with_error_object() {
        // RFC 6120 §8.3.2 style, with an application-specific condition.
        let xml = "<iq xmlns='jabber:client' type='error' id='q1' from='room@conference.localhost'>\
            <query xmlns='http://jabber.org/protocol/muc#owner'/>\
            <error type='cancel' by='conference.localhost'>\
            <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
            <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such room</text>\
            <app-specific xmlns='urn:example:app'/></error></iq>";
        for kind in [Pending::True, Pending::RoomConfig] {
            assert_eq!(
                answer(xml, kind),
                vec![json!({
                    "type": "cancel",
                    "condition": "item-not-found",
                    "description": "no such room",
                    "application": {"condition": "app-specific", "xmlns": "urn:example:app"},
                })]
            );
        }
        // An error without <error/> still answers the callback.
        assert_eq!(
            answer("<iq type='error' id='q1'/>", Pending::True),
            vec![json!({"type": "cancel", "condition": "undefined-condition"})]
        );
    }

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
    fn mam_result() {
        // XEP-0313 example 5.
        let kind = Pending::Mam {
            query_id: "f27".into(),
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
                json!({"first": "28482-98726-73623", "last": "09af3-cc343-b409f",
                       "count": 5, "complete": true}),
            ]
        );
        let xml = "<iq type='result' id='q1'><fin xmlns='urn:xmpp:mam:2'>\
            <set xmlns='http://jabber.org/protocol/rsm'><count>nope</count></set></fin></iq>";
        assert_eq!(answer(xml, kind)[2], json!({"complete": false}));
    }

    // Rule 3 ---------------------------------------------------------------------------

    #[test]
    fn ping_is_answered() {
        // XEP-0199 example 1.
        let xml = "<iq from='capulet.lit' to='alice@localhost/web' id='s2c1' type='get'>\
            <ping xmlns='urn:xmpp:ping'/></iq>";
        assert_eq!(
            run(xml),
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
    fn roster_push_is_acknowledged() {
        // RFC 6121 §2.1.6, from the bare JID and without from; removal passes through.
        let xml = "<iq xmlns='jabber:client' from='alice@localhost' id='a78b4q6ha463' \
            to='alice@localhost/web' type='set'><query xmlns='jabber:iq:roster'>\
            <item jid='nurse@example.com' name='Nurse' subscription='none' ask='subscribe'>\
            <group>Servants</group></item></query></iq>";
        assert_eq!(
            run(xml),
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
            run(xml),
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
            run(xml),
            vec![Out::Reply(
                "<iq type='error' to='mallory@evil.example/x' id='p3'><error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                    .into()
            )]
        );
    }

    #[test]
    fn disco_info_request_is_answered() {
        // XEP-0115 style query on a caps node; the node is echoed, values escaped.
        let xml = "<iq from='bob@localhost/desk&apos;s' id='d&amp;1' type='get'>\
            <query xmlns='http://jabber.org/protocol/disco#info' node='https://xmpp-ftw#abc='/></iq>";
        assert_eq!(
            run(xml),
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
    fn other_requests_are_refused() {
        for xml in [
            "<iq from='bob@localhost/desk' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>",
            "<iq from='bob@localhost/desk' id='v1' type='set'><ping xmlns='urn:xmpp:ping'/></iq>",
            "<iq from='bob@localhost/desk' id='v1' type='get'/>",
        ] {
            assert_eq!(
                run(xml),
                vec![Out::Reply(
                    "<iq type='error' to='bob@localhost/desk' id='v1'><error type='cancel'>\
                     <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                        .into()
                )],
                "{xml}"
            );
        }
    }

    // Rule 4 ---------------------------------------------------------------------------

    #[test]
    fn muc_subject() {
        // XEP-0045 examples 40 and 190.
        let xml = "<message from='coven@conference.localhost/wiccarocks' to='alice@localhost/web' \
            type='groupchat' id='5BCE07C5'><subject>Fire Burn and Cauldron Bubble!</subject></message>";
        assert_eq!(
            run(xml),
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
            run(xml),
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
            run(xml),
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
            run(xml),
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
            run(xml),
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
            run(xml),
            vec![ev(
                "xmpp.muc.message",
                json!({
                    "room": "coven@conference.localhost", "nick": "secondwitch", "private": false,
                    "state": "composing",
                })
            )]
        );
        // A status-code notification (XEP-0045 example 89) has nothing to show.
        let xml = "<message from='coven@conference.localhost' type='groupchat'>\
            <x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>";
        assert_eq!(run(xml), vec![]);
    }

    #[test]
    fn muc_private_message() {
        // XEP-0045 example 51.
        let xml = "<message from='coven@conference.localhost/wiccarocks' to='alice@localhost/web' \
            type='chat' id='p1'><body>I&apos;ll give thee a wind.</body>\
            <active xmlns='http://jabber.org/protocol/chatstates'/>\
            <x xmlns='http://jabber.org/protocol/muc#user'/></message>";
        assert_eq!(
            run(xml),
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
            run(xml),
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
            run(xml),
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
            run(xml),
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

    // Rule 5 ---------------------------------------------------------------------------

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
            run(xml),
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
            run(xml),
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
            run(xml),
            vec![ev(
                "xmpp.chat.message",
                json!({
                    "from": {"user": "bob", "domain": "localhost"}, "content": "hi",
                })
            )]
        );
        // Nothing to show: no event.
        assert_eq!(
            run("<message from='bob@localhost' type='chat'><thread>t</thread></message>"),
            vec![]
        );
    }

    #[test]
    fn receipt() {
        // XEP-0184 example 2, and a receipt travelling with a chat state.
        let xml = "<message from='bob@localhost/desk' id='bi29sg183b4v' to='alice@localhost/web'>\
            <received xmlns='urn:xmpp:receipts' id='richard2-4.1.247'/></message>";
        assert_eq!(
            run(xml),
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
            run(xml),
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
            run(xml),
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
            assert_eq!(run(xml), vec![], "{xml}");
        }
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
            run(xml),
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
        assert_eq!(run(&forged), vec![]);
    }

    // Rule 6 ---------------------------------------------------------------------------

    #[test]
    fn muc_roster() {
        // XEP-0045 example 24 (self-presence).
        let xml = "<presence from='coven@conference.localhost/thirdwitch' id='n13mt3l' \
            to='alice@localhost/web'><x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='member' jid='alice@localhost/web' role='participant'/>\
            <status code='100'/><status code='110'/><status code='210'/></x></presence>";
        assert_eq!(
            run(xml),
            vec![ev(
                "xmpp.muc.roster",
                json!({
                    "room": "coven@conference.localhost", "nick": "thirdwitch",
                    "role": "participant", "affiliation": "member",
                    "jid": {"user": "alice", "domain": "localhost", "resource": "web"},
                    "status": [100, 110, 210],
                })
            )]
        );
        let xml = "<presence from='coven@conference.localhost/firstwitch'>\
            <x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='owner' role='moderator'/></x></presence>";
        assert_eq!(
            run(xml),
            vec![ev(
                "xmpp.muc.roster",
                json!({
                    "room": "coven@conference.localhost", "nick": "firstwitch",
                    "role": "moderator", "affiliation": "owner", "status": [],
                })
            )]
        );
    }

    #[test]
    fn muc_roster_unavailable_and_nick_change() {
        // XEP-0045 example 84 (nick change) and an ordinary leave.
        let xml = "<presence from='coven@conference.localhost/thirdwitch' to='alice@localhost/web' \
            type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='member' jid='hag66@shakespeare.lit/pda' nick='oldhag' role='participant'/>\
            <status code='303'/></x></presence>";
        assert_eq!(
            run(xml),
            vec![ev(
                "xmpp.muc.roster",
                json!({
                    "room": "coven@conference.localhost", "nick": "thirdwitch",
                    "role": "participant", "affiliation": "member",
                    "jid": {"user": "hag66", "domain": "shakespeare.lit", "resource": "pda"},
                    "status": "unavailable", "codes": [303], "newNick": "oldhag",
                })
            )]
        );
        let xml = "<presence from='coven@conference.localhost/secondwitch' type='unavailable'>\
            <x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='none' role='none'/></x></presence>";
        assert_eq!(
            run(xml),
            vec![ev(
                "xmpp.muc.roster",
                json!({
                    "room": "coven@conference.localhost", "nick": "secondwitch",
                    "role": "none", "affiliation": "none", "status": "unavailable",
                })
            )]
        );
    }

    #[test]
    fn muc_destroy_and_presence_error() {
        // XEP-0045 examples 203 and 28.
        let xml = "<presence from='heath@conference.localhost/firstwitch' to='alice@localhost/web' \
            type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>\
            <item affiliation='none' role='none'/>\
            <destroy jid='coven@conference.localhost'><reason>Macbeth doth come.</reason></destroy>\
            </x></presence>";
        assert_eq!(
            run(xml),
            vec![ev(
                "xmpp.muc.destroy",
                json!({
                    "room": "heath@conference.localhost",
                    "reason": "Macbeth doth come.",
                    "alternative": "coven@conference.localhost",
                })
            )]
        );
        let xml = "<presence from='coven@conference.localhost/thirdwitch' id='273hs51g' \
            to='alice@localhost/web' type='error'><x xmlns='http://jabber.org/protocol/muc'/>\
            <error by='coven@conference.localhost' type='cancel'>\
            <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>";
        assert_eq!(
            run(xml),
            vec![ev(
                "xmpp.muc.error",
                json!({
                    "type": "presence", "room": "coven@conference.localhost",
                    "error": {"type": "cancel", "condition": "conflict"},
                })
            )]
        );
    }

    // Rule 7 ---------------------------------------------------------------------------

    #[test]
    fn subscriptions() {
        // RFC 6121 §3.1.3 with a XEP-0172 nick.
        let xml = "<presence from='juliet@example.com' id='xk3h1v69' to='alice@localhost' \
            type='subscribe'><nick xmlns='http://jabber.org/protocol/nick'>Juliet</nick></presence>";
        assert_eq!(
            run(xml),
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
                run(&xml),
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
            run(xml),
            vec![ev(
                "xmpp.presence.error",
                json!({
                    "from": {"user": "juliet", "domain": "example.com"},
                    "error": "remote-server-not-found",
                })
            )]
        );
        assert_eq!(run("<presence from='localhost' type='probe'/>"), vec![]);
    }

    #[test]
    fn availability() {
        // RFC 6121 §4.7 examples.
        let xml = "<presence xmlns='jabber:client' from='romeo@example.net/orchard' \
            to='alice@localhost/web'><show>dnd</show><status>Wooing Juliet</status>\
            <priority>1</priority></presence>";
        assert_eq!(
            run(xml),
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
            run(xml),
            vec![ev(
                "xmpp.presence",
                json!({
                    "from": {"user": "romeo", "domain": "example.net", "resource": "orchard"},
                    "show": "offline", "status": "Gone home",
                })
            )]
        );
        // Presence from a JID on the MUC domain without a resource and no x: nothing breaks.
        assert_eq!(run("<presence from='conference.localhost'/>"), vec![]);
    }
}
