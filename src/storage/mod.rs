//! Storage: the narrow, typed interface every persistent feature goes through, and the
//! thread that runs it. Storage never runs on a shard thread: shards send requests to the
//! storage thread, which applies a batch, makes it durable once (group commit), and only
//! then answers through the asking shard's mailbox. A reply is therefore also an
//! acknowledgement: what it confirms survives `kill -9`.
//!
//! `Backend` is what an engine implements: the embedded default is fjall (`fjall.rs`);
//! `memory.rs` is a second implementation, `pg.rs` the PostgreSQL one (for deployments that
//! outgrow one machine), and `contract_tests` is the suite every backend must pass.

pub mod fjall;
pub mod memory;
pub mod pg;
mod thread;

/// The suite any backend must pass (run for fjall, memory and PostgreSQL).
#[cfg(test)]
pub(crate) mod contract_tests;

/// A throwaway PostgreSQL server for the tests (shared with the integration tests).
#[cfg(test)]
#[path = "../../tests/common/postgres.rs"]
pub(crate) mod pg_test;

pub use thread::{ReplyTo, start};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Persistence: the storage engine, the thread that runs it, and offline messages.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `fjall` keeps everything in `<data_dir>/db` (embedded, durable); `memory` loses it
    /// at exit; `postgres` keeps it in the PostgreSQL database at `postgres_url`
    /// (`docs/postgres.md`).
    pub backend: String,
    /// With `backend = "postgres"`: the connection, as a URL
    /// (`postgresql://user:password@host:port/dbname`) or key=value pairs
    /// (`host=... port=... user=... dbname=...`). Flag `--postgres URL` (which also selects
    /// the backend). The schema is created and migrated at start.
    pub postgres_url: String,
    /// Longest wait for a connection to PostgreSQL (at start and on a reconnect).
    #[schemars(range(min = 1))]
    pub postgres_connect_timeout_ms: u64,
    /// PostgreSQL's `statement_timeout` for Aoba's connection: a statement (a batch's
    /// insert, COMMIT) that takes longer fails, and the batch with it (its waiters get
    /// errors, it is replayed by the next one). 0: no limit.
    pub postgres_statement_timeout_ms: u64,
    /// Pause between two attempts to reconnect to PostgreSQL; the storage queue fills
    /// meanwhile and shapes the clients.
    #[schemars(range(min = 1))]
    pub postgres_reconnect_delay_ms: u64,
    /// Writes held for replay while PostgreSQL cannot commit (a lost batch is replayed by
    /// the next transaction). Past it the process exits (crash-only: nothing acknowledged
    /// is among them).
    #[schemars(range(min = 1048576))]
    pub postgres_replay_max_bytes: usize,
    /// Archive preferences cached by the writer (one lookup per archived message
    /// otherwise); the cache is emptied when it reaches this many owners.
    #[schemars(range(min = 1))]
    pub postgres_prefs_cache_max: usize,
    /// Offline messages kept per user; past it the sender gets `service-unavailable`.
    pub offline_quota: usize,
    /// Store offline messages for any valid localpart, also one that never logged in: with
    /// JWT auth the application owns the user list, and a user who signed up is messaged
    /// before their first login. `false`: only users seen before get offline messages
    /// (strict mode, for operators who provision users); others get `service-unavailable`.
    pub accept_unknown_users: bool,
    /// Distinct never-seen users one sender may leave offline messages for per hour
    /// (with `accept_unknown_users`); past it the sender gets `policy-violation` ("too many
    /// messages to users who never logged in"). Counted on each recipient's home shard, so
    /// with N shards a sender can reach up to N times this. Abuse is bounded by this and by
    /// `offline_quota` per recipient. (The count holds every recipient its shard does not
    /// remember, `users_cache_max`; past the limit storage still stores messages for
    /// recorded users, and refuses only users never seen.)
    pub max_unknown_recipients_per_hour: usize,
    /// Users each shard remembers as recorded (seen at a login, provisioned, or looked up),
    /// so that an offline message for them needs no lookup; the set is emptied when it
    /// reaches this many. Users are never all loaded: one not remembered is looked up by
    /// storage when it matters (strict mode, a sender past its strangers limit).
    #[schemars(range(min = 1))]
    pub users_cache_max: usize,
    /// Requests queued to the storage thread; past it requests wait in their shard's
    /// backlog (in order), or are refused where the sender can be told.
    #[schemars(range(min = 1))]
    pub queue_capacity: usize,
    /// Requests a shard holds for a full storage queue (a slow disk) before its
    /// connections stop reading until storage catches up (TCP pushes back on the clients).
    /// `/health` reports the backlog (`storage_backlog`).
    #[schemars(range(min = 1))]
    pub shard_backlog_max: usize,
    /// Most requests applied per group commit.
    #[schemars(range(min = 1))]
    pub batch_max: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: "fjall".into(),
            postgres_url: String::new(),
            postgres_connect_timeout_ms: 5000,
            postgres_statement_timeout_ms: 30000,
            postgres_reconnect_delay_ms: 1000,
            postgres_replay_max_bytes: 64 << 20,
            postgres_prefs_cache_max: 100_000,
            offline_quota: 1000,
            accept_unknown_users: true,
            max_unknown_recipients_per_hour: 100,
            users_cache_max: 100_000,
            queue_capacity: 65536,
            shard_backlog_max: 4096,
            batch_max: 1024,
        }
    }
}

