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

/// A core message for another node.
pub fn send_msg(shard: &Shard, to: Home, m: Msg) {
    if let Some(body) = wire::encode(&m) {
        send_frame(shard, to.node, to.shard, body);
    }
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
        Some(Msg::BarrierDone { token, ok }) => commit::on_synced(&**shard, token, ok),
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
