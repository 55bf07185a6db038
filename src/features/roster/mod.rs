//! Rosters and presence subscriptions (RFC 6121 §2, §3, §4.3): the roster of every online
//! user lives on its home shard, loaded from storage when its first session binds (and for
//! an offline user while an inbound subscription stanza is handled). Work that needs the
//! roster before it is loaded waits in the roster's `pending` list. Every change bumps the
//! roster version, is written to storage and pushed to the resources that asked for the
//! roster (§2.1.6). What a subscription stanza does (state, routing, delivery, presences)
//! is decided by `subscription::process` (RFC 6121 Appendix A); a roster set is parsed by
//! `set::parse`.
//!
//! The core knows nothing of rosters: the host plugs this module in at bind (`preload`),
//! the presence broadcast (`broadcast`), outbound and inbound subscription stanzas and
//! probes (`outbound`, `inbound`), the end of a session (`on_session_end`), the
//! `jabber:iq:roster` IQ (`handle`) and the storage reply (`on_loaded`).

pub mod provision;
pub mod set;
pub mod subscription;

use crate::xmpp::errors::Cond;
use crate::xmpp::jid::Jid;
use crate::xmpp::router::{self, Kind, Routed, SType, split_full};
use crate::xmpp::stream::{Ctx, id_attr};
use set::RosterSet;
use subscription::{self as sub, Action, Direction, Presences, State, SubType};

use crate::storage::{Request, RosterItem};
use crate::xml::escape::escape_attr;
use crate::xml::stanza::Stanza;
use crate::xml::writer::Elem;
use crate::xmpp::core::{Host, IqReply, IqRequest};
use crate::xmpp::session::Resource;
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::HashMap;

use crate::xml::ns::ROSTER as NS;

/// The rosters of a shard's online users (and of offline users while an inbound
/// subscription is handled), by localpart: the module's per-shard state, owned by the host.
pub type Rosters = RefCell<HashMap<Box<str>, Roster, ahash::RandomState>>;

/// What the roster module needs from the host: its state.
pub trait RosterHost: Host {
    fn rosters(&self) -> &Rosters;
}

#[derive(Default)]
pub struct Roster {
    loaded: bool,
    version: u64,
    items: HashMap<Box<str>, RosterItem>,
    pending: Vec<Pending>,
}

enum Pending {
    Get {
        jid: Jid,
        id: String,
        ver: Option<String>,
    },
    Set {
        jid: Jid,
        id: String,
        item: Result<RosterSet, Cond>,
    },
    Outbound {
        jid: Jid,
        stype: SType,
        to: Jid,
        stanza: Option<Routed>,
    },
    Inbound(Routed),
    Available {
        jid: Jid,
    },
    /// Items the admin API provisions (`provision.rs`).
    Provision {
        items: Vec<provision::Provision>,
        done: provision::Done,
    },
}

/// Starts loading `user`'s roster if it is not cached; true when it is ready.
fn ensure<H: RosterHost>(shard: &H, user: &str) -> bool {
    let mut rosters = shard.rosters().borrow_mut();
    if let Some(r) = rosters.get(user) {
        return r.loaded;
    }
    rosters.insert(user.into(), Roster::default());
    match &shard.shared.storage {
        Some(_) => {
            shard.storage(Request::RosterLoad {
                user: user.to_string(),
                shard: shard.id,
            });
            false
        }
        None => {
            rosters.get_mut(user).unwrap().loaded = true;
            true
        }
    }
}

