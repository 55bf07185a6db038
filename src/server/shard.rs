//! The per-shard host: the runtime, the XMPP core and the modules' state of one shard, and
//! the hook points of the core implemented by calling the modules directly (static calls:
//! no table and no dynamic dispatch on the per-stanza path).
//!
//! The module list is here: to add a small XEP, write its file under `features/` and add
//! its line to `IQ_MODULES` (and, if it needs one, a hook below).

use super::conn;
use crate::features::roster::{self, RosterHost};
use crate::features::sm::{self, SmHost};
use crate::features::{carbons, disco, mam, offline, ping, version};
use crate::muc;
use crate::runtime::{Home, Runtime, ShardHost};
use crate::storage::Reply;
use crate::xml::ns;
use crate::xmpp::core::{Core, Host, IqHandler, Msg, NonzaHandler, Shared};
use crate::xmpp::jid::Jid;
use crate::xmpp::router::{self, Kind, Routed, SType};
use crate::xmpp::sink::Sink;
use crate::xmpp::stream::Stream;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A message to a shard: the core's plain messages (which could cross nodes), storage
/// replies, and what stays on one machine (a connection handoff carries a file
/// descriptor; shutdown).
pub enum ShardMsg {
    Core(Msg),
    /// A storage reply (and acknowledgement) to the shard that asked.
    Storage(Reply),
    Handoff(conn::Handoff),
    /// A request of the admin API, answered on its channel.
    Admin(super::admin_ops::Request),
    /// The cluster's membership changed (issue 14).
    View(Arc<crate::cluster::NodeView>),
    /// A frame from another node.
    Remote(crate::cluster::bus::Incoming),
    Shutdown,
}

/// One shard: lives in an `Rc` on its own thread; never shared.
pub struct Shard {
    /// The whole configuration (the core reads its own part through `Core::cfg`).
    pub config: Arc<crate::config::Config>,
    pub rt: Runtime<ShardMsg>,
    pub core: Core<Shard>,
    pub offline: offline::Offline,
    pub rosters: roster::Rosters,
    pub sm: sm::Sm,
    pub muc: muc::Service,
    /// The listeners (by the runtime's index) and the process's TLS.
    pub net: Arc<super::Net>,
    /// Admin API requests waiting for storage.
    pub admin: super::admin_manage::Pending,
    /// When the sampled gauges were last set (`tick`).
    sampled: std::cell::Cell<Instant>,
    /// The timer sweep's buffer of connections, kept between ticks.
    due: std::cell::Cell<Vec<Rc<crate::xmpp::sink::Sink>>>,
    /// Frames for other nodes waiting for room in the bus queue.
    pub cluster_held: super::cluster::Held,
    /// Frames other nodes have not yet confirmed committed.
    pub cluster_sent: super::cluster::Sent,
    /// Connections relayed to or from other nodes.
    pub landed: super::relay::Landed,
}

impl std::ops::Deref for Shard {
    type Target = Core<Shard>;
    fn deref(&self) -> &Core<Shard> {
        &self.core
    }
}

/// The modules that answer IQs to the server or to an account, by the namespace of the
/// iq's child; `listed`: the server's disco#info names the namespace. This list is the
/// one place a module is plugged in.
const IQ_MODULES: &[(&str, IqHandler<Shard>, bool)] = &[
    // RFC 6121 §2: not listed (a roster is part of every XMPP IM server).
    (ns::ROSTER, roster::handle, false),
    (ns::PING, ping::handle, true),
    (ns::DISCO_INFO, disco::info, true),
    (ns::DISCO_ITEMS, disco::items, true),
    (ns::VERSION, version::handle, true),
    (ns::TIME, crate::features::time::handle, true),
    (ns::CARBONS, carbons::handle, true),
    // RFC 3921 sessions: answered, not advertised (RFC 6121 Appendix E).
    (ns::SESSION, crate::features::legacy_session, false),
    // An account's archive: listed in the account's disco#info instead.
    (ns::MAM, mam::iq, false),
];

/// The modules that handle nonzas (top-level elements that are not stanzas), by namespace.
const NONZA_MODULES: &[(&str, NonzaHandler<Shard>)] = &[(ns::SM, sm::on_nonza)];

