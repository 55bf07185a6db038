//! A room (XEP-0045): its state (configuration §10.2, occupants with their roles §5.1,
//! affiliations §5.2, subject, history), its persistence (§10.2 `persistentroom`), the
//! presence it sends of an occupant (§7.2.3), and the dispatch of what comes in: presence
//! to `join.rs`, messages to `message.rs`, iq here to `directory.rs` (disco §6),
//! `register.rs` (§7.10, §7.12), `message.rs` (archive), `owner.rs` (§10) and `admin.rs`
//! (§8, §9), and iq to an occupant to `relay.rs`. All state of a room is owned by its home
//! shard.

use super::fanout::{Out, head_tail};
use super::occupants::{Occupant, Occupants, Sess};
use super::{MucConfig, Service};
use crate::features::mam::MamHost;
use crate::xml::ns;
use crate::xml::ns::DISCO_INFO as NS_INFO;
use crate::xml::ns::DISCO_ITEMS as NS_ITEMS;
use crate::xml::ns::MUC_ADMIN as NS_MUC_ADMIN;
use crate::xml::ns::MUC_OWNER as NS_MUC_OWNER;
use crate::xml::ns::MUC_USER as NS_MUC_USER;
use crate::xml::stanza::{Limits, Stanza};
use crate::xml::writer::Elem;
use crate::xmpp::errors::{Cond, error_stanza};
use crate::xmpp::jid::Jid;
use crate::xmpp::router::{Kind, Routed, SType, split_full};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Affiliation {
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub(super) fn name(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }
    pub(super) fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "outcast" => Affiliation::Outcast,
            "none" => Affiliation::None,
            "member" => Affiliation::Member,
            "admin" => Affiliation::Admin,
            "owner" => Affiliation::Owner,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    /// The roles a room may broadcast the presence of (§16.5.3), in the form's order.
    pub(super) const LISTED: [Role; 3] = [Role::Moderator, Role::Participant, Role::Visitor];

    /// This role in a set of roles (`RoomConfig::broadcast_roles`).
    pub(super) fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The label of a role in forms (§16.5.3).
    pub(super) fn label(self) -> &'static str {
        match self {
            Role::None => "None",
            Role::Visitor => "Visitor",
            Role::Participant => "Participant",
            Role::Moderator => "Moderator",
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }
    pub(super) fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "none" => Role::None,
            "visitor" => Role::Visitor,
            "participant" => Role::Participant,
            "moderator" => Role::Moderator,
            _ => return None,
        })
    }
}

/// What the owner configures (§10.2; the form is in `owner.rs`).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct RoomConfig {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) persistent: bool,
    pub(super) public: bool,
    pub(super) members_only: bool,
    pub(super) moderated: bool,
    pub(super) password: Option<String>,
    pub(super) max_occupants: usize,
    /// Real JIDs visible to everyone (non-anonymous), else to moderators only.
    pub(super) whois_anyone: bool,
    pub(super) history_length: usize,
    pub(super) change_subject: bool,
    /// The roles whose presence is broadcast (`muc#roomconfig_presencebroadcast`), a set
    /// of `Role::bit`s: all by default.
    #[serde(default = "all_roles")]
    pub(super) broadcast_roles: u8,
}

fn all_roles() -> u8 {
    Role::Visitor.bit() | Role::Participant.bit() | Role::Moderator.bit()
}

/// One message of the room's history (§7.2.15), kept as the bytes to resend.
pub(super) struct Hist {
    /// `<message … from='room/nick'` with the sender's attributes, up to ` to='`.
    pub(super) head: Bytes,
    /// `<stanza-id/>` element.
    pub(super) sid: String,
    /// The message's content after its start tag, end tag included.
    pub(super) rest: Bytes,
    pub(super) at: SystemTime,
    pub(super) chars: usize,
}

