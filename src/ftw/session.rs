//! One XMPP-FTW JSON session on its connection: login (cookie or JWT password), events in,
//! callbacks, and the translation of every stanza queued for it into events.
//!
//! Login drives the connection's ordinary XMPP stream through the same steps an XML client
//! takes (open, SASL PLAIN with the cookie or the JWT, bind), so the session is bound,
//! handed to its home shard and routed exactly like an `/xmpp` one; the negotiation
//! elements it produces are not stanzas and render to nothing.

use super::answers::{Answers, Decision, NOTHING_WAITING, Waiting};
use super::request::{self, Request, RoomChange};
use super::transport::{self, Packet, Proto};
use super::{
    Ctx, Pending, ReqError, client_error, jid_object, not_allowed, not_implemented, render,
};
use crate::net::outbox::CloseKind;
use crate::net::websocket;
use crate::xml::ns::BIND as NS_BIND;
use crate::xml::ns::CLIENT as NS_CLIENT;
use crate::xml::ns::FRAMING as NS_FRAMING;
use crate::xml::ns::SASL as NS_SASL;
use crate::xml::stanza::Stanza;
use crate::xml::writer::Elem;
use crate::xmpp::core::Host;
use crate::xmpp::sink::{OutFrame, Render, Sink};
use crate::xmpp::stream::{Action, Stream};
use bytes::Bytes;
use serde_json::{Value, json};
use smallvec::SmallVec;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tuning {
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    pub max_pending: usize,
    /// Requests to the session that may wait for its browser's answer, and for how long.
    pub max_held: usize,
    pub held_timeout_ms: u64,
}

/// What the session keeps between events; shared with the translation of its frames.
pub struct State {
    pub proto: Proto,
    /// The bound full JID once logged in.
    pub jid: Option<String>,
    domain: String,
    muc_domain: Option<String>,
    /// Tracked iq id → (callback id, what its result means).
    pending: HashMap<String, (Option<u64>, Pending)>,
    /// Rooms joined → nick, and whether to make the room an instant room when the join
    /// creates it (`xmpp.muc.create` with `instant`).
    rooms: HashMap<String, Joined>,
    next_id: u64,
    /// Automatic answers rendered while another task was delivering; sent by ours.
    replies: Vec<String>,
    /// A login interrupted by the move to the user's home shard: (resource, callback).
    login: Option<(Option<String>, Option<u64>)>,
    /// Pings and disco#info queries waiting for the browser's answer (`answers.rs`).
    waiting: Waiting,
}

impl State {
    fn new(proto: Proto, domain: String, muc_domain: Option<String>) -> State {
        State {
            proto,
            jid: None,
            domain,
            muc_domain,
            pending: HashMap::new(),
            rooms: HashMap::new(),
            next_id: 0,
            replies: Vec::new(),
            login: None,
            waiting: Waiting::default(),
        }
    }

    /// The session's own presence in `room` arrived (`created`: with 201). Returns the
    /// instant-room form to send for it when the session created the room with
    /// `xmpp.muc.create {instant: true}`; the first own presence settles that either way.
    fn in_room(&mut self, room: &str, created: bool) -> Option<String> {
        let wanted = self
            .rooms
            .get_mut(room)
            .is_some_and(|j| std::mem::take(&mut j.instant));
        if !(wanted && created) {
            return None;
        }
        self.next_id += 1;
        let id = format!("ftw{}", self.next_id);
        Some(super::muc::admin::instant_form(room, &id))
    }
}

/// A room the session joined.
struct Joined {
    nick: String,
    /// Submit the empty configuration form once the room says the join created it.
    instant: bool,
}

/// The JSON side of a connection.
pub struct FtwConn {
    pub proto: Proto,
    pub sid: String,
    ns_connected: bool,
    state: Rc<RefCell<State>>,
    pub tuning: Tuning,
    /// Engine.IO: when the last ping went out, and whether its pong is still awaited.
    pub last_ping: Instant,
    pub ping_outstanding: bool,
}

/// An `FtwConn` on its way to another shard (plain data).
pub struct FtwMove {
    proto: Proto,
    sid: String,
    ns_connected: bool,
    state: State,
    tuning: Tuning,
}

struct Translator {
    state: Rc<RefCell<State>>,
    ctl: Weak<Sink>,
    /// `Tuning::max_held` and `held_timeout_ms`.
    max_held: usize,
    held_timeout: Duration,
}

fn json_frame(s: String) -> OutFrame {
    OutFrame::text(Bytes::from(s))
}