/// Stream features offered after authentication, beside bind: `(element, namespace)`.
const STREAM_FEATURES: &[(&str, &str)] = &[("sm", ns::SM)];

/// What the server's disco#info lists: the listed IQ modules and offline storage
/// (XEP-0160).
fn server_features() -> &'static [&'static str] {
    static F: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        IQ_MODULES
            .iter()
            .filter(|m| m.2)
            .map(|m| m.0)
            .chain([offline::FEATURE])
            .collect()
    })
}

impl Shard {
    /// A shard's state; its tasks are started by the runtime. Public for benches and tests.
    pub fn new(
        rt: Runtime<ShardMsg>,
        shared: Arc<Shared>,
        config: Arc<crate::config::Config>,
        net: Arc<super::Net>,
    ) -> Rc<Shard> {
        // Always there: with the MUC off, its domain answers `service-unavailable`.
        let muc = muc::Service::new(&config.muc, &config.server.domain);
        let sm = sm::Sm::new(config.sm.clone());
        Rc::new(Shard {
            config,
            core: Core::new(rt.id, shared),
            rt,
            offline: offline::Offline::default(),
            rosters: Default::default(),
            sm,
            muc,
            net,
            admin: Default::default(),
            sampled: std::cell::Cell::new(Instant::now()),
            due: Default::default(),
            cluster_held: Default::default(),
            cluster_sent: Default::default(),
            landed: Default::default(),
        })
    }

    /// One shard alone, without storage and with a mailbox nobody reads: for benches
    /// that drive the core in process.
    #[doc(hidden)]
    pub fn standalone(cfg: crate::config::Config) -> Rc<Shard> {
        let verifier =
            crate::xmpp::jwt::JwtVerifier::new(&cfg.auth, &cfg.server.domain, Some("bench"))
                .expect("an HS256 bench verifier");
        let (tx, rx) = crate::runtime::mailbox::mailbox(64);
        std::mem::forget(rx);
        let domains = vec![format!("{}.{}", cfg.muc.subdomain, cfg.server.domain)];
        let shared = Arc::new(Shared::new(cfg.core(), verifier, domains, None, 1));
        // Counters as a server shard has them (benches measure what the server does).
        crate::metrics::register_shard(0);
        Shard::new(
            Runtime::new(0, vec![tx].into()),
            shared,
            Arc::new(cfg),
            Default::default(),
        )
    }

    /// Whether this shard's connections should stop reading: too much is held back for
    /// full mailboxes, or for a storage queue that is full (a slow disk). Stopping the
    /// readers is what bounds both: TCP pushes back on the clients.
    pub fn overflowing(&self) -> bool {
        self.rt.overflowing()
            || self.core.storage_overflowing()
            || self.cluster_held.len() >= crate::runtime::OVERFLOW_PAUSE
            || self.cluster_sent.bytes() > self.config.cluster.outbox_bytes_max
    }

