//! The storage threads: the writer (batches, group commit, retries, archive retention)
//! and the reader (roster loads and archive pages, ordered after the writes their shard
//! sent before them). Replies go back through `ReplyTo`.

use super::{
    ArchiveItem, ArchivePage, Backend, IfUnknown, Reader, Reply, Request, StorageConfig,
    StorageError, StorageHandle, archive_id_at,
};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where storage replies go: `(shard, reply)`, `Err` giving the reply back when that
/// shard's mailbox is full (the storage thread retries). Called on the storage threads.
pub type ReplyTo = Arc<dyn Fn(usize, Reply) -> std::result::Result<(), Reply> + Send + Sync>;

/// Starts the storage thread for `shards` shards. Replies go through `reply_to`.
pub fn start(
    mut backend: Box<dyn Backend>,
    cfg: &StorageConfig,
    retention_s: u64,
    shards: usize,
    reply_to: ReplyTo,
) -> (StorageHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = crossbeam_channel::bounded::<(usize, Request)>(cfg.queue_capacity);
    let slots = shards + 1;
    let sent: Arc<[AtomicU64]> = (0..slots).map(|_| AtomicU64::new(0)).collect();
    let applied: Arc<[AtomicU64]> = (0..slots).map(|_| AtomicU64::new(0)).collect();
    let reader = backend
        .reader()
        .map(|r| start_reader(r, cfg.queue_capacity, applied.clone(), reply_to.clone()));
    let applied_w = applied.clone();
    // Archive retention runs here, on the writer thread, every quarter of the retention
    // period (at most hourly).
    let retention_every = Duration::from_secs((retention_s / 4).clamp(1, 3600));
    let mut next_retention = std::time::Instant::now();
    let quota = cfg.offline_quota;
    let batch_max = cfg.batch_max.max(1);
    let fail_commits = crate::fault::fail_commits();
    let commit_delay = crate::fault::commit_delay();
    let t = std::thread::Builder::new()
        .name("storage".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(batch_max);
            let mut replies: Vec<(usize, Reply)> = Vec::new();
            let mut stop = false;
            while !stop {
                if retention_s > 0 && std::time::Instant::now() >= next_retention {
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_millis() as u64;
                    let cutoff = archive_id_at(now_ms.saturating_sub(retention_s * 1000));
                    match backend
                        .archive_expire(cutoff)
                        .and_then(|n| backend.commit().map(|_| n))
                    {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(deleted = n, "storage: archive retention"),
                        Err(e) => tracing::error!(error = %e, "storage: archive retention"),
                    }
                    next_retention = std::time::Instant::now() + retention_every;
                }
                let first = match rx.recv_timeout(if retention_s > 0 {
                    retention_every
                } else {
                    Duration::from_secs(3600)
                }) {
                    Ok(r) => r,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                };
                batch.push(first);
                while batch.len() < batch_max {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                crate::metrics::storage().queue_depth.set(rx.len() as i64);
                let applied_now = applied_w.clone();
                // Consecutive archive appends go to the engine as one write; they count as
                // applied when that write is done, before any later request is applied.
                let mut appends: Vec<(String, ArchiveItem)> = Vec::new();
                let mut append_slots: Vec<usize> = Vec::new();
                for (slot, req) in batch.drain(..) {
                    if let Request::ArchiveAppend { owner, item } = req {
                        let keep = backend
                            .archive_prefs(&owner)
                            .map(|p| p.archives(&item.with))
                            .unwrap_or(true);
                        if keep {
                            appends.push((owner, item));
                            append_slots.push(slot);
                        } else {
                            applied_now[slot].fetch_add(1, Ordering::Release);
                        }
                        continue;
                    }
                    flush_appends(&mut *backend, &mut appends, &mut append_slots, &applied_now);
                    // Counted as applied once its effect is in the engine (reads see it;
                    // durability comes with the commit below).
                    let _count = ApplyGuard(&applied_now[slot]);
                    match req {
                        Request::RecordUser { user } => {
                            if let Err(e) = backend.record_user(&user) {
                                tracing::error!(error = %e, "storage: record user");
                            }
                        }
                        Request::StoreOffline {
                            user,
                            stanza,
                            shard,
                            uid,
                            if_unknown,
                        } => {
                            let stanza = stanza.into_bytes();
                            if if_unknown != IfUnknown::Store {
                                match backend.user_known(&user) {
                                    Ok(true) => {
                                        replies.push((shard, Reply::KnownUser(user.clone())))
                                    }
                                    Ok(false) => {
                                        let stranger = if_unknown == IfUnknown::RefuseStranger;
                                        replies
                                            .push((shard, Reply::UnknownUser { stanza, stranger }));
                                        continue;
                                    }
                                    Err(e) => {
                                        tracing::error!(error = %e, "storage: user lookup");
                                        replies.push((shard, Reply::Failed(stanza)));
                                        continue;
                                    }
                                }
                            }
                            match backend.offline_push_once(&user, &stanza, quota, uid) {
                                Ok(true) => {}
                                Ok(false) => replies.push((shard, Reply::QuotaExceeded(stanza))),
                                Err(e) => {
                                    tracing::error!(error = %e, "storage: offline push");
                                    replies.push((shard, Reply::Failed(stanza)));
                                }
                            }
                        }
                        Request::RestoreOffline { user, stanzas } => {
                            if let Err(e) = backend.offline_restore(&user, &stanzas) {
                                tracing::error!(error = %e, "storage: offline restore");
                            }
                        }
                        Request::TakeOffline {
                            user,
                            to,
                            conn,
                            shard,
                            max_bytes,
                        } => match backend.offline_take(&user, max_bytes) {
                            Ok((v, _)) if v.is_empty() => {}
                            Ok((v, more)) => {
                                let stanzas = v.into_iter().map(Bytes::from).collect();
                                replies.push((
                                    shard,
                                    Reply::Offline {
                                        to,
                                        conn,
                                        stanzas,
                                        more,
                                    },
                                ));
                            }
                            Err(e) => tracing::error!(error = %e, "storage: offline take"),
                        },
                        Request::User {
                            user,
                            record,
                            shard,
                            token,
                        } => {
                            let r = if record {
                                backend.record_user(&user)
                            } else {
                                backend.user_known(&user)
                            };
                            let known = r
                                .map_err(|e| tracing::error!(error = %e, "storage: user"))
                                .ok();
                            replies.push((shard, Reply::User { token, known }));
                        }
                        Request::ViewChanged => backend.forget_cached(),
                        Request::Sync { shard, token } => {
                            replies.push((shard, Reply::Synced { token, ok: true }))
                        }
                        Request::DeleteUser {
                            user,
                            bare,
                            shard,
                            token,
                        } => {
                            let deleted = backend
                                .delete_user(&user, &bare)
                                .map_err(|e| tracing::error!(error = %e, "storage: delete user"))
                                .ok();
                            replies.push((shard, Reply::UserDeleted { token, deleted }));
                        }
                        Request::RosterLoad { user, shard } => match backend.roster(&user) {
                            Ok((version, items)) => replies.push((
                                shard,
                                Reply::Roster {
                                    user,
                                    version,
                                    items,
                                },
                            )),
                            Err(e) => {
                                tracing::error!(error = %e, "storage: roster load");
                                replies.push((
                                    shard,
                                    Reply::Roster {
                                        user,
                                        version: 0,
                                        items: Vec::new(),
                                    },
                                ));
                            }
                        },
                        Request::RosterSet {
                            user,
                            item,
                            version,
                        } => {
                            if let Err(e) = backend.roster_set(&user, &item, version) {
                                tracing::error!(error = %e, "storage: roster set");
                            }
                        }
                        Request::RosterRemove {
                            user,
                            contact,
                            version,
                        } => {
                            if let Err(e) = backend.roster_remove(&user, &contact, version) {
                                tracing::error!(error = %e, "storage: roster remove");
                            }
                        }
                        Request::ArchiveAppend { .. } => {} // gathered above
                        Request::ArchiveQuery {
                            owner,
                            query,
                            shard,
                            reply,
                        } => match backend.archive_query(&owner, &query) {
                            Ok(page) => replies.push((shard, Reply::Archive { page, reply })),
                            Err(e) => {
                                tracing::error!(error = %e, "storage: archive query");
                                replies.push((
                                    shard,
                                    Reply::Archive {
                                        page: ArchivePage::default(),
                                        reply,
                                    },
                                ));
                            }
                        },
                        Request::ArchivePrefs {
                            owner,
                            set,
                            shard,
                            reply,
                        } => {
                            let r = match set {
                                Some(p) => backend.set_archive_prefs(&owner, &p).map(|_| p),
                                None => backend.archive_prefs(&owner),
                            };
                            match r {
                                Ok(prefs) => replies.push((shard, Reply::Prefs { prefs, reply })),
                                Err(e) => tracing::error!(error = %e, "storage: archive prefs"),
                            }
                        }
                        Request::RoomLoad { jid, shard } => {
                            // Always answered: the shard holds the room's stanzas until then.
                            if let Some(d) = crate::fault::read_delay() {
                                std::thread::sleep(d);
                            }
                            let read = if crate::fault::fail_room_reads() {
                                Err(StorageError("injected room read failure".into()))
                            } else {
                                backend.room(&jid)
                            };
                            let (data, ok) = match read {
                                Ok(d) => (d, true),
                                Err(e) => {
                                    tracing::error!(error = %e, room = %jid, "storage: room load");
                                    (None, false)
                                }
                            };
                            replies.push((shard, Reply::Room { jid, data, ok }));
                        }
                        Request::RoomsLoad { shard, token } => {
                            // Always answered: the shard holds its rooms' stanzas until then.
                            let rooms = backend.rooms().unwrap_or_else(|e| {
                                tracing::error!(error = %e, "storage: rooms load");
                                Vec::new()
                            });
                            replies.push((shard, Reply::Rooms { token, rooms }));
                        }
                        Request::RoomPut { jid, data } => {
                            if let Err(e) = backend.room_put(&jid, &data) {
                                tracing::error!(error = %e, "storage: room put");
                            }
                        }
                        Request::RoomRemove { jid } => {
                            if let Err(e) = backend.room_remove(&jid) {
                                tracing::error!(error = %e, "storage: room remove");
                            }
                        }
                        Request::Stop => stop = true,
                    }
                }
                flush_appends(&mut *backend, &mut appends, &mut append_slots, &applied_now);
                // Group commit: one fsync for the whole batch, before any reply leaves. A
                // commit that keeps failing acknowledges nothing: every barrier of the batch
                // is answered as failed (its waiters answer with errors instead of waiting).
                if let Some(d) = commit_delay {
                    std::thread::sleep(d);
                }
                if !commit_with_retries(&mut *backend, fail_commits) {
                    for (_, r) in replies.iter_mut() {
                        match r {
                            Reply::Synced { ok, .. } => *ok = false,
                            Reply::UserDeleted { deleted, .. } => *deleted = None,
                            Reply::User { known, .. } => *known = None,
                            Reply::Prefs { reply, .. } => {
                                let reply = reply.clone();
                                *r = Reply::PrefsFailed { reply };
                            }
                            _ => {}
                        }
                    }
                }
                for (shard, reply) in replies.drain(..) {
                    let mut msg = reply;
                    while let Err(m) = reply_to(shard, msg) {
                        msg = m;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
            tracing::info!("storage: flushed and stopped");
        })
        .expect("spawn storage thread");
    (StorageHandle { tx, reader, sent }, t)
}

/// Commits, retrying a failed commit twice (a transient error); false if it still fails.
fn commit_with_retries(backend: &mut dyn Backend, fail: bool) -> bool {
    let started = std::time::Instant::now();
    let ok = commit_retrying(backend, fail);
    let m = crate::metrics::storage();
    if ok {
        m.observe_commit(started.elapsed());
    } else {
        m.commit_failures.inc();
    }
    ok
}

fn commit_retrying(backend: &mut dyn Backend, fail: bool) -> bool {
    for attempt in 0..3 {
        let r = if fail {
            Err(StorageError(
                "injected commit failure (AOBA_FAULT_FAIL_COMMITS)".into(),
            ))
        } else {
            backend.commit()
        };
        match r {
            Ok(()) => return true,
            Err(e) => {
                tracing::error!(error = %e, attempt, "storage: commit failed");
                std::thread::sleep(Duration::from_millis(50 << attempt));
            }
        }
    }
    tracing::error!("storage: commit failed three times; the batch is not acknowledged");
    false
}

/// Marks one writer request applied when dropped (after its `match` arm ran).
/// Writes the gathered archive appends as one, then counts them as applied.
fn flush_appends(
    backend: &mut dyn Backend,
    appends: &mut Vec<(String, ArchiveItem)>,
    slots: &mut Vec<usize>,
    applied: &[AtomicU64],
) {
    if appends.is_empty() {
        return;
    }
    if let Err(e) = backend.archive_append_many(appends) {
        tracing::error!(error = %e, n = appends.len(), "storage: archive append");
    }
    appends.clear();
    for s in slots.drain(..) {
        applied[s].fetch_add(1, Ordering::Release);
    }
}

struct ApplyGuard<'a>(&'a AtomicU64);

impl Drop for ApplyGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// The reader thread: roster loads and archive pages, after the writes their shard sent
/// before them are applied.
fn start_reader(
    reader: Box<dyn Reader>,
    capacity: usize,
    applied: Arc<[AtomicU64]>,
    reply_to: ReplyTo,
) -> crossbeam_channel::Sender<(u64, Request)> {
    let (tx, rx) = crossbeam_channel::bounded::<(u64, Request)>(capacity);
    std::thread::Builder::new()
        .name("storage-reader".into())
        .spawn(move || {
            let reply = |shard: usize, r: Reply| {
                let mut msg = r;
                while let Err(m) = reply_to(shard, msg) {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
            };
            let read_delay = crate::fault::read_delay();
            while let Ok((after, req)) = rx.recv() {
                if let Some(d) = read_delay {
                    std::thread::sleep(d);
                }
                let shard = match &req {
                    Request::RosterLoad { shard, .. } | Request::ArchiveQuery { shard, .. } => {
                        *shard
                    }
                    _ => continue,
                };
                let slot = &applied[shard.min(applied.len() - 1)];
                while slot.load(Ordering::Acquire) < after {
                    std::thread::sleep(Duration::from_micros(50));
                }
                match req {
                    Request::RosterLoad { user, shard } => {
                        let (version, items) = reader.roster(&user).unwrap_or_else(|e| {
                            tracing::error!(error = %e, "storage reader: roster load");
                            (0, Vec::new())
                        });
                        reply(
                            shard,
                            Reply::Roster {
                                user,
                                version,
                                items,
                            },
                        );
                    }
                    Request::ArchiveQuery {
                        owner,
                        query,
                        shard,
                        reply: to,
                    } => {
                        let page = reader.archive_query(&owner, &query).unwrap_or_else(|e| {
                            tracing::error!(error = %e, "storage reader: archive query");
                            ArchivePage::default()
                        });
                        reply(shard, Reply::Archive { page, reply: to });
                    }
                    _ => {}
                }
            }
        })
        .expect("spawn storage reader");
    tx
}
