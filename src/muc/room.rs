//! Rooms (XEP-0045): join (§7.2), groupchat (§7.4), private messages (§7.5), subject
//! (§8.1), leave (§7.14), history (§7.2.15), roles and affiliations (§9, §10), room
//! configuration (§10.2), destroy (§10.9) and disco (§6). All state of a room is owned by
//! its home shard.

use super::fanout::{Out, build, head_tail, to_bytes};
use super::{NS_MUC, NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_USER, Service};
use crate::features::disco::{NS_INFO, NS_ITEMS};
use crate::server::Shard;

fn home(bare: &str, shards: usize) -> usize {
    crate::runtime::home(bare, shards).shard()
}
use crate::xml::escape::{escape_attr_to_string as ea, escape_text_to_string as et};
use crate::xml::stanza::{Limits, Stanza};
use crate::xmpp::errors::{Cond, error_stanza};
use crate::xmpp::jid::Jid;
use crate::xmpp::router::{Kind, Routed, SType, split_full};
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::time::{Duration, SystemTime};

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
    fn name(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }
    fn parse(s: &str) -> Option<Affiliation> {
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
    fn name(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }
    fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "none" => Role::None,
            "visitor" => Role::Visitor,
            "participant" => Role::Participant,
            "moderator" => Role::Moderator,
            _ => return None,
        })
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct RoomConfig {
    name: String,
    description: String,
    persistent: bool,
    public: bool,
    members_only: bool,
    moderated: bool,
    password: Option<String>,
    max_occupants: usize,
    /// Real JIDs visible to everyone (non-anonymous), else to moderators only.
    whois_anyone: bool,
    history_length: usize,
    change_subject: bool,
}

struct Sess {
    jid: Jid,
    /// Escaped, for fan-out `to` parts.
    to: Bytes,
    home: usize,
}

struct Occupant {
    nick: Box<str>,
    bare: Box<str>,
    sessions: SmallVec<[Sess; 1]>,
    role: Role,
    /// The occupant's own presence children (show, status...), re-sent to others.
    presence: String,
}

struct Hist {
    /// `<message … from='room/nick'` with the sender's attributes, up to ` to='`.
    head: Bytes,
    /// `<stanza-id/>` element.
    sid: String,
    /// The message's content after its start tag, end tag included.
    rest: Bytes,
    at: SystemTime,
    chars: usize,
}

pub struct Room {
    jid: String,
    cfg: RoomConfig,
    locked: bool,
    occupants: Vec<Occupant>,
    affiliations: HashMap<Box<str>, Affiliation>,
    /// (escaped subject text, nick who set it).
    subject: Option<(String, String)>,
    history: VecDeque<Hist>,
    next_sid: u64,
    /// The service's `max_occupants`: a room's own limit cannot exceed it.
    occupants_cap: usize,
    /// The service's `history_max`: a room's history length cannot exceed it.
    history_cap: usize,
    /// Whether the service's directory lists this room.
    listed: bool,
    /// Whether storage holds this room (it is, or was, persistent).
    persisted: bool,
}

/// What a persistent room keeps over a restart (XEP-0045 §10.2 `persistentroom`).
#[derive(serde::Serialize, serde::Deserialize)]
struct PersistedRoom {
    cfg: RoomConfig,
    affiliations: Vec<(String, Affiliation)>,
    subject: Option<(String, String)>,
}

/// Writes a persistent room's configuration, affiliations and subject through storage
/// (or forgets a room that stopped being persistent).
fn persist(shard: &Shard, room: &mut Room, out: &mut Out) {
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
        occupants: Vec::new(),
        affiliations: p
            .affiliations
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v))
            .collect(),
        subject: p.subject,
        history: VecDeque::new(),
        next_sid: 0,
        occupants_cap,
        history_cap,
        listed: false,
        persisted: true,
    })
}

/// After a restore: list it in the service's directory (see `announce`).
pub(super) fn announce_restored(room: &mut Room, domain: &str, shard: &Shard) {
    let mut out = Out::default();
    room.listed = false;
    let listed = room.cfg.public;
    if listed {
        room.listed = true;
        out.one(directory_headline(room, domain));
    }
    out.flush(shard);
}

const NS_DIRECTORY: &str = "urn:aoba:muc:directory";

/// Tells the service's home shard whether `room` is in the public directory. A headline
/// from the room's own JID: no client can send it, since the server stamps every client
/// stanza's `from` with the client's JID.
fn announce(room: &mut Room, domain: &str, out: &mut Out) {
    let listed =
        room.cfg.public && !room.locked && (room.cfg.persistent || !room.occupants.is_empty());
    if listed == room.listed {
        return;
    }
    room.listed = listed;
    out.one(directory_headline(room, domain));
}

/// The headline that tells the service whether `room` is listed now (`room.listed`).
fn directory_headline(room: &Room, domain: &str) -> Routed {
    let inner = format!(
        "<x xmlns='{NS_DIRECTORY}' listed='{}' name='{}'/>",
        room.listed as u8,
        ea(&room.cfg.name)
    );
    build(
        Kind::Message,
        SType::Headline,
        &room.jid,
        domain,
        " type='headline'",
        &inner,
    )
}

/// A room is going away: take it out of the directory.
fn unlist(room: &mut Room, domain: &str, out: &mut Out) {
    room.cfg.public = false;
    announce(room, domain, out);
}

impl Room {
    pub(super) fn seat(&mut self, nick: &str, jid: &Jid, shards: usize) {
        let mut sessions = SmallVec::new();
        sessions.push(Sess {
            to: to_bytes(jid.as_str()),
            home: home(jid.bare(), shards),
            jid: jid.clone(),
        });
        self.occupants.push(Occupant {
            nick: nick.into(),
            bare: jid.bare().into(),
            sessions,
            role: Role::Participant,
            presence: String::new(),
        });
    }

    fn affiliation(&self, bare: &str) -> Affiliation {
        self.affiliations
            .get(bare)
            .copied()
            .unwrap_or(Affiliation::None)
    }

    fn by_session(&self, full: &str) -> Option<usize> {
        self.occupants
            .iter()
            .position(|o| o.sessions.iter().any(|s| s.jid.as_str() == full))
    }

    fn by_nick(&self, nick: &str) -> Option<usize> {
        self.occupants.iter().position(|o| &*o.nick == nick)
    }

