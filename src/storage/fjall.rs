//! The embedded default: fjall (an LSM store; measured on this machine class at ~525k
//! batched 200-byte inserts/s, against ~208k for redb and ~125k for SQLite). Writes go to
//! fjall's journal; `commit` fsyncs it once per batch of requests (group commit).
//!
//! Layout: keyspace `users` (localpart → empty), keyspace `offline`
//! (localpart ‖ 0x00 ‖ sequence, big-endian u64 → stanza). Localparts cannot contain NUL,
//! so the separator keeps `al` from seeing `alice`'s messages.

use super::{
    ArchiveItem, ArchivePage, ArchivePrefs, ArchiveQuery, Backend, Reader, Result, RosterItem,
    StorageError,
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::collections::HashMap;
use std::path::Path;

pub struct FjallBackend {
    db: Database,
    users: Keyspace,
    offline: Keyspace,
    rooms: Keyspace,
    read: FjallReader,
    /// Next sequence number per user, and how many messages are stored (for the quota).
    counts: HashMap<String, (u64, usize)>,
    dirty: bool,
}

/// The read side (rosters and the archive), shared with the storage reader thread: fjall
/// keyspaces are cheap handles onto the same trees, safe to read from another thread.
#[derive(Clone)]
pub struct FjallReader {
    rosters: Keyspace,
    roster_versions: Keyspace,
    archive: Keyspace,
}

impl Reader for FjallReader {
    fn roster(&self, user: &str) -> Result<(u64, Vec<RosterItem>)> {
        let version = match self.roster_versions.get(user).map_err(err)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(err)?),
            None => 0,
        };
        let mut items = Vec::new();
        for g in self.rosters.prefix(prefix(user)) {
            let v = g.value().map_err(err)?;
            items.push(serde_json::from_slice(&v).map_err(err)?);
        }
        Ok((version, items))
    }

    fn archive_query(&self, owner: &str, q: &ArchiveQuery) -> Result<ArchivePage> {
        let lo = key(owner, q.after_id.map_or(0, |a| a.saturating_add(1)));
        let hi = match q.before_id {
            Some(b) => key(owner, b),
            None => {
                let mut k = owner.as_bytes().to_vec();
                k.push(1);
                k
            }
        };
        // The `with` filter reads only `with`: the stanza of an item left out is not copied.
        let decode = |k: &[u8], v: &[u8]| -> Option<ArchiveItem> {
            let id = u64::from_be_bytes(k.get(k.len().checked_sub(8)?..)?.try_into().ok()?);
            let n = u16::from_be_bytes(v.get(..2)?.try_into().ok()?) as usize;
            let with = std::str::from_utf8(v.get(2..2 + n)?).ok()?;
            if q.with.as_ref().is_some_and(|w| w != with) {
                return None;
            }
            Some(ArchiveItem {
                id,
                with: with.to_string(),
                stanza: super::Parts::one(v.get(2 + n..)?.to_vec()),
                uid: 0,
            })
        };
        // Stop after one more than a page (to know whether the range goes on); the newest
        // page iterates from the end.
        let want = q.max.max(1) + 1;
        let mut items = Vec::with_capacity(want);
        let range = self.archive.range(lo..hi);
        let iter: Box<dyn Iterator<Item = fjall::Guard>> = if q.from_end {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        for g in iter {
            let (k, v) = g.into_inner().map_err(err)?;
            if let Some(i) = decode(&k, &v) {
                items.push(i);
                if items.len() == want {
                    break;
                }
            }
        }
        // The extra one (it only says the range goes on) is the last read, at either end.
        Ok(super::page_read(items, want, q.from_end))
    }
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError(e.to_string())
}

fn key(user: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.len() + 9);
    k.extend_from_slice(user.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// An archived message: the length of `with`, `with`, then the stanza.
fn archive_value(item: &ArchiveItem) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + item.with.len() + item.stanza.len());
    v.extend_from_slice(&(item.with.len() as u16).to_be_bytes());
    v.extend_from_slice(item.with.as_bytes());
    item.stanza.write_to(&mut v);
    v
}

