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
use crate::xmpp::rsm;
use std::collections::BTreeMap;
use std::ops::Bound;

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

/// The public rooms read from storage (`lazy`): listed, beside those rooms announced.
pub(super) fn list_stored(svc: &Service, rooms: Vec<(String, String)>) {
    svc.directory.borrow_mut().extend(rooms);
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
            let page = rsm::Query::parse(&st, c).and_then(|q| {
                directory_page(
                    &svc.directory.borrow(),
                    q.as_ref(),
                    svc.cfg.directory_page_max,
                )
            });
            match page {
                Ok(v) => iq_result(out, r, std::str::from_utf8(&v).unwrap_or_default()),
                Err(cond) => err(out, r, cond, None),
            }
        }
        _ => err(out, r, Cond::ServiceUnavailable, None),
    }
}

/// The directory of public rooms of every shard (§6.3) as the `<query/>` of a disco#items
/// result: one page of at most `page_max` rooms in JID order, the page XEP-0059 paging
/// (`rsm`) asks for (the first without it). The answer has a `<set/>` (the page's first
/// and last JIDs, the first's index, the number of public rooms) when the request had one
/// or when the page is not the whole directory (§2.1: a limited result set says so).
///
/// JIDs are the UIDs; being ordered, they need no memory of a room that left: the page
/// after (or before) one is the rooms after (or before) its place. `<index/>` is
/// supported, alone (with `<after/>` or `<before/>` it is a `bad-request`). Finding the
/// first room's index walks the directory from the nearer end.
fn directory_page(
    dir: &BTreeMap<String, String>,
    rsm: Option<&rsm::Query>,
    page_max: usize,
) -> Result<Vec<u8>, Cond> {
    let none = rsm::Query::default();
    let q = rsm.unwrap_or(&none);
    if q.index.is_some() && (q.after.is_some() || q.before.is_some()) {
        return Err(Cond::BadRequest);
    }
    let max = q.max.unwrap_or(page_max).min(page_max);
    let lower = q.after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let upper = match q.before.as_deref() {
        Some(b) if !b.is_empty() => Bound::Excluded(b),
        _ => Bound::Unbounded,
    };
    // `BTreeMap::range` panics on a range that ends before it starts.
    let crossed = matches!((lower, upper), (Bound::Excluded(a), Bound::Excluded(b)) if a >= b);
    let page: Vec<(&String, &String)> = if max == 0 || crossed {
        Vec::new()
    } else if let Some(i) = q.index {
        dir.iter().skip(i).take(max).collect()
    } else if q.before.is_some() {
        // Backwards (§2.3, §2.5): the last `max` of the range, in order.
        let mut v: Vec<_> = dir
            .range::<str, _>((lower, upper))
            .rev()
            .take(max)
            .collect();
        v.reverse();
        v
    } else {
        dir.range::<str, _>((lower, upper)).take(max).collect()
    };
    let ends = page.first().zip(page.last());
    let index = ends.map(|((first, _), _)| q.index.unwrap_or_else(|| position(dir, first)));
    let mut v = Vec::with_capacity(128 + 96 * page.len());
    let mut query = Elem::new(&mut v, "query")
        .attr("xmlns", NS_ITEMS)
        .start_content();
    for (jid, name) in &page {
        query
            .child("item")
            .attr("jid", jid)
            .attr("name", name)
            .end();
    }
    if rsm.is_some() || page.len() < dir.len() {
        rsm::Page {
            ends: ends.map(|((first, _), (last, _))| (first, last)),
            index,
            count: Some(dir.len()),
        }
        .write(&mut query);
    }
    query.end();
    Ok(v)
}