pub struct Room {
    pub(super) jid: String,
    pub(super) cfg: RoomConfig,
    pub(super) locked: bool,
    pub(super) occupants: Occupants,
    pub(super) affiliations: HashMap<Box<str>, Affiliation>,
    /// (escaped subject text, nick who set it).
    pub(super) subject: Option<(String, String)>,
    /// Nicks reserved by registration (§7.10): nick → bare JID, and back.
    pub(super) reserved: HashMap<Box<str>, Box<str>>,
    pub(super) reserved_by: HashMap<Box<str>, Box<str>>,
    pub(super) history: VecDeque<Hist>,
    /// The service's `max_occupants`: a room's own limit cannot exceed it.
    pub(super) occupants_cap: usize,
    /// The service's `history_max`: a room's history length cannot exceed it.
    pub(super) history_cap: usize,
    /// Whether the service's directory lists this room.
    pub(super) listed: bool,
    /// Whether storage holds this room (it is, or was, persistent).
    pub(super) persisted: bool,
}

/// What a persistent room keeps over a restart (XEP-0045 §10.2 `persistentroom`).
#[derive(serde::Serialize, serde::Deserialize)]
struct PersistedRoom {
    cfg: RoomConfig,
    affiliations: Vec<(String, Affiliation)>,
    subject: Option<(String, String)>,
    /// (bare JID, reserved nick).
    #[serde(default)]
    reserved: Vec<(String, String)>,
}

/// Writes a persistent room's configuration, affiliations and subject through storage
/// (or forgets a room that stopped being persistent).
pub(super) fn persist<H: MamHost>(shard: &H, room: &mut Room, out: &mut Out) {
    if shard.shared.storage.is_none() {
        return;
    }
    let req = if room.cfg.persistent {
        let p = PersistedRoom {
            cfg: room.cfg.clone(),
            affiliations: room
                .affiliations
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            subject: room.subject.clone(),
            reserved: room
                .reserved_by
                .iter()
                .map(|(j, n)| (j.to_string(), n.to_string()))
                .collect(),
        };
        room.persisted = true;
        crate::storage::Request::RoomPut {
            jid: room.jid.clone(),
            data: serde_json::to_vec(&p).unwrap_or_default(),
        }
    } else if room.persisted {
        room.persisted = false;
        crate::storage::Request::RoomRemove {
            jid: room.jid.clone(),
        }
    } else {
        return;
    };
    shard.storage(req);
    // What reports this change (results, presence of new affiliations) leaves after the
    // commit that makes it durable.
    out.after_commit();
}

/// Rebuilds a persistent room from storage at start.
pub(super) fn restore(
    jid: &str,
    data: &[u8],
    occupants_cap: usize,
    history_cap: usize,
) -> Option<Room> {
    let p: PersistedRoom = serde_json::from_slice(data).ok()?;
    Some(Room {
        jid: jid.to_string(),
        cfg: p.cfg,
        locked: false,
        occupants: Occupants::default(),
        affiliations: p
            .affiliations
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v))
            .collect(),
        subject: p.subject,
        reserved: p
            .reserved
            .iter()
            .map(|(j, n)| (n.as_str().into(), j.as_str().into()))
            .collect(),
        reserved_by: p
            .reserved
            .into_iter()
            .map(|(j, n)| (j.into_boxed_str(), n.into_boxed_str()))
            .collect(),
        history: VecDeque::new(),
        occupants_cap,
        history_cap,
        listed: false,
        persisted: true,
    })
}

impl Room {
    /// A new room `jid` (local part `local`) that `owner` (a bare JID) creates by joining
    /// it, with the service's default configuration (§10.1).
    pub(super) fn new(jid: &str, local: &str, owner: &str, cfg: &MucConfig) -> Room {
        let mut affiliations = HashMap::new();
        affiliations.insert(Box::from(owner), Affiliation::Owner);
        Room {
            jid: jid.to_string(),
            cfg: RoomConfig {
                name: local.to_string(),
                description: String::new(),
                persistent: false,
                public: true,
                members_only: false,
                moderated: false,
                password: None,
                max_occupants: cfg.max_occupants,
                whois_anyone: false,
                history_length: cfg.history_default,
                change_subject: true,
                broadcast_roles: all_roles(),
            },
            locked: !cfg.auto_create_unlocked,
            occupants: Occupants::default(),
            affiliations,
            subject: None,
            reserved: HashMap::new(),
            reserved_by: HashMap::new(),
            history: VecDeque::new(),
            occupants_cap: cfg.max_occupants,
            history_cap: cfg.history_max,
            listed: false,
            persisted: false,
        }
    }

