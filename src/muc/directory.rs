//! Discovery (XEP-0045 §6): the service's identity and features (§6.1–6.2), its
//! directory of public rooms (§6.3), a room's information (§6.4) and items (§6.5, empty).
//!
//! Rooms live on their home shards, the directory on the service JID's home shard: a
//! room tells it whether it is listed with a headline (`announce`, `unlist`), which the
//! service takes in here (`service_stanza`).

use super::Service;
use super::fanout::Out;
use super::room::{Room, err, iq_result, parse, stanza};
use crate::features::mam::MamHost;
use crate::xml::ns;
use crate::xml::ns::DISCO_INFO as NS_INFO;
use crate::xml::ns::DISCO_ITEMS as NS_ITEMS;
use crate::xml::ns::MUC as NS_MUC;
use crate::xml::ns::MUC_DIRECTORY as NS_DIRECTORY;
use crate::xml::writer::Elem;
use crate::xmpp::errors::Cond;
use crate::xmpp::router::{Kind, Routed, SType, split_full};

/// After a restore: list it in the service's directory (see `announce`).
pub(super) fn announce_restored<H: MamHost>(room: &mut Room, domain: &str, shard: &H) {
    let mut out = Out::default();
    if room.cfg.public {
        room.listed = true;
        out.one(directory_headline(room, domain));
    }
    out.flush(shard);
}

/// Tells the service's home shard whether `room` is in the public directory. A headline
/// from the room's own JID: no client can send it, since the server stamps every client
/// stanza's `from` with the client's JID.
pub(super) fn announce(room: &mut Room, domain: &str, out: &mut Out) {
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
    let cap = 96 + room.cfg.name.len();
    stanza(
        Kind::Message,
        SType::Headline,
        &room.jid,
        domain,
        cap,
        |m| {
            let mut m = m.attr("type", "headline");
            m.child("x")
                .attr("xmlns", NS_DIRECTORY)
                .attr_fmt("listed", room.listed as u8)
                .attr("name", &room.cfg.name)
                .end();
            m.end();
        },
    )
}

/// A room is going away: take it out of the directory.
pub(super) fn unlist(room: &mut Room, domain: &str, out: &mut Out) {
    room.cfg.public = false;
    announce(room, domain, out);
}

/// A stanza to the service's own JID: a room's directory headline, or disco.
pub(super) fn service_stanza(svc: &Service, r: &Routed, out: &mut Out) {
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
        (NS_INFO, SType::Get) => iq_result(out, r, &service_info()),
        (NS_ITEMS, SType::Get) => {
            // The directory of public rooms of every shard (XEP-0045 §6.3).
            let mut v = Vec::with_capacity(64);
            let mut q = Elem::new(&mut v, "query")
                .attr("xmlns", NS_ITEMS)
                .start_content();
            for (jid, name) in svc.directory.borrow().iter() {
                q.child("item").attr("jid", jid).attr("name", name).end();
            }
            q.end();
            iq_result(out, r, std::str::from_utf8(&v).unwrap_or_default());
        }
        _ => err(out, r, Cond::ServiceUnavailable, None),
    }
}

/// §6.1–6.2: the service's identity and features.
fn service_info() -> String {
    let mut v = Vec::with_capacity(256);
    let mut q = Elem::new(&mut v, "query").attr("xmlns", NS_INFO);
    q.child("identity")
        .attr("category", "conference")
        .attr("type", "text")
        .attr("name", "Chatrooms")
        .end();
    for feat in [NS_MUC, NS_INFO, NS_ITEMS] {
        q.child("feature").attr("var", feat).end();
    }
    q.end();
    // Built from `&str` pieces: UTF-8.
    String::from_utf8(v).unwrap_or_default()
}

/// §6.4: the room's identity and features (its configuration as `muc_*` features).
pub(super) fn room_info<H: MamHost>(shard: &H, room: &Room, r: &Routed, out: &mut Out) {
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
        ns::SID.to_string(),
        ns::MUC_SELF_PING.to_string(),
        ns::REGISTER.to_string(),
    ];
    // XEP-0313 §6.1: a room with an archive says so, or clients never ask it.
    let mam = crate::features::mam::archive_available(shard)
        .is_ok()
        .then_some(ns::MAM.to_string());
    let mut v = Vec::with_capacity(512);
    let mut q = Elem::new(&mut v, "query").attr("xmlns", NS_INFO);
    q.child("identity")
        .attr("category", "conference")
        .attr("type", "text")
        .attr("name", &c.name)
        .end();
    for feat in feats.into_iter().chain(mam) {
        q.child("feature").attr("var", &feat).end();
    }
    q.end();
    iq_result(out, r, std::str::from_utf8(&v).unwrap_or_default());
}

/// §6.5: a room's items. Occupants are not listed.
pub(super) fn room_items(r: &Routed, out: &mut Out) {
    let mut v = Vec::with_capacity(64);
    Elem::new(&mut v, "query").attr("xmlns", NS_ITEMS).end();
    iq_result(out, r, std::str::from_utf8(&v).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muc::room::tests::room;

    /// The headline a room sends the service: its name escaped as an attribute value.
    #[test]
    fn directory_headline_bytes() {
        let mut room = room();
        room.cfg.name = "Tom's <b> & \"co\"".into();
        room.listed = true;
        let r = directory_headline(&room, "conference.localhost");
        assert_eq!(
            std::str::from_utf8(&r.payload).unwrap(),
            "<message xmlns='jabber:client' to='conference.localhost' from='coven@conference.localhost' type='headline'>\
             <x xmlns='urn:aoba:muc:directory' listed='1' name='Tom&apos;s &lt;b&gt; &amp; &quot;co&quot;'/></message>"
        );
        assert_eq!(r.to(), "conference.localhost");
        assert_eq!(r.from(), "coven@conference.localhost");
        room.listed = false;
        room.cfg.name = String::new();
        let r = directory_headline(&room, "conference.localhost");
        assert_eq!(
            std::str::from_utf8(&r.payload).unwrap(),
            "<message xmlns='jabber:client' to='conference.localhost' from='coven@conference.localhost' type='headline'>\
             <x xmlns='urn:aoba:muc:directory' listed='0' name=''/></message>"
        );
    }

    #[test]
    fn service_info_bytes() {
        assert_eq!(
            service_info(),
            "<query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='conference' type='text' name='Chatrooms'/>\
             <feature var='http://jabber.org/protocol/muc'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/></query>"
        );
    }
}