/// Keeps a request until the user's roster is loaded. A user's own requests (gets, sets,
/// subscriptions it sends) are bounded by `limits.max_pending_iqs`: past it they get
/// `resource-constraint` at once. What contacts send is kept (their own shaping bounds it).
fn queue<H: RosterHost>(shard: &H, user: &str, p: Pending) {
    let max = shard.cfg().limits.max_pending_iqs;
    let refused = {
        let mut rosters = shard.rosters().borrow_mut();
        let Some(r) = rosters.get_mut(user) else {
            return;
        };
        let own = matches!(
            p,
            Pending::Get { .. } | Pending::Set { .. } | Pending::Outbound { .. }
        );
        let mine = r
            .pending
            .iter()
            .filter(|q| {
                matches!(
                    q,
                    Pending::Get { .. } | Pending::Set { .. } | Pending::Outbound { .. }
                )
            })
            .count();
        let repeat = matches!(&p, Pending::Available { jid } if r.pending.iter().any(
            |q| matches!(q, Pending::Available { jid: j } if j == jid)
        ));
        if repeat {
            None // one pending "became available" per session does it all
        } else if own && mine >= max {
            Some(p)
        } else {
            r.pending.push(p);
            None
        }
    };
    match refused {
        Some(Pending::Get { jid, id, .. } | Pending::Set { jid, id, .. }) => {
            error(shard, &jid, &id, Cond::ResourceConstraint)
        }
        Some(Pending::Outbound { jid, stanza, .. }) => {
            tracing::info!(shard = shard.id, jid = %jid, "too many requests waiting for a roster");
            if let Some(st) = stanza {
                router::bounce(shard, &st, Cond::ResourceConstraint);
            }
        }
        _ => {}
    }
}

/// Called at bind: load the roster early.
pub fn preload<H: RosterHost>(shard: &H, user: &str) {
    ensure(shard, user);
}

/// The roster arrived from storage: run what waited for it.
pub fn on_loaded<H: RosterHost>(shard: &H, user: String, version: u64, items: Vec<RosterItem>) {
    let pending = {
        let mut rosters = shard.rosters().borrow_mut();
        let Some(r) = rosters.get_mut(user.as_str()) else {
            return;
        };
        r.loaded = true;
        r.version = version;
        r.items = items
            .into_iter()
            .map(|i| (i.jid.clone().into_boxed_str(), i))
            .collect();
        std::mem::take(&mut r.pending)
    };
    for p in pending {
        match p {
            Pending::Get { jid, id, ver } => get(shard, &jid, &id, ver.as_deref()),
            Pending::Set { jid, id, item } => set(shard, &jid, &id, item),
            Pending::Outbound {
                jid,
                stype,
                to,
                stanza,
            } => outbound(shard, &jid, stype, &to, stanza),
            Pending::Inbound(r) => inbound(shard, r),
            Pending::Available { jid } => became_available(shard, &jid),
            Pending::Provision { items, done } => provision::apply(shard, &user, items, done),
        }
    }
    evict_if_idle(shard, &user);
}

/// Drops a cached roster nobody online needs.
fn evict_if_idle<H: RosterHost>(shard: &H, user: &str) {
    let bare = format!("{user}@{}", shard.domain());
    if shard.sessions.borrow().user(&bare).is_none() {
        let mut rosters = shard.rosters().borrow_mut();
        if rosters
            .get(user)
            .is_some_and(|r| r.loaded && r.pending.is_empty())
        {
            rosters.remove(user);
        }
    }
}

/// An item of a roster result or push (RFC 6121 §2.1.2).
fn item_xml(i: &RosterItem, removed: bool) -> String {
    let sub = if removed {
        "remove"
    } else {
        i.subscription.name()
    };
    let mut v = Vec::with_capacity(64 + i.jid.len());
    let mut e = Elem::new(&mut v, "item").attr("jid", &i.jid);
    if let Some(n) = &i.name {
        e = e.attr("name", n);
    }
    e = e.attr("subscription", sub);
    if i.ask && !removed {
        e = e.attr("ask", "subscribe");
    }
    for g in &i.groups {
        e.child("group").text(g).end();
    }
    e.end();
    // Built from `&str` pieces and escapes: UTF-8.
    String::from_utf8(v).unwrap_or_default()
}

fn send_to<H: RosterHost>(shard: &H, jid: &Jid, v: Vec<u8>) {
    let ctl = shard.sessions.borrow().resource(jid).map(|r| r.ctl.clone());
    if let Some(ctl) = ctl {
        router::push(&ctl, &Bytes::from(v));
    }
}