    /// Seats `nick` (session `jid`) as a participant without the join protocol (benches).
    pub(super) fn seat(&mut self, nick: &str, jid: &Jid, shards: usize) {
        let o = Occupant::new(
            nick,
            jid.bare(),
            Sess::new(jid, shards),
            Role::Participant,
            String::new(),
        );
        self.occupants.add(o);
    }

    pub(super) fn affiliation(&self, bare: &str) -> Affiliation {
        self.affiliations
            .get(bare)
            .copied()
            .unwrap_or(Affiliation::None)
    }

    pub(super) fn default_role(&self, aff: Affiliation) -> Role {
        match aff {
            Affiliation::Owner | Affiliation::Admin => Role::Moderator,
            _ if self.cfg.moderated && aff < Affiliation::Member => Role::Visitor,
            _ => Role::Participant,
        }
    }

    /// Whether the presence of occupants with `role` is broadcast (§16.5.3).
    pub(super) fn broadcasts(&self, role: Role) -> bool {
        self.cfg.broadcast_roles & role.bit() != 0
    }

    /// The nick `bare` reserved (§7.10), if any.
    pub(super) fn reserved_nick(&self, bare: &str) -> Option<&str> {
        self.reserved_by.get(bare).map(|n| &**n)
    }

    /// Whether `nick` is reserved by someone other than `bare` (§7.2.8, §7.6).
    pub(super) fn reserved_by_other(&self, nick: &str, bare: &str) -> bool {
        self.reserved.get(nick).is_some_and(|b| &**b != bare)
    }

    /// Reserves `nick` for `bare`, instead of the nick it had reserved.
    pub(super) fn reserve(&mut self, bare: &str, nick: &str) {
        if let Some(old) = self.reserved_by.insert(bare.into(), nick.into()) {
            self.reserved.remove(&old);
        }
        self.reserved.insert(nick.into(), bare.into());
    }

    pub(super) fn occupant_jid(&self, nick: &str) -> String {
        format!("{}/{nick}", self.jid)
    }

    /// `<x xmlns='…#user'><item …/>{extra}{codes}</x>` for occupant `o`.
    pub(super) fn user_x(
        &self,
        o: &Occupant,
        role: Role,
        real: Option<&str>,
        codes: &[u16],
        extra: &str,
    ) -> String {
        let mut v = Vec::with_capacity(user_x_len(codes, extra));
        self.write_user_x(&mut v, o, role, real, codes, extra, None);
        // Built from `&str` pieces and escapes: UTF-8.
        String::from_utf8(v).unwrap_or_default()
    }

    /// [`Room::user_x`], written at the end of `v`; `item_nick`: the new nick of a nick
    /// change (§7.6), in the item.
    #[allow(clippy::too_many_arguments)]
    fn write_user_x(
        &self,
        v: &mut Vec<u8>,
        o: &Occupant,
        role: Role,
        real: Option<&str>,
        codes: &[u16],
        extra: &str,
        item_nick: Option<&str>,
    ) {
        let mut x = Elem::new(v, "x").attr("xmlns", NS_MUC_USER);
        let mut item = x
            .child("item")
            .attr("affiliation", self.affiliation(o.bare()).name())
            .attr("role", role.name());
        if let Some(j) = real {
            item = item.attr("jid", j);
        }
        if let Some(n) = item_nick {
            item = item.attr("nick", n);
        }
        item.end();
        x = x.raw(extra.as_bytes());
        for c in codes {
            x.child("status").attr_fmt("code", c).end();
        }
        x.end();
    }

