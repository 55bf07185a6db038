//! The admin API's calls (JSON over HTTP on the admin listener; `admin.rs` reads the
//! request and checks the token). What needs a shard goes through its mailbox
//! (`admin_ops`), and the answer is awaited with a deadline.

use super::ShardMsg;
use super::admin_ops::{Op, Reply, Request, SessionInfo};
use crate::runtime::mailbox::MailboxSender;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the API needs: the shards' mailboxes, the domain, the deadline.
pub struct Api {
    pub senders: Arc<[MailboxSender<ShardMsg>]>,
    pub domain: String,
    pub deadline: Duration,
}

/// `{"error": CONDITION, "text": TEXT}`.
pub fn error_json(cond: &str, text: &str) -> String {
    serde_json::json!({ "error": cond, "text": text }).to_string()
}

fn err(status: u16, cond: &str, text: &str) -> (u16, String) {
    (status, error_json(cond, text))
}

/// The largest page of `GET /api/sessions`.
const PAGE_MAX: usize = 1000;

/// Percent-decodes a path segment or query value (`+` is a space in a query).
fn decode(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `{user}` of `/api/users/{user}/sessions` (never panics on a short path).
fn users_sessions(p: &str) -> Option<&str> {
    p.strip_prefix("/api/users/")?.strip_suffix("/sessions")
}

/// `{room}` of `/api/rooms/{room}/occupants`.
fn room_occupants(p: &str) -> Option<&str> {
    p.strip_prefix("/api/rooms/")?.strip_suffix("/occupants")
}

fn query<'a>(q: &'a str, key: &str) -> Option<&'a str> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageIn {
    to: String,
    body: String,
    from: Option<String>,
    #[serde(rename = "type")]
    mtype: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogLevelIn {
    level: String,
    /// Back to the start-up filter after this many seconds (default 600; 0: never).
    revert_after_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnnounceIn {
    body: String,
    from: Option<String>,
}

impl Api {
    /// Asks `shard` and waits (bounded) for its answer.
    fn ask(&self, shard: usize, op: Op) -> Result<Reply, (u16, String)> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let msg = ShardMsg::Admin(Request { op, reply: tx });
        if self.senders[shard].try_send(msg).is_err() {
            return Err(err(
                503,
                "resource-constraint",
                "the shard's mailbox is full; try again",
            ));
        }
        rx.recv_timeout(self.deadline).map_err(|_| {
            err(
                504,
                "remote-server-timeout",
                "the shard did not answer in time",
            )
        })
    }

    fn home(&self, bare: &str) -> usize {
        crate::runtime::home(bare, self.senders.len()).shard()
    }

    /// Answers one call: `(status, JSON)`.
    pub fn call(&self, method: &str, path: &str, q: &str, body: &[u8]) -> (u16, String) {
        let r = self.route(method, path, q, body);
        r.unwrap_or_else(|e| e)
    }

    fn route(
        &self,
        method: &str,
        path: &str,
        q: &str,
        body: &[u8],
    ) -> Result<(u16, String), (u16, String)> {
        match (method, path) {
            ("GET", "/api/openapi.json") => Ok((200, OPENAPI.to_string())),
            ("GET", "/api/stats") => Ok((200, self.stats())),
            ("GET", "/api/log-level") => crate::logctl::get()
                .map(|v| (200, v.to_string()))
                .ok_or_else(|| err(503, "service-unavailable", "no log control")),
            ("PUT", "/api/log-level") => self.log_level(body),
            ("GET", "/api/sessions") => self.sessions(None, q),
            ("POST", "/api/messages") => self.message(body),
            ("GET", "/api/rooms") => self.rooms(),
            (m, p) if room_occupants(p).is_some() => {
                if m != "GET" {
                    return Err(err(405, "not-allowed", "GET only"));
                }
                let room = decode(room_occupants(p).unwrap_or_default(), false)
                    .ok_or_else(|| err(400, "bad-request", "bad percent-encoding"))?;
                self.occupants(&room)
            }
            ("POST", "/api/announce") => self.announce(body),
            (m, p) if users_sessions(p).is_some() => {
                if m != "GET" {
                    return Err(err(405, "not-allowed", "GET only"));
                }
                let user = users_sessions(p).unwrap_or_default();
                let user = decode(user, false)
                    .filter(|u| !u.is_empty() && !u.contains('/'))
                    .ok_or_else(|| err(400, "bad-request", "a user name is needed"))?;
                let bare = if user.contains('@') {
                    user
                } else {
                    format!("{user}@{}", self.domain)
                };
                crate::xmpp::jid::Jid::parse(&bare)
                    .map_err(|_| err(400, "jid-malformed", "not a valid user"))?;
                self.sessions(Some(bare), q)
            }
            (m, p) if let Some(jid) = p.strip_prefix("/api/sessions/") => {
                if m != "DELETE" {
                    return Err(err(405, "not-allowed", "DELETE only"));
                }
                let jid = decode(jid, false)
                    .ok_or_else(|| err(400, "bad-request", "bad percent-encoding"))?;
                self.kick(&jid, q)
            }
            (
                "GET" | "POST" | "PUT" | "DELETE",
                "/api/stats" | "/api/sessions" | "/api/messages" | "/api/announce" | "/api/rooms"
                | "/api/openapi.json" | "/api/log-level",
            ) => Err(err(405, "not-allowed", "method not allowed here")),
            _ => Err(err(404, "item-not-found", "no such call")),
        }
    }

    fn stats(&self) -> String {
        let m = crate::metrics::render_json();
        m.to_string()
    }

    /// A page of sessions (all of them, or one user's): every shard's first `limit` after
    /// the cursor, merged.
    fn sessions(&self, user: Option<String>, q: &str) -> Result<(u16, String), (u16, String)> {
        let limit = match query(q, "limit") {
            None => 100,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=PAGE_MAX).contains(l))
                .ok_or_else(|| err(400, "bad-request", "limit must be 1..=1000"))?,
        };
        let after = query(q, "after").and_then(|a| decode(a, true));
        let shards: Vec<usize> = match &user {
            Some(u) => vec![self.home(u)],
            None => (0..self.senders.len()).collect(),
        };
        let started = Instant::now();
        let mut all: Vec<SessionInfo> = Vec::new();
        for s in shards {
            let op = Op::Sessions {
                user: user.clone(),
                after: after.clone(),
                limit: limit + 1,
            };
            match self.ask(s, op)? {
                Reply::Sessions(v) => all.extend(v),
                _ => return Err(err(500, "internal-server-error", "unexpected answer")),
            }
        }
        all.sort_by(|a, b| a.jid.cmp(&b.jid));
        let more = all.len() > limit;
        all.truncate(limit);
        let next = more.then(|| all.last().map(|s| s.jid.clone())).flatten();
        tracing::debug!(took = ?started.elapsed(), n = all.len(), "admin: sessions");
        Ok((
            200,
            serde_json::json!({ "sessions": all, "next": next }).to_string(),
        ))
    }

    /// Every room in memory, from every shard, sorted by JID.
    fn rooms(&self) -> Result<(u16, String), (u16, String)> {
        let mut all = Vec::new();
        for s in 0..self.senders.len() {
            if let Reply::Rooms(v) = self.ask(s, Op::Rooms)? {
                all.extend(v);
            }
        }
        all.sort_by(|a, b| a.jid.cmp(&b.jid));
        Ok((200, serde_json::json!({ "rooms": all }).to_string()))
    }

    fn occupants(&self, room: &str) -> Result<(u16, String), (u16, String)> {
        let j = crate::xmpp::jid::Jid::parse(room)
            .ok()
            .filter(|j| j.local().is_some() && j.resource().is_none())
            .ok_or_else(|| err(400, "jid-malformed", "a room JID (room@service) is needed"))?;
        match self.ask(
            self.home(j.as_str()),
            Op::Occupants {
                room: j.as_str().to_string(),
            },
        )? {
            Reply::Occupants(Some(v)) => {
                Ok((200, serde_json::json!({ "occupants": v }).to_string()))
            }
            _ => Err(err(404, "item-not-found", "no such room")),
        }
    }

    fn kick(&self, jid: &str, q: &str) -> Result<(u16, String), (u16, String)> {
        let j = crate::xmpp::jid::Jid::parse(jid)
            .ok()
            .filter(|j| j.resource().is_some())
            .ok_or_else(|| {
                err(
                    400,
                    "jid-malformed",
                    "a full JID (user@domain/resource) is needed",
                )
            })?;
        let reason = query(q, "reason")
            .and_then(|r| decode(r, true))
            .unwrap_or_else(|| "closed by the administrator".into());
        let op = Op::Kick {
            jid: j.as_str().to_string(),
            reason,
        };
        match self.ask(self.home(j.bare()), op)? {
            Reply::Done(true) => Ok((200, serde_json::json!({ "kicked": j.as_str() }).to_string())),
            _ => Err(err(404, "item-not-found", "no such session")),
        }
    }

    fn message(&self, body: &[u8]) -> Result<(u16, String), (u16, String)> {
        let m: MessageIn = serde_json::from_slice(body)
            .map_err(|e| err(400, "bad-request", &format!("bad JSON: {e}")))?;
        let mtype = m.mtype.as_deref().unwrap_or("chat");
        if !matches!(mtype, "chat" | "normal" | "headline" | "groupchat") {
            return Err(err(
                400,
                "bad-request",
                "type must be chat, normal, headline or groupchat",
            ));
        }
        let to = crate::xmpp::jid::Jid::parse(&m.to)
            .map_err(|_| err(400, "jid-malformed", "bad 'to'"))?;
        let from = match &m.from {
            None => crate::xmpp::jid::Jid::parse(&self.domain).expect("the served domain"),
            Some(f) => crate::xmpp::jid::Jid::parse(f)
                .map_err(|_| err(400, "jid-malformed", "bad 'from'"))?,
        };
        // A sender of this domain (the server or one of its users): never someone else's.
        let fd = from.domain();
        if fd != self.domain {
            return Err(err(
                400,
                "forbidden",
                "'from' must be the server or one of its users",
            ));
        }
        let stanza = super::admin::message_stanza(from.as_str(), to.as_str(), mtype, &m.body);
        match self.ask(self.home(from.bare()), Op::Route { stanza })? {
            Reply::Done(true) => Ok((200, serde_json::json!({ "sent": true }).to_string())),
            _ => Err(err(400, "bad-request", "the message could not be built")),
        }
    }

    fn log_level(&self, body: &[u8]) -> Result<(u16, String), (u16, String)> {
        let l: LogLevelIn = serde_json::from_slice(body)
            .map_err(|e| err(400, "bad-request", &format!("bad JSON: {e}")))?;
        crate::logctl::set(&l.level, l.revert_after_s.unwrap_or(600))
            .map(|v| (200, v.to_string()))
            .map_err(|e| err(400, "bad-request", &e))
    }

    fn announce(&self, body: &[u8]) -> Result<(u16, String), (u16, String)> {
        let a: AnnounceIn = serde_json::from_slice(body)
            .map_err(|e| err(400, "bad-request", &format!("bad JSON: {e}")))?;
        let from = a.from.unwrap_or_else(|| self.domain.clone());
        let f = crate::xmpp::jid::Jid::parse(&from)
            .ok()
            .filter(|j| j.domain() == self.domain)
            .ok_or_else(|| {
                err(
                    400,
                    "forbidden",
                    "'from' must be the server or one of its users",
                )
            })?;
        let mut sent = 0;
        for s in 0..self.senders.len() {
            let op = Op::Announce {
                from: f.as_str().to_string(),
                body: a.body.clone(),
            };
            if let Reply::Count(n) = self.ask(s, op)? {
                sent += n;
            }
        }
        Ok((200, serde_json::json!({ "sent": sent }).to_string()))
    }
}

