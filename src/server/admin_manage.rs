//! What the admin API's rooms and users calls do on a shard (`admin_ops` dispatches them):
//! create, change and destroy rooms and set their affiliations (on the room's home
//! shard), provision a user and its roster, delete a user (on its home shard) and its
//! affiliations (on every shard). "Done" means durable: each answer leaves after the
//! storage commit that covers the change (`xmpp::commit::after_commit`).

use super::Shard;
use super::admin_ops::Reply;
use crate::features::roster::provision::{Provision, provision};
use crate::features::{offline, sm};
use crate::muc::{ManageError, RoomOptions};
use crate::net::outbox::CloseKind;
use crate::storage::{Deleted, Request, RosterItem};
use crate::xmpp::errors::{StreamError, stream_error_bytes};
use crossbeam_channel::Sender;
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Deletions waiting for storage, by token. Per shard, owned by it.
#[derive(Default)]
pub struct Pending {
    deletes: RefCell<HashMap<u64, Deleting>>,
}

/// A deletion waiting for storage: where the answer goes, the user (bare JID), and how
/// many sessions were closed.
struct Deleting(Sender<Reply>, String, usize);

fn refused(status: u16, cond: &'static str, text: impl Into<String>) -> Reply {
    Reply::Refused(status, cond, text.into())
}

/// Sends `ok` once every write this shard queued before is committed (an error if the
/// commit failed).
fn after_commit(shard: &Shard, reply: Sender<Reply>, ok: Reply) {
    crate::xmpp::commit::after_commit(
        shard,
        Box::new(move |_: &Shard, stored: bool| {
            let _ = reply.send(if stored {
                ok
            } else {
                refused(
                    500,
                    "internal-server-error",
                    "the change could not be stored",
                )
            });
        }),
    );
}

fn manage_error(e: ManageError) -> Reply {
    match e {
        ManageError::Disabled => refused(
            503,
            "service-unavailable",
            "the MUC service is off (muc.enabled = false)",
        ),
        ManageError::NotFound => refused(404, "item-not-found", "no such room"),
        ManageError::Name(why) => refused(400, "not-allowed", why),
        ManageError::TooManyRooms => refused(
            503,
            "resource-constraint",
            "this shard holds muc.max_rooms_per_shard rooms",
        ),
        ManageError::HistoryTooLong(max) => refused(
            400,
            "bad-request",
            format!("history_max must be at most {max} (muc.history_max)"),
        ),
        ManageError::Affiliation(a) => refused(
            400,
            "bad-request",
            format!("{a:?} is not outcast, none, member, admin or owner"),
        ),
    }
}