    /// The head and tail of occupant `o`'s presence for a broadcast.
    #[allow(clippy::too_many_arguments)]
    fn presence_head_tail(
        &self,
        o: &Occupant,
        role: Role,
        unavailable: bool,
        real: Option<&str>,
        codes: &[u16],
        extra: &str,
        item_nick: Option<&str>,
    ) -> (Bytes, Bytes) {
        let attrs = if unavailable {
            " type='unavailable'"
        } else {
            ""
        };
        let body = if unavailable { "" } else { o.presence.as_str() };
        // The occupant's own presence children, then its `<x/>`.
        let mut inner = Vec::with_capacity(body.len() + user_x_len(codes, extra));
        inner.extend_from_slice(body.as_bytes());
        self.write_user_x(&mut inner, o, role, real, codes, extra, item_nick);
        head_tail(
            Kind::Presence,
            &self.occupant_jid(o.nick()),
            attrs,
            std::str::from_utf8(&inner).unwrap_or_default(),
        )
    }

    /// Sends occupant `oi`'s presence to its own sessions only, with `self_codes` and 110.
    pub(super) fn self_presence(
        &self,
        oi: usize,
        role: Role,
        unavailable: bool,
        self_codes: &[u16],
        extra: &str,
        out: &mut Out,
    ) {
        self.self_presence_as(oi, role, unavailable, self_codes, extra, None, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn self_presence_as(
        &self,
        oi: usize,
        role: Role,
        unavailable: bool,
        self_codes: &[u16],
        extra: &str,
        item_nick: Option<&str>,
        out: &mut Out,
    ) {
        let o = &self.occupants[oi];
        let real = o.sessions().first().map(|s| s.jid.as_str());
        let mut own = self_codes.to_vec();
        own.push(110);
        let (h, t) = self.presence_head_tail(o, role, unavailable, real, &own, extra, item_nick);
        let tos = o.sessions().iter().map(|s| (s.home, s.to.clone()));
        out.fan(h, t, tos.collect());
    }

    /// Sends occupant `oi`'s presence to every occupant session. `self_codes` go to the
    /// occupant's own sessions (110 is added), `codes` to the others; real JIDs only to
    /// those allowed to see them. Others get it only if the room broadcasts the presence
    /// of the occupant's role, or of the role shown (§16.5.3: a role change into or out of
    /// a broadcast role is seen).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn broadcast_presence(
        &self,
        oi: usize,
        role: Role,
        unavailable: bool,
        codes: &[u16],
        self_codes: &[u16],
        extra: &str,
        out: &mut Out,
    ) {
        self.broadcast_as(oi, role, unavailable, codes, self_codes, extra, None, out);
    }

    /// §7.6: occupant `oi` (still under its old nick) becomes `new_nick`: everyone gets
    /// its unavailable presence with the new nick and 303 (its own sessions with 110 too).
    /// The available presence from the new nick is an ordinary broadcast after the rename.
    pub(super) fn broadcast_nick_change(&self, oi: usize, new_nick: &str, out: &mut Out) {
        let role = self.occupants[oi].role;
        self.broadcast_as(oi, role, true, &[303], &[303], "", Some(new_nick), out);
    }

    #[allow(clippy::too_many_arguments)]
    fn broadcast_as(
        &self,
        oi: usize,
        role: Role,
        unavailable: bool,
        codes: &[u16],
        self_codes: &[u16],
        extra: &str,
        item_nick: Option<&str>,
        out: &mut Out,
    ) {
        self.self_presence_as(oi, role, unavailable, self_codes, extra, item_nick, out);
        let o = &self.occupants[oi];
        if !self.broadcasts(o.role) && (unavailable || !self.broadcasts(role)) {
            return;
        }
        let real = o.sessions().first().map(|s| s.jid.as_str());
        let ht =
            |real| self.presence_head_tail(o, role, unavailable, real, codes, extra, item_nick);
        let (h_jid, t_jid) = ht(real);
        let (h_anon, t_anon) = ht(None);
        let (mut to_jid, mut to_anon) = (Vec::new(), Vec::new());
        for (i, r) in self.occupants.iter() {
            if i == oi {
                continue;
            }
            let sees = self.cfg.whois_anyone || r.role == Role::Moderator;
            for s in r.sessions() {
                let t = (s.home, s.to.clone());
                if sees {
                    to_jid.push(t);
                } else {
                    to_anon.push(t);
                }
            }
        }
        out.fan(h_jid, t_jid, to_jid);
        out.fan(h_anon, t_anon, to_anon);
    }

    /// The presence of occupant `oi` as seen by `viewer_role`, to one session.
    pub(super) fn presence_to(
        &self,
        oi: usize,
        to: &str,
        viewer_role: Role,
        codes: &[u16],
    ) -> Routed {
        let o = &self.occupants[oi];
        let sees = self.cfg.whois_anyone || viewer_role == Role::Moderator;
        let real = o
            .sessions()
            .first()
            .map(|s| s.jid.as_str())
            .filter(|_| sees);
        let cap = o.presence.len() + user_x_len(codes, "");
        stanza(
            Kind::Presence,
            SType::Available,
            &self.occupant_jid(o.nick()),
            to,
            cap,
            |p| {
                p.raw(o.presence.as_bytes())
                    .raw_with(|v| self.write_user_x(v, o, o.role, real, codes, "", None))
                    .end()
            },
        )
    }
}

/// Room for a [`Room::user_x`] with `codes` and `extra`.
fn user_x_len(codes: &[u16], extra: &str) -> usize {
    96 + extra.len() + 20 * codes.len()
}

/// A new stanza id: an archive id (XEP-0313 ids are the XEP-0359 ids the room assigned).
pub(super) fn stanza_id<H: MamHost>(shard: &H) -> String {
    crate::features::mam::id_str(shard.next_archive_id())
}

pub(super) fn parse(r: &Routed) -> Option<Stanza<'_>> {
    let text = std::str::from_utf8(&r.payload).ok()?;
    Stanza::parse(
        text,
        &Limits {
            max_depth: 1000,
            max_attrs: 1000,
        },
    )
    .ok()
}