/// Queues an already-rendered JSON frame (never translated again).
fn send(ctl: &Sink, s: String) {
    ctl.push_reply(OutFrame::raw(Bytes::from(websocket::frame(
        websocket::OP_TEXT,
        s.as_bytes(),
    ))));
}

impl Render for Translator {
    fn render(&self, f: &OutFrame, out: &mut SmallVec<[OutFrame; 2]>) {
        // A 1:1 stanza is one part: parsed where it is. A fan-out's parts are joined.
        let joined;
        let bytes: &[u8] = match &f.parts[..] {
            [one] => one,
            parts => {
                joined = parts.concat();
                &joined
            }
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            return;
        };
        // Delivered stanzas nest deeper than what a client may send (a carbon or an archive
        // result wraps the message): parse them with the server-made limits.
        let Ok(st) = Stanza::parse(text, &crate::xmpp::router::SERVER_MADE) else {
            tracing::warn!("ftw: could not render a queued frame");
            return;
        };
        let mut state = self.state.borrow_mut();
        let outs = {
            let s = &*state;
            let Some(jid) = s.jid.as_deref() else {
                return; // negotiation before the session is bound
            };
            let ctx = Ctx {
                jid,
                domain: &s.domain,
                muc_domain: s.muc_domain.as_deref(),
            };
            render::render(&st, &ctx, &|id| s.pending.get(id).map(|p| p.1.clone()))
        };
        let proto = state.proto;
        let mut poke = false;
        for o in outs {
            match o {
                render::Out::Event { name, payload } => {
                    out.push(json_frame(transport::event(proto, name, &payload)))
                }
                render::Out::Answer { iq_id, args } => {
                    if let Some((Some(ack), _)) = state.pending.remove(&iq_id) {
                        out.push(json_frame(transport::ack(proto, ack, &args)));
                    }
                }
                render::Out::Reply(xml) => {
                    state.replies.push(xml);
                    poke = true;
                }
                render::Out::InRoom { room, created } => {
                    if let Some(xml) = state.in_room(&room, created) {
                        state.replies.push(xml);
                        poke = true;
                    }
                }
                render::Out::Ask(a) => {
                    let now = Instant::now();
                    let d = state.waiting.ask(&a, now, self.max_held, self.held_timeout);
                    if d != Decision::Hold || state.waiting.len() == 1 {
                        // An answer to send, or a first deadline for the connection.
                        poke = true;
                    }
                    match d {
                        Decision::Hold => {}
                        Decision::Auto => state.replies.push(a.auto),
                        Decision::Refuse(xml) => {
                            state.replies.push(xml);
                            continue;
                        }
                    }
                    out.push(json_frame(transport::event(proto, a.event, &a.payload)));
                }
            }
        }
        drop(state);
        if poke && let Some(c) = self.ctl.upgrade() {
            c.poke();
        }
    }

    fn last_words(&self, final_bytes: Vec<u8>) -> Vec<u8> {
        let contains = |pat: &[u8]| final_bytes.windows(pat.len()).any(|w| w == pat);
        if !contains(b"<stream:error") {
            return final_bytes;
        }
        let proto = self.state.borrow().proto;
        let condition = [
            "conflict",
            "policy-violation",
            "connection-timeout",
            "system-shutdown",
        ]
        .into_iter()
        .find(|c| contains(format!("<{c} ").as_bytes()))
        .unwrap_or("disconnected");
        let ev = transport::event(
            proto,
            "xmpp.error",
            &json!({
                "type": "connection",
                "condition": "disconnected",
                "description": format!("XMPP client disconnected ({condition})"),
            }),
        );
        let mut v = websocket::frame(websocket::OP_TEXT, ev.as_bytes());
        v.extend_from_slice(&websocket::close_frame(websocket::CLOSE_NORMAL, ""));
        v
    }
}

impl FtwConn {
    /// A JSON session in `proto` framing; `muc` is the domain of the rooms, if any.
    pub fn new<H: Host>(
        shard: &H,
        proto: Proto,
        cfg: &super::FtwConfig,
        muc: Option<String>,
    ) -> FtwConn {
        FtwConn {
            proto,
            sid: format!("{:016x}{:04x}", shard.random(), shard.id),
            ns_connected: false,
            state: Rc::new(RefCell::new(State::new(
                proto,
                shard.domain().to_string(),
                muc,
            ))),
            tuning: Tuning {
                ping_interval_ms: cfg.ping_interval_ms,
                ping_timeout_ms: cfg.ping_timeout_ms,
                max_pending: cfg.max_pending_callbacks,
                max_held: cfg.max_pending_incoming_iqs,
                held_timeout_ms: cfg.incoming_iq_timeout_ms,
            },
            last_ping: Instant::now(),
            ping_outstanding: false,
        }
    }

