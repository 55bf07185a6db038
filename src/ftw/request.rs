//! XMPP-FTW events from the browser, as the stanzas an XML client would send: the checks
//! every event goes through, and the event-name table. What each event becomes is in its
//! feature file (`presence.rs`, `roster.rs`, `chat.rs`, `muc/`, `disco.rs`, `mam.rs`).

use super::common::{Obj, R, client};
use super::render::Asked;
use super::{Ctx, Pending, ReqError, chat, disco, mam, muc, presence, roster};
use serde_json::Value;

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
    /// The browser's answer to a request that waits for it (`answers.rs`): the session
    /// sends it only if that request still waits, else the event is a client error.
    pub answer: Option<Answering>,
}

/// The browser's answer to a ping or a disco#info query addressed to its session.
#[derive(Debug, Clone, PartialEq)]
pub struct Answering {
    pub kind: Asked,
    /// The asker (the request's `from`), as `Jid` writes it.
    pub to: String,
    /// The request's id.
    pub id: String,
    /// The answer's payload: the children of a disco#info `<query/>`, nothing for a ping.
    pub inner: String,
}

/// What a request does to the session's room membership.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomChange {
    /// The bare room JID and the nick it was joined with; `instant`: make it an instant
    /// room if the join creates it (`xmpp.muc.create`).
    Joined {
        room: String,
        nick: String,
        instant: bool,
    },
    Left(String),
}

/// One event being translated, as the feature files read it.
pub(super) struct Event<'a> {
    /// The event name without `xmpp.` (`chat.message`).
    pub(super) name: &'a str,
    pub(super) payload: &'a Value,
    pub(super) ctx: &'a Ctx<'a>,
    /// The nick this session joined a room with, if it did.
    pub(super) nick_in: &'a dyn Fn(&str) -> Option<String>,
    empty: Obj,
}

impl Event<'_> {
    /// The payload of an event that needs fields.
    pub(super) fn obj(&self) -> R<&Obj> {
        self.payload
            .as_object()
            .ok_or_else(|| ReqError::Client("Message not an object".into()))
    }

    /// The payload of an event whose fields are all optional (`null` = none).
    pub(super) fn lenient(&self) -> R<&Obj> {
        match self.payload {
            Value::Null => Ok(&self.empty),
            _ => self.obj(),
        }
    }
}

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
    "muc.role.get",
    "muc.affiliation",
    "muc.room.config.get",
    "muc.room.config.set",
    "muc.cancel",
    "muc.destroy",
    "muc.register.info",
    "muc.register",
    "muc.room.nick",
];

/// Why events of modules Aoba replaces with its JWT login are refused (`not-allowed`),
/// and how to log in instead; `None` for any other event. `event` is the full name.
pub fn not_allowed(event: &str) -> Option<&'static str> {
    match event {
        "xmpp.login.anonymous" => Some(
            "Anonymous login is not offered: log in with xmpp.login as your user, with the \
             auth_token cookie or with your JWT as the password",
        ),
        "xmpp.register.get"
        | "xmpp.register.set"
        | "xmpp.register.password"
        | "xmpp.register.unregister" => Some(
            "In-band registration is not offered: accounts come with the JWTs your \
             application issues; log in with xmpp.login, with the auth_token cookie or with \
             your JWT as the password",
        ),
        _ => None,
    }
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
    if let Some(why) = not_allowed(event) {
        return Err(ReqError::NotAllowed(why));
    }
    if !has_callback
        && (NEEDS_CALLBACK.contains(&ev) || (ev == "chat.message" && chat::wants_receipt(payload)))
    {
        return client("Missing callback");
    }
    // A string XML cannot carry (a control character, U+FFFE, U+FFFF) would make the
    // stanza built from it malformed.
    if !xml_safe(payload) {
        return client("Message contains a character that XML cannot carry");
    }
    let e = Event {
        name: ev,
        payload,
        ctx,
        nick_in,
        empty: Obj::new(),
    };
    match ev {
        "presence" => presence::available(&e),
        "presence.offline" => Ok(presence::offline()),
        "presence.get"
        | "presence.subscribe"
        | "presence.subscribed"
        | "presence.unsubscribe"
        | "presence.unsubscribed" => presence::typed(&e),

        "roster.get" => Ok(roster::get(new_id)),
        "roster.add" | "roster.edit" | "roster.group" | "roster.remove" => roster::set(&e, new_id),

        "chat.message" => chat::send_message(&e, new_id),
        "chat.receipt" => chat::send_receipt(&e, new_id),

        "muc.join" => muc::occupants::join(&e),
        "muc.create" => muc::occupants::create(&e),
        "muc.leave" => muc::occupants::leave(&e),
        "muc.message" => muc::messages::send_message(&e, new_id),
        "muc.subject" => muc::messages::subject(&e, new_id),
        "muc.invite" | "muc.invite.decline" => muc::messages::invite(&e, new_id),
        "muc.voice" => muc::voice::request(&e, new_id),
        "muc.role.set" | "muc.affiliation" => muc::admin::set_item(&e, new_id),
        "muc.role.get" => muc::admin::role_get(&e, new_id),
        "muc.room.config.get" => muc::admin::config_get(&e, new_id),
        "muc.room.config.set" => muc::admin::config_set(&e, new_id),
        "muc.cancel" => muc::admin::cancel(&e, new_id),
        "muc.destroy" => muc::admin::destroy(&e, new_id),
        "muc.register.info" | "muc.register" => muc::register::register(&e, new_id),
        "muc.room.nick" => muc::register::room_nick(&e, new_id),

        "discover.info" | "discover.items" => disco::discover(&e, new_id),
        "discover.client" => disco::discover_client(&e),
        "ping" => disco::ping(&e, new_id),
        "ping.pong" => disco::pong(&e),

        "mam.query" => mam::query(&e, new_id),
        "mam.preferences" => mam::preferences(&e, new_id),

        _ => Err(ReqError::NotImplemented),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ReqError;
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn not_implemented() {
        for ev in [
            "xmpp.login",
            "xmpp.logout",
            "xmpp.pubsub.publish",
            "xmpp.muc.room.config",
            "xmpp.whatever",
            "other",
        ] {
            assert_eq!(
                emit(ev, json!({}), true),
                Err(ReqError::NotImplemented),
                "{ev}"
            );
            assert_eq!(
                emit(ev, json!({}), false),
                Err(ReqError::NotImplemented),
                "{ev}"
            );
        }
    }

    #[test]
    fn jwt_login_replaces_anonymous_login_and_registration() {
        for ev in [
            "xmpp.login.anonymous",
            "xmpp.register.get",
            "xmpp.register.set",
            "xmpp.register.password",
            "xmpp.register.unregister",
        ] {
            for (p, cb) in [
                (json!({}), true),
                (json!("x\u{1}"), false),
                (json!(null), true),
            ] {
                match emit(ev, p, cb) {
                    Err(ReqError::NotAllowed(why)) => {
                        assert!(
                            why.contains("xmpp.login") && why.contains("JWT"),
                            "{ev}: {why}"
                        )
                    }
                    r => panic!("{ev}: {r:?}"),
                }
            }
        }
        assert_eq!(super::not_allowed("xmpp.login"), None);
        assert_eq!(super::not_allowed("xmpp.register"), None);
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
