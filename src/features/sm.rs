//! XEP-0198 Stream Management: acks both ways and resumption.
//!
//! Inbound, `<a h/>` means the first h stanzas from the client are settled (queued for their
//! recipients, bounced, or durably stored: see `stream::ack_when_settled`). Outbound, the
//! connection keeps every stanza it sent until the client's `<a h/>` (`Sink::sm_*`).
//! A resumable session whose connection drops without `<close/>` detaches: its resource
//! stays bound and available, deliveries collect in a parked queue, and `<resume/>` on a
//! new connection (which lands on the same home shard after SASL) replays exactly what the
//! client had not acknowledged, then what came meanwhile. When the resumption window ends,
//! all of it is routed again (other resources, else offline storage) and the session ends.
//!
//! The core keeps what every stream needs to count and acknowledge (`Stream::sm`, the
//! sink's record of unacknowledged stanzas, `commit::ack_when_settled`); this module owns
//! the nonzas (`on_nonza`, plugged in by namespace), the sessions waiting for resumption
//! and its config, and plugs in where a connection ends (`on_connection_end`: detach) and
//! where a session ends (`on_session_end`: a detached session replaced by a new bind).

use crate::net::outbox::CloseKind;
use crate::xml::ns;
use crate::xml::stanza::Stanza;
use crate::xml::writer::Elem;
use crate::xmpp::core::Host;
use crate::xmpp::errors::{StreamError, stream_error_bytes};
use crate::xmpp::jid::Jid;
use crate::xmpp::session::Resource;
use crate::xmpp::sink::{OutFrame, Sink};
use crate::xmpp::stream::{Action, Stream};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// XEP-0198 Stream Management: acks both ways and resumption.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SmConfig {
    /// How long a dropped resumable session waits for `<resume/>` before what it held is
    /// routed again (other resources, else offline storage); announced to the client in
    /// seconds. `aoba serve --sm-resume-timeout SECS` overrides it.
    #[schemars(range(min = 100))]
    pub resume_timeout_ms: u64,
    /// The server asks for an ack (`<r/>`) once this many stanzas it sent are
    /// unacknowledged, one request at a time. 1 keeps what a client that drops and logs in
    /// afresh may see twice to what was in flight during one round trip.
    #[schemars(range(min = 1))]
    pub request_ack_after_stanzas: usize,
}

impl Default for SmConfig {
    fn default() -> Self {
        SmConfig {
            resume_timeout_ms: 300_000,
            request_ack_after_stanzas: 1,
        }
    }
}

/// The module's per-shard state, owned by the host.
pub struct Sm {
    pub cfg: SmConfig,
    /// Sessions waiting for `<resume/>`, by SM id.
    detached: RefCell<HashMap<String, Detached, ahash::RandomState>>,
    /// Resumable sessions still attached to their connection: SM id → (JID, connection).
    live: RefCell<HashMap<String, (Jid, u64), ahash::RandomState>>,
}

impl Sm {
    /// Sessions waiting for resumption.
    pub fn detached_len(&self) -> usize {
        self.detached.borrow().len()
    }

    pub fn new(cfg: SmConfig) -> Sm {
        Sm {
            cfg,
            detached: RefCell::default(),
            live: RefCell::default(),
        }
    }
}

/// What the module needs from the host: its state.
pub trait SmHost: Host {
    fn sm(&self) -> &Sm;
}

/// A session waiting to be resumed.
struct Detached {
    jid: Jid,
    /// Takes deliveries while detached (the session table points at it).
    parked: Rc<Sink>,
    unacked: VecDeque<OutFrame>,
    /// Stanzas sent to the client before it dropped (the server's h).
    sent: u32,
    /// Stanzas handled from the client (what `<resumed h/>` tells it).
    handled: u32,
    expires: Instant,
}

fn reply(ctl: &Sink, xml: Vec<u8>) {
    ctl.push_reply(OutFrame::text(Bytes::from(xml)));
}

/// `<failed/>` with a stanza error condition (XEP-0198 §3, §5).
fn failed_xml(cond: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    let mut failed = Elem::new(&mut v, "failed").attr("xmlns", ns::SM);
    failed.child(cond).attr("xmlns", ns::STANZAS).end();
    failed.end();
    v
}

