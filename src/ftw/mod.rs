//! XMPP-FTW: the same XMPP world as JSON events with callbacks, served natively.
//!
//! A JSON session is one more kind of session on the user's home shard: the browser speaks
//! Socket.IO v5 over Engine.IO v4 (`/socket.io/`, WebSocket transport) or primus-emitter
//! packets (`/ftw`); `transport.rs` frames those. An event becomes the stanza an XML client
//! would have sent (`request.rs`) and enters the same stream handler, so routing, rosters,
//! MUC and the archive behave exactly as for `/xmpp`. A stanza delivered to the session is
//! rendered to JSON events at the moment it is queued on the connection (`render.rs`), from
//! the borrowed stanza view: no second connection, no loopback XMPP stream.
//!
//! `request.rs` (the event-name table) and `render.rs` (the dispatch by stanza kind) only
//! dispatch; each feature file holds both directions of one feature, with its tests:
//! `presence.rs`, `roster.rs`, `chat.rs`, `muc/`, `mam.rs`, `disco.rs` (with ping),
//! `forms.rs` (data forms, shared by rooms, discovery and the archive), `rsm.rs` (XEP-0059
//! paging, shared by discovery and the archive) and `xhtml.rs` (XHTML-IM bodies and their
//! sanitizing, shared by chat and rooms). `answers.rs` keeps the
//! pings and disco#info queries that wait for the browser's own answer. `common.rs` holds
//! the helpers every feature file uses.

mod answers;
mod chat;
mod common;
mod disco;
mod forms;
mod mam;
mod muc;
mod presence;
pub mod render;
pub mod request;
mod roster;
mod rsm;
pub mod session;
#[cfg(test)]
mod testing;
pub mod transport;
mod xhtml;

use serde_json::{Value, json};

/// What the result of a tracked iq means to the callback that is waiting for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    /// `(null, true)` on a result.
    True,
    /// jabber:iq:roster get → `(null, [item...])`.
    Roster,
    /// disco#info → `(null, [{kind:"identity",...}|{kind:"feature",var}...][, rsm])`, the
    /// third when the result has an XEP-0059 `<set/>`.
    DiscoInfo,
    /// disco#items → `(null, [{jid, node?, name?}...][, rsm])`, the third when the result
    /// has an XEP-0059 `<set/>` (a paged room directory).
    DiscoItems,
    /// muc#owner config get → `(null, {title?, instructions?, fields:[...]})`.
    RoomConfig,
    /// muc#admin get by role → `(null, [{affiliation, jid, nick, role}...])`.
    RoleList,
    /// jabber:iq:register get to a room → `(null, {registered: true, nick})` or
    /// `(null, {instructions?, title?, form})`.
    RoomRegister,
    /// disco#info on a room's `x-roomuser-item` node → `(null, {nick})`, or the error
    /// `item-not-found` when no nick is reserved.
    RoomNick,
    /// MAM query → `(null, echo, rsm)` where `echo` is `{with?, start?, end?}` as asked.
    Mam { echo: Value },
}

