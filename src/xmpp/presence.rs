//! Presence (RFC 6121 §4): broadcast to the user's own resources, directed presence
//! delivered and remembered, `unavailable` to all of them when a session ends in any way.
//! Without a roster module (`Host::on_presence_broadcast`, `on_subscription_out`) a user's
//! broadcast audience is its own resources and the entities it sent directed presence to.

use super::core::Host;
use super::errors::Cond;
use super::jid::Jid;
use super::router::{Kind, Routed, SType, push, route, stamp};
use super::session::Resource;
use super::stream::Ctx;
use crate::xml::stanza::Stanza;
use bytes::Bytes;

pub fn on_presence<H: Host>(ctx: &Ctx<H>, st: &Stanza, stype: Option<SType>, to: Option<Jid>) {
    let Some(stype) = stype else {
        ctx.error(
            st,
            Kind::Presence,
            Cond::BadRequest,
            Some("unknown presence type"),
        );
        return;
    };
    match to {
        None => match stype {
            SType::Available | SType::Unavailable => broadcast(ctx, st, stype),
            SType::Error => {}
            _ => ctx.error(
                st,
                Kind::Presence,
                Cond::BadRequest,
                Some("this presence type needs a 'to'"),
            ),
        },
        Some(to) => directed(ctx, st, stype, to),
    }
}

fn priority(st: &Stanza) -> Result<i8, ()> {
    match st
        .child(0, "priority", crate::xml::ns::CLIENT)
        .or_else(|| st.child(0, "priority", ""))
    {
        None => Ok(0),
        Some(i) => st.text(i).trim().parse::<i8>().map_err(|_| ()),
    }
}

fn broadcast<H: Host>(ctx: &Ctx<H>, st: &Stanza, stype: SType) {
    let Ok(prio) = priority(st) else {
        ctx.error(
            st,
            Kind::Presence,
            Cond::BadRequest,
            Some("priority must be an integer from -128 to 127"),
        );
        return;
    };
    let payload = stamp(st, Kind::Presence, stype, ctx.jid.as_str(), None).payload;
    let available = stype == SType::Available;
    let (was_available, directed, flush) = {
        let mut sessions = ctx.shard.sessions.borrow_mut();
        let Some(me) = sessions.own_resource_mut(ctx.jid, ctx.ctl.id) else {
            return;
        };
        let was = me.available;
        // Offline messages go to the first available presence with a non-negative priority
        // (RFC 6121 §8.5.2.1.1), even if an earlier one was negative.
        let flush = available && prio >= 0 && !(was && me.priority >= 0);
        me.available = available;
        me.priority = prio;
        me.presence = available.then(|| payload.clone());
        let directed = if available {
            Vec::new()
        } else {
            std::mem::take(&mut me.directed)
        };
        (was, directed, flush)
    };
    // Everyone of the user's available resources (this one included, §4.2.2) gets it;
    // a newly available resource also gets the others' presence (§4.4.2).
    let mut others: Vec<(std::rc::Rc<super::sink::Sink>, Option<Bytes>)> = Vec::new();
    if let Some(user) = ctx.shard.sessions.borrow().user(ctx.jid.bare()) {
        for r in user
            .resources
            .iter()
            .filter(|r| r.available || r.ctl.id == ctx.ctl.id)
        {
            others.push((r.ctl.clone(), r.presence.clone()));
        }
    }
    for (ctl, _) in &others {
        if available || ctl.id != ctx.ctl.id {
            push(ctl, &payload);
        }
    }
    if available && !was_available {
        for (ctl, p) in &others {
            if let (true, Some(p)) = (ctl.id != ctx.ctl.id, p) {
                push(ctx.ctl, p);
            }
        }
    }
    for to in directed {
        route(ctx.shard, unavailable_to(ctx.jid.as_str(), to.as_str()));
    }
    ctx.shard
        .on_presence_broadcast(ctx.jid, &payload, available && !was_available);
    if flush {
        ctx.shard.on_available(ctx.jid, ctx.ctl.id);
    }
}

fn directed<H: Host>(ctx: &Ctx<H>, st: &Stanza, stype: SType, to: Jid) {
    let domain = ctx.shard.domain();
    let component = ctx.shard.is_component_domain(to.domain());
    if to.domain() != domain && !component {
        if stype != SType::Error {
            ctx.error(
                st,
                Kind::Presence,
                Cond::RemoteServerNotFound,
                Some("no route to that domain"),
            );
        }
        return;
    }
    if to.local().is_none() && !component {
        return; // presence to the server itself
    }
    if stype.is_subscription() && !component {
        // The user's roster changes first, then the stanza goes out (RFC 6121 §3).
        let r = stamp(st, Kind::Presence, stype, ctx.jid.bare(), Some(to.bare()));
        ctx.shard.on_subscription_out(ctx.jid, stype, &to, r);
        return;
    }
    // Subscription stanzas carry bare JIDs both ways (RFC 6121 §3.1.2).
    let (from, to_s) = if stype.is_subscription() {
        (ctx.jid.bare(), to.bare())
    } else {
        (ctx.jid.as_str(), to.as_str())
    };
    if matches!(stype, SType::Available | SType::Unavailable) && to.bare() != ctx.jid.bare() {
        let max = ctx.shard.cfg().limits.max_directed_presence;
        let mut sessions = ctx.shard.sessions.borrow_mut();
        if let Some(me) = sessions.own_resource_mut(ctx.jid, ctx.ctl.id) {
            let known = me.directed.iter().position(|j| *j == to);
            match (stype, known) {
                (SType::Available, None) => {
                    if me.directed.len() >= max {
                        drop(sessions);
                        ctx.error(
                            st,
                            Kind::Presence,
                            Cond::PolicyViolation,
                            Some("too many directed presences"),
                        );
                        return;
                    }
                    me.directed.push(to.clone());
                }
                (SType::Unavailable, Some(i)) => {
                    me.directed.swap_remove(i);
                }
                _ => {}
            }
        }
    }
    route(
        ctx.shard,
        stamp(st, Kind::Presence, stype, from, Some(to_s)),
    );
}

/// `<presence type='unavailable'/>` from `from` to `to`.
pub fn unavailable_to(from: &str, to: &str) -> Routed {
    super::router::build(
        Kind::Presence,
        SType::Unavailable,
        from,
        to,
        " type='unavailable'",
        b"",
    )
}

/// A session ended (closed, replaced or timed out): if it was available, its other
/// resources get `unavailable` (RFC 6121 §4.5.2); its directed-presence recipients do in any
/// case (§4.6.3) — a room joined without initial presence must not keep a ghost occupant.
pub fn session_ended<H: Host>(shard: &H, res: Resource) {
    if !res.available {
        for to in &res.directed {
            route(shard, unavailable_to(res.jid.as_str(), to.as_str()));
        }
        shard.on_session_end(&res);
        return;
    }
    let from = res.jid.as_str();
    let un = unavailable_to(from, res.jid.bare());
    let targets: Vec<_> = shard
        .sessions
        .borrow()
        .user(res.jid.bare())
        .map(|u| {
            u.resources
                .iter()
                .filter(|r| r.available && r.ctl.id != res.ctl.id)
                .map(|r| r.ctl.clone())
                .collect()
        })
        .unwrap_or_default();
    for t in targets {
        push(&t, &un.payload);
    }
    for to in &res.directed {
        route(shard, unavailable_to(from, to.as_str()));
    }
    shard.on_session_end(&res);
}
