//! Voice requests (XEP-0045 §7.13) and their approval by a moderator (§8.6).
//!
//! A visitor of a moderated room sends the room a `muc#request` form asking for the
//! participant role; the room sends every moderator an approval form naming the visitor
//! (its real JID, its nick); a moderator who submits it with `muc#request_allow` true
//! grants voice, and everyone gets the new participant's presence (§8.3). A request from an
//! occupant who already has voice changes nothing; an approval from anyone but a moderator
//! is `forbidden`.

use super::fanout::Out;
use super::room::{Role, Room, err, stanza};
use crate::xml::ns;
use crate::xml::stanza::Stanza;
use crate::xmpp::errors::Cond;
use crate::xmpp::router::{Kind, Routed, SType};

/// What a submitted `muc#request` form says.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Request {
    role: Option<String>,
    nick: Option<String>,
    allow: Option<bool>,
}

/// The `muc#request` form of message `st`, if it carries one (submitted).
pub(super) fn request_form(st: &Stanza) -> Option<Request> {
    let x = st.child(0, "x", ns::DATA)?;
    if st.attr(x, "type").is_none_or(|t| t.value() != "submit") {
        return None;
    }
    let mut form_type = None;
    let mut q = Request::default();
    for f in st.children(x) {
        let value = st
            .child(f, "value", ns::DATA)
            .map(|v| st.text(v).trim().to_string());
        match st.attr(f, "var").map(|a| a.value()).as_deref() {
            Some("FORM_TYPE") => form_type = value,
            Some("muc#role") => q.role = value,
            Some("muc#roomnick") => q.nick = value,
            Some("muc#request_allow") => {
                q.allow = value.map(|v| matches!(v.as_str(), "1" | "true"))
            }
            _ => {}
        }
    }
    (form_type.as_deref() == Some(ns::MUC_REQUEST)).then_some(q)
}

/// A `muc#request` form from occupant `oi` (message `r`): a visitor's request, or a
/// moderator's approval (it names the nick and says whether to allow).
pub(super) fn on_form(room: &mut Room, oi: usize, q: Request, r: &Routed, out: &mut Out) {
    if let Some(allow) = q.allow {
        return approval(room, oi, q.nick.as_deref(), allow, r, out);
    }
    if q.role.as_deref() != Some("participant") {
        return err(
            out,
            r,
            Cond::BadRequest,
            Some("a voice request asks for the participant role"),
        );
    }
    if room.occupants[oi].role != Role::Visitor {
        return; // it has voice already
    }
    let o = &room.occupants[oi];
    let real = o.sessions().first().map_or("", |s| s.jid.as_str());
    let nick = o.nick();
    for (_, m) in room
        .occupants
        .iter()
        .filter(|(_, m)| m.role == Role::Moderator)
    {
        for s in m.sessions() {
            out.one(approval_form(room, s.jid.as_str(), real, nick));
        }
    }
}

/// §8.6 example 109: a moderator's answer to an approval form.
fn approval(
    room: &mut Room,
    oi: usize,
    nick: Option<&str>,
    allow: bool,
    r: &Routed,
    out: &mut Out,
) {
    if room.occupants[oi].role != Role::Moderator {
        return err(
            out,
            r,
            Cond::Forbidden,
            Some("moderators approve voice requests"),
        );
    }
    if !allow {
        return;
    }
    let Some(ti) = nick.and_then(|n| room.occupants.by_nick(n)) else {
        return err(
            out,
            r,
            Cond::ItemNotFound,
            Some("no occupant has that nick"),
        );
    };
    if room.occupants[ti].role == Role::Visitor {
        room.broadcast_presence(ti, Role::Participant, false, &[], &[], "", out);
        room.occupants[ti].role = Role::Participant;
    }
}

/// §8.6 example 108: the approval form, from the room to moderator session `to`.
fn approval_form(room: &Room, to: &str, real: &str, nick: &str) -> Routed {
    let cap = 900 + real.len() + nick.len();
    stanza(Kind::Message, SType::Normal, &room.jid, to, cap, |m| {
        let mut m = m.start_content();
        let mut x = m.child("x").attr("xmlns", ns::DATA).attr("type", "form");
        x.child("title").text("Voice request").end();
        x.child("instructions")
            .text("To approve this request for voice, select the \"Grant voice to this person?\" checkbox and click OK. To skip this request, click the cancel button.")
            .end();
        for (var, ty, label, value) in [
            ("FORM_TYPE", "hidden", None, ns::MUC_REQUEST),
            (
                "muc#role",
                "list-single",
                Some("Requested role"),
                "participant",
            ),
            ("muc#jid", "jid-single", Some("User ID"), real),
            ("muc#roomnick", "text-single", Some("Room Nickname"), nick),
            (
                "muc#request_allow",
                "boolean",
                Some("Grant voice to this person?"),
                "false",
            ),
        ] {
            let mut f = x.child("field").attr("var", var).attr("type", ty);
            if let Some(l) = label {
                f = f.attr("label", l);
            }
            f.child("value").text(value).end();
            f.end();
        }
        x.end();
        m.end();
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muc::room::tests::{room, text};

    fn form(fields: &str) -> Option<Request> {
        let xml = format!(
            "<message><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>{fields}</x></message>"
        );
        request_form(&Stanza::parse(&xml, &Default::default()).unwrap())
    }

    /// Example 79 and example 109.
    #[test]
    fn requests_and_approvals_are_told_apart() {
        let q = form("<field var='muc#role' type='list-single' label='Requested role'><value>participant</value></field>").unwrap();
        assert_eq!(q.role.as_deref(), Some("participant"));
        assert_eq!(q.allow, None);
        let a = form("<field var='muc#role'><value>participant</value></field><field var='muc#jid'><value>hag66@shakespeare.lit/pda</value></field><field var='muc#roomnick'><value>thirdwitch</value></field><field var='muc#request_allow'><value>true</value></field>").unwrap();
        assert_eq!(
            (a.nick.as_deref(), a.allow),
            (Some("thirdwitch"), Some(true))
        );
        let other = "<message><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x></message>";
        assert_eq!(
            request_form(&Stanza::parse(other, &Default::default()).unwrap()),
            None
        );
    }

    #[test]
    fn approval_form_bytes() {
        let m = approval_form(&room(), "alice@localhost/web", "bob@localhost/desk", "b&'<");
        let t = text(&m);
        assert!(t.starts_with("<message xmlns='jabber:client' to='alice@localhost/web' from='coven@conference.localhost'><x xmlns='jabber:x:data' type='form'><title>Voice request</title>"), "{t}");
        assert!(t.contains("<field var='muc#roomnick' type='text-single' label='Room Nickname'><value>b&amp;'&lt;</value></field>"), "{t}");
        assert!(t.ends_with("<field var='muc#request_allow' type='boolean' label='Grant voice to this person?'><value>false</value></field></x></message>"), "{t}");
    }
}