    fn default_role(&self, aff: Affiliation) -> Role {
        match aff {
            Affiliation::Owner | Affiliation::Admin => Role::Moderator,
            _ if self.cfg.moderated && aff < Affiliation::Member => Role::Visitor,
            _ => Role::Participant,
        }
    }

    fn occupant_jid(&self, nick: &str) -> String {
        format!("{}/{nick}", self.jid)
    }

    /// `<x xmlns='…#user'><item …/>{codes}{extra}</x>` for occupant `o`.
    fn user_x(
        &self,
        o: &Occupant,
        role: Role,
        real: Option<&str>,
        codes: &[u16],
        extra: &str,
    ) -> String {
        let mut x = format!(
            "<x xmlns='{NS_MUC_USER}'><item affiliation='{}' role='{}'",
            self.affiliation(&o.bare).name(),
            role.name()
        );
        if let Some(j) = real {
            let _ = write!(x, " jid='{}'", ea(j));
        }
        x.push_str("/>");
        x.push_str(extra);
        for c in codes {
            let _ = write!(x, "<status code='{c}'/>");
        }
        x.push_str("</x>");
        x
    }

    /// Sends occupant `oi`'s presence to every occupant session. `self_codes` go to the
    /// occupant's own sessions (110 is added), `codes` to the others; real JIDs only to
    /// those allowed to see them.
    #[allow(clippy::too_many_arguments)]
    fn broadcast_presence(
        &self,
        oi: usize,
        role: Role,
        unavailable: bool,
        codes: &[u16],
        self_codes: &[u16],
        extra: &str,
        out: &mut Out,
    ) {
        let o = &self.occupants[oi];
        let from = self.occupant_jid(&o.nick);
        let attrs = if unavailable {
            " type='unavailable'"
        } else {
            ""
        };
        let body = if unavailable { "" } else { o.presence.as_str() };
        let real = o.sessions.first().map(|s| s.jid.as_str().to_string());
        let mut own = self_codes.to_vec();
        own.push(110);
        let (h_self, t_self) = head_tail(
            Kind::Presence,
            &from,
            attrs,
            &format!(
                "{body}{}",
                self.user_x(o, role, real.as_deref(), &own, extra)
            ),
        );
        let (h_jid, t_jid) = head_tail(
            Kind::Presence,
            &from,
            attrs,
            &format!(
                "{body}{}",
                self.user_x(o, role, real.as_deref(), codes, extra)
            ),
        );
        let (h_anon, t_anon) = head_tail(
            Kind::Presence,
            &from,
            attrs,
            &format!("{body}{}", self.user_x(o, role, None, codes, extra)),
        );
        let (mut to_self, mut to_jid, mut to_anon) = (Vec::new(), Vec::new(), Vec::new());
        for (i, r) in self.occupants.iter().enumerate() {
            let sees = self.cfg.whois_anyone || r.role == Role::Moderator;
            for s in &r.sessions {
                let t = (s.home, s.to.clone());
                if i == oi {
                    to_self.push(t);
                } else if sees {
                    to_jid.push(t);
                } else {
                    to_anon.push(t);
                }
            }
        }
        out.fan(h_self, t_self, to_self);
        out.fan(h_jid, t_jid, to_jid);
        out.fan(h_anon, t_anon, to_anon);
    }

    /// The presence of occupant `oi` as seen by `viewer_role`, to one session.
    fn presence_to(&self, oi: usize, to: &str, viewer_role: Role, codes: &[u16]) -> Routed {
        let o = &self.occupants[oi];
        let sees = self.cfg.whois_anyone || viewer_role == Role::Moderator;
        let real = o
            .sessions
            .first()
            .map(|s| s.jid.as_str().to_string())
            .filter(|_| sees);
        let inner = format!(
            "{}{}",
            o.presence,
            self.user_x(o, o.role, real.as_deref(), codes, "")
        );
        build(
            Kind::Presence,
            SType::Available,
            &self.occupant_jid(&o.nick),
            to,
            "",
            &inner,
        )
    }

    /// Stanza ids are archive ids (XEP-0313 ids are the XEP-0359 ids the room assigned).
    fn next_stanza_id(&mut self, shard: &Shard) -> String {
        self.next_sid += 1;
        crate::features::mam::id_str(shard.next_archive_id())
    }
}

fn parse(r: &Routed) -> Option<Stanza<'_>> {
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

fn err(out: &mut Out, r: &Routed, cond: Cond, text: Option<&str>) {
    if r.stype == SType::Error || r.stype == SType::Result {
        return;
    }
    let (v, to, from) = error_stanza(r.kind.name(), &r.to(), &r.from(), r.id_attr(), cond, text);
    out.one(Routed::from_parts(r.kind, SType::Error, v, to, from));
}

