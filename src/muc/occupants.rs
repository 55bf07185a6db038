//! The occupants of a room (XEP-0045 §7.2: an occupant is a nick in the room, with one
//! or more sessions of the same user joined under it).
//!
//! Kept in join order, the order a joiner receives the others' presence in (§7.2.3) and
//! broadcasts go out in, with two indexes so a lookup costs the same in a room of 10 as
//! in one of 10,000: nick → occupant and session (full JID) → occupant. Both are
//! maintained here only, by `add`, `add_session`, `remove_session` and `remove`; the
//! fields they index (`nick`, `sessions`) are private to this file.

use super::fanout::to_bytes;
use super::room::Role;

use crate::xmpp::jid::Jid;
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::HashMap;

/// One joined session of an occupant.
pub(super) struct Sess {
    pub(super) jid: Jid,
    /// Escaped, for fan-out `to` parts.
    pub(super) to: Bytes,
    /// Where the session's user lives (node and shard).
    pub(super) home: crate::runtime::Home,
}

impl Sess {
    /// A session of a user whose home is a shard of this node alone (benches, tests).
    pub(super) fn new(jid: &Jid, shards: usize) -> Sess {
        Sess::at(jid, crate::runtime::home(jid.bare(), shards))
    }

    pub(super) fn at(jid: &Jid, home: crate::runtime::Home) -> Sess {
        Sess {
            to: to_bytes(jid.as_str()),
            home,
            jid: jid.clone(),
        }
    }
}

pub(super) struct Occupant {
    nick: Box<str>,
    bare: Box<str>,
    sessions: SmallVec<[Sess; 1]>,
    pub(super) role: Role,
    /// The occupant's own presence children (show, status...), re-sent to others.
    pub(super) presence: String,
}

impl Occupant {
    /// An occupant of user `bare` with its first session.
    pub(super) fn new(nick: &str, bare: &str, sess: Sess, role: Role, presence: String) -> Self {
        let mut sessions = SmallVec::new();
        sessions.push(sess);
        Occupant {
            nick: nick.into(),
            bare: bare.into(),
            sessions,
            role,
            presence,
        }
    }

    pub(super) fn nick(&self) -> &str {
        &self.nick
    }

    pub(super) fn bare(&self) -> &str {
        &self.bare
    }

    /// Never empty: an occupant whose last session leaves is removed.
    pub(super) fn sessions(&self) -> &[Sess] {
        &self.sessions
    }
}

type Index = HashMap<Box<str>, usize, ahash::RandomState>;

/// A room's occupants. An occupant's id (`usize`) is its slot: it stays valid until the
/// next `remove`, which may squeeze out the slots of those who left.
#[derive(Default)]
pub(super) struct Occupants {
    /// In join order; `None` where an occupant left, until the holes outnumber the
    /// occupants and are squeezed out (so removal keeps the order and costs O(1) amortized).
    slots: Vec<Option<Occupant>>,
    len: usize,
    by_nick: Index,
    /// Every session of every occupant (a session is in at most one occupant).
    by_session: Index,
}

impl Occupants {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn by_nick(&self, nick: &str) -> Option<usize> {
        self.by_nick.get(nick).copied()
    }

    /// The occupant that session `full` (a full JID) joined.
    pub(super) fn by_session(&self, full: &str) -> Option<usize> {
        self.by_session.get(full).copied()
    }