fn affiliations_json(list: &[(String, &'static str)]) -> serde_json::Value {
    list.iter()
        .map(|(j, a)| json!({ "jid": j, "affiliation": a }))
        .collect()
}

/// `PUT /api/rooms/{room}`.
pub fn room_put(shard: &Shard, room: &str, opts: &RoomOptions, reply: Sender<Reply>) {
    match shard.muc.admin_put(shard, room, opts) {
        Ok((view, created)) => {
            let mut v = json!(view);
            v["created"] = created.into();
            after_commit(shard, reply, Reply::Json(v));
        }
        Err(e) => {
            let _ = reply.send(manage_error(e));
        }
    }
}

/// `GET /api/rooms/{room}`: its configuration and affiliations.
pub fn room_get(shard: &Shard, room: &str) -> Reply {
    match (shard.muc.room_view(room), shard.muc.affiliations_of(room)) {
        (Some(view), Some(aff)) => {
            let mut v = json!(view);
            v["affiliations"] = affiliations_json(&aff);
            Reply::Json(v)
        }
        _ => manage_error(ManageError::NotFound),
    }
}

/// `DELETE /api/rooms/{room}`.
pub fn room_destroy(shard: &Shard, room: &str, reason: &str, reply: Sender<Reply>) {
    match shard.muc.admin_destroy(shard, room, reason) {
        Ok(()) => after_commit(shard, reply, Reply::Json(json!({ "destroyed": room }))),
        Err(e) => {
            let _ = reply.send(manage_error(e));
        }
    }
}

/// `PUT /api/rooms/{room}/affiliations`.
pub fn room_affiliations(
    shard: &Shard,
    room: &str,
    items: &[(String, String)],
    reply: Sender<Reply>,
) {
    match shard.muc.admin_affiliations(shard, room, items) {
        Ok(list) => after_commit(
            shard,
            reply,
            Reply::Json(json!({ "room": room, "affiliations": affiliations_json(&list) })),
        ),
        Err(e) => {
            let _ = reply.send(manage_error(e));
        }
    }
}

/// `PUT /api/users/{user}` (on its home shard): recorded, and whether it was new, once
/// that is stored.
pub fn user_provision(shard: &Shard, local: &str, reply: Sender<Reply>) {
    let bare = format!("{local}@{}", shard.domain());
    offline::provision(
        shard,
        &shard.offline,
        local,
        Box::new(move |created| {
            let _ = reply.send(match created {
                Some(created) => Reply::Json(json!({ "user": bare, "created": created })),
                None => refused(
                    500,
                    "internal-server-error",
                    "the change could not be stored",
                ),
            });
        }),
    );
}

/// `GET /api/users/{user}`: whether it is known (provisioned, or seen at a login: asked
/// of storage) and how many sessions it has; 404 if neither.
pub fn user_get(shard: &Shard, local: &str, reply: Sender<Reply>) {
    let bare = format!("{local}@{}", shard.domain());
    let sessions = shard
        .sessions
        .borrow()
        .user(&bare)
        .map_or(0, |u| u.resources.len());
    offline::ask_user(
        shard,
        &shard.offline,
        local,
        false,
        Box::new(move |known| {
            let _ = reply.send(match known {
                None => refused(500, "internal-server-error", "storage failed"),
                Some(false) if sessions == 0 => refused(404, "item-not-found", "no such user"),
                Some(known) => {
                    Reply::Json(json!({ "user": bare, "known": known, "sessions": sessions }))
                }
            });
        }),
    );
}

fn roster_json(items: &[RosterItem]) -> serde_json::Value {
    items
        .iter()
        .map(|i| {
            json!({
                "jid": i.jid,
                "name": i.name,
                "groups": i.groups,
                "subscription": i.subscription.name(),
                "ask": i.ask,
            })
        })
        .collect()
}

/// `PUT /api/users/{user}/roster` (on its home shard): the user is provisioned too.
pub fn user_roster(shard: &Shard, local: &str, items: Vec<Provision>, reply: Sender<Reply>) {
    offline::seen_user(shard, &shard.offline, local);
    let bare = format!("{local}@{}", shard.domain());
    provision(
        shard,
        local,
        items,
        Box::new(move |roster| {
            let _ = reply.send(match roster {
                Some(r) => Reply::Json(json!({ "user": bare, "roster": roster_json(&r) })),
                None => refused(
                    500,
                    "internal-server-error",
                    "the change could not be stored",
                ),
            });
        }),
    );
}

/// Removes a deleted user's affiliations from this shard's rooms.
/// Rooms load on demand: the stored rooms homed on this shard that name the user are
/// loaded first, so the user is removed from them too.
pub fn forget_affiliations(shard: &Rc<Shard>, bare: &str, reply: Sender<Reply>) {
    let s = shard.clone();
    let bare = bare.to_string();
    shard.muc.read_stored(
        &**shard,
        Box::new(move |stored| {
            let needle = bare.as_bytes();
            s.muc.load_stored(&*s, stored, |jid, data| {
                super::cluster::room_here(&s, jid)
                    && data.windows(needle.len()).any(|w| w == needle)
            });
            let n = s.muc.forget_user(&*s, &bare);
            after_commit(&s, reply, Reply::Count(n));
        }),
    );
}

/// `DELETE /api/users/{user}` on its home shard: closes its sessions (live ones with a
/// `policy-violation` stream error; those waiting for XEP-0198 resumption end, and what
/// they held goes to offline storage first, to be deleted with the rest), waits (bounded)
/// for them to end, forgets the user, and deletes what storage holds of it. Answered with
/// the counts once that is durable.
pub async fn user_delete(shard: Rc<Shard>, local: String, reply: Sender<Reply>) {
    let bare = format!("{local}@{}", shard.domain());
    let bound = Duration::from_millis(shard.config.admin.request_timeout_ms / 2);
    let until = Instant::now() + bound;
    // Full JIDs of the sessions ended (a closed one may detach, then end again).
    let mut ended = std::collections::HashSet::new();
    loop {
        for j in sm::expire_user(&*shard, &bare) {
            ended.insert(j.as_str().to_string());
        }
        let live: Vec<_> = shard
            .sessions
            .borrow()
            .user(&bare)
            .map(|u| {
                u.resources
                    .iter()
                    .map(|r| (r.jid.as_str().to_string(), r.ctl.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if live.is_empty() || Instant::now() >= until {
            break;
        }
        for (j, c) in live.iter().filter(|(_, c)| !c.is_closing()) {
            ended.insert(j.clone());
            c.sm_forbid_resume();
            c.close(
                CloseKind::Flush,
                stream_error_bytes(
                    c.framing(),
                    StreamError::PolicyViolation,
                    Some("account deleted"),
                    None,
                ),
            );
        }
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    let closed = ended.len();
    offline::forget_user(&shard.offline, &local);
    shard.rosters.borrow_mut().remove(local.as_str());
    tracing::info!(shard = shard.id, user = %bare, sessions = closed, "admin: user deleted");
    if !shard.has_storage() {
        let _ = reply.send(deleted_reply(&bare, closed, Deleted::default()));
        return;
    }
    let token = shard.random();
    shard
        .admin
        .deletes
        .borrow_mut()
        .insert(token, Deleting(reply, bare.clone(), closed));
    shard.storage(Request::DeleteUser {
        user: local,
        bare,
        shard: shard.id,
        token,
    });
}

fn deleted_reply(bare: &str, sessions: usize, d: Deleted) -> Reply {
    Reply::Json(json!({
        "user": bare,
        "deleted": {
            "record": d.user,
            "sessions": sessions,
            "roster": d.roster,
            "offline": d.offline,
            "archive": d.archive,
        }
    }))
}

/// Storage answered a `DeleteUser` (after its commit; `None`: it failed).
pub fn on_user_deleted(shard: &Shard, token: u64, deleted: Option<Deleted>) {
    let Some(Deleting(reply, bare, sessions)) = shard.admin.deletes.borrow_mut().remove(&token)
    else {
        return;
    };
    let _ = reply.send(match deleted {
        Some(d) => deleted_reply(&bare, sessions, d),
        None => refused(
            500,
            "internal-server-error",
            "the deletion could not be stored",
        ),
    });
}
