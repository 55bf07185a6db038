//! Rooms load on demand (issue 14: nothing loads every room). A stanza for a room that is
//! not in memory asks storage for it (`Request::RoomLoad`, one read) and waits; the room's
//! home shard restores it if it is stored (a persistent room), else the stanza is handled
//! as before (a join creates the room). The service's public directory is read from
//! storage on its home shard the first time something reaches the service.
//!
//! While any read is in flight, everything for rooms on this shard waits in one queue, in
//! arrival order, and so do the ack barriers that come after them (an `<a h/>` must not
//! overtake what it covers) and admin calls on a room. When a read comes back, the queue
//! runs from its front up to the first stanza whose room is still loading. Stanzas for a
//! room whose read failed get `internal-server-error` (never a new room over a stored one).
//! The queue is bounded (`muc.held_while_loading_max`): past it a stanza gets
//! `resource-constraint`.

use super::{Service, directory, room};
use crate::features::mam::MamHost;
use crate::storage::Request;
use crate::xmpp::errors::Cond;
use crate::xmpp::router::{self, Routed, split_full};
use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::time::Instant;

/// One thing waiting for rooms to load.
enum Held {
    Stanza(Routed),
    /// A stanza another node routed here by a newer view than this node's (`epoch`): it
    /// waits for this node's view to catch up (or `until`), then is handled here or sent
    /// on to the room's home by that view.
    Early {
        r: Routed,
        epoch: i64,
        until: Instant,
    },
    /// An ack barrier (`Msg::Barrier`), answered by a storage `Sync` when its turn comes.
    Barrier {
        token: u64,
        origin: usize,
    },
    /// An admin call on `room`: called with false if the room's read failed.
    Call(Box<str>, Box<dyn FnOnce(bool)>),
}

/// The per-shard state of loading rooms.
#[derive(Default)]
pub(super) struct Lazy {
    /// Rooms (bare JIDs, or the service's domain for its directory) with a read in flight.
    loading: RefCell<HashSet<Box<str>, ahash::RandomState>>,
    /// Rooms whose last read failed, while the queue still holds stanzas for them.
    failed: RefCell<HashSet<Box<str>, ahash::RandomState>>,
    /// Rooms read and not restored (not stored, or homed elsewhere now), while the queue
    /// still holds stanzas for them: those are handled as they are (a join creates it).
    checked: RefCell<HashSet<Box<str>, ahash::RandomState>>,
    held: RefCell<VecDeque<Held>>,
    /// The directory was read from storage (on the service's home shard; again after each
    /// change of the cluster's view).
    directory_read: Cell<bool>,
    /// Admin calls waiting for every stored room (`read_stored`), by token.
    #[allow(clippy::type_complexity)]
    stored_reads: RefCell<std::collections::HashMap<u64, Box<dyn FnOnce(Vec<(String, Vec<u8>)>)>>>,
}

/// Every stored room: `(jid, the MUC service's encoding)`.
pub type Stored = Vec<(String, Vec<u8>)>;

/// The room (or the service's domain) a stanza is for.
fn key_of(r: &Routed) -> Box<str> {
    let to = r.to();
    split_full(&to).0.into()
}

impl Service {
    /// Whether `key` (a room's bare JID or the service's domain) is ready: in memory, or
    /// read and not stored; otherwise its read is asked for (once) and false.
    fn ready<H: MamHost>(&self, shard: &H, key: &str) -> bool {
        if !shard.has_storage() {
            return true;
        }
        let ready = if key == self.domain {
            self.lazy.directory_read.get()
        } else {
            self.rooms.borrow().contains_key(key)
                || self.lazy.checked.borrow().contains(key)
                || self.lazy.failed.borrow().contains(key)
        };
        if ready || self.lazy.loading.borrow().contains(key) {
            return ready;
        }
        self.lazy.loading.borrow_mut().insert(key.into());
        if key == self.domain {
            shard.storage(Request::RoomsLoad {
                shard: shard.id,
                token: 0,
            });
        } else {
            shard.storage(Request::RoomLoad {
                jid: key.to_string(),
                shard: shard.id,
            });
        }
        false
    }

    /// Whether things for rooms wait now (a read is in flight).
    fn holding(&self) -> bool {
        !self.lazy.held.borrow().is_empty()
    }

    fn hold<H: MamHost>(&self, shard: &H, h: Held) {
        if self.lazy.held.borrow().len() >= self.cfg.held_while_loading_max {
            match h {
                Held::Stanza(r) | Held::Early { r, .. } => router::bounce_with(
                    shard,
                    &r,
                    Cond::ResourceConstraint,
                    Some("rooms are loading: retry"),
                ),
                // Never dropped: a barrier or a call waits past the bound (one per
                // connection's ack, or per admin request).
                h => self.lazy.held.borrow_mut().push_back(h),
            }
            return;
        }
        self.lazy.held.borrow_mut().push_back(h);
    }