impl StorageConfig {
    /// The engine is one `open` knows (ranges are checked by `Config::validate`).
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self.backend.as_str() {
            "fjall" | "memory" => Ok(()),
            "postgres" if self.postgres_url.trim().is_empty() => Err(
                "storage.backend = \"postgres\" needs storage.postgres_url (or --postgres URL)"
                    .into(),
            ),
            "postgres" => self
                .postgres_url
                .parse::<::postgres::Config>()
                .map(|_| ())
                .map_err(|e| format!("storage.postgres_url: {e}")),
            other => Err(format!(
                "storage.backend {other:?}: expected fjall, memory or postgres"
            )),
        }
    }

    /// The PostgreSQL backend's settings.
    pub fn pg_options(&self) -> pg::PgOptions {
        pg::PgOptions {
            url: self.postgres_url.clone(),
            connect_timeout_ms: self.postgres_connect_timeout_ms,
            statement_timeout_ms: self.postgres_statement_timeout_ms,
            reconnect_delay_ms: self.postgres_reconnect_delay_ms,
            replay_max_bytes: self.postgres_replay_max_bytes,
            prefs_cache_max: self.postgres_prefs_cache_max,
        }
    }
}

#[derive(Debug)]
pub struct StorageError(pub String);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// The reads sessions wait for (roster at login, archive pages), served by the storage
/// reader thread in parallel with the writer's commits. An engine whose data another
/// thread can read implements it (fjall); otherwise those reads stay on the writer.
pub trait Reader: Send + 'static {
    fn roster(&self, user: &str) -> Result<(u64, Vec<RosterItem>)>;
    fn archive_query(&self, owner: &str, q: &ArchiveQuery) -> Result<ArchivePage>;
}

