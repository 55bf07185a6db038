//! Rooms as the server's admin API manages them (`PUT` and `DELETE /api/rooms/{room}`,
//! `PUT /api/rooms/{room}/affiliations`), and the affiliations of a deleted user: what an
//! owner does through XEP-0045 §10 (configuration §10.2, affiliations §10.3–10.7,
//! destruction §10.9), done on the room's home shard without one, with the same effects
//! on the occupants. A room the API creates has no owner, is unlocked at once, and is
//! persistent unless told otherwise.

use super::Service;
use super::fanout::Out;
use super::room::{Affiliation, Room, persist};
use crate::features::mam::MamHost;
use serde::Serialize;

/// `PUT /api/rooms/{room}`: what to change; `None` keeps the room's value (a new room's
/// default).
#[derive(Debug, Clone, Default)]
pub struct RoomOptions {
    pub persistent: Option<bool>,
    pub members_only: Option<bool>,
    pub public: Option<bool>,
    /// Messages of history sent on joining (`muc#maxhistoryfetch`), at most the service's
    /// `muc.history_max`.
    pub history_max: Option<usize>,
    pub name: Option<String>,
}

/// A room's configuration as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RoomView {
    pub jid: String,
    pub name: String,
    pub persistent: bool,
    pub members_only: bool,
    pub public: bool,
    pub history_max: usize,
    pub occupants: usize,
}

/// Why an admin request on a room was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManageError {
    /// `muc.enabled = false`.
    Disabled,
    NotFound,
    /// The name is not one this service creates rooms under.
    Name(&'static str),
    /// `muc.max_rooms_per_shard` reached.
    TooManyRooms,
    /// Past `muc.history_max` (the value).
    HistoryTooLong(usize),
    /// An affiliation that is not outcast, none, member, admin or owner.
    Affiliation(String),
}

/// Whether `name` is an XEP-0045 affiliation (outcast, none, member, admin, owner).
pub fn is_affiliation(name: &str) -> bool {
    Affiliation::parse(name).is_some()
}

fn view(room: &Room) -> RoomView {
    RoomView {
        jid: room.jid.clone(),
        name: room.cfg.name.clone(),
        persistent: room.cfg.persistent,
        members_only: room.cfg.members_only,
        public: room.cfg.public,
        history_max: room.cfg.history_length,
        occupants: room.occupants.len(),
    }
}