pub(super) fn err(out: &mut Out, r: &Routed, cond: Cond, text: Option<&str>) {
    if r.stype == SType::Error || r.stype == SType::Result {
        return;
    }
    let (v, to, from) = error_stanza(r.kind.name(), &r.to(), &r.from(), r.id_attr(), cond, text);
    out.one(Routed::from_parts(r.kind, SType::Error, v, to, from));
}

/// A stanza from the room (or the service) `from` to one recipient `to`, written with the
/// writer: `<kind xmlns='jabber:client' to='…' from='…'`, then what `write` adds (more
/// attributes, content; `/>` if none). `cap`: about how long that is.
pub(super) fn stanza(
    kind: Kind,
    stype: SType,
    from: &str,
    to: &str,
    cap: usize,
    write: impl FnOnce(Elem<'_, 'static>),
) -> Routed {
    let mut v = Vec::with_capacity(64 + to.len() + from.len() + cap);
    let mut e = Elem::new(&mut v, kind.name()).attr("xmlns", ns::CLIENT);
    let to = e.attr_span("to", to);
    let from = e.attr_span("from", from);
    write(e);
    let span = |r: std::ops::Range<usize>| r.start as u32..r.end as u32;
    Routed::from_parts(kind, stype, v, span(to), span(from))
}

/// The result of iq `r` (its `id` copied as it came), with `inner` (already XML) as its
/// content.
fn result_of(r: &Routed, inner: &str) -> Routed {
    let id = r.id_attr();
    let cap = inner.len() + id.len();
    stanza(Kind::Iq, SType::Result, &r.to(), &r.from(), cap, |iq| {
        let mut iq = iq.attr("type", "result");
        if !id.is_empty() {
            iq = iq.attrs_raw(id.as_bytes());
        }
        if !inner.is_empty() {
            iq = iq.raw(inner.as_bytes());
        }
        iq.end();
    })
}

