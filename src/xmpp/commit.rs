//! "Done" means durable (DESIGN invariant 6): an XEP-0198 `<a h/>` and every answer that
//! reports a stored change (an iq result of a roster set, MAM preferences, a persistent
//! room's configuration...) leave only after the storage commit that covers the change.
//!
//! Both wait on a storage barrier: a `Sync` request queued behind the writes it covers;
//! the storage thread answers it only after the batch holding those writes is committed.
//! An ack covers what the session's stanzas caused on every shard, so its barrier goes
//! through every shard first (mailboxes are FIFO per sender); an iq result covers only
//! writes its own shard queued, so one `Sync` is enough.
//!
//! A connection has at most one ack barrier in flight: `<r/>`s that arrive meanwhile are
//! answered by one more round, so a client that floods `<r/>` cannot fan out a barrier per
//! request to every shard and the storage thread. A failed commit never leaves a waiter
//! waiting: the ack's stream ends with `internal-server-error` (nothing is acknowledged,
//! the client resends after it reconnects), an iq gets its error answer.

use super::core::{Host, Msg};
use super::errors::{StreamError, stream_error_bytes};
use super::sink::{OutFrame, Sink};
use crate::net::outbox::CloseKind;
use crate::storage::Request;
use crate::xml::ns;
use crate::xml::writer::Elem;
use bytes::Bytes;
use std::rc::{Rc, Weak};

pub enum Waiter<H> {
    /// `count` acks with `h`, once every shard's barrier is committed (`left` to go);
    /// `again` more `<r/>` arrived meanwhile, the last with `again_h`.
    Ack {
        ctl: Weak<Sink>,
        left: usize,
        h: u32,
        count: u32,
        again: u32,
        again_h: u32,
    },
    /// A reply on one connection: `ok` after the commit, `err` (if not empty) if it failed.
    Push {
        ctl: Weak<Sink>,
        ok: Bytes,
        err: Bytes,
    },
    /// Anything else (e.g. a room's answers and broadcasts): called with whether the
    /// commit succeeded.
    Call(AfterCommit<H>),
    /// Work behind the same barrier as an ack (every shard, every node: `left` to go),
    /// called with whether every commit succeeded (e.g. `<resumed h/>`, whose h counts
    /// stanzas that may have been stored anywhere).
    CallAll {
        left: usize,
        f: Option<AfterCommit<H>>,
    },
    /// Another node's ack barrier, run on every shard of this one (`left` to go); then
    /// answered to `reply` with its `token`.
    Relay {
        reply: crate::runtime::Home,
        token: u64,
        left: usize,
    },
}

impl<H> Waiter<H> {
    /// Waits for the barrier of every shard and every node (an ack's).
    pub fn everywhere(&self) -> bool {
        matches!(self, Waiter::Ack { .. } | Waiter::CallAll { .. })
    }
}

/// Work that waits for a commit; called with whether it succeeded.
pub type AfterCommit<H> = Box<dyn FnOnce(&H, bool)>;

fn sm_ack(h: u32) -> Bytes {
    let mut v = Vec::with_capacity(48);
    Elem::new(&mut v, "a")
        .attr("xmlns", ns::SM)
        .attr_fmt("h", h)
        .end();
    Bytes::from(v)
}

/// Answers `<r/>` with `<a h/>` once the first `h` stanzas are settled. `inflight` is the
/// connection's barrier still going, if any (kept by its stream).
pub fn ack_when_settled<H: Host>(shard: &H, ctl: &Rc<Sink>, h: u32, inflight: &mut Option<u64>) {
    if shard.shared.storage.is_none() {
        ctl.push_reply(OutFrame::text(sm_ack(h)));
        return;
    }
    if let Some(t) = *inflight
        && let Some(Waiter::Ack { again, again_h, .. }) =
            shard.commit_waiters.borrow_mut().get_mut(&t)
    {
        *again += 1;
        *again_h = h;
        return;
    }
    let token = shard.random();
    *inflight = Some(token);
    shard.commit_waiters.borrow_mut().insert(
        token,
        Waiter::Ack {
            ctl: Rc::downgrade(ctl),
            left: usize::MAX,
            h,
            count: 1,
            again: 0,
            again_h: h,
        },
    );
    let n = barrier_everywhere(shard, token);
    set_left(shard, token, n);
}

