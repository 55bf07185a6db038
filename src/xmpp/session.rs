//! The sessions whose home is this shard: every bound resource of every user U with
//! home(U) == this shard, so one thread sees all of a user's state without locks.

use super::jid::Jid;
use super::sink::Sink;
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::rc::Rc;

pub struct Resource {
    pub jid: Jid,
    pub ctl: Rc<Sink>,
    /// Sent initial presence and not yet unavailable (RFC 6121 §4.2).
    pub available: bool,
    pub priority: i8,
    /// The last broadcast presence, already stamped, for the user's new resources.
    pub presence: Option<Bytes>,
    /// Entities that got directed presence and must get `unavailable` at the end (§4.6).
    pub directed: Vec<Jid>,
    /// Asked for the roster: gets roster pushes (RFC 6121 §2.1.6).
    pub roster_requested: bool,
    /// XEP-0280 carbons enabled.
    pub carbons: bool,
}

#[derive(Default)]
pub struct User {
    pub resources: SmallVec<[Resource; 1]>,
}

#[derive(Default)]
pub struct SessionTable {
    users: HashMap<Box<str>, User, ahash::RandomState>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum BindError {
    TooManySessions,
}

impl SessionTable {
    pub fn user(&self, bare: &str) -> Option<&User> {
        self.users.get(bare)
    }

    /// The resources of `bare` for which `keep` holds: JID and connection.
    pub fn resources_where(
        &self,
        bare: &str,
        keep: impl Fn(&Resource) -> bool,
    ) -> Vec<(Jid, Rc<Sink>)> {
        self.user(bare)
            .map(|u| {
                u.resources
                    .iter()
                    .filter(|r| keep(r))
                    .map(|r| (r.jid.clone(), r.ctl.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn user_mut(&mut self, bare: &str) -> Option<&mut User> {
        self.users.get_mut(bare)
    }

    pub fn resource(&self, jid: &Jid) -> Option<&Resource> {
        let r = jid.resource()?;
        self.users
            .get(jid.bare())?
            .resources
            .iter()
            .find(|x| x.jid.resource() == Some(r))
    }

    /// The resource bound by connection `conn_id` (not one that replaced it).
    pub fn own_resource_mut(&mut self, jid: &Jid, conn_id: u64) -> Option<&mut Resource> {
        let r = jid.resource()?;
        self.users
            .get_mut(jid.bare())?
            .resources
            .iter_mut()
            .find(|x| x.jid.resource() == Some(r) && x.ctl.id == conn_id)
    }

    /// Binds a full JID. A session already bound to it is removed and returned, for the
    /// caller to close with `conflict` (RFC 6120 §7.7.2.2, "override the existing one").
    pub fn bind(
        &mut self,
        jid: Jid,
        ctl: Rc<Sink>,
        max_per_user: usize,
    ) -> Result<Option<Resource>, BindError> {
        let user = self.users.entry(jid.bare().into()).or_default();
        let old = user
            .resources
            .iter()
            .position(|x| x.jid == jid)
            .map(|i| user.resources.remove(i));
        if old.is_none() && user.resources.len() >= max_per_user {
            if user.resources.is_empty() {
                self.users.remove(jid.bare());
            }
            return Err(BindError::TooManySessions);
        }
        if old.is_none() {
            crate::metrics::shard().sessions.add(1);
        }
        user.resources.push(Resource {
            jid,
            ctl,
            available: false,
            priority: 0,
            presence: None,
            directed: Vec::new(),
            roster_requested: false,
            carbons: false,
        });
        crate::metrics::shard()
            .users_online
            .set(self.users.len() as i64);
        Ok(old)
    }

    /// Removes the resource bound by `conn_id`, if it is still that connection's.
    pub fn unbind(&mut self, jid: &Jid, conn_id: u64) -> Option<Resource> {
        let user = self.users.get_mut(jid.bare())?;
        let i = user
            .resources
            .iter()
            .position(|x| x.jid == *jid && x.ctl.id == conn_id)?;
        let r = user.resources.remove(i);
        if user.resources.is_empty() {
            self.users.remove(jid.bare());
        }
        let m = crate::metrics::shard();
        m.sessions.add(-1);
        m.users_online.set(self.users.len() as i64);
        Some(r)
    }

    /// Every bound resource of this shard (admin listings; a cold path).
    pub fn all(&self) -> impl Iterator<Item = &Resource> {
        self.users.values().flat_map(|u| u.resources.iter())
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }
}
