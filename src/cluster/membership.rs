//! Who is in the cluster (issue 14): membership lives in PostgreSQL, the store every node
//! already trusts, not in a protocol of our own.
//!
//! - **Join.** A node takes a session-level advisory lock on its name (a second live
//!   process with the same name is refused), upserts its row in `cluster_node` (its number,
//!   a new incarnation, its backend pid, a heartbeat) and bumps the cluster epoch, all under
//!   a transaction lock that serializes joins and removals.
//! - **Heartbeat** every `heartbeat_ms`: its row's `heartbeat_at`, only if the row is still
//!   its own (same incarnation and backend); then it reads the members and the epoch.
//! - **Failure.** A member whose heartbeat is older than `failure_timeout_ms` is removed by
//!   whoever sees it first: its PostgreSQL backend is terminated (its advisory lock goes
//!   with it) and its row deleted, and the epoch moves on.
//! - **Fencing.** A node that cannot heartbeat (PostgreSQL unreachable, its session
//!   terminated, its row gone) or that wakes up after more than `failure_timeout_ms`
//!   without a heartbeat (a SIGSTOP, a stalled VM) stops at once, before it writes anything:
//!   it is fenced and says so (`on_fence`); the server will stop acting as a home. It never
//!   writes after others may have taken its place.
//! - **Leave.** A clean stop deletes its row and bumps the epoch.
//!
//! Each change of the view (epoch, members) is handed to `on_view`.

use postgres::{Client, NoTls};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Membership settings; these become `cluster.*` configuration keys when nodes are wired.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    pub postgres_url: String,
    pub node: String,
    pub heartbeat_ms: u64,
    /// A member silent this long is removed; a node that could not heartbeat this long
    /// fences itself.
    pub failure_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// This node's shard count (others compute a key's shard on this node from it).
    pub shards: u16,
    /// Where clients reach this node (`cluster.advertise_url`), for redirects.
    pub url: Option<String>,
    /// Where the other nodes reach its admin API (`cluster.admin_url`).
    pub admin_url: Option<String>,
}

impl MembershipConfig {
    pub fn new(postgres_url: &str, node: &str) -> MembershipConfig {
        MembershipConfig {
            postgres_url: postgres_url.into(),
            node: node.into(),
            heartbeat_ms: 1_000,
            failure_timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
            shards: 1,
            url: None,
            admin_url: None,
        }
    }
}

/// One member of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// A small number, unique among live members (for ids that carry the node).
    pub num: i32,
    /// Grows at every join of this name.
    pub incarnation: i64,
    /// Its shard count.
    pub shards: u16,
}

/// The cluster as one node sees it: members sorted by name.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub epoch: i64,
    pub members: Vec<Member>,
    /// Each member's advertised URL, in the members' order.
    pub urls: Vec<Option<String>>,
    /// Each member's admin API URL, in the members' order.
    pub admin_urls: Vec<Option<String>>,
    /// The largest archive id stored when this view was read (read only when the view
    /// changed; not part of what makes two views equal).
    pub archive_floor: u64,
}

impl PartialEq for View {
    fn eq(&self, o: &View) -> bool {
        (self.epoch, &self.members, &self.urls, &self.admin_urls)
            == (o.epoch, &o.members, &o.urls, &o.admin_urls)
    }
}

impl Eq for View {}

/// The largest archive id stored (0 when there is none, or no archive table yet: a fresh
/// database before the storage's migrations). An index-only scan of `archive_by_id`.
fn archive_floor(c: &mut Client) -> u64 {
    match c.query_one("SELECT COALESCE(MAX(id), 0) FROM archive", &[]) {
        Ok(r) => r.try_get::<_, i64>(0).map_or(0, |v| v.max(0) as u64),
        Err(e) => {
            tracing::debug!(error = %pg_err(e), "archive floor");
            0
        }
    }
}

impl View {
    pub fn names(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.name.as_str()).collect()
    }
}

/// Why a node stopped being a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fenced {
    /// No heartbeat for longer than the failure timeout (stopped, stalled).
    Silent(Duration),
    /// PostgreSQL did not take the heartbeat, or the row is not ours any more.
    Lost(String),
}