fn affiliations(room: &Room) -> Vec<(String, &'static str)> {
    let mut v: Vec<(String, &'static str)> = room
        .affiliations
        .iter()
        .map(|(j, a)| (j.to_string(), a.name()))
        .collect();
    v.sort();
    v
}

impl Service {
    /// A room of this shard, as the admin API shows it.
    pub fn room_view(&self, jid: &str) -> Option<RoomView> {
        self.rooms.borrow().get(jid).map(view)
    }

    /// Creates room `jid` (of this service, its home shard here) or changes it; returns
    /// its configuration and whether it was created. What is stored is queued before this
    /// returns: an answer sent after the next commit reports a durable change.
    pub fn admin_put<H: MamHost>(
        &self,
        shard: &H,
        jid: &str,
        o: &RoomOptions,
    ) -> Result<(RoomView, bool), ManageError> {
        if !self.cfg.enabled {
            return Err(ManageError::Disabled);
        }
        let Some(local) = jid
            .strip_suffix(self.domain.as_str())
            .and_then(|l| l.strip_suffix('@'))
            .filter(|l| !l.is_empty())
        else {
            return Err(ManageError::Name("not a room of this service"));
        };
        if o.history_max.is_some_and(|h| h > self.cfg.history_max) {
            return Err(ManageError::HistoryTooLong(self.cfg.history_max));
        }
        let mut out = Out::default();
        let mut rooms = self.rooms.borrow_mut();
        let created = !rooms.contains_key(jid);
        if created {
            if self.cfg.require_group_uuid_names && !super::is_group_uuid(local) {
                return Err(ManageError::Name(
                    "room names are group-{uuid} (muc.require_group_uuid_names)",
                ));
            }
            if rooms.len() >= self.cfg.max_rooms_per_shard {
                return Err(ManageError::TooManyRooms);
            }
            let mut r = Room::new(jid, local, "", &self.cfg);
            r.affiliations.clear();
            r.locked = false;
            r.cfg.persistent = true;
            rooms.insert(jid.into(), r);
            tracing::info!(
                shard = shard.id,
                room = jid,
                "room created by the admin API"
            );
        }
        let Some(room) = rooms.get_mut(jid) else {
            return Err(ManageError::NotFound);
        };
        let before = view(room);
        let was_locked = room.locked;
        if let Some(v) = o.persistent {
            room.cfg.persistent = v;
        }
        if let Some(v) = o.members_only {
            room.cfg.members_only = v;
        }
        if let Some(v) = o.public {
            room.cfg.public = v;
        }
        if let Some(v) = o.history_max {
            room.cfg.history_length = v;
        }
        if let Some(v) = &o.name {
            room.cfg.name = v.clone();
        }
        room.locked = false;
        // §9.x, status 322: a room that became members-only removes its non-members.
        if room.cfg.members_only && !before.members_only {
            loop {
                let outsider = room
                    .occupants
                    .iter()
                    .find(|(_, x)| room.affiliation(x.bare()) < Affiliation::Member)
                    .map(|(oi, _)| oi);
                let Some(oi) = outsider else { break };
                super::admin::remove_occupant(room, oi, 322, &mut out);
            }
        }
        persist(shard, room, &mut out);
        super::directory::announce(room, &self.domain, &mut out);
        let after = view(room);
        // §10.2.1: the occupants learn that the configuration changed (104).
        if !created && !was_locked && after != before {
            super::owner::config_changed(room, &[104], &mut out);
        }
        drop(rooms);
        out.flush(shard);
        Ok((after, created))
    }

    /// Destroys room `jid` (§10.9): its occupants get their unavailable presence with
    /// `<destroy/>` and `reason`; it leaves storage and the directory.
    pub fn admin_destroy<H: MamHost>(
        &self,
        shard: &H,
        jid: &str,
        reason: &str,
    ) -> Result<(), ManageError> {
        let mut out = Out::default();
        {
            let mut rooms = self.rooms.borrow_mut();
            let Some(room) = rooms.get_mut(jid) else {
                return Err(ManageError::NotFound);
            };
            super::owner::destroy(self, shard, room, reason, &mut out);
            rooms.remove(jid);
        }
        out.flush(shard);
        Ok(())
    }

    /// Sets the affiliations of users (bare JIDs) in room `jid`, in order (`none` removes
    /// one), with their effects on the occupants (§10.3–10.7: a ban or a lost membership
    /// removes the user's occupants); returns every affiliation of the room, sorted.
    pub fn admin_affiliations<H: MamHost>(
        &self,
        shard: &H,
        jid: &str,
        items: &[(String, String)],
    ) -> Result<Vec<(String, &'static str)>, ManageError> {
        let mut parsed = Vec::with_capacity(items.len());
        for (bare, a) in items {
            let a = Affiliation::parse(a).ok_or_else(|| ManageError::Affiliation(a.clone()))?;
            parsed.push((bare.as_str(), a));
        }
        let mut out = Out::default();
        let list = {
            let mut rooms = self.rooms.borrow_mut();
            let Some(room) = rooms.get_mut(jid) else {
                return Err(ManageError::NotFound);
            };
            for (bare, a) in parsed {
                super::admin::set_affiliation(room, bare, a, &mut out);
            }
            persist(shard, room, &mut out);
            affiliations(room)
        };
        out.flush(shard);
        Ok(list)
    }

    /// Every affiliation of room `jid`, sorted (`None`: not here).
    pub fn affiliations_of(&self, jid: &str) -> Option<Vec<(String, &'static str)>> {
        self.rooms.borrow().get(jid).map(affiliations)
    }

    /// A deleted user: its affiliations and reserved nicks in this shard's rooms are
    /// removed (with their effects on the occupants) and stored; returns how many
    /// affiliations were removed.
    pub fn forget_user<H: MamHost>(&self, shard: &H, bare: &str) -> usize {
        let mut out = Out::default();
        let mut n = 0;
        {
            let mut rooms = self.rooms.borrow_mut();
            for room in rooms.values_mut() {
                let had = room.affiliations.contains_key(bare);
                let nick = room.reserved_by.remove(bare);
                if let Some(nick) = &nick {
                    room.reserved.remove(nick);
                }
                if had {
                    n += 1;
                    super::admin::set_affiliation(room, bare, Affiliation::None, &mut out);
                }
                if had || nick.is_some() {
                    persist(shard, room, &mut out);
                }
            }
        }
        out.flush(shard);
        n
    }
}
