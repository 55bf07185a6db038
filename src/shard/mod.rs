//! Thread-per-core runtime: one shard per core, each a pinned thread running its own
//! monoio event loop (io_uring, or epoll when io_uring is unavailable or forced off),
//! its own SO_REUSEPORT listener, and the state of the users and rooms whose home it is.
//! Shards share only immutable configuration and the mailboxes (docs/sharding.md).

pub mod mailbox;
pub mod notify;

use crate::config::Config;
use crate::net::outbox::WriteBatch;
use crate::xmpp::jwt::JwtVerifier;
use crate::xmpp::router::Routed;
use crate::xmpp::session::SessionTable;
use crate::xmpp::sink::{Meta, Sink};
use mailbox::{Mailbox, MailboxSender};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A message between shards. Plain data (a routed stanza is bytes and offsets) except the
/// connection handoff, which carries a file descriptor and so stays on one machine.
pub enum ShardMsg {
    Route(Routed),
    /// One stanza for many full JIDs whose home is the receiving shard: the payload is
    /// `head + to + tail`, serialized once by the sender; `tos` are escaped full JIDs.
    Fanout(crate::xmpp::router::Fanout),
    Handoff(crate::server::conn::Handoff),
    /// A storage reply (and acknowledgement) to the shard that asked.
    Storage(crate::storage::Reply),
    /// XEP-0198 ack barrier: everything `origin` sent here before this is processed; ask
    /// storage to confirm it is durable, replying to `origin` with `token`.
    Barrier {
        token: u64,
        origin: usize,
    },
    Shutdown,
}

/// What all shards share: read-only after start.
pub struct Shared {
    pub cfg: Config,
    /// Builders of the components (e.g. MUC), one instance per shard.
    pub components: Vec<crate::xmpp::component::ComponentFactory>,
    /// Their domains, for the sender side to know what is routable.
    pub component_domains: Vec<String>,
    /// The storage thread's queue (None: no storage, as in benches).
    pub storage: Option<crate::storage::StorageHandle>,
    pub verifier: JwtVerifier,
    pub mailboxes: Vec<MailboxSender<ShardMsg>>,
    pub conn_counts: Vec<AtomicUsize>,
    /// Per shard: storage requests waiting for room in the storage queue (for /health).
    pub storage_backlogs: Vec<AtomicUsize>,
    pub shards: usize,
}

