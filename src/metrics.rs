//! Prometheus metrics. Each shard thread has its own counters, written only by that thread
//! with a plain load and store (no atomic read-modify-write, no lock, no allocation on the
//! stanza path: `Relaxed` atomics compile to ordinary moves), found through a thread-local
//! pointer; the scrape (`GET /metrics` on the admin listener) reads every shard's and sums
//! them. The storage thread has its own. Labels come only from the fixed sets below: never
//! a JID, a room or anything a client chose.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

/// A counter one thread writes.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        // Only the owning thread writes: load + store, no locked instruction.
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A gauge one thread writes.
#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.store(self.0.load(Relaxed) + n, Relaxed);
    }

    #[inline]
    pub fn set(&self, n: i64) {
        self.0.store(n, Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// Transports, for `aoba_connections{transport}`.
pub const TRANSPORTS: [&str; 5] = ["ws", "wss", "tcp", "starttls", "tls"];
/// Stanza kinds.
pub const KINDS: [&str; 3] = ["message", "presence", "iq"];
/// Why a login failed (`aoba_auth_failures_total{reason}`): the SASL failure conditions
/// Aoba sends, and the authentication timeout.
pub const AUTH_REASONS: [&str; 8] = [
    "not-authorized",
    "malformed-request",
    "invalid-mechanism",
    "incorrect-encoding",
    "encryption-required",
    "temporary-auth-failure",
    "aborted",
    "timeout",
];
/// One shard's metrics.
#[derive(Default)]
pub struct Shard {
    pub connections: [Gauge; 5],
    pub sessions: Gauge,
    pub users_online: Gauge,
    /// `[ok, failed]`.
    pub logins: [Counter; 2],
    pub auth_failures: [Counter; 8],
    pub stanzas_in: [Counter; 3],
    pub stanzas_out: [Counter; 3],
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub stanza_errors: [Counter; crate::xmpp::errors::Cond::ALL.len()],
    pub stream_errors: [Counter; crate::xmpp::errors::StreamError::ALL.len()],
    pub rate_limited_ns: Counter,
    pub slow_consumer_closes: Counter,
    pub sm_detached: Gauge,
    /// `[ok, failed]`.
    pub sm_resumes: [Counter; 2],
    pub offline_stored: Counter,
    pub offline_delivered: Counter,
    pub muc_rooms: Gauge,
    pub muc_occupants: Gauge,
    pub users_cached: Gauge,
    pub muc_messages: Counter,
    pub mam_queries: Counter,
    pub mailbox_overflow: Counter,
    pub ftw_sessions: Gauge,
    /// Connections this node relays to their user's home on another node.
    pub relayed: Gauge,
}

/// Upper bounds (seconds) of the storage commit histogram's buckets.
pub const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The storage thread's metrics.
#[derive(Default)]
pub struct Storage {
    pub queue_depth: Gauge,
    /// Commits per bucket of `COMMIT_BUCKETS` (not cumulative), then above the last.
    pub commit_buckets: [Counter; 13],
    pub commit_ns: Counter,
    pub commit_failures: Counter,
}

impl Storage {
    pub fn observe_commit(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        let i = COMMIT_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(COMMIT_BUCKETS.len());
        self.commit_buckets[i].inc();
        self.commit_ns.add(d.as_nanos() as u64);
    }
}

thread_local! {
    // Const-initialized: no lazy-init check on the stanza path. Null until the thread is a
    // shard's (`register_shard`).
    static CURRENT: Cell<*const Shard> = const { Cell::new(std::ptr::null()) };
}

/// Counters for code that runs outside a shard (benches, unit tests): never scraped.
fn unused() -> &'static Shard {
    static UNUSED: OnceLock<&'static Shard> = OnceLock::new();
    UNUSED.get_or_init(|| Box::leak(Box::default()))
}

fn registry() -> &'static Mutex<Vec<&'static Shard>> {
    static R: OnceLock<Mutex<Vec<&'static Shard>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The storage thread's metrics.
pub fn storage() -> &'static Storage {
    static S: OnceLock<&'static Storage> = OnceLock::new();
    S.get_or_init(|| Box::leak(Box::default()))
}

/// Gives the calling (shard) thread its counters, registered for the scrape under `id`.
pub fn register_shard(id: usize) {
    let m: &'static Shard = Box::leak(Box::default());
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    if r.len() <= id {
        r.resize(id + 1, unused());
    }
    r[id] = m;
    CURRENT.with(|c| c.set(m));
}

/// This thread's counters.
#[inline]
pub fn shard() -> &'static Shard {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        return unused();
    }
    // SAFETY: set only from a leaked `&'static Shard` (`register_shard`).
    unsafe { &*p }
}

