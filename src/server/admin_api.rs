//! The admin API's calls (JSON over HTTP on the admin listener; `admin.rs` reads the
//! request and checks the token): routing, and the calls that read or send. The calls that
//! change rooms and users are in `admin_rooms_users`, the reload in `admin_reload`. What
//! needs a shard goes through its mailbox (`admin_ops`), and the answer is awaited with a
//! deadline.

use super::ShardMsg;
use super::admin_ops::{Op, Reply, Request, SessionInfo};
use crate::runtime::mailbox::MailboxSender;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the API needs: the shards' mailboxes, the domains, the deadline, the bounds.
pub struct Api {
    pub senders: Arc<[MailboxSender<ShardMsg>]>,
    pub domain: String,
    /// The MUC service's domain (`conference.{domain}`).
    pub muc_domain: String,
    pub deadline: Duration,
    /// `admin.max_items_per_request`.
    pub max_items: usize,
    /// A cluster node: its name and its end of the cluster (the view).
    pub cluster: Option<(String, Arc<super::cluster::Link>)>,
}

/// `{"error": CONDITION, "text": TEXT}`.
pub fn error_json(cond: &str, text: &str) -> String {
    serde_json::json!({ "error": cond, "text": text }).to_string()
}

pub(super) fn err(status: u16, cond: &str, text: &str) -> (u16, String) {
    (status, error_json(cond, text))
}

/// The largest page of `GET /api/sessions`.
const PAGE_MAX: usize = 1000;

