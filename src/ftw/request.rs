//! XMPP-FTW events from the browser, as the stanzas an XML client would send (helper-owned).

use super::{Ctx, Pending, ReqError};
use crate::xml::escape::{escape_attr_to_string, escape_text_to_string};
use crate::xmpp::jid::Jid;
use serde_json::{Map, Value};
use std::fmt::Write;

/// What one event becomes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Stanzas to handle as if the client had sent them, in order (no `from`).
    pub stanzas: Vec<String>,
    /// The id of the one iq among them whose result answers the callback, and its meaning.
    pub track: Option<(String, Pending)>,
    /// Without `track`: the callback's result (second argument) at once, e.g. `{id}`.
    pub immediate: Option<Value>,
    /// A room joined or left, for the session's room → nick map (`nick_in`).
    pub room: Option<RoomChange>,
}

/// What a request does to the session's room membership.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomChange {
    /// The bare room JID and the nick it was joined with.
    Joined {
        room: String,
        nick: String,
    },
    Left(String),
}

type R<T> = Result<T, ReqError>;
type Obj = Map<String, Value>;

/// Events (without the `xmpp.` prefix) that are refused without a callback.
const NEEDS_CALLBACK: &[&str] = &[
    "roster.get",
    "roster.add",
    "roster.edit",
    "roster.group",
    "roster.remove",
    "discover.info",
    "discover.items",
    "ping",
    "mam.query",
    "mam.preferences",
    "muc.role.set",
    "muc.affiliation",
    "muc.room.config.get",
    "muc.room.config.set",
    "muc.destroy",
];

const SHOWS: &[&str] = &["chat", "away", "xa", "dnd"];
const STATES: &[&str] = &["active", "composing", "paused", "inactive", "gone"];
const ROLES: &[&str] = &["none", "visitor", "participant", "moderator"];
const AFFILIATIONS: &[&str] = &["owner", "admin", "member", "outcast", "none"];
const MAM_DEFAULTS: &[&str] = &["always", "never", "roster"];

const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
const NS_MAM: &str = "urn:xmpp:mam:2";

fn client<T>(description: impl Into<String>) -> R<T> {
    Err(ReqError::Client(description.into()))
}

fn invalid<T>(key: &str) -> R<T> {
    client(format!("Invalid '{key}' value"))
}

fn bad_jid() -> ReqError {
    ReqError::Client("Invalid JID".into())
}

// ---- field access ----

/// A string field; numbers are accepted as their decimal text, `null` counts as absent.
fn opt_str(m: &Obj, k: &str) -> R<Option<String>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => invalid(k),
    }
}

fn req<T>(v: Option<T>, k: &str) -> R<T> {
    v.ok_or_else(|| ReqError::Client(format!("Missing '{k}' key")))
}

fn req_str(m: &Obj, k: &str) -> R<String> {
    req(opt_str(m, k)?, k)
}

/// A string field that must be one of `allowed`.
fn opt_enum(m: &Obj, k: &str, allowed: &[&'static str]) -> R<Option<&'static str>> {
    match opt_str(m, k)? {
        None => Ok(None),
        Some(s) => match allowed.iter().find(|a| **a == s) {
            Some(a) => Ok(Some(a)),
            None => invalid(k),
        },
    }
}

fn req_enum(m: &Obj, k: &str, allowed: &[&'static str]) -> R<&'static str> {
    req(opt_enum(m, k, allowed)?, k)
}

/// An integer field (a JSON integer or a string holding one) within `range`.
fn opt_int(m: &Obj, k: &str, range: std::ops::RangeInclusive<i64>) -> R<Option<i64>> {
    let n = match m.get(k) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if range.contains(&n) => Ok(Some(n)),
        _ => invalid(k),
    }
}

/// An optional array field.
fn opt_array<'a>(m: &'a Obj, k: &str) -> R<Option<&'a Vec<Value>>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => invalid(k),
    }
}

/// An optional object field.
fn opt_obj<'a>(m: &'a Obj, k: &str) -> R<Option<&'a Obj>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => invalid(k),
    }
}

/// A non-empty string field (an empty string counts as absent, as in XMPP-FTW).
fn opt_nonempty(m: &Obj, k: &str) -> R<Option<String>> {
    Ok(opt_str(m, k)?.filter(|s| !s.is_empty()))
}