    /// Starts the session on its connection: the translation of its frames, and the
    /// Engine.IO open packet for a new Socket.IO connection.
    pub fn attach(&self, ctl: &Rc<Sink>, greet: bool, max_payload: usize) {
        ctl.set_render(Some(Rc::new(Translator {
            state: self.state.clone(),
            ctl: Rc::downgrade(ctl),
            max_held: self.tuning.max_held,
            held_timeout: Duration::from_millis(self.tuning.held_timeout_ms),
        })));
        if greet && self.proto == Proto::SocketIo {
            send(
                ctl,
                transport::open(
                    &self.sid,
                    self.tuning.ping_interval_ms,
                    self.tuning.ping_timeout_ms,
                    max_payload,
                ),
            );
        }
    }

    /// The client's Socket.IO namespace is connected already (at the node it landed on,
    /// which relays its session here from its login on).
    pub fn assume_connected(&mut self) {
        self.ns_connected = true;
    }

    pub fn into_move(self) -> FtwMove {
        let empty = State::new(self.proto, String::new(), None);
        let state = std::mem::replace(&mut *self.state.borrow_mut(), empty);
        FtwMove {
            proto: self.proto,
            sid: self.sid,
            ns_connected: self.ns_connected,
            state,
            tuning: self.tuning,
        }
    }

    pub fn from_move(m: FtwMove) -> FtwConn {
        FtwConn {
            proto: m.proto,
            sid: m.sid,
            ns_connected: m.ns_connected,
            state: Rc::new(RefCell::new(m.state)),
            tuning: m.tuning,
            last_ping: Instant::now(),
            ping_outstanding: false,
        }
    }

    fn reply(&self, ctl: &Sink, ack: Option<u64>, args: &[Value]) {
        if let Some(id) = ack {
            send(ctl, transport::ack(self.proto, id, args));
        }
    }

    fn emit(&self, ctl: &Sink, name: &str, payload: &Value) {
        send(ctl, transport::event(self.proto, name, payload));
    }

    /// An error for a callback if there is one, else as event `event`.
    fn fail_to(&self, ctl: &Sink, ack: Option<u64>, event: &str, err: Value) {
        match ack {
            Some(_) => self.reply(ctl, ack, &[err]),
            None => self.emit(ctl, event, &err),
        }
    }

    /// Engine.IO keepalive from the server.
    pub fn ping(&mut self, ctl: &Sink) {
        match self.proto {
            Proto::SocketIo => send(ctl, "2".into()),
            Proto::Primus => ctl.push_reply(OutFrame::raw(Bytes::from(websocket::frame(
                websocket::OP_PING,
                b"",
            )))),
        }
        self.last_ping = Instant::now();
        self.ping_outstanding = true;
    }

    /// Sends the automatic answers rendered since the last call (pong to a ping, result to
    /// a roster push...), as the client's own stanzas.
    pub fn flush_replies<H: Host>(
        &mut self,
        stream: &mut Stream,
        shard: &H,
        ctl: &Rc<Sink>,
    ) -> Action {
        let replies = std::mem::take(&mut self.state.borrow_mut().replies);
        for r in replies {
            if stream.jid.is_none() {
                break;
            }
            let a = stream.on_element(shard, ctl, &r);
            if a != Action::Continue {
                return a;
            }
        }
        Action::Continue
    }

    /// When the oldest request waiting for the browser's answer times out.
    pub fn held_deadline(&self) -> Option<Instant> {
        self.state.borrow().waiting.next_deadline()
    }

    /// Refuses the requests whose wait for the browser's answer is over at `now`.
    pub fn expire_held<H: Host>(
        &mut self,
        now: Instant,
        stream: &mut Stream,
        shard: &H,
        ctl: &Rc<Sink>,
    ) -> Action {
        let mut state = self.state.borrow_mut();
        let expired = state.waiting.expire(now);
        if expired.is_empty() {
            return Action::Continue;
        }
        state.replies.extend(expired);
        drop(state);
        self.flush_replies(stream, shard, ctl)
    }