impl Shared {
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

/// The one function that says where a JID lives (DESIGN: keep it behind one function so a
/// multi-node deployment changes only this). Fixed seeds: every thread and every process
/// computes the same home.
pub fn home(bare_jid: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let h = ahash::RandomState::with_seeds(
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    )
    .hash_one(bare_jid.as_bytes());
    (h % shards as u64) as usize
}

/// One shard's state. Lives in an `Rc` on its own thread; never shared.
pub struct Shard {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub sessions: RefCell<SessionTable>,
    conns: RefCell<HashMap<u64, Weak<Sink>, ahash::RandomState>>,
    next_conn: Cell<u64>,
    read_pool: RefCell<Vec<Vec<u8>>>,
    pub write_pool: Rc<RefCell<Vec<WriteBatch<Meta>>>>,
    /// Messages for a shard whose mailbox was full, per destination, kept in order.
    overflow: RefCell<Vec<VecDeque<ShardMsg>>>,
    overflow_len: Cell<usize>,
    pub shutting_down: Cell<bool>,
    pub stop: notify::Notify,
    pub rng: Cell<u64>,
    components: Vec<Box<dyn crate::xmpp::component::Component>>,
    /// The bound on RS256/ES256 signature checks on this shard.
    pub token_guard: RefCell<crate::xmpp::jwt::TokenGuard>,
    /// Never-seen recipients per sender this hour (`storage.max_unknown_recipients_per_hour`).
    pub stranger_counts: RefCell<crate::features::offline::StrangerCounts>,
    /// Users (localparts) that have logged in and whose home is this shard.
    pub known_users: RefCell<std::collections::HashSet<Box<str>, ahash::RandomState>>,
    /// Answers waiting for the storage commit that covers them (`xmpp::commit`), by token.
    pub commit_waiters: RefCell<HashMap<u64, crate::xmpp::commit::Waiter, ahash::RandomState>>,
    /// Rosters of this shard's online users (RFC 6121), cached while needed.
    pub rosters: RefCell<HashMap<Box<str>, crate::xmpp::roster::Roster, ahash::RandomState>>,
    /// XEP-0198 sessions waiting for `<resume/>`, by SM id.
    pub detached: RefCell<HashMap<String, crate::xmpp::sm::Detached, ahash::RandomState>>,
    /// Resumable XEP-0198 sessions still attached to their connection: SM id → (JID, connection).
    pub sm_live: RefCell<HashMap<String, (crate::xmpp::jid::Jid, u64), ahash::RandomState>>,
    /// Storage requests waiting for room in the storage queue, in order (never spun on).
    storage_overflow: RefCell<VecDeque<crate::storage::Request>>,
    /// The last archive id this shard made (keeps ids increasing, see `storage::archive_id`).
    pub last_archive_id: Cell<u64>,
}

/// Size of a pooled read buffer: most reads carry a few stanzas.
pub const READ_BUF_BYTES: usize = 16 * 1024;
/// Read buffers a shard keeps for reuse.
pub const READ_POOL_MAX: usize = 64;
/// A connection waits when this many of its shard's outgoing messages are held back.
pub const OVERFLOW_PAUSE: usize = 8192;

impl Shard {
    /// A shard's state; its tasks are started by `run`. Public for benches and tests.
    pub fn new(id: usize, shared: Arc<Shared>) -> Rc<Shard> {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Rc::new(Shard {
            id,
            sessions: RefCell::new(SessionTable::default()),
            conns: RefCell::new(HashMap::default()),
            next_conn: Cell::new(1),
            read_pool: RefCell::new(Vec::new()),
            write_pool: Rc::new(RefCell::new(Vec::new())),
            overflow: RefCell::new((0..shared.shards).map(|_| VecDeque::new()).collect()),
            overflow_len: Cell::new(0),
            shutting_down: Cell::new(false),
            stop: notify::Notify::default(),
            rng: Cell::new(u64::from_le_bytes(seed) | 1),
            components: shared.components.iter().map(|f| f(&shared.cfg)).collect(),
            known_users: RefCell::new(Default::default()),
            stranger_counts: RefCell::new(Default::default()),
            token_guard: RefCell::new(crate::xmpp::jwt::TokenGuard::new(
                shared.cfg.auth.jwt_signature_checks_per_sec,
            )),
            commit_waiters: RefCell::new(HashMap::default()),
            rosters: RefCell::new(HashMap::default()),
            detached: RefCell::new(HashMap::default()),
            last_archive_id: Cell::new(0),
            storage_overflow: RefCell::new(VecDeque::new()),
            sm_live: RefCell::new(HashMap::default()),
            shared,
        })
    }

    /// The component serving `domain` on this shard, if any.
    pub fn component(&self, domain: &str) -> Option<&dyn crate::xmpp::component::Component> {
        self.components
            .iter()
            .find(|c| c.domain() == domain)
            .map(|c| c.as_ref())
    }

    pub fn is_component_domain(&self, domain: &str) -> bool {
        self.shared.component_domains.iter().any(|d| d == domain)
    }

    pub fn cfg(&self) -> &Config {
        &self.shared.cfg
    }

    /// Checks a JWT within this shard's bound on signature checks.
    pub fn check_token(&self, token: &str) -> Result<String, crate::xmpp::jwt::TokenError> {
        self.token_guard
            .borrow_mut()
            .check(&self.shared.verifier, token)
    }