fn prefix(user: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.len() + 1);
    k.extend_from_slice(user.as_bytes());
    k.push(0);
    k
}

impl FjallBackend {
    pub fn open(dir: &Path) -> Result<FjallBackend> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let db = Database::builder(dir).open().map_err(err)?;
        let keyspace = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(err)
        };
        let users = keyspace("users")?;
        let offline = keyspace("offline")?;
        let rooms = keyspace("rooms")?;
        let rosters = keyspace("rosters")?;
        let roster_versions = keyspace("roster_versions")?;
        let archive = keyspace("archive")?;
        check_format(&db, &keyspace("meta")?)?;
        Ok(FjallBackend {
            db,
            users,
            offline,
            rooms,
            read: FjallReader {
                rosters,
                roster_versions,
                archive,
            },
            counts: HashMap::new(),
            dirty: false,
        })
    }

    /// (next sequence, stored count) for `user`, from disk the first time.
    fn count(&mut self, user: &str) -> Result<&mut (u64, usize)> {
        if !self.counts.contains_key(user) {
            let mut n = 0usize;
            let mut next = 0u64;
            for g in self.offline.prefix(prefix(user)) {
                let k = g.key().map_err(err)?;
                let seq = u64::from_be_bytes(k[k.len() - 8..].try_into().map_err(err)?);
                next = next.max(seq + 1);
                n += 1;
            }
            self.counts.insert(user.to_string(), (next, n));
        }
        Ok(self.counts.get_mut(user).unwrap())
    }
}

/// The data directory's format. A build refuses a directory written in a newer format
/// (after a downgrade: restore the backup taken before the upgrade), and would migrate an
/// older one here. Directories from before the marker existed are format 1.
pub const FORMAT: u32 = 1;

fn check_format(db: &Database, meta: &Keyspace) -> Result<()> {
    match meta.get("format").map_err(err)? {
        None => {
            meta.insert("format", FORMAT.to_be_bytes()).map_err(err)?;
            db.persist(PersistMode::SyncAll).map_err(err)?;
            Ok(())
        }
        Some(v) => {
            let v = <[u8; 4]>::try_from(v.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| {
                    StorageError("the data directory's format marker is damaged".into())
                })?;
            if v > FORMAT {
                return Err(StorageError(format!(
                    "the data directory is in format {v}, newer than this build's {FORMAT}: \
                     run the newer aoba, or restore the backup taken before the upgrade"
                )));
            }
            Ok(())
        }
    }
}

impl Backend for FjallBackend {
    fn offline_restore(&mut self, user: &str, stanzas: &[Vec<u8>]) -> Result<()> {
        if stanzas.is_empty() {
            return Ok(());
        }
        // The counts are loaded before anything is inserted, so nothing is counted twice.
        let (next, _) = *self.count(user)?;
        // In front of the oldest one left: the sequence numbers just below it are free
        // (they were the taken messages' own). Without room below, at the end (logged).
        let first = match self.offline.prefix(prefix(user)).next() {
            Some(g) => {
                let k = g.key().map_err(err)?;
                Some(u64::from_be_bytes(
                    k[k.len() - 8..].try_into().map_err(err)?,
                ))
            }
            None => None,
        };
        let n = stanzas.len() as u64;
        let start = match first {
            Some(f) if f >= n => f - n,
            Some(_) => {
                tracing::warn!(user, "offline restore: no room in front, appended");
                next
            }
            None => next,
        };
        let mut b = self.db.batch();
        for (i, s) in stanzas.iter().enumerate() {
            b.insert(&self.offline, key(user, start + i as u64), s.as_slice());
        }
        b.commit().map_err(err)?;
        let c = self.count(user)?;
        c.0 = c.0.max(start + n);
        c.1 += stanzas.len();
        self.dirty = true;
        Ok(())
    }