/// What a storage engine implements. Called from the storage thread only.
pub trait Backend: Send + 'static {
    /// Records `user` (a localpart) at its first login; true if it was new.
    fn record_user(&mut self, user: &str) -> Result<bool>;
    /// Every recorded user (for tools and tests: the server reads users one at a time,
    /// `user_known`, never all of them).
    fn users(&self) -> Result<Vec<String>>;
    /// Whether `user` is recorded (a login or an admin's provisioning).
    fn user_known(&self, user: &str) -> Result<bool>;
    /// Appends an offline message unless `quota` are already stored; false when full.
    fn offline_push(&mut self, user: &str, stanza: &[u8], quota: usize) -> Result<bool>;

    /// `offline_push` of a message with a cluster-unique id (`uid`, 0 for none): a copy
    /// with the same id already stored for `user` (a write retried after a node's
    /// failure) is not stored again, and counts as stored. Backends of a single node,
    /// where nothing is retried, store it as `offline_push` does.
    fn offline_push_once(
        &mut self,
        user: &str,
        stanza: &[u8],
        quota: usize,
        uid: u64,
    ) -> Result<bool> {
        let _ = uid;
        self.offline_push(user, stanza, quota)
    }
    /// Removes and returns `user`'s oldest offline messages, at least one and then as many
    /// as fit in `max_bytes`; the flag says whether more are left.
    fn offline_take(&mut self, user: &str, max_bytes: usize) -> Result<(Vec<Vec<u8>>, bool)>;
    /// Puts messages a take returned back in front of `user`'s queue, in their order (the
    /// session they were for ended before it got them). Not bound by the quota.
    fn offline_restore(&mut self, user: &str, stanzas: &[Vec<u8>]) -> Result<()>;
    /// `user`'s roster: its version and items.
    fn roster(&self, user: &str) -> Result<(u64, Vec<RosterItem>)>;
    /// Adds or replaces one item and sets the roster's version.
    fn roster_set(&mut self, user: &str, item: &RosterItem, version: u64) -> Result<()>;
    /// Removes one item and sets the roster's version.
    fn roster_remove(&mut self, user: &str, contact: &str, version: u64) -> Result<()>;
    /// Appends to `owner`'s archive (a user's or a room's bare JID).
    fn archive_append(&mut self, owner: &str, item: &ArchiveItem) -> Result<()>;
    /// Several appends at once (the writer gathers a batch's consecutive appends); an
    /// engine with write batches makes this one write.
    fn archive_append_many(&mut self, items: &[(String, ArchiveItem)]) -> Result<()> {
        for (owner, item) in items {
            self.archive_append(owner, item)?;
        }
        Ok(())
    }
    /// One page of `owner`'s archive.
    fn archive_query(&self, owner: &str, q: &ArchiveQuery) -> Result<ArchivePage>;
    /// `owner`'s archiving preferences (XEP-0313 §7); the default when never set.
    fn archive_prefs(&self, owner: &str) -> Result<ArchivePrefs>;
    fn set_archive_prefs(&mut self, owner: &str, prefs: &ArchivePrefs) -> Result<()>;
    /// Deletes archived messages older than `before_id` (retention).
    fn archive_expire(&mut self, before_id: u64) -> Result<usize>;
    /// Every persistent room (room JID → the MUC service's own encoding): for the
    /// service's public directory, read once; rooms themselves load one at a time (`room`).
    fn rooms(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// One persistent room, if stored.
    fn room(&self, jid: &str) -> Result<Option<Vec<u8>>>;
    /// Drops what the backend caches of rows other processes may have changed since (a
    /// cluster's view changed: homes moved, and another node may have written for them).
    fn forget_cached(&mut self) {}
    fn room_put(&mut self, jid: &str, data: &[u8]) -> Result<()>;
    fn room_remove(&mut self, jid: &str) -> Result<()>;
    /// Deletes everything stored for `user` (a localpart; `bare` is its bare JID, the
    /// owner of its archive): its record, roster, offline messages, archive and archive
    /// preferences. The roster's version is kept and bumped (a number, not data): a
    /// client's cached roster of the old account is never taken for the current one.
    fn delete_user(&mut self, user: &str, bare: &str) -> Result<Deleted>;
    /// A reader for the reader thread, if this engine can be read from another thread.
    fn reader(&self) -> Option<Box<dyn Reader>> {
        None
    }
    /// Makes every change so far durable. Replies are sent only after it returns.
    fn commit(&mut self) -> Result<()>;
}

/// Opens the configured engine; fjall keeps its files in `<data_dir>/db`.
pub fn open(
    cfg: &StorageConfig,
    data_dir: &std::path::Path,
) -> std::result::Result<Box<dyn Backend>, String> {
    match cfg.backend.as_str() {
        "fjall" => {
            let dir = data_dir.join("db");
            Ok(Box::new(
                fjall::FjallBackend::open(&dir).map_err(|e| format!("{}: {e}", dir.display()))?,
            ))
        }
        "memory" => Ok(Box::new(memory::MemoryBackend::default())),
        "postgres" => Ok(Box::new(
            pg::PgBackend::open(cfg.pg_options()).map_err(|e| e.to_string())?,
        )),
        other => Err(format!(
            "storage.backend {other:?}: expected fjall, memory or postgres"
        )),
    }
}

