//! Registering with a room (XEP-0045 §7.10) and discovering one's reserved nick (§7.12).
//!
//! Registration makes an unaffiliated user a member and reserves its nick: nobody else may
//! enter or change to it (§7.2.8, §7.6), and a members-only room seats the member under it
//! (`join.rs`). Outcasts may not register, nor may non-members of a members-only room
//! (there, membership is the admins' to give: §7.10 "MAY restrict this privilege").

use super::fanout::Out;
use super::room::{Affiliation, Room, err, iq_result, persist};
use crate::features::mam::MamHost;
use crate::xml::ns;
use crate::xml::stanza::Stanza;
use crate::xml::writer::Elem;
use crate::xmpp::errors::Cond;
use crate::xmpp::jid::Jid;
use crate::xmpp::router::{Routed, SType};

/// A `jabber:iq:register` request (query `c` of `st`) from session `from`.
#[allow(clippy::too_many_arguments)]
pub(super) fn iq<H: MamHost>(
    shard: &H,
    room: &mut Room,
    st: &Stanza,
    c: usize,
    from: &str,
    max_reserved: usize,
    r: &Routed,
    out: &mut Out,
) {
    let bare = crate::xmpp::router::split_full(from).0;
    let aff = room.affiliation(bare);
    if aff == Affiliation::Outcast || (room.cfg.members_only && aff < Affiliation::Member) {
        return err(
            out,
            r,
            Cond::NotAllowed,
            Some("you may not register with this room"),
        );
    }
    if r.stype == SType::Get {
        return match room.reserved_nick(bare) {
            Some(nick) => iq_result(out, r, &registered(nick)),
            None => iq_result(out, r, &form(room)),
        };
    }
    let Some(nick) = submitted_nick(st, c) else {
        return err(
            out,
            r,
            Cond::BadRequest,
            Some("submit the muc#register form with a muc#register_roomnick"),
        );
    };
    if Jid::parse(&format!("{}/{nick}", room.jid)).is_err() {
        return err(out, r, Cond::JidMalformed, Some("not a valid nickname"));
    }
    let taken = room
        .occupants
        .by_nick(&nick)
        .is_some_and(|i| room.occupants[i].bare() != bare);
    if taken || room.reserved_by_other(&nick, bare) {
        return err(
            out,
            r,
            Cond::Conflict,
            Some("that nickname is reserved or in use"),
        );
    }
    if room.reserved_nick(bare).is_none() && room.reserved.len() >= max_reserved {
        return err(
            out,
            r,
            Cond::ResourceConstraint,
            Some("this room has reached its number of registrations"),
        );
    }
    room.reserve(bare, &nick);
    if aff < Affiliation::Member {
        room.affiliations.insert(bare.into(), Affiliation::Member);
        // Example 76: the new member's presence, to everyone, if it is in the room.
        let mine: Vec<usize> = room
            .occupants
            .iter()
            .filter(|(_, o)| o.bare() == bare)
            .map(|(i, _)| i)
            .collect();
        for oi in mine {
            let role = room.occupants[oi].role;
            room.broadcast_presence(oi, role, false, &[], &[], "", out);
        }
    }
    persist(shard, room, out);
    iq_result(out, r, "");
}

/// The roomnick of a submitted `muc#register` form, if that is what `c` holds.
fn submitted_nick(st: &Stanza, c: usize) -> Option<String> {
    let x = st.child(c, "x", ns::DATA)?;
    if st.attr(x, "type").is_none_or(|t| t.value() != "submit") {
        return None;
    }
    let mut form_type = None;
    let mut nick = None;
    for f in st.children(x) {
        let value = st
            .child(f, "value", ns::DATA)
            .map(|v| st.text(v).trim().to_string());
        match st.attr(f, "var").map(|a| a.value()).as_deref() {
            Some("FORM_TYPE") => form_type = value,
            Some("muc#register_roomnick") => nick = value,
            _ => {}
        }
    }
    (form_type.as_deref() == Some(ns::MUC_REGISTER))
        .then_some(nick)
        .flatten()
        .filter(|n| !n.is_empty())
}

