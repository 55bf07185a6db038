//! Roster items an application provisions (the admin API's `PUT /api/users/{user}/roster`,
//! for applications whose contacts live in their own database): each item is written with
//! the subscription it is given, stored, and pushed to the user's interested resources
//! (RFC 6121 §2.1.6) after the commit. Only the user's own roster changes: a mutual
//! subscription is provisioned into both users' rosters. Presence follows at once for an
//! online user: a contact that gains `from` gets the user's current presence, one that
//! loses it gets `unavailable`, and a new `to` probes the contact (§4.3).

use super::subscription::Presences;
use super::{Pending, RosterHost, ensure, item, queue, save, send_presences, subscription};
use crate::storage::{RosterItem, Subscription};
use crate::xmpp::router;

/// One provisioned item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provision {
    /// The contact's bare JID.
    pub jid: String,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// `None`: remove the item.
    pub subscription: Option<Subscription>,
}

/// Called with the user's roster (its listed items, sorted) once the change is durable,
/// or `None` if the commit failed.
pub type Done = Box<dyn FnOnce(Option<Vec<RosterItem>>)>;

/// Applies `items` to `user`'s roster (a localpart of this home shard), loading it first
/// if needed; `done` is called after the commit that covers the change.
pub fn provision<H: RosterHost>(shard: &H, user: &str, items: Vec<Provision>, done: Done) {
    if ensure(shard, user) {
        apply(shard, user, items, done);
    } else {
        queue(shard, user, Pending::Provision { items, done });
    }
}

/// The roster is loaded.
pub(super) fn apply<H: RosterHost>(shard: &H, user: &str, items: Vec<Provision>, done: Done) {
    let bare = format!("{user}@{}", shard.domain());
    let online = shard
        .sessions
        .borrow()
        .user(&bare)
        .is_some_and(|u| u.resources.iter().any(|r| r.available));
    for p in items {
        let old = item(shard, user, &p.jid);
        let Some(sub) = p.subscription else {
            if let Some(old) = old.filter(|o| o.listed) {
                if old.subscription.has_from() && online {
                    send_presences(shard, &bare, &old.jid, Presences::Unavailable);
                }
                save(shard, user, old, true);
            }
            continue;
        };
        let mut it = old.clone().unwrap_or_else(|| RosterItem {
            jid: p.jid.clone(),
            ..Default::default()
        });
        it.name = p.name;
        it.groups = p.groups;
        it.subscription = sub;
        it.listed = true;
        // A pending request the new state grants is answered.
        it.ask &= !sub.has_to();
        it.pending_in &= !sub.has_from();
        if old.as_ref() == Some(&it) {
            continue;
        }
        let was = old.map(|o| o.subscription).unwrap_or_default();
        save(shard, user, it, false);
        if online {
            match (was.has_from(), sub.has_from()) {
                (false, true) => send_presences(shard, &bare, &p.jid, Presences::Available),
                (true, false) => send_presences(shard, &bare, &p.jid, Presences::Unavailable),
                _ => {}
            }
            if sub.has_to() && !was.has_to() {
                router::route(shard, subscription(&bare, &p.jid, "probe"));
            }
        }
    }
    let roster = listed(shard, user);
    crate::xmpp::commit::after_commit(
        shard,
        Box::new(move |_: &H, ok: bool| done(ok.then_some(roster))),
    );
}

/// `user`'s listed items, sorted by JID.
fn listed<H: RosterHost>(shard: &H, user: &str) -> Vec<RosterItem> {
    let mut v: Vec<RosterItem> = shard
        .rosters()
        .borrow()
        .get(user)
        .map(|r| r.items.values().filter(|i| i.listed).cloned().collect())
        .unwrap_or_default();
    v.sort_by(|a, b| a.jid.cmp(&b.jid));
    v
}