/// Answers iq `r` with [`result_of`], or with an error if a change it reports could not be
/// stored.
pub(super) fn iq_result(out: &mut Out, r: &Routed, inner: &str) {
    let ok = result_of(r, inner);
    // The answer if a change it reports could not be stored.
    let (v, to, from) = error_stanza(
        "iq",
        &r.to(),
        &r.from(),
        r.id_attr(),
        Cond::InternalServerError,
        Some("the change could not be stored"),
    );
    out.result(ok, Routed::from_parts(Kind::Iq, SType::Error, v, to, from));
}

pub(super) type Rooms = HashMap<Box<str>, Room, ahash::RandomState>;

/// Every stanza to the service's domain: to the service itself, or to a room or one of its
/// occupants.
pub fn handle<H: MamHost>(svc: &Service, shard: &H, r: Routed) {
    let mut out = Out::default();
    {
        let to = r.to().into_owned();
        let from = r.from().into_owned();
        let (bare, nick) = split_full(&to);
        if !bare.contains('@') {
            super::directory::service_stanza(svc, &r, &mut out);
        } else {
            let mut rooms = svc.rooms.borrow_mut();
            match r.kind {
                Kind::Presence => {
                    super::join::presence(svc, shard, &mut rooms, &r, bare, nick, &from, &mut out)
                }
                Kind::Message => {
                    super::message::message(shard, &mut rooms, &r, bare, nick, &from, &mut out)
                }
                Kind::Iq => iq(svc, shard, &mut rooms, &r, bare, nick, &from, &mut out),
            }
        }
    }
    out.flush(shard);
}

/// An iq to a room: disco (§6.4, §7.12), registration (§7.10), its archive (XEP-0313 §6),
/// owner (§10) and admin (§8, §9) requests; an iq to an occupant is relayed (`relay.rs`).
#[allow(clippy::too_many_arguments)]
fn iq<H: MamHost>(
    svc: &Service,
    shard: &H,
    rooms: &mut Rooms,
    r: &Routed,
    bare: &str,
    nick: Option<&str>,
    from: &str,
    out: &mut Out,
) {
    if let Some(nick) = nick {
        return super::relay::iq(rooms, r, bare, nick, from, out);
    }
    if !matches!(r.stype, SType::Get | SType::Set) {
        return;
    }
    let Some(st) = parse(r) else {
        return err(out, r, Cond::BadRequest, None);
    };
    let Some(c) = st.children(0).next() else {
        return err(out, r, Cond::BadRequest, None);
    };
    let Some(room) = rooms.get_mut(bare) else {
        return err(out, r, Cond::ItemNotFound, Some("no such room"));
    };
    let from_bare = split_full(from).0;
    let aff = room.affiliation(from_bare);
    match (st.elems[c].ns, r.stype) {
        (NS_INFO, SType::Get)
            if st
                .attr(c, "node")
                .is_some_and(|n| n.value() == "x-roomuser-item") =>
        {
            super::register::reserved_nick_info(room, from, r, out)
        }
        (NS_INFO, SType::Get) => super::directory::room_info(shard, room, r, out),
        (ns::REGISTER, _) => {
            let max = svc.cfg.max_registrations_per_room;
            super::register::iq(shard, room, &st, c, from, max, r, out)
        }
        (NS_ITEMS, SType::Get) => super::directory::room_items(r, out),
        (ns::MAM, SType::Set) => {
            super::message::archive_query(shard, room, &st, c, aff, r, from, out)
        }
        (NS_MUC_OWNER, _) if aff != Affiliation::Owner => {
            err(out, r, Cond::Forbidden, Some("owners only"))
        }
        (NS_MUC_OWNER, SType::Get) => iq_result(out, r, &super::owner::config_form(room)),
        (NS_MUC_OWNER, SType::Set) => {
            if super::owner::set(svc, shard, room, &st, c, r, out) {
                rooms.remove(bare);
            }
        }
        (NS_MUC_ADMIN, SType::Get) => super::admin::get(room, &st, c, aff, r, from, out),
        (NS_MUC_ADMIN, SType::Set) => super::admin::set(shard, room, &st, c, aff, r, from, out),
        _ => err(out, r, Cond::ServiceUnavailable, None),
    }
}

#[cfg(test)]
pub(super) mod tests;