    /// Backpressure for a reading connection: waits while too much is held back.
    pub async fn wait_overflow(&self) {
        while self.overflowing() {
            self.rt.flush_overflow();
            self.core.flush_storage_overflow();
            super::cluster::flush_held(self);
            super::cluster::sync_sent(self);
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A core message, on the shard it is for.
    fn on_core(&self, m: Msg) {
        match m {
            Msg::Route(r) => router::deliver(self, r),
            Msg::Fanout(f) => router::deliver_fanout(self, f),
            Msg::Barrier { token, origin } => {
                // Behind stanzas for rooms that wait for their read, it waits too.
                if self.muc.hold_barrier(self, token, origin) {
                    return;
                }
                self.storage(crate::storage::Request::Sync {
                    shard: origin,
                    token,
                })
            }
            Msg::RemoteBarrier { token, reply } => {
                crate::xmpp::commit::relay_barrier(self, token, reply)
            }
            Msg::BarrierDone { token, ok } => super::cluster::on_barrier_done(self, token, ok),
        }
    }

    /// A storage reply, to the part that asked.
    fn on_storage(&self, reply: Reply) {
        match reply {
            Reply::QuotaExceeded(b) | Reply::Failed(b) => offline::not_stored(self, b),
            Reply::UnknownUser { stanza, stranger } => {
                offline::unknown_user(self, stanza, stranger)
            }
            Reply::KnownUser(user) => offline::known(self, &self.offline, &user),
            Reply::User { token, known } => offline::on_user(self, &self.offline, token, known),
            Reply::Offline {
                to,
                conn,
                stanzas,
                more,
            } => offline::deliver_stored(self, &to, conn, stanzas, more),
            Reply::Synced { token, ok } => crate::xmpp::commit::on_synced(self, token, ok),
            Reply::Rooms { token, rooms } => self.muc.on_rooms_read(self, token, rooms),
            Reply::Room { jid, data, ok } => {
                let here = |j: &str| super::cluster::room_here(self, j);
                self.muc.on_room_read(self, jid, data, ok, here)
            }
            Reply::Roster {
                user,
                version,
                items,
            } => roster::on_loaded(self, user, version, items),
            Reply::Archive { page, reply } => mam::on_page(self, page, reply),
            Reply::Prefs { prefs, reply } => mam::on_prefs(self, prefs, reply),
            Reply::PrefsFailed { reply } => mam::on_prefs_failed(self, reply),
            Reply::UserDeleted { token, deleted } => {
                super::admin_manage::on_user_deleted(self, token, deleted)
            }
        }
    }

    /// Closes every connection of this shard with `system-shutdown`.
    fn close_all(&self) {
        let mut all = Vec::new();
        self.collect_conns(&mut all);
        for c in all {
            conn::shutdown_conn(&c);
        }
    }
}

impl Host for Shard {
    #[inline]
    fn send(&self, to: Home, m: Msg) {
        if !self.core.is_local(to) {
            super::cluster::send_msg(self, to, m);
        } else if to.shard() == self.core.id {
            self.on_core(m);
        } else {
            self.rt.send(to.shard(), ShardMsg::Core(m));
        }
    }

    fn iq_handler(&self, ns: &str, _local: &str) -> Option<IqHandler<Shard>> {
        IQ_MODULES.iter().find(|m| m.0 == ns).map(|m| m.1)
    }

    fn on_bind(&self, jid: &Jid) {
        if let Some(local) = jid.local() {
            offline::seen_user(self, &self.offline, local);
            roster::preload(self, local);
        }
    }

    fn on_presence_broadcast(&self, jid: &Jid, payload: &bytes::Bytes, initial: bool) {
        roster::broadcast(self, jid, payload, initial);
    }

    fn on_subscription_out(&self, jid: &Jid, stype: SType, to: &Jid, r: Routed) {
        roster::outbound(self, jid, stype, to, Some(r));
    }

    fn on_session_end(&self, res: &crate::xmpp::session::Resource) {
        roster::on_session_end(self, res);
        sm::on_session_end(self, res);
    }

    fn on_connection_end(&self, stream: &mut Stream, ctl: &Rc<Sink>) {
        sm::on_connection_end(stream, self, ctl);
    }

    fn nonza_handler(&self, ns: &str) -> Option<NonzaHandler<Shard>> {
        NONZA_MODULES.iter().find(|m| m.0 == ns).map(|m| m.1)
    }

    fn stream_features(&self) -> &'static [(&'static str, &'static str)] {
        STREAM_FEATURES
    }

    fn on_available(&self, jid: &Jid, conn: u64) {
        offline::flush(self, jid, conn);
    }

    #[inline]
    fn on_message_out(&self, sender: &Jid, conn: u64, r: &Routed, local: bool) {
        if local && matches!(r.stype, SType::Chat | SType::Normal) {
            mam::archive_sent(self, r);
        }
        if carbons::eligible(r.stype, &r.payload) {
            carbons::sent(self, sender, conn, &r.payload);
        }
    }

    #[inline]
    fn on_inbound(&self, r: Routed, first: bool) -> Option<Routed> {
        let for_muc = {
            let to = r.to();
            let bare = router::split_full(&to).0;
            bare.rsplit_once('@').map_or(bare, |(_, d)| d) == self.muc.domain()
        };
        if for_muc {
            self.muc.handle(self, r);
            return None;
        }
        // Subscriptions and probes change or read the recipient's roster (RFC 6121 §3, §4.3).
        if r.kind == Kind::Presence && (r.stype.is_subscription() || r.stype == SType::Probe) {
            roster::inbound(self, r);
            return None;
        }
        // The recipient's archive copy names the message for it (XEP-0313, XEP-0359).
        if first && r.kind == Kind::Message && matches!(r.stype, SType::Chat | SType::Normal) {
            return Some(mam::archive_received(self, r));
        }
        Some(r)
    }

    #[inline]
    fn after_delivery(&self, r: &Routed, conns: &[u64]) {
        if r.kind == Kind::Message && carbons::eligible(r.stype, &r.payload) {
            let to = r.to();
            carbons::received(self, router::split_full(&to).0, conns, &r.parts());
        }
    }

    fn undeliverable(&self, r: Routed) {
        offline::store_or_bounce(self, &self.offline, r);
    }

    fn server_features(&self) -> &'static [&'static str] {
        server_features()
    }

