//! XEP-0045 Multi-User Chat at `conference.{domain}` (the Aoba API's group chat, rooms
//! `group-{uuid}@conference.{domain}`). Each shard runs one instance of the service and
//! owns the rooms whose home it is; occupants on other shards are reached with one
//! fan-out batch per shard (`fanout.rs`). Nothing in `xmpp/` knows about this module: the
//! host hands it the stanzas for its domain (`Host::on_inbound`).

mod admin;
mod directory;
mod fanout;
mod join;
mod lazy;
mod manage;
mod message;
mod occupants;
mod owner;
mod register;
mod relay;
mod room;
mod voice;

pub use manage::{ManageError, RoomOptions, RoomView, is_affiliation};

use crate::features::mam::MamHost;
use crate::xmpp::router::Routed;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;

/// XEP-0045 Multi-User Chat at `<subdomain>.<domain>`: the Aoba API's group chat, rooms
/// `group-{uuid}@conference.{domain}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MucConfig {
    /// Serve a MUC service at `<subdomain>.<domain>`.
    pub enabled: bool,
    /// The service's name under the domain: `conference` serves `conference.{domain}`. A
    /// DNS label (no `@`, `/` or space).
    pub subdomain: String,
    /// Only localparts of the API's form `group-{uuid}` may create rooms (others get
    /// `not-allowed`).
    pub require_group_uuid_names: bool,
    /// A join creates an unlocked room with the default configuration (for applications
    /// that manage groups from their backend) instead of XEP-0045's locked new room waiting
    /// for its owner's configuration.
    pub auto_create_unlocked: bool,
    /// Occupants (distinct nicks) per room, and the cap on a room's own `maxusers` (a new
    /// room's limit); past it a join gets `service-unavailable`.
    #[schemars(range(min = 1))]
    pub max_occupants: usize,
    /// Messages of history a room keeps (the cap on a room's own history length).
    pub history_max: usize,
    /// Messages of history sent on join unless the client asks for fewer; at most
    /// `history_max`.
    pub history_default: usize,
    /// Rooms one shard holds; creating more gets `resource-constraint`.
    #[schemars(range(min = 1))]
    pub max_rooms_per_shard: usize,
    /// Users who may register with one room (XEP-0045 §7.10: each becomes a member with a
    /// reserved nick); past it a registration gets `resource-constraint`.
    pub max_registrations_per_room: usize,
    /// Stanzas one shard holds for rooms while it reads them from storage (rooms load on
    /// demand) or waits for its view of the cluster to catch up; past it a stanza gets
    /// `resource-constraint` (never dropped silently).
    #[schemars(range(min = 1))]
    pub held_while_loading_max: usize,
    /// Most rooms in one page of the public room directory (disco#items on the service,
    /// XEP-0045 §6.3, in JID order): a request without XEP-0059 paging gets the first this
    /// many and, when there are more, the `<set/>` that says how many; a larger `<max/>` is
    /// capped to it.
    #[schemars(range(min = 1, max = 1000))]
    pub directory_page_max: usize,
}

impl Default for MucConfig {
    fn default() -> Self {
        MucConfig {
            enabled: true,
            subdomain: "conference".into(),
            require_group_uuid_names: false,
            auto_create_unlocked: false,
            max_occupants: 10_000,
            history_max: 50,
            history_default: 20,
            max_rooms_per_shard: 100_000,
            max_registrations_per_room: 10_000,
            held_while_loading_max: 65_536,
            directory_page_max: 100,
        }
    }
}

impl MucConfig {
    /// The subdomain, and the history sent within the history kept (ranges are checked
    /// by `Config::validate`).
    pub fn validate(&self) -> Result<(), String> {
        if self.subdomain.is_empty() || self.subdomain.contains(['@', '/', ' ']) {
            return Err("muc.subdomain must be a DNS label".into());
        }
        if self.history_default > self.history_max {
            return Err(format!(
                "muc.history_default must be <= muc.history_max (got {} > {})",
                self.history_default, self.history_max
            ));
        }
        Ok(())
    }
}

pub struct Service {
    domain: String,
    cfg: MucConfig,
    rooms: RefCell<HashMap<Box<str>, room::Room, ahash::RandomState>>,
    /// Public rooms of every shard (room JID → name), kept on the service JID's home
    /// shard from the announcements rooms send it (`directory::announce`) and, once, from
    /// storage (`lazy`).
    directory: RefCell<std::collections::BTreeMap<String, String>>,
    /// Rooms loading from storage, and what waits for them.
    lazy: lazy::Lazy,
}