    /// The occupants in join order, with their ids.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &Occupant)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.as_ref().map(|o| (i, o)))
    }

    /// Adds `o` last; its nick and session must not be in the room.
    pub(super) fn add(&mut self, o: Occupant) -> usize {
        let id = self.slots.len();
        let old = self.by_nick.insert(o.nick.clone(), id);
        debug_assert!(old.is_none(), "nick {} is taken", o.nick);
        for s in &o.sessions {
            let old = self.by_session.insert(s.jid.as_str().into(), id);
            debug_assert!(old.is_none(), "session {} is in the room", s.jid.as_str());
        }
        self.slots.push(Some(o));
        self.len += 1;
        id
    }

    /// Another session joins occupant `id` (same user, same nick).
    pub(super) fn add_session(&mut self, id: usize, s: Sess) {
        let old = self.by_session.insert(s.jid.as_str().into(), id);
        debug_assert!(old.is_none(), "session {} is in the room", s.jid.as_str());
        self[id].sessions.push(s);
    }

    /// Occupant `id` takes the free nick `nick` (§7.6), keeping its place in the order.
    pub(super) fn rename(&mut self, id: usize, nick: &str) {
        let o = self.slots[id].as_mut().expect("an occupant");
        let old = std::mem::replace(&mut o.nick, nick.into());
        self.by_nick.remove(&*old);
        let taken = self.by_nick.insert(nick.into(), id);
        debug_assert!(taken.is_none(), "nick {nick} is taken");
    }

    /// Session `full` of occupant `id` leaves; the occupant keeps at least one session
    /// (when it is the last, `remove` the occupant instead).
    pub(super) fn remove_session(&mut self, id: usize, full: &str) {
        let o = &mut self[id];
        let si = o
            .sessions
            .iter()
            .position(|s| s.jid.as_str() == full)
            .expect("a session of this occupant");
        assert!(
            o.sessions.len() > 1,
            "the last session leaves with `remove`"
        );
        o.sessions.remove(si);
        self.by_session.remove(full);
    }

    /// Occupant `id` leaves, with all its sessions. Ids of others may change.
    pub(super) fn remove(&mut self, id: usize) -> Occupant {
        let o = self.slots[id].take().expect("an occupant");
        self.len -= 1;
        self.by_nick.remove(&*o.nick);
        for s in &o.sessions {
            self.by_session.remove(s.jid.as_str());
        }
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        if self.slots.len() - self.len > self.len.max(8) {
            self.squeeze();
        }
        o
    }

    pub(super) fn clear(&mut self) {
        *self = Occupants::default();
    }

    /// Drops the holes left by those who left, keeping the order; re-indexes.
    fn squeeze(&mut self) {
        self.slots.retain(Option::is_some);
        for (id, o) in self.slots.iter().flatten().enumerate() {
            *self.by_nick.get_mut(&*o.nick).expect("indexed") = id;
            for s in &o.sessions {
                *self.by_session.get_mut(s.jid.as_str()).expect("indexed") = id;
            }
        }
    }
}

impl std::ops::Index<usize> for Occupants {
    type Output = Occupant;
    fn index(&self, id: usize) -> &Occupant {
        self.slots[id].as_ref().expect("an occupant")
    }
}

/// Mutable access leaves the nick and the sessions alone (private fields): the indexes
/// cannot go stale through it.
impl std::ops::IndexMut<usize> for Occupants {
    fn index_mut(&mut self, id: usize) -> &mut Occupant {
        self.slots[id].as_mut().expect("an occupant")
    }
}

#[cfg(test)]
mod tests {
    use super::{Occupant, Occupants, Role, Sess};
    use crate::xmpp::jid::Jid;

    /// Lookups the way they were done before the indexes: linear scans in join order.
    fn scan_nick(os: &Occupants, nick: &str) -> Option<usize> {
        os.iter().find(|(_, o)| o.nick() == nick).map(|(i, _)| i)
    }

    fn scan_session(os: &Occupants, full: &str) -> Option<usize> {
        os.iter()
            .find(|(_, o)| o.sessions().iter().any(|s| s.jid.as_str() == full))
            .map(|(i, _)| i)
    }

    /// The indexes agree with a linear scan for every name in the pools, hold nothing
    /// else, and the occupants are in `model`'s order (a `Vec` with order-keeping removal,
    /// the room's occupant list before the indexes).
    fn check(
        os: &Occupants,
        model: &[(String, Vec<String>)],
        nicks: &[String],
        sessions: &[Jid],
        at: &str,
    ) {
        assert_eq!(os.len(), model.len(), "{at}");
        assert_eq!(os.is_empty(), model.is_empty());
        let order: Vec<(String, Vec<String>)> = os
            .iter()
            .map(|(_, o)| {
                let s = o.sessions().iter().map(|s| s.jid.as_str().to_string());
                (o.nick().to_string(), s.collect())
            })
            .collect();
        assert_eq!(order, model, "{at}");
        for n in nicks {
            assert_eq!(os.by_nick(n), scan_nick(os, n), "{at}: nick {n}");
        }
        for s in sessions {
            let s = s.as_str();
            assert_eq!(os.by_session(s), scan_session(os, s), "{at}: session {s}");
        }
        assert_eq!(os.by_nick.len(), os.len(), "{at}");
        let total: usize = os.iter().map(|(_, o)| o.sessions().len()).sum();
        assert_eq!(os.by_session.len(), total, "{at}");
        for (nick, &id) in &os.by_nick {
            assert_eq!(os[id].nick(), &**nick, "{at}");
        }
        for (full, &id) in &os.by_session {
            let has = os[id].sessions().iter().any(|s| s.jid.as_str() == &**full);
            assert!(has, "{at}: session {full}");
        }
    }