fn failed(ctl: &Sink, cond: &str) {
    reply(ctl, failed_xml(cond));
}

/// `<enable/>` after bind.
fn enable<H: SmHost>(stream: &mut Stream, shard: &H, ctl: &Sink, resume: bool) {
    stream.sm = Some(0);
    ctl.sm_enable(0, shard.sm().cfg.request_ack_after_stanzas);
    if resume {
        let id = format!("{:016x}{:08x}", shard.random(), shard.id);
        let max = shard.sm().cfg.resume_timeout_ms / 1000;
        let mut v = Vec::with_capacity(128);
        Elem::new(&mut v, "enabled")
            .attr("xmlns", ns::SM)
            .attr("id", &id)
            .attr("resume", "true")
            .attr_fmt("max", max)
            .end();
        reply(ctl, v);
        if let Some(jid) = &stream.jid {
            shard
                .sm()
                .live
                .borrow_mut()
                .insert(id.clone(), (jid.clone(), ctl.id));
        }
        stream.sm_id = Some(id);
    } else {
        let mut v = Vec::with_capacity(64);
        Elem::new(&mut v, "enabled").attr("xmlns", ns::SM).end();
        reply(ctl, v);
    }
}

/// The connection dropped: keep the session for resumption. False if it cannot be kept.
fn detach<H: SmHost>(stream: &mut Stream, shard: &H, ctl: &Sink) -> bool {
    let (Some(id), Some(jid)) = (stream.sm_id.clone(), stream.jid.clone()) else {
        return false;
    };
    let parked = Rc::new(Sink::new(
        ctl.id ^ PARKED,
        shard.cfg().limits.outbound_queue_bytes_max,
    ));
    {
        let mut sessions = shard.sessions.borrow_mut();
        let Some(r) = sessions.own_resource_mut(&jid, ctl.id) else {
            return false;
        };
        r.ctl = parked.clone();
    }
    let (sent, unacked) = ctl.sm_take().unwrap_or_default();
    // What was queued but never written is among the unacknowledged: not re-routed now.
    ctl.out.take_unsent();
    let expires = Instant::now() + Duration::from_millis(shard.sm().cfg.resume_timeout_ms);
    tracing::info!(shard = shard.id, conn = ctl.id, jid = %jid, unacked = unacked.len(), "session detached for resumption");
    shard.sm().detached.borrow_mut().insert(
        id,
        Detached {
            jid,
            parked,
            unacked,
            sent,
            handled: stream.sm.unwrap_or(0),
            expires,
        },
    );
    stream.jid = None; // the session lives on without this connection
    true
}