/// Bytes held as shared parts, concatenated only where they are written: a stanza the
/// shards already hold (and a small insertion such as its `<stanza-id/>`) goes to the
/// disk without being copied on the shard. One part inline (what a read gives back, so an
/// archive page's items stay small); several spill to one small allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts(pub smallvec::SmallVec<[Bytes; 1]>);

impl Parts {
    pub fn one(b: impl Into<Bytes>) -> Parts {
        Parts(smallvec::smallvec![b.into()])
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the concatenation to `v`.
    pub fn write_to(&self, v: &mut Vec<u8>) {
        for p in &self.0 {
            v.extend_from_slice(p);
        }
    }

    /// One buffer: the part itself when there is one (no copy), else the concatenation.
    pub fn into_bytes(self) -> Bytes {
        match <[Bytes; 1]>::try_from(self.0.into_vec()) {
            Ok([one]) => one,
            Err(parts) => {
                let mut v = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
                for p in &parts {
                    v.extend_from_slice(p);
                }
                Bytes::from(v)
            }
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.write_to(&mut v);
        v
    }
}

/// One archived message (XEP-0313).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveItem {
    /// Time-ordered, unique per store (see `archive_id`).
    pub id: u64,
    /// The bare JID of the other party (for a room: the sender's occupant JID).
    pub with: String,
    /// The stanza as delivered.
    pub stanza: Parts,
    /// The message's cluster-unique id (`Routed::uid`; 0: none): a backend shared by
    /// several nodes stores an (owner, uid) once.
    pub uid: u64,
}

/// Cuts one page out of the matching items (oldest first), from either end.
pub(crate) fn page<'a>(
    matching: impl DoubleEndedIterator<Item = &'a ArchiveItem>,
    q: &ArchiveQuery,
) -> ArchivePage {
    let max = q.max.max(1);
    let mut items: Vec<ArchiveItem> = if q.from_end {
        let mut v: Vec<ArchiveItem> = matching.rev().take(max + 1).cloned().collect();
        v.reverse();
        v
    } else {
        matching.take(max + 1).cloned().collect()
    };
    let complete = items.len() <= max;
    if !complete {
        if q.from_end {
            items.remove(0);
        } else {
            items.pop();
        }
    }
    ArchivePage { items, complete }
}

/// A page read in query order with one item more than asked for when the range goes on
/// (`want` = max + 1), as the engines read it: drops that extra one and puts the page
/// oldest first.
pub(crate) fn page_read(mut items: Vec<ArchiveItem>, want: usize, from_end: bool) -> ArchivePage {
    let complete = items.len() < want;
    if !complete {
        items.pop();
    }
    if from_end {
        items.reverse();
    }
    ArchivePage { items, complete }
}

/// XEP-0313 §7 preferences: archive everything (`always`) or nothing (`never`) by
/// default, with JIDs that are always or never archived whatever the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivePrefs {
    pub default_always: bool,
    pub always: Vec<String>,
    pub never: Vec<String>,
}

impl Default for ArchivePrefs {
    fn default() -> Self {
        ArchivePrefs {
            default_always: true,
            always: Vec::new(),
            never: Vec::new(),
        }
    }
}

impl ArchivePrefs {
    pub fn archives(&self, with: &str) -> bool {
        let bare = with.split('/').next().unwrap_or(with);
        if self.never.iter().any(|j| j == bare) {
            return false;
        }
        self.default_always || self.always.iter().any(|j| j == bare)
    }
}