// ---- addresses ----

/// A JID given as a string or as `{user?, domain, resource?}`.
fn addr(v: &Value) -> R<Jid> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            let part = |k: &str| match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(bad_jid()),
            };
            let domain = part("domain")?.ok_or_else(bad_jid)?;
            let mut s = String::new();
            if let Some(u) = part("user")? {
                write!(s, "{u}@").ok();
            }
            s.push_str(domain);
            if let Some(r) = part("resource")? {
                write!(s, "/{r}").ok();
            }
            s
        }
        _ => return Err(bad_jid()),
    };
    Jid::parse(&s).map_err(|_| bad_jid())
}

fn opt_jid(m: &Obj, k: &str) -> R<Option<Jid>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => addr(v).map(Some),
    }
}

fn req_jid(m: &Obj, k: &str) -> R<Jid> {
    req(opt_jid(m, k)?, k)
}

/// A bare room JID: `room` may omit `@muc_domain`.
fn room(m: &Obj, ctx: &Ctx) -> R<Jid> {
    let v = req(m.get("room").filter(|v| !v.is_null()), "room")?;
    let jid = match (v, ctx.muc_domain) {
        (Value::String(s), Some(muc)) if !s.contains('@') => {
            addr(&Value::String(format!("{s}@{muc}")))?
        }
        _ => addr(v)?,
    };
    if jid.local().is_none() {
        return Err(bad_jid());
    }
    Ok(jid.to_bare())
}

/// `room/nick`, the nick validated as a resourcepart.
fn occupant(room: &Jid, nick: &str) -> R<Jid> {
    room.with_resource(nick).map_err(|_| bad_jid())
}

// ---- element building ----

/// `<name a='v'…>inner</name>` (or `<name …/>` when `inner` is empty); `None` attributes are
/// left out and values are escaped. `inner` is markup, already escaped.
fn el(name: &str, attrs: &[(&str, Option<&str>)], inner: &str) -> String {
    let mut s = format!("<{name}");
    for (k, v) in attrs {
        if let Some(v) = v {
            write!(s, " {k}='{}'", escape_attr_to_string(v)).ok();
        }
    }
    if inner.is_empty() {
        s.push_str("/>");
    } else {
        write!(s, ">{inner}</{name}>").ok();
    }
    s
}

/// `<name>text</name>`, the text escaped.
fn text(name: &str, t: &str) -> String {
    el(name, &[], &escape_text_to_string(t))
}

/// `<name>text</name>` when there is a text, else nothing.
fn opt_text(name: &str, t: Option<&str>) -> String {
    t.map_or_else(String::new, |t| text(name, t))
}

const XMLNS: (&str, Option<&str>) = ("xmlns", Some("jabber:client"));

fn send(stanza: String, immediate: Option<Value>) -> Request {
    Request {
        stanzas: vec![stanza],
        immediate,
        ..Default::default()
    }
}

/// An iq to `to` (own account when `None`) carrying `inner`, tracked as `pending`.
fn iq(
    ty: &str,
    to: Option<&str>,
    inner: &str,
    pending: Pending,
    new_id: &mut dyn FnMut() -> String,
) -> Request {
    let id = new_id();
    let stanza = el(
        "iq",
        &[XMLNS, ("type", Some(ty)), ("to", to), ("id", Some(&id))],
        inner,
    );
    Request {
        stanzas: vec![stanza],
        track: Some((id, pending)),
        ..Default::default()
    }
}

/// A message with a fresh id; returns the id and the stanza.
fn message(
    ty: Option<&str>,
    to: &str,
    inner: &str,
    new_id: &mut dyn FnMut() -> String,
) -> (String, String) {
    let id = new_id();
    let stanza = el(
        "message",
        &[XMLNS, ("type", ty), ("to", Some(to)), ("id", Some(&id))],
        inner,
    );
    (id, stanza)
}

/// A message that answers the callback with `{id}`.
fn message_with_id(ty: &str, to: &str, inner: &str, new_id: &mut dyn FnMut() -> String) -> Request {
    let (id, stanza) = message(Some(ty), to, inner, new_id);
    send(stanza, Some(serde_json::json!({ "id": id })))
}

