//! Messages to a room (XEP-0045): groupchat reflected to all occupants (§7.4) and kept
//! in the history and the room's archive, the subject (§8.1), private messages between
//! occupants (§7.5), mediated invitations and declines (§7.8.2); and queries of the
//! room's archive (XEP-0313 §6).

use super::fanout::{Out, build};
use super::room::{Affiliation, Hist, Role, Room, Rooms, err, parse, persist, stanza_id};
use crate::features::mam::MamHost;
use crate::xml::escape::escape_text_to_string as et;
use crate::xml::ns;
use crate::xml::ns::MUC_USER as NS_MUC_USER;
use crate::xml::ns::SID as NS_SID;
use crate::xml::stanza::Stanza;
use crate::xml::writer::{Elem, end_tag};
use crate::xmpp::errors::Cond;
use crate::xmpp::jid::Jid;
use crate::xmpp::router::{Kind, Routed, SType};
use bytes::Bytes;
use std::time::SystemTime;

pub(super) fn message<H: MamHost>(
    shard: &H,
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
    let oi = room.occupants.by_session(from);
    if let (None, SType::Chat | SType::Normal) = (nick, r.stype) {
        // A voice request or its approval (§7.13, §8.6), from an occupant.
        if let Some(st) = parse(r)
            && let Some(q) = super::voice::request_form(&st)
        {
            return match oi {
                Some(oi) => super::voice::on_form(room, oi, q, r, out),
                None => err(
                    out,
                    r,
                    Cond::NotAcceptable,
                    Some("only occupants may ask for voice"),
                ),
            };
        }
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
            let Some(ti) = room.occupants.by_nick(to_nick) else {
                return err(out, r, Cond::ItemNotFound, Some("no such occupant"));
            };
            let sender = room.occupant_jid(room.occupants[oi].nick());
            let x = muc_user_x();
            for s in room.occupants[ti].sessions() {
                out.one(r.readdressed(s.jid.as_str(), &sender, None, x.as_bytes()));
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
fn invitation<H: MamHost>(
    shard: &H,
    room: &mut Room,
    oi: Option<usize>,
    r: &Routed,
    out: &mut Out,
) {
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
        let reason = st.child(c, "reason", NS_MUC_USER).map(|e| st.text(e));
        // `<x><invite|decline from='…'>[<reason/>]</…>[<password/>]</x>` (§7.8.2, §7.8.3).
        let x = |what: &str, password: Option<&str>| {
            let mut v = Vec::with_capacity(128);
            let mut x = Elem::new(&mut v, "x").attr("xmlns", NS_MUC_USER);
            let mut w = x.child(what).attr("from", &from_real).start_content();
            if let Some(t) = &reason {
                w.child("reason").text(t).start_content().end();
            }
            w.end();
            if let Some(p) = password {
                x.child("password").text(p).start_content().end();
            }
            x.end();
            String::from_utf8(v).unwrap_or_default()
        };
        let inner = if name == "invite" {
            let Some(oi) = oi else {
                return err(out, r, Cond::NotAcceptable, Some("only occupants invite"));
            };
            let aff = room.affiliation(room.occupants[oi].bare());
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
            x("invite", room.cfg.password.as_deref())
        } else {
            x("decline", None)
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

/// `<x xmlns='…#user'/>`: the mark of a private message from an occupant (§7.5).
fn muc_user_x() -> String {
    let mut v = Vec::with_capacity(48);
    Elem::new(&mut v, "x").attr("xmlns", NS_MUC_USER).end();
    // Built from `&str` pieces: UTF-8.
    String::from_utf8(v).unwrap_or_default()
}

/// §7.4: reflect to every occupant, serialized once. The sender's stanza is not parsed
/// again: its start tag is rewritten from the offsets routing recorded.
fn groupchat<H: MamHost>(shard: &H, room: &mut Room, oi: usize, r: &Routed, out: &mut Out) {
    if room.occupants[oi].role < Role::Participant {
        return err(
            out,
            r,
            Cond::Forbidden,
            Some("visitors have no voice in this room"),
        );
    }
    let p = &r.payload;
    let nick = room.occupants[oi].nick().to_string();
    // A subject change is the rare case that needs the element itself (§8.1).
    if p.windows(8).any(|w| w == b"<subject")
        && let Some(st) = parse(r)
        && let Some(s) = st.child(0, "subject", ns::CLIENT)
        && st.child(0, "body", ns::CLIENT).is_none()
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
        room.subject = (!text.is_empty()).then(|| (et(&text).into_owned(), nick.clone()));
        persist(shard, room, out);
    }
    crate::metrics::shard().muc_messages.inc();
    let sid_val = stanza_id(shard);
    let sid = stanza_id_elem(&sid_val, &room.jid);
    let from = room.occupant_jid(&nick);
    let start = r.start_before_addresses();
    let mut head = Vec::with_capacity(start.len() + from.len() + 16);
    head.extend_from_slice(start);
    head.extend_from_slice(b" from='");
    crate::xml::escape::escape_attr(&from, &mut head);
    head.push(b'\'');
    let head = Bytes::from(head);
    let rest: Bytes = match r.content() {
        None => {
            let mut end = Vec::with_capacity(10);
            end_tag(&mut end, "message");
            Bytes::from(end)
        }
        Some(c) if p.windows(NS_SID.len()).any(|w| w == NS_SID.as_bytes()) => {
            strip_forged_ids(r, &room.jid).unwrap_or(c)
        }
        Some(c) => c,
    };
    let mut tail = Vec::with_capacity(2 + sid.len());
    tail.extend_from_slice(b"'>");
    tail.extend_from_slice(sid.as_bytes());
    let mut tos = Vec::with_capacity(room.occupants.len());
    for (_, o) in room.occupants.iter() {
        for s in o.sessions() {
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
    if shard.mam().enabled
        && let (Some(_), Some(id)) = (
            &shard.shared.storage,
            crate::features::mam::parse_id(&sid_val),
        )
    {
        // The sender's bytes are shared with the fan-out, not copied.
        // The end of the start tag, then the `<stanza-id/>`.
        let mut mid = Vec::with_capacity(1 + sid.len());
        mid.push(b'>');
        mid.extend_from_slice(sid.as_bytes());
        let stanza = crate::storage::Parts(smallvec::smallvec![
            head.clone(),
            Bytes::from(mid),
            rest.clone()
        ]);
        let item = crate::storage::ArchiveItem {
            id,
            with: from.clone(),
            stanza,
            uid: r.uid,
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

/// XEP-0359 §4: `<stanza-id/>` `id`, given by room `by`.
fn stanza_id_elem(id: &str, by: &str) -> String {
    let mut v = Vec::with_capacity(64 + id.len() + by.len());
    Elem::new(&mut v, "stanza-id")
        .attr("xmlns", NS_SID)
        .attr("id", id)
        .attr("by", by)
        .end();
    // Built from `&str` pieces and escapes: UTF-8.
    String::from_utf8(v).unwrap_or_default()
}

/// The message content after its start tag, without `<stanza-id/>` elements that claim to
/// be from `by` (XEP-0359 §4: the room strips ids a client forged in its name).
fn strip_forged_ids(r: &Routed, by: &str) -> Option<Bytes> {
    let after_tag = r.content_start()?;
    let st = parse(r)?;
    let root = st.root();
    let forged: Vec<usize> = st
        .children(0)
        .filter(|&c| st.elems[c].ns == NS_SID && st.attr(c, "by").is_some_and(|a| a.value() == by))
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

/// XEP-0313 §6: a query (`<query/>` child `c` of `st`) of the room's archive by `from`.
/// Occupants read it; in a members-only room, members.
#[allow(clippy::too_many_arguments)]
pub(super) fn archive_query<H: MamHost>(
    shard: &H,
    room: &Room,
    st: &Stanza,
    c: usize,
    aff: Affiliation,
    r: &Routed,
    from: &str,
    out: &mut Out,
) {
    let allowed = if room.cfg.members_only {
        aff >= Affiliation::Member
    } else {
        room.occupants.by_session(from).is_some() || aff >= Affiliation::Member
    };
    if !allowed {
        return err(
            out,
            r,
            Cond::Forbidden,
            Some("only occupants may read the room's archive"),
        );
    }
    let m = shard.mam();
    let reply = crate::storage::ArchiveReplyTo {
        to: from.to_string(),
        from: room.jid.clone(),
        queryid: st.attr(c, "queryid").map(|a| a.value().into_owned()),
        iq_id: r.id_attr().to_string(),
    };
    let res = crate::features::mam::parse_query(st, c, m.page_default, m.page_max)
        .and_then(|q| crate::features::mam::query(shard, &room.jid, q, reply));
    if let Err(cond) = res {
        err(out, r, cond, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muc::room::tests::{ROOM, routed, text};

    #[test]
    fn stanza_id_bytes() {
        assert_eq!(
            stanza_id_elem("0123456789abcdef", ROOM),
            "<stanza-id xmlns='urn:xmpp:sid:0' id='0123456789abcdef' by='coven@conference.localhost'/>"
        );
    }

    /// A private message passed on from its sender's occupant JID, marked with
    /// `<x xmlns='…#user'/>` (§7.5), with content or without.
    #[test]
    fn private_message_bytes() {
        let x = muc_user_x();
        let from = "coven@conference.localhost/b&'<";
        let r = routed(
            Kind::Message,
            SType::Chat,
            "bob@localhost/desk",
            &format!(
                "<message to='{ROOM}/O&apos;Neil' type='chat' id='p1'><body>psst</body></message>"
            ),
        );
        assert_eq!(
            text(&r.readdressed("alice@localhost/web", from, None, x.as_bytes())),
            "<message  type='chat' id='p1' xmlns='jabber:client' to='alice@localhost/web' \
             from='coven@conference.localhost/b&amp;&apos;&lt;'>\
             <x xmlns='http://jabber.org/protocol/muc#user'/><body>psst</body></message>"
        );
        let r = routed(
            Kind::Message,
            SType::Chat,
            "bob@localhost/desk",
            &format!("<message to='{ROOM}/O&apos;Neil' type='chat' id='p2'/>"),
        );
        assert_eq!(
            text(&r.readdressed("alice@localhost/web", from, None, x.as_bytes())),
            "<message  type='chat' id='p2' xmlns='jabber:client' to='alice@localhost/web' \
             from='coven@conference.localhost/b&amp;&apos;&lt;'>\
             <x xmlns='http://jabber.org/protocol/muc#user'/></message>"
        );
    }
}
