//! Stanzas delivered to a JSON session, as XMPP-FTW events: the dispatch by stanza kind.
//!
//! One stanza, read once from the borrowed view, becomes zero or more [`Out`]s: events for
//! the browser, the answer to a callback waiting on an iq, automatic replies (roster
//! pushes, refusals) sent on the session's behalf, and requests (pings, disco#info) the
//! browser may answer itself. What each kind
//! becomes is in its feature file (`chat.rs`, `presence.rs`, `roster.rs`, `muc/`, `mam.rs`,
//! `disco.rs`). Anything odd (a missing attribute, an unknown type) is skipped or left out
//! of the payload; nothing here panics on input.

use super::common::{Outs, attr, error_object, iq_reply};
use super::{Ctx, Pending, chat, disco, mam, muc, presence, roster};
use crate::xml::ns;
use crate::xml::ns::DISCO_INFO as NS_DISCO_INFO;
use crate::xml::ns::MAM as NS_MAM;
use crate::xml::ns::PING as NS_PING;
use crate::xml::ns::ROSTER as NS_ROSTER;
use crate::xml::stanza::Stanza;
use serde_json::Value;
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
    /// A request to the session that its browser may answer itself (a ping, a disco#info
    /// query): shown as an event, then held for the browser's answer or answered at once
    /// with `auto` (`answers.rs`).
    Ask(Box<Ask>),
    /// The session's own presence in `room` (status 110) arrived; `created`: with 201, the
    /// join created the room. A room asked for with `xmpp.muc.create {instant: true}` is
    /// made an instant room now (`muc::admin::instant_form`).
    InRoom { room: String, created: bool },
}

/// The kinds of request a browser may answer itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// XEP-0199 ping: `xmpp.ping`, answered with `xmpp.ping.pong`.
    Ping,
    /// XEP-0030 disco#info: `xmpp.discover.client`, answered with `xmpp.discover.client`.
    DiscoInfo,
}

/// One request to the session that its browser may answer itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub kind: Asked,
    /// Who asked: the `to` of the browser's answer (as `Jid` writes it).
    pub from: String,
    /// The iq's id: the `id` of the browser's answer (`None`: it cannot be answered by id).
    pub id: Option<String>,
    /// The disco#info query's `node`, echoed in the answer (XEP-0115 queries name one).
    pub node: Option<String>,
    /// The event that shows the request to the browser.
    pub event: &'static str,
    pub payload: Value,
    /// The answer the server sends for the session when its browser does not answer.
    pub auto: String,
}

/// The refusal of any other request addressed to the session.
const SERVICE_UNAVAILABLE: &str = "<error type='cancel'>\
    <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";

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
    if !matches!(root.ns, "" | ns::CLIENT) {
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
    let list = match kind {
        Pending::True => Value::Bool(true),
        Pending::Roster => roster::result(st),
        Pending::DiscoInfo => return disco::info_args(st),
        Pending::DiscoItems => return disco::items_args(st),
        Pending::RoomConfig => muc::admin::config_result(st),
        Pending::RoleList => muc::admin::role_list(st),
        Pending::RoomRegister => muc::register::info_result(st),
        Pending::RoomNick => return muc::register::nick_result(st),
        Pending::Mam { echo } => return vec![Value::Null, echo.clone(), mam::fin(st)],
    };
    vec![Value::Null, list]
}

/// A get or set addressed to the session: a roster push is answered, ping and disco#info
/// are asked (answered by the browser or for it), everything else is refused with
/// service-unavailable.
fn request(st: &Stanza, ctx: &Ctx, get: bool, out: &mut Outs) {
    let payload = st.children(0).next().map(|p| (p, &st.elems[p]));
    match payload.map(|(p, el)| (p, el.local, el.ns, get)) {
        Some((_, "ping", NS_PING, true)) => disco::render_ping(st, ctx, out),
        Some((q, "query", NS_ROSTER, false)) if roster::push_allowed(st, ctx) => {
            roster::push(st, q, out)
        }
        Some((q, "query", NS_DISCO_INFO, true)) => disco::render_info_query(st, ctx, q, out),
        _ => out.push(Out::Reply(iq_reply(st, "error", SERVICE_UNAVAILABLE))),
    }
}

/// An archive result, a room's message, or a contact's.
fn message(st: &Stanza, ctx: &Ctx, out: &mut Outs) {
    let from = attr(st, 0, "from");
    let ty = attr(st, 0, "type");
    let ty = ty.as_deref().unwrap_or("normal");

    if let Some(result) = st.child(0, "result", NS_MAM)
        && mam::trusted(ctx, from.as_deref())
    {
        return mam::render_result(st, ctx, result, out);
    }
    if let Some((room, nick)) = from.as_deref().and_then(|f| muc::from_room(ctx, f)) {
        return muc::messages::render(st, ty, room, nick, out);
    }
    chat::render(st, ctx, ty, out);
}

/// A room's presence, or a contact's.
fn presence(st: &Stanza, ctx: &Ctx, out: &mut Outs) {
    let from = attr(st, 0, "from");
    let ty = attr(st, 0, "type");
    let ty = ty.as_deref();
    if let Some((room, nick)) = from.as_deref().and_then(|f| muc::from_room(ctx, f))
        && muc::occupants::render(st, room, nick, ty, out)
    {
        return;
    }
    presence::render(st, ctx, ty, out);
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use serde_json::json;

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
            assert_eq!(deliver(xml), vec![], "{xml}");
        }
    }

    #[test]
    fn iq_result_without_pending_callback_is_dropped() {
        let xml = "<iq type='result' id='q1' to='alice@localhost/web'/>";
        assert_eq!(deliver(xml), vec![]);
        assert_eq!(
            deliver("<iq type='result' to='alice@localhost/web'/>"),
            vec![]
        );
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
    fn other_requests_are_refused() {
        for xml in [
            "<iq from='bob@localhost/desk' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>",
            "<iq from='bob@localhost/desk' id='v1' type='set'><ping xmlns='urn:xmpp:ping'/></iq>",
            "<iq from='bob@localhost/desk' id='v1' type='get'/>",
        ] {
            assert_eq!(
                deliver(xml),
                vec![Out::Reply(
                    "<iq type='error' to='bob@localhost/desk' id='v1'><error type='cancel'>\
                     <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                        .into()
                )],
                "{xml}"
            );
        }
    }
}