/// Example 69: `<query><registered/><username>nick</username></query>`.
fn registered(nick: &str) -> String {
    let mut v = Vec::with_capacity(96 + nick.len());
    let mut q = Elem::new(&mut v, "query").attr("xmlns", ns::REGISTER);
    q.child("registered").end();
    q.child("username").text(nick).end();
    q.end();
    String::from_utf8(v).unwrap_or_default()
}

/// Example 70: the registration form; the nick is the one field required.
fn form(room: &Room) -> String {
    let mut v = Vec::with_capacity(640);
    let mut q = Elem::new(&mut v, "query").attr("xmlns", ns::REGISTER);
    q.child("instructions")
        .text("To register with this room, choose the nickname it reserves for you.")
        .end();
    let mut x = q.child("x").attr("xmlns", ns::DATA).attr("type", "form");
    x.child("title")
        .text_fmt(format_args!("Registration with {}", room.cfg.name))
        .end();
    let mut f = x
        .child("field")
        .attr("type", "hidden")
        .attr("var", "FORM_TYPE");
    f.child("value").text(ns::MUC_REGISTER).end();
    f.end();
    for (var, label, required) in [
        ("muc#register_first", "Given Name", false),
        ("muc#register_last", "Family Name", false),
        ("muc#register_roomnick", "Desired Nickname", true),
    ] {
        let mut f = x
            .child("field")
            .attr("label", label)
            .attr("type", "text-single")
            .attr("var", var);
        if required {
            f.child("required").end();
        }
        f.end();
    }
    x.end();
    q.end();
    String::from_utf8(v).unwrap_or_default()
}

/// §7.12: disco#info on the `x-roomuser-item` node: the user's reserved nick as an
/// identity, or an empty query.
pub(super) fn reserved_nick_info(room: &Room, from: &str, r: &Routed, out: &mut Out) {
    let bare = crate::xmpp::router::split_full(from).0;
    let mut v = Vec::with_capacity(160);
    let mut q = Elem::new(&mut v, "query")
        .attr("xmlns", ns::DISCO_INFO)
        .attr("node", "x-roomuser-item");
    if let Some(nick) = room.reserved_nick(bare) {
        q.child("identity")
            .attr("category", "conference")
            .attr("name", nick)
            .attr("type", "text")
            .end();
    }
    q.end();
    iq_result(out, r, std::str::from_utf8(&v).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muc::room::tests::room;

    #[test]
    fn registered_and_form_bytes() {
        assert_eq!(
            registered("b&'<"),
            "<query xmlns='jabber:iq:register'><registered/><username>b&amp;'&lt;</username></query>"
        );
        let f = form(&room());
        assert!(
            f.contains("<field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>")
                && f.contains("<field label='Desired Nickname' type='text-single' var='muc#register_roomnick'><required/></field>"),
            "{f}"
        );
    }

    #[test]
    fn only_a_submitted_register_form_with_a_nick_counts() {
        let parse = |x: &str| {
            let xml = format!("<iq type='set'><query xmlns='jabber:iq:register'>{x}</query></iq>");
            let st = Stanza::parse(&xml, &Default::default()).unwrap();
            let c = st.children(0).next().unwrap();
            submitted_nick(&st, c)
        };
        let field = |t: &str, n: &str| {
            format!(
                "<x xmlns='jabber:x:data' type='{t}'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>{n}</value></field></x>"
            )
        };
        assert_eq!(
            parse(&field("submit", " hecate ")).as_deref(),
            Some("hecate")
        );
        assert_eq!(parse(&field("submit", " ")), None);
        assert_eq!(parse(&field("cancel", "hecate")), None);
        assert_eq!(
            parse(
                "<x xmlns='jabber:x:data' type='submit'><field var='muc#register_roomnick'><value>h</value></field></x>"
            ),
            None
        );
        assert_eq!(parse(""), None);
    }
}
