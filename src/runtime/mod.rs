//! Thread-per-core runtime: one shard per core, each a pinned thread running its own
//! monoio event loop (io_uring, or epoll when io_uring is unavailable or forced off),
//! its own SO_REUSEPORT listener, its mailbox, one timer sweep, and a bounded overflow for
//! messages to shards whose mailbox is full. Shards share only immutable state and the
//! mailboxes (docs/sharding.md). What a shard does with connections, messages and ticks is
//! its host's business (`ShardHost`): nothing here knows what is spoken.

pub mod mailbox;
pub mod notify;

use mailbox::{Mailbox, MailboxSender};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a bare JID (or any key) lives: a node and a shard on it (node 0: this node, when
/// it is alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Home {
    pub node: u16,
    pub shard: u16,
}

impl Home {
    pub fn shard(self) -> usize {
        self.shard as usize
    }
}

/// The one function that says where a key lives (DESIGN: a multi-node deployment changes
/// only this). Fixed seeds: every thread and every process computes the same home.
pub fn home(key: &str, shards: usize) -> Home {
    if shards <= 1 {
        return Home { node: 0, shard: 0 };
    }
    let h = ahash::RandomState::with_seeds(
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    )
    .hash_one(key.as_bytes());
    Home {
        node: 0,
        shard: (h % shards as u64) as u16,
    }
}

/// Size of a pooled read buffer: most reads carry a few stanzas.
pub const READ_BUF_BYTES: usize = 16 * 1024;
/// Read buffers a shard keeps for reuse.
pub const READ_POOL_MAX: usize = 64;
/// A connection waits when this many of its shard's outgoing messages are held back.
pub const OVERFLOW_PAUSE: usize = 8192;

/// One shard's runtime state: its mailboxes to the others and what waits for room in
/// them, its read buffers, its stop signal. Lives on its own thread.
pub struct Runtime<M> {
    pub id: usize,
    pub shards: usize,
    mailboxes: Arc<[MailboxSender<M>]>,
    /// Messages for a shard whose mailbox was full, per destination, kept in order.
    overflow: RefCell<Vec<VecDeque<M>>>,
    overflow_len: Cell<usize>,
    read_pool: RefCell<Vec<Vec<u8>>>,
    pub shutting_down: Cell<bool>,
    pub stop: notify::Notify,
}

impl<M> Runtime<M> {
    pub fn new(id: usize, mailboxes: Arc<[MailboxSender<M>]>) -> Runtime<M> {
        let shards = mailboxes.len();
        Runtime {
            id,
            shards,
            mailboxes,
            overflow: RefCell::new((0..shards).map(|_| VecDeque::new()).collect()),
            overflow_len: Cell::new(0),
            read_pool: RefCell::new(Vec::new()),
            shutting_down: Cell::new(false),
            stop: notify::Notify::default(),
        }
    }

    /// Sends to another shard without blocking; keeps order per destination.
    pub fn send(&self, dest: usize, msg: M) {
        let mut of = self.overflow.borrow_mut();
        if of[dest].is_empty() {
            match self.mailboxes[dest].try_send(msg) {
                Ok(()) => return,
                Err(m) => of[dest].push_back(m),
            }
        } else {
            of[dest].push_back(msg);
        }
        self.overflow_len.set(self.overflow_len.get() + 1);
        crate::metrics::shard().mailbox_overflow.inc();
    }

    /// Retries held-back messages; true when none are left.
    pub fn flush_overflow(&self) -> bool {
        if self.overflow_len.get() == 0 {
            return true;
        }
        let mut of = self.overflow.borrow_mut();
        let mut left = 0;
        for (dest, q) in of.iter_mut().enumerate() {
            while let Some(m) = q.pop_front() {
                if let Err(m) = self.mailboxes[dest].try_send(m) {
                    q.push_front(m);
                    break;
                }
            }
            left += q.len();
        }
        self.overflow_len.set(left);
        left == 0
    }

