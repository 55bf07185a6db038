//! Presence to a room (XEP-0045 §7.1–7.2): entering a room, creating it by entering it
//! (§10.1.1), the presence an occupant updates (§7.7), the history sent on entering
//! (§7.2.15), nick changes (§7.6) and leaving (§7.14). A nick belongs to the user who
//! took it: another session of that user may join under it too, anyone else gets a
//! conflict; a nick reserved by registration (§7.10) belongs to its user even when away.

use super::Service;
use super::fanout::{Out, build, to_bytes};
use super::occupants::{Occupant, Sess};
use super::room::{Affiliation, Hist, Role, Room, Rooms, err, parse, stanza, stanza_id};
use crate::features::mam::MamHost;
use crate::xml::ns::DELAY as NS_DELAY;
use crate::xml::ns::MUC as NS_MUC;
use crate::xml::ns::MUC_USER as NS_MUC_USER;
use crate::xml::stanza::Stanza;
use crate::xml::writer::Elem;
use crate::xmpp::errors::Cond;
use crate::xmpp::jid::Jid;
use crate::xmpp::router::{Kind, Routed, SType};
use std::time::{Duration, SystemTime};

#[allow(clippy::too_many_arguments)]
pub(super) fn presence<H: MamHost>(
    svc: &Service,
    shard: &H,
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
                super::directory::unlist(room, &svc.domain, out);
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
        rooms.insert(bare.into(), Room::new(bare, local, &from_bare, &svc.cfg));
        created = true;
        tracing::info!(shard = shard.id, room = bare, owner = %from_bare, "room created");
    }
    let room = rooms
        .get_mut(bare)
        .expect("the room exists or was inserted just above");
    // Already in the room with this session: a presence update (or a nick change).
    if let Some(oi) = room.occupants.by_session(from) {
        if room.occupants[oi].nick() != nick {
            return change_nick(room, oi, nick, own, r, out);
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
    // §7.10, §7.2.2: a members-only room seats a member under its reserved nick (210);
    // §7.2.8: nobody else may take a reserved nick.
    let (nick, modified) = match room.reserved_nick(&from_bare) {
        Some(reserved) if room.cfg.members_only && reserved != nick => (reserved.to_string(), true),
        _ => (nick.to_string(), false),
    };
    let nick = nick.as_str();
    if room.reserved_by_other(nick, &from_bare) {
        return err(
            out,
            r,
            Cond::Conflict,
            Some("that nickname is reserved by another user"),
        );
    }
    let existing = room.occupants.by_nick(nick);
    if let Some(oi) = existing {
        if room.occupants[oi].bare() != from_bare {
            return err(out, r, Cond::Conflict, Some("that nickname is in use"));
        }
    } else if room.occupants.len() >= room.cfg.max_occupants {
        return err(out, r, Cond::ServiceUnavailable, Some("the room is full"));
    }
    let sess = Sess::at(&from_jid, shard.home(from_jid.bare()));
    let (oi, new_occupant) = match existing {
        Some(oi) => {
            room.occupants.add_session(oi, sess);
            (oi, false)
        }
        None => {
            let role = room.default_role(aff);
            let o = Occupant::new(nick, &from_bare, sess, role, own);
            (room.occupants.add(o), true)
        }
    };
    let role = room.occupants[oi].role;
    // 1. The existing occupants' presence, to the joiner (§7.2.3), of the roles the room
    // broadcasts (§16.5.3).
    for (i, o) in room.occupants.iter() {
        if i != oi && room.broadcasts(o.role) {
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
    if modified {
        self_codes.push(210);
    }
    if new_occupant {
        room.broadcast_presence(oi, role, false, &[], &self_codes, "", out);
    } else {
        self_codes.push(110);
        out.one(room.presence_to(oi, from, Role::Moderator, &self_codes));
    }
    // 3. History (§7.2.15), each with a <delay/>.
    history(room, &st, x, from, out);
    super::directory::announce(room, &svc.domain, out);
    // 4. The subject, always (empty when none).
    out.one(subject_message(room, from, &stanza_id(shard)));
}

/// §7.2.16: the room's subject to the joiner `to` (`<subject/>` when none), from the
/// occupant who set it, with the room's stanza id `sid`.
fn subject_message(room: &Room, to: &str, sid: &str) -> Routed {
    let subject_from = match &room.subject {
        Some((_, by)) => room.occupant_jid(by),
        None => room.jid.clone(),
    };
    let text = room.subject.as_ref().map(|(text, _)| text.as_str());
    let cap = 64 + text.map_or(0, str::len);
    stanza(
        Kind::Message,
        SType::Groupchat,
        &subject_from,
        to,
        cap,
        |m| {
            let mut m = m.attr("type", "groupchat").attr("id", sid);
            let subject = m.child("subject");
            match text {
                // Kept escaped (`message::groupchat`).
                Some(t) => subject.raw(t.as_bytes()).end(),
                None => subject.end(),
            }
            m.end();
        },
    )
}

/// §7.6: occupant `oi` asks, from one of its sessions, to be `nick` (with `own` as its
/// presence): refused with a conflict when another occupant has it or another user
/// reserved it, and in a members-only room when the occupant has a reserved nick (the
/// room "locks down" members' nicks, §7.10). Every session of the occupant moves.
fn change_nick(room: &mut Room, oi: usize, nick: &str, own: String, r: &Routed, out: &mut Out) {
    let bare = room.occupants[oi].bare().to_string();
    if room.occupants.by_nick(nick).is_some() || room.reserved_by_other(nick, &bare) {
        return err(
            out,
            r,
            Cond::Conflict,
            Some("that nickname is in use or reserved"),
        );
    }
    if room.cfg.members_only && room.reserved_nick(&bare).is_some_and(|n| n != nick) {
        return err(
            out,
            r,
            Cond::NotAcceptable,
            Some("members use their reserved nickname in this room"),
        );
    }
    room.broadcast_nick_change(oi, nick, out);
    room.occupants.rename(oi, nick);
    room.occupants[oi].presence = own;
    let role = room.occupants[oi].role;
    room.broadcast_presence(oi, role, false, &[], &[], "", out);
}

/// §7.2.15: the history the joiner (session `to`) asked for in the `<history/>` of its
/// join element `x` (or the room's default), oldest first, each with a `<delay/>`.
fn history(room: &Room, st: &Stanza, x: Option<usize>, to: &str, out: &mut Out) {
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
    let to_esc = to_bytes(to);
    for m in picked.into_iter().rev() {
        let stamp = humantime::format_rfc3339_seconds(m.at);
        let mut v = Vec::with_capacity(m.head.len() + m.rest.len() + 160);
        v.extend_from_slice(&m.head);
        v.extend_from_slice(b" to='");
        let t0 = v.len() as u32;
        v.extend_from_slice(&to_esc);
        let t1 = v.len() as u32;
        v.extend_from_slice(b"'>");
        v.extend_from_slice(m.sid.as_bytes());
        Elem::new(&mut v, "delay")
            .attr("xmlns", NS_DELAY)
            .attr("from", &room.jid)
            .attr_fmt("stamp", stamp)
            .end();
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

/// The `from='…'` value range in a stanza we built (first `from='`).
fn find_from(v: &[u8]) -> Option<std::ops::Range<u32>> {
    let i = v.windows(7).position(|w| w == b" from='")? + 7;
    let j = v[i..].iter().position(|&b| b == b'\'')? + i;
    Some(i as u32..j as u32)
}

/// §7.14: session `from` leaves. The last session of an occupant takes the occupant out,
/// with its unavailable presence to all; one of several only tells that session.
fn leave(room: &mut Room, from: &str, out: &mut Out) {
    let Some(oi) = room.occupants.by_session(from) else {
        return;
    };
    if room.occupants[oi].sessions().len() > 1 {
        // One of several sessions with this nick: only it learns that it left.
        room.occupants.remove_session(oi, from);
        let inner = room.user_x(&room.occupants[oi], Role::None, Some(from), &[110], "");
        out.one(build(
            Kind::Presence,
            SType::Unavailable,
            &room.occupant_jid(room.occupants[oi].nick()),
            from,
            " type='unavailable'",
            &inner,
        ));
        return;
    }
    room.broadcast_presence(oi, Role::None, true, &[], &[], "", out);
    room.occupants.remove(oi);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muc::room::tests::{room, text};

    /// The subject on joining: `<subject/>` from the room when none, else the kept
    /// (escaped) text from the occupant who set it.
    #[test]
    fn subject_message_bytes() {
        let mut room = room();
        let sid = "0123456789abcdef";
        let r = subject_message(&room, "bob@localhost/desk", sid);
        assert_eq!(
            text(&r),
            "<message xmlns='jabber:client' to='bob@localhost/desk' from='coven@conference.localhost' \
             type='groupchat' id='0123456789abcdef'><subject/></message>"
        );
        room.subject = Some((
            "It's 1 &lt; 2 &amp; \"3\" &gt; 0&#13;".into(),
            "O'Neil <&>".into(),
        ));
        let r = subject_message(&room, "bob@localhost/desk", sid);
        assert_eq!(
            text(&r),
            "<message xmlns='jabber:client' to='bob@localhost/desk' \
             from='coven@conference.localhost/O&apos;Neil &lt;&amp;&gt;' type='groupchat' \
             id='0123456789abcdef'><subject>It's 1 &lt; 2 &amp; \"3\" &gt; 0&#13;</subject></message>"
        );
        assert_eq!(
            (&*r.to(), &*r.from()),
            (
                "bob@localhost/desk",
                "coven@conference.localhost/O'Neil <&>"
            )
        );
    }
}