/// `<body>` and chat state of a chat or groupchat message; one of them is required.
fn body_and_state(m: &Obj) -> R<String> {
    let content = opt_nonempty(m, "content")?;
    let state = opt_enum(m, "state", STATES)?;
    if content.is_none() && state.is_none() {
        return client("Message content or chat state not provided");
    }
    let mut s = opt_text("body", content.as_deref());
    if let Some(st) = state {
        s += &el(
            st,
            &[("xmlns", Some("http://jabber.org/protocol/chatstates"))],
            "",
        );
    }
    Ok(s)
}

/// A `jabber:x:data` submit form: hidden `FORM_TYPE`, then `(var, type, values)` fields.
fn submit_form(form_type: &str, fields: &[(String, Option<String>, Vec<String>)]) -> String {
    let mut inner = el(
        "field",
        &[("var", Some("FORM_TYPE")), ("type", Some("hidden"))],
        &text("value", form_type),
    );
    for (var, ty, values) in fields {
        let vals: String = values.iter().map(|v| text("value", v)).collect();
        inner += &el(
            "field",
            &[("var", Some(var)), ("type", ty.as_deref())],
            &vals,
        );
    }
    el(
        "x",
        &[("xmlns", Some("jabber:x:data")), ("type", Some("submit"))],
        &inner,
    )
}

/// The values of a form field: a string, number, bool (`1`/`0`) or an array of those.
fn field_values(v: Option<&Value>) -> R<Vec<String>> {
    fn one(v: &Value) -> R<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(if *b { "1" } else { "0" }.into()),
            _ => invalid("value"),
        }
    }
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a.iter().map(one).collect(),
        Some(v) => one(v).map(|s| vec![s]),
    }
}

/// `<reason>` if the payload has one.
fn reason(m: &Obj) -> R<String> {
    Ok(opt_text("reason", opt_str(m, "reason")?.as_deref()))
}

