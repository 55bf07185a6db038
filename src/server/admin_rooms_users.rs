//! The admin API's calls that change rooms and users (`admin_api` routes them here): the
//! request is checked here, on the admin thread, and carried out on the home shard of the
//! room or user (`admin_manage`), which answers once the change is durable.

use super::admin_api::{Api, err};
use super::admin_ops::{Op, Reply};
use crate::features::roster::provision::Provision;
use crate::storage::Subscription;
use crate::xmpp::jid::Jid;
use serde::Deserialize;

type Answer = Result<(u16, String), (u16, String)>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RoomIn {
    persistent: Option<bool>,
    members_only: Option<bool>,
    public: Option<bool>,
    history_max: Option<usize>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AffiliationsIn {
    items: Vec<AffiliationIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AffiliationIn {
    jid: String,
    affiliation: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UserIn {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterIn {
    items: Vec<RosterItemIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterItemIn {
    jid: String,
    name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    /// none, to, from, both (default none), or remove.
    subscription: Option<String>,
}

/// A JSON body; an empty one is `T::default()` when `empty` allows it.
fn body<T: for<'a> Deserialize<'a>>(b: &[u8], empty: Option<T>) -> Result<T, (u16, String)> {
    if b.iter().all(u8::is_ascii_whitespace)
        && let Some(e) = empty
    {
        return Ok(e);
    }
    serde_json::from_slice(b).map_err(|e| err(400, "bad-request", &format!("bad JSON: {e}")))
}

/// A bare JID (no resource), as written or the bare part's error.
fn bare_jid(s: &str, what: &str) -> Result<Jid, (u16, String)> {
    Jid::parse(s)
        .ok()
        .filter(|j| j.resource().is_none())
        .ok_or_else(|| {
            err(
                400,
                "jid-malformed",
                &format!("{what}: a bare JID is needed"),
            )
        })
}

fn json_of(r: Reply) -> Answer {
    match r {
        Reply::Json(v) => Ok((200, v.to_string())),
        Reply::Refused(status, cond, text) => Err(err(status, cond, &text)),
        _ => Err(err(500, "internal-server-error", "unexpected answer")),
    }
}

impl Api {
    /// `{room}` of a path: a room JID of the MUC service, or its localpart.
    pub(super) fn room_jid(&self, seg: &str) -> Result<String, (u16, String)> {
        let room = super::admin_api::decode(seg, false)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| err(400, "bad-request", "a room name is needed"))?;
        let room = if room.contains('@') {
            room
        } else {
            format!("{room}@{}", self.muc_domain)
        };
        let j = Jid::parse(&room)
            .ok()
            .filter(|j| j.local().is_some() && j.resource().is_none())
            .ok_or_else(|| err(400, "jid-malformed", "not a valid room name"))?;
        if j.domain() != self.muc_domain {
            return Err(err(
                400,
                "bad-request",
                &format!("rooms are ROOM@{}", self.muc_domain),
            ));
        }
        Ok(j.as_str().to_string())
    }

    /// `{user}` of a path: a localpart or a bare JID of this domain; (bare, localpart).
    pub(super) fn user_jid(&self, seg: &str) -> Result<(String, String), (u16, String)> {
        let user = super::admin_api::decode(seg, false)
            .filter(|u| !u.is_empty() && !u.contains('/'))
            .ok_or_else(|| err(400, "bad-request", "a user name is needed"))?;
        let bare = if user.contains('@') {
            user
        } else {
            format!("{user}@{}", self.domain)
        };
        let j = Jid::parse(&bare)
            .ok()
            .filter(|j| j.domain() == self.domain)
            .ok_or_else(|| err(400, "jid-malformed", "not a user of this server"))?;
        let local = j
            .local()
            .ok_or_else(|| err(400, "jid-malformed", "not a user of this server"))?;
        Ok((j.bare().to_string(), local.to_string()))
    }

    fn too_many(&self, n: usize) -> Result<(), (u16, String)> {
        if n > self.max_items {
            return Err(err(
                400,
                "policy-violation",
                &format!(
                    "at most {} items per request (admin.max_items_per_request)",
                    self.max_items
                ),
            ));
        }
        Ok(())
    }

    /// `GET /api/rooms/{room}`.
    pub(super) fn room_get(&self, room: &str) -> Answer {
        let op = Op::RoomGet {
            room: room.to_string(),
        };
        json_of(self.ask(self.home(room)?, op)?)
    }

    /// `PUT /api/rooms/{room}`.
    pub(super) fn room_put(&self, room: &str, b: &[u8]) -> Answer {
        let r: RoomIn = body(b, Some(RoomIn::default()))?;
        let opts = crate::muc::RoomOptions {
            persistent: r.persistent,
            members_only: r.members_only,
            public: r.public,
            history_max: r.history_max,
            name: r.name,
        };
        let op = Op::RoomPut {
            room: room.to_string(),
            opts,
        };
        json_of(self.ask(self.home(room)?, op)?)
    }

    /// `DELETE /api/rooms/{room}?reason=TEXT`.
    pub(super) fn room_delete(&self, room: &str, q: &str) -> Answer {
        let reason = super::admin_api::query(q, "reason")
            .and_then(|r| super::admin_api::decode(r, true))
            .unwrap_or_default();
        let op = Op::RoomDestroy {
            room: room.to_string(),
            reason,
        };
        json_of(self.ask(self.home(room)?, op)?)
    }

    /// `PUT /api/rooms/{room}/affiliations`.
    pub(super) fn room_affiliations(&self, room: &str, b: &[u8]) -> Answer {
        let a: AffiliationsIn = body(b, None)?;
        self.too_many(a.items.len())?;
        let mut items = Vec::with_capacity(a.items.len());
        for i in a.items {
            let j = bare_jid(&i.jid, "jid")?;
            if !crate::muc::is_affiliation(&i.affiliation) {
                return Err(err(
                    400,
                    "bad-request",
                    "affiliation must be owner, admin, member, outcast or none",
                ));
            }
            items.push((j.as_str().to_string(), i.affiliation));
        }
        let op = Op::RoomAffiliations {
            room: room.to_string(),
            items,
        };
        json_of(self.ask(self.home(room)?, op)?)
    }

    /// `GET /api/users/{user}`.
    pub(super) fn user_get(&self, bare: &str, local: &str) -> Answer {
        let op = Op::UserGet {
            user: local.to_string(),
        };
        json_of(self.ask(self.home(bare)?, op)?)
    }

    /// `PUT /api/users/{user}`.
    pub(super) fn user_put(&self, bare: &str, local: &str, b: &[u8]) -> Answer {
        let _: UserIn = body(b, Some(UserIn::default()))?;
        let op = Op::UserProvision {
            user: local.to_string(),
        };
        json_of(self.ask(self.home(bare)?, op)?)
    }

    /// `PUT /api/users/{user}/roster`.
    pub(super) fn user_roster(&self, bare: &str, local: &str, b: &[u8]) -> Answer {
        let r: RosterIn = body(b, None)?;
        self.too_many(r.items.len())?;
        let mut items = Vec::with_capacity(r.items.len());
        for i in r.items {
            let j = bare_jid(&i.jid, "jid")?;
            if j.as_str() == bare {
                return Err(err(400, "bad-request", "a user is not its own contact"));
            }
            let subscription = match i.subscription.as_deref().unwrap_or("none") {
                "none" => Some(Subscription::None),
                "to" => Some(Subscription::To),
                "from" => Some(Subscription::From),
                "both" => Some(Subscription::Both),
                "remove" => None,
                _ => {
                    return Err(err(
                        400,
                        "bad-request",
                        "subscription must be none, to, from, both or remove",
                    ));
                }
            };
            let mut groups: Vec<String> = Vec::with_capacity(i.groups.len());
            for g in i.groups {
                // RFC 6121 §2.1.2.2: no empty group names, and each group once.
                if g.is_empty() {
                    return Err(err(400, "bad-request", "empty group name"));
                }
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
            items.push(Provision {
                jid: j.as_str().to_string(),
                name: i.name.filter(|n| !n.is_empty()),
                groups,
                subscription,
            });
        }
        let op = Op::UserRoster {
            user: local.to_string(),
            items,
        };
        json_of(self.ask(self.home(bare)?, op)?)
    }

    /// `DELETE /api/users/{user}`: on its home shard, then its affiliations on every shard;
    /// 404 when nothing at all was there.
    /// A deleted user's affiliations removed from the rooms of every shard of this node
    /// (stored rooms homed here included); how many.
    pub(super) fn forget_here(&self, bare: &str) -> Result<usize, (u16, String)> {
        let mut n = 0;
        for s in 0..self.senders.len() {
            let op = Op::ForgetAffiliations {
                bare: bare.to_string(),
            };
            match self.ask(s, op)? {
                Reply::Count(c) => n += c,
                other => return json_of(other).map(|_| n),
            }
        }
        Ok(n)
    }

    /// `DELETE /api/users/{user}/affiliations`: the user's affiliations removed from the
    /// rooms homed on this node (the user's deletion on its home node asks every other
    /// node this), answered once stored.
    pub(super) fn forget_affiliations(&self, bare: &str) -> Answer {
        let n = self.forget_here(bare)?;
        Ok((
            200,
            serde_json::json!({ "user": bare, "affiliations": n }).to_string(),
        ))
    }

    pub(super) fn user_delete(
        &self,
        bare: &str,
        local: &str,
        auth: Option<&str>,
        forwarded_by: Option<&str>,
    ) -> Answer {
        let op = Op::UserDelete {
            user: local.to_string(),
        };
        let mut v = match self.ask(self.home(bare)?, op)? {
            Reply::Json(v) => v,
            other => return json_of(other),
        };
        let mut affiliations = self.forget_here(bare)?;
        // In a cluster, the rooms homed on the other nodes too (each answers once that is
        // stored); a node without `cluster.admin_url` cannot be asked, and is named.
        let mut unreached = Vec::new();
        let me = self.cluster.as_ref().map(|(n, _)| n.as_str()).unwrap_or("");
        for (node, base) in self.other_admins() {
            if Some(node.as_str()) == forwarded_by {
                continue;
            }
            let path = format!(
                "/api/users/{}/affiliations",
                super::admin_forward::encode(bare)
            );
            let (st, b) =
                super::admin_forward::forward(&base, me, "DELETE", &path, auth, b"", self.deadline);
            let n = serde_json::from_str::<serde_json::Value>(&b)
                .ok()
                .and_then(|v| v["affiliations"].as_u64());
            match (st, n) {
                (200, Some(n)) => affiliations += n as usize,
                _ => {
                    tracing::warn!(node = %node, status = st, "admin: a user's affiliations on another node not removed");
                    unreached.push(node);
                }
            }
        }
        v["deleted"]["affiliations"] = affiliations.into();
        if !unreached.is_empty() {
            v["affiliations_not_removed_on"] = unreached.into();
        }
        // Nothing at all: a user this server never knew.
        let d = &v["deleted"];
        let nothing = d["record"] == false
            && ["sessions", "roster", "offline", "archive", "affiliations"]
                .iter()
                .all(|k| d[*k] == 0);
        if nothing {
            return Err(err(
                404,
                "item-not-found",
                "no such user: nothing is stored for it",
            ));
        }
        Ok((200, v.to_string()))
    }
}