pub type OnView = Box<dyn FnMut(&View) + Send>;
pub type OnFence = Box<dyn FnOnce(Fenced) + Send>;

/// One node's membership: a thread with its own PostgreSQL session.
pub struct Membership {
    stop: Arc<AtomicBool>,
    view: Arc<Mutex<View>>,
    me: Member,
    thread: Option<std::thread::JoinHandle<()>>,
    #[doc(hidden)]
    pub pause: Arc<Mutex<Option<Duration>>>,
}

/// The advisory lock namespace (the first key of the two-key form).
const LOCK_SPACE: i32 = 0x414f_4241; // "AOBA"
/// The transaction lock that serializes joins, removals and schema creation.
const LOCK_CHANGES: i64 = 0x414f_4241_0000_0001;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cluster_node (
    name text PRIMARY KEY,
    num int NOT NULL UNIQUE,
    incarnation bigint NOT NULL,
    backend_pid int NOT NULL,
    heartbeat_at timestamptz NOT NULL
);
ALTER TABLE cluster_node ADD COLUMN IF NOT EXISTS shards int NOT NULL DEFAULT 1;
ALTER TABLE cluster_node ADD COLUMN IF NOT EXISTS url text;
ALTER TABLE cluster_node ADD COLUMN IF NOT EXISTS admin_url text;
CREATE TABLE IF NOT EXISTS cluster_epoch (
    id int PRIMARY KEY CHECK (id = 1),
    epoch bigint NOT NULL
);
INSERT INTO cluster_epoch (id, epoch) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
";

fn pg_err(e: postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("postgres: {}", d.message()),
        None => format!("postgres: {e}"),
    }
}

fn connect(cfg: &MembershipConfig) -> Result<Client, String> {
    let mut pc: postgres::Config = cfg
        .postgres_url
        .parse()
        .map_err(|e| format!("postgres URL: {e}"))?;
    pc.connect_timeout(Duration::from_millis(cfg.connect_timeout_ms.max(1)));
    pc.application_name(&format!("aoba-member-{}", cfg.node));
    let mut c = pc.connect(NoTls).map_err(pg_err)?;
    // A heartbeat that cannot finish within the failure timeout is a failed one.
    c.batch_execute(&format!(
        "SET statement_timeout = {}",
        cfg.failure_timeout_ms.max(1)
    ))
    .map_err(pg_err)?;
    Ok(c)
}

fn bump_epoch(tx: &mut postgres::Transaction<'_>) -> Result<i64, postgres::Error> {
    tx.query_one(
        "UPDATE cluster_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
        &[],
    )?
    .try_get(0)
}

