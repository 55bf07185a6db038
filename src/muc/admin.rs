//! Roles and affiliations (XEP-0045 §8 moderator, §9 admin and §10.3–10.8 owner use
//! cases): muc#admin items that change an occupant's role by nick (kick, voice, moderator)
//! or a user's affiliation by JID (ban, membership, admin, owner), with the permission
//! rules of §5; and the lists of occupants by role and of users by affiliation.

use super::fanout::Out;
use super::room::{Affiliation, Role, Room, err, iq_result, persist};
use crate::features::mam::MamHost;
use crate::xml::ns::MUC_ADMIN as NS_MUC_ADMIN;
use crate::xml::stanza::Stanza;
use crate::xml::writer::Elem;
use crate::xmpp::errors::Cond;
use crate::xmpp::jid::Jid;
use crate::xmpp::router::Routed;

/// A muc#admin get (query `c` of `st`, from session `from` of affiliation `aff`): the
/// users of one affiliation (admins, §9), or the occupants of one role: the moderators
/// (admins, §9.8), the participants or visitors (moderators, §8.5).
#[allow(clippy::too_many_arguments)]
pub(super) fn get(
    room: &Room,
    st: &Stanza,
    c: usize,
    aff: Affiliation,
    r: &Routed,
    from: &str,
    out: &mut Out,
) {
    let Some(item) = st.child(c, "item", NS_MUC_ADMIN) else {
        return err(out, r, Cond::BadRequest, None);
    };
    let wanted_role = st.attr(item, "role").and_then(|a| Role::parse(&a.value()));
    let allowed = match wanted_role {
        Some(Role::Participant | Role::Visitor) if st.attr(item, "affiliation").is_none() => {
            aff >= Affiliation::Admin
                || room
                    .occupants
                    .by_session(from)
                    .is_some_and(|i| room.occupants[i].role == Role::Moderator)
        }
        _ => aff >= Affiliation::Admin,
    };
    if !allowed {
        let why = if wanted_role.is_some_and(|r| r < Role::Moderator) {
            "moderators only"
        } else {
            "admins only"
        };
        return err(out, r, Cond::Forbidden, Some(why));
    }
    let mut v = Vec::with_capacity(128);
    let mut q = Elem::new(&mut v, "query")
        .attr("xmlns", NS_MUC_ADMIN)
        .start_content();
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
            q.child("item")
                .attr("affiliation", a.name())
                .attr("jid", &j)
                .end();
        }
    } else if let Some(ro) = st.attr(item, "role").and_then(|a| Role::parse(&a.value())) {
        // §17.4: nick, role, affiliation and the occupant's full JID.
        for (_, o) in room.occupants.iter().filter(|(_, o)| o.role == ro) {
            let full = o.sessions().first().map_or(o.bare(), |s| s.jid.as_str());
            q.child("item")
                .attr("role", ro.name())
                .attr("nick", o.nick())
                .attr("affiliation", room.affiliation(o.bare()).name())
                .attr("jid", full)
                .end();
        }
    } else {
        return err(out, r, Cond::BadRequest, None);
    }
    q.end();
    iq_result(out, r, std::str::from_utf8(&v).unwrap_or_default());
}

/// A muc#admin set (query `c` of `st`) by session `from`, of affiliation `aff`: its items
/// in order; the first refused stops the rest (those before it stay applied).
#[allow(clippy::too_many_arguments)]
pub(super) fn set<H: MamHost>(
    shard: &H,
    room: &mut Room,
    st: &Stanza,
    c: usize,
    aff: Affiliation,
    r: &Routed,
    from: &str,
    out: &mut Out,
) {
    let actor_role = room
        .occupants
        .by_session(from)
        .map(|i| room.occupants[i].role)
        .unwrap_or(Role::None);
    for item in st.children(c).collect::<Vec<_>>() {
        if let Err(cond) = admin_item(room, st, item, aff, actor_role, out) {
            persist(shard, room, out);
            return err(out, r, cond, None);
        }
    }
    persist(shard, room, out);
    iq_result(out, r, "");
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
        // §17.4: a role and an affiliation in one item is a bad request.
        if st.attr(item, "affiliation").is_some() {
            return Err(Cond::BadRequest);
        }
        let role = Role::parse(&role).ok_or(Cond::BadRequest)?;
        let nick = st
            .attr(item, "nick")
            .map(|a| a.value())
            .ok_or(Cond::BadRequest)?;
        let oi = room.occupants.by_nick(&nick).ok_or(Cond::ItemNotFound)?;
        let target_aff = room.affiliation(room.occupants[oi].bare());
        let was_moderator = room.occupants[oi].role == Role::Moderator;
        let allowed = match role {
            // §9.6: admins grant moderator status.
            Role::Moderator => aff >= Affiliation::Admin,
            // §9.7: admins revoke it, never from an admin or owner.
            _ if was_moderator && role == Role::Participant => {
                aff >= Affiliation::Admin && target_aff < Affiliation::Admin
            }
            // §8.4: nobody revokes the voice of an admin or owner.
            Role::Visitor if target_aff >= Affiliation::Admin => false,
            // §8.2–8.4: moderators kick and grant or revoke voice below admins.
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
            // Shown before it is stored: a change out of a broadcast role is seen too.
            room.broadcast_presence(oi, role, false, &[], &[], "", out);
            room.occupants[oi].role = role;
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
    set_affiliation(room, bare, new, out);
    Ok(())
}

/// Gives user `bare` affiliation `new` (`None` removes it) and shows the change: its
/// occupants are removed when banned (301) or no longer members of a members-only room
/// (321), else their presence is broadcast with the new affiliation (and role).
pub(super) fn set_affiliation(room: &mut Room, bare: &str, new: Affiliation, out: &mut Out) {
    if new == Affiliation::None {
        room.affiliations.remove(bare);
    } else {
        room.affiliations.insert(bare.into(), new);
    }
    // The user's occupants (a scan: by bare JID, and only on an affiliation change): one
    // per nick it joined under. A removal may renumber the others, so each turn looks again.
    let removal = match new {
        Affiliation::Outcast => Some(301),
        _ if room.cfg.members_only && new < Affiliation::Member => Some(321),
        _ => None,
    };
    if let Some(code) = removal {
        loop {
            let mine = room.occupants.iter().find(|(_, o)| o.bare() == bare);
            let Some(oi) = mine.map(|(oi, _)| oi) else {
                break;
            };
            remove_occupant(room, oi, code, out);
        }
        return;
    }
    let mine: Vec<usize> = room
        .occupants
        .iter()
        .filter(|(_, o)| o.bare() == bare)
        .map(|(oi, _)| oi)
        .collect();
    for oi in mine {
        let role = room
            .default_role(new)
            .max(room.occupants[oi].role.min(Role::Participant));
        room.broadcast_presence(oi, role, false, &[], &[], "", out);
        room.occupants[oi].role = role;
    }
}

/// Removes occupant `oi` for a kick (307), ban (301), loss of membership (321) or a room
/// that became members-only (322).
pub(super) fn remove_occupant(room: &mut Room, oi: usize, code: u16, out: &mut Out) {
    room.broadcast_presence(oi, Role::None, true, &[code], &[code], "", out);
    room.occupants.remove(oi);
}
