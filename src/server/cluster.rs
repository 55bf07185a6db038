//! A node of a cluster (issue 14, `docs/cluster.md`): joins the membership, starts the
//! bus, hands every view to the shards, sends the core's messages for other nodes over
//! the bus (in order, held back when the bus queue is full), and takes what other nodes
//! send. Connections whose user lives on another node are relayed (`relay.rs`).

use super::{Shard, ShardMsg, relay};
use crate::cluster::NodeView;
use crate::cluster::bus::{Bus, BusConfig, Incoming, SendError};
use crate::cluster::membership::{Membership, MembershipConfig};
use crate::runtime::Home;
use crate::runtime::mailbox::MailboxSender;
use crate::xmpp::core::Msg;
use crate::xmpp::{commit, router, wire};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// This node's end of the cluster, shared by its shards.
pub struct Link {
    pub bus: Bus,
    pub membership: std::sync::Mutex<Option<Membership>>,
}

impl Link {
    /// Leaves the cluster cleanly (a SIGTERM): the others see it at their next heartbeat.
    pub fn leave(&self) {
        if let Some(m) = self.membership.lock().ok().and_then(|mut m| m.take()) {
            m.leave();
        }
    }
}

/// Frames for other nodes that waited for room in the bus queue, in order.
#[derive(Default)]
pub struct Held {
    q: std::cell::RefCell<VecDeque<(Arc<str>, u16, Bytes)>>,
}

impl Held {
    pub fn len(&self) -> usize {
        self.q.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.borrow().is_empty()
    }
}

