//! What the XMPP core keeps on each shard (`Core`), what it needs from the shard that hosts
//! it (`Host`: sending to other shards, and the hook points where modules plug in), and the
//! plain messages it sends between shards (`Msg`).
//!
//! The core never names a module: the host (`server::Shard`) implements the hooks by
//! calling its modules directly, and every core function is generic over the host, so
//! the calls are static (monomorphized once for the server's host), never through a
//! table on the per-stanza path.

use super::commit::Waiter;
use super::config::CoreConfig;
use super::jid::Jid;
use super::jwt::{JwtVerifier, TokenError, TokenGuard};
use super::router::SType;
use super::router::{Fanout, Routed};
use super::session::Resource;
use super::session::SessionTable;
use super::sink::{Meta, Sink};
use super::stream::{Action, Ctx, Stream};
use crate::net::outbox::WriteBatch;
use crate::runtime::Home;
use crate::storage::{Request, StorageHandle};
use crate::xml::stanza::Stanza;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A message from one shard's core to another's: plain data (a routed stanza is bytes and
/// offsets), serializable, so it can cross a node boundary as it is.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Msg {
    Route(Routed),
    /// One stanza for many full JIDs whose home is the receiving shard: the payload is
    /// `head + to + tail`, serialized once by the sender; `tos` are escaped full JIDs.
    Fanout(Fanout),
    /// XEP-0198 ack barrier: everything `origin` sent here before this is processed; ask
    /// storage to confirm it is durable, replying to `origin` with `token`.
    Barrier {
        token: u64,
        origin: usize,
    },
    /// From another node: run the ack barrier on every shard of this node, then answer
    /// `reply` with `BarrierDone` (issue 14: `<a h/>` covers what crossed nodes).
    RemoteBarrier {
        token: u64,
        reply: Home,
    },
    /// A node's answer to `RemoteBarrier` (`ok`: its commits succeeded).
    BarrierDone {
        token: u64,
        ok: bool,
    },
}

/// What every shard's core shares: read-only after start.
pub struct Shared {
    pub cfg: CoreConfig,
    /// The domains of the services plugged in (the MUC), for the sender side to know
    /// what is routable.
    pub component_domains: Vec<String>,
    /// The storage thread's queue (None: no storage, as in benches).
    pub storage: Option<StorageHandle>,
    pub verifier: JwtVerifier,
    pub conn_counts: Vec<AtomicUsize>,
    /// Per shard: storage requests waiting for room in the storage queue (for /health).
    pub storage_backlogs: Vec<AtomicUsize>,
    pub shards: usize,
}

impl Shared {
    pub fn new(
        cfg: CoreConfig,
        verifier: JwtVerifier,
        component_domains: Vec<String>,
        storage: Option<StorageHandle>,
        shards: usize,
    ) -> Shared {
        Shared {
            cfg,
            component_domains,
            storage,
            verifier,
            conn_counts: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
            storage_backlogs: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
            shards,
        }
    }