/// Percent-decodes a path segment or query value (`+` is a space in a query).
pub(super) fn decode(s: &str, plus: bool) -> Option<String> {
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

pub(super) fn query<'a>(q: &'a str, key: &str) -> Option<&'a str> {
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
    pub(super) fn ask(&self, shard: usize, op: Op) -> Result<Reply, (u16, String)> {
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

    /// The shard of this node that is `bare`'s home; in a cluster, a user or room whose
    /// home is another node is refused (421, `redirect`) naming that node and its
    /// `cluster.advertise_url`: its own admin API answers for it (this node's shards do not
    /// hold it, and changing it here would fork it).
    pub(super) fn home(&self, bare: &str) -> Result<usize, (u16, String)> {
        let Some((me, view)) = self.view() else {
            return Ok(self.local_shard(bare));
        };
        match crate::cluster::placement::home(bare, &view.members) {
            Some(m) if m.name != me => {
                let i = view.members.iter().position(|x| x.name == m.name);
                let url = i.and_then(|i| view.urls.get(i).cloned().flatten());
                let admin = i.and_then(|i| view.admin_urls.get(i).cloned().flatten());
                let text = match url {
                    Some(u) => format!("{bare} lives on node {} ({u}): ask its admin API", m.name),
                    None => format!("{bare} lives on node {}: ask its admin API", m.name),
                };
                // `call` forwards it to `admin` when the node has one.
                let body = serde_json::json!({
                    "error": "redirect", "text": text, "node": m.name, "admin": admin,
                });
                Err((421, body.to_string()))
            }
            Some(m) => Ok(crate::runtime::home(bare, m.shards as usize).shard()),
            None => Ok(self.local_shard(bare)),
        }
    }

    /// In a cluster: this node's name and the cluster's current view.
    fn view(&self) -> Option<(&str, crate::cluster::membership::View)> {
        let (me, link) = self.cluster.as_ref()?;
        let view = link
            .membership
            .lock()
            .ok()
            .and_then(|m| m.as_ref().map(|m| m.view()))
            .unwrap_or_default();
        Some((me.as_str(), view))
    }

    /// The shard of this node a single node would choose for `bare` (no cluster check).
    pub(super) fn local_shard(&self, bare: &str) -> usize {
        crate::runtime::home(bare, self.senders.len()).shard()
    }

    /// Answers one call: `(status, JSON)`.
    /// `auth`: the call's `Authorization` header (sent on when the call goes to another
    /// node); `forwarded_by`: the node that sent it here (it is not sent on again, and a
    /// user's deletion does not ask that node back: its admin thread is waiting for this
    /// answer, and does its own part when it comes).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        q: &str,
        body: &[u8],
        auth: Option<&str>,
        forwarded_by: Option<&str>,
    ) -> (u16, String) {
        let (status, json) = self
            .route(method, path, q, body, auth, forwarded_by)
            .unwrap_or_else(|e| e);
        if status != 421 || forwarded_by.is_some() {
            return (status, json);
        }
        let Some((me, _)) = &self.cluster else {
            return (status, json);
        };
        // A user or room homed on another node that has an admin URL: asked there.
        let admin = serde_json::from_str::<serde_json::Value>(&json)
            .ok()
            .and_then(|v| v["admin"].as_str().map(str::to_string));
        match admin {
            Some(base) => {
                let pq = if q.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}?{q}")
                };
                let (st, b) = super::admin_forward::forward(
                    &base,
                    me,
                    method,
                    &pq,
                    auth,
                    body,
                    self.deadline,
                );
                self.after_forward(method, path, st, b)
            }
            None => (status, json),
        }
    }

    /// A user's deletion answered by its home node: this node's rooms lose the user's
    /// affiliations too (the home did not ask this node, which was waiting for it).
    fn after_forward(&self, method: &str, path: &str, st: u16, b: String) -> (u16, String) {
        let user = path
            .strip_prefix("/api/users/")
            .filter(|u| !u.contains('/') && method == "DELETE" && st == 200);
        let Some(user) = user else { return (st, b) };
        let (Ok((bare, _)), Ok(mut v)) = (
            self.user_jid(user),
            serde_json::from_str::<serde_json::Value>(&b),
        ) else {
            return (st, b);
        };
        match self.forget_here(&bare) {
            Ok(n) => {
                let total = v["deleted"]["affiliations"].as_u64().unwrap_or(0) + n as u64;
                v["deleted"]["affiliations"] = total.into();
                (st, v.to_string())
            }
            Err(e) => e,
        }
    }

    /// The other nodes' admin URLs (a cluster whose nodes set `cluster.admin_url`).
    pub(super) fn other_admins(&self) -> Vec<(String, String)> {
        let Some((me, view)) = self.view() else {
            return Vec::new();
        };
        view.members
            .iter()
            .zip(&view.admin_urls)
            .filter(|(m, _)| m.name != me)
            .filter_map(|(m, a)| Some((m.name.clone(), a.clone()?)))
            .collect()
    }

    fn route(
        &self,
        method: &str,
        path: &str,
        q: &str,
        body: &[u8],
        auth: Option<&str>,
        forwarded_by: Option<&str>,
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
                let room = self.room_jid(room_occupants(p).unwrap_or_default())?;
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
            (m, p) if let Some(rest) = p.strip_prefix("/api/rooms/") => {
                let (seg, sub) = match rest.split_once('/') {
                    Some((seg, sub)) => (seg, Some(sub)),
                    None => (rest, None),
                };
                match (m, sub) {
                    ("GET", None) => self.room_get(&self.room_jid(seg)?),
                    ("PUT", None) => self.room_put(&self.room_jid(seg)?, body),
                    ("DELETE", None) => self.room_delete(&self.room_jid(seg)?, q),
                    ("PUT", Some("affiliations")) => {
                        self.room_affiliations(&self.room_jid(seg)?, body)
                    }
                    (_, None | Some("affiliations")) => {
                        Err(err(405, "not-allowed", "method not allowed here"))
                    }
                    _ => Err(err(404, "item-not-found", "no such call")),
                }
            }
            (m, p) if let Some(rest) = p.strip_prefix("/api/users/") => {
                let (seg, sub) = match rest.split_once('/') {
                    Some((seg, sub)) => (seg, Some(sub)),
                    None => (rest, None),
                };
                match (m, sub) {
                    ("GET", None) => {
                        let (bare, local) = self.user_jid(seg)?;
                        self.user_get(&bare, &local)
                    }
                    ("PUT", None) => {
                        let (bare, local) = self.user_jid(seg)?;
                        self.user_put(&bare, &local, body)
                    }
                    ("DELETE", None) => {
                        let (bare, local) = self.user_jid(seg)?;
                        self.user_delete(&bare, &local, auth, forwarded_by)
                    }
                    ("DELETE", Some("affiliations")) => {
                        let (bare, _) = self.user_jid(seg)?;
                        self.forget_affiliations(&bare)
                    }
                    ("PUT", Some("roster")) => {
                        let (bare, local) = self.user_jid(seg)?;
                        self.user_roster(&bare, &local, body)
                    }
                    (_, None | Some("roster")) => {
                        Err(err(405, "not-allowed", "method not allowed here"))
                    }
                    _ => Err(err(404, "item-not-found", "no such call")),
                }
            }
            (
                "GET" | "POST" | "PUT" | "DELETE",
                "/api/stats" | "/api/sessions" | "/api/messages" | "/api/announce" | "/api/rooms"
                | "/api/openapi.json" | "/api/log-level" | "/api/reload",
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
            Some(u) => vec![self.home(u)?],
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

    /// Every room, in memory on any shard or stored, sorted by JID.
    fn rooms(&self) -> Result<(u16, String), (u16, String)> {
        let mut all = Vec::new();
        for s in 0..self.senders.len() {
            if let Reply::Rooms(v) = self.ask(s, Op::Rooms)? {
                all.extend(v);
            }
        }
        // A stored room that is also in memory: the one in memory (loaded first).
        all.sort_by(|a, b| a.jid.cmp(&b.jid).then(b.loaded.cmp(&a.loaded)));
        all.dedup_by(|b, a| a.jid == b.jid);
        Ok((200, serde_json::json!({ "rooms": all }).to_string()))
    }

    /// `room`: a room JID (`room_jid`).
    fn occupants(&self, room: &str) -> Result<(u16, String), (u16, String)> {
        let op = Op::Occupants {
            room: room.to_string(),
        };
        match self.ask(self.home(room)?, op)? {
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
        match self.ask(self.home(j.bare())?, op)? {
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
        match self.ask(self.local_shard(from.bare()), Op::Route { stanza })? {
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

/// The OpenAPI description of every call (`GET /api/openapi.json`).
const OPENAPI: &str = include_str!("openapi.json");