/// Whether every string in `v` (object keys included) holds only XML characters. Nesting
/// is bounded by serde_json's recursion limit.
fn xml_safe(v: &Value) -> bool {
    // XML 1.0 `Char` minus what a Rust string cannot hold (surrogates): controls other
    // than tab, LF and CR, and U+FFFE/U+FFFF (both start with the byte 0xEF in UTF-8).
    let ok = |s: &str| {
        let b = s.as_bytes();
        b.iter()
            .all(|&c| c >= 0x20 || matches!(c, b'\t' | b'\n' | b'\r'))
            && !(b.contains(&0xEF) && (s.contains('\u{FFFE}') || s.contains('\u{FFFF}')))
    };
    match v {
        Value::String(s) => ok(s),
        Value::Array(a) => a.iter().all(xml_safe),
        Value::Object(o) => o.iter().all(|(k, v)| ok(k) && xml_safe(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Turns event `event` with `payload` into stanzas. `has_callback`: the browser passed a
/// callback. `nick_in(room)`: the nick this session joined `room` with, if it did.
/// `new_id()`: a fresh stanza id.
pub fn request(
    event: &str,
    payload: &Value,
    has_callback: bool,
    ctx: &Ctx,
    nick_in: &dyn Fn(&str) -> Option<String>,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Request, ReqError> {
    let Some(ev) = event.strip_prefix("xmpp.") else {
        return Err(ReqError::NotImplemented);
    };
    let receipt = payload.get("receipt") == Some(&Value::Bool(true));
    if !has_callback && (NEEDS_CALLBACK.contains(&ev) || (ev == "chat.message" && receipt)) {
        return client("Missing callback");
    }
    // A string XML cannot carry (a control character, U+FFFE, U+FFFF) would make the
    // stanza built from it malformed.
    if !xml_safe(payload) {
        return client("Message contains a character that XML cannot carry");
    }
    let empty = Obj::new();
    // The payload where the event needs fields, or where all are optional (`null` = none).
    let obj = || {
        payload
            .as_object()
            .ok_or_else(|| ReqError::Client("Message not an object".into()))
    };
    let lenient = || match payload {
        Value::Null => Ok(&empty),
        _ => obj(),
    };

    Ok(match ev {
        "presence" => {
            let m = lenient()?;
            let to = opt_jid(m, "to")?;
            let ty = opt_enum(m, "type", &["unavailable"])?;
            let show = opt_enum(m, "show", SHOWS)?;
            let status = opt_str(m, "status")?;
            let priority = opt_int(m, "priority", -128..=127)?.map(|p| p.to_string());
            let inner = opt_text("show", show)
                + &opt_text("status", status.as_deref())
                + &opt_text("priority", priority.as_deref());
            let to = to.as_ref().map(Jid::as_str);
            send(
                el("presence", &[XMLNS, ("type", ty), ("to", to)], &inner),
                None,
            )
        }
        "presence.offline" => send(
            el("presence", &[XMLNS, ("type", Some("unavailable"))], ""),
            None,
        ),
        "presence.get"
        | "presence.subscribe"
        | "presence.subscribed"
        | "presence.unsubscribe"
        | "presence.unsubscribed" => {
            let m = obj()?;
            let to = req_jid(m, "to")?;
            let ty = if ev == "presence.get" {
                "probe"
            } else {
                &ev["presence.".len()..]
            };
            let to = if ty == "probe" {
                to.as_str()
            } else {
                to.bare()
            };
            send(
                el(
                    "presence",
                    &[XMLNS, ("type", Some(ty)), ("to", Some(to))],
                    "",
                ),
                None,
            )
        }

        "roster.get" => iq(
            "get",
            None,
            &el("query", &[("xmlns", Some("jabber:iq:roster"))], ""),
            Pending::Roster,
            new_id,
        ),
        "roster.add" | "roster.edit" | "roster.group" | "roster.remove" => {
            let m = obj()?;
            let jid = req_jid(m, "jid")?;
            let item = if ev == "roster.remove" {
                el(
                    "item",
                    &[("jid", Some(jid.bare())), ("subscription", Some("remove"))],
                    "",
                )
            } else {
                let name = opt_str(m, "name")?;
                let groups = match opt_array(m, "groups")? {
                    None if ev != "roster.add" => return client("Missing 'groups' key"),
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
            let query = el("query", &[("xmlns", Some("jabber:iq:roster"))], &item);
            iq("set", None, &query, Pending::True, new_id)
        }

        "chat.message" => {
            let m = obj()?;
            let to = req_jid(m, "to")?;
            let mut inner = body_and_state(m)?;
            if receipt {
                inner += &el("request", &[("xmlns", Some("urn:xmpp:receipts"))], "");
            }
            if let Some(r) = opt_nonempty(m, "replace")? {
                inner += &el(
                    "replace",
                    &[
                        ("id", Some(&r)),
                        ("xmlns", Some("urn:xmpp:message-correct:0")),
                    ],
                    "",
                );
            }
            message_with_id("chat", to.as_str(), &inner, new_id)
        }
        "chat.receipt" => {
            let m = obj()?;
            let to = req_jid(m, "to")?;
            let id = req_str(m, "id")?;
            let inner = el(
                "received",
                &[("xmlns", Some("urn:xmpp:receipts")), ("id", Some(&id))],
                "",
            );
            send(
                message(None, to.as_str(), &inner, new_id).1,
                Some(Value::Bool(true)),
            )
        }

        "muc.join" => {
            let m = obj()?;
            let room = room(m, ctx)?;
            let to = occupant(&room, &req_str(m, "nick")?)?;
            let mut inner = opt_text("password", opt_str(m, "password")?.as_deref());
            if let Some(h) = opt_obj(m, "history")? {
                let mut attrs = vec![];
                for k in ["maxchars", "maxstanzas", "seconds"] {
                    attrs.push((k, opt_int(h, k, 0..=i64::MAX)?.map(|n| n.to_string())));
                }
                attrs.push(("since", opt_str(h, "since")?));
                if attrs.iter().any(|(_, v)| v.is_some()) {
                    let attrs: Vec<_> = attrs.iter().map(|(k, v)| (*k, v.as_deref())).collect();
                    inner += &el("history", &attrs, "");
                }
            }
            let x = el("x", &[("xmlns", Some(NS_MUC))], &inner);
            let mut r = send(
                el("presence", &[XMLNS, ("to", Some(to.as_str()))], &x),
                None,
            );
            r.room = Some(RoomChange::Joined {
                room: room.as_str().to_string(),
                nick: to.resource().unwrap_or_default().to_string(),
            });
            r
        }
        "muc.leave" => {
            let m = obj()?;
            let room = room(m, ctx)?;
            let inner = opt_text("status", opt_str(m, "reason")?.as_deref());
            let Some(nick) = nick_in(room.as_str()) else {
                return client("Not in room");
            };
            let to = occupant(&room, &nick)?;
            let attrs = [
                XMLNS,
                ("type", Some("unavailable")),
                ("to", Some(to.as_str())),
            ];
            let mut r = send(el("presence", &attrs, &inner), None);
            r.room = Some(RoomChange::Left(room.as_str().to_string()));
            r
        }
        "muc.message" => {
            let m = obj()?;
            let room = room(m, ctx)?;
            // Only an occupant speaks in a room or to its occupants (XEP-0045 §7.4, §7.5).
            if nick_in(room.as_str()).is_none() {
                return client("Not in room");
            }
            let mut inner = body_and_state(m)?;
            match opt_str(m, "to")? {
                Some(nick) => {
                    let to = occupant(&room, &nick)?;
                    inner += &el("x", &[("xmlns", Some(NS_MUC_USER))], "");
                    message_with_id("chat", to.as_str(), &inner, new_id)
                }
                None => message_with_id("groupchat", room.as_str(), &inner, new_id),
            }
        }
        "muc.subject" => {
            let m = obj()?;
            let room = room(m, ctx)?;
            let subject = text("subject", &opt_str(m, "subject")?.unwrap_or_default());
            send(
                message(Some("groupchat"), room.as_str(), &subject, new_id).1,
                None,
            )
        }
        "muc.role.set" | "muc.affiliation" => {
            let m = obj()?;
            let room = room(m, ctx)?;
            let item = if ev == "muc.role.set" {
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
            iq("set", Some(room.as_str()), &query, Pending::True, new_id)
        }
        "muc.room.config.get" => {
            let room = room(obj()?, ctx)?;
            let query = el("query", &[("xmlns", Some(NS_MUC_OWNER))], "");
            iq(
                "get",
                Some(room.as_str()),
                &query,
                Pending::RoomConfig,
                new_id,
            )
        }
        "muc.room.config.set" => {
            let m = obj()?;
            let room = room(m, ctx)?;
            let mut fields = vec![];
            for f in req(opt_array(m, "form")?, "form")? {
                let Some(f) = f.as_object() else {
                    return invalid("form");
                };
                let var = req_str(f, "var")?;
                fields.push((var, opt_str(f, "type")?, field_values(f.get("value"))?));
            }
            let form = submit_form("http://jabber.org/protocol/muc#roomconfig", &fields);
            let query = el("query", &[("xmlns", Some(NS_MUC_OWNER))], &form);
            iq("set", Some(room.as_str()), &query, Pending::True, new_id)
        }
        "muc.destroy" => {
            let m = obj()?;
            let room = room(m, ctx)?;
            let alt = opt_jid(m, "alternative")?;
            let destroy = el(
                "destroy",
                &[("jid", alt.as_ref().map(Jid::as_str))],
                &reason(m)?,
            );
            let query = el("query", &[("xmlns", Some(NS_MUC_OWNER))], &destroy);
            iq("set", Some(room.as_str()), &query, Pending::True, new_id)
        }
        "muc.invite" | "muc.invite.decline" => {
            let m = obj()?;
            let room = room(m, ctx)?;
            let to = req_jid(m, "to")?;
            let name = if ev == "muc.invite" {
                "invite"
            } else {
                "decline"
            };
            let inner = el(name, &[("to", Some(to.as_str()))], &reason(m)?);
            let x = el("x", &[("xmlns", Some(NS_MUC_USER))], &inner);
            send(message(None, room.as_str(), &x, new_id).1, None)
        }

        "discover.info" | "discover.items" => {
            let m = obj()?;
            let of = req_jid(m, "of")?;
            let node = opt_str(m, "node")?;
            let (ns, pending) = match ev {
                "discover.info" => ("http://jabber.org/protocol/disco#info", Pending::DiscoInfo),
                _ => (
                    "http://jabber.org/protocol/disco#items",
                    Pending::DiscoItems,
                ),
            };
            let query = el(
                "query",
                &[("xmlns", Some(ns)), ("node", node.as_deref())],
                "",
            );
            iq("get", Some(of.as_str()), &query, pending, new_id)
        }
        "ping" => {
            let to = opt_jid(lenient()?, "to")?;
            let to = to.as_ref().map_or(ctx.domain, Jid::as_str);
            let ping = el("ping", &[("xmlns", Some("urn:xmpp:ping"))], "");
            iq("get", Some(to), &ping, Pending::True, new_id)
        }

        "mam.query" => {
            let m = lenient()?;
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
            if let Some(rsm) = opt_obj(m, "rsm")? {
                let max = opt_int(rsm, "max", 0..=i64::MAX)?.map(|n| n.to_string());
                let mut set = opt_text("max", max.as_deref());
                set += &opt_text("after", opt_str(rsm, "after")?.as_deref());
                set += &match rsm.get("before") {
                    Some(Value::Bool(true)) => "<before/>".to_string(),
                    Some(Value::Bool(false)) => String::new(),
                    _ => opt_text("before", opt_str(rsm, "before")?.as_deref()),
                };
                if !set.is_empty() {
                    inner += &el(
                        "set",
                        &[("xmlns", Some("http://jabber.org/protocol/rsm"))],
                        &set,
                    );
                }
            }
            let query_id = query_id.unwrap_or_else(&mut *new_id);
            let query = el(
                "query",
                &[("xmlns", Some(NS_MAM)), ("queryid", Some(&query_id))],
                &inner,
            );
            let pending = Pending::Mam {
                query_id,
                echo: Value::Object(echo),
            };
            iq("set", None, &query, pending, new_id)
        }
        "mam.preferences" => {
            let m = obj()?;
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
            iq("set", None, &prefs, Pending::True, new_id)
        }

        _ => return Err(ReqError::NotImplemented),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const C: &str = "xmlns='jabber:client'";

    fn run(ev: &str, p: Value, cb: bool) -> R<Request> {
        let ctx = Ctx {
            jid: "alice@localhost/web",
            domain: "localhost",
            muc_domain: Some("conference.localhost"),
        };
        let nick_in = |r: &str| (r == "group-x@conference.localhost").then(|| "Al'<&".to_string());
        let mut n = 0;
        request(ev, &p, cb, &ctx, &nick_in, &mut || {
            n += 1;
            format!("id{n}")
        })
    }

    /// The single stanza of a successful request, with its track and immediate.
    fn one(ev: &str, p: Value) -> (String, Option<(String, Pending)>, Option<Value>) {
        let r = run(ev, p, true).unwrap();
        assert_eq!(r.stanzas.len(), 1, "{r:?}");
        (r.stanzas[0].clone(), r.track, r.immediate)
    }

    fn xml(ev: &str, p: Value) -> String {
        one(ev, p).0
    }

    fn err(ev: &str, p: Value, cb: bool) -> String {
        match run(ev, p, cb) {
            Err(ReqError::Client(d)) => d,
            r => panic!("{ev}: {r:?}"),
        }
    }

    fn tracked(ev: &str, p: Value, pending: Pending) -> String {
        let (x, track, imm) = one(ev, p);
        assert_eq!(track, Some(("id1".into(), pending)));
        assert_eq!(imm, None);
        x
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
        let r = run(
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

    #[test]
    fn muc_presence() {
        let (x, t, i) = one(
            "xmpp.muc.join",
            json!({"room": "group-x", "nick": "A'<&", "password": "p&w", "history": {"maxstanzas": 20, "since": "1970-01-01T00:00:00Z"}}),
        );
        assert_eq!(
            x,
            format!(
                "<presence {C} to='group-x@conference.localhost/A&apos;&lt;&amp;'><x xmlns='{NS_MUC}'>\
                 <password>p&amp;w</password><history maxstanzas='20' since='1970-01-01T00:00:00Z'/></x></presence>"
            )
        );
        assert_eq!((t, i), (None, None));
        assert_eq!(
            xml(
                "xmpp.muc.join",
                json!({"room": "Group-X@conference.localhost", "nick": "al"})
            ),
            format!(
                "<presence {C} to='group-x@conference.localhost/al'><x xmlns='{NS_MUC}'/></presence>"
            )
        );
        assert_eq!(
            xml(
                "xmpp.muc.leave",
                json!({"room": "group-x@conference.localhost", "reason": "bye & <go>"})
            ),
            format!(
                "<presence {C} type='unavailable' to='group-x@conference.localhost/Al&apos;&lt;&amp;'>\
                 <status>bye &amp; &lt;go&gt;</status></presence>"
            )
        );
        assert_eq!(
            xml("xmpp.muc.leave", json!({"room": "group-x"})),
            format!(
                "<presence {C} type='unavailable' to='group-x@conference.localhost/Al&apos;&lt;&amp;'/>"
            )
        );
    }

    #[test]
    fn muc_presence_errors() {
        assert_eq!(
            err("xmpp.muc.join", json!("r"), false),
            "Message not an object"
        );
        assert_eq!(
            err("xmpp.muc.join", json!({"nick": "n"}), false),
            "Missing 'room' key"
        );
        assert_eq!(
            err("xmpp.muc.join", json!({"room": "r"}), false),
            "Missing 'nick' key"
        );
        assert_eq!(
            err("xmpp.muc.join", json!({"room": "a b", "nick": "n"}), false),
            "Invalid JID"
        );
        assert_eq!(
            err(
                "xmpp.muc.join",
                json!({"room": {"domain": "conference.localhost"}, "nick": "n"}),
                false
            ),
            "Invalid JID"
        );
        assert_eq!(
            err("xmpp.muc.join", json!({"room": "r", "nick": " n"}), false),
            "Invalid JID"
        );
        assert_eq!(
            err(
                "xmpp.muc.join",
                json!({"room": "r", "nick": "n", "history": 5}),
                false
            ),
            "Invalid 'history' value"
        );
        assert_eq!(
            err(
                "xmpp.muc.join",
                json!({"room": "r", "nick": "n", "history": {"seconds": -1}}),
                false
            ),
            "Invalid 'seconds' value"
        );
        assert_eq!(
            err("xmpp.muc.leave", json!({"room": "other"}), false),
            "Not in room"
        );
        assert_eq!(
            err(
                "xmpp.muc.message",
                json!({"room": "other", "content": "x"}),
                true
            ),
            "Not in room"
        );
        assert_eq!(
            err(
                "xmpp.muc.message",
                json!({"room": "other", "content": "x", "to": "n"}),
                false
            ),
            "Not in room"
        );
        assert_eq!(
            err("xmpp.muc.leave", json!({}), false),
            "Missing 'room' key"
        );
    }

    #[test]
    fn muc_messages() {
        let (x, t, i) = one(
            "xmpp.muc.message",
            json!({"room": "group-x", "content": "a<b"}),
        );
        assert_eq!(
            x,
            format!(
                "<message {C} type='groupchat' to='group-x@conference.localhost' id='id1'><body>a&lt;b</body></message>"
            )
        );
        assert_eq!((t, i), (None, Some(json!({"id": "id1"}))));
        assert_eq!(
            xml(
                "xmpp.muc.message",
                json!({"room": "group-x", "state": "paused", "to": "B'b"})
            ),
            format!(
                "<message {C} type='chat' to='group-x@conference.localhost/B&apos;b' id='id1'>\
                 <paused xmlns='http://jabber.org/protocol/chatstates'/><x xmlns='{NS_MUC_USER}'/></message>"
            )
        );
        assert_eq!(
            xml(
                "xmpp.muc.subject",
                json!({"room": "group-x", "subject": "s&t"})
            ),
            format!(
                "<message {C} type='groupchat' to='group-x@conference.localhost' id='id1'><subject>s&amp;t</subject></message>"
            )
        );
        assert_eq!(
            xml("xmpp.muc.subject", json!({"room": "group-x"})),
            format!(
                "<message {C} type='groupchat' to='group-x@conference.localhost' id='id1'><subject/></message>"
            )
        );
        assert_eq!(
            xml(
                "xmpp.muc.invite",
                json!({"room": "group-x", "to": "bob@localhost", "reason": "<come>"})
            ),
            format!(
                "<message {C} to='group-x@conference.localhost' id='id1'><x xmlns='{NS_MUC_USER}'>\
                 <invite to='bob@localhost'><reason>&lt;come&gt;</reason></invite></x></message>"
            )
        );
        assert_eq!(
            xml(
                "xmpp.muc.invite.decline",
                json!({"room": "group-x", "to": "bob@localhost"})
            ),
            format!(
                "<message {C} to='group-x@conference.localhost' id='id1'><x xmlns='{NS_MUC_USER}'>\
                 <decline to='bob@localhost'/></x></message>"
            )
        );
        assert_eq!(
            err("xmpp.muc.message", json!({"room": "group-x"}), false),
            "Message content or chat state not provided"
        );
        assert_eq!(
            err(
                "xmpp.muc.message",
                json!({"room": "group-x", "content": "x", "to": ""}),
                false
            ),
            "Invalid JID"
        );
        assert_eq!(
            err("xmpp.muc.invite", json!({"room": "g"}), false),
            "Missing 'to' key"
        );
        assert_eq!(
            err(
                "xmpp.muc.invite.decline",
                json!({"room": "g", "to": "x@"}),
                false
            ),
            "Invalid JID"
        );
        assert_eq!(
            err("xmpp.muc.subject", json!(null), false),
            "Message not an object"
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
    fn muc_admin_errors() {
        for ev in [
            "role.set",
            "affiliation",
            "room.config.get",
            "room.config.set",
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

    #[test]
    fn mam() {
        let p = json!({"queryId": "q'1", "with": "Bob@localhost", "start": "2020-01-01T00:00:00Z", "rsm": {"max": 10, "before": true}});
        let r = run("xmpp.mam.query", p, true).unwrap();
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
        assert_eq!(
            r.track,
            Some((
                "id1".into(),
                Pending::Mam {
                    query_id: "q'1".into(),
                    echo
                }
            ))
        );
        assert_eq!(r.immediate, None);

        let r = run(
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
                    query_id: "id1".into(),
                    echo: json!({"end": "e<"})
                }
            ))
        );
        let r = run("xmpp.mam.query", json!(null), true).unwrap();
        assert_eq!(
            r.track,
            Some((
                "id2".into(),
                Pending::Mam {
                    query_id: "id1".into(),
                    echo: json!({})
                }
            ))
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

    #[test]
    fn not_implemented() {
        for ev in [
            "xmpp.login",
            "xmpp.logout",
            "xmpp.login.anonymous",
            "xmpp.register.get",
            "xmpp.pubsub.publish",
            "xmpp.muc.register",
            "xmpp.muc.register.info",
            "xmpp.muc.create",
            "xmpp.muc.cancel",
            "xmpp.muc.voice",
            "xmpp.muc.role.get",
            "xmpp.muc.room.nick",
            "xmpp.discover.client",
            "xmpp.whatever",
            "other",
        ] {
            assert_eq!(
                run(ev, json!({}), true),
                Err(ReqError::NotImplemented),
                "{ev}"
            );
            assert_eq!(
                run(ev, json!({}), false),
                Err(ReqError::NotImplemented),
                "{ev}"
            );
        }
    }

    /// Found by fuzz/fuzz_targets/ftw.rs: a JSON string may hold characters that XML cannot
    /// (controls, U+FFFE, U+FFFF); escaped or not, the stanza built from it was malformed.
    #[test]
    fn fuzz_non_xml_characters_are_client_errors() {
        let bad = "Message contains a character that XML cannot carry";
        let cases = [
            (
                "xmpp.presence",
                json!({"to": "room\u{ffff}@conference.localhost"}),
            ),
            ("xmpp.presence", json!({"status": "a\u{1}b"})),
            (
                "xmpp.chat.message",
                json!({"to": "bob@localhost", "content": "\u{fffe}"}),
            ),
            (
                "xmpp.roster.add",
                json!({"jid": "bob@localhost", "groups": ["g\u{0}"]}),
            ),
            (
                "xmpp.muc.room.config.set",
                json!({"room": "r", "form": [{"var": "v", "value": ["\u{1b}"]}]}),
            ),
            ("xmpp.ping", json!({"\u{ffff}": 1})),
        ];
        for (ev, p) in cases {
            assert_eq!(err(ev, p, true), bad, "{ev}");
        }
        // Tab, LF, CR and everything else XML allows still go through, escaped.
        let x = xml(
            "xmpp.chat.message",
            json!({"to": "bob@localhost", "content": "a\tb\r\n\u{fffd}"}),
        );
        assert!(
            crate::xml::Stanza::parse(&x, &Default::default()).is_ok(),
            "{x}"
        );
    }
}
