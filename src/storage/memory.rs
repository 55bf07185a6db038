//! An in-memory backend: not durable (everything is lost at exit). It exists so the
//! storage contract is shown to be engine-independent, and for throwaway test servers.

use super::{ArchiveItem, ArchivePage, ArchivePrefs, ArchiveQuery, Backend, Result, RosterItem};
use std::collections::{BTreeSet, HashMap, VecDeque};

#[derive(Default)]
pub struct MemoryBackend {
    users: BTreeSet<String>,
    offline: HashMap<String, VecDeque<Vec<u8>>>,
    rosters: HashMap<String, (u64, std::collections::BTreeMap<String, RosterItem>)>,
    archive: HashMap<String, std::collections::BTreeMap<u64, ArchiveItem>>,
    prefs: HashMap<String, ArchivePrefs>,
    rooms: std::collections::BTreeMap<String, Vec<u8>>,
}

impl Backend for MemoryBackend {
    fn record_user(&mut self, user: &str) -> Result<bool> {
        Ok(self.users.insert(user.to_string()))
    }

    fn users(&self) -> Result<Vec<String>> {
        Ok(self.users.iter().cloned().collect())
    }

    fn user_known(&self, user: &str) -> Result<bool> {
        Ok(self.users.contains(user))
    }

    fn offline_push(&mut self, user: &str, stanza: &[u8], quota: usize) -> Result<bool> {
        let q = self.offline.entry(user.to_string()).or_default();
        if q.len() >= quota {
            return Ok(false);
        }
        q.push_back(stanza.to_vec());
        Ok(true)
    }

    fn offline_take(&mut self, user: &str, max_bytes: usize) -> Result<(Vec<Vec<u8>>, bool)> {
        let Some(q) = self.offline.get_mut(user) else {
            return Ok((Vec::new(), false));
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(m) = q.front() {
            if !out.is_empty() && bytes + m.len() > max_bytes {
                break;
            }
            bytes += m.len();
            out.push(q.pop_front().unwrap());
        }
        let more = !q.is_empty();
        if !more {
            self.offline.remove(user);
        }
        Ok((out, more))
    }

    fn offline_restore(&mut self, user: &str, stanzas: &[Vec<u8>]) -> Result<()> {
        let q = self.offline.entry(user.to_string()).or_default();
        for s in stanzas.iter().rev() {
            q.push_front(s.clone());
        }
        Ok(())
    }

    fn roster(&self, user: &str) -> Result<(u64, Vec<RosterItem>)> {
        Ok(self
            .rosters
            .get(user)
            .map(|(v, m)| (*v, m.values().cloned().collect()))
            .unwrap_or_default())
    }

    fn roster_set(&mut self, user: &str, item: &RosterItem, version: u64) -> Result<()> {
        let r = self.rosters.entry(user.to_string()).or_default();
        r.0 = version;
        r.1.insert(item.jid.clone(), item.clone());
        Ok(())
    }

    fn roster_remove(&mut self, user: &str, contact: &str, version: u64) -> Result<()> {
        let r = self.rosters.entry(user.to_string()).or_default();
        r.0 = version;
        r.1.remove(contact);
        Ok(())
    }

    fn archive_append(&mut self, owner: &str, item: &ArchiveItem) -> Result<()> {
        self.archive
            .entry(owner.to_string())
            .or_default()
            .insert(item.id, item.clone());
        Ok(())
    }

    fn archive_query(&self, owner: &str, q: &ArchiveQuery) -> Result<ArchivePage> {
        let Some(a) = self.archive.get(owner) else {
            return Ok(ArchivePage {
                items: vec![],
                complete: true,
            });
        };
        let lo = q
            .after_id
            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let hi = q
            .before_id
            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let matching = a
            .range((lo, hi))
            .map(|(_, i)| i)
            .filter(|i| q.with.as_ref().is_none_or(|w| *w == i.with));
        Ok(super::page(matching, q))
    }

    fn archive_prefs(&self, owner: &str) -> Result<ArchivePrefs> {
        Ok(self.prefs.get(owner).cloned().unwrap_or_default())
    }

    fn set_archive_prefs(&mut self, owner: &str, prefs: &ArchivePrefs) -> Result<()> {
        self.prefs.insert(owner.to_string(), prefs.clone());
        Ok(())
    }

    fn rooms(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self
            .rooms
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn room(&self, jid: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.rooms.get(jid).cloned())
    }

    fn room_put(&mut self, jid: &str, data: &[u8]) -> Result<()> {
        self.rooms.insert(jid.to_string(), data.to_vec());
        Ok(())
    }

    fn room_remove(&mut self, jid: &str) -> Result<()> {
        self.rooms.remove(jid);
        Ok(())
    }

    fn archive_expire(&mut self, before_id: u64) -> Result<usize> {
        let mut n = 0;
        for a in self.archive.values_mut() {
            let keep = a.split_off(&before_id);
            n += a.len();
            *a = keep;
        }
        Ok(n)
    }

    fn delete_user(&mut self, user: &str, bare: &str) -> Result<super::Deleted> {
        let roster = match self.rosters.get_mut(user) {
            Some((v, items)) => {
                *v += 1;
                std::mem::take(items).len()
            }
            None => 0,
        };
        self.prefs.remove(bare);
        Ok(super::Deleted {
            user: self.users.remove(user),
            roster,
            offline: self.offline.remove(user).map_or(0, |q| q.len()),
            archive: self.archive.remove(bare).map_or(0, |a| a.len()),
        })
    }

    fn commit(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passes_the_storage_contract() {
        super::super::contract_tests::contract(Box::new(super::MemoryBackend::default()), None);
    }
}