    fn account_features(&self) -> &'static [&'static str] {
        if self.config.mam.enabled {
            mam::ACCOUNT_FEATURES
        } else {
            &[]
        }
    }
}

impl SmHost for Shard {
    fn sm(&self) -> &sm::Sm {
        &self.sm
    }
}

impl RosterHost for Shard {
    fn rosters(&self) -> &roster::Rosters {
        &self.rosters
    }
}

impl mam::MamHost for Shard {
    fn mam(&self) -> &mam::MamConfig {
        &self.config.mam
    }
}

impl ShardHost for Shard {
    type Msg = ShardMsg;

    fn rt(&self) -> &Runtime<ShardMsg> {
        &self.rt
    }

    fn accept(self: &Rc<Self>, stream: monoio::net::TcpStream, peer: SocketAddr, listener: usize) {
        let kind = self.net.listeners[listener];
        monoio::spawn(conn::serve(self.clone(), stream, peer, kind));
    }

    fn on_message(self: &Rc<Self>, m: ShardMsg) -> bool {
        match m {
            ShardMsg::Core(m) => self.on_core(m),
            ShardMsg::Storage(r) => self.on_storage(r),
            ShardMsg::Handoff(h) => conn::adopt(self, h),
            ShardMsg::Admin(r) => super::admin_ops::handle(self, r),
            ShardMsg::View(v) => super::cluster::on_view(self, v),
            ShardMsg::Remote(inc) => super::cluster::on_remote(self, inc),
            ShardMsg::Shutdown => return false,
        }
        true
    }

    fn tick(self: &Rc<Self>, now: Instant) {
        sm::expire(&**self, now, false);
        super::cluster::sync_sent(self);
        // Room stanzas waiting for this node's view give up waiting in time.
        self.muc.view_moved(&**self);
        // Gauges that are cheaper to sample than to keep: once a second.
        if now.duration_since(self.sampled.get()) >= Duration::from_secs(1) {
            self.sampled.set(now);
            let m = crate::metrics::shard();
            m.sm_detached.set(self.sm.detached_len() as i64);
            let (rooms, occupants) = self.muc.counts();
            m.muc_rooms.set(rooms as i64);
            m.muc_occupants.set(occupants as i64);
            m.users_cached.set(self.offline.cached_len() as i64);
        }
        // One buffer for the whole shard, kept between ticks (no allocation per tick).
        let mut due = self.due.take();
        self.collect_conns(&mut due);
        for c in due.drain(..) {
            c.out.check_deadline(now);
        }
        self.due.set(due);
    }

    fn flush_held(&self) -> bool {
        let storage = self.core.flush_storage_overflow();
        !super::cluster::flush_held(self) && storage
    }

    async fn shutdown(self: Rc<Self>) {
        self.close_all();
        // Sessions waiting for resumption end now; what they held goes to storage.
        sm::expire(&*self, Instant::now(), true);
        let deadline =
            Instant::now() + Duration::from_millis(self.config.server.shutdown_timeout_ms);
        while self.live_conns() > 0 && Instant::now() < deadline {
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::info!(
            shard = self.core.id,
            left = self.live_conns(),
            "shard stopped"
        );
    }
}
