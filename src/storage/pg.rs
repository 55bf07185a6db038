//! The PostgreSQL backend (issue 14, `storage.backend = "postgres"`), for deployments that
//! outgrow one machine. The synchronous `postgres` crate on the storage thread (its small
//! private runtime never touches a shard); one transaction per group-commit batch: the
//! first statement of a batch opens it, `commit` ends it, and replies leave only after
//! COMMIT succeeded (`thread.rs`).
//!
//! **A lost batch is replayed.** A failed COMMIT (or a statement that failed, which aborts
//! the transaction) rolls the whole batch back, unlike fjall, whose applied writes stay in
//! its journal and are made durable by the next successful fsync. So every write of the
//! open transaction is kept in a journal (resolved: an offline message keeps the sequence
//! it got) until COMMIT succeeds; the next transaction (after a reconnect when the
//! connection is gone) first replays it. Replays are idempotent (unique keys with `ON
//! CONFLICT DO NOTHING`, upserts, deletes by key), so a COMMIT whose outcome was unknown
//! does not store twice. A later commit that succeeds therefore covers every write before
//! it: a `Sync` (an ack, an iq result) answered `ok` never covers a write that was lost.
//! The journal is bounded (`storage.postgres_replay_max_bytes`); past it the process ends
//! (crash-only: nothing acknowledged depends on the journal, and clients resend what was
//! not acknowledged).
//!
//! Reads run on the writer's connection, inside the open transaction when there is one (a
//! session reads its own writes); no reader thread (see `docs/postgres.md`).

use super::{
    ArchiveItem, ArchivePage, ArchivePrefs, ArchiveQuery, Backend, Deleted, Result, RosterItem,
    StorageError,
};
use ops::{Conn, Op, delete_user};
use postgres::{Client, NoTls};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Connection settings and limits (from `StorageConfig`).
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub url: String,
    pub connect_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    pub reconnect_delay_ms: u64,
    pub replay_max_bytes: usize,
    pub prefs_cache_max: usize,
}

/// The schema, one migration per version, applied in order at start in one transaction.
/// Never edit a released migration: add the next one.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE users (username text PRIMARY KEY);
     CREATE TABLE offline (username text NOT NULL, seq bigint NOT NULL, stanza bytea NOT NULL,
         PRIMARY KEY (username, seq));
     CREATE TABLE roster_items (username text NOT NULL, jid text NOT NULL, item text NOT NULL,
         PRIMARY KEY (username, jid));
     CREATE TABLE roster_versions (username text PRIMARY KEY, version bigint NOT NULL);
     CREATE TABLE archive (owner text NOT NULL, id bigint NOT NULL, with_jid text NOT NULL,
         stanza bytea NOT NULL, PRIMARY KEY (owner, id));
     CREATE INDEX archive_by_id ON archive (id);
     CREATE TABLE archive_prefs (owner text PRIMARY KEY, prefs text NOT NULL);
     CREATE TABLE rooms (jid text PRIMARY KEY, data bytea NOT NULL);",
    ),
    (
        2,
        // Issue 14: a message routed again after a node's failure is archived once per owner.
        "ALTER TABLE archive ADD COLUMN uid bigint;
         CREATE UNIQUE INDEX archive_uid ON archive (owner, uid) WHERE uid IS NOT NULL;",
    ),
    (
        3,
        // Issue 14: and stored offline once per recipient.
        "ALTER TABLE offline ADD COLUMN uid bigint;
         CREATE UNIQUE INDEX offline_uid ON offline (username, uid) WHERE uid IS NOT NULL;",
    ),
];

const OFFLINE_PAGE_ROWS: i64 = 256;

mod ops;

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError(format!("postgres: {e}"))
}

fn id(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| err(format!("id {v} out of range")))
}

/// An error in the data of one write (class 22, 23): replaying it would fail forever.
fn is_data_error(e: &postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
}

enum Tx {
    /// No transaction open.
    Idle,
    Open,
    /// A statement failed (the transaction is aborted, or the connection gone): every
    /// operation fails at once until `commit` reports it.
    Failed(String),
}

struct Inner {
    conn: Option<Conn>,
    tx: Tx,
    /// The writes of the open (or lost) transaction, replayed by the next one.
    journal: Vec<Op>,
    journal_bytes: usize,
    prefs: HashMap<String, ArchivePrefs>,
    last_connect_failure: Option<Instant>,
}