    /// The session is ending: refuses every request still waiting for the browser.
    pub fn abandon_held<H: Host>(&mut self, stream: &mut Stream, shard: &H, ctl: &Rc<Sink>) {
        let mut state = self.state.borrow_mut();
        let gone = state.waiting.abandon();
        if gone.is_empty() {
            return;
        }
        state.replies.extend(gone);
        drop(state);
        let _ = self.flush_replies(stream, shard, ctl);
    }

    /// A login that was waiting for the move to the home shard.
    pub fn resume_login<H: Host>(
        &mut self,
        stream: &mut Stream,
        shard: &H,
        ctl: &Rc<Sink>,
    ) -> Action {
        let pending = self.state.borrow_mut().login.take();
        match pending {
            Some((resource, ack)) => self.bind(stream, shard, ctl, resource, ack),
            None => Action::Continue,
        }
    }

    /// One text message from the browser.
    pub fn on_text<H: Host>(
        &mut self,
        stream: &mut Stream,
        shard: &H,
        ctl: &Rc<Sink>,
        text: &str,
    ) -> Action {
        let packet = match transport::parse(self.proto, text) {
            Ok(p) => p,
            Err(why) => {
                tracing::info!(shard = shard.id, conn = ctl.id, why, "ftw: malformed frame");
                if stream.jid.is_some() {
                    self.abandon_held(stream, shard, ctl);
                    stream.end(shard, ctl);
                }
                ctl.close(
                    CloseKind::Flush,
                    websocket::close_frame(websocket::CLOSE_INVALID_DATA, why),
                );
                return Action::Close;
            }
        };
        match packet {
            Packet::Ping(p) => send(ctl, format!("3{p}")),
            Packet::Pong => self.ping_outstanding = false,
            Packet::PrimusPing(t) => {
                send(ctl, Value::String(format!("primus::pong::{t}")).to_string())
            }
            Packet::Ignore => {}
            Packet::Connect { nsp } => {
                if nsp == "/" {
                    self.ns_connected = true;
                    send(ctl, transport::connected(&self.sid));
                } else {
                    send(ctl, transport::connect_error(&nsp));
                }
            }
            Packet::Disconnect => {
                self.abandon_held(stream, shard, ctl);
                return self.close(stream, shard, ctl);
            }
            Packet::Event { name, payload, ack } => {
                if self.proto == Proto::SocketIo && !self.ns_connected {
                    tracing::info!(conn = ctl.id, "ftw: event before the namespace connect");
                    return Action::Continue;
                }
                return self.on_event(stream, shard, ctl, &name, payload, ack);
            }
        }
        Action::Continue
    }

    fn close<H: Host>(&mut self, stream: &mut Stream, shard: &H, ctl: &Rc<Sink>) -> Action {
        if !stream.opened {
            ctl.close(
                CloseKind::Flush,
                websocket::close_frame(websocket::CLOSE_NORMAL, ""),
            );
            return Action::Close;
        }
        stream.on_element(shard, ctl, &close_element())
    }

    fn on_event<H: Host>(
        &mut self,
        stream: &mut Stream,
        shard: &H,
        ctl: &Rc<Sink>,
        name: &str,
        payload: Value,
        ack: Option<u64>,
    ) -> Action {
        match name {
            "xmpp.login" => return self.login(stream, shard, ctl, &payload, ack),
            "xmpp.logout" => {
                if stream.jid.is_none() {
                    self.fail_to(ctl, ack, "xmpp.error", not_connected());
                    return Action::Continue;
                }
                self.reply(ctl, ack, &[Value::Null, Value::Bool(true)]);
                self.abandon_held(stream, shard, ctl);
                return self.close(stream, shard, ctl);
            }
            _ => {}
        }
        // Aoba logs in with JWTs only: the original gateway's anonymous login and in-band
        // registration are refused, before login as after, saying how to log in.
        if let Some(why) = request::not_allowed(name) {
            self.fail_to(ctl, ack, "xmpp.error", not_allowed(why));
            return Action::Continue;
        }
        if stream.jid.is_none() {
            self.fail_to(ctl, ack, "xmpp.error", not_connected());
            return Action::Continue;
        }
        let result = {
            let mut state = self.state.borrow_mut();
            let s = &mut *state;
            let ctx = Ctx {
                jid: s.jid.as_deref().unwrap_or(""),
                domain: &s.domain,
                muc_domain: s.muc_domain.as_deref(),
            };
            let rooms = &s.rooms;
            let mut next = s.next_id;
            let r = request::request(
                name,
                &payload,
                ack.is_some(),
                &ctx,
                &|room| rooms.get(room).map(|j| j.nick.clone()),
                &mut || {
                    next += 1;
                    format!("ftw{next}")
                },
            );
            s.next_id = next;
            r
        };
        match result {
            Ok(mut req) => {
                // The browser's answer goes out only for a request still waiting for it.
                if let Some(a) = req.answer.take() {
                    let held = self.state.borrow_mut().waiting.take(a.kind, &a.to, &a.id);
                    let Some(h) = held else {
                        let e = client_error(NOTHING_WAITING, &payload);
                        self.fail_to(ctl, ack, "xmpp.error.client", e);
                        return Action::Continue;
                    };
                    req.stanzas.push(super::answers::answer(&h, &a.inner));
                }
                self.perform(stream, shard, ctl, req, ack)
            }
            Err(ReqError::Client(desc)) => {
                let e = client_error(&desc, &payload);
                self.fail_to(ctl, ack, "xmpp.error.client", e);
                Action::Continue
            }
            Err(ReqError::NotAllowed(why)) => {
                self.fail_to(ctl, ack, "xmpp.error", not_allowed(why));
                Action::Continue
            }
            Err(ReqError::NotImplemented) => {
                let mut e = not_implemented();
                e["description"] = Value::String(format!("{name} is not implemented"));
                e["request"] = payload;
                self.fail_to(ctl, ack, "xmpp.error.client", e);
                Action::Continue
            }
        }
    }