impl Membership {
    /// Joins (refused if another live process has this node's name) and starts the
    /// heartbeat thread. `on_view` gets the first view before this returns.
    pub fn join(
        cfg: MembershipConfig,
        mut on_view: OnView,
        on_fence: OnFence,
    ) -> Result<Membership, String> {
        if !super::bus::valid_name(&cfg.node) {
            return Err(format!(
                "node name {:?}: use 1 to 64 letters, digits, '-' or '_'",
                cfg.node
            ));
        }
        let mut c = connect(&cfg)?;
        {
            let mut tx = c.transaction().map_err(pg_err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_CHANGES])
                .map_err(pg_err)?;
            tx.batch_execute(SCHEMA).map_err(pg_err)?;
            tx.commit().map_err(pg_err)?;
        }
        let locked: bool = c
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&LOCK_SPACE, &cfg.node],
            )
            .and_then(|r| r.try_get(0))
            .map_err(pg_err)?;
        if !locked {
            return Err(format!(
                "node name {:?} is held by another live process",
                cfg.node
            ));
        }
        let me = {
            let mut tx = c.transaction().map_err(pg_err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_CHANGES])
                .map_err(pg_err)?;
            let row = tx
                .query_one(
                    "INSERT INTO cluster_node (name, num, incarnation, backend_pid, heartbeat_at, shards, url, admin_url)
                     VALUES ($1,
                             (SELECT COALESCE(MIN(n), 1) FROM generate_series(1, (SELECT COUNT(*) + 1 FROM cluster_node)::int) n
                              WHERE n NOT IN (SELECT num FROM cluster_node WHERE name <> $1)),
                             1, pg_backend_pid(), now(), $2, $3, $4)
                     ON CONFLICT (name) DO UPDATE SET incarnation = cluster_node.incarnation + 1,
                         backend_pid = pg_backend_pid(), heartbeat_at = now(), shards = $2, url = $3,
                         admin_url = $4
                     RETURNING num, incarnation",
                    &[&cfg.node, &(cfg.shards.max(1) as i32), &cfg.url, &cfg.admin_url],
                )
                .map_err(pg_err)?;
            let num: i32 = row.try_get(0).map_err(pg_err)?;
            if num > crate::storage::ARCHIVE_ID_NODES as i32 {
                // Rolled back with the transaction.
                return Err(format!(
                    "a cluster holds at most {} live nodes (archive ids carry the node's \
                     number in 4 bits): {:?} would be number {num}",
                    crate::storage::ARCHIVE_ID_NODES,
                    cfg.node
                ));
            }
            bump_epoch(&mut tx).map_err(pg_err)?;
            let me = Member {
                name: cfg.node.clone(),
                num,
                incarnation: row.try_get(1).map_err(pg_err)?,
                shards: cfg.shards.max(1),
            };
            tx.commit().map_err(pg_err)?;
            me
        };
        let mut first = read_view(&mut c).map_err(pg_err)?;
        first.archive_floor = archive_floor(&mut c);
        on_view(&first);
        tracing::info!(node = %me.name, num = me.num, incarnation = me.incarnation, epoch = first.epoch, "joined the cluster");
        let view = Arc::new(Mutex::new(first));
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new(Mutex::new(None));
        let (st, v, p, m) = (stop.clone(), view.clone(), pause.clone(), me.clone());
        let thread = std::thread::Builder::new()
            .name(format!("aoba-member-{}", cfg.node))
            .spawn(move || run(cfg, c, m, st, v, p, on_view, on_fence))
            .map_err(|e| e.to_string())?;
        Ok(Membership {
            stop,
            view,
            me,
            thread: Some(thread),
            pause,
        })
    }

    /// The latest view.
    pub fn view(&self) -> View {
        self.view.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn me(&self) -> &Member {
        &self.me
    }

    /// Leaves cleanly (row deleted, epoch bumped); also done on drop.
    pub fn leave(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.finish();
    }
}

fn read_view(c: &mut Client) -> Result<View, postgres::Error> {
    let epoch: i64 = c
        .query_one("SELECT epoch FROM cluster_epoch WHERE id = 1", &[])?
        .try_get(0)?;
    let mut members = Vec::new();
    let mut urls = Vec::new();
    let mut admin_urls = Vec::new();
    for r in c.query(
        "SELECT name, num, incarnation, shards, url, admin_url FROM cluster_node ORDER BY name",
        &[],
    )? {
        let shards: i32 = r.try_get(3)?;
        urls.push(r.try_get::<_, Option<String>>(4)?);
        admin_urls.push(r.try_get::<_, Option<String>>(5)?);
        members.push(Member {
            name: r.try_get(0)?,
            num: r.try_get(1)?,
            incarnation: r.try_get(2)?,
            shards: shards.clamp(1, u16::MAX as i32) as u16,
        });
    }
    Ok(View {
        epoch,
        members,
        urls,
        admin_urls,
        archive_floor: 0,
    })
}