pub struct PgBackend {
    opts: PgOptions,
    inner: RefCell<Inner>,
}

/// In a cluster, this node's membership (name, incarnation): every batch checks, in its
/// own transaction and just before COMMIT, that the row is still there (issue 14's fencing
/// token). A node the others removed (stopped, stalled, cut off) commits nothing more: it
/// exits instead. The row is read `FOR SHARE`, so a removal waits for a commit in progress
/// and the new home sees every write made while this node was a member.
static FENCE: std::sync::OnceLock<(String, i64)> = std::sync::OnceLock::new();

/// Called once the node has joined its cluster.
pub fn set_fence(name: &str, incarnation: i64) {
    let _ = FENCE.set((name.to_string(), incarnation));
}

/// The exit status of a fenced node.
pub const FENCED_EXIT: i32 = 3;

/// Connects, with the session settings Aoba relies on.
fn connect(opts: &PgOptions) -> Result<Conn> {
    let mut cfg: postgres::Config = opts.url.parse().map_err(err)?;
    cfg.connect_timeout(Duration::from_millis(opts.connect_timeout_ms.max(1)));
    if cfg.get_application_name().is_none() {
        cfg.application_name("aoba");
    }
    let mut client = cfg.connect(NoTls).map_err(err)?;
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}",
            opts.statement_timeout_ms
        ))
        .map_err(err)?;
    // "Done" means durable: never acknowledge from a commit the server may still lose.
    let sc: String = client
        .query_one("SHOW synchronous_commit", &[])
        .and_then(|r| r.try_get(0))
        .map_err(err)?;
    if sc == "off" {
        tracing::warn!("postgres: synchronous_commit was off for this role or database; set on");
        client
            .batch_execute("SET synchronous_commit = on")
            .map_err(err)?;
    }
    Ok(Conn {
        client,
        stmts: HashMap::new(),
    })
}

/// Applies the migrations the database does not have yet, in one transaction (an advisory
/// lock keeps two starting nodes from racing).
fn migrate(c: &mut Client) -> Result<()> {
    let mut tx = c.transaction().map_err(err)?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7411140014);
         CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now());",
    )
    .map_err(err)?;
    let have: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .and_then(|r| r.try_get(0))
        .map_err(err)?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if have > latest {
        return Err(err(format!(
            "the database has schema version {have}, newer than this Aoba knows ({latest})"
        )));
    }
    for (v, sql) in MIGRATIONS.iter().filter(|m| m.0 > have) {
        tx.batch_execute(sql).map_err(err)?;
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[v])
            .map_err(err)?;
        tracing::info!(version = v, "postgres: schema migrated");
    }
    tx.commit().map_err(err)
}

/// Makes sure `conn` is a live connection; after a failed attempt, waits
/// `reconnect_delay_ms` before the next one (a down server is not hammered, and the
/// storage queue fills, which shapes the clients).
fn ensure_conn<'a>(
    conn: &'a mut Option<Conn>,
    last_failure: &mut Option<Instant>,
    opts: &PgOptions,
) -> Result<&'a mut Conn> {
    if conn.as_ref().is_some_and(|c| c.client.is_closed()) {
        *conn = None;
    }
    if conn.is_none() {
        if let Some(t) = *last_failure {
            std::thread::sleep(
                Duration::from_millis(opts.reconnect_delay_ms).saturating_sub(t.elapsed()),
            );
        }
        match connect(opts) {
            Ok(c) => {
                *conn = Some(c);
                if last_failure.take().is_some() {
                    tracing::info!("postgres: reconnected");
                }
            }
            Err(e) => {
                *last_failure = Some(Instant::now());
                return Err(e);
            }
        }
    }
    conn.as_mut().ok_or_else(|| err("no connection"))
}

impl Inner {
    fn fail(&mut self, e: &postgres::Error) -> StorageError {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        let e = err(e);
        if matches!(self.tx, Tx::Open) {
            self.tx = Tx::Failed(e.0.clone());
        }
        e
    }

