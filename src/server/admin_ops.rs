//! What the admin API asks of a shard, through its mailbox: its sessions, a kick, a message
//! to route, and the rooms and users calls (`admin_manage`). The admin thread waits for the
//! answer with a deadline.

use super::Shard;
use crate::net::outbox::CloseKind;
use crate::xmpp::errors::{StreamError, stream_error_bytes};
use serde::Serialize;
use std::rc::Rc;

/// One request and where its answer goes.
pub struct Request {
    pub op: Op,
    pub reply: crossbeam_channel::Sender<Reply>,
}

pub enum Op {
    /// This shard's sessions (of one user when `user`), sorted by full JID, the first
    /// `limit` after `after`.
    Sessions {
        user: Option<String>,
        after: Option<String>,
        limit: usize,
    },
    /// Closes the session of a full JID with a `policy-violation` stream error.
    Kick { jid: String, reason: String },
    /// Routes a stanza the admin API built (from this shard).
    Route { stanza: String },
    /// Answers at once: the shard's loop is alive (the systemd watchdog).
    Ping,
    /// This shard's rooms.
    Rooms,
    /// A room's occupants (on its home shard).
    Occupants { room: String },
    /// Routes one stanza per bound resource of this shard (an announcement), built from
    /// the template by putting each full JID in `to`.
    Announce { from: String, body: String },
    /// Creates or changes a room (on its home shard); answered after the commit.
    RoomPut {
        room: String,
        opts: crate::muc::RoomOptions,
    },
    /// A room's configuration and affiliations.
    RoomGet { room: String },
    /// Destroys a room (XEP-0045 §10.9).
    RoomDestroy { room: String, reason: String },
    /// Sets affiliations: (bare JID, affiliation name), in order.
    RoomAffiliations {
        room: String,
        items: Vec<(String, String)>,
    },
    /// Provisions a user (a localpart of this home shard).
    UserProvision { user: String },
    /// Whether a user (a localpart of this home shard) is known, and its sessions.
    UserGet { user: String },
    /// Provisions roster items of a user (a localpart of this home shard).
    UserRoster {
        user: String,
        items: Vec<crate::features::roster::provision::Provision>,
    },
    /// Deletes a user (a localpart of this home shard): sessions and stored data.
    UserDelete { user: String },
    /// Removes a deleted user's affiliations (a bare JID) from this shard's rooms.
    ForgetAffiliations { bare: String },
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionInfo {
    pub jid: String,
    pub transport: &'static str,
    pub peer: Option<String>,
    /// Seconds since the Unix epoch.
    pub since: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RoomInfo {
    pub jid: String,
    pub name: String,
    pub persistent: bool,
    pub occupants: usize,
    /// In memory (a stored room not loaded is listed from storage, with no occupants).
    pub loaded: bool,
}

/// This shard's rooms in memory.
fn rooms_in_memory(shard: &Shard) -> Vec<RoomInfo> {
    shard
        .muc
        .list()
        .into_iter()
        .map(|(jid, name, persistent, occupants)| RoomInfo {
            jid,
            name,
            persistent,
            occupants,
            loaded: true,
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OccupantInfo {
    pub nick: String,
    pub jid: String,
    pub role: &'static str,
    pub affiliation: &'static str,
}

pub enum Reply {
    Sessions(Vec<SessionInfo>),
    Rooms(Vec<RoomInfo>),
    /// `None`: no such room on this shard.
    Occupants(Option<Vec<OccupantInfo>>),
    /// Whether the session (or the stanza's route) existed.
    Done(bool),
    Count(usize),
    /// A call's answer, as it is sent.
    Json(serde_json::Value),
    /// A refusal: HTTP status, condition, text.
    Refused(u16, &'static str, String),
}

pub fn handle(shard: &Rc<Shard>, r: Request) {
    // A call on one room runs once the room is loaded (rooms load on demand).
    let room = match &r.op {
        Op::RoomPut { room, .. }
        | Op::RoomDestroy { room, .. }
        | Op::RoomAffiliations { room, .. }
        | Op::RoomGet { room }
        | Op::Occupants { room } => Some(room.clone()),
        _ => None,
    };
    match room {
        Some(room) => {
            let s = shard.clone();
            shard.muc.when_loaded(
                &**shard,
                &room,
                Box::new(move |ok| {
                    if ok {
                        return run(&s, r);
                    }
                    let _ = r.reply.send(Reply::Refused(
                        503,
                        "internal-server-error",
                        "the room could not be read from storage; try again".into(),
                    ));
                }),
            );
        }
        None => run(shard, r),
    }
}

fn run(shard: &Rc<Shard>, r: Request) {
    use super::admin_manage as m;
    let reply = match r.op {
        // Answered later (after a commit, or after the user's sessions ended).
        Op::RoomPut { room, opts } => return m::room_put(shard, &room, &opts, r.reply),
        Op::RoomDestroy { room, reason } => {
            return m::room_destroy(shard, &room, &reason, r.reply);
        }
        Op::RoomAffiliations { room, items } => {
            return m::room_affiliations(shard, &room, &items, r.reply);
        }
        Op::UserProvision { user } => return m::user_provision(shard, &user, r.reply),
        Op::UserRoster { user, items } => return m::user_roster(shard, &user, items, r.reply),
        Op::ForgetAffiliations { bare } => {
            return m::forget_affiliations(shard, &bare, r.reply);
        }
        Op::UserDelete { user } => {
            monoio::spawn(m::user_delete(shard.clone(), user, r.reply));
            return;
        }
        Op::RoomGet { room } => m::room_get(shard, &room),
        Op::UserGet { user } => return m::user_get(shard, &user, r.reply),
        Op::Sessions { user, after, limit } => {
            let sessions = shard.sessions.borrow();
            let mut all: Vec<SessionInfo> = sessions
                .all()
                .filter(|x| user.as_deref().is_none_or(|u| x.jid.bare() == u))
                .filter(|x| after.as_deref().is_none_or(|a| x.jid.as_str() > a))
                .map(|x| {
                    let o = x.ctl.origin();
                    SessionInfo {
                        jid: x.jid.as_str().to_string(),
                        transport: crate::metrics::TRANSPORTS
                            .get(o.transport as usize)
                            .copied()
                            .unwrap_or("ws"),
                        peer: o.peer().map(|p| p.to_string()),
                        since: o.since_unix_s(),
                    }
                })
                .collect();
            all.sort_by(|a, b| a.jid.cmp(&b.jid));
            all.truncate(limit);
            Reply::Sessions(all)
        }
        Op::Kick { jid, reason } => {
            let found = crate::xmpp::jid::Jid::parse(&jid)
                .ok()
                .and_then(|j| shard.sessions.borrow().resource(&j).map(|x| x.ctl.clone()));
            match found {
                Some(ctl) => {
                    tracing::info!(shard = shard.id, jid, reason, "admin: session kicked");
                    // Kicked means ended: not kept for a resumption.
                    ctl.sm_forbid_resume();
                    ctl.close(
                        CloseKind::Flush,
                        stream_error_bytes(
                            ctl.framing(),
                            StreamError::PolicyViolation,
                            Some(&reason),
                            None,
                        ),
                    );
                    Reply::Done(true)
                }
                None => Reply::Done(false),
            }
        }
        Op::Ping => Reply::Done(true),
        // Shard 0 adds the stored rooms (rooms load on demand: most may not be in memory).
        Op::Rooms if shard.id == 0 => {
            let s = shard.clone();
            let reply = r.reply;
            shard.muc.read_stored(
                &**shard,
                Box::new(move |stored| {
                    let mut v = rooms_in_memory(&s);
                    for (jid, name) in s.muc.describe_stored(&stored) {
                        v.push(RoomInfo {
                            jid,
                            name,
                            persistent: true,
                            occupants: 0,
                            loaded: false,
                        });
                    }
                    let _ = reply.send(Reply::Rooms(v));
                }),
            );
            return;
        }
        Op::Rooms => Reply::Rooms(rooms_in_memory(shard)),
        Op::Occupants { room } => Reply::Occupants(shard.muc.occupants_of(&room).map(|v| {
            v.into_iter()
                .map(|(nick, jid, role, affiliation)| OccupantInfo {
                    nick,
                    jid,
                    role,
                    affiliation,
                })
                .collect()
        })),
        Op::Route { stanza } => match crate::xmpp::router::reparse(&stanza) {
            Some(r) => {
                crate::xmpp::router::route(&**shard, r);
                Reply::Done(true)
            }
            None => Reply::Done(false),
        },
        Op::Announce { from, body } => {
            let tos: Vec<String> = shard
                .sessions
                .borrow()
                .all()
                .map(|x| x.jid.as_str().to_string())
                .collect();
            for to in &tos {
                let s = super::admin::message_stanza(&from, to, "headline", &body);
                if let Some(r) = crate::xmpp::router::reparse(&s) {
                    crate::xmpp::router::route(&**shard, r);
                }
            }
            Reply::Count(tos.len())
        }
    };
    let _ = r.reply.send(reply);
}