/// How many answers the barrier `token` waits for (set after sending: a local answer
/// cannot arrive before, it comes through the storage thread).
fn set_left<H: Host>(shard: &H, token: u64, n: usize) {
    if let Some(
        Waiter::Ack { left, .. } | Waiter::Relay { left, .. } | Waiter::CallAll { left, .. },
    ) = shard.commit_waiters.borrow_mut().get_mut(&token)
    {
        *left = n;
    }
}

/// The ack barrier through every shard of this node and, in a cluster, every other node
/// (each runs it on all its shards and answers once); returns how many answers to wait for.
fn barrier_everywhere<H: Host>(shard: &H, token: u64) -> usize {
    let others = shard.other_nodes();
    let me = crate::runtime::Home {
        node: shard.node_num(),
        shard: shard.id as u16,
    };
    for node in &others {
        shard.send(
            crate::runtime::Home {
                node: *node,
                shard: 0,
            },
            Msg::RemoteBarrier { token, reply: me },
        );
    }
    barrier_local(shard, token);
    shard.shared.shards + others.len()
}

/// Every ack barrier in flight starts a new round under a new token (a node left: the
/// old round may wait for it forever, and what it held was routed elsewhere since).
/// Answers to the old rounds find nothing and are ignored.
pub fn restart_acks<H: Host>(shard: &H) {
    let tokens: Vec<u64> = shard
        .commit_waiters
        .borrow()
        .iter()
        .filter(|(_, w)| w.everywhere())
        .map(|(t, _)| *t)
        .collect();
    for t in tokens {
        let Some(w) = shard.commit_waiters.borrow_mut().remove(&t) else {
            continue;
        };
        let token = shard.random();
        shard.commit_waiters.borrow_mut().insert(token, w);
        set_left(shard, token, usize::MAX);
        let n = barrier_everywhere(shard, token);
        set_left(shard, token, n);
    }
}

/// Another node asks for this node's barrier: it runs on every shard here, then `reply`
/// gets `BarrierDone`.
pub fn relay_barrier<H: Host>(shard: &H, token: u64, reply: crate::runtime::Home) {
    if shard.shared.storage.is_none() {
        shard.send(reply, Msg::BarrierDone { token, ok: true });
        return;
    }
    let mine = shard.random();
    shard.commit_waiters.borrow_mut().insert(
        mine,
        Waiter::Relay {
            reply,
            token,
            left: shard.shared.shards,
        },
    );
    barrier_local(shard, mine);
}

fn barrier_local<H: Host>(shard: &H, token: u64) {
    // On this shard, local deliveries already happened and its storage requests are
    // queued: its barrier is a storage `Sync` at once (`Host::send` handles it here).
    for b in 0..shard.shared.shards {
        let to = crate::runtime::Home {
            node: 0,
            shard: b as u16,
        };
        shard.send(
            to,
            Msg::Barrier {
                token,
                origin: shard.id,
            },
        );
    }
}

/// Queues `ok` on `ctl` once every write this shard queued before is committed (`err`, if
/// not empty, when the commit failed).
pub fn reply_after_commit<H: Host>(shard: &H, ctl: &Rc<Sink>, ok: Vec<u8>, err: Vec<u8>) {
    if shard.shared.storage.is_none() {
        ctl.push_reply(OutFrame::text(Bytes::from(ok)));
        return;
    }
    wait_local(
        shard,
        Waiter::Push {
            ctl: Rc::downgrade(ctl),
            ok: Bytes::from(ok),
            err: Bytes::from(err),
        },
    );
}