/// The OpenAPI description of the calls served so far.
const OPENAPI: &str = r##"{
  "openapi": "3.0.3",
  "info": {"title": "Aoba admin API", "version": "1"},
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "schemas": {
      "Error": {"type": "object", "properties": {"error": {"type": "string"}, "text": {"type": "string"}}},
      "Session": {"type": "object", "properties": {"jid": {"type": "string"}, "transport": {"type": "string", "enum": ["ws", "wss", "tcp", "starttls", "tls"]}, "peer": {"type": "string", "nullable": true}, "since": {"type": "integer", "description": "seconds since the Unix epoch"}}},
      "Sessions": {"type": "object", "properties": {"sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}}, "next": {"type": "string", "nullable": true}}}
    }
  },
  "security": [{"bearer": []}],
  "paths": {
    "/api/stats": {"get": {"summary": "Counters and gauges, summed over the shards", "responses": {"200": {"description": "stats"}}}},
    "/api/sessions": {"get": {"summary": "Sessions, sorted by full JID, paged", "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}, {"name": "after", "in": "query", "schema": {"type": "string"}, "description": "the 'next' of the previous page"}], "responses": {"200": {"description": "a page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Sessions"}}}}}}},
    "/api/users/{user}/sessions": {"get": {"summary": "One user's sessions", "parameters": [{"name": "user", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "a page"}}}},
    "/api/sessions/{jid}": {"delete": {"summary": "Close a session with a policy-violation stream error", "parameters": [{"name": "jid", "in": "path", "required": true, "schema": {"type": "string"}, "description": "full JID, percent-encoded"}, {"name": "reason", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "kicked"}, "404": {"description": "no such session"}}}},
    "/api/messages": {"post": {"summary": "Send a message as the server or as a user", "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["to", "body"], "properties": {"to": {"type": "string"}, "body": {"type": "string"}, "from": {"type": "string"}, "type": {"type": "string", "enum": ["chat", "normal", "headline", "groupchat"], "default": "chat"}}}}}}, "responses": {"200": {"description": "routed"}}}},
    "/api/log-level": {"get": {"summary": "The log filter now, at start, and when it reverts", "responses": {"200": {"description": "level"}}}, "put": {"summary": "Change the log filter (tracing EnvFilter syntax), reverting after revert_after_s (default 600; 0: never)", "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["level"], "properties": {"level": {"type": "string"}, "revert_after_s": {"type": "integer"}}}}}}, "responses": {"200": {"description": "the new level"}, "400": {"description": "bad filter"}}}},
    "/api/rooms": {"get": {"summary": "Rooms in memory, sorted by JID: jid, name, persistent, occupants", "responses": {"200": {"description": "rooms"}}}},
    "/api/rooms/{room}/occupants": {"get": {"summary": "A room's occupants: nick, jid (the user), role, affiliation", "parameters": [{"name": "room", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "occupants"}, "404": {"description": "no such room"}}}},
    "/api/announce": {"post": {"summary": "A headline message to every online session", "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["body"], "properties": {"body": {"type": "string"}, "from": {"type": "string"}}}}}}, "responses": {"200": {"description": "how many sessions it was sent to"}}}}
  }
}"##;
