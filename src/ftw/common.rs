//! Helpers both directions share, used by every feature file: reading the borrowed stanza
//! view into JSON (render side) and reading JSON payloads into escaped stanza text (request
//! side). No XMPP-FTW event is handled here.

use std::borrow::Cow;
use std::fmt::Write;

use super::render::Out;
use super::request::Request;
use super::{Ctx, Pending, ReqError};
use crate::xml::escape::{escape_attr_to_string, escape_text_to_string};
use crate::xml::ns;
use crate::xml::stanza::Stanza;
use crate::xmpp::jid::Jid;
use serde_json::{Map, Value, json};
use smallvec::SmallVec;

/// A JSON object under construction (an event payload) or being read (a request payload).
pub(super) type Obj = Map<String, Value>;

// ---------------------------------------------------------------------------------------
// Stanza → JSON (render side)

/// What one delivered stanza becomes, in order.
pub(super) type Outs = SmallVec<[Out; 2]>;

/// Emits event `name` with `payload`.
pub(super) fn event(out: &mut Outs, name: &'static str, payload: Obj) {
    out.push(Out::Event {
        name,
        payload: Value::Object(payload),
    });
}

/// Inserts `key` only when there is a value (XMPP-FTW omits absent keys).
pub(super) fn put(o: &mut Obj, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        o.insert(key.into(), v.into());
    }
}

/// The decoded attribute `name` of element `e`.
pub(super) fn attr<'a>(st: &Stanza<'a>, e: usize, name: &str) -> Option<Cow<'a, str>> {
    st.attr(e, name).map(|a| a.value())
}

/// The children of `e` named `local` in namespace `ns`.
pub(super) fn kids<'s>(
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
pub(super) fn own(st: &Stanza, e: usize, local: &str) -> Option<usize> {
    st.child(e, local, st.elems.get(e)?.ns)
}

/// The decoded text of the first child `local` in `ns`.
pub(super) fn child_text<'a>(
    st: &Stanza<'a>,
    e: usize,
    local: &str,
    ns: &str,
) -> Option<Cow<'a, str>> {
    st.child(e, local, ns).map(|c| st.text(c))
}

/// Who sent element `e`: its `from`, or the user's own account when it has none
/// (RFC 6120 §8.1.2.1).
pub(super) fn sender(st: &Stanza, e: usize, ctx: &Ctx) -> String {
    attr(st, e, "from").map_or_else(|| bare(ctx.jid).to_owned(), Cow::into_owned)
}

/// The bare part of a JID string.
pub(super) fn bare(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(b, _)| b)
}