/// A MAM query (XEP-0313 §4 with XEP-0059 paging). Ids bound the range exclusively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveQuery {
    pub with: Option<String>,
    pub after_id: Option<u64>,
    pub before_id: Option<u64>,
    pub max: usize,
    /// Page from the end (the newest `max`), for RSM `<before/>`.
    pub from_end: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchivePage {
    pub items: Vec<ArchiveItem>,
    /// No more items in the queried range beyond this page.
    pub complete: bool,
}

/// The cluster nodes an archive id tells apart (its node number, 1 to this, in 4 bits; 0
/// when not clustered).
pub const ARCHIVE_ID_NODES: u16 = 15;

/// Ids: milliseconds since 1970 in the high 44 bits, then 4 bits of cluster node, 8 of
/// shard and 8 of counter, so they sort by time and never collide across shards or nodes
/// (an owner's old and new home may both write in the same millisecond). `last` keeps them
/// increasing when more than 256 are made in one millisecond (they run ahead of the clock
/// until it catches up), and above a floor (`raise_archive_floor`).
pub fn archive_id(node: u16, shard: usize, last: &std::cell::Cell<u64>) -> u64 {
    let ms = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
        + crate::fault::clock_skew_ms()) as u64;
    let writer = ((node as u64 & 0xf) << 16) | ((shard as u64 & 0xff) << 8);
    let base = (ms << 20) | writer;
    let prev = last.get();
    let id = if base > prev {
        base
    } else if prev & 0xfff00 == writer && prev & 0xff < 0xff {
        prev + 1
    } else {
        ((prev >> 20) + 1) << 20 | writer
    };
    last.set(id);
    id
}

/// The id of the first archive entry at or after `ms` milliseconds since 1970.
pub fn archive_id_at(ms: u64) -> u64 {
    ms << 20
}

/// Milliseconds since 1970 of an archive id.
pub fn archive_id_ms(id: u64) -> u64 {
    id >> 20
}

/// What `Backend::delete_user` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// The user's record (provisioned, or seen at a login) was there.
    pub user: bool,
    /// Roster entries (pending requests included).
    pub roster: usize,
    pub offline: usize,
    pub archive: usize,
}

/// RFC 6121 subscription states (§3, Appendix A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Subscription {
    #[default]
    None,
    To,
    From,
    Both,
}

impl Subscription {
    pub fn name(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }
    /// The contact receives the user's presence.
    pub fn has_from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }
    /// The user receives the contact's presence.
    pub fn has_to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }
}

/// One roster entry of a user (a bare JID), with the subscription state both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RosterItem {
    pub jid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub subscription: Subscription,
    /// The user asked to subscribe and the contact has not answered (pending out).
    #[serde(default)]
    pub ask: bool,
    /// The contact asked to subscribe and the user has not answered (pending in).
    #[serde(default)]
    pub pending_in: bool,
    /// In the user's roster (an entry may exist only to remember a pending-in request).
    #[serde(default)]
    pub listed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// A request from a shard. `shard` is where the reply goes.