/// `<resume previd h/>` from an authenticated, not yet bound stream.
fn resume<H: SmHost>(stream: &mut Stream, shard: &H, ctl: &Rc<Sink>, previd: &str, h: u32) {
    let user = stream.authed.clone().unwrap_or_default();
    let d = shard
        .sm()
        .detached
        .borrow_mut()
        .remove(previd)
        .or_else(|| take_over(shard, previd, &user));
    let Some(mut d) = d else {
        crate::metrics::shard().sm_resumes[1].inc();
        return failed(ctl, "item-not-found");
    };
    let ok_user = d.jid.local() == Some(&*user);
    let still_bound = shard
        .sessions
        .borrow()
        .resource(&d.jid)
        .is_some_and(|r| r.ctl.id == d.parked.id);
    if !ok_user || !still_bound {
        if !ok_user {
            shard
                .sm()
                .detached
                .borrow_mut()
                .insert(previd.to_string(), d);
        }
        crate::metrics::shard().sm_resumes[1].inc();
        return failed(ctl, "item-not-found");
    }
    // The client's h acknowledges the first stanzas it got before the drop.
    let base = d.sent.wrapping_sub(d.unacked.len() as u32);
    let acked = h.wrapping_sub(base) as usize;
    if acked > d.unacked.len() {
        shard
            .sm()
            .detached
            .borrow_mut()
            .insert(previd.to_string(), d);
        crate::metrics::shard().sm_resumes[1].inc();
        return failed(ctl, "unexpected-request");
    }
    d.unacked.drain(..acked);
    // `<resumed h/>` tells the client its first h stanzas are done: it will not send them
    // again. So it leaves only once what they caused is committed everywhere (the ack's
    // barrier); until then deliveries keep collecting in a parked queue, and the stream
    // is bound (stanzas the client pipelines are counted and routed as usual).
    if d.parked.id & PARKED == 0 {
        // Taken over from a live connection: its queue closes with it.
        let parked = Rc::new(Sink::new(
            ctl.id ^ PARKED,
            shard.cfg().limits.outbound_queue_bytes_max,
        ));
        if let Some(r) = shard
            .sessions
            .borrow_mut()
            .own_resource_mut(&d.jid, d.parked.id)
        {
            r.ctl = parked.clone();
        }
        d.parked = parked;
    }
    ctl.sm_enable(h, shard.sm().cfg.request_ack_after_stanzas);
    ctl.set_handled(d.handled);
    stream.bound(d.jid.clone());
    stream.sm = Some(d.handled);
    stream.sm_id = Some(previd.to_string());
    let conn = Rc::downgrade(ctl);
    let previd = previd.to_string();
    crate::xmpp::commit::after_commit_everywhere(
        shard,
        Box::new(move |shard: &H, ok| resumed(shard, conn, previd, d, ok)),
    );
}

/// The barrier behind a `<resume/>` is back: the session moves to its new connection,
/// which gets `<resumed h/>`, what the client had not acknowledged, then what came
/// meanwhile. If the connection is gone, the session waits for resumption again; if the
/// commit failed, the connection ends (nothing it counted is confirmed) and the session
/// waits; if a new bind replaced the resource meanwhile, what it held is routed again.
fn resumed<H: SmHost>(
    shard: &H,
    conn: std::rc::Weak<Sink>,
    previd: String,
    mut d: Detached,
    ok: bool,
) {
    let ctl = conn.upgrade().filter(|c| !c.is_closing());
    let still_bound = shard
        .sessions
        .borrow()
        .resource(&d.jid)
        .is_some_and(|r| r.ctl.id == d.parked.id);
    if !still_bound {
        tracing::info!(shard = shard.id, jid = %d.jid, "a bind replaced the session while it resumed");
        for f in d.unacked.drain(..).chain(d.parked.out.take_unsent()) {
            crate::xmpp::router::reroute_frame(shard, &f);
        }
        crate::metrics::shard().sm_resumes[1].inc();
        if let Some(c) = ctl {
            c.sm_forbid_resume();
            c.close(
                CloseKind::Flush,
                stream_error_bytes(
                    c.framing(),
                    StreamError::Conflict,
                    Some("the resource was bound again while this session resumed"),
                    None,
                ),
            );
        }
        return;
    }
    let Some(ctl) = ctl.filter(|_| ok) else {
        if let Some(c) = conn.upgrade() {
            tracing::error!(
                conn = c.id,
                "storage commit failed: resumption not confirmed"
            );
            c.sm_forbid_resume();
            c.close(
                CloseKind::Flush,
                stream_error_bytes(
                    c.framing(),
                    StreamError::InternalServerError,
                    Some("storage failed: resume again"),
                    None,
                ),
            );
        }
        d.expires = Instant::now() + Duration::from_millis(shard.sm().cfg.resume_timeout_ms);
        shard.sm().detached.borrow_mut().insert(previd, d);
        return;
    };
    let available = {
        let mut sessions = shard.sessions.borrow_mut();
        let Some(r) = sessions.own_resource_mut(&d.jid, d.parked.id) else {
            return; // checked above, on this thread
        };
        r.ctl = ctl.clone();
        r.available
    };
    let mut v = Vec::with_capacity(128);
    Elem::new(&mut v, "resumed")
        .attr("xmlns", ns::SM)
        .attr("previd", &previd)
        .attr_fmt("h", d.handled)
        .end();
    reply(&ctl, v);
    crate::metrics::shard().sm_resumes[0].inc();
    tracing::info!(shard = shard.id, conn = ctl.id, jid = %d.jid, replay = d.unacked.len(), "session resumed");
    for f in d.unacked.drain(..).chain(d.parked.out.take_unsent()) {
        let _ = ctl.push(f, crate::xmpp::router::overflow_words);
    }
    if available {
        // Anything that overflowed the parked queue went to offline storage.
        shard.on_available(&d.jid, ctl.id);
    }
    shard
        .sm()
        .live
        .borrow_mut()
        .insert(previd, (d.jid.clone(), ctl.id));
}