    /// Opens the batch's transaction (reconnecting if needed) and replays the journal.
    fn begin(&mut self, opts: &PgOptions) -> Result<()> {
        match &self.tx {
            Tx::Open => return Ok(()),
            Tx::Failed(e) => return Err(StorageError(e.clone())),
            Tx::Idle => {}
        }
        loop {
            let c = match ensure_conn(&mut self.conn, &mut self.last_connect_failure, opts) {
                Ok(c) => c,
                Err(e) => {
                    self.tx = Tx::Failed(e.0.clone());
                    return Err(e);
                }
            };
            let mut bad = c.client.batch_execute("BEGIN").err().map(|e| (None, e));
            if bad.is_none() {
                for (i, op) in self.journal.iter().enumerate() {
                    if let Err(e) = op.exec(c) {
                        bad = Some((Some(i), e));
                        break;
                    }
                }
            }
            match bad {
                None => {
                    if !self.journal.is_empty() {
                        tracing::info!(
                            writes = self.journal.len(),
                            "postgres: lost batch replayed"
                        );
                    }
                    self.tx = Tx::Open;
                    return Ok(());
                }
                Some((Some(i), e)) if is_data_error(&e) => {
                    // Refused for its data, it would fail every replay: dropped, logged.
                    let _ = c.client.batch_execute("ROLLBACK");
                    tracing::error!(error = %e, "postgres: a write the server refuses is dropped");
                    let op = self.journal.remove(i);
                    self.journal_bytes = self.journal_bytes.saturating_sub(op.bytes());
                }
                Some((_, e)) => {
                    self.tx = Tx::Open;
                    let e = self.fail(&e);
                    return Err(e);
                }
            }
        }
    }

    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut Conn) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let r = match self.conn.as_mut() {
            Some(c) => f(c),
            None => return Err(err("no connection")),
        };
        r.map_err(|e| self.fail(&e))
    }

    fn journal_push(&mut self, op: Op, max: usize) {
        self.journal_bytes += op.bytes();
        self.journal.push(op);
        if self.journal_bytes > max {
            // Nothing acknowledged depends on these writes; a process that keeps running
            // without them could acknowledge later ones as if they were stored.
            tracing::error!(
                bytes = self.journal_bytes,
                "postgres: writes not committed exceed storage.postgres_replay_max_bytes; \
                 exiting (crash-only: clients resend what was not acknowledged)"
            );
            std::process::exit(70);
        }
    }

    /// Rolls back whatever is open; the journal stays for the next transaction.
    fn rollback(&mut self) {
        if let Some(c) = self.conn.as_mut()
            && (c.client.is_closed() || c.client.batch_execute("ROLLBACK").is_err())
        {
            self.conn = None;
        }
        self.tx = Tx::Idle;
    }
}

impl PgBackend {
    /// Connects, applies the migrations, and keeps the connection for the storage thread.
    pub fn open(opts: PgOptions) -> Result<PgBackend> {
        let mut c = connect(&opts)?;
        migrate(&mut c.client)?;
        Ok(PgBackend {
            opts,
            inner: RefCell::new(Inner {
                conn: Some(c),
                tx: Tx::Idle,
                journal: Vec::new(),
                journal_bytes: 0,
                prefs: HashMap::new(),
                last_connect_failure: None,
            }),
        })
    }

    /// One write: run in the batch's transaction and journaled, also when it failed (the
    /// caller has no way to report it: it is replayed and committed by a later batch).
    fn write(&mut self, op: Op) -> Result<u64> {
        let g = self.inner.get_mut();
        let r = g.begin(&self.opts).and_then(|()| g.run(|c| op.exec(c)));
        g.journal_push(op, self.opts.replay_max_bytes);
        r
    }

    /// A read: in the open transaction (or the journal's) when there is one, so it sees
    /// this batch's writes; else on its own.
    fn read<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let mut g = self.inner.borrow_mut();
        let g = &mut *g;
        if matches!(g.tx, Tx::Idle) && g.journal.is_empty() {
            let c = ensure_conn(&mut g.conn, &mut g.last_connect_failure, &self.opts)?;
            return f(c).map_err(|e| g.fail(&e));
        }
        g.begin(&self.opts)?;
        g.run(f)
    }

    /// The writes held for replay (for the tests).
    #[cfg(test)]
    fn journal_len(&self) -> usize {
        self.inner.borrow().journal.len()
    }
}