pub enum Request {
    RecordUser {
        user: String,
    },
    /// Store `stanza` (already stamped with its XEP-0203 delay) for `user`; on a full quota
    /// the reply carries it back for a bounce. Plain bytes: storage knows no stanza types.
    StoreOffline {
        user: String,
        stanza: Parts,
        shard: usize,
        /// The message's id (`Routed::uid`): stored once per recipient.
        uid: u64,
        /// What to do when `user` is not recorded (the shard did not know it yet).
        if_unknown: IfUnknown,
    },
    /// Whether `user` is recorded (`record`: record it, and whether it was new); answered
    /// with `Reply::User` after the batch's commit.
    User {
        user: String,
        record: bool,
        shard: usize,
        token: u64,
    },
    /// Put taken offline messages back in front of `user`'s queue, in order.
    RestoreOffline {
        user: String,
        stanzas: Vec<Vec<u8>>,
    },
    /// Deliver `user`'s oldest offline messages (up to `max_bytes`) to session `to`, the one
    /// on connection `conn` (a later session that binds the same resource is not it).
    TakeOffline {
        user: String,
        to: String,
        conn: u64,
        shard: usize,
        max_bytes: usize,
    },
    /// Every stored room, for the service's public directory (read once, on the
    /// service's home shard; `token` 0) or an admin call (`token`): answered with
    /// `Reply::Rooms`.
    RoomsLoad {
        shard: usize,
        token: u64,
    },
    /// One stored room, for its home shard (rooms load on demand): answered with
    /// `Reply::Room`.
    RoomLoad {
        jid: String,
        shard: usize,
    },
    /// Load `user`'s roster for the shard's cache.
    RosterLoad {
        user: String,
        shard: usize,
    },
    RosterSet {
        user: String,
        item: RosterItem,
        version: u64,
    },
    RosterRemove {
        user: String,
        contact: String,
        version: u64,
    },
    ArchiveAppend {
        owner: String,
        item: ArchiveItem,
    },
    RoomPut {
        jid: String,
        data: Vec<u8>,
    },
    RoomRemove {
        jid: String,
    },
    /// Read (`set: None`) or replace `owner`'s preferences; the reply carries them.
    ArchivePrefs {
        owner: String,
        set: Option<ArchivePrefs>,
        shard: usize,
        reply: ArchiveReplyTo,
    },
    /// A page for session `to`; the shard renders it.
    ArchiveQuery {
        owner: String,
        query: ArchiveQuery,
        shard: usize,
        reply: ArchiveReplyTo,
    },
    /// Deletes everything stored for `user` (a localpart; `bare`: its bare JID) and
    /// answers `token` with what was deleted, once that is durable.
    DeleteUser {
        user: String,
        bare: String,
        shard: usize,
        token: u64,
    },
    /// A cluster's view changed: caches of other homes' rows are dropped
    /// (`Backend::forget_cached`).
    ViewChanged,
    /// Answer `token` once everything queued before is durable (a barrier).
    Sync {
        shard: usize,
        token: u64,
    },
    /// Flush and stop (graceful shutdown).
    Stop,
}

/// An offline message for a user its shard does not know to be recorded (it does not
/// load every user: `offline::Offline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfUnknown {
    /// Store it anyway (a known user, or a stranger the sender may still message).
    Store,
    /// Strict mode (`accept_unknown_users = false`): only for a recorded user; otherwise
    /// it comes back (`Reply::UnknownUser`).
    Refuse,
    /// The sender reached its strangers-per-hour limit: only for a recorded user.
    RefuseStranger,
}

/// Where a MAM page goes and how to label it.
#[derive(Debug, Clone)]
pub struct ArchiveReplyTo {
    /// The requester's full JID.
    pub to: String,
    /// The archive's JID (the user's bare JID, or the room's).
    pub from: String,
    pub queryid: Option<String>,
    /// The iq's raw `id='…'` attribute.
    pub iq_id: String,
}

pub enum Reply {
    Prefs {
        prefs: ArchivePrefs,
        reply: ArchiveReplyTo,
    },
    /// The preferences could not be stored (a failed commit).
    PrefsFailed {
        reply: ArchiveReplyTo,
    },
    Archive {
        page: ArchivePage,
        reply: ArchiveReplyTo,
    },
    Roster {
        user: String,
        version: u64,
        items: Vec<RosterItem>,
    },
    /// An offline message not stored (quota full, or an engine error), for a bounce.
    QuotaExceeded(Bytes),
    /// An offline message not stored: its user is not recorded (`IfUnknown::Refuse`, or
    /// `RefuseStranger` when `stranger`).
    UnknownUser {
        stanza: Bytes,
        stranger: bool,
    },
    /// `user` is recorded (learnt while storing an offline message): the shard may
    /// remember it.
    KnownUser(String),
    /// The answer to `Request::User` (`None`: the read or the commit failed).
    User {
        token: u64,
        known: Option<bool>,
    },
    Failed(Bytes),
    Offline {
        to: String,
        conn: u64,
        stanzas: Vec<Bytes>,
        more: bool,
    },
    /// A `DeleteUser` is durable (`None`: it failed, or its commit did).
    UserDeleted {
        token: u64,
        deleted: Option<Deleted>,
    },
    /// The stored rooms (`RoomsLoad`).
    Rooms {
        token: u64,
        rooms: Vec<(String, Vec<u8>)>,
    },
    /// A stored room (`RoomLoad`): `data` if stored; `ok` false when the read failed.
    Room {
        jid: String,
        data: Option<Vec<u8>>,
        ok: bool,
    },
    /// A barrier's batch was committed (`ok`), or the commit failed.
    Synced {
        token: u64,
        ok: bool,
    },
}