    fn perform<H: Host>(
        &mut self,
        stream: &mut Stream,
        shard: &H,
        ctl: &Rc<Sink>,
        mut req: Request,
        ack: Option<u64>,
    ) -> Action {
        {
            let mut s = self.state.borrow_mut();
            if let Some((id, kind)) = req.track.clone() {
                if s.pending.len() >= self.tuning.max_pending {
                    drop(s);
                    let e = json!({
                        "type": "wait",
                        "condition": "resource-constraint",
                        "description": "too many requests waiting for an answer",
                    });
                    self.fail_to(ctl, ack, "xmpp.error", e);
                    return Action::Continue;
                }
                s.pending.insert(id, (ack, kind));
            }
            match req.room.take() {
                Some(RoomChange::Joined {
                    room,
                    nick,
                    instant,
                }) => {
                    s.rooms.insert(room, Joined { nick, instant });
                }
                Some(RoomChange::Left(room)) => {
                    s.rooms.remove(&room);
                }
                None => {}
            }
        }
        for x in &req.stanzas {
            let a = stream.on_element(shard, ctl, x);
            if a != Action::Continue {
                return a;
            }
        }
        // A callback never waits in silence: without an iq to answer it, it gets the
        // request's own result (`{id}` of a message) or `true` once the stanzas are sent.
        if req.track.is_none() {
            let v = req.immediate.unwrap_or(Value::Bool(true));
            self.reply(ctl, ack, &[Value::Null, v]);
        }
        Action::Continue
    }