impl Backend for PgBackend {
    fn record_user(&mut self, user: &str) -> Result<bool> {
        self.write(Op::RecordUser(user.to_string())).map(|n| n > 0)
    }

    fn users(&self) -> Result<Vec<String>> {
        self.read(|c| {
            c.query("SELECT username FROM users", &[])?
                .iter()
                .map(|r| r.try_get(0))
                .collect()
        })
    }

    fn user_known(&self, user: &str) -> Result<bool> {
        self.read(|c| {
            Ok(!c
                .query("SELECT 1 FROM users WHERE username = $1", &[&user])?
                .is_empty())
        })
    }

    fn offline_push(&mut self, user: &str, stanza: &[u8], quota: usize) -> Result<bool> {
        self.offline_push_once(user, stanza, quota, 0)
    }

    fn offline_push_once(
        &mut self,
        user: &str,
        stanza: &[u8],
        quota: usize,
        uid: u64,
    ) -> Result<bool> {
        let quota = i64::try_from(quota).unwrap_or(i64::MAX);
        let uid = (uid != 0).then_some(uid as i64);
        let g = self.inner.get_mut();
        g.begin(&self.opts)?;
        // Not journaled when it fails: the sender gets the message back (a bounce).
        let seq: Option<i64> = g.run(|c| {
            c.query(
                "INSERT INTO offline (username, seq, stanza, uid) \
                 SELECT $1, COALESCE(MAX(seq) + 1, 0), $2, $4 FROM offline WHERE username = $1 \
                 HAVING COUNT(*) < $3 \
                 ON CONFLICT (username, uid) WHERE uid IS NOT NULL DO NOTHING RETURNING seq",
                &[&user, &stanza, &quota, &uid],
            )?
            .first()
            .map(|r| r.try_get(0))
            .transpose()
        })?;
        let Some(seq) = seq else {
            // Nothing inserted: a copy with this message id is stored already (a retried
            // write after a node's failure), or the quota is full.
            let Some(uid) = uid else { return Ok(false) };
            return g.run(|c| {
                Ok(!c
                    .query(
                        "SELECT 1 FROM offline WHERE username = $1 AND uid = $2",
                        &[&user, &uid],
                    )?
                    .is_empty())
            });
        };
        g.journal_push(
            Op::OfflineRows {
                user: user.to_string(),
                seqs: vec![seq],
                stanzas: vec![stanza.to_vec()],
                uids: vec![uid],
            },
            self.opts.replay_max_bytes,
        );
        Ok(true)
    }