/// `{type, condition, description?, application?}` from the `<error/>` of stanza `e`.
/// A stanza without one still answers its callback: `cancel` / `undefined-condition`.
pub(super) fn error_object(st: &Stanza, e: usize) -> Value {
    let err = own(st, e, "error");
    let ty = err.and_then(|x| attr(st, x, "type"));
    let (mut condition, mut description, mut application) = (None, None, None);
    for c in err.into_iter().flat_map(|x| st.children(x)) {
        let el = &st.elems[c];
        if el.ns != ns::STANZAS {
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

/// `<iq type=TYPE to=FROM id=ID>inner</iq>`, answering the delivered iq.
pub(super) fn iq_reply(st: &Stanza, ty: &str, inner: &str) -> String {
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

// ---------------------------------------------------------------------------------------
// JSON → stanza (request side)

pub(super) type R<T> = Result<T, ReqError>;

pub(super) fn client<T>(description: impl Into<String>) -> R<T> {
    Err(ReqError::Client(description.into()))
}

pub(super) fn invalid<T>(key: &str) -> R<T> {
    client(format!("Invalid '{key}' value"))
}

pub(super) fn bad_jid() -> ReqError {
    ReqError::Client("Invalid JID".into())
}

// ---- field access ----

/// A string field; numbers are accepted as their decimal text, `null` counts as absent.
pub(super) fn opt_str(m: &Obj, k: &str) -> R<Option<String>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => invalid(k),
    }
}

pub(super) fn req<T>(v: Option<T>, k: &str) -> R<T> {
    v.ok_or_else(|| ReqError::Client(format!("Missing '{k}' key")))
}

pub(super) fn req_str(m: &Obj, k: &str) -> R<String> {
    req(opt_str(m, k)?, k)
}

/// A string field that must be one of `allowed`.
pub(super) fn opt_enum(m: &Obj, k: &str, allowed: &[&'static str]) -> R<Option<&'static str>> {
    match opt_str(m, k)? {
        None => Ok(None),
        Some(s) => match allowed.iter().find(|a| **a == s) {
            Some(a) => Ok(Some(a)),
            None => invalid(k),
        },
    }
}

pub(super) fn req_enum(m: &Obj, k: &str, allowed: &[&'static str]) -> R<&'static str> {
    req(opt_enum(m, k, allowed)?, k)
}

/// An integer field (a JSON integer or a string holding one) within `range`.
pub(super) fn opt_int(m: &Obj, k: &str, range: std::ops::RangeInclusive<i64>) -> R<Option<i64>> {
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
pub(super) fn opt_array<'a>(m: &'a Obj, k: &str) -> R<Option<&'a Vec<Value>>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => invalid(k),
    }
}

/// An optional object field.
pub(super) fn opt_obj<'a>(m: &'a Obj, k: &str) -> R<Option<&'a Obj>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => invalid(k),
    }
}

/// A non-empty string field (an empty string counts as absent, as in XMPP-FTW).
pub(super) fn opt_nonempty(m: &Obj, k: &str) -> R<Option<String>> {
    Ok(opt_str(m, k)?.filter(|s| !s.is_empty()))
}

// ---- addresses ----

/// A JID given as a string or as `{user?, domain, resource?}`.
pub(super) fn addr(v: &Value) -> R<Jid> {
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

pub(super) fn opt_jid(m: &Obj, k: &str) -> R<Option<Jid>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => addr(v).map(Some),
    }
}

pub(super) fn req_jid(m: &Obj, k: &str) -> R<Jid> {
    req(opt_jid(m, k)?, k)
}

// ---- element building ----

/// `<name a='v'…>inner</name>` (or `<name …/>` when `inner` is empty); `None` attributes are
/// left out and values are escaped. `inner` is markup, already escaped.
pub(super) fn el(name: &str, attrs: &[(&str, Option<&str>)], inner: &str) -> String {
    let mut v = Vec::with_capacity(2 * name.len() + inner.len() + 16 * attrs.len() + 8);
    let mut e = crate::xml::writer::Elem::new(&mut v, name);
    for (k, val) in attrs {
        if let Some(val) = val {
            e = e.attr(k, val);
        }
    }
    if !inner.is_empty() {
        e = e.raw(inner.as_bytes());
    }
    e.end();
    // Built from `&str` pieces and escapes: UTF-8.
    String::from_utf8(v).unwrap_or_default()
}

/// `<name>text</name>`, the text escaped.
pub(super) fn text(name: &str, t: &str) -> String {
    el(name, &[], &escape_text_to_string(t))
}

/// `<name>text</name>` when there is a text, else nothing.
pub(super) fn opt_text(name: &str, t: Option<&str>) -> String {
    t.map_or_else(String::new, |t| text(name, t))
}

/// The `xmlns` attribute of every stanza built here.
pub(super) const XMLNS: (&str, Option<&str>) = ("xmlns", Some(ns::CLIENT));

/// One stanza, answering the callback with `immediate` (if any) at once.
pub(super) fn send(stanza: String, immediate: Option<Value>) -> Request {
    Request {
        stanzas: vec![stanza],
        immediate,
        ..Default::default()
    }
}

/// An iq to `to` (own account when `None`) carrying `inner`, tracked as `pending`.
pub(super) fn iq(
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
pub(super) fn message(
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
pub(super) fn message_with_id(
    ty: &str,
    to: &str,
    inner: &str,
    new_id: &mut dyn FnMut() -> String,
) -> Request {
    let (id, stanza) = message(Some(ty), to, inner, new_id);
    send(stanza, Some(json!({ "id": id })))
}