    fn record_user(&mut self, user: &str) -> Result<bool> {
        if self.users.get(user).map_err(err)?.is_some() {
            return Ok(false);
        }
        self.users.insert(user, []).map_err(err)?;
        self.dirty = true;
        Ok(true)
    }

    fn user_known(&self, user: &str) -> Result<bool> {
        Ok(self.users.get(user).map_err(err)?.is_some())
    }

    fn users(&self) -> Result<Vec<String>> {
        self.users
            .iter()
            .map(|g| {
                g.key()
                    .map_err(err)
                    .map(|k| String::from_utf8_lossy(&k).into_owned())
            })
            .collect()
    }

    fn offline_push(&mut self, user: &str, stanza: &[u8], quota: usize) -> Result<bool> {
        let (seq, n) = *self.count(user)?;
        if n >= quota {
            return Ok(false);
        }
        self.offline.insert(key(user, seq), stanza).map_err(err)?;
        *self.counts.get_mut(user).unwrap() = (seq + 1, n + 1);
        self.dirty = true;
        Ok(true)
    }

    fn offline_take(&mut self, user: &str, max_bytes: usize) -> Result<(Vec<Vec<u8>>, bool)> {
        let mut out = Vec::new();
        let mut keys = Vec::new();
        let mut bytes = 0usize;
        let mut more = false;
        for g in self.offline.prefix(prefix(user)) {
            let (k, v) = g.into_inner().map_err(err)?;
            if !out.is_empty() && bytes + v.len() > max_bytes {
                more = true;
                break;
            }
            bytes += v.len();
            keys.push(k);
            out.push(v.to_vec());
        }
        if !keys.is_empty() {
            let taken = keys.len();
            let mut b = self.db.batch();
            for k in keys {
                b.remove(&self.offline, k);
            }
            b.commit().map_err(err)?;
            self.dirty = true;
            if let Some(c) = self.counts.get_mut(user) {
                c.1 = c.1.saturating_sub(taken);
            }
        }
        Ok((out, more))
    }

    fn roster(&self, user: &str) -> Result<(u64, Vec<RosterItem>)> {
        self.read.roster(user)
    }

    fn roster_set(&mut self, user: &str, item: &RosterItem, version: u64) -> Result<()> {
        let mut k = prefix(user);
        k.extend_from_slice(item.jid.as_bytes());
        self.read
            .rosters
            .insert(k, serde_json::to_vec(item).map_err(err)?)
            .map_err(err)?;
        self.read
            .roster_versions
            .insert(user, version.to_be_bytes())
            .map_err(err)?;
        self.dirty = true;
        Ok(())
    }

    fn roster_remove(&mut self, user: &str, contact: &str, version: u64) -> Result<()> {
        let mut k = prefix(user);
        k.extend_from_slice(contact.as_bytes());
        self.read.rosters.remove(k).map_err(err)?;
        self.read
            .roster_versions
            .insert(user, version.to_be_bytes())
            .map_err(err)?;
        self.dirty = true;
        Ok(())
    }

    fn archive_append(&mut self, owner: &str, item: &ArchiveItem) -> Result<()> {
        self.read
            .archive
            .insert(key(owner, item.id), archive_value(item))
            .map_err(err)?;
        self.dirty = true;
        Ok(())
    }

    fn archive_append_many(&mut self, items: &[(String, ArchiveItem)]) -> Result<()> {
        // One write batch: one journal write for all (measured ~2x the single inserts).
        let mut b = self.db.batch();
        for (owner, item) in items {
            b.insert(&self.read.archive, key(owner, item.id), archive_value(item));
        }
        b.commit().map_err(err)?;
        self.dirty = true;
        Ok(())
    }

    fn archive_query(&self, owner: &str, q: &ArchiveQuery) -> Result<ArchivePage> {
        self.read.archive_query(owner, q)
    }