/// Stores a changed item, bumps the version and pushes it to interested resources.
fn save<H: RosterHost>(shard: &H, user: &str, item: RosterItem, removed: bool) {
    let version = {
        let mut rosters = shard.rosters().borrow_mut();
        let Some(r) = rosters.get_mut(user) else {
            return;
        };
        r.version += 1;
        if removed {
            r.items.remove(item.jid.as_str());
        } else {
            r.items
                .insert(item.jid.clone().into_boxed_str(), item.clone());
        }
        r.version
    };
    if shard.shared.storage.is_some() {
        let req = if removed {
            Request::RosterRemove {
                user: user.to_string(),
                contact: item.jid.clone(),
                version,
            }
        } else {
            Request::RosterSet {
                user: user.to_string(),
                item: item.clone(),
                version,
            }
        };
        shard.storage(req);
    }
    if !item.listed {
        return; // a pending-in entry only: not part of the roster the client sees
    }
    let bare = format!("{user}@{}", shard.domain());
    let targets = shard
        .sessions
        .borrow()
        .resources_where(&bare, |r| r.roster_requested);
    let x = item_xml(&item, removed);
    // A push reports a stored change: it leaves after the commit (nothing if that fails).
    for (jid, ctl) in targets {
        let mut v = Vec::with_capacity(160 + jid.as_str().len() + x.len());
        let mut iq = Elem::new(&mut v, "iq")
            .attr("xmlns", crate::xml::ns::CLIENT)
            .attr("type", "set")
            .attr_fmt("id", format_args!("push{:x}", shard.random() & 0xffff_ffff))
            .attr("to", jid.as_str());
        iq.child("query")
            .attr("xmlns", NS)
            .attr_fmt("ver", version)
            .raw(x.as_bytes())
            .end();
        iq.end();
        crate::xmpp::commit::reply_after_commit(shard, &ctl, v, Vec::new());
    }
}

fn item<H: RosterHost>(shard: &H, user: &str, contact: &str) -> Option<RosterItem> {
    shard
        .rosters()
        .borrow()
        .get(user)
        .and_then(|r| r.items.get(contact).cloned())
}

/// A roster get or set from a session (§2.1.3, §2.3): answered by the module itself
/// (after the roster is loaded, and a set after its commit).
pub fn handle<H: RosterHost>(ctx: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    on_iq(ctx, r.st, r.stype, r.child);
    IqReply::Later
}

fn on_iq<H: RosterHost>(ctx: &Ctx<H>, st: &Stanza, stype: SType, child: usize) {
    let Some(user) = ctx.jid.local() else { return };
    if !set::to_self(st, ctx.jid) {
        return ctx.error(st, Kind::Iq, Cond::Forbidden, None);
    }
    let id = id_attr(st).to_string();
    if stype == SType::Get {
        if let Some(r) = ctx
            .shard
            .sessions
            .borrow_mut()
            .own_resource_mut(ctx.jid, ctx.ctl.id)
        {
            r.roster_requested = true;
        }
        let ver = st.attr(child, "ver").map(|a| a.value().into_owned());
        if ensure(ctx.shard, user) {
            get(ctx.shard, ctx.jid, &id, ver.as_deref());
        } else {
            queue(
                ctx.shard,
                user,
                Pending::Get {
                    jid: ctx.jid.clone(),
                    id,
                    ver,
                },
            );
        }
        return;
    }
    let parsed = set::parse(st, child);
    if ensure(ctx.shard, user) {
        set(ctx.shard, ctx.jid, &id, parsed);
    } else {
        queue(
            ctx.shard,
            user,
            Pending::Set {
                jid: ctx.jid.clone(),
                id,
                item: parsed,
            },
        );
    }
}

/// The result of the iq whose `id='…'` attribute (as the client wrote it) is `id`, with
/// `inner` (already XML) as its content.
fn result<H: RosterHost>(shard: &H, jid: &Jid, id: &str, inner: &[u8]) {
    let mut v = Vec::with_capacity(96 + id.len() + jid.as_str().len() + inner.len());
    let mut iq = Elem::new(&mut v, "iq")
        .attr("xmlns", crate::xml::ns::CLIENT)
        .attr("type", "result");
    if !id.is_empty() {
        iq = iq.attrs_raw(id.as_bytes());
    }
    iq = iq.attr("to", jid.as_str());
    if !inner.is_empty() {
        iq = iq.raw(inner);
    }
    iq.end();
    send_to(shard, jid, v);
}