fn iq_result(out: &mut Out, r: &Routed, inner: &str) {
    let attrs = format!(" type='result' {}", r.id_attr());
    let ok = build(
        Kind::Iq,
        SType::Result,
        &r.to(),
        &r.from(),
        attrs.trim_end(),
        inner,
    );
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

pub fn handle(svc: &Service, shard: &Shard, r: Routed) {
    let mut out = Out::default();
    {
        let to = r.to().into_owned();
        let from = r.from().into_owned();
        let (bare, nick) = split_full(&to);
        if !bare.contains('@') {
            service_stanza(svc, shard, &r, &mut out);
        } else {
            let mut rooms = svc.rooms.borrow_mut();
            match r.kind {
                Kind::Presence => presence(svc, shard, &mut rooms, &r, bare, nick, &from, &mut out),
                Kind::Message => message(shard, &mut rooms, &r, bare, nick, &from, &mut out),
                Kind::Iq => iq(svc, shard, &mut rooms, &r, bare, nick, &from, &mut out),
            }
        }
    }
    out.flush(shard);
}

type Rooms = HashMap<Box<str>, Room, ahash::RandomState>;

fn service_stanza(svc: &Service, shard: &Shard, r: &Routed, out: &mut Out) {
    if r.kind == Kind::Message && r.stype == SType::Headline {
        let from = r.from();
        let (room_jid, _) = split_full(&from);
        if room_jid.ends_with(&format!("@{}", svc.domain))
            && let Some(st) = parse(r)
            && let Some(x) = st.child(0, "x", NS_DIRECTORY)
        {
            let mut dir = svc.directory.borrow_mut();
            if st.attr(x, "listed").map(|a| a.value()).as_deref() == Some("1") {
                let name = st
                    .attr(x, "name")
                    .map(|a| a.value().into_owned())
                    .unwrap_or_default();
                dir.insert(room_jid.to_string(), name);
            } else {
                dir.remove(room_jid);
            }
        }
        return;
    }
    if r.kind != Kind::Iq || !matches!(r.stype, SType::Get | SType::Set) {
        if r.kind == Kind::Message {
            err(out, r, Cond::ServiceUnavailable, None);
        }
        return;
    }
    let Some(st) = parse(r) else {
        return err(out, r, Cond::BadRequest, None);
    };
    let Some(c) = st.children(0).next() else {
        return err(out, r, Cond::BadRequest, None);
    };
    match (st.elems[c].ns, r.stype) {
        (NS_INFO, SType::Get) => iq_result(
            out,
            r,
            &format!(
                "<query xmlns='{NS_INFO}'><identity category='conference' type='text' name='Chatrooms'/><feature var='{NS_MUC}'/><feature var='{NS_INFO}'/><feature var='{NS_ITEMS}'/></query>"
            ),
        ),
        (NS_ITEMS, SType::Get) => {
            // The directory of public rooms of every shard (XEP-0045 §6.3).
            let mut q = format!("<query xmlns='{NS_ITEMS}'>");
            for (jid, name) in svc.directory.borrow().iter() {
                let _ = write!(q, "<item jid='{}' name='{}'/>", ea(jid), ea(name));
            }
            q.push_str("</query>");
            let _ = shard;
            iq_result(out, r, &q);
        }
        _ => err(out, r, Cond::ServiceUnavailable, None),
    }
}

#[allow(clippy::too_many_arguments)]
fn presence(
    svc: &Service,
    shard: &Shard,
    rooms: &mut Rooms,
    r: &Routed,
    bare: &str,
    nick: Option<&str>,
    from: &str,
    out: &mut Out,
) {
    if matches!(r.stype, SType::Unavailable | SType::Error) {
        if let Some(room) = rooms.get_mut(bare) {
            leave(room, from, out);
            if room.occupants.is_empty() && !room.cfg.persistent {
                unlist(room, &svc.domain, out);
                rooms.remove(bare);
            }
        }
        return;
    }
    if r.stype != SType::Available {
        return; // subscriptions to a room: nothing to do
    }
    let Some(nick) = nick.filter(|n| !n.trim().is_empty()) else {
        return err(out, r, Cond::JidMalformed, Some("a nickname is required"));
    };
    let Some(st) = parse(r) else {
        return err(out, r, Cond::BadRequest, None);
    };
    let Ok(from_jid) = Jid::parse(from) else {
        return;
    };
    let from_bare = from_jid.bare().to_string();
    // The occupant's own presence children, minus the MUC join element, re-sent to others.
    let mut own = String::new();
    for c in st.children(0) {
        let e = &st.elems[c];
        if e.ns != NS_MUC && e.ns != NS_MUC_USER && self_contained(&st, c) {
            own.push_str(&st.src[e.start as usize..e.end as usize]);
        }
    }
    let mut created = false;
    if !rooms.contains_key(bare) {
        let local = bare.split('@').next().unwrap_or("");
        if svc.cfg.require_group_uuid_names && !super::is_group_uuid(local) {
            return err(
                out,
                r,
                Cond::NotAllowed,
                Some("room names are group-{uuid}"),
            );
        }
        if rooms.len() >= svc.cfg.max_rooms_per_shard {
            return err(out, r, Cond::ResourceConstraint, Some("too many rooms"));
        }
        let mut affiliations = HashMap::new();
        affiliations.insert(Box::from(from_bare.as_str()), Affiliation::Owner);
        rooms.insert(
            bare.into(),
            Room {
                jid: bare.to_string(),
                cfg: RoomConfig {
                    name: local.to_string(),
                    description: String::new(),
                    persistent: false,
                    public: true,
                    members_only: false,
                    moderated: false,
                    password: None,
                    max_occupants: svc.cfg.max_occupants,
                    whois_anyone: false,
                    history_length: svc.cfg.history_default,
                    change_subject: true,
                },
                locked: !svc.cfg.auto_create_unlocked,
                occupants: Vec::new(),
                affiliations,
                subject: None,
                history: VecDeque::new(),
                next_sid: 0,
                occupants_cap: svc.cfg.max_occupants,
                history_cap: svc.cfg.history_max,
                listed: false,
                persisted: false,
            },
        );
        created = true;
        tracing::info!(shard = shard.id, room = bare, owner = %from_bare, "room created");
    }
    let room = rooms
        .get_mut(bare)
        .expect("the room exists or was inserted just above");
    // Already in the room with this session: a presence update (or a nick change).
    if let Some(oi) = room.by_session(from) {
        if &*room.occupants[oi].nick != nick {
            return err(
                out,
                r,
                Cond::NotAcceptable,
                Some("nickname changes are not supported yet"),
            );
        }
        room.occupants[oi].presence = own;
        let role = room.occupants[oi].role;
        room.broadcast_presence(oi, role, false, &[], &[], "", out);
        return;
    }
    let aff = room.affiliation(&from_bare);
    let x = st.child(0, "x", NS_MUC);
    let password = x
        .and_then(|x| st.child(x, "password", NS_MUC))
        .map(|p| st.text(p).into_owned());
    if room.locked && aff != Affiliation::Owner {
        return err(
            out,
            r,
            Cond::ItemNotFound,
            Some("the room is locked until its owner configures it"),
        );
    }
    if aff == Affiliation::Outcast {
        return err(
            out,
            r,
            Cond::Forbidden,
            Some("you are banned from this room"),
        );
    }
    if room.cfg.members_only && aff < Affiliation::Member {
        return err(out, r, Cond::RegistrationRequired, Some("members only"));
    }
    if let Some(pw) = &room.cfg.password
        && aff < Affiliation::Admin
        && password.as_deref() != Some(pw.as_str())
    {
        return err(out, r, Cond::NotAuthorized, Some("a password is required"));
    }
    let existing = room.by_nick(nick);
    if let Some(oi) = existing {
        if *room.occupants[oi].bare != *from_bare {
            return err(out, r, Cond::Conflict, Some("that nickname is in use"));
        }
    } else if room.occupants.len() >= room.cfg.max_occupants {
        return err(out, r, Cond::ServiceUnavailable, Some("the room is full"));
    }
    let sess = Sess {
        to: to_bytes(from_jid.as_str()),
        home: home(&from_bare, shard.shared.shards),
        jid: from_jid.clone(),
    };
    let (oi, new_occupant) = match existing {
        Some(oi) => {
            room.occupants[oi].sessions.push(sess);
            (oi, false)
        }
        None => {
            let role = room.default_role(aff);
            let mut sessions = SmallVec::new();
            sessions.push(sess);
            room.occupants.push(Occupant {
                nick: nick.into(),
                bare: from_bare.as_str().into(),
                sessions,
                role,
                presence: own,
            });
            (room.occupants.len() - 1, true)
        }
    };
    let role = room.occupants[oi].role;
    // 1. The existing occupants' presence, to the joiner (§7.2.3).
    for i in 0..room.occupants.len() {
        if i != oi {
            out.one(room.presence_to(i, from, role, &[]));
        }
    }
    // 2. The joiner's presence: to everyone else, and to itself with 110 (+100, +201).
    let mut self_codes = Vec::new();
    if room.cfg.whois_anyone {
        self_codes.push(100);
    }
    if created {
        self_codes.push(201);
    }
    if new_occupant {
        room.broadcast_presence(oi, role, false, &[], &self_codes, "", out);
    } else {
        self_codes.push(110);
        out.one(room.presence_to(oi, from, Role::Moderator, &self_codes));
    }
    // 3. History (§7.2.15), each with a <delay/>.
    let h = x.and_then(|x| st.child(x, "history", NS_MUC));
    let attr_num = |name: &str| {
        h.and_then(|h| st.attr(h, name))
            .and_then(|a| a.value().parse::<u64>().ok())
    };
    let max_stanzas = attr_num("maxstanzas").map_or(room.cfg.history_length, |n| {
        (n as usize).min(room.cfg.history_length)
    });
    let max_chars = attr_num("maxchars").map(|n| n as usize);
    // Any number a client sends: a time before the epoch means "all of it".
    let not_before = attr_num("seconds")
        .map(|s| {
            SystemTime::now()
                .checked_sub(Duration::from_secs(s))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        })
        .or_else(|| {
            h.and_then(|h| st.attr(h, "since"))
                .and_then(|a| humantime::parse_rfc3339_weak(&a.value()).ok())
        });
    let mut chars = 0usize;
    let mut picked: Vec<&Hist> = Vec::new();
    for m in room.history.iter().rev() {
        if picked.len() >= max_stanzas || not_before.is_some_and(|t| m.at < t) {
            break;
        }
        if max_chars.is_some_and(|mc| chars + m.chars > mc) {
            break;
        }
        chars += m.chars;
        picked.push(m);
    }
    let to_esc = to_bytes(from);
    for m in picked.into_iter().rev() {
        let stamp = humantime::format_rfc3339_seconds(m.at);
        let delay = format!(
            "<delay xmlns='urn:xmpp:delay' from='{}' stamp='{stamp}'/>",
            ea(&room.jid)
        );
        let mut v = Vec::with_capacity(m.head.len() + m.rest.len() + 160);
        v.extend_from_slice(&m.head);
        v.extend_from_slice(b" to='");
        let t0 = v.len() as u32;
        v.extend_from_slice(&to_esc);
        let t1 = v.len() as u32;
        v.extend_from_slice(b"'>");
        v.extend_from_slice(m.sid.as_bytes());
        v.extend_from_slice(delay.as_bytes());
        v.extend_from_slice(&m.rest);
        let f = find_from(&v).unwrap_or(0..0);
        out.one(Routed::from_parts(
            Kind::Message,
            SType::Groupchat,
            v,
            t0..t1,
            f,
        ));
    }
    announce(room, &svc.domain, out);
    // 4. The subject, always (empty when none).
    let (subject_from, subject) = match &room.subject {
        Some((text, by)) => (room.occupant_jid(by), format!("<subject>{text}</subject>")),
        None => (room.jid.clone(), "<subject/>".to_string()),
    };
    let sid = room.next_stanza_id(shard);
    out.one(build(
        Kind::Message,
        SType::Groupchat,
        &subject_from,
        from,
        &format!(" type='groupchat' id='{sid}'"),
        &subject,
    ));
}

/// Whether child `c` reads the same copied out of its parent: no element or attribute in
/// it uses a namespace prefix (which may be declared on the parent). A child that does is
/// left out rather than sent to other clients as broken XML.
fn self_contained(st: &Stanza, c: usize) -> bool {
    let end = st.elems[c].end;
    let subtree = st
        .elems
        .iter()
        .enumerate()
        .skip(c)
        .take_while(|(_, e)| e.start < end);
    subtree.into_iter().all(|(_, e)| {
        e.prefix.is_empty()
            && st.attrs[e.attrs.start as usize..e.attrs.end as usize]
                .iter()
                .all(|a| a.prefix.is_empty() || a.prefix == "xml")
    })
}

/// The message content after its start tag, without `<stanza-id/>` elements that claim to
/// be from `by` (XEP-0359 §4: the room strips ids a client forged in its name).
fn strip_forged_ids(r: &Routed, after_tag: usize, by: &str) -> Option<Bytes> {
    let st = parse(r)?;
    let root = st.root();
    let forged: Vec<usize> = st
        .children(0)
        .filter(|&c| {
            st.elems[c].ns == "urn:xmpp:sid:0" && st.attr(c, "by").is_some_and(|a| a.value() == by)
        })
        .collect();
    if forged.is_empty() {
        return None;
    }
    let mut v = Vec::with_capacity(r.payload.len());
    let mut pos = after_tag;
    for c in forged {
        let e = &st.elems[c];
        v.extend_from_slice(&r.payload[pos..e.start as usize]);
        pos = e.end as usize;
    }
    v.extend_from_slice(&r.payload[pos..root.end as usize]);
    Some(Bytes::from(v))
}

/// The `from='…'` value range in a stanza we built (first `from='`).
fn find_from(v: &[u8]) -> Option<std::ops::Range<u32>> {
    let i = v.windows(7).position(|w| w == b" from='")? + 7;
    let j = v[i..].iter().position(|&b| b == b'\'')? + i;
    Some(i as u32..j as u32)
}

fn leave(room: &mut Room, from: &str, out: &mut Out) {
    let Some(oi) = room.by_session(from) else {
        return;
    };
    let o = &mut room.occupants[oi];
    let si = o
        .sessions
        .iter()
        .position(|s| s.jid.as_str() == from)
        .expect("by_session found this occupant by one of its sessions");
    if o.sessions.len() > 1 {
        // One of several sessions with this nick: only it learns that it left.
        o.sessions.remove(si);
        let inner = room.user_x(&room.occupants[oi], Role::None, Some(from), &[110], "");
        out.one(build(
            Kind::Presence,
            SType::Unavailable,
            &room.occupant_jid(&room.occupants[oi].nick),
            from,
            " type='unavailable'",
            &inner,
        ));
        return;
    }
    room.broadcast_presence(oi, Role::None, true, &[], &[], "", out);
    room.occupants.remove(oi);
}

/// Removes occupant `oi` for a kick (307), ban (301) or loss of membership (321).
fn remove_occupant(room: &mut Room, oi: usize, code: u16, out: &mut Out) {
    room.broadcast_presence(oi, Role::None, true, &[code], &[code], "", out);
    room.occupants.remove(oi);
}

#[allow(clippy::too_many_arguments)]
fn message(
    shard: &Shard,
    rooms: &mut Rooms,
    r: &Routed,
    bare: &str,
    nick: Option<&str>,
    from: &str,
    out: &mut Out,
) {
    let Some(room) = rooms.get_mut(bare) else {
        return err(out, r, Cond::ItemNotFound, Some("no such room"));
    };
    if r.stype == SType::Error {
        return;
    }
    let oi = room.by_session(from);
    if let (None, SType::Chat | SType::Normal) = (nick, r.stype) {
        return invitation(shard, room, oi, r, out);
    }
    let Some(oi) = oi else {
        return err(
            out,
            r,
            Cond::NotAcceptable,
            Some("only occupants may send messages to the room"),
        );
    };
    match (r.stype, nick) {
        (SType::Groupchat, None) => groupchat(shard, room, oi, r, out),
        (SType::Groupchat, Some(_)) => err(
            out,
            r,
            Cond::BadRequest,
            Some("groupchat goes to the room's bare JID"),
        ),
        (_, Some(to_nick)) => {
            // §7.5 private message: to every session of that occupant, from room/sender.
            let Some(ti) = room.by_nick(to_nick) else {
                return err(out, r, Cond::ItemNotFound, Some("no such occupant"));
            };
            let sender = room.occupant_jid(&room.occupants[oi].nick);
            for s in &room.occupants[ti].sessions {
                out.one(readdress(
                    r,
                    s.jid.as_str(),
                    &sender,
                    &format!("<x xmlns='{NS_MUC_USER}'/>"),
                ));
            }
        }
        (_, None) => err(
            out,
            r,
            Cond::BadRequest,
            Some("a message to the room is groupchat, an invite or a decline"),
        ),
    }
}

/// §7.8.2 mediated invitations, and declines (§7.8.2 end): the room passes an occupant's
/// `<invite to/>` on from itself, naming the inviter; a `<decline to/>` from the invitee
/// goes back to the inviter. In a members-only room only owners and admins invite, and the
/// invitee becomes a member.
fn invitation(shard: &Shard, room: &mut Room, oi: Option<usize>, r: &Routed, out: &mut Out) {
    let Some(st) = parse(r) else {
        return err(out, r, Cond::BadRequest, None);
    };
    let Some(x) = st.child(0, "x", NS_MUC_USER) else {
        return err(
            out,
            r,
            Cond::BadRequest,
            Some("a message to the room is groupchat"),
        );
    };
    // The inviter's (or decliner's) real JID, as the service saw it send.
    let from_real = r.from().to_string();
    let mut sent = false;
    for (name, c) in st.children(x).map(|c| (st.elems[c].local, c)) {
        if name != "invite" && name != "decline" {
            continue;
        }
        let Some(to) = st.attr(c, "to").and_then(|a| Jid::parse(&a.value()).ok()) else {
            return err(
                out,
                r,
                Cond::JidMalformed,
                Some("invite/decline needs a 'to' JID"),
            );
        };
        let reason = st
            .child(c, "reason", NS_MUC_USER)
            .map(|e| format!("<reason>{}</reason>", et(&st.text(e))))
            .unwrap_or_default();
        let inner = if name == "invite" {
            let Some(oi) = oi else {
                return err(out, r, Cond::NotAcceptable, Some("only occupants invite"));
            };
            let aff = room.affiliation(&room.occupants[oi].bare);
            if room.cfg.members_only {
                if aff < Affiliation::Admin {
                    return err(
                        out,
                        r,
                        Cond::Forbidden,
                        Some("only admins invite to this room"),
                    );
                }
                room.affiliations
                    .insert(Box::from(to.bare()), Affiliation::Member);
                persist(shard, room, out);
            }
            let password = room
                .cfg
                .password
                .as_deref()
                .map(|p| format!("<password>{}</password>", et(p)))
                .unwrap_or_default();
            format!(
                "<x xmlns='{NS_MUC_USER}'><invite from='{}'>{reason}</invite>{password}</x>",
                ea(&from_real)
            )
        } else {
            format!(
                "<x xmlns='{NS_MUC_USER}'><decline from='{}'>{reason}</decline></x>",
                ea(&from_real)
            )
        };
        out.one(build(
            Kind::Message,
            SType::Normal,
            &room.jid,
            to.as_str(),
            "",
            &inner,
        ));
        sent = true;
    }
    if !sent {
        err(
            out,
            r,
            Cond::BadRequest,
            Some("a message to the room is groupchat, an invite or a decline"),
        );
    }
}

/// The routed stanza with new `to`/`from` (and `extra` as first child), the rest as is.
fn readdress(r: &Routed, to: &str, from: &str, extra: &str) -> Routed {
    let p = &r.payload;
    let cut = r.to_range().start as usize - 5; // " to='"
    let after = r.from_range().end as usize + 1; // '>' or '/>'
    let mut v = Vec::with_capacity(p.len() + 64 + extra.len());
    v.extend_from_slice(&p[..cut]);
    v.extend_from_slice(b" to='");
    let t0 = v.len() as u32;
    crate::xml::escape::escape_attr(to, &mut v);
    let t1 = v.len() as u32;
    v.extend_from_slice(b"' from='");
    let f0 = v.len() as u32;
    crate::xml::escape::escape_attr(from, &mut v);
    let f1 = v.len() as u32;
    v.push(b'\'');
    if p[after..].starts_with(b"/>") {
        if extra.is_empty() {
            v.extend_from_slice(b"/>");
        } else {
            let _ = write!(Wrap(&mut v), ">{extra}</{}>", r.kind.name());
        }
    } else {
        v.push(b'>');
        v.extend_from_slice(extra.as_bytes());
        v.extend_from_slice(&p[after + 1..]);
    }
    Routed::from_parts(r.kind, r.stype, v, t0..t1, f0..f1)
}

struct Wrap<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for Wrap<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// §7.4: reflect to every occupant, serialized once. The sender's stanza is not parsed
/// again: its start tag is rewritten from the offsets routing recorded.
fn groupchat(shard: &Shard, room: &mut Room, oi: usize, r: &Routed, out: &mut Out) {
    if room.occupants[oi].role < Role::Participant {
        return err(
            out,
            r,
            Cond::Forbidden,
            Some("visitors have no voice in this room"),
        );
    }
    let p = &r.payload;
    let nick = room.occupants[oi].nick.clone();
    // A subject change is the rare case that needs the element itself (§8.1).
    if p.windows(8).any(|w| w == b"<subject")
        && let Some(st) = parse(r)
        && let Some(s) = st.child(0, "subject", crate::xmpp::NS_CLIENT)
        && st.child(0, "body", crate::xmpp::NS_CLIENT).is_none()
    {
        if !room.cfg.change_subject && room.occupants[oi].role < Role::Moderator {
            return err(
                out,
                r,
                Cond::Forbidden,
                Some("only moderators may change the subject"),
            );
        }
        let text = st.text(s);
        room.subject = (!text.is_empty()).then(|| (et(&text).into_owned(), nick.to_string()));
        persist(shard, room, out);
    }
    let cut = r.to_range().start as usize - 5;
    let after = r.from_range().end as usize + 1;
    let sid_val = room.next_stanza_id(shard);
    let sid = format!(
        "<stanza-id xmlns='urn:xmpp:sid:0' id='{sid_val}' by='{}'/>",
        ea(&room.jid)
    );
    let from = room.occupant_jid(&nick);
    let mut head = Vec::with_capacity(cut + from.len() + 16);
    head.extend_from_slice(&p[..cut]);
    head.extend_from_slice(b" from='");
    crate::xml::escape::escape_attr(&from, &mut head);
    head.push(b'\'');
    let head = Bytes::from(head);
    let rest: Bytes = if p[after..].starts_with(b"/>") {
        Bytes::from(b"</message>".to_vec())
    } else if p.windows(14).any(|w| w == b"urn:xmpp:sid:0") {
        strip_forged_ids(r, after + 1, &room.jid).unwrap_or_else(|| p.slice(after + 1..))
    } else {
        p.slice(after + 1..)
    };
    let mut tail = Vec::with_capacity(2 + sid.len());
    tail.extend_from_slice(b"'>");
    tail.extend_from_slice(sid.as_bytes());
    let mut tos = Vec::with_capacity(room.occupants.len());
    for o in &room.occupants {
        for s in &o.sessions {
            tos.push((s.home, s.to.clone()));
        }
    }
    // head + " to='" | to | "'>" + stanza-id + rest: rest is the sender's bytes, shared.
    let mut fan_head = Vec::with_capacity(head.len() + 5);
    fan_head.extend_from_slice(&head);
    fan_head.extend_from_slice(b" to='");
    let mut fan_tail = tail;
    fan_tail.extend_from_slice(&rest);
    let chars = fan_head.len() + fan_tail.len();
    out.fan(Bytes::from(fan_head), Bytes::from(fan_tail), tos);
    // The room's archive (XEP-0313 §6), under the room's JID.
    if shard.cfg().mam.enabled
        && let (Some(_), Some(id)) = (
            &shard.shared.storage,
            crate::features::mam::parse_id(&sid_val),
        )
    {
        let mut stanza = Vec::with_capacity(head.len() + sid.len() + rest.len() + 1);
        stanza.extend_from_slice(&head);
        stanza.push(b'>');
        stanza.extend_from_slice(sid.as_bytes());
        stanza.extend_from_slice(&rest);
        let item = crate::storage::ArchiveItem {
            id,
            with: from.clone(),
            stanza,
        };
        shard.storage(crate::storage::Request::ArchiveAppend {
            owner: room.jid.clone(),
            item,
        });
    }
    if room.cfg.history_length > 0 {
        room.history.push_back(Hist {
            head,
            sid,
            rest,
            at: SystemTime::now(),
            chars,
        });
        while room.history.len() > room.cfg.history_length {
            room.history.pop_front();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn iq(
    svc: &Service,
    shard: &Shard,
    rooms: &mut Rooms,
    r: &Routed,
    bare: &str,
    nick: Option<&str>,
    from: &str,
    out: &mut Out,
) {
    if !matches!(r.stype, SType::Get | SType::Set) {
        return;
    }
    if nick.is_some() {
        return err(
            out,
            r,
            Cond::ServiceUnavailable,
            Some("iq to occupants is not relayed"),
        );
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
        (NS_INFO, SType::Get) => {
            let c = &room.cfg;
            let f = |on: bool, a: &str, b: &str| if on { a.to_string() } else { b.to_string() };
            let feats = [
                NS_MUC.to_string(),
                f(c.persistent, "muc_persistent", "muc_temporary"),
                f(c.public, "muc_public", "muc_hidden"),
                f(c.members_only, "muc_membersonly", "muc_open"),
                f(c.moderated, "muc_moderated", "muc_unmoderated"),
                f(
                    c.password.is_some(),
                    "muc_passwordprotected",
                    "muc_unsecured",
                ),
                f(c.whois_anyone, "muc_nonanonymous", "muc_semianonymous"),
                "urn:xmpp:sid:0".to_string(),
            ];
            // XEP-0313 §6.1: a room with an archive says so, or clients never ask it.
            let mam = crate::features::mam::archive_available(shard)
                .is_ok()
                .then_some(crate::features::mam::NS.to_string());
            let mut q = format!(
                "<query xmlns='{NS_INFO}'><identity category='conference' type='text' name='{}'/>",
                ea(&c.name)
            );
            for feat in feats.into_iter().chain(mam) {
                let _ = write!(q, "<feature var='{feat}'/>");
            }
            q.push_str("</query>");
            iq_result(out, r, &q);
        }
        (NS_ITEMS, SType::Get) => iq_result(out, r, &format!("<query xmlns='{NS_ITEMS}'/>")),
        (crate::features::mam::NS, SType::Set) => {
            // XEP-0313 §6: occupants (members, in a members-only room) read the archive.
            let allowed = if room.cfg.members_only {
                aff >= Affiliation::Member
            } else {
                room.by_session(from).is_some() || aff >= Affiliation::Member
            };
            if !allowed {
                return err(
                    out,
                    r,
                    Cond::Forbidden,
                    Some("only occupants may read the room's archive"),
                );
            }
            let m = &shard.cfg().mam;
            let reply = crate::storage::ArchiveReplyTo {
                to: from.to_string(),
                from: room.jid.clone(),
                queryid: st.attr(c, "queryid").map(|a| a.value().into_owned()),
                iq_id: r.id_attr().to_string(),
            };
            let res = crate::features::mam::parse_query(&st, c, m.page_default, m.page_max)
                .and_then(|q| crate::features::mam::query(shard, &room.jid, q, reply));
            if let Err(cond) = res {
                err(out, r, cond, None);
            }
        }
        (NS_MUC_OWNER, _) if aff != Affiliation::Owner => {
            err(out, r, Cond::Forbidden, Some("owners only"))
        }
        (NS_MUC_OWNER, SType::Get) => iq_result(out, r, &config_form(room)),
        (NS_MUC_OWNER, SType::Set) => {
            if let Some(d) = st.child(c, "destroy", NS_MUC_OWNER) {
                let reason = st
                    .child(d, "reason", NS_MUC_OWNER)
                    .map(|x| st.text(x).into_owned())
                    .unwrap_or_default();
                let extra = format!("<destroy><reason>{}</reason></destroy>", et(&reason));
                // §10.9: each occupant gets its own unavailable presence with <destroy/>
                // (one per occupant, not everyone's).
                let all = std::mem::take(&mut room.occupants);
                for o in all {
                    room.occupants = vec![o];
                    room.broadcast_presence(0, Role::None, true, &[], &[], &extra, out);
                }
                room.occupants.clear();
                unlist(room, &svc.domain, out);
                room.cfg.persistent = false;
                persist(shard, room, out);
                rooms.remove(bare);
                tracing::info!(shard = shard.id, room = bare, "room destroyed");
                return iq_result(out, r, "");
            }
            let Some(x) = st.child(c, "x", "jabber:x:data") else {
                return err(out, r, Cond::BadRequest, None);
            };
            match st.attr(x, "type").map(|a| a.value()).as_deref() {
                Some("cancel") => {
                    if room.locked {
                        unlist(room, &svc.domain, out);
                        rooms.remove(bare);
                    }
                    iq_result(out, r, "")
                }
                Some("submit") => match apply_form(room, &st, x) {
                    Ok(()) => {
                        room.locked = false;
                        persist(shard, room, out);
                        announce(room, &svc.domain, out);
                        iq_result(out, r, "")
                    }
                    Err(why) => err(out, r, Cond::NotAcceptable, Some(why)),
                },
                _ => err(out, r, Cond::BadRequest, None),
            }
        }
        (NS_MUC_ADMIN, SType::Get) => {
            if aff < Affiliation::Admin {
                return err(out, r, Cond::Forbidden, Some("admins only"));
            }
            let Some(item) = st.child(c, "item", NS_MUC_ADMIN) else {
                return err(out, r, Cond::BadRequest, None);
            };
            let mut q = format!("<query xmlns='{NS_MUC_ADMIN}'>");
            if let Some(a) = st
                .attr(item, "affiliation")
                .and_then(|a| Affiliation::parse(&a.value()))
            {
                let mut list: Vec<_> = room
                    .affiliations
                    .iter()
                    .filter(|(_, v)| **v == a)
                    .map(|(k, _)| k.clone())
                    .collect();
                list.sort();
                for j in list {
                    let _ = write!(q, "<item affiliation='{}' jid='{}'/>", a.name(), ea(&j));
                }
            } else if let Some(ro) = st.attr(item, "role").and_then(|a| Role::parse(&a.value())) {
                for o in room.occupants.iter().filter(|o| o.role == ro) {
                    let _ = write!(
                        q,
                        "<item role='{}' nick='{}' affiliation='{}' jid='{}'/>",
                        ro.name(),
                        ea(&o.nick),
                        room.affiliation(&o.bare).name(),
                        ea(&o.bare)
                    );
                }
            } else {
                return err(out, r, Cond::BadRequest, None);
            }
            q.push_str("</query>");
            iq_result(out, r, &q);
        }
        (NS_MUC_ADMIN, SType::Set) => {
            let actor_role = room
                .by_session(from)
                .map(|i| room.occupants[i].role)
                .unwrap_or(Role::None);
            for item in st.children(c).collect::<Vec<_>>() {
                if let Err(cond) = admin_item(room, &st, item, aff, actor_role, out) {
                    persist(shard, room, out);
                    return err(out, r, cond, None);
                }
            }
            persist(shard, room, out);
            iq_result(out, r, "");
        }
        _ => err(out, r, Cond::ServiceUnavailable, None),
    }
}

/// One `<item/>` of a muc#admin set (§9, §10): a role change by nick or an affiliation
/// change by JID, with the permission rules of XEP-0045 §5.
fn admin_item(
    room: &mut Room,
    st: &Stanza,
    item: usize,
    aff: Affiliation,
    actor_role: Role,
    out: &mut Out,
) -> Result<(), Cond> {
    if let Some(role) = st.attr(item, "role").map(|a| a.value()) {
        let role = Role::parse(&role).ok_or(Cond::BadRequest)?;
        let nick = st
            .attr(item, "nick")
            .map(|a| a.value())
            .ok_or(Cond::BadRequest)?;
        let oi = room.by_nick(&nick).ok_or(Cond::ItemNotFound)?;
        let target_aff = room.affiliation(&room.occupants[oi].bare);
        let allowed = match role {
            Role::Moderator => aff >= Affiliation::Admin,
            _ => {
                actor_role == Role::Moderator && target_aff < Affiliation::Admin
                    || aff > target_aff && aff >= Affiliation::Admin
            }
        };
        if !allowed {
            return Err(Cond::NotAllowed);
        }
        if role == Role::None {
            remove_occupant(room, oi, 307, out);
        } else {
            room.occupants[oi].role = role;
            room.broadcast_presence(oi, role, false, &[], &[], "", out);
        }
        return Ok(());
    }
    let new = st
        .attr(item, "affiliation")
        .and_then(|a| Affiliation::parse(&a.value()))
        .ok_or(Cond::BadRequest)?;
    let jid = st
        .attr(item, "jid")
        .map(|a| a.value())
        .ok_or(Cond::BadRequest)?;
    let jid = Jid::parse(&jid).map_err(|_| Cond::JidMalformed)?;
    let bare = jid.bare();
    let current = room.affiliation(bare);
    let allowed = aff == Affiliation::Owner
        || (aff == Affiliation::Admin && current < Affiliation::Admin && new < Affiliation::Admin);
    if !allowed {
        return Err(Cond::NotAllowed);
    }
    if new == Affiliation::None {
        room.affiliations.remove(bare);
    } else {
        room.affiliations.insert(bare.into(), new);
    }
    while let Some(oi) = room.occupants.iter().position(|o| *o.bare == *bare) {
        if new == Affiliation::Outcast {
            remove_occupant(room, oi, 301, out);
        } else if room.cfg.members_only && new < Affiliation::Member {
            remove_occupant(room, oi, 321, out);
        } else {
            let role = room
                .default_role(new)
                .max(room.occupants[oi].role.min(Role::Participant));
            room.occupants[oi].role = role;
            room.broadcast_presence(oi, role, false, &[], &[], "", out);
            break;
        }
    }
    Ok(())
}

const FORM: &str = "http://jabber.org/protocol/muc#roomconfig";

fn config_form(room: &Room) -> String {
    let c = &room.cfg;
    let b = |v: bool| if v { "1" } else { "0" };
    format!(
        "<query xmlns='{NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='form'><title>Configuration of {}</title>\
<field var='FORM_TYPE' type='hidden'><value>{FORM}</value></field>\
<field var='muc#roomconfig_roomname' type='text-single' label='Name'><value>{}</value></field>\
<field var='muc#roomconfig_roomdesc' type='text-single' label='Description'><value>{}</value></field>\
<field var='muc#roomconfig_persistentroom' type='boolean' label='Persistent'><value>{}</value></field>\
<field var='muc#roomconfig_publicroom' type='boolean' label='Public'><value>{}</value></field>\
<field var='muc#roomconfig_membersonly' type='boolean' label='Members only'><value>{}</value></field>\
<field var='muc#roomconfig_moderatedroom' type='boolean' label='Moderated'><value>{}</value></field>\
<field var='muc#roomconfig_passwordprotectedroom' type='boolean' label='Password protected'><value>{}</value></field>\
<field var='muc#roomconfig_roomsecret' type='text-private' label='Password'><value>{}</value></field>\
<field var='muc#roomconfig_maxusers' type='text-single' label='Maximum occupants'><value>{}</value></field>\
<field var='muc#roomconfig_whois' type='list-single' label='Who may see real JIDs'><option><value>moderators</value></option><option><value>anyone</value></option><value>{}</value></field>\
<field var='muc#maxhistoryfetch' type='text-single' label='History length'><value>{}</value></field>\
<field var='muc#roomconfig_changesubject' type='boolean' label='Occupants may change the subject'><value>{}</value></field>\
</x></query>",
        et(&room.jid),
        et(&c.name),
        et(&c.description),
        b(c.persistent),
        b(c.public),
        b(c.members_only),
        b(c.moderated),
        b(c.password.is_some()),
        et(c.password.as_deref().unwrap_or("")),
        c.max_occupants,
        if c.whois_anyone {
            "anyone"
        } else {
            "moderators"
        },
        c.history_length,
        b(c.change_subject),
    )
}

/// Applies a submitted form (§10.2); an empty form keeps the defaults (instant room, §10.1.2).
fn apply_form(room: &mut Room, st: &Stanza, x: usize) -> Result<(), &'static str> {
    let mut password_on = None;
    let mut secret = None;
    for f in st.children(x) {
        let Some(var) = st.attr(f, "var").map(|a| a.value()) else {
            continue;
        };
        let value = st
            .child(f, "value", "jabber:x:data")
            .map(|v| st.text(v).into_owned())
            .unwrap_or_default();
        let flag = matches!(value.as_str(), "1" | "true");
        match var.as_ref() {
            "muc#roomconfig_roomname" => room.cfg.name = value,
            "muc#roomconfig_roomdesc" => room.cfg.description = value,
            "muc#roomconfig_persistentroom" => room.cfg.persistent = flag,
            "muc#roomconfig_publicroom" => room.cfg.public = flag,
            "muc#roomconfig_membersonly" => room.cfg.members_only = flag,
            "muc#roomconfig_moderatedroom" => room.cfg.moderated = flag,
            "muc#roomconfig_passwordprotectedroom" => password_on = Some(flag),
            "muc#roomconfig_roomsecret" => secret = Some(value),
            "muc#roomconfig_maxusers" => {
                let n: usize = value.parse().map_err(|_| "maxusers must be a number")?;
                room.cfg.max_occupants = n.clamp(1, room.occupants_cap);
            }
            "muc#roomconfig_whois" => room.cfg.whois_anyone = value == "anyone",
            "muc#maxhistoryfetch" | "muc#roomconfig_historylength" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| "history length must be a number")?;
                room.cfg.history_length = n.min(room.history_cap);
            }
            "muc#roomconfig_changesubject" => room.cfg.change_subject = flag,
            _ => {}
        }
    }
    match (password_on, secret) {
        (Some(false), _) => room.cfg.password = None,
        (_, Some(s)) if !s.is_empty() => room.cfg.password = Some(s),
        (Some(true), _) if room.cfg.password.is_none() => {
            return Err("a password-protected room needs a password");
        }
        _ => {}
    }
    Ok(())
}