    pub fn domain(&self) -> &str {
        &self.shared.cfg.server.domain
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

    /// Sends a request to storage without blocking and in order: when the storage queue
    /// is full it waits in this shard's overflow, which the shard's loop retries.
    pub fn storage(&self, req: crate::storage::Request) {
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
    pub fn storage_try(&self, req: crate::storage::Request) -> Result<(), crate::storage::Request> {
        let Some(s) = &self.shared.storage else {
            return Err(req);
        };
        if !self.storage_overflow.borrow().is_empty() {
            return Err(req);
        }
        s.try_send(req)
    }

    /// Retries held-back storage requests; true when none are left.
    fn flush_storage_overflow(&self) -> bool {
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

    /// A live connection of this shard by id.
    pub fn conn(&self, id: u64) -> Option<Rc<Sink>> {
        self.conns.borrow().get(&id).and_then(Weak::upgrade)
    }

    pub fn live_conns(&self) -> usize {
        self.conns.borrow().len()
    }

    pub fn take_read_buf(&self) -> Vec<u8> {
        self.read_pool
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(READ_BUF_BYTES))
    }

    pub fn give_read_buf(&self, mut b: Vec<u8>) {
        let mut p = self.read_pool.borrow_mut();
        // A small pool: after a login storm it must not keep megabytes nobody reads into.
        if b.capacity() <= 4 * READ_BUF_BYTES && p.len() < READ_POOL_MAX {
            b.clear();
            p.push(b);
        }
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

    /// Sends to another shard without blocking; keeps order per destination.
    pub fn send(&self, dest: usize, msg: ShardMsg) {
        let mut of = self.overflow.borrow_mut();
        if of[dest].is_empty() {
            match self.shared.mailboxes[dest].try_send(msg) {
                Ok(()) => return,
                Err(m) => of[dest].push_back(m),
            }
        } else {
            of[dest].push_back(msg);
        }
        self.overflow_len.set(self.overflow_len.get() + 1);
    }

    /// Retries held-back messages; true when none are left.
    fn flush_overflow(&self) -> bool {
        if self.overflow_len.get() == 0 {
            return true;
        }
        let mut of = self.overflow.borrow_mut();
        let mut left = 0;
        for (dest, q) in of.iter_mut().enumerate() {
            while let Some(m) = q.pop_front() {
                if let Err(m) = self.shared.mailboxes[dest].try_send(m) {
                    q.push_front(m);
                    break;
                }
            }
            left += q.len();
        }
        self.overflow_len.set(left);
        left == 0
    }

    /// Whether this shard's connections should stop reading: too much is held back for
    /// full mailboxes, or for a storage queue that is full (a slow disk). Stopping the
    /// readers is what bounds both: TCP pushes back on the clients.
    pub fn overflowing(&self) -> bool {
        self.overflow_len.get() > OVERFLOW_PAUSE
            || self.storage_overflow.borrow().len() >= self.cfg().storage.shard_backlog_max
    }

    /// Backpressure for a reading connection: waits while too much is held back.
    pub async fn wait_overflow(&self) {
        while self.overflowing() {
            self.flush_overflow();
            self.flush_storage_overflow();
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Closes every connection of this shard with `system-shutdown`.
    fn close_all(&self) {
        let conns: Vec<Rc<Sink>> = self
            .conns
            .borrow()
            .values()
            .filter_map(|w| w.upgrade())
            .collect();
        for c in conns {
            crate::server::conn::shutdown_conn(&c);
        }
    }
}

/// Crash-only (docs/durability.md): a panic anywhere (a shard, storage, any thread) ends
/// the whole process at once, with the panic, its place and a backtrace logged. A server
/// with one dead shard would otherwise stall every other shard on its full mailbox; a
/// process that ends is restarted by its supervisor, and durability guarantees that
/// nothing acknowledged is lost. Installed by `aoba serve` only.
pub fn crash_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let thread = std::thread::current();
        let bt = std::backtrace::Backtrace::force_capture();
        tracing::error!(
            thread = thread.name().unwrap_or("?"),
            at = %place,
            "panic: {what}; ending the process (crash-only)\n{bt}"
        );
        std::process::abort();
    }));
}

/// Raises RLIMIT_NOFILE to its hard limit; returns (soft, hard) after.
pub fn raise_nofile() -> (u64, u64) {
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return (0, 0);
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r = want;
            }
        }
        (r.rlim_cur, r.rlim_max)
    }
}

fn bind_reuseport(addr: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    Ok(s.into())
}

/// Binds without SO_REUSEPORT first: if anyone listens on the port (even a second Aoba with
/// SO_REUSEPORT, which would otherwise silently share it), this fails and we refuse to start.
/// Returns the address with the real port (for `:0`).
fn claim_port(addr: SocketAddr) -> Result<SocketAddr, String> {
    use socket2::{Domain, Socket, Type};
    let s =
        Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(|e| e.to_string())?;
    s.set_reuse_address(true).map_err(|e| e.to_string())?;
    s.bind(&addr.into()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("{addr} is already in use by another process: refusing to share it")
        } else {
            format!("cannot bind {addr}: {e}")
        }
    })?;
    s.listen(1)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = s
        .local_addr()
        .map_err(|e| e.to_string())?
        .as_socket()
        .ok_or("not an inet address")?;
    Ok(local)
}

