//! The owner's muc#owner requests (XEP-0045 §10): the configuration form (§10.2), its
//! submission, which also unlocks a new room (§10.1.2 instant room, §10.1.3), the
//! cancellation of a new room's configuration, and destroying a room (§10.9).

use super::Service;
use super::fanout::{Out, head_tail};
use super::room::{Role, Room, err, iq_result, persist};
use crate::features::mam::MamHost;
use crate::xml::ns::DATA as NS_DATA;
use crate::xml::ns::MUC_OWNER as NS_MUC_OWNER;
use crate::xml::ns::MUC_ROOMCONFIG as FORM;
use crate::xml::ns::MUC_USER as NS_MUC_USER;
use crate::xml::stanza::Stanza;
use crate::xml::writer::Elem;
use crate::xmpp::errors::Cond;
use crate::xmpp::router::{Kind, Routed};
use std::fmt::Display;

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
        destroy(svc, shard, room, &reason, out);
        iq_result(out, r, "");
        return true;
    }
    let Some(x) = st.child(c, "x", NS_DATA) else {
        err(out, r, Cond::BadRequest, None);
        return false;
    };
    match st.attr(x, "type").map(|a| a.value()).as_deref() {
        // §10.1.3: cancelling a new room's configuration destroys it, "making sure to send
        // unavailable presence to the room owner". Cancelling a later configuration
        // changes nothing.
        Some("cancel") => {
            let gone = room.locked;
            if gone {
                for (oi, _) in room.occupants.iter() {
                    room.self_presence(oi, Role::None, true, &[], "<destroy/>", out);
                }
                room.occupants.clear();
                super::directory::unlist(room, &svc.domain, out);
                tracing::info!(
                    shard = shard.id,
                    room = room.jid.as_str(),
                    "new room cancelled"
                );
            }
            iq_result(out, r, "");
            gone
        }
        Some("submit") => {
            let (was_locked, was_whois) = (room.locked, room.cfg.whois_anyone);
            match apply_form(room, st, x) {
                Ok(()) => {
                    room.locked = false;
                    persist(shard, room, out);
                    super::directory::announce(room, &svc.domain, out);
                    // §10.2.1: the occupants learn that the configuration changed (104),
                    // and whether real JIDs are now shown to all (172) or not (173).
                    if !was_locked {
                        let mut codes = vec![104];
                        match (was_whois, room.cfg.whois_anyone) {
                            (false, true) => codes.push(172),
                            (true, false) => codes.push(173),
                            _ => {}
                        }
                        config_changed(room, &codes, out);
                    }
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

/// §10.9: each occupant gets its own unavailable presence with `<destroy/>` (one per
/// occupant, not everyone's); the room leaves the directory and storage. The caller drops
/// it from the table.
pub(super) fn destroy<H: MamHost>(
    svc: &Service,
    shard: &H,
    room: &mut Room,
    reason: &str,
    out: &mut Out,
) {
    let extra = destroy_elem(reason);
    for (oi, _) in room.occupants.iter() {
        room.self_presence(oi, Role::None, true, &[], &extra, out);
    }
    room.occupants.clear();
    super::directory::unlist(room, &svc.domain, out);
    room.cfg.persistent = false;
    persist(shard, room, out);
    tracing::info!(shard = shard.id, room = room.jid.as_str(), "room destroyed");
}

/// §10.2.1 example 172: a groupchat message from the room with status `codes`, to every
/// occupant session.
pub(super) fn config_changed(room: &Room, codes: &[u16], out: &mut Out) {
    let mut inner = Vec::with_capacity(64 + 20 * codes.len());
    let mut x = Elem::new(&mut inner, "x").attr("xmlns", NS_MUC_USER);
    for c in codes {
        x.child("status").attr_fmt("code", c).end();
    }
    x.end();
    let (head, tail) = head_tail(
        Kind::Message,
        &room.jid,
        " type='groupchat'",
        std::str::from_utf8(&inner).unwrap_or_default(),
    );
    let tos = room
        .occupants
        .iter()
        .flat_map(|(_, o)| o.sessions().iter().map(|s| (s.home, s.to.clone())))
        .collect();
    out.fan(head, tail, tos);
}

/// §10.9: `<destroy><reason>…</reason></destroy>`, in the occupants' last presence.
fn destroy_elem(reason: &str) -> String {
    let mut v = Vec::with_capacity(48 + reason.len());
    let mut destroy = Elem::new(&mut v, "destroy");
    destroy.child("reason").text(reason).end();
    destroy.end();
    // Built from `&str` pieces and escapes: UTF-8.
    String::from_utf8(v).unwrap_or_default()
}

/// The configuration form (§10.2), with the room's current values.
pub(super) fn config_form(room: &Room) -> String {
    let c = &room.cfg;
    let b = |v: bool| if v { "1" } else { "0" };
    let mut v = Vec::with_capacity(2048);
    let mut q = Elem::new(&mut v, "query").attr("xmlns", NS_MUC_OWNER);
    let mut x = q.child("x").attr("xmlns", NS_DATA).attr("type", "form");
    x.child("title")
        .text_fmt(format_args!("Configuration of {}", room.jid))
        .end();
    field(&mut x, "FORM_TYPE", "hidden", None, FORM);
    field(
        &mut x,
        "muc#roomconfig_roomname",
        "text-single",
        Some("Name"),
        &c.name,
    );
    field(
        &mut x,
        "muc#roomconfig_roomdesc",
        "text-single",
        Some("Description"),
        &c.description,
    );
    field(
        &mut x,
        "muc#roomconfig_persistentroom",
        "boolean",
        Some("Persistent"),
        b(c.persistent),
    );
    field(
        &mut x,
        "muc#roomconfig_publicroom",
        "boolean",
        Some("Public"),
        b(c.public),
    );
    field(
        &mut x,
        "muc#roomconfig_membersonly",
        "boolean",
        Some("Members only"),
        b(c.members_only),
    );
    field(
        &mut x,
        "muc#roomconfig_moderatedroom",
        "boolean",
        Some("Moderated"),
        b(c.moderated),
    );
    field(
        &mut x,
        "muc#roomconfig_passwordprotectedroom",
        "boolean",
        Some("Password protected"),
        b(c.password.is_some()),
    );
    field(
        &mut x,
        "muc#roomconfig_roomsecret",
        "text-private",
        Some("Password"),
        c.password.as_deref().unwrap_or(""),
    );
    field(
        &mut x,
        "muc#roomconfig_maxusers",
        "text-single",
        Some("Maximum occupants"),
        c.max_occupants,
    );
    let mut whois = x
        .child("field")
        .attr("var", "muc#roomconfig_whois")
        .attr("type", "list-single")
        .attr("label", "Who may see real JIDs");
    for option in ["moderators", "anyone"] {
        let mut o = whois.child("option");
        o.child("value").text(option).end();
        o.end();
    }
    let who = if c.whois_anyone {
        "anyone"
    } else {
        "moderators"
    };
    whois.child("value").text(who).end();
    whois.end();
    field(
        &mut x,
        "muc#maxhistoryfetch",
        "text-single",
        Some("History length"),
        c.history_length,
    );
    field(
        &mut x,
        "muc#roomconfig_changesubject",
        "boolean",
        Some("Occupants may change the subject"),
        b(c.change_subject),
    );
    let mut pb = x
        .child("field")
        .attr("var", "muc#roomconfig_presencebroadcast")
        .attr("type", "list-multi")
        .attr("label", "Roles for which Presence is Broadcasted");
    for role in Role::LISTED {
        let mut o = pb.child("option").attr("label", role.label());
        o.child("value").text(role.name()).end();
        o.end();
    }
    for role in Role::LISTED.into_iter().filter(|r| room.broadcasts(*r)) {
        pb.child("value").text(role.name()).end();
    }
    pb.end();
    x.end();
    q.end();
    // Built from `&str` pieces and escapes: UTF-8.
    String::from_utf8(v).unwrap_or_default()
}

/// `<field var type label><value>…</value></field>` (XEP-0004 §3.2) in form `x`, the value
/// escaped.
fn field(x: &mut Elem, var: &str, ty: &str, label: Option<&str>, value: impl Display) {
    let mut f = x.child("field").attr("var", var).attr("type", ty);
    if let Some(l) = label {
        f = f.attr("label", l);
    }
    f.child("value").text_fmt(value).end();
    f.end();
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
            // A list-multi: every <value/> is a role whose presence is broadcast.
            "muc#roomconfig_presencebroadcast" => {
                let mut roles = 0;
                for v in st.children(f).filter(|&v| st.elems[v].local == "value") {
                    let role = Role::parse(st.text(v).trim())
                        .filter(|r| Role::LISTED.contains(r))
                        .ok_or("presencebroadcast takes moderator, participant, visitor")?;
                    roles |= role.bit();
                }
                room.cfg.broadcast_roles = roles;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muc::room::tests::room;

    /// The form with the room's values escaped as text (`'`, `<`, `&` in the name, the
    /// description and the password).
    #[test]
    fn config_form_bytes() {
        let mut room = room();
        room.cfg.name = "Tom's <b> & co".into();
        room.cfg.description = "a \"desc\" & <more>".into();
        room.cfg.password = Some("p'<&".into());
        room.cfg.max_occupants = 30;
        assert_eq!(
            config_form(&room),
            "<query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='form'>\
             <title>Configuration of coven@conference.localhost</title>\
             <field var='FORM_TYPE' type='hidden'>\
             <value>http://jabber.org/protocol/muc#roomconfig</value></field>\
             <field var='muc#roomconfig_roomname' type='text-single' label='Name'>\
             <value>Tom's &lt;b&gt; &amp; co</value></field>\
             <field var='muc#roomconfig_roomdesc' type='text-single' label='Description'>\
             <value>a \"desc\" &amp; &lt;more&gt;</value></field>\
             <field var='muc#roomconfig_persistentroom' type='boolean' label='Persistent'>\
             <value>0</value></field>\
             <field var='muc#roomconfig_publicroom' type='boolean' label='Public'>\
             <value>1</value></field>\
             <field var='muc#roomconfig_membersonly' type='boolean' label='Members only'>\
             <value>0</value></field>\
             <field var='muc#roomconfig_moderatedroom' type='boolean' label='Moderated'>\
             <value>0</value></field>\
             <field var='muc#roomconfig_passwordprotectedroom' type='boolean' label='Password protected'>\
             <value>1</value></field>\
             <field var='muc#roomconfig_roomsecret' type='text-private' label='Password'>\
             <value>p'&lt;&amp;</value></field>\
             <field var='muc#roomconfig_maxusers' type='text-single' label='Maximum occupants'>\
             <value>30</value></field>\
             <field var='muc#roomconfig_whois' type='list-single' label='Who may see real JIDs'>\
             <option><value>moderators</value></option><option><value>anyone</value></option>\
             <value>moderators</value></field>\
             <field var='muc#maxhistoryfetch' type='text-single' label='History length'>\
             <value>20</value></field>\
             <field var='muc#roomconfig_changesubject' type='boolean' label='Occupants may change the subject'>\
             <value>1</value></field>\
             <field var='muc#roomconfig_presencebroadcast' type='list-multi' label='Roles for which Presence is Broadcasted'>\
             <option label='Moderator'><value>moderator</value></option>\
             <option label='Participant'><value>participant</value></option>\
             <option label='Visitor'><value>visitor</value></option>\
             <value>moderator</value><value>participant</value><value>visitor</value></field>\
             </x></query>"
        );
    }

    #[test]
    fn destroy_bytes() {
        assert_eq!(
            destroy_elem("Macbeth's <&>"),
            "<destroy><reason>Macbeth's &lt;&amp;&gt;</reason></destroy>"
        );
        assert_eq!(destroy_elem(""), "<destroy><reason></reason></destroy>");
    }
}