    fn offline_take(&mut self, user: &str, max_bytes: usize) -> Result<(Vec<Vec<u8>>, bool)> {
        let g = self.inner.get_mut();
        g.begin(&self.opts)?;
        let mut out = Vec::new();
        let (mut first, mut last) = (None, i64::MIN);
        let mut bytes = 0usize;
        let mut more = false;
        'pages: loop {
            let rows = g.run(|c| {
                c.query(
                    "SELECT seq, stanza FROM offline WHERE username = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                    &[&user, &last, &OFFLINE_PAGE_ROWS],
                )
            })?;
            let full = rows.len() as i64 == OFFLINE_PAGE_ROWS;
            for r in rows {
                let seq: i64 = r.try_get(0).map_err(err)?;
                let s: Vec<u8> = r.try_get(1).map_err(err)?;
                if !out.is_empty() && bytes.saturating_add(s.len()) > max_bytes {
                    more = true;
                    break 'pages;
                }
                bytes += s.len();
                first.get_or_insert(seq);
                last = seq;
                out.push(s);
            }
            if !full {
                break;
            }
        }
        if let Some(first) = first {
            // Journaled only once done: a take that failed delivers nothing.
            let op = Op::OfflineDelete {
                user: user.to_string(),
                first,
                last,
            };
            g.run(|c| op.exec(c))?;
            g.journal_push(op, self.opts.replay_max_bytes);
        }
        Ok((out, more))
    }

    fn offline_restore(&mut self, user: &str, stanzas: &[Vec<u8>]) -> Result<()> {
        if stanzas.is_empty() {
            return Ok(());
        }
        self.write(Op::OfflineRestore {
            user: user.to_string(),
            stanzas: stanzas.to_vec(),
        })
        .map(|_| ())
    }

    fn roster(&self, user: &str) -> Result<(u64, Vec<RosterItem>)> {
        let (version, items) = self.read(|c| {
            let v: Option<i64> = c
                .query(
                    "SELECT version FROM roster_versions WHERE username = $1",
                    &[&user],
                )?
                .first()
                .map(|r| r.try_get(0))
                .transpose()?;
            let items: Vec<String> = c
                .query(
                    "SELECT item FROM roster_items WHERE username = $1 ORDER BY jid",
                    &[&user],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
            Ok((v.unwrap_or(0), items))
        })?;
        let items = items
            .iter()
            .map(|s| serde_json::from_str(s).map_err(err))
            .collect::<Result<_>>()?;
        Ok((version.max(0) as u64, items))
    }

    fn roster_set(&mut self, user: &str, item: &RosterItem, version: u64) -> Result<()> {
        let op = Op::RosterSet {
            user: user.to_string(),
            jid: item.jid.clone(),
            item: serde_json::to_string(item).map_err(err)?,
            version: id(version)?,
        };
        self.write(op).map(|_| ())
    }

    fn roster_remove(&mut self, user: &str, contact: &str, version: u64) -> Result<()> {
        let op = Op::RosterRemove {
            user: user.to_string(),
            contact: contact.to_string(),
            version: id(version)?,
        };
        self.write(op).map(|_| ())
    }

    fn archive_append(&mut self, owner: &str, item: &ArchiveItem) -> Result<()> {
        self.archive_append_many(&[(owner.to_string(), item.clone())])
    }

    /// One statement for the whole run of appends (arrays unnested server-side).
    fn archive_append_many(&mut self, items: &[(String, ArchiveItem)]) -> Result<()> {
        let mut op = Op::Archive {
            owners: Vec::with_capacity(items.len()),
            ids: Vec::with_capacity(items.len()),
            withs: Vec::with_capacity(items.len()),
            stanzas: Vec::with_capacity(items.len()),
            uids: Vec::with_capacity(items.len()),
        };
        if let Op::Archive {
            owners,
            ids,
            withs,
            stanzas,
            uids,
        } = &mut op
        {
            for (owner, item) in items {
                owners.push(owner.clone());
                ids.push(id(item.id)?);
                withs.push(item.with.clone());
                stanzas.push(item.stanza.to_vec());
                uids.push(item.uid as i64);
            }
        }
        self.write(op).map(|_| ())
    }

    fn archive_query(&self, owner: &str, q: &ArchiveQuery) -> Result<ArchivePage> {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let lo = clamp(q.after_id.map_or(0, |a| a.saturating_add(1)));
        let hi = clamp(q.before_id.unwrap_or(u64::MAX));
        let want = q.max.max(1).saturating_add(1);
        let limit = clamp(want as u64);
        let with = q.with.as_deref();
        let rows = self.read(|c| {
            if q.from_end {
                c.query(
                    "SELECT id, with_jid, stanza FROM archive WHERE owner = $1 AND id >= $2 \
                     AND id < $3 AND ($4::text IS NULL OR with_jid = $4) \
                     ORDER BY id DESC LIMIT $5",
                    &[&owner, &lo, &hi, &with, &limit],
                )
            } else {
                c.query(
                    "SELECT id, with_jid, stanza FROM archive WHERE owner = $1 AND id >= $2 \
                     AND id < $3 AND ($4::text IS NULL OR with_jid = $4) \
                     ORDER BY id LIMIT $5",
                    &[&owner, &lo, &hi, &with, &limit],
                )
            }
        })?;
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get(0).map_err(err)?;
            let stanza: Vec<u8> = r.try_get(2).map_err(err)?;
            items.push(ArchiveItem {
                id: id.max(0) as u64,
                with: r.try_get(1).map_err(err)?,
                stanza: super::Parts::one(stanza),
                uid: 0,
            });
        }
        Ok(super::page_read(items, want, q.from_end))
    }

    /// Asked for every archived message (the writer checks them): cached, since this
    /// process is the only writer (bounded by `storage.postgres_prefs_cache_max`).
    fn archive_prefs(&self, owner: &str) -> Result<ArchivePrefs> {
        if let Some(p) = self.inner.borrow().prefs.get(owner) {
            return Ok(p.clone());
        }
        let stored: Option<String> = self.read(|c| {
            c.query(
                "SELECT prefs FROM archive_prefs WHERE owner = $1",
                &[&owner],
            )?
            .first()
            .map(|r| r.try_get(0))
            .transpose()
        })?;
        let prefs = match stored {
            Some(s) => serde_json::from_str(&s).map_err(err)?,
            None => ArchivePrefs::default(),
        };
        self.cache_prefs(owner, &prefs);
        Ok(prefs)
    }

    fn set_archive_prefs(&mut self, owner: &str, prefs: &ArchivePrefs) -> Result<()> {
        let op = Op::Prefs {
            owner: owner.to_string(),
            prefs: serde_json::to_string(prefs).map_err(err)?,
        };
        // Cached as set: the journal replays it if this batch is lost.
        self.cache_prefs(owner, prefs);
        self.write(op).map(|_| ())
    }

    fn archive_expire(&mut self, before_id: u64) -> Result<usize> {
        self.write(Op::Expire(id(before_id)?)).map(|n| n as usize)
    }

    fn rooms(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.read(|c| {
            c.query("SELECT jid, data FROM rooms ORDER BY jid", &[])?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
    }

    /// The archive preferences cached for owners whose home may have been another node
    /// meanwhile (which may have changed them).
    fn forget_cached(&mut self) {
        self.inner.get_mut().prefs.clear();
    }

    fn room(&self, jid: &str) -> Result<Option<Vec<u8>>> {
        self.read(|c| {
            c.query("SELECT data FROM rooms WHERE jid = $1", &[&jid])?
                .first()
                .map(|r| r.try_get(0))
                .transpose()
        })
    }

    fn room_put(&mut self, jid: &str, data: &[u8]) -> Result<()> {
        self.write(Op::RoomPut {
            jid: jid.to_string(),
            data: data.to_vec(),
        })
        .map(|_| ())
    }

    fn room_remove(&mut self, jid: &str) -> Result<()> {
        self.write(Op::RoomRemove(jid.to_string())).map(|_| ())
    }

    fn delete_user(&mut self, user: &str, bare: &str) -> Result<Deleted> {
        self.inner.get_mut().prefs.remove(bare);
        let g = self.inner.get_mut();
        g.begin(&self.opts)?;
        // Journaled once done; a failure is answered as one (the admin can retry).
        let d = g.run(|c| delete_user(c, user, bare))?;
        g.journal_push(
            Op::DeleteUser {
                user: user.to_string(),
                bare: bare.to_string(),
            },
            self.opts.replay_max_bytes,
        );
        Ok(d)
    }

    fn commit(&mut self) -> Result<()> {
        let g = self.inner.get_mut();
        if let Tx::Failed(e) = &g.tx {
            let e = StorageError(format!("not committed: {e}"));
            g.rollback();
            return Err(e);
        }
        if matches!(g.tx, Tx::Idle) {
            if g.journal.is_empty() {
                return Ok(());
            }
            // A lost batch: a commit retry replays it in a new transaction.
            g.begin(&self.opts)?;
        }
        if let Some((name, inc)) = FENCE.get() {
            let member = g.run(|c| {
                c.client.query_opt(
                    "SELECT 1 FROM cluster_node WHERE name = $1 AND incarnation = $2 FOR SHARE",
                    &[name, inc],
                )
            });
            match member {
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::error!(node = %name, "fenced: no longer a member of the cluster; nothing more is committed");
                    eprintln!("aoba: fenced (removed from the cluster): stopping");
                    std::process::exit(FENCED_EXIT);
                }
                Err(e) => {
                    g.rollback();
                    return Err(e);
                }
            }
        }
        let r = g.run(|c| c.client.batch_execute("COMMIT"));
        match r {
            Ok(()) => {
                g.tx = Tx::Idle;
                g.journal.clear();
                g.journal_bytes = 0;
                Ok(())
            }
            Err(e) => {
                g.rollback();
                Err(e)
            }
        }
    }
}

impl PgBackend {
    fn cache_prefs(&self, owner: &str, prefs: &ArchivePrefs) {
        let mut g = self.inner.borrow_mut();
        if g.prefs.len() >= self.opts.prefs_cache_max {
            g.prefs.clear();
        }
        g.prefs.insert(owner.to_string(), prefs.clone());
    }
}

#[cfg(test)]
#[path = "pg_tests.rs"]
mod tests;