fn error<H: RosterHost>(shard: &H, jid: &Jid, id: &str, cond: Cond) {
    let (v, _, _) = crate::xmpp::errors::error_stanza("iq", "", jid.as_str(), id, cond, None);
    send_to(shard, jid, v);
}

fn get<H: RosterHost>(shard: &H, jid: &Jid, id: &str, ver: Option<&str>) {
    let Some(user) = jid.local() else { return };
    let (version, xml) = {
        let rosters = shard.rosters().borrow();
        let Some(r) = rosters.get(user) else { return };
        let mut items: Vec<&RosterItem> = r.items.values().filter(|i| i.listed).collect();
        items.sort_by(|a, b| a.jid.cmp(&b.jid));
        (
            r.version,
            items
                .into_iter()
                .map(|i| item_xml(i, false))
                .collect::<String>(),
        )
    };
    // §2.6.3: unchanged since the version the client has: an empty result.
    if ver == Some(version.to_string().as_str()) {
        return result(shard, jid, id, b"");
    }
    let mut q = Vec::with_capacity(64 + xml.len());
    Elem::new(&mut q, "query")
        .attr("xmlns", NS)
        .attr_fmt("ver", version)
        .start_content()
        .raw(xml.as_bytes())
        .end();
    result(shard, jid, id, &q);
}

fn set<H: RosterHost>(shard: &H, jid: &Jid, id: &str, parsed: Result<RosterSet, Cond>) {
    let Some(user) = jid.local() else { return };
    let new = match parsed {
        Ok(x) => x,
        Err(c) => return error(shard, jid, id, c),
    };
    let old = item(shard, user, new.jid.as_str());
    if new.remove {
        let Some(old) = old.filter(|o| o.listed) else {
            return error(shard, jid, id, Cond::ItemNotFound);
        };
        // §2.5.2: cancel the subscriptions both ways.
        let me = jid.bare();
        if old.subscription.has_to() || old.ask {
            router::route(shard, subscription(me, &old.jid, "unsubscribe"));
        }
        if old.subscription.has_from() {
            router::route(shard, subscription(me, &old.jid, "unsubscribed"));
        }
        save(shard, user, old, true);
    } else {
        let mut item = old.unwrap_or_else(|| RosterItem {
            jid: new.jid.as_str().to_string(),
            ..Default::default()
        });
        item.name = new.name;
        item.groups = new.groups;
        item.listed = true;
        save(shard, user, item, false);
    }
    // The result says "stored": it leaves after the commit that covers the change.
    let ctl = shard.sessions.borrow().resource(jid).map(|r| r.ctl.clone());
    if let Some(ctl) = ctl {
        let mut ok = Vec::with_capacity(96 + id.len() + jid.as_str().len());
        let mut iq = Elem::new(&mut ok, "iq")
            .attr("xmlns", crate::xml::ns::CLIENT)
            .attr("type", "result");
        if !id.is_empty() {
            iq = iq.attrs_raw(id.as_bytes());
        }
        iq.attr("to", jid.as_str()).end();
        let (err, _, _) = crate::xmpp::errors::error_stanza(
            "iq",
            "",
            jid.as_str(),
            id,
            Cond::InternalServerError,
            Some("the change could not be stored"),
        );
        crate::xmpp::commit::reply_after_commit(shard, &ctl, ok, err);
    }
}

/// `<presence type='…'/>` between two bare JIDs.
fn subscription(from: &str, to: &str, ty: &str) -> Routed {
    let stype = SType::parse(Kind::Presence, Some(ty)).unwrap_or(SType::Available);
    router::build(
        Kind::Presence,
        stype,
        from,
        to,
        &format!(" type='{ty}'"),
        b"",
    )
}