    /// A stanza for this service: handled now if its room is ready and nothing waits,
    /// else queued behind the reads in flight.
    pub(super) fn arrive<H: MamHost>(&self, shard: &H, r: Routed) {
        let ready = {
            let to = r.to();
            self.ready(shard, split_full(&to).0)
        };
        if ready && !self.holding() {
            return room::handle(self, shard, r);
        }
        self.hold(shard, Held::Stanza(r));
    }

    /// A stanza for this service from another node, which routed it here by the view of
    /// epoch `epoch`. When this node's own view does not make this shard the room's home:
    /// if the sender's view is newer, it waits for this node's to catch up (until
    /// `until`), so that a room moving here is not created anew before it is loaded; if
    /// this node's view is as new or newer, it goes on to the room's home by that view.
    pub fn arrive_remote<H: MamHost>(&self, shard: &H, r: Routed, epoch: i64, until: Instant) {
        let here = {
            let to = r.to();
            homed_here(shard, split_full(&to).0)
        };
        if here || !self.cfg.enabled {
            return self.handle(shard, r);
        }
        if epoch > shard.view_epoch() {
            tracing::info!(shard = shard.id, to = %r.to(), epoch, "a room stanza routed by a newer view: waits for this node's");
            return self.hold(shard, Held::Early { r, epoch, until });
        }
        forward(shard, r);
    }

    /// The cluster's view changed, or time passed: stanzas that waited for this node's
    /// view go on.
    pub fn view_moved<H: MamHost>(&self, shard: &H) {
        if self.holding() {
            self.run_held(shard);
        }
    }

    /// An ack barrier reached this shard: true if it waits behind stanzas for rooms (then
    /// it is answered in its turn).
    pub fn hold_barrier<H: MamHost>(&self, shard: &H, token: u64, origin: usize) -> bool {
        if !self.holding() {
            return false;
        }
        self.hold(shard, Held::Barrier { token, origin });
        true
    }

    /// Runs `f` once room `jid` is loaded, if it is stored (an admin call on a room); with
    /// false if its read failed (it must not act on a room it could not read).
    pub fn when_loaded<H: MamHost>(&self, shard: &H, jid: &str, f: Box<dyn FnOnce(bool)>) {
        if self.ready(shard, jid) && !self.holding() {
            return f(!self.lazy.failed.borrow().contains(jid));
        }
        self.hold(shard, Held::Call(jid.into(), f));
    }

    /// Storage answered a room's read (`ok`: the read worked; `data`: the stored room).
    /// Restored if stored and still homed here (`here`), then what waited runs.
    pub fn on_room_read<H: MamHost>(
        &self,
        shard: &H,
        jid: String,
        data: Option<Vec<u8>>,
        ok: bool,
        here: impl Fn(&str) -> bool,
    ) {
        self.lazy.loading.borrow_mut().remove(jid.as_str());
        if !ok {
            tracing::error!(shard = shard.id, room = %jid, "a room's read failed");
            self.lazy.failed.borrow_mut().insert(jid.as_str().into());
        } else {
            self.lazy.failed.borrow_mut().remove(jid.as_str());
            match data {
                Some(data) if here(&jid) && !self.rooms.borrow().contains_key(jid.as_str()) => {
                    self.restore(shard, vec![(jid, data)]);
                }
                _ => {
                    self.lazy.checked.borrow_mut().insert(jid.into_boxed_str());
                }
            }
        }
        self.run_held(shard);
    }

    /// Calls `f` with every stored room (an admin call: a listing, a deleted user's
    /// affiliations); at once with none without storage.
    pub fn read_stored<H: MamHost>(&self, shard: &H, f: Box<dyn FnOnce(Stored)>) {
        if !shard.has_storage() {
            return f(Vec::new());
        }
        let token = shard.random() | 1;
        self.lazy.stored_reads.borrow_mut().insert(token, f);
        shard.storage(Request::RoomsLoad {
            shard: shard.id,
            token,
        });
    }

    /// Storage answered a read of every stored room: the directory's (`token` 0) or an
    /// admin call's.
    pub fn on_rooms_read<H: MamHost>(&self, shard: &H, token: u64, rooms: Stored) {
        if token != 0 {
            let f = self.lazy.stored_reads.borrow_mut().remove(&token);
            if let Some(f) = f {
                f(rooms);
            }
            return;
        }
        self.on_directory_read(shard, rooms);
    }