    /// xorshift64*: deterministic, so a failure names its seed and step.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        }
    }

    /// Random joins (new nicks, extra sessions under one's own nick, refused conflicts,
    /// nick changes), leaves (of one session or of the occupant) and lookups, the way the room decides
    /// them (`join.rs`), checked against linear scans after every step.
    #[test]
    fn indexes_agree_with_linear_scans_under_random_joins_and_leaves() {
        const USERS: usize = 24;
        let nicks: Vec<String> = (0..40).map(|i| format!("nick{i}")).collect();
        let sessions: Vec<Jid> = (0..USERS * 3)
            .map(|i| Jid::parse(&format!("user{}@localhost/r{}", i % USERS, i / USERS)).unwrap())
            .collect();
        let (mut shared, mut squeezed, mut renamed) = (0, 0, 0);
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut os = Occupants::default();
            let mut model: Vec<(String, Vec<String>)> = Vec::new();
            for step in 0..1000 {
                let s = &sessions[rng.below(sessions.len())];
                let full = s.as_str().to_string();
                // Leave more than join past 30 occupants, so the room fills and empties.
                let join = rng.below(100) < if os.len() > 30 { 35 } else { 65 };
                if join {
                    let nick = &nicks[rng.below(nicks.len())];
                    if let Some(id) = os.by_session(&full) {
                        // A presence update, or a nick change to a free nick (§7.6).
                        if os.by_nick(nick).is_none() {
                            let mi = model.iter().position(|(_, ss)| ss.contains(&full)).unwrap();
                            os.rename(id, nick);
                            model[mi].0 = nick.clone();
                            renamed += 1;
                        }
                    } else if let Some(id) = os.by_nick(nick) {
                        if os[id].bare() == s.bare() {
                            os.add_session(id, Sess::new(s, 4));
                            shared += 1;
                            let m = model.iter_mut().find(|(n, _)| n == nick).unwrap();
                            m.1.push(full);
                        }
                    } else {
                        let o = Occupant::new(
                            nick,
                            s.bare(),
                            Sess::new(s, 4),
                            Role::Participant,
                            String::new(),
                        );
                        os.add(o);
                        model.push((nick.clone(), vec![full]));
                    }
                } else if let Some(id) = os.by_session(&full) {
                    let mi = model.iter().position(|(_, ss)| ss.contains(&full)).unwrap();
                    if os[id].sessions().len() > 1 {
                        os.remove_session(id, &full);
                        model[mi].1.retain(|x| *x != full);
                    } else {
                        // The slots as the removal leaves them before any squeeze.
                        let mut kept: Vec<bool> = os.slots.iter().map(Option::is_some).collect();
                        kept[id] = false;
                        while kept.last() == Some(&false) {
                            kept.pop();
                        }
                        let gone = os.remove(id);
                        squeezed += usize::from(os.slots.len() < kept.len());
                        assert_eq!(gone.nick(), model[mi].0);
                        model.remove(mi);
                    }
                }
                check(
                    &os,
                    &model,
                    &nicks,
                    &sessions,
                    &format!("seed {seed} step {step}"),
                );
            }
            loop {
                let Some((id, _)) = os.iter().next() else {
                    break;
                };
                os.remove(id);
                model.remove(0);
                check(
                    &os,
                    &model,
                    &nicks,
                    &sessions,
                    &format!("seed {seed} emptying"),
                );
            }
            assert!(os.slots.is_empty());
        }
        // The rarer paths were taken: nicks shared by sessions, holes squeezed out, renames.
        assert!(
            shared > 0 && squeezed > 0 && renamed > 0,
            "{shared} {squeezed} {renamed}"
        );
    }

    /// Filling a room to 10,000 and emptying it from the front keeps the order and the
    /// indexes (the holes are squeezed out along the way).
    #[test]
    fn a_large_room_fills_and_empties_in_order() {
        let mut os = Occupants::default();
        let jids: Vec<Jid> = (0..10_000)
            .map(|i| Jid::parse(&format!("u{i}@localhost/web")).unwrap())
            .collect();
        for (i, j) in jids.iter().enumerate() {
            let id = os.add(Occupant::new(
                &format!("n{i}"),
                j.bare(),
                Sess::new(j, 1),
                Role::Participant,
                String::new(),
            ));
            assert_eq!(os.by_session(j.as_str()), Some(id));
        }
        for (i, j) in jids.iter().enumerate() {
            let id = os.by_session(j.as_str()).unwrap();
            assert_eq!(os.by_nick(&format!("n{i}")), Some(id));
            assert_eq!(os.iter().next().map(|(first, _)| first), Some(id));
            os.remove(id);
            assert!(os.slots.len() <= 2 * os.len() + 9);
        }
        assert!(os.is_empty() && os.by_nick.is_empty() && os.by_session.is_empty());
    }
}