/// Starts every shard and blocks until they have all stopped (after SIGTERM/SIGINT).
pub fn run(
    cfg: Config,
    verifier: JwtVerifier,
    components: Vec<crate::xmpp::component::ComponentFactory>,
) -> Result<(), String> {
    let (soft, hard) = raise_nofile();
    tracing::info!(soft, hard, "RLIMIT_NOFILE");
    if cfg.server.force_legacy_driver {
        // Read by monoio's io_uring detection, before any runtime is built.
        unsafe { std::env::set_var("MONOIO_FORCE_LEGACY_DRIVER", "1") };
    }
    let n = cfg.shard_count();
    let addr = claim_port(cfg.server.listen)?;
    let mut listeners = Vec::with_capacity(n);
    for _ in 0..n {
        listeners.push(
            bind_reuseport(addr, cfg.server.listen_backlog)
                .map_err(|e| format!("bind {addr}: {e}"))?,
        );
    }
    let mut senders = Vec::with_capacity(n);
    let mut boxes = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mailbox::mailbox(cfg.server.mailbox_capacity);
        senders.push(tx);
        boxes.push(rx);
    }
    let backend = crate::storage::open(&cfg.storage, &cfg.server.data_dir)?;
    let mut users_by_shard: Vec<Vec<String>> = (0..n).map(|_| Vec::new()).collect();
    for u in backend.users().map_err(|e| format!("storage: {e}"))? {
        users_by_shard[home(&format!("{u}@{}", cfg.server.domain), n)].push(u);
    }
    let mut rooms_by_shard: Vec<Vec<(String, Vec<u8>)>> = (0..n).map(|_| Vec::new()).collect();
    for (jid, data) in backend.rooms().map_err(|e| format!("storage: {e}"))? {
        rooms_by_shard[home(&jid, n)].push((jid, data));
    }
    tracing::info!(backend = %cfg.storage.backend, users = users_by_shard.iter().map(Vec::len).sum::<usize>(), "storage opened");
    let (storage, storage_thread) =
        crate::storage::start(backend, &cfg.storage, cfg.mam.retention_s, senders.clone());
    let component_domains = components
        .iter()
        .map(|f| f(&cfg).domain().to_string())
        .collect();
    let shared = Arc::new(Shared {
        verifier,
        components,
        component_domains,
        storage: Some(storage.clone()),
        mailboxes: senders,
        conn_counts: (0..n).map(|_| AtomicUsize::new(0)).collect(),
        storage_backlogs: (0..n).map(|_| AtomicUsize::new(0)).collect(),
        shards: n,
        cfg,
    });
    let cores = if shared.cfg.server.pin_shards {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut threads = Vec::with_capacity(n);
    // Announce only once every shard runs and has registered its listener.
    let started = Arc::new(std::sync::Barrier::new(n + 1));
    for (id, (((listener, mbox), users), rooms)) in listeners
        .into_iter()
        .zip(boxes)
        .zip(users_by_shard)
        .zip(rooms_by_shard)
        .enumerate()
    {
        let shared = shared.clone();
        let core = cores.get(id % cores.len().max(1)).copied();
        let started = started.clone();
        let t = std::thread::Builder::new()
            .name(format!("shard-{id}"))
            .spawn(move || shard_thread(id, shared, listener, mbox, core, started, users, rooms))
            .map_err(|e| e.to_string())?;
        threads.push(t);
    }
    started.wait();
    // The line scripts and tests wait for.
    println!("aoba listening on ws://{addr}/xmpp shards={n}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, shards = n, domain = %shared.cfg.server.domain, "listening");

    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| e.to_string())?;
    let sh = shared.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!(sig, "shutting down");
                for mb in &sh.mailboxes {
                    while mb.try_send(ShardMsg::Shutdown).is_err() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        })
        .map_err(|e| e.to_string())?;
    for t in threads {
        let _ = t.join();
    }
    // Graceful shutdown flushes storage: everything the shards queued is made durable.
    storage.stop();
    let _ = storage_thread.join();
    tracing::info!("stopped");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn shard_thread(
    id: usize,
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    mbox: Mailbox<ShardMsg>,
    core: Option<core_affinity::CoreId>,
    started: Arc<std::sync::Barrier>,
    users: Vec<String>,
    rooms: Vec<(String, Vec<u8>)>,
) {
    if let Some(c) = core {
        core_affinity::set_for_current(c);
    }
    let entries = shared.cfg.server.uring_entries;
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .with_entries(entries)
        .build()
        .expect("build shard runtime");
    rt.block_on(async move {
        let legacy = monoio::utils::is_legacy();
        tracing::info!(shard = id, driver = if legacy { "epoll (legacy)" } else { "io_uring" }, core = ?core.map(|c| c.id), "shard started");
        let listener = monoio::net::TcpListener::from_std(listener).expect("register listener");
        crate::storage::set_current_shard(id);
        let shard = Shard::new(id, shared);
        shard.known_users.borrow_mut().extend(users.into_iter().map(String::into_boxed_str));
        for c in &shard.components {
            c.restore(&shard, rooms.clone());
        }
        monoio::spawn(accept_loop(shard.clone(), listener));
        monoio::spawn(timer_sweep(shard.clone()));
        started.wait();
        drain_loop(shard.clone(), mbox).await;
        // Shutdown: close every session, wait (bounded) for them to go.
        shard.shutting_down.set(true);
        shard.stop.notify();
        shard.close_all();
        // Sessions waiting for resumption end now; what they held goes to storage.
        crate::xmpp::sm::expire(&shard, std::time::Instant::now(), true);
        let deadline = std::time::Instant::now() + Duration::from_millis(shard.cfg().server.shutdown_timeout_ms);
        while shard.live_conns() > 0 && std::time::Instant::now() < deadline {
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::info!(shard = id, left = shard.live_conns(), "shard stopped");
    });
}

async fn accept_loop(shard: Rc<Shard>, listener: monoio::net::TcpListener) {
    loop {
        monoio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(crate::server::conn::serve(shard.clone(), stream, peer));
                }
                Err(e) => {
                    tracing::warn!(shard = shard.id, error = %e, "accept failed");
                    // EMFILE and friends: back off instead of spinning.
                    monoio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shard.stop.wait() => break,
        }
    }
}