    /// Whether too much is held back for full mailboxes (readers should pause).
    pub fn overflowing(&self) -> bool {
        self.overflow_len.get() > OVERFLOW_PAUSE
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
}

/// What runs on a shard: it takes the connections its listener accepts, the messages its
/// mailbox receives and the ticks of its timer sweep.
pub trait ShardHost: Sized + 'static {
    type Msg: Send + 'static;
    fn rt(&self) -> &Runtime<Self::Msg>;
    /// A connection one of the shard's listeners accepted; `listener` is its index in
    /// the shard's list (as given to `start`).
    fn accept(self: &Rc<Self>, stream: monoio::net::TcpStream, peer: SocketAddr, listener: usize);
    /// A message from the mailbox; false ends the shard (shutdown).
    fn on_message(self: &Rc<Self>, m: Self::Msg) -> bool;
    /// Every timer tick.
    fn tick(self: &Rc<Self>, now: Instant);
    /// Retries what the host holds back besides the mailboxes' overflow; true when
    /// nothing is left.
    fn flush_held(&self) -> bool {
        true
    }
    /// After the mailbox said stop: end every connection, within a bound.
    fn shutdown(self: Rc<Self>) -> impl std::future::Future<Output = ()>;
}

/// How the shards run.
pub struct Spec {
    pub pin: bool,
    pub uring_entries: u32,
    /// How often the timer sweep runs.
    pub tick: Duration,
}

/// Starts one thread per shard (one list of listeners each: the same addresses, bound
/// with SO_REUSEPORT), each building its host with `build` on its own thread and serving
/// until its mailbox says stop. Returns once every shard runs.
pub fn start<H, B>(
    spec: &Spec,
    listeners: Vec<Vec<std::net::TcpListener>>,
    mailboxes: Vec<Mailbox<H::Msg>>,
    build: B,
) -> Result<Vec<std::thread::JoinHandle<()>>, String>
where
    H: ShardHost,
    B: Fn(usize) -> Rc<H> + Send + Sync + 'static,
{
    let n = listeners.len();
    let cores = if spec.pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let build = Arc::new(build);
    let started = Arc::new(std::sync::Barrier::new(n + 1));
    let mut threads = Vec::with_capacity(n);
    for (id, (listener, mbox)) in listeners.into_iter().zip(mailboxes).enumerate() {
        let core = cores.get(id % cores.len().max(1)).copied();
        let (build, started, entries, tick) = (
            build.clone(),
            started.clone(),
            spec.uring_entries,
            spec.tick,
        );
        let t = std::thread::Builder::new()
            .name(format!("shard-{id}"))
            .spawn(move || shard_thread(id, listener, mbox, core, entries, tick, started, &*build))
            .map_err(|e| e.to_string())?;
        threads.push(t);
    }
    started.wait();
    Ok(threads)
}

#[allow(clippy::too_many_arguments)]
fn shard_thread<H: ShardHost>(
    id: usize,
    listeners: Vec<std::net::TcpListener>,
    mbox: Mailbox<H::Msg>,
    core: Option<core_affinity::CoreId>,
    entries: u32,
    tick: Duration,
    started: Arc<std::sync::Barrier>,
    build: &(dyn Fn(usize) -> Rc<H> + Send + Sync),
) {
    if let Some(c) = core {
        core_affinity::set_for_current(c);
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .with_entries(entries)
        .build()
        .expect("build shard runtime");
    rt.block_on(async move {
        let legacy = monoio::utils::is_legacy();
        tracing::info!(shard = id, driver = if legacy { "epoll (legacy)" } else { "io_uring" }, core = ?core.map(|c| c.id), "shard started");
        let host = build(id);
        for (i, l) in listeners.into_iter().enumerate() {
            let l = monoio::net::TcpListener::from_std(l).expect("register listener");
            monoio::spawn(accept_loop(host.clone(), l, i));
        }
        monoio::spawn(timer_sweep(host.clone(), tick));
        started.wait();
        drain_loop(host.clone(), mbox).await;
        host.rt().shutting_down.set(true);
        host.rt().stop.notify();
        host.shutdown().await;
    });
}

async fn accept_loop<H: ShardHost>(host: Rc<H>, listener: monoio::net::TcpListener, index: usize) {
    loop {
        monoio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    host.accept(stream, peer, index);
                }
                Err(e) => {
                    tracing::warn!(shard = host.rt().id, error = %e, "accept failed");
                    // EMFILE and friends: back off instead of spinning.
                    monoio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = host.rt().stop.wait() => break,
        }
    }
}