/// A stored presence (`<presence … from='full'…>`) re-addressed to `to`.
fn presence_to(payload: &Bytes, to: &str) -> Option<Routed> {
    let p = payload.as_ref();
    if !p.starts_with(b"<presence") {
        return None;
    }
    let mut v = Vec::with_capacity(p.len() + to.len() + 8);
    v.extend_from_slice(b"<presence to='");
    let t0 = v.len() as u32;
    escape_attr(to, &mut v);
    let t1 = v.len() as u32;
    v.push(b'\'');
    v.extend_from_slice(&p[9..]);
    let i = v.windows(7).position(|w| w == b" from='")? + 7;
    let j = v[i..].iter().position(|&b| b == b'\'')? + i;
    let stype = if v.windows(18).any(|w| w == b"type='unavailable'") {
        SType::Unavailable
    } else {
        SType::Available
    };
    Some(Routed::from_parts(
        Kind::Presence,
        stype,
        v,
        t0..t1,
        i as u32..j as u32,
    ))
}

/// The current presence (or `unavailable`) of each of `bare`'s available resources, to `to`.
fn send_presences<H: RosterHost>(shard: &H, bare: &str, to: &str, what: Presences) {
    let unavailable = match what {
        Presences::Nothing => return,
        Presences::Available => false,
        Presences::Unavailable => true,
    };
    let list: Vec<(String, Option<Bytes>)> = shard
        .sessions
        .borrow()
        .user(bare)
        .map(|u| {
            u.resources
                .iter()
                .filter(|r| r.available)
                .map(|r| (r.jid.as_str().to_string(), r.presence.clone()))
                .collect()
        })
        .unwrap_or_default();
    for (full, p) in list {
        let r = if unavailable {
            Some(crate::xmpp::presence::unavailable_to(&full, to))
        } else {
            p.as_ref().and_then(|p| presence_to(p, to))
        };
        if let Some(r) = r {
            router::route(shard, r);
        }
    }
}

/// Applies the outcome of a subscription stanza to `user`'s entry for `contact`: the new
/// state is stored and pushed when it changed; an entry that only remembered a pending-in
/// request and no longer does is forgotten.
fn apply<H: RosterHost>(
    shard: &H,
    user: &str,
    contact: &str,
    old: Option<RosterItem>,
    o: &sub::Outcome,
) {
    let mut it = old.clone().unwrap_or_else(|| RosterItem {
        jid: contact.to_string(),
        ..Default::default()
    });
    o.state.write(&mut it);
    it.listed |= o.list;
    if old.as_ref() == Some(&it) {
        return;
    }
    if !it.listed && o.state == State::None {
        if old.is_some() {
            save(shard, user, it, true);
        }
    } else {
        save(shard, user, it, false);
    }
}

/// An outgoing subscription stanza from one of `jid`'s sessions (§3.1.2, §3.1.5, §3.2.2,
/// §3.3.2, RFC 6121 A.2): the user's roster changes first, then the stanza goes out.
pub fn outbound<H: RosterHost>(
    shard: &H,
    jid: &Jid,
    stype: SType,
    to: &Jid,
    stanza: Option<Routed>,
) {
    let Some(user) = jid.local() else { return };
    if !ensure(shard, user) {
        return queue(
            shard,
            user,
            Pending::Outbound {
                jid: jid.clone(),
                stype,
                to: to.clone(),
                stanza,
            },
        );
    }
    let Some(ty) = SubType::of(stype) else { return };
    let (contact, me) = (to.bare(), jid.bare());
    let old = item(shard, user, contact);
    let o = sub::process(State::of(old.as_ref()), Direction::Outbound, ty);
    apply(shard, user, contact, old, &o);
    if o.action == Action::Route {
        router::route(
            shard,
            stanza.unwrap_or_else(|| subscription(me, contact, ty.name())),
        );
    }
    send_presences(shard, me, contact, o.presences);
}