/// A request the gateway refuses before anything reaches XMPP.
#[derive(Debug, Clone, PartialEq)]
pub enum ReqError {
    /// `{type:"modify", condition:"client-error", description, request}`.
    Client(String),
    /// An event this server does not implement: `{type:"cancel", condition:"feature-not-implemented"}`.
    NotImplemented,
    /// An event of a module Aoba replaces with its JWT login (anonymous login, in-band
    /// registration): `{type:"cancel", condition:"not-allowed", description}`, the
    /// description saying how to log in.
    NotAllowed(&'static str),
}

/// The JSON of a gateway-side validation error.
pub fn client_error(description: &str, request: &Value) -> Value {
    json!({
        "type": "modify",
        "condition": "client-error",
        "description": description,
        "request": request,
    })
}

/// The JSON of an error for an event this server does not implement.
pub fn not_implemented() -> Value {
    json!({ "type": "cancel", "condition": "feature-not-implemented" })
}

/// The JSON of an error for an event this server refuses on purpose, saying `why`.
pub fn not_allowed(why: &str) -> Value {
    json!({ "type": "cancel", "condition": "not-allowed", "description": why })
}

/// A JID as XMPP-FTW sends it to the browser: `{user?, domain, resource?}`.
pub fn jid_object(jid: &str) -> Value {
    let (bare, resource) = match jid.split_once('/') {
        Some((b, r)) => (b, Some(r)),
        None => (jid, None),
    };
    let (user, domain) = match bare.split_once('@') {
        Some((u, d)) => (Some(u), d),
        None => (None, bare),
    };
    let mut m = serde_json::Map::new();
    if let Some(u) = user {
        m.insert("user".into(), Value::String(u.into()));
    }
    m.insert("domain".into(), Value::String(domain.into()));
    if let Some(r) = resource {
        m.insert("resource".into(), Value::String(r.into()));
    }
    Value::Object(m)
}

/// Addresses of the session a request or rendering is for.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The session's own full JID (`user@domain/resource`).
    pub jid: &'a str,
    /// The server's domain (`localhost`).
    pub domain: &'a str,
    /// The MUC service's domain (`conference.localhost`), if MUC is on.
    pub muc_domain: Option<&'a str>,
}

/// The XMPP-FTW JSON API ([ftw.md](ftw.md)): the same XMPP world as JSON events with
/// callbacks.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FtwConfig {
    /// Serve the XMPP-FTW JSON API.
    pub enabled: bool,
    /// The Socket.IO endpoint (Engine.IO v4, WebSocket transport only; long-polling gets
    /// Engine.IO's `Transport unknown` error). Starts with `/`.
    pub socketio_path: String,
    /// primus-emitter JSON packets on a plain WebSocket (the original demo's clients).
    /// Starts with `/`.
    pub primus_path: String,
    /// Engine.IO `pingInterval`, announced in the open packet: the server pings every this
    /// often (the primus endpoint uses WebSocket pings on idle instead).
    #[schemars(range(min = 100))]
    pub ping_interval_ms: u64,
    /// Engine.IO `pingTimeout`, announced in the open packet: a ping not answered within
    /// this closes the connection.
    #[schemars(range(min = 100))]
    pub ping_timeout_ms: u64,
    /// Callbacks one JSON session may have waiting for an answer from the XMPP side (an iq
    /// nobody answers keeps its callback waiting); past it a request's callback gets
    /// `wait`/`resource-constraint` at once. WebSocket frames are bound by
    /// `limits.max_stanza_bytes` (announced as Engine.IO `maxPayload`); a larger one ends
    /// the session with `xmpp.error` and a close.
    #[schemars(range(min = 1))]
    pub max_pending_callbacks: usize,
    /// Pings and disco#info queries addressed to one JSON session that wait for its
    /// browser's answer (a session that logged in with `answers`:
    /// [ftw.md](ftw.md#answering-pings-and-discovery-yourself)); past it such a request gets
    /// `wait`/`resource-constraint` at once, without reaching the browser.
    #[schemars(range(min = 1, max = 4096))]
    pub max_pending_incoming_iqs: usize,
    /// How long such a request waits for the browser's answer; then the asker gets
    /// `cancel`/`service-unavailable` (as it does when the session ends first).
    #[schemars(range(min = 100, max = 300_000))]
    pub incoming_iq_timeout_ms: u64,
}

impl Default for FtwConfig {
    fn default() -> Self {
        FtwConfig {
            enabled: true,
            socketio_path: "/socket.io/".into(),
            primus_path: "/ftw".into(),
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            max_pending_callbacks: 256,
            max_pending_incoming_iqs: 16,
            incoming_iq_timeout_ms: 10_000,
        }
    }
}

impl FtwConfig {
    /// The endpoints are paths (ranges are checked by `Config::validate`).
    pub fn validate(&self) -> Result<(), String> {
        for (key, path) in [
            ("socketio_path", &self.socketio_path),
            ("primus_path", &self.primus_path),
        ] {
            if !path.starts_with('/') {
                return Err(format!("ftw.{key} {path:?} must start with /"));
            }
        }
        Ok(())
    }
}