    /// Storage requests held on the shards because the storage queue was full.
    pub fn storage_backlog(&self) -> usize {
        self.storage_backlogs
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub fn total_connections(&self) -> usize {
        self.conn_counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// One shard's core state. Lives inside its host, on its own thread; never shared.
pub struct Core<H> {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub sessions: RefCell<SessionTable>,
    conns: RefCell<HashMap<u64, Weak<Sink>, ahash::RandomState>>,
    next_conn: Cell<u64>,
    pub write_pool: Rc<RefCell<Vec<WriteBatch<Meta>>>>,
    rng: Cell<u64>,
    /// The bound on RS256/ES256 signature checks on this shard.
    token_guard: RefCell<TokenGuard>,
    /// Answers waiting for the storage commit that covers them (`xmpp::commit`), by token.
    pub commit_waiters: RefCell<HashMap<u64, Waiter<H>, ahash::RandomState>>,
    /// Storage requests waiting for room in the storage queue, in order (never spun on).
    storage_overflow: RefCell<VecDeque<Request>>,
    /// The last archive id this shard made (see `next_archive_id`).
    last_archive_id: Cell<u64>,
    /// The cluster as this shard routes by (`None`: one node alone).
    pub view: RefCell<Option<Arc<crate::cluster::NodeView>>>,
}

impl<H> Core<H> {
    pub fn new(id: usize, shared: Arc<Shared>) -> Core<H> {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Core {
            id,
            sessions: RefCell::new(SessionTable::default()),
            conns: RefCell::new(HashMap::default()),
            next_conn: Cell::new(1),
            write_pool: Rc::new(RefCell::new(Vec::new())),
            rng: Cell::new(u64::from_le_bytes(seed) | 1),
            token_guard: RefCell::new(TokenGuard::new(
                shared.cfg.auth.jwt_signature_checks_per_sec,
            )),
            commit_waiters: RefCell::new(HashMap::default()),
            storage_overflow: RefCell::new(VecDeque::new()),
            last_archive_id: Cell::new(0),
            view: RefCell::new(None),
            shared,
        }
    }

    pub fn is_component_domain(&self, domain: &str) -> bool {
        self.shared.component_domains.iter().any(|d| d == domain)
    }

    pub fn cfg(&self) -> &CoreConfig {
        &self.shared.cfg
    }

    pub fn domain(&self) -> &str {
        &self.shared.cfg.domain
    }

    /// Where a bare JID lives.
    pub fn home(&self, bare: &str) -> Home {
        if let Some(v) = &*self.view.borrow()
            && let Some((node, shards)) = v.home(bare)
        {
            let mut h = crate::runtime::home(bare, shards as usize);
            h.node = node;
            return h;
        }
        crate::runtime::home(bare, self.shared.shards)
    }

    /// Whether `h` is on this node.
    pub fn is_local(&self, h: Home) -> bool {
        h.node == 0 || self.view.borrow().as_ref().is_none_or(|v| v.me == h.node)
    }

    /// This node's number in the cluster (0: alone).
    /// The epoch of this shard's view of the cluster (0 when alone).
    pub fn view_epoch(&self) -> i64 {
        self.view.borrow().as_ref().map_or(0, |v| v.epoch)
    }

    pub fn node_num(&self) -> u16 {
        self.view.borrow().as_ref().map_or(0, |v| v.me)
    }

    /// The other nodes of the cluster (none when alone).
    pub fn other_nodes(&self) -> smallvec::SmallVec<[u16; 4]> {
        match &*self.view.borrow() {
            Some(v) => v.others().map(|n| n.num).collect(),
            None => Default::default(),
        }
    }

    /// Checks a JWT within this shard's bound on signature checks.
    pub fn check_token(&self, token: &str) -> Result<String, TokenError> {
        self.token_guard
            .borrow_mut()
            .check(&self.shared.verifier, token)
    }

    pub fn register_conn(&self, limit: usize) -> Rc<Sink> {
        let n = self.next_conn.get();
        self.next_conn.set(n + 1);
        let ctl = Rc::new(Sink::new((n << 8) | self.id as u64, limit));
        self.conns.borrow_mut().insert(ctl.id, Rc::downgrade(&ctl));
        self.shared.conn_counts[self.id].fetch_add(1, Ordering::Relaxed);
        ctl
    }

    pub fn unregister_conn(&self, id: u64) {
        if self.conns.borrow_mut().remove(&id).is_some() {
            self.shared.conn_counts[self.id].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A live connection of this shard by id.
    pub fn conn(&self, id: u64) -> Option<Rc<Sink>> {
        self.conns.borrow().get(&id).and_then(Weak::upgrade)
    }

    /// Appends every live connection of this shard to `out` (a buffer the caller keeps:
    /// the timer sweep visits every connection on every tick).
    pub fn collect_conns(&self, out: &mut Vec<Rc<Sink>>) {
        out.extend(self.conns.borrow().values().filter_map(Weak::upgrade));
    }

    pub fn live_conns(&self) -> usize {
        self.conns.borrow().len()
    }

    /// A cheap per-shard random number (xorshift), for resource names and stream ids.
    pub fn random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }

    /// A new archive id: increasing on this shard, unique across shards
    /// (`storage::archive_id`).
    pub fn next_archive_id(&self) -> u64 {
        crate::storage::archive_id(self.node_num(), self.id, &self.last_archive_id)
    }

    /// Every id made from now on is above `floor` (the largest id stored when the cluster's
    /// view changed: a user's new home continues after its old home's ids, whatever the
    /// two clocks say).
    pub fn raise_archive_floor(&self, floor: u64) {
        if floor > self.last_archive_id.get() {
            self.last_archive_id.set(floor);
        }
    }

    pub fn has_storage(&self) -> bool {
        self.shared.storage.is_some()
    }

    /// Sends a request to storage without blocking and in order: when the storage queue
    /// is full it waits in this shard's overflow, which the shard's loop retries.
    pub fn storage(&self, req: Request) {
        let Some(s) = &self.shared.storage else {
            return;
        };
        let mut of = self.storage_overflow.borrow_mut();
        if of.is_empty() {
            match s.try_send(req) {
                Ok(()) => return,
                Err(r) => of.push_back(r),
            }
        } else {
            of.push_back(req);
        }
        self.shared.storage_backlogs[self.id].store(of.len(), Ordering::Relaxed);
    }

    /// Like `storage`, but refused (given back) instead of queued when storage is behind:
    /// for requests whose sender can be told (a bounce), so the overflow stays small.
    #[allow(clippy::result_large_err)]
    pub fn storage_try(&self, req: Request) -> Result<(), Request> {
        let Some(s) = &self.shared.storage else {
            return Err(req);
        };
        if !self.storage_overflow.borrow().is_empty() {
            return Err(req);
        }
        s.try_send(req)
    }

    /// Retries held-back storage requests; true when none are left.
    pub fn flush_storage_overflow(&self) -> bool {
        let Some(s) = &self.shared.storage else {
            return true;
        };
        let mut of = self.storage_overflow.borrow_mut();
        if of.is_empty() {
            return true;
        }
        while let Some(r) = of.pop_front() {
            if let Err(r) = s.try_send(r) {
                of.push_front(r);
                break;
            }
        }
        self.shared.storage_backlogs[self.id].store(of.len(), Ordering::Relaxed);
        of.is_empty()
    }

    /// Whether storage requests wait for a full storage queue beyond the bound (a slow
    /// disk): readers should pause.
    pub fn storage_overflowing(&self) -> bool {
        self.storage_overflow.borrow().len() >= self.cfg().storage.shard_backlog_max
    }
}

/// An IQ request to the server or to an account, for the handlers modules register.
pub struct IqRequest<'a, 's, H> {
    pub shard: &'a H,
    pub from: &'a Jid,
    /// `None`: sent without `to` (to the user's own account).
    pub to: Option<&'a Jid>,
    pub stype: super::router::SType,
    pub st: &'a Stanza<'s>,
    /// The iq's one child element.
    pub child: usize,
}

impl<H> IqRequest<'_, '_, H> {
    /// Addressed to the server's domain (not to an account).
    pub fn to_server(&self) -> bool {
        self.to.is_some_and(|t| t.local().is_none())
    }
}

pub enum IqReply {
    /// The child of the result (may be empty).
    Result(Vec<u8>),
    Error(super::errors::Cond),
    /// The handler answers by itself, later (e.g. after storage).
    Later,
}

/// An IQ handler: cold (one call per request, through a table by namespace).
pub type IqHandler<H> = fn(&Ctx<H>, &IqRequest<H>) -> IqReply;

/// A nonza handler (cold: a few per session, through a table by namespace); `name` is
/// the element's local name.
pub type NonzaHandler<H> = fn(&mut Stream, &H, &Rc<Sink>, &Stanza, &str) -> Action;

/// What the core needs from the shard that hosts it, and where modules plug in. Every
/// hook has a default that does nothing, so a host with no modules is a plain XMPP server.
pub trait Host: Sized + 'static + std::ops::Deref<Target = Core<Self>> {
    /// The one function that sends to another shard (or, later, node): `to` is where the
    /// recipient lives; this shard's own messages are handled at once.
    fn send(&self, to: Home, m: Msg);

    /// IQ handlers by the namespace of the iq's child (requests to the server or to an
    /// account; RFC 6120 §8.2.3).
    fn iq_handler(&self, ns: &str, local: &str) -> Option<IqHandler<Self>>;

    /// A resource was bound.
    fn on_bind(&self, _jid: &Jid) {}

    /// A session became available with a non-negative priority (RFC 6121 §8.5.2.1.1), or
    /// an available session was resumed: whatever waited for it can come.
    fn on_available(&self, _jid: &Jid, _conn: u64) {}

    /// An outbound message, stamped, before it is routed (on the sender's shard).
    /// `local`: addressed to this domain's users.
    fn on_message_out(&self, _sender: &Jid, _conn: u64, _r: &Routed, _local: bool) {}

    /// A stanza on its recipient's home shard, before targets are chosen: a module may
    /// take it (`None`: handled) or give back what to deliver instead. `first`: false
    /// when it is routed again after a session lost it.
    fn on_inbound(&self, r: Routed, _first: bool) -> Option<Routed> {
        Some(r)
    }

    /// A session's presence broadcast (available or unavailable), after the user's own
    /// resources got it (RFC 6121 §4.2, §4.4); `initial`: the session just became
    /// available. `payload` is the stanza as the user's resources got it.
    fn on_presence_broadcast(&self, _jid: &Jid, _payload: &Bytes, _initial: bool) {}

    /// A subscription stanza a user sends (RFC 6121 §3), stamped with bare JIDs: without
    /// a roster module it is routed as it is.
    fn on_subscription_out(&self, _jid: &Jid, _stype: SType, _to: &Jid, r: Routed) {
        super::router::route(self, r);
    }

    /// A session ended (closed, replaced by a new bind, or its resumption window passed),
    /// after the core sent its `unavailable` presences.
    fn on_session_end(&self, _res: &Resource) {}

    /// A connection ended, before its session (if any) does: `stream.clean_end` is false
    /// when it was lost (dropped, timed out) rather than closed on purpose. A module may
    /// take the session over (XEP-0198 keeps it for resumption) by taking `stream.jid`.
    fn on_connection_end(&self, _stream: &mut Stream, _ctl: &Rc<Sink>) {}

    /// Handlers of nonzas (top-level elements that are not stanzas, e.g. XEP-0198's) by
    /// namespace.
    fn nonza_handler(&self, _ns: &str) -> Option<NonzaHandler<Self>> {
        None
    }

    /// Stream features offered once authenticated, beside bind: `(element, namespace)`,
    /// each an empty element.
    fn stream_features(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// A message was queued to these connections of its recipient.
    fn after_delivery(&self, _r: &Routed, _conns: &[u64]) {}

    /// A chat/normal message nobody available could take (RFC 6121 §8.5.2.1.1).
    fn undeliverable(&self, r: Routed) {
        super::router::bounce(self, &r, super::errors::Cond::ServiceUnavailable);
    }

    /// The features (namespaces) the server advertises in its disco#info.
    fn server_features(&self) -> &'static [&'static str] {
        &[]
    }

    /// The features an account advertises in its disco#info, beyond disco itself.
    fn account_features(&self) -> &'static [&'static str] {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::Msg;
    use crate::xml::stanza::{Limits, Stanza};
    use crate::xmpp::router::{Fanout, Kind, SType, stamp};
    use bytes::Bytes;

    /// Every core message survives a round trip through a wire format unchanged: nothing
    /// in it is local to one process (issue 14 sends them between nodes).
    #[test]
    fn core_messages_are_plain_serializable_data() {
        let st = Stanza::parse(
            "<message to='b@x' type='chat' id='m1'><body>hi &amp; bye</body></message>",
            &Limits::default(),
        )
        .unwrap();
        let msgs = [
            Msg::Route(stamp(&st, Kind::Message, SType::Chat, "a@x/r", Some("b@x"))),
            Msg::Fanout(Fanout {
                head: Bytes::from_static(b"<message from='r@c/n' to='"),
                tail: Bytes::from_static(b"'><body>x</body></message>"),
                tos: vec![Bytes::from_static(b"a@x/1"), Bytes::from_static(b"b@x/2")],
            }),
            Msg::Barrier {
                token: 7,
                origin: 1,
            },
        ];
        for m in msgs {
            let wire = serde_json::to_vec(&m).unwrap();
            let back: Msg = serde_json::from_slice(&wire).unwrap();
            assert_eq!(back, m);
            if let Msg::Route(r) = &back {
                assert_eq!((&*r.to(), &*r.from()), ("b@x", "a@x/r"));
            }
        }
    }
}