/// The shards' side: a bounded queue to the storage thread.
#[derive(Clone)]
pub struct StorageHandle {
    tx: crossbeam_channel::Sender<(usize, Request)>,
    /// The reader thread's queue, when the engine has a reader.
    reader: Option<crossbeam_channel::Sender<(u64, Request)>>,
    /// Per sending thread (shard, plus one slot for any other thread): writer requests
    /// sent (the writer counts what it applied). A read waits until everything its thread sent
    /// before it is applied, so a session reads its own writes.
    sent: Arc<[AtomicU64]>,
}

thread_local! {
    static CURRENT_SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Called once by each shard thread, so storage can order its reads after its writes.
pub fn set_current_shard(id: usize) {
    CURRENT_SHARD.with(|c| c.set(id));
}

impl StorageHandle {
    /// Never blocks; `Err` gives the request back when the queue is full (so the caller can
    /// retry, or bounce the stanza it carries: it is large on purpose).
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, r: Request) -> std::result::Result<(), Request> {
        let slot = CURRENT_SHARD.with(|c| c.get()).min(self.sent.len() - 1);
        match (&self.reader, &r) {
            (Some(reader), Request::RosterLoad { .. } | Request::ArchiveQuery { .. }) => {
                let after = self.sent[slot].load(Ordering::Acquire);
                reader.try_send((after, r)).map_err(|e| e.into_inner().1)
            }
            _ => {
                self.tx.try_send((slot, r)).map_err(|e| e.into_inner().1)?;
                self.sent[slot].fetch_add(1, Ordering::Release);
                Ok(())
            }
        }
    }

    /// Blocking, for shutdown (off the shard threads).
    pub fn stop(&self) {
        let slot = self.sent.len() - 1;
        let _ = self.tx.send((slot, Request::Stop));
    }
}

#[cfg(test)]
mod id_tests {
    use super::*;
    use std::cell::Cell;

    /// Bits of an id below its millisecond: writer and counter.
    fn low(id: u64) -> u64 {
        id - archive_id_at(archive_id_ms(id))
    }

    /// Two homes of one owner (same shard number, different nodes) writing in the same
    /// millisecond make different ids; so do the shards of one node.
    #[test]
    fn ids_of_different_nodes_and_shards_never_collide() {
        let mut lows = std::collections::HashSet::new();
        for node in 0..=ARCHIVE_ID_NODES {
            for shard in [0, 1, 255] {
                assert!(lows.insert(low(archive_id(node, shard, &Cell::new(0)))));
            }
        }
        // One writer: increasing, also past 256 in one millisecond.
        let last = Cell::new(0);
        let ids: Vec<u64> = (0..1000).map(|_| archive_id(3, 7, &last)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|i| (low(*i) >> 8) == (3 << 8 | 7)));
    }

    /// A floor from another writer (an owner's old home, its clock ahead): the next id is
    /// above it and still carries this writer, so it cannot collide with the old home's.
    #[test]
    fn ids_continue_above_a_raised_floor() {
        let now = archive_id(0, 0, &Cell::new(0));
        let floor = archive_id_at(archive_id_ms(now) + 60_000) | (2 << 16) | (5 << 8) | 17;
        let last = Cell::new(floor);
        let a = archive_id(1, 5, &last);
        let b = archive_id(1, 5, &last);
        assert!(floor < a && a < b, "{floor:x} {a:x} {b:x}");
        assert_eq!(low(a) >> 8, 1 << 8 | 5);
    }
}