/// Ends detached sessions whose window has passed (all of them when `all`): what they
/// held is routed again, and the session ends as any other (unavailable broadcast).
pub fn expire<H: SmHost>(shard: &H, now: Instant, all: bool) {
    let due: Vec<String> = shard
        .sm()
        .detached
        .borrow()
        .iter()
        .filter(|(_, d)| all || d.expires <= now)
        .map(|(k, _)| k.clone())
        .collect();
    end_detached(shard, due);
}

/// Ends the detached sessions of user `bare` at once, as if their window had passed (a
/// deleted user); returns their full JIDs.
pub fn expire_user<H: SmHost>(shard: &H, bare: &str) -> Vec<Jid> {
    let (due, jids): (Vec<String>, Vec<Jid>) = shard
        .sm()
        .detached
        .borrow()
        .iter()
        .filter(|(_, d)| d.jid.bare() == bare)
        .map(|(k, d)| (k.clone(), d.jid.clone()))
        .unzip();
    end_detached(shard, due);
    jids
}

fn end_detached<H: SmHost>(shard: &H, due: Vec<String>) {
    for id in due {
        let Some(mut d) = shard.sm().detached.borrow_mut().remove(&id) else {
            continue;
        };
        tracing::info!(shard = shard.id, jid = %d.jid, "detached session expired");
        let res = shard.sessions.borrow_mut().unbind(&d.jid, d.parked.id);
        if let Some(res) = res {
            crate::xmpp::presence::session_ended(shard, res);
        }
        for f in d.unacked.drain(..).chain(d.parked.out.take_unsent()) {
            crate::xmpp::router::reroute_frame(shard, &f);
        }
    }
}

/// A bind replaced a resource whose session was detached: that session is over now, and
/// what it held goes to the user's current resources or offline storage at once.
fn replaced<H: SmHost>(shard: &H, parked_id: u64) {
    let id = shard
        .sm()
        .detached
        .borrow()
        .iter()
        .find(|(_, d)| d.parked.id == parked_id)
        .map(|(k, _)| k.clone());
    let Some(mut d) = id.and_then(|id| shard.sm().detached.borrow_mut().remove(&id)) else {
        return;
    };
    tracing::info!(shard = shard.id, jid = %d.jid, "detached session replaced by a new bind");
    for f in d.unacked.drain(..).chain(d.parked.out.take_unsent()) {
        crate::xmpp::router::reroute_frame(shard, &f);
    }
}

/// `<resume/>` for a session whose old connection has not noticed it dropped (the client
/// is faster than the server's read of the dead socket): the new connection takes the
/// session over at once — what the old one sent and was not acknowledged, what it still
/// had queued, and its handled count — and the old one is closed. Without this the client
/// would have to start afresh and get again what it had already read.
fn take_over<H: SmHost>(shard: &H, previd: &str, user: &str) -> Option<Detached> {
    let (jid, old_id) = shard.sm().live.borrow().get(previd).cloned()?;
    if jid.local() != Some(user) {
        return None;
    }
    let old = shard.conn(old_id)?;
    shard.sm().live.borrow_mut().remove(previd);
    let (sent, mut unacked) = old.sm_take().unwrap_or_default();
    // Queued frames are among the unacknowledged ones: take them so nothing sends them twice.
    old.out.take_unsent();
    let handled = old.handled();
    old.close(crate::net::outbox::CloseKind::Abort, Vec::new());
    unacked.shrink_to_fit();
    tracing::info!(shard = shard.id, conn = old_id, jid = %jid, "resumption takes over a live session");
    Some(Detached {
        jid,
        parked: old,
        unacked,
        sent,
        handled,
        expires: Instant::now(),
    })
}