/// How many rooms of `dir` come before `jid`: counted from both ends at once, so the
/// walk is as long as the distance to the nearer end.
fn position(dir: &BTreeMap<String, String>, jid: &str) -> usize {
    let mut below = dir.range::<str, _>((Bound::Unbounded, Bound::Excluded(jid)));
    let mut from = dir
        .range::<str, _>((Bound::Included(jid), Bound::Unbounded))
        .rev();
    let (mut a, mut b) = (0, 0);
    loop {
        if below.next().is_none() {
            return a;
        }
        a += 1;
        if from.next().is_none() {
            return dir.len() - b;
        }
        b += 1;
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
    // XEP-0059 §4: the directory pages.
    for feat in [NS_MUC, NS_INFO, NS_ITEMS, ns::RSM] {
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

    /// Seven public rooms `a@…` to `g@…`.
    fn seven() -> BTreeMap<String, String> {
        ('a'..='g')
            .map(|c| (format!("{c}@conference.localhost"), format!("Room {c}")))
            .collect()
    }

    /// The directory's answer to a disco#items query whose `<set/>` holds `set` (`None`: no
    /// `<set/>`): the rooms' localparts, and the answer's `<set/>` as written ("" if none).
    fn page(
        dir: &BTreeMap<String, String>,
        set: Option<&str>,
        page_max: usize,
    ) -> Result<(String, String), Cond> {
        let xml = format!(
            "<iq type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#items'>{}</query></iq>",
            set.map(|s| format!("<set xmlns='http://jabber.org/protocol/rsm'>{s}</set>"))
                .unwrap_or_default()
        );
        let st = crate::xml::stanza::Stanza::parse(&xml, &Default::default()).unwrap();
        let q = rsm::Query::parse(&st, 1)?;
        let v = directory_page(dir, q.as_ref(), page_max)?;
        let text = String::from_utf8(v).unwrap();
        let rooms = text
            .split("<item jid='")
            .skip(1)
            .map(|i| i.split('@').next().unwrap())
            .collect::<Vec<_>>()
            .join(",");
        let set = text
            .find("<set")
            .map_or("", |i| &text[i..text.len() - "</query>".len()]);
        Ok((rooms, set.to_string()))
    }

    fn set(first: &str, index: usize, last: &str, count: usize) -> String {
        format!(
            "<set xmlns='http://jabber.org/protocol/rsm'><first index='{index}'>{first}@conference.localhost</first>\
             <last>{last}@conference.localhost</last><count>{count}</count></set>"
        )
    }

    /// The whole answer: items with their names, escaped, then the `<set/>`.
    #[test]
    fn directory_page_bytes() {
        let mut dir = BTreeMap::new();
        dir.insert("a@conference.localhost".into(), "Tom's <b>".into());
        dir.insert("b@conference.localhost".into(), String::new());
        let v = directory_page(&dir, None, 1).unwrap();
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "<query xmlns='http://jabber.org/protocol/disco#items'>\
             <item jid='a@conference.localhost' name='Tom&apos;s &lt;b&gt;'/>\
             <set xmlns='http://jabber.org/protocol/rsm'><first index='0'>a@conference.localhost</first>\
             <last>a@conference.localhost</last><count>2</count></set></query>"
        );
        // Everything fits and nobody asked for paging: no <set/>.
        let v = directory_page(&dir, None, 2).unwrap();
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "<query xmlns='http://jabber.org/protocol/disco#items'>\
             <item jid='a@conference.localhost' name='Tom&apos;s &lt;b&gt;'/>\
             <item jid='b@conference.localhost' name=''/></query>"
        );
        // No public room: an empty <query/> (XEP-0059 §2.2), with the count if asked.
        let empty = BTreeMap::new();
        let v = directory_page(&empty, None, 3).unwrap();
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "<query xmlns='http://jabber.org/protocol/disco#items'></query>"
        );
        assert_eq!(
            page(&empty, Some("<max>3</max>"), 3),
            Ok((
                "".into(),
                "<set xmlns='http://jabber.org/protocol/rsm'><count>0</count></set>".into()
            ))
        );
    }

    /// XEP-0059 §2.1–2.7 over seven rooms, three per page at most.
    #[test]
    fn directory_pages() {
        let dir = seven();
        let ok = |rooms: &str, set: String| Ok((rooms.to_string(), set));
        // No <set/>: the first page, and the <set/> that says there is more (§2.1).
        assert_eq!(page(&dir, None, 3), ok("a,b,c", set("a", 0, "c", 7)));
        // Forwards (§2.2): after the last JID of each page, each room once.
        assert_eq!(
            page(&dir, Some("<max>3</max>"), 3),
            ok("a,b,c", set("a", 0, "c", 7))
        );
        assert_eq!(
            page(
                &dir,
                Some("<max>3</max><after>c@conference.localhost</after>"),
                3
            ),
            ok("d,e,f", set("d", 3, "f", 7))
        );
        assert_eq!(
            page(
                &dir,
                Some("<max>3</max><after>f@conference.localhost</after>"),
                3
            ),
            ok("g", set("g", 6, "g", 7))
        );
        // Past the end: an empty page, only the count.
        let count_only = "<set xmlns='http://jabber.org/protocol/rsm'><count>7</count></set>";
        assert_eq!(
            page(&dir, Some("<after>g@conference.localhost</after>"), 3),
            ok("", count_only.into())
        );
        // A room that left since: the page goes on from its place (no item-not-found, §2.4).
        assert_eq!(
            page(
                &dir,
                Some("<max>2</max><after>cz@conference.localhost</after>"),
                3
            ),
            ok("d,e", set("d", 3, "e", 7))
        );
        // Backwards (§2.3) and the last page (§2.5).
        assert_eq!(
            page(
                &dir,
                Some("<max>2</max><before>d@conference.localhost</before>"),
                3
            ),
            ok("b,c", set("b", 1, "c", 7))
        );
        assert_eq!(
            page(&dir, Some("<before>b@conference.localhost</before>"), 3),
            ok("a", set("a", 0, "a", 7))
        );
        assert_eq!(
            page(&dir, Some("<before/>"), 3),
            ok("e,f,g", set("e", 4, "g", 7))
        );
        // A larger max is capped to the page size.
        assert_eq!(
            page(&dir, Some("<max>1000</max><before/>"), 3),
            ok("e,f,g", set("e", 4, "g", 7))
        );
        // Between two JIDs; an empty or crossed range is an empty page.
        assert_eq!(
            page(
                &dir,
                Some(
                    "<after>b@conference.localhost</after><before>e@conference.localhost</before>"
                ),
                3
            ),
            ok("c,d", set("c", 2, "d", 7))
        );
        for (a, b) in [("c", "c"), ("e", "b")] {
            assert_eq!(
                page(
                    &dir,
                    Some(&format!(
                        "<after>{a}@conference.localhost</after><before>{b}@conference.localhost</before>"
                    )),
                    3
                ),
                ok("", count_only.into())
            );
        }
        // Out of order (§2.6) and the count alone (§2.7).
        assert_eq!(
            page(&dir, Some("<max>2</max><index>4</index>"), 3),
            ok("e,f", set("e", 4, "f", 7))
        );
        assert_eq!(
            page(&dir, Some("<index>7</index>"), 3),
            ok("", count_only.into())
        );
        assert_eq!(
            page(&dir, Some("<max>0</max>"), 3),
            ok("", count_only.into())
        );
        // Refused: a max that is no number; an index with a UID.
        assert_eq!(
            page(&dir, Some("<max>many</max>"), 3),
            Err(Cond::BadRequest)
        );
        assert_eq!(
            page(&dir, Some("<index>1</index><before/>"), 3),
            Err(Cond::BadRequest)
        );
    }

    /// Positions counted from either end.
    #[test]
    fn positions() {
        let dir = seven();
        for (i, jid) in dir.keys().enumerate() {
            assert_eq!(position(&dir, jid), i, "{jid}");
        }
        assert_eq!(position(&dir, "0@conference.localhost"), 0);
        assert_eq!(position(&dir, "dz@conference.localhost"), 4);
        assert_eq!(position(&dir, "z@conference.localhost"), 7);
        assert_eq!(position(&BTreeMap::new(), "a"), 0);
    }

    #[test]
    fn service_info_bytes() {
        assert_eq!(
            service_info(),
            "<query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='conference' type='text' name='Chatrooms'/>\
             <feature var='http://jabber.org/protocol/muc'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/>\
             <feature var='http://jabber.org/protocol/rsm'/></query>"
        );
    }
}