    /// The stored rooms of this service homed here and not in memory that `keep` selects,
    /// loaded now (a deleted user's affiliations are removed from them too).
    pub fn load_stored<H: MamHost>(
        &self,
        shard: &H,
        rooms: Stored,
        keep: impl Fn(&str, &[u8]) -> bool,
    ) {
        let new: Stored = rooms
            .into_iter()
            .filter(|(j, d)| keep(j, d) && !self.rooms.borrow().contains_key(j.as_str()))
            .collect();
        self.restore(shard, new);
    }

    /// `(jid, name)` of the stored rooms of this service (an admin listing).
    pub fn describe_stored(&self, rooms: &Stored) -> Vec<(String, String)> {
        let suffix = format!("@{}", self.domain);
        rooms
            .iter()
            .filter(|(j, _)| j.ends_with(&suffix))
            .filter_map(|(j, d)| {
                room::restore(j, d, self.cfg.max_occupants, self.cfg.history_max)
                    .map(|r| (j.clone(), r.cfg.name))
            })
            .collect()
    }

    /// Storage answered the directory's read: every stored room; the public ones are
    /// listed (the rooms themselves stay unloaded).
    fn on_directory_read<H: MamHost>(&self, shard: &H, rooms: Stored) {
        self.lazy.loading.borrow_mut().remove(self.domain.as_str());
        self.lazy.directory_read.set(true);
        let suffix = format!("@{}", self.domain);
        let mut listed = Vec::new();
        for (jid, data) in rooms {
            if !jid.ends_with(&suffix) {
                continue;
            }
            if let Some(r) =
                room::restore(&jid, &data, self.cfg.max_occupants, self.cfg.history_max)
                && r.cfg.public
            {
                listed.push((jid, r.cfg.name));
            }
        }
        directory::list_stored(self, listed);
        self.run_held(shard);
    }

    /// The cluster's view changed: the directory is read again where it is homed next.
    pub fn forget_directory(&self) {
        self.lazy.directory_read.set(false);
    }

    /// Runs what waited, in order, up to the first stanza or call whose room still loads.
    fn run_held<H: MamHost>(&self, shard: &H) {
        loop {
            let next = {
                let mut held = self.lazy.held.borrow_mut();
                let blocked = match held.front() {
                    None => break,
                    Some(Held::Early { epoch, until, .. }) => {
                        shard.view_epoch() < *epoch && Instant::now() < *until
                    }
                    Some(Held::Stanza(r)) => self.lazy.loading.borrow().contains(&*key_of(r)),
                    Some(Held::Call(k, _)) => self.lazy.loading.borrow().contains(k),
                    Some(Held::Barrier { .. }) => false,
                };
                if blocked {
                    return;
                }
                held.pop_front()
            };
            match next {
                Some(Held::Stanza(r)) => {
                    let key = key_of(&r);
                    if self.lazy.failed.borrow().contains(&key) {
                        router::bounce_with(
                            shard,
                            &r,
                            Cond::InternalServerError,
                            Some("the room could not be read from storage: retry"),
                        );
                    } else if !self.ready(shard, &key) {
                        // Gone from memory meanwhile (destroyed by a stanza before it):
                        // it waits for its own read.
                        self.lazy.held.borrow_mut().push_front(Held::Stanza(r));
                        return;
                    } else {
                        room::handle(self, shard, r);
                    }
                }
                Some(Held::Barrier { token, origin }) => shard.storage(Request::Sync {
                    shard: origin,
                    token,
                }),
                Some(Held::Call(k, f)) => f(!self.lazy.failed.borrow().contains(&k)),
                Some(Held::Early { r, .. }) => {
                    let here = {
                        let to = r.to();
                        homed_here(shard, split_full(&to).0)
                    };
                    if here {
                        // Handled as if it arrived now (it may need its room's read).
                        self.lazy.held.borrow_mut().push_front(Held::Stanza(r));
                    } else {
                        forward(shard, r);
                    }
                }
                None => break,
            }
        }
        self.lazy.failed.borrow_mut().clear();
        self.lazy.checked.borrow_mut().clear();
    }
}

/// Whether `key` (a room, or the service's domain) is homed on this shard by its view.
fn homed_here<H: MamHost>(shard: &H, key: &str) -> bool {
    let h = shard.home(key);
    shard.is_local(h) && h.shard() == shard.id
}

/// Sends a stanza on to its room's home by this shard's view.
fn forward<H: MamHost>(shard: &H, r: Routed) {
    let h = {
        let to = r.to();
        shard.home(split_full(&to).0)
    };
    tracing::info!(shard = shard.id, to = %r.to(), "a room stanza routed by an older view: sent on to the room's home");
    shard.send(h, crate::xmpp::core::Msg::Route(r));
}