/// One timer for the whole shard instead of one per connection (a monoio `Sleep` is
/// 640 bytes; a million idle sessions should not each hold one).
async fn timer_sweep<H: ShardHost>(host: Rc<H>, tick: Duration) {
    while !host.rt().stop.is_set() {
        monoio::time::sleep(tick).await;
        host.tick(Instant::now());
    }
}

async fn drain_loop<H: ShardHost>(host: Rc<H>, mbox: Mailbox<H::Msg>) {
    let mut batch = Vec::with_capacity(256);
    loop {
        let held_done = host.flush_held();
        if host.rt().flush_overflow() && held_done {
            mbox.recv_batch(&mut batch, 256).await;
        } else {
            // Something is held back for a full mailbox: poll again soon.
            monoio::select! {
                _ = mbox.recv_batch(&mut batch, 256) => {},
                _ = monoio::time::sleep(Duration::from_millis(1)) => {},
            }
        }
        for msg in batch.drain(..) {
            if !host.on_message(msg) {
                return;
            }
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

pub fn bind_reuseport(addr: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    Ok(s.into())
}

/// For each of `wanted`: claims the port (`claim_port`), then binds one SO_REUSEPORT
/// listener per shard on it. Returns the addresses with their real ports and, per shard,
/// its listeners in `wanted`'s order. A port the system chose (`:0`) is free only until
/// the claim is let go: another process's outgoing connection may take it before the
/// shards bind it, so then everything is bound again on new ports (a few times).
pub fn bind_shards(
    wanted: &[SocketAddr],
    shards: usize,
    backlog: i32,
) -> Result<(Vec<SocketAddr>, Vec<Vec<std::net::TcpListener>>), String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut addrs = Vec::with_capacity(wanted.len());
        for &a in wanted {
            addrs.push(claim_port(a)?);
        }
        let mut lost = None;
        let mut all = Vec::with_capacity(shards);
        'shards: for _ in 0..shards {
            let mut mine = Vec::with_capacity(addrs.len());
            for (i, &a) in addrs.iter().enumerate() {
                match bind_reuseport(a, backlog) {
                    Ok(l) => mine.push(l),
                    Err(e) => {
                        lost = Some((i, a, e));
                        break 'shards;
                    }
                }
            }
            all.push(mine);
        }
        match lost {
            None => return Ok((addrs, all)),
            Some((i, _, e))
                if wanted[i].port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < 8 =>
            {
                tracing::debug!(error = %e, "a chosen port was taken before the shards bound it: again");
            }
            Some((_, a, e)) => return Err(format!("bind {a}: {e}")),
        }
    }
}

/// Binds without SO_REUSEPORT first: if anyone listens on the port (even a second Aoba with
/// SO_REUSEPORT, which would otherwise silently share it), this fails and we refuse to start.
/// Returns the address with the real port (for `:0`).
pub fn claim_port(addr: SocketAddr) -> Result<SocketAddr, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shard gets a listener on the same (chosen) port for each address; a fixed
    /// port another socket listens on is refused, not shared.
    #[test]
    fn shards_share_each_port_and_a_taken_port_is_refused() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (addrs, ls) = bind_shards(&[any, any], 3, 16).unwrap();
        assert_eq!(ls.len(), 3);
        for mine in &ls {
            for (l, a) in mine.iter().zip(&addrs) {
                assert_eq!(l.local_addr().unwrap(), *a);
                assert_ne!(a.port(), 0);
            }
        }
        assert_ne!(addrs[0].port(), addrs[1].port());
        let taken = std::net::TcpListener::bind(any).unwrap();
        let e = bind_shards(&[taken.local_addr().unwrap()], 2, 16).unwrap_err();
        assert!(e.contains("already in use"), "{e}");
    }
}