fn push_all(senders: &[MailboxSender<ShardMsg>], view: &Arc<NodeView>) {
    for mb in senders {
        let mut m = ShardMsg::View(view.clone());
        // The membership thread may wait: a view must reach every shard.
        for _ in 0..10_000 {
            match mb.try_send(m) {
                Ok(()) => break,
                Err(back) => {
                    m = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// Joins the cluster and starts the bus; `None` when `cluster.node` is unset.
pub fn start(
    cfg: &crate::config::Config,
    shards: usize,
    senders: Arc<[MailboxSender<ShardMsg>]>,
) -> Result<Option<Arc<Link>>, String> {
    let c = &cfg.cluster;
    let Some(node) = c.node.clone() else {
        return Ok(None);
    };
    let nats = c.nats_url.clone().unwrap_or_default();
    let deliver_to = senders.clone();
    let mut bc = BusConfig::new(&nats, &c.name, &node);
    bc.queue_frames = c.bus_queue_frames;
    bc.batch_bytes_max = c.bus_batch_bytes_max;
    bc.connect_timeout_ms = c.connect_timeout_ms;
    let mut seqs = Sequences::default();
    let bus = Bus::start(
        bc,
        Box::new(move |inc: Incoming| {
            let Some(mb) = deliver_to.get(inc.shard as usize) else {
                tracing::warn!(from = %inc.from, shard = inc.shard, "bus frame for a shard this node does not have");
                return Ok(());
            };
            let original = inc.clone();
            let (verdict, advance) = seqs.check(inc);
            let Verdict::Deliver(inc) = verdict else {
                return Ok(());
            };
            match mb.try_send(ShardMsg::Remote(inc)) {
                Ok(()) => {
                    if let Some((key, next)) = advance
                        && let Some(e) = seqs.next.get_mut(&key)
                    {
                        e.1 = next;
                    }
                    Ok(())
                }
                // Offered again later, as it came.
                Err(_) => Err(original),
            }
        }),
    )
    .map_err(|e| format!("cluster.nats_url {nats}: {e}"))?;
    let stats = bus.stats_arc();
    crate::metrics::register_extra(Box::new(move |o: &mut String| {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        for (name, help, v) in [
            (
                "aoba_bus_frames_out_total",
                "Frames sent to other nodes.",
                &stats.frames_out,
            ),
            (
                "aoba_bus_messages_out_total",
                "NATS messages published (frames batched per destination node).",
                &stats.messages_out,
            ),
            (
                "aoba_bus_frames_in_total",
                "Frames received from other nodes.",
                &stats.frames_in,
            ),
            (
                "aoba_bus_messages_in_total",
                "NATS messages received.",
                &stats.messages_in,
            ),
            (
                "aoba_bus_malformed_total",
                "NATS messages dropped because they did not parse.",
                &stats.malformed_in,
            ),
            (
                "aoba_bus_disconnects_total",
                "Times the connection to nats-server was lost.",
                &stats.disconnects,
            ),
        ] {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
    }));
    let mut mc = MembershipConfig::new(&cfg.storage.postgres_url, &node);
    mc.heartbeat_ms = c.heartbeat_ms;
    mc.failure_timeout_ms = c.failure_timeout_ms;
    mc.connect_timeout_ms = c.connect_timeout_ms;
    mc.shards = shards.min(u16::MAX as usize) as u16;
    mc.url = c.advertise_url.clone();
    mc.admin_url = c.admin_url.clone();
    let name = node.clone();
    // Test hook: this node's shards learn every view after the first this much later.
    let late = crate::fault::view_delay();
    let mut first = true;
    let membership = Membership::join(
        mc,
        Box::new(move |v| {
            let Some(me) = v.members.iter().find(|m| m.name == name) else {
                return;
            };
            let view = Arc::new(NodeView::new(v, me));
            match late.filter(|_| !std::mem::take(&mut first)) {
                Some(d) => {
                    let senders = senders.clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(d);
                        push_all(&senders, &view);
                    });
                }
                None => {
                    first = false;
                    push_all(&senders, &view);
                }
            }
        }),
        Box::new(|why| {
            // Crash-only: others may already serve this node's users; nothing acknowledged
            // is lost (acks follow commits), and a supervisor starts it again.
            tracing::error!(reason = ?why, "fenced: this node stops now");
            eprintln!("aoba: fenced ({why:?}): stopping");
            std::process::exit(crate::storage::pg::FENCED_EXIT);
        }),
    )
    .map_err(|e| format!("cluster membership: {e}"))?;
    crate::storage::pg::set_fence(&membership.me().name, membership.me().incarnation);
    Ok(Some(Arc::new(Link {
        bus,
        membership: std::sync::Mutex::new(Some(membership)),
    })))
}

/// Sends `body` to shard `shard` of node `node`, behind anything held back.
pub fn send_frame(shard: &Shard, node: u16, to_shard: u16, body: Bytes) {
    let Some(link) = shard.net.cluster.as_ref() else {
        return;
    };
    let name = match shard.core.view.borrow().as_ref().and_then(|v| v.node(node)) {
        Some(n) => n.name.clone(),
        None => {
            tracing::warn!(node, "frame for a node that left the cluster: dropped");
            return;
        }
    };
    let mut held = shard.cluster_held.q.borrow_mut();
    if !held.is_empty() {
        held.push_back((name, to_shard, body));
        return;
    }
    match link.bus.send_to(name.clone(), to_shard, body.clone()) {
        Ok(()) => {}
        Err(SendError::Full) => held.push_back((name, to_shard, body)),
        Err(e) => tracing::warn!(error = ?e, "bus: frame dropped"),
    }
}

/// Sends what waited for room in the bus queue; true if something is still held.
pub fn flush_held(shard: &Shard) -> bool {
    let Some(link) = shard.net.cluster.as_ref() else {
        return false;
    };
    let mut held = shard.cluster_held.q.borrow_mut();
    while let Some((name, s, body)) = held.front() {
        match link.bus.send_to(name.clone(), *s, body.clone()) {
            Err(SendError::Full) => return true,
            Ok(()) | Err(_) => {
                held.pop_front();
            }
        }
    }
    false
}

/// What this shard sent each other node and that node has not yet confirmed committed
/// (the outbox of issue 14): when that node leaves the cluster, it is routed again, in
/// order, to the new homes. Confirmations are barriers this shard sends behind its frames
/// (`sync`); the answer says everything before it is committed there.
#[derive(Default)]
pub struct Sent {
    per: std::cell::RefCell<ahash::HashMap<u16, NodeOut>>,
    bytes: std::cell::Cell<usize>,
}

struct NodeOut {
    /// This sequence's id (a restarted sender, or a new receiver, starts another).
    stream: u64,
    /// The receiver's incarnation when the sequence began.
    incarnation: i64,
    frames: VecDeque<(u64, Bytes)>,
    next: u64,
    /// The barrier in flight: its token and the last frame it covers.
    sync: Option<(u64, u64)>,
    /// When it was sent.
    sync_at: Option<std::time::Instant>,
}

impl Sent {
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }
}

/// Frames kept for one node before a confirmation is asked without waiting for the tick.
const SYNC_AFTER_FRAMES: usize = 256;

/// Frames between nodes that carry a sequence (the gateway of the receiving node checks
/// it): `SEQ` wraps a routed stanza or fan-out, `BARRIER_SEQ` a barrier with how many
/// frames came before it; `BARRIER_GAP` is what the receiving gateway makes of a barrier
/// whose frames did not all arrive (answered `ok = false`, never confirmed).
const SEQ: u8 = 5;
const BARRIER_GAP: u8 = 6;
const BARRIER_SEQ: u8 = 7;

/// The header of a sequenced frame: tag, stream, sending shard, sequence number, and the
/// epoch of the view the sender routed it by.
const STAMP: usize = 27;

fn stamped(tag: u8, stream: u64, shard: u16, n: u64, epoch: i64, body: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(STAMP + body.len());
    b.push(tag);
    b.extend_from_slice(&stream.to_be_bytes());
    b.extend_from_slice(&shard.to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(body);
    Bytes::from(b)
}

/// The sequence of frames this shard sends node `node` (created, or started again when
/// the node is a new incarnation).
fn node_out<'a>(
    shard: &Shard,
    per: &'a mut ahash::HashMap<u16, NodeOut>,
    node: u16,
) -> &'a mut NodeOut {
    let inc = shard
        .core
        .view
        .borrow()
        .as_ref()
        .and_then(|v| v.node(node))
        .map_or(0, |n| n.incarnation);
    per.entry(node).or_insert_with(|| NodeOut {
        stream: shard.random(),
        incarnation: inc,
        frames: VecDeque::new(),
        next: 0,
        sync: None,
        sync_at: None,
    })
}

/// A core message for another node.
pub fn send_msg(shard: &Shard, to: Home, m: Msg) {
    let Some(body) = wire::encode(&m) else { return };
    let me = shard.id as u16;
    match m {
        Msg::Route(_) | Msg::Fanout(_) => {
            let (framed, many) = {
                let mut per = shard.cluster_sent.per.borrow_mut();
                let o = node_out(shard, &mut per, to.node);
                let framed = stamped(SEQ, o.stream, me, o.next, shard.view_epoch(), &body);
                o.frames.push_back((o.next, framed.clone()));
                o.next += 1;
                (
                    framed,
                    o.frames.len() >= SYNC_AFTER_FRAMES && o.sync.is_none(),
                )
            };
            shard
                .cluster_sent
                .bytes
                .set(shard.cluster_sent.bytes.get() + framed.len());
            send_frame(shard, to.node, to.shard, framed);
            if many {
                sync_sent(shard);
            }
        }
        Msg::RemoteBarrier { .. } => {
            let framed = {
                let mut per = shard.cluster_sent.per.borrow_mut();
                let o = node_out(shard, &mut per, to.node);
                stamped(BARRIER_SEQ, o.stream, me, o.next, shard.view_epoch(), &body)
            };
            send_frame(shard, to.node, to.shard, framed);
        }
        _ => send_frame(shard, to.node, to.shard, body),
    }
}

/// The receiving gateway's check of sequenced frames: per sending shard, the stream and
/// the next sequence number expected. Runs on the gateway thread, in arrival order.
#[derive(Default)]
pub struct Sequences {
    next: ahash::HashMap<Sender, (u64, u64)>,
}

/// A sending shard: its node's name and its number.
type Sender = (Arc<str>, u16);

/// What the gateway does with a frame.
enum Verdict {
    Deliver(Incoming),
    /// A routed frame seen before (sent again), or after a gap: dropped; the sender sends
    /// it again (it has not been confirmed).
    Drop,
}

impl Sequences {
    fn check(&mut self, mut inc: Incoming) -> (Verdict, Option<(Sender, u64)>) {
        let tag = inc.body.first().copied();
        if !matches!(tag, Some(SEQ | BARRIER_SEQ)) || inc.body.len() < STAMP {
            return (Verdict::Deliver(inc), None);
        }
        let b = &inc.body;
        let stream = u64::from_be_bytes(b[1..9].try_into().unwrap_or_default());
        let from = u16::from_be_bytes(b[9..11].try_into().unwrap_or_default());
        let n = u64::from_be_bytes(b[11..19].try_into().unwrap_or_default());
        inc.epoch = i64::from_be_bytes(b[19..27].try_into().unwrap_or_default());
        let key = (inc.from.clone(), from);
        let e = self.next.entry(key.clone()).or_insert((stream, 0));
        if e.0 != stream {
            *e = (stream, 0);
        }
        let expect = e.1;
        if tag == Some(SEQ) {
            if n != expect {
                return (Verdict::Drop, None);
            }
            inc.body = inc.body.slice(STAMP..);
            (Verdict::Deliver(inc), Some((key, n + 1)))
        } else {
            // A barrier covers the `n` frames sent before it: all of them must be here.
            let mut inner = inc.body.slice(STAMP..).to_vec();
            if expect < n
                && let Some(t) = inner.first_mut()
            {
                *t = BARRIER_GAP;
            }
            inc.body = Bytes::from(inner);
            (Verdict::Deliver(inc), None)
        }
    }
}

/// Asks every node this shard has unconfirmed frames for to confirm them (one barrier
/// each, behind the frames). A confirmation that does not come within
/// `cluster.resend_after_ms` means the bus lost something (core NATS is at most once: a
/// nats-server restart): everything unconfirmed goes again, in order, and the ack
/// barriers in flight start over. The receiver may get some frames twice, never none.
pub fn sync_sent(shard: &Shard) {
    let me = Home {
        node: shard.node_num(),
        shard: shard.id as u16,
    };
    let now = std::time::Instant::now();
    let resend_after = Duration::from_millis(shard.config.cluster.resend_after_ms);
    let mut ask = Vec::new();
    let mut resend: Vec<(u16, Vec<Bytes>)> = Vec::new();
    for (node, o) in shard.cluster_sent.per.borrow_mut().iter_mut() {
        if o.frames.is_empty() {
            continue;
        }
        let lost = o
            .sync_at
            .is_some_and(|t| now.duration_since(t) >= resend_after);
        if lost {
            resend.push((*node, o.frames.iter().map(|(_, b)| b.clone()).collect()));
            o.sync = None;
        }
        if o.sync.is_none() {
            let token = shard.random();
            o.sync = Some((token, o.next - 1));
            o.sync_at = Some(now);
            ask.push((*node, token));
        }
    }
    let restart = !resend.is_empty();
    for (node, frames) in resend {
        tracing::warn!(
            shard = shard.id,
            node,
            frames = frames.len(),
            "no confirmation from a node: sending again what it did not confirm"
        );
        for body in frames {
            // The destination shard is in the frame's key: the receiving node routes it
            // again by its own view (`on_remote` delivers Route, splits Fanout).
            let to = match wire::decode(body.slice(STAMP.min(body.len())..)) {
                Some(Msg::Route(r)) => {
                    let to = r.to();
                    shard.home(to.split('/').next().unwrap_or("")).shard
                }
                _ => 0,
            };
            send_frame(shard, node, to, body);
        }
    }
    for (node, token) in ask {
        send_msg(
            shard,
            Home { node, shard: 0 },
            Msg::RemoteBarrier { token, reply: me },
        );
    }
    if restart {
        commit::restart_acks(shard);
    }
}

/// A node answered a barrier: this shard's own confirmation, or an ack's. A failed one
/// (frames lost on the way, or its storage failed) is never taken as a confirmation: what
/// is unconfirmed goes again and the acks in flight start over.
pub fn on_barrier_done(shard: &Shard, token: u64, ok: bool) {
    let mut freed = 0;
    let mine = {
        let mut per = shard.cluster_sent.per.borrow_mut();
        let mut mine = false;
        for o in per.values_mut() {
            if let Some((t, upto)) = o.sync
                && t == token
            {
                mine = true;
                if ok {
                    o.sync = None;
                    o.sync_at = None;
                    while o.frames.front().is_some_and(|(seq, _)| *seq <= upto) {
                        freed += o.frames.pop_front().map_or(0, |(_, b)| b.len());
                    }
                } else {
                    // Sent again at once by `sync_sent`.
                    o.sync_at = Some(std::time::Instant::now() - Duration::from_secs(3600));
                }
            }
        }
        mine
    };
    if mine {
        shard
            .cluster_sent
            .bytes
            .set(shard.cluster_sent.bytes.get().saturating_sub(freed));
        if !ok {
            sync_sent(shard);
        }
        return;
    }
    let ack = shard
        .commit_waiters
        .borrow()
        .get(&token)
        .is_some_and(commit::Waiter::everywhere);
    if ok || !ack {
        return commit::on_synced(shard, token, ok);
    }
    // An ack's barrier failed on another node: everything unconfirmed goes again, then
    // the ack's round starts over behind it.
    for o in shard.cluster_sent.per.borrow_mut().values_mut() {
        if !o.frames.is_empty() {
            o.sync_at = Some(std::time::Instant::now() - Duration::from_secs(3600));
            if o.sync.is_none() {
                o.sync = Some((0, o.next.saturating_sub(1)));
            }
        }
    }
    sync_sent(shard);
    commit::restart_acks(shard);
}

/// The frames kept for nodes that left `shard`'s view, routed again (in their order) by
/// the new view, then every ack barrier in flight starts over (its old round may wait for
/// a node that will never answer, and the frames it covered have moved).
fn reroute_sent(shard: &Shard) {
    let gone: Vec<NodeOut> = {
        let view = shard.core.view.borrow();
        let Some(v) = view.as_ref() else { return };
        let mut per = shard.cluster_sent.per.borrow_mut();
        let dead: Vec<u16> = per
            .iter()
            .filter(|(n, o)| v.node(**n).is_none_or(|r| r.incarnation != o.incarnation))
            .map(|(n, _)| *n)
            .collect();
        dead.iter().filter_map(|n| per.remove(n)).collect()
    };
    if gone.is_empty() {
        return;
    }
    let mut n = 0usize;
    for o in gone {
        for (_, body) in o.frames {
            shard
                .cluster_sent
                .bytes
                .set(shard.cluster_sent.bytes.get().saturating_sub(body.len()));
            n += 1;
            match wire::decode(body.slice(STAMP.min(body.len())..)) {
                // A presence to a room that lived there (a join, a change of status): its
                // occupant list died with the node, and its occupants are told to join
                // again (`rooms_lost`); replaying it would seat a ghost.
                Some(Msg::Route(r))
                    if r.kind == router::Kind::Presence && {
                        let to = r.to();
                        to.split('/').next().and_then(|b| b.split('@').nth(1))
                            == Some(shard.muc.domain())
                    } => {}
                Some(Msg::Route(r)) => router::route(shard, r),
                Some(Msg::Fanout(f)) => {
                    let tos: Vec<(Home, Bytes)> = f
                        .tos
                        .into_iter()
                        .map(|to| {
                            let jid = String::from_utf8_lossy(&to).into_owned();
                            let jid = crate::xml::escape::unescape(&jid)
                                .map(|c| c.into_owned())
                                .unwrap_or(jid);
                            let bare = jid.split('/').next().unwrap_or("");
                            (shard.home(bare), to)
                        })
                        .collect();
                    router::fanout(shard, f.head, f.tail, &tos);
                }
                _ => {}
            }
        }
    }
    tracing::warn!(
        shard = shard.id,
        frames = n,
        "a node left: what it had not confirmed is routed to the new homes"
    );
    commit::restart_acks(shard);
}

/// Rooms whose home left the cluster lost their occupant lists with it (XEP-0045 rooms
/// live in their home's memory): every session here that is in one gets the room's
/// `unavailable` for itself with status codes 110 and 332 (removed because the service
/// went down, §9 and the ejabberd practice on shutdown), so its client joins again: the
/// room comes back at its new home (a persistent room with its configuration, from
/// PostgreSQL), and its history is in the room's archive.
fn rooms_lost(shard: &Shard, old: &NodeView) {
    let muc = shard.muc.domain().to_string();
    let view = shard.core.view.borrow().clone();
    let Some(new) = view else { return };
    let mut kicked: Vec<(std::rc::Rc<crate::xmpp::sink::Sink>, String, String)> = Vec::new();
    {
        let mut sessions = shard.sessions.borrow_mut();
        let all: Vec<crate::xmpp::jid::Jid> = sessions.all().map(|r| r.jid.clone()).collect();
        for jid in all {
            let Some(bare) = sessions.user_mut(jid.bare()) else {
                continue;
            };
            for r in bare.resources.iter_mut().filter(|r| r.jid == jid) {
                r.directed.retain(|to| {
                    let in_muc = to.domain() == muc;
                    let lost = in_muc
                        && old
                            .home(to.bare())
                            .is_some_and(|(node, _)| new.node(node).is_none());
                    if lost {
                        kicked.push((
                            r.ctl.clone(),
                            to.as_str().to_string(),
                            r.jid.as_str().to_string(),
                        ));
                    }
                    !lost
                });
            }
        }
    }
    for (ctl, occupant, to) in kicked {
        let mut v = Vec::with_capacity(256);
        {
            use crate::xml::writer::Elem;
            let mut p = Elem::new(&mut v, "presence")
                .attr("from", &occupant)
                .attr("to", &to)
                .attr("type", "unavailable");
            let mut x = p.child("x").attr("xmlns", crate::xml::ns::MUC_USER);
            x.child("item")
                .attr("affiliation", "none")
                .attr("role", "none")
                .end();
            x.child("status").attr("code", "110").end();
            x.child("status").attr("code", "332").end();
            x.end();
            p.end();
        }
        tracing::info!(occupant = %occupant, to = %to, "the room's home left the cluster: occupant told (332)");
        router::push(&ctl, &Bytes::from(v));
    }
}

/// Whether room `jid`'s home is this shard of this node.
pub fn room_here(shard: &Shard, jid: &str) -> bool {
    let h = shard.home(jid);
    shard.is_local(h) && h.shard() == shard.id
}

/// Whether `r` is for the MUC service's domain.
fn for_muc(shard: &Shard, r: &router::Routed) -> bool {
    let to = r.to();
    let bare = router::split_full(&to).0;
    bare.rsplit_once('@').map_or(bare, |(_, d)| d) == shard.muc.domain()
}

/// A frame from another node.
pub fn on_remote(shard: &std::rc::Rc<Shard>, inc: Incoming) {
    let Some(&tag) = inc.body.first() else { return };
    if tag >= relay::FIRST_TAG {
        return relay::on_frame(shard, inc);
    }
    if tag == BARRIER_GAP {
        // Same layout as a barrier: answered as failed, so nothing is confirmed.
        let mut b = inc.body.to_vec();
        b[0] = wire::BARRIER;
        if let Some(Msg::RemoteBarrier { token, reply }) = wire::decode(Bytes::from(b)) {
            tracing::warn!(from = %inc.from, "a barrier came after a gap in the frames: answered as failed");
            crate::xmpp::core::Host::send(&**shard, reply, Msg::BarrierDone { token, ok: false });
        }
        return;
    }
    match wire::decode(inc.body) {
        // Delivered here even if this node's view says the home is elsewhere (views
        // differ for a heartbeat): nobody here takes it, so it is stored offline, in the
        // PostgreSQL every node reads.
        // A stanza for a room: the sender's view and this node's may differ
        // (`muc::lazy`).
        Some(Msg::Route(r)) if for_muc(shard, &r) => {
            let wait =
                std::time::Duration::from_millis(shard.config.cluster.failure_timeout_ms.max(1));
            let until = std::time::Instant::now() + wait;
            shard.muc.arrive_remote(&**shard, r, inc.epoch, until)
        }
        Some(Msg::Route(r)) => router::deliver(&**shard, r),
        Some(Msg::Fanout(f)) => router::fanout_arrived(&**shard, f),
        Some(Msg::RemoteBarrier { token, reply }) => commit::relay_barrier(&**shard, token, reply),
        Some(Msg::BarrierDone { token, ok }) => on_barrier_done(shard, token, ok),
        Some(Msg::Barrier { .. }) | None => {
            tracing::warn!(from = %inc.from, "malformed frame from another node: dropped")
        }
    }
}

/// A new view: routing follows it from now on; sessions whose home moved to another node
/// end (their clients reconnect to the new home; what they did not acknowledge is routed
/// there).
pub fn on_view(shard: &Shard, v: Arc<NodeView>) {
    tracing::info!(
        shard = shard.id,
        epoch = v.epoch,
        nodes = v.nodes.len(),
        "cluster view"
    );
    shard.core.raise_archive_floor(v.archive_floor);
    let old = shard.core.view.borrow_mut().replace(v);
    reroute_sent(shard);
    if let Some(old) = old {
        rooms_lost(shard, &old);
    }
    // Rooms follow the view: those homed elsewhere now leave (occupants told, 332); those
    // homed here now load on the first stanza for them (`muc::lazy`), and so does the
    // directory where the service is homed now.
    shard.muc.rehome(shard, |jid| room_here(shard, jid));
    shard.muc.forget_directory();
    shard.muc.view_moved(shard);
    if shard.id == 0 && shard.has_storage() {
        shard.storage(crate::storage::Request::ViewChanged);
    }
    let moved: Vec<std::rc::Rc<crate::xmpp::sink::Sink>> = shard
        .sessions
        .borrow()
        .all()
        .filter(|r| !shard.is_local(shard.home(r.jid.bare())))
        .map(|r| r.ctl.clone())
        .collect();
    super::relay::homes_left(shard);
    for ctl in moved {
        tracing::info!(
            conn = ctl.id,
            "the user's home moved to another node: closing"
        );
        ctl.sm_forbid_resume();
        super::conn::shutdown_conn(&ctl);
    }
}