    fn reader(&self) -> Option<Box<dyn Reader>> {
        Some(Box::new(self.read.clone()))
    }

    fn archive_prefs(&self, owner: &str) -> Result<ArchivePrefs> {
        match self
            .read
            .roster_versions
            .get(format!("\u{1}prefs\u{0}{owner}"))
            .map_err(err)?
        {
            Some(v) => serde_json::from_slice(&v).map_err(err),
            None => Ok(ArchivePrefs::default()),
        }
    }

    fn set_archive_prefs(&mut self, owner: &str, prefs: &ArchivePrefs) -> Result<()> {
        // Kept beside the roster versions (a small per-user keyspace); the \x01 prefix
        // cannot begin a localpart.
        self.read
            .roster_versions
            .insert(
                format!("\u{1}prefs\u{0}{owner}"),
                serde_json::to_vec(prefs).map_err(err)?,
            )
            .map_err(err)?;
        self.dirty = true;
        Ok(())
    }

    fn room(&self, jid: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.rooms.get(jid).map_err(err)?.map(|v| v.to_vec()))
    }

    fn rooms(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.rooms
            .iter()
            .map(|g| {
                g.into_inner()
                    .map_err(err)
                    .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    fn room_put(&mut self, jid: &str, data: &[u8]) -> Result<()> {
        self.rooms.insert(jid, data).map_err(err)?;
        self.dirty = true;
        Ok(())
    }

    fn room_remove(&mut self, jid: &str) -> Result<()> {
        self.rooms.remove(jid).map_err(err)?;
        self.dirty = true;
        Ok(())
    }

    fn delete_user(&mut self, user: &str, bare: &str) -> Result<super::Deleted> {
        let mut b = self.db.batch();
        let mut keys = |ks: &Keyspace, p: Vec<u8>| -> Result<usize> {
            let mut n = 0;
            for g in ks.prefix(p) {
                b.remove(ks, g.key().map_err(err)?);
                n += 1;
            }
            Ok(n)
        };
        let roster = keys(&self.read.rosters, prefix(user))?;
        let offline = keys(&self.offline, prefix(user))?;
        let archive = keys(&self.read.archive, prefix(bare))?;
        let had = self.users.get(user).map_err(err)?.is_some();
        b.remove(&self.users, user);
        b.remove(&self.read.roster_versions, format!("\u{1}prefs\u{0}{bare}"));
        let version = match self.read.roster_versions.get(user).map_err(err)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(err)?),
            None => 0,
        };
        if version > 0 {
            b.insert(
                &self.read.roster_versions,
                user,
                (version + 1).to_be_bytes(),
            );
        }
        b.commit().map_err(err)?;
        self.counts.remove(user);
        self.dirty = true;
        Ok(super::Deleted {
            user: had,
            roster,
            offline,
            archive,
        })
    }

    fn archive_expire(&mut self, before_id: u64) -> Result<usize> {
        let mut old = Vec::new();
        for g in self.read.archive.iter() {
            let k = g.key().map_err(err)?;
            if k.len() >= 8
                && u64::from_be_bytes(k[k.len() - 8..].try_into().map_err(err)?) < before_id
            {
                old.push(k);
            }
        }
        let n = old.len();
        if n > 0 {
            let mut b = self.db.batch();
            for k in old {
                b.remove(&self.read.archive, k);
            }
            b.commit().map_err(err)?;
            self.dirty = true;
        }
        Ok(n)
    }

    fn commit(&mut self) -> Result<()> {
        if self.dirty {
            self.db.persist(PersistMode::SyncAll).map_err(err)?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passes_the_storage_contract_and_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("aoba-fjall-contract-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = dir.clone();
        let reopen =
            move || -> Box<dyn super::Backend> { Box::new(super::FjallBackend::open(&d).unwrap()) };
        super::super::contract_tests::contract(reopen(), Some(&reopen));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