/// How often a shard checks its connections' deadlines: a quarter of the shortest
/// configured timeout, between 5 ms and 1 s. Timeouts fire within one tick of their time.
pub fn timer_tick(cfg: &Config) -> Duration {
    let shortest = cfg
        .auth
        .auth_timeout_ms
        .min(cfg.ping.client_idle_ms)
        .min(cfg.ping.client_ping_timeout_ms)
        .min(cfg.sm.resume_timeout_ms);
    Duration::from_millis((shortest / 4).clamp(5, 1000))
}

/// One timer for the whole shard instead of one per connection (a monoio `Sleep` is
/// 640 bytes; a million idle sessions should not each hold one).
async fn timer_sweep(shard: Rc<Shard>) {
    let tick = timer_tick(shard.cfg());
    let mut due: Vec<Rc<Sink>> = Vec::new();
    while !shard.stop.is_set() {
        monoio::time::sleep(tick).await;
        let now = std::time::Instant::now();
        crate::xmpp::sm::expire(&shard, now, false);
        due.extend(shard.conns.borrow().values().filter_map(Weak::upgrade));
        for c in due.drain(..) {
            c.out.check_deadline(now);
        }
    }
}

/// Queues a storage barrier behind this shard's earlier storage requests.
pub fn storage_sync(shard: &Rc<Shard>, origin: usize, token: u64) {
    shard.storage(crate::storage::Request::Sync {
        shard: origin,
        token,
    });
}

async fn drain_loop(shard: Rc<Shard>, mbox: Mailbox<ShardMsg>) {
    let mut batch = Vec::with_capacity(256);
    loop {
        let storage_done = shard.flush_storage_overflow();
        if shard.flush_overflow() && storage_done {
            mbox.recv_batch(&mut batch, 256).await;
        } else {
            // Something is held back for a full mailbox: poll again soon.
            monoio::select! {
                _ = mbox.recv_batch(&mut batch, 256) => {},
                _ = monoio::time::sleep(Duration::from_millis(1)) => {},
            }
        }
        for msg in batch.drain(..) {
            match msg {
                ShardMsg::Route(r) => crate::xmpp::router::deliver(&shard, r),
                ShardMsg::Fanout(f) => crate::xmpp::router::deliver_fanout(&shard, f),
                ShardMsg::Handoff(h) => crate::server::conn::adopt(&shard, h),
                ShardMsg::Storage(r) => crate::features::offline::on_reply(&shard, r),
                ShardMsg::Barrier { token, origin } => storage_sync(&shard, origin, token),
                ShardMsg::Shutdown => return,
            }
        }
    }
}
