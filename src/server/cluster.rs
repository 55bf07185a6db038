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
    let bus = Bus::start(
        bc,
        Box::new(move |inc: Incoming| {
            let Some(mb) = deliver_to.get(inc.shard as usize) else {
                tracing::warn!(from = %inc.from, shard = inc.shard, "bus frame for a shard this node does not have");
                return Ok(());
            };
            mb.try_send(ShardMsg::Remote(inc)).map_err(|m| match m {
                ShardMsg::Remote(i) => i,
                _ => unreachable!("only bus frames are sent here"),
            })
        }),
    )
    .map_err(|e| format!("cluster.nats_url {nats}: {e}"))?;
    let mut mc = MembershipConfig::new(&cfg.storage.postgres_url, &node);
    mc.heartbeat_ms = c.heartbeat_ms;
    mc.failure_timeout_ms = c.failure_timeout_ms;
    mc.connect_timeout_ms = c.connect_timeout_ms;
    mc.shards = shards.min(u16::MAX as usize) as u16;
    let name = node.clone();
    let membership = Membership::join(
        mc,
        Box::new(move |v| {
            let Some(me) = v.members.iter().find(|m| m.name == name) else {
                return;
            };
            push_all(&senders, &Arc::new(NodeView::new(v, me)));
        }),
        Box::new(|why| {
            // Crash-only: others may already serve this node's users; nothing acknowledged
            // is lost (acks follow commits), and a supervisor starts it again.
            tracing::error!(reason = ?why, "fenced: this node stops now");
            eprintln!("aoba: fenced ({why:?}): stopping");
            std::process::exit(3);
        }),
    )
    .map_err(|e| format!("cluster membership: {e}"))?;
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

#[derive(Default)]
struct NodeOut {
    frames: VecDeque<(u64, Bytes)>,
    next: u64,
    /// The barrier in flight: its token and the last frame it covers.
    sync: Option<(u64, u64)>,
}

impl Sent {
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }
}

/// Frames kept for one node before a confirmation is asked without waiting for the tick.
const SYNC_AFTER_FRAMES: usize = 256;

/// A core message for another node.
pub fn send_msg(shard: &Shard, to: Home, m: Msg) {
    let Some(body) = wire::encode(&m) else { return };
    if matches!(m, Msg::Route(_) | Msg::Fanout(_)) {
        let many = {
            let mut per = shard.cluster_sent.per.borrow_mut();
            let o = per.entry(to.node).or_default();
            o.frames.push_back((o.next, body.clone()));
            o.next += 1;
            o.frames.len() >= SYNC_AFTER_FRAMES && o.sync.is_none()
        };
        shard
            .cluster_sent
            .bytes
            .set(shard.cluster_sent.bytes.get() + body.len());
        send_frame(shard, to.node, to.shard, body);
        if many {
            sync_sent(shard);
        }
    } else {
        send_frame(shard, to.node, to.shard, body);
    }
}

/// Asks every node this shard has unconfirmed frames for to confirm them (one barrier
/// each, behind the frames).
pub fn sync_sent(shard: &Shard) {
    let me = Home {
        node: shard.node_num(),
        shard: shard.id as u16,
    };
    let mut ask = Vec::new();
    for (node, o) in shard.cluster_sent.per.borrow_mut().iter_mut() {
        if o.sync.is_none() && !o.frames.is_empty() {
            let token = shard.random();
            o.sync = Some((token, o.next - 1));
            ask.push((*node, token));
        }
    }
    for (node, token) in ask {
        if let Some(body) = wire::encode(&Msg::RemoteBarrier { token, reply: me }) {
            send_frame(shard, node, 0, body);
        }
    }
}

/// A node answered a barrier: this shard's own confirmation, or an ack's.
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
                o.sync = None;
                while ok && o.frames.front().is_some_and(|(seq, _)| *seq <= upto) {
                    freed += o.frames.pop_front().map_or(0, |(_, b)| b.len());
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
    } else {
        commit::on_synced(shard, token, ok);
    }
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
            .keys()
            .filter(|n| v.node(**n).is_none())
            .copied()
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
            match wire::decode(body) {
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

/// A frame from another node.
pub fn on_remote(shard: &std::rc::Rc<Shard>, inc: Incoming) {
    let Some(&tag) = inc.body.first() else { return };
    if tag >= relay::FIRST_TAG {
        return relay::on_frame(shard, inc);
    }
    match wire::decode(inc.body) {
        // Delivered here even if this node's view says the home is elsewhere (views
        // differ for a heartbeat): nobody here takes it, so it is stored offline, in the
        // PostgreSQL every node reads.
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
    *shard.core.view.borrow_mut() = Some(v);
    reroute_sent(shard);
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