/// A subscription stanza or probe to a local user, on its home shard (§3.1.3, §3.1.6,
/// §3.2.3, §3.3.3, RFC 6121 A.3; probes §4.3.2).
pub fn inbound<H: RosterHost>(shard: &H, r: Routed) {
    let (user, contact, bare) = {
        let to = r.to();
        let from = r.from();
        let (to_bare, _) = split_full(&to);
        let Some((local, _)) = to_bare.split_once('@') else {
            return;
        };
        (
            local.to_string(),
            split_full(&from).0.to_string(),
            to_bare.to_string(),
        )
    };
    if !ensure(shard, &user) {
        return queue(shard, &user, Pending::Inbound(r));
    }
    let old = item(shard, &user, &contact);
    let Some(ty) = SubType::of(r.stype) else {
        if r.stype == SType::Probe && old.is_some_and(|o| o.subscription.has_from()) {
            send_presences(shard, &bare, &contact, Presences::Available);
        }
        return;
    };
    let o = sub::process(State::of(old.as_ref()), Direction::Inbound, ty);
    apply(shard, &user, &contact, old, &o);
    match o.action {
        // The contact's request or answer reaches the user's resources after the roster
        // push (§3.1.3, §3.1.6), so after the commit of the change it caused.
        Action::Deliver => {
            let payload = r.payload.clone();
            let to = bare.clone();
            crate::xmpp::commit::after_commit(
                shard,
                Box::new(move |shard: &H, _stored: bool| {
                    let targets = shard
                        .sessions
                        .borrow()
                        .resources_where(&to, |x| x.available);
                    for (_, t) in targets {
                        router::push(&t, &payload);
                    }
                }),
            );
        }
        Action::AutoReplySubscribed => {
            router::route(shard, subscription(&bare, &contact, "subscribed"))
        }
        Action::Route | Action::Drop => {}
    }
    send_presences(shard, &bare, &contact, o.presences);
}

/// A presence broadcast (RFC 6121 §4.2, §4.4): to every contact with a `from`
/// subscription. `initial` also probes contacts with `to` and re-delivers stored
/// subscription requests (§3.1.3) to the new resource.
pub fn broadcast<H: RosterHost>(shard: &H, jid: &Jid, payload: &Bytes, initial: bool) {
    let Some(user) = jid.local() else { return };
    if !ensure(shard, user) {
        if initial {
            queue(shard, user, Pending::Available { jid: jid.clone() });
        }
        return;
    }
    let (from, to, pending): (Vec<String>, Vec<String>, Vec<String>) = {
        let rosters = shard.rosters().borrow();
        let Some(r) = rosters.get(user) else { return };
        let mut f = Vec::new();
        let mut t = Vec::new();
        let mut p = Vec::new();
        for i in r.items.values() {
            if i.subscription.has_from() {
                f.push(i.jid.clone());
            }
            if i.subscription.has_to() {
                t.push(i.jid.clone());
            }
            if i.pending_in {
                p.push(i.jid.clone());
            }
        }
        (f, t, p)
    };
    for c in &from {
        if let Some(r) = presence_to(payload, c) {
            router::route(shard, r);
        }
    }
    if initial {
        let me = jid.bare();
        for c in &to {
            router::route(shard, subscription(me, c, "probe"));
        }
        for c in &pending {
            let r = subscription(c, me, "subscribe");
            send_to(shard, jid, r.payload.to_vec());
        }
    }
}

/// A resource became available before its roster was loaded: broadcast now.
fn became_available<H: RosterHost>(shard: &H, jid: &Jid) {
    let p = shard
        .sessions
        .borrow()
        .resource(jid)
        .and_then(|r| r.presence.clone());
    if let Some(p) = p {
        broadcast(shard, jid, &p, true);
    }
}

/// A session ended (closed, replaced or timed out): if it was available, `unavailable` to
/// every contact with `from` (RFC 6121 §4.5.2); then the roster is dropped from the cache
/// when its user has no session left.
pub fn on_session_end<H: RosterHost>(shard: &H, res: &Resource) {
    if res.available {
        session_ended(shard, res.jid.as_str(), res.jid.bare());
    }
    if let Some(local) = res.jid.local() {
        evict_if_idle(shard, local);
    }
}

/// A session that was available ended: `unavailable` to every contact with `from`.
fn session_ended<H: RosterHost>(shard: &H, full: &str, bare: &str) {
    let Some((user, _)) = bare.split_once('@') else {
        return;
    };
    let contacts: Vec<String> = shard
        .rosters()
        .borrow()
        .get(user)
        .map(|r| {
            r.items
                .values()
                .filter(|i| i.subscription.has_from())
                .map(|i| i.jid.clone())
                .collect()
        })
        .unwrap_or_default();
    for c in contacts {
        router::route(shard, crate::xmpp::presence::unavailable_to(full, &c));
    }
}