#[allow(clippy::too_many_arguments)]
fn run(
    cfg: MembershipConfig,
    mut c: Client,
    me: Member,
    stop: Arc<AtomicBool>,
    view: Arc<Mutex<View>>,
    pause: Arc<Mutex<Option<Duration>>>,
    mut on_view: OnView,
    on_fence: OnFence,
) {
    let beat = Duration::from_millis(cfg.heartbeat_ms.max(1));
    let timeout = Duration::from_millis(cfg.failure_timeout_ms.max(1));
    let mut last_ok = Instant::now();
    let fence = |why: Fenced, on_fence: OnFence| {
        tracing::error!(node = %me.name, reason = ?why, "fenced: no longer a member");
        on_fence(why);
    };
    loop {
        // Sleep in small steps so a leave is quick.
        let until = Instant::now() + beat;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10).min(beat));
        }
        // Test hook: stall like a stopped process (no heartbeat, nothing written).
        if let Some(d) = pause.lock().ok().and_then(|mut p| p.take()) {
            std::thread::sleep(d);
        }
        // Woken after too long: others may have replaced us. Write nothing.
        let silent = last_ok.elapsed();
        if silent > timeout {
            return fence(Fenced::Silent(silent), on_fence);
        }
        if stop.load(Ordering::Relaxed) {
            let r = (|| -> Result<(), postgres::Error> {
                let mut tx = c.transaction()?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_CHANGES])?;
                let n = tx.execute(
                    "DELETE FROM cluster_node WHERE name = $1 AND incarnation = $2 AND backend_pid = pg_backend_pid()",
                    &[&me.name, &me.incarnation],
                )?;
                if n > 0 {
                    bump_epoch(&mut tx)?;
                }
                tx.commit()
            })();
            if let Err(e) = r {
                tracing::warn!(node = %me.name, error = %pg_err(e), "leaving the cluster");
            }
            tracing::info!(node = %me.name, "left the cluster");
            return;
        }
        match heartbeat(&mut c, &me, timeout) {
            Ok(Some(mut v)) => {
                last_ok = Instant::now();
                let changed = view.lock().map(|old| *old != v).unwrap_or(true);
                if changed {
                    v.archive_floor = archive_floor(&mut c);
                    tracing::info!(node = %me.name, epoch = v.epoch, members = ?v.names(), "cluster view");
                    on_view(&v);
                    if let Ok(mut old) = view.lock() {
                        *old = v;
                    }
                }
            }
            Ok(None) => {
                return fence(
                    Fenced::Lost("our row was removed or taken over".into()),
                    on_fence,
                );
            }
            Err(e) => return fence(Fenced::Lost(pg_err(e)), on_fence),
        }
    }
}

/// One heartbeat: `None` if our row is not ours any more; removes members silent longer
/// than `timeout`; the view after.
fn heartbeat(
    c: &mut Client,
    me: &Member,
    timeout: Duration,
) -> Result<Option<View>, postgres::Error> {
    let n = c.execute(
        "UPDATE cluster_node SET heartbeat_at = now()
         WHERE name = $1 AND incarnation = $2 AND backend_pid = pg_backend_pid()",
        &[&me.name, &me.incarnation],
    )?;
    if n == 0 {
        return Ok(None);
    }
    let ms = timeout.as_millis().min(i64::MAX as u128) as i64;
    let dead = c.query(
        "SELECT name, incarnation FROM cluster_node
         WHERE heartbeat_at < now() - make_interval(secs => $1::float8 / 1000)",
        &[&(ms as f64)],
    )?;
    if !dead.is_empty() {
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_CHANGES])?;
        let mut removed = 0;
        for r in &dead {
            let name: String = r.try_get(0)?;
            let inc: i64 = r.try_get(1)?;
            // Checked again under the lock: it may have come back or been removed.
            let gone = tx.query(
                "DELETE FROM cluster_node
                 WHERE name = $1 AND incarnation = $2
                   AND heartbeat_at < now() - make_interval(secs => $3::float8 / 1000)
                 RETURNING backend_pid",
                &[&name, &inc, &(ms as f64)],
            )?;
            for g in gone {
                let pid: i32 = g.try_get(0)?;
                // Its session, and with it its lock on the name, ends now: when it wakes
                // it finds its connection gone and fences itself.
                // (Only if that pid is still its membership session: a pid can be reused.)
                tx.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE pid = $1 AND application_name = $2",
                    &[&pid, &format!("aoba-member-{name}")],
                )?;
                tracing::warn!(node = %me.name, removed = %name, incarnation = inc, "a silent member was removed");
                removed += 1;
            }
        }
        if removed > 0 {
            bump_epoch(&mut tx)?;
        }
        tx.commit()?;
    }
    read_view(c).map(Some)
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