/// Parks `w` until every write this shard queued before is committed.
fn wait_local<H: Host>(shard: &H, w: Waiter<H>) {
    let token = shard.random();
    shard.commit_waiters.borrow_mut().insert(token, w);
    shard.storage(Request::Sync {
        shard: shard.id,
        token,
    });
}

/// Calls `f` once every write this shard queued before is committed (with false if the
/// commit failed). Boxed: a cold path (stored changes), never per message.
pub fn after_commit<H: Host>(shard: &H, f: AfterCommit<H>) {
    if shard.shared.storage.is_none() {
        return f(shard, true);
    }
    wait_local(shard, Waiter::Call(f));
}

/// Calls `f` once every write that anything before it queued, on every shard of this node
/// and every other node, is committed (with false if a commit failed): the ack's barrier
/// (`ack_when_settled`) for work that is not an ack. Boxed: a cold path.
pub fn after_commit_everywhere<H: Host>(shard: &H, f: AfterCommit<H>) {
    if shard.shared.storage.is_none() {
        return f(shard, true);
    }
    let token = shard.random();
    shard.commit_waiters.borrow_mut().insert(
        token,
        Waiter::CallAll {
            left: usize::MAX,
            f: Some(f),
        },
    );
    let n = barrier_everywhere(shard, token);
    set_left(shard, token, n);
}

/// A storage barrier came back (`ok`: its batch was committed).
pub fn on_synced<H: Host>(shard: &H, token: u64, ok: bool) {
    let mut w = shard.commit_waiters.borrow_mut();
    let Some(e) = w.get_mut(&token) else { return };
    match e {
        Waiter::Ack {
            ctl,
            left,
            h,
            count,
            again,
            again_h,
        } => {
            let Some(c) = ctl.upgrade() else {
                w.remove(&token);
                return;
            };
            if !ok {
                w.remove(&token);
                drop(w);
                tracing::error!(conn = c.id, "storage commit failed: closing unacknowledged");
                c.close(
                    CloseKind::Flush,
                    stream_error_bytes(
                        c.framing(),
                        StreamError::InternalServerError,
                        Some("storage failed: nothing since the last ack is acknowledged"),
                        None,
                    ),
                );
                return;
            }
            *left -= 1;
            if *left > 0 {
                return;
            }
            let a = sm_ack(*h);
            for _ in 0..*count {
                c.push_reply(OutFrame::text(a.clone()));
            }
            if *again == 0 {
                w.remove(&token);
                return;
            }
            // The <r/>s that came meanwhile: one more round for all of them.
            (*h, *count, *again, *left) = (*again_h, *again, 0, usize::MAX);
            drop(w);
            let n = barrier_everywhere(shard, token);
            set_left(shard, token, n);
        }
        Waiter::Relay {
            reply,
            token: t,
            left,
        } => {
            let (reply, t) = (*reply, *t);
            if ok {
                *left -= 1;
                if *left > 0 {
                    return;
                }
            }
            w.remove(&token);
            drop(w);
            shard.send(reply, Msg::BarrierDone { token: t, ok });
        }
        Waiter::CallAll { left, f } => {
            if ok {
                *left -= 1;
                if *left > 0 {
                    return;
                }
            }
            let f = f.take();
            w.remove(&token);
            drop(w);
            if let Some(f) = f {
                f(shard, ok);
            }
        }
        Waiter::Push { .. } | Waiter::Call(_) => {
            let e = w.remove(&token);
            drop(w);
            match e {
                Some(Waiter::Push { ctl, ok: o, err }) => {
                    let b = if ok { o } else { err };
                    if let (Some(c), false) = (ctl.upgrade(), b.is_empty()) {
                        c.push_reply(OutFrame::text(b));
                    }
                }
                Some(Waiter::Call(f)) => f(shard, ok),
                _ => {}
            }
        }
    }
}