/// What the scrape reads besides the counters: each shard's mailbox depth.
pub type Depths = dyn Fn() -> Vec<usize> + Send + Sync;

/// The Prometheus text exposition (version 0.0.4) of every metric; with `per_shard`, the
/// shards' series carry a `shard` label instead of being summed.
pub fn render(per_shard: bool, depths: &Depths) -> String {
    let shards: Vec<&'static Shard> = registry().lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut o = String::with_capacity(16 * 1024);
    let head = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    // One series per shard or the sum, for a value read from each shard.
    let series = |o: &mut String, name: &str, labels: &str, f: &dyn Fn(&Shard) -> i64| {
        let sep = if labels.is_empty() { "" } else { "," };
        if per_shard {
            for (i, s) in shards.iter().enumerate() {
                let _ = writeln!(o, "{name}{{{labels}{sep}shard=\"{i}\"}} {}", f(s));
            }
        } else {
            let sum: i64 = shards.iter().map(|s| f(s)).sum();
            if labels.is_empty() {
                let _ = writeln!(o, "{name} {sum}");
            } else {
                let _ = writeln!(o, "{name}{{{labels}}} {sum}");
            }
        }
    };
    macro_rules! one {
        ($name:expr, $kind:expr, $help:expr, $f:expr) => {{
            head(&mut o, $name, $kind, $help);
            series(&mut o, $name, "", &$f);
        }};
    }
    macro_rules! labelled {
        ($name:expr, $kind:expr, $help:expr, $label:expr, $set:expr, $f:expr) => {{
            head(&mut o, $name, $kind, $help);
            for (i, v) in $set.iter().enumerate() {
                let l = format!("{}=\"{}\"", $label, v);
                series(&mut o, $name, &l, &|s: &Shard| $f(s, i));
            }
        }};
    }
    let _ = writeln!(
        o,
        "# HELP aoba_build_info The running build.\n# TYPE aoba_build_info gauge\naoba_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    labelled!(
        "aoba_connections",
        "gauge",
        "Open client connections.",
        "transport",
        TRANSPORTS,
        |s: &Shard, i: usize| s.connections[i].get()
    );
    one!(
        "aoba_sessions",
        "gauge",
        "Bound resources (XML sessions).",
        |s: &Shard| s.sessions.get()
    );
    one!(
        "aoba_users_online",
        "gauge",
        "Users with at least one bound resource.",
        |s: &Shard| s.users_online.get()
    );
    labelled!(
        "aoba_logins_total",
        "counter",
        "SASL authentications, by result.",
        "result",
        ["ok", "failed"],
        |s: &Shard, i: usize| s.logins[i].get() as i64
    );
    labelled!(
        "aoba_auth_failures_total",
        "counter",
        "Failed authentications, by reason.",
        "reason",
        AUTH_REASONS,
        |s: &Shard, i: usize| s.auth_failures[i].get() as i64
    );
    labelled!(
        "aoba_stanzas_in_total",
        "counter",
        "Stanzas received from clients.",
        "kind",
        KINDS,
        |s: &Shard, i: usize| s.stanzas_in[i].get() as i64
    );
    labelled!(
        "aoba_stanzas_out_total",
        "counter",
        "Stanzas delivered to client connections.",
        "kind",
        KINDS,
        |s: &Shard, i: usize| s.stanzas_out[i].get() as i64
    );
    one!(
        "aoba_bytes_in_total",
        "counter",
        "Bytes read from client connections (after TLS).",
        |s: &Shard| s.bytes_in.get() as i64
    );
    one!(
        "aoba_bytes_out_total",
        "counter",
        "Bytes written to client connections (before TLS).",
        |s: &Shard| s.bytes_out.get() as i64
    );
    labelled!(
        "aoba_stanza_errors_total",
        "counter",
        "Error stanzas the server generated, by condition.",
        "condition",
        crate::xmpp::errors::Cond::ALL.map(|c| c.name()),
        |s: &Shard, i: usize| s.stanza_errors[i].get() as i64
    );
    labelled!(
        "aoba_stream_errors_total",
        "counter",
        "Stream errors the server sent, by condition.",
        "condition",
        crate::xmpp::errors::StreamError::ALL.map(|c| c.name()),
        |s: &Shard, i: usize| s.stream_errors[i].get() as i64
    );
    head(
        &mut o,
        "aoba_rate_limited_seconds_total",
        "counter",
        "Time connections spent not read because of the stanza rate limit.",
    );
    if per_shard {
        for (i, s) in shards.iter().enumerate() {
            let _ = writeln!(
                o,
                "aoba_rate_limited_seconds_total{{shard=\"{i}\"}} {}",
                s.rate_limited_ns.get() as f64 / 1e9
            );
        }
    } else {
        let ns: u64 = shards.iter().map(|s| s.rate_limited_ns.get()).sum();
        let _ = writeln!(o, "aoba_rate_limited_seconds_total {}", ns as f64 / 1e9);
    }
    one!(
        "aoba_slow_consumer_closes_total",
        "counter",
        "Connections closed because their outbound queue went over its bound.",
        |s: &Shard| s.slow_consumer_closes.get() as i64
    );
    one!(
        "aoba_sm_detached_sessions",
        "gauge",
        "XEP-0198 sessions waiting for resumption.",
        |s: &Shard| s.sm_detached.get()
    );
    labelled!(
        "aoba_sm_resumes_total",
        "counter",
        "XEP-0198 resumption attempts, by result.",
        "result",
        ["ok", "failed"],
        |s: &Shard, i: usize| s.sm_resumes[i].get() as i64
    );
    one!(
        "aoba_offline_stored_total",
        "counter",
        "Messages stored for offline users.",
        |s: &Shard| s.offline_stored.get() as i64
    );
    one!(
        "aoba_offline_delivered_total",
        "counter",
        "Offline messages delivered.",
        |s: &Shard| s.offline_delivered.get() as i64
    );
    one!(
        "aoba_users_cached",
        "gauge",
        "Users the shards remember as recorded (a cache: users are never all loaded).",
        |s: &Shard| s.users_cached.get()
    );
    one!(
        "aoba_muc_rooms",
        "gauge",
        "Group chat rooms in memory.",
        |s: &Shard| s.muc_rooms.get()
    );
    one!(
        "aoba_muc_occupants",
        "gauge",
        "Occupants of group chat rooms.",
        |s: &Shard| s.muc_occupants.get()
    );
    one!(
        "aoba_muc_messages_total",
        "counter",
        "Groupchat messages broadcast.",
        |s: &Shard| s.muc_messages.get() as i64
    );
    one!(
        "aoba_mam_queries_total",
        "counter",
        "XEP-0313 archive queries.",
        |s: &Shard| s.mam_queries.get() as i64
    );
    one!(
        "aoba_mailbox_overflow_total",
        "counter",
        "Messages to another shard that waited in the sender's overflow (full mailbox).",
        |s: &Shard| s.mailbox_overflow.get() as i64
    );
    one!(
        "aoba_ftw_sessions",
        "gauge",
        "XMPP-FTW (JSON) sessions.",
        |s: &Shard| s.ftw_sessions.get()
    );
    one!(
        "aoba_relayed_connections",
        "gauge",
        "Client connections on this node whose user lives on another node of the cluster (relayed there).",
        |s: &Shard| s.relayed.get()
    );
    head(
        &mut o,
        "aoba_mailbox_depth",
        "gauge",
        "Messages waiting in each shard's inbound mailbox.",
    );
    for (i, d) in depths().iter().enumerate() {
        let _ = writeln!(o, "aoba_mailbox_depth{{shard=\"{i}\"}} {d}");
    }
    let st = storage();
    head(
        &mut o,
        "aoba_storage_queue_depth",
        "gauge",
        "Storage requests waiting for the storage thread.",
    );
    let _ = writeln!(o, "aoba_storage_queue_depth {}", st.queue_depth.get());
    head(
        &mut o,
        "aoba_storage_commit_seconds",
        "histogram",
        "Duration of each group commit.",
    );
    let mut cum = 0u64;
    for (i, b) in COMMIT_BUCKETS.iter().enumerate() {
        cum += st.commit_buckets[i].get();
        let _ = writeln!(o, "aoba_storage_commit_seconds_bucket{{le=\"{b}\"}} {cum}");
    }
    cum += st.commit_buckets[COMMIT_BUCKETS.len()].get();
    let _ = writeln!(o, "aoba_storage_commit_seconds_bucket{{le=\"+Inf\"}} {cum}");
    let _ = writeln!(
        o,
        "aoba_storage_commit_seconds_sum {}",
        st.commit_ns.get() as f64 / 1e9
    );
    let _ = writeln!(o, "aoba_storage_commit_seconds_count {cum}");
    head(
        &mut o,
        "aoba_storage_commit_failures_total",
        "counter",
        "Group commits that failed.",
    );
    let _ = writeln!(
        o,
        "aoba_storage_commit_failures_total {}",
        st.commit_failures.get()
    );
    let (rss, cpu) = process();
    head(
        &mut o,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    let _ = writeln!(o, "process_resident_memory_bytes {rss}");
    head(
        &mut o,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    );
    let _ = writeln!(o, "process_cpu_seconds_total {cpu}");
    if let Some(f) = EXTRA.get() {
        f(&mut o);
    }
    o
}

/// Series a part of the process renders itself (the cluster's bus), appended to the scrape.
pub type Extra = dyn Fn(&mut String) + Send + Sync;
static EXTRA: std::sync::OnceLock<Box<Extra>> = std::sync::OnceLock::new();

/// Registers the one extra renderer (at start).
pub fn register_extra(f: Box<Extra>) {
    let _ = EXTRA.set(f);
}

/// The main figures as JSON, summed over the shards (`GET /api/stats`).
pub fn render_json() -> serde_json::Value {
    let shards: Vec<&'static Shard> = registry().lock().unwrap_or_else(|e| e.into_inner()).clone();
    let sum = |f: &dyn Fn(&Shard) -> i64| -> i64 { shards.iter().map(|s| f(s)).sum() };
    let conns: serde_json::Map<String, serde_json::Value> = TRANSPORTS
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), sum(&|s| s.connections[i].get()).into()))
        .collect();
    let (rss, cpu) = process();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "shards": shards.len(),
        "connections": conns,
        "sessions": sum(&|s| s.sessions.get()),
        "users_online": sum(&|s| s.users_online.get()),
        "ftw_sessions": sum(&|s| s.ftw_sessions.get()),
        "sm_detached_sessions": sum(&|s| s.sm_detached.get()),
        "logins_ok": sum(&|s| s.logins[0].get() as i64),
        "logins_failed": sum(&|s| s.logins[1].get() as i64),
        "stanzas_in": sum(&|s| s.stanzas_in.iter().map(|c| c.get() as i64).sum()),
        "stanzas_out": sum(&|s| s.stanzas_out.iter().map(|c| c.get() as i64).sum()),
        "muc_rooms": sum(&|s| s.muc_rooms.get()),
        "muc_occupants": sum(&|s| s.muc_occupants.get()),
        "storage_queue_depth": storage().queue_depth.get(),
        "resident_memory_bytes": rss,
        "cpu_seconds": cpu,
    })
}

/// Resident bytes and CPU seconds of this process (`/proc/self`).
fn process() -> (u64, f64) {
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * page;
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / tick)
        })
        .unwrap_or(0.0);
    (rss, cpu)
}