    fn login<H: Host>(
        &mut self,
        stream: &mut Stream,
        shard: &H,
        ctl: &Rc<Sink>,
        payload: &Value,
        ack: Option<u64>,
    ) -> Action {
        if stream.jid.is_some() {
            let e = client_error("Already logged in", payload);
            self.fail_to(ctl, ack, "xmpp.error.client", e);
            return Action::Continue;
        }
        let Some(jid) = payload.get("jid").and_then(Value::as_str) else {
            let e = json!({"type": "auth", "condition": "client-error", "description": "No jid provided", "request": payload});
            self.fail_to(ctl, ack, "xmpp.error", e);
            return Action::Continue;
        };
        let local = match jid.split_once('@') {
            Some((l, d)) if d.split('/').next() == Some(shard.domain()) => l.to_string(),
            Some(_) => return self.login_failed(ctl, ack),
            None => jid.split('/').next().unwrap_or("").to_string(),
        };
        // Which requests to the session its browser answers itself (`answers.rs`).
        let Ok(answers) = Answers::parse(payload.get("answers")) else {
            let e = json!({"type": "auth", "condition": "client-error", "description": "Invalid 'answers' value", "request": payload});
            self.fail_to(ctl, ack, "xmpp.error", e);
            return Action::Continue;
        };
        self.state.borrow_mut().waiting.answers = answers;
        let resource = payload
            .get("resource")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| jid.split_once('/').map(|(_, r)| r.to_string()));
        let password = payload
            .get("password")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !stream.opened {
            let a = open_stream(stream, shard, ctl);
            if a != Action::Continue {
                return a;
            }
        }
        if stream.authed.is_none() {
            let a = stream.on_element(shard, ctl, &auth_element(&local, password));
            if stream.authed.is_none() {
                if a != Action::Continue {
                    return a;
                }
                return self.login_failed(ctl, ack);
            }
            if let Action::Handoff(h) = a {
                self.state.borrow_mut().login = Some((resource, ack));
                return Action::Handoff(h);
            }
            // A user of another node: the connection relays this login there
            // (`server::conn`), whose translator answers it.
            if a == Action::Relay {
                return a;
            }
        } else if stream.authed.as_deref() != Some(local.as_str()) {
            return self.login_failed(ctl, ack);
        }
        self.bind(stream, shard, ctl, resource, ack)
    }

    fn login_failed(&self, ctl: &Sink, ack: Option<u64>) -> Action {
        let e = json!({"type": "auth", "condition": "login-fail", "description": "XMPP authentication fail"});
        self.fail_to(ctl, ack, "xmpp.error", e);
        Action::Continue
    }

    fn bind<H: Host>(
        &mut self,
        stream: &mut Stream,
        shard: &H,
        ctl: &Rc<Sink>,
        resource: Option<String>,
        ack: Option<u64>,
    ) -> Action {
        // The stream restarts after SASL success (RFC 6120 §6.4.6), as for an XML client.
        let a = open_stream(stream, shard, ctl);
        if a != Action::Continue {
            return a;
        }
        let a = stream.on_element(shard, ctl, &bind_element(resource.as_deref()));
        let Some(jid) = stream.jid.clone() else {
            if a != Action::Continue {
                return a;
            }
            let e = json!({"type": "auth", "condition": "login-fail", "description": "could not bind that resource"});
            self.fail_to(ctl, ack, "xmpp.error", e);
            return Action::Continue;
        };
        self.state.borrow_mut().jid = Some(jid.as_str().to_string());
        let online = json!({"status": "online", "jid": jid_object(jid.as_str())});
        self.emit(ctl, "xmpp.connection", &online);
        self.reply(ctl, ack, &[Value::Null, online]);
        a
    }
}

/// The `<open/>` an XML client sends, for the session's own stream.
fn open_stream<H: Host>(stream: &mut Stream, shard: &H, ctl: &Rc<Sink>) -> Action {
    stream.on_element(shard, ctl, &open_element(shard.domain()))
}

/// `<open/>` to `domain` (RFC 7395 §3.4).
fn open_element(domain: &str) -> String {
    let mut v = Vec::with_capacity(96 + domain.len());
    Elem::new(&mut v, "open")
        .attr("xmlns", NS_FRAMING)
        .attr("to", domain)
        .attr("version", "1.0")
        .end();
    utf8(v)
}

/// `<close/>` (RFC 7395 §3.6).
fn close_element() -> String {
    let mut v = Vec::with_capacity(64);
    Elem::new(&mut v, "close").attr("xmlns", NS_FRAMING).end();
    utf8(v)
}

/// SASL PLAIN `<auth/>` for `local` with `password` (RFC 6120 §6.4.2, RFC 4616).
fn auth_element(local: &str, password: &str) -> String {
    use base64::Engine;
    let creds = base64::engine::general_purpose::STANDARD
        .encode(format!("\0{local}\0{password}").as_bytes());
    let mut v = Vec::with_capacity(80 + creds.len());
    Elem::new(&mut v, "auth")
        .attr("xmlns", NS_SASL)
        .attr("mechanism", "PLAIN")
        .text(&creds)
        .end();
    utf8(v)
}

/// The bind request, for `resource` or one the server picks (RFC 6120 §7).
fn bind_element(resource: Option<&str>) -> String {
    let mut v = Vec::with_capacity(160 + resource.map_or(0, str::len));
    let mut iq = Elem::new(&mut v, "iq")
        .attr("type", "set")
        .attr("id", "ftw-bind")
        .attr("xmlns", NS_CLIENT);
    let mut bind = iq.child("bind").attr("xmlns", NS_BIND).start_content();
    if let Some(r) = resource {
        bind.child("resource").text(r).end();
    }
    bind.end();
    iq.end();
    utf8(v)
}

/// What the writer wrote: `&str` pieces and escapes, UTF-8.
fn utf8(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_default()
}

fn not_connected() -> Value {
    json!({"type": "connection", "condition": "not-connected", "description": "Log in first (xmpp.login)"})
}

#[cfg(test)]
mod tests;