impl Service {
    /// This shard's rooms for the admin API: `(jid, name, persistent, occupants)`, sorted.
    pub fn list(&self) -> Vec<(String, String, bool, usize)> {
        let rooms = self.rooms.borrow();
        let mut v: Vec<_> = rooms
            .values()
            .map(|r| {
                (
                    r.jid.clone(),
                    r.cfg.name.clone(),
                    r.cfg.persistent,
                    r.occupants.len(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// A room's occupants for the admin API: `(nick, user, role, affiliation)`; `None`
    /// if the room is not here.
    pub fn occupants_of(
        &self,
        room: &str,
    ) -> Option<Vec<(String, String, &'static str, &'static str)>> {
        let rooms = self.rooms.borrow();
        let r = rooms.get(room)?;
        Some(
            r.occupants
                .iter()
                .map(|(_, o)| {
                    let aff = r
                        .affiliations
                        .get(o.bare())
                        .copied()
                        .map_or("none", |a| a.name());
                    (
                        o.nick().to_string(),
                        o.bare().to_string(),
                        o.role.name(),
                        aff,
                    )
                })
                .collect(),
        )
    }

    /// Rooms in memory and their occupants (for the metrics, sampled once a second).
    pub fn counts(&self) -> (usize, usize) {
        let rooms = self.rooms.borrow();
        (rooms.len(), rooms.values().map(|r| r.occupants.len()).sum())
    }

    /// One shard's instance of the service for `domain`'s users.
    pub fn new(cfg: &MucConfig, domain: &str) -> Service {
        Service {
            domain: format!("{}.{}", cfg.subdomain, domain),
            cfg: cfg.clone(),
            rooms: RefCell::new(HashMap::default()),
            directory: RefCell::new(Default::default()),
            lazy: Default::default(),
        }
    }
}

impl Service {
    /// Seats `nick` (session `jid`) in an existing room without the join protocol: for
    /// benches that need rooms of 10,000 occupants without 10,000² presences.
    #[doc(hidden)]
    pub fn seat_for_bench(
        &self,
        room: &str,
        nick: &str,
        jid: &crate::xmpp::jid::Jid,
        shards: usize,
    ) {
        if let Some(r) = self.rooms.borrow_mut().get_mut(room) {
            r.seat(nick, jid, shards);
        }
    }
}

impl Service {
    /// The domain this service serves (e.g. `conference.localhost`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Stored rooms read for this shard (their home): in memory from now on.
    fn restore<H: MamHost>(&self, shard: &H, records: Vec<(String, Vec<u8>)>) {
        for (jid, data) in records {
            if !jid.ends_with(&format!("@{}", self.domain)) {
                continue;
            }
            match room::restore(&jid, &data, self.cfg.max_occupants, self.cfg.history_max) {
                Some(mut r) => {
                    directory::announce_restored(&mut r, &self.domain, shard);
                    self.rooms.borrow_mut().insert(jid.into_boxed_str(), r);
                }
                None => tracing::warn!(room = %jid, "could not restore a persistent room"),
            }
        }
    }

    /// A cluster's view changed: the rooms in memory whose home is now elsewhere end here.
    /// Their occupants get their `unavailable` with status 332 (removed because the
    /// service moved; they join again, at the new home), and the room leaves memory (a
    /// persistent room's configuration is stored; the new home loads it).
    pub fn rehome<H: MamHost>(&self, shard: &H, here: impl Fn(&str) -> bool) {
        let gone: Vec<Box<str>> = self
            .rooms
            .borrow()
            .keys()
            .filter(|j| !here(j))
            .cloned()
            .collect();
        for jid in gone {
            let Some(room) = self.rooms.borrow_mut().remove(&jid) else {
                continue;
            };
            let mut out = fanout::Out::default();
            for (oi, _) in room.occupants.iter() {
                room.self_presence(oi, room::Role::None, true, &[332], "", &mut out);
            }
            tracing::info!(shard = shard.id, room = %jid, occupants = room.occupants.len(), "the room's home moved to another node");
            out.flush(shard);
        }
    }

    /// A stanza to this domain, on the home shard of its bare `to` (`room@domain`, or the
    /// domain itself for the service).
    pub fn handle<H: MamHost>(&self, shard: &H, r: Routed) {
        if !self.cfg.enabled {
            crate::xmpp::router::bounce(shard, &r, crate::xmpp::errors::Cond::ServiceUnavailable);
            return;
        }
        self.arrive(shard, r);
    }
}

/// `group-` followed by a UUID (8-4-4-4-12 hex digits).
pub fn is_group_uuid(local: &str) -> bool {
    let Some(u) = local.strip_prefix("group-") else {
        return false;
    };
    let parts: Vec<&str> = u.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn group_uuid_names() {
        assert!(super::is_group_uuid(
            "group-123e4567-e89b-12d3-a456-426614174000"
        ));
        assert!(!super::is_group_uuid("group-123"));
        assert!(!super::is_group_uuid("coven"));
    }
}
