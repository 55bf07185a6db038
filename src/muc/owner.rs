//! The owner's muc#owner requests (XEP-0045 §10): the configuration form (§10.2), its
//! submission, which also unlocks a new room (§10.1.2 instant room, §10.1.3), the
//! cancellation of a new room's configuration, and destroying a room (§10.9).

use super::Service;
use super::fanout::Out;
use super::room::{Role, Room, err, iq_result, persist};
use crate::features::mam::MamHost;
use crate::xml::escape::escape_text_to_string as et;
use crate::xml::ns::DATA as NS_DATA;
use crate::xml::ns::MUC_OWNER as NS_MUC_OWNER;
use crate::xml::ns::MUC_ROOMCONFIG as FORM;
use crate::xml::stanza::Stanza;
use crate::xmpp::errors::Cond;
use crate::xmpp::router::Routed;

/// A muc#owner set (query `c` of `st`) from an owner: destroy, or submit or cancel the
/// configuration form. Returns whether the room is gone (the caller drops it).
pub(super) fn set<H: MamHost>(
    svc: &Service,
    shard: &H,
    room: &mut Room,
    st: &Stanza,
    c: usize,
    r: &Routed,
    out: &mut Out,
) -> bool {
    if let Some(d) = st.child(c, "destroy", NS_MUC_OWNER) {
        let reason = st
            .child(d, "reason", NS_MUC_OWNER)
            .map(|x| st.text(x).into_owned())
            .unwrap_or_default();
        let extra = format!("<destroy><reason>{}</reason></destroy>", et(&reason));
        // §10.9: each occupant gets its own unavailable presence with <destroy/>
        // (one per occupant, not everyone's).
        for (oi, _) in room.occupants.iter() {
            room.self_presence(oi, Role::None, true, &[], &extra, out);
        }
        room.occupants.clear();
        super::directory::unlist(room, &svc.domain, out);
        room.cfg.persistent = false;
        persist(shard, room, out);
        tracing::info!(shard = shard.id, room = room.jid.as_str(), "room destroyed");
        iq_result(out, r, "");
        return true;
    }
    let Some(x) = st.child(c, "x", NS_DATA) else {
        err(out, r, Cond::BadRequest, None);
        return false;
    };
    match st.attr(x, "type").map(|a| a.value()).as_deref() {
        Some("cancel") => {
            let gone = room.locked;
            if gone {
                super::directory::unlist(room, &svc.domain, out);
            }
            iq_result(out, r, "");
            gone
        }
        Some("submit") => {
            match apply_form(room, st, x) {
                Ok(()) => {
                    room.locked = false;
                    persist(shard, room, out);
                    super::directory::announce(room, &svc.domain, out);
                    iq_result(out, r, "")
                }
                Err(why) => err(out, r, Cond::NotAcceptable, Some(why)),
            }
            false
        }
        _ => {
            err(out, r, Cond::BadRequest, None);
            false
        }
    }
}

/// The configuration form (§10.2), with the room's current values.
pub(super) fn config_form(room: &Room) -> String {
    let c = &room.cfg;
    let b = |v: bool| if v { "1" } else { "0" };
    format!(
        "<query xmlns='{NS_MUC_OWNER}'><x xmlns='{NS_DATA}' type='form'><title>Configuration of {}</title>\
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
            .child(f, "value", NS_DATA)
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