/// The connection of a resumable session is ending: it is no longer live.
fn forget_live<H: SmHost>(shard: &H, stream: &Stream, conn_id: u64) {
    let Some(id) = &stream.sm_id else { return };
    let mut live = shard.sm().live.borrow_mut();
    // After a takeover the entry belongs to the new connection: leave it.
    if live.get(id).is_some_and(|(_, c)| *c == conn_id) {
        live.remove(id);
    }
}

/// The bit that marks a parked queue's id (connection ids are far below it).
const PARKED: u64 = 1 << 63;

/// The XEP-0198 nonzas: `enable` after bind, `resume` instead of bind, and acks both ways
/// once enabled. `<r/>` is answered with `<a h/>` once every stanza counted in `h` is
/// settled — queued for its recipient, bounced, or durably stored: messages may have
/// crossed to other shards and from there to the storage thread, so `<r/>` sends a barrier
/// along the same paths (`commit::ack_when_settled`).
pub fn on_nonza<H: SmHost>(
    stream: &mut Stream,
    shard: &H,
    ctl: &Rc<Sink>,
    st: &Stanza,
    name: &str,
) -> Action {
    let attr_u32 = |n: &str| st.attr(0, n).and_then(|a| a.value().parse::<u32>().ok());
    match (name, stream.sm) {
        ("enable", None) if stream.jid.is_some() => {
            let resume = st
                .attr(0, "resume")
                .is_some_and(|a| matches!(&*a.value(), "true" | "1"));
            enable(stream, shard, ctl, resume);
        }
        ("resume", None) if stream.jid.is_none() && stream.authed.is_some() => {
            let (Some(previd), Some(h)) = (
                st.attr(0, "previd").map(|a| a.value().into_owned()),
                attr_u32("h"),
            ) else {
                return stream.fail(
                    shard,
                    ctl,
                    StreamError::BadFormat,
                    Some("resume needs previd and h"),
                );
            };
            resume(stream, shard, ctl, &previd, h);
        }
        ("enable" | "resume", _) => failed(ctl, "unexpected-request"),
        ("r", Some(h)) => {
            crate::xmpp::commit::ack_when_settled(shard, ctl, h, &mut stream.ack_inflight)
        }
        ("a", Some(_)) => {
            let Some(h) = attr_u32("h") else {
                return stream.fail(shard, ctl, StreamError::BadFormat, Some("<a/> needs h"));
            };
            if !ctl.sm_ack(h) {
                let sent = ctl.sm_sent().unwrap_or(0);
                tracing::info!(
                    shard = shard.id,
                    conn = ctl.id,
                    h,
                    sent,
                    "client acknowledged more than was sent"
                );
                return stream.fail(
                    shard,
                    ctl,
                    StreamError::UndefinedCondition,
                    Some("handled count too high"),
                );
            }
        }
        _ => {
            return stream.fail(
                shard,
                ctl,
                StreamError::UnsupportedStanzaType,
                Some("stream management is not enabled"),
            );
        }
    }
    Action::Continue
}

/// A connection ended: it is no longer a live resumable session; if it was lost (not
/// closed on purpose), a resumable session detaches and waits for `<resume/>`.
pub fn on_connection_end<H: SmHost>(stream: &mut Stream, shard: &H, ctl: &Sink) {
    forget_live(shard, stream, ctl.id);
    if !stream.clean_end && !ctl.sm_resume_forbidden() {
        detach(stream, shard, ctl);
    }
}

/// A session ended: if it was detached (its resource pointed at the parked queue), a new
/// bind replaced it, and what it held goes to the user's current resources or offline
/// storage at once. (A detached session that expires is taken out of the waiting list
/// before it ends, so this finds nothing for it.)
pub fn on_session_end<H: SmHost>(shard: &H, res: &Resource) {
    if res.ctl.id & PARKED != 0 {
        replaced(shard, res.ctl.id);
    }
}
