//! XEP-0313 Message Archive Management (`urn:xmpp:mam:2`) with XEP-0059 paging, and the
//! XEP-0359 `<stanza-id/>` that names each archived message.
//!
//! Every 1:1 chat/normal message with a body is archived twice: for the sender when it
//! leaves (on the sender's shard) and for the recipient when it arrives (on the
//! recipient's home shard, live or offline), where the delivered copy gets
//! `<stanza-id by='recipient'/>`. Rooms archive their groupchat messages under the room's
//! JID (`muc/room.rs`). Queries go through the storage thread's queue, behind the appends
//! already queued, so a query sees every message acknowledged before it.

use crate::storage::{
    ArchiveItem, ArchivePage, ArchiveQuery, ArchiveReplyTo, Parts, Request, archive_id_at,
    archive_id_ms,
};
use crate::xml::ns;
use crate::xml::ns::MAM as NS;
use crate::xml::stanza::Stanza;
use crate::xml::writer::Elem;
use crate::xmpp::core::{Host, IqReply, IqRequest};
use crate::xmpp::errors::Cond;
use crate::xmpp::jid::Jid;
use crate::xmpp::router::{self, Kind, Routed, SType, split_full};
use crate::xmpp::rsm;
use crate::xmpp::stream::Ctx;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// XEP-0313 Message Archive Management, with XEP-0059 paging.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MamConfig {
    /// Archive 1:1 messages with a body (for both parties) and room messages.
    pub enabled: bool,
    /// Messages per page when the client does not say (RSM `max`); at most `page_max`.
    #[schemars(range(min = 1))]
    pub page_default: usize,
    /// Most messages per page: a larger RSM `max` is capped to it.
    #[schemars(range(min = 1))]
    pub page_max: usize,
    /// Archived messages older than this many seconds are deleted by the storage thread;
    /// 0 keeps them forever. The bound keeps the retention in milliseconds within 64 bits.
    #[schemars(range(max = u64::MAX / 1000))]
    pub retention_s: u64,
}

impl Default for MamConfig {
    fn default() -> Self {
        MamConfig {
            enabled: true,
            page_default: 50,
            page_max: 250,
            retention_s: 0,
        }
    }
}

impl MamConfig {
    /// The default page within the largest (ranges are checked by `Config::validate`).
    pub fn validate(&self) -> Result<(), String> {
        if self.page_default > self.page_max {
            return Err(format!(
                "mam.page_default must be <= mam.page_max (got {} > {})",
                self.page_default, self.page_max
            ));
        }
        Ok(())
    }
}

/// What an account advertises when the archive is on (XEP-0313 §7, XEP-0359).
pub const ACCOUNT_FEATURES: &[&str] = &[NS, ns::SID];

/// What this module needs from its host: its configuration.
pub trait MamHost: Host {
    fn mam(&self) -> &MamConfig;
}

pub fn id_str(id: u64) -> String {
    format!("{id:016x}")
}

/// An archive id as its UID is written (`id_str`), without a `String`.
struct Uid(u64);

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

pub fn parse_id(s: &str) -> Option<u64> {
    (s.len() == 16)
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

fn wants<H: MamHost>(shard: &H, r: &Routed) -> bool {
    shard.mam().enabled
        && shard.shared.storage.is_some()
        && r.payload.windows(5).any(|w| w == b"<body")
}

fn append<H: MamHost>(shard: &H, owner: &str, item: ArchiveItem) {
    shard.storage(Request::ArchiveAppend {
        owner: owner.to_string(),
        item,
    });
}

/// The sender's copy, when a message leaves (sender's shard).
pub fn archive_sent<H: MamHost>(shard: &H, r: &Routed) {
    if !wants(shard, r) {
        return;
    }
    let (from, to) = (r.from(), r.to());
    let id = shard.next_archive_id();
    append(
        shard,
        split_full(&from).0,
        ArchiveItem {
            id,
            with: split_full(&to).0.to_string(),
            stanza: Parts::one(r.payload.clone()),
            uid: r.uid,
        },
    );
}

/// The recipient's copy, when a message arrives (recipient's home shard): returns the
/// stanza with `<stanza-id by='recipient'/>` as its first child, to deliver instead.
pub fn archive_received<H: MamHost>(shard: &H, r: Routed) -> Routed {
    if !wants(shard, &r) {
        return r;
    }
    let (owner, with) = {
        let (from, to) = (r.from(), r.to());
        (
            split_full(&to).0.to_string(),
            split_full(&from).0.to_string(),
        )
    };
    let id = shard.next_archive_id();
    let mut sid = Vec::with_capacity(96 + owner.len());
    Elem::new(&mut sid, "stanza-id")
        .attr("xmlns", ns::SID)
        .attr_fmt("id", format_args!("{id:016x}"))
        .attr("by", &owner)
        .end();
    // The stanza-id is a part of what is delivered and archived: the message's bytes are
    // shared, not copied.
    let r = match r.with_first_child(Bytes::from(sid)) {
        Ok(r) => r,
        Err(r) => return r,
    };
    append(
        shard,
        &owner,
        ArchiveItem {
            id,
            with,
            stanza: Parts(r.parts().into_iter().collect()),
            uid: r.uid,
        },
    );
    r
}

/// The IQ handler (`urn:xmpp:mam:2`): `<prefs/>` (§7) and a `<query/>` set (§4), to the
/// user's own archive only; answered later, from storage.
pub fn iq<H: MamHost>(ctx: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    let (st, child) = (r.st, r.child);
    let local = st.elems[child].local;
    if local != "prefs" && (local != "query" || r.stype != SType::Set) {
        return IqReply::Error(Cond::ServiceUnavailable);
    }
    if local == "query" {
        crate::metrics::shard().mam_queries.inc();
    }
    if r.to.is_some_and(|t| t.bare() != ctx.jid.bare()) {
        return IqReply::Error(Cond::Forbidden);
    }
    let reply = ArchiveReplyTo {
        to: ctx.jid.as_str().to_string(),
        from: ctx.jid.bare().to_string(),
        queryid: (local == "query")
            .then(|| st.attr(child, "queryid").map(|a| a.value().into_owned()))
            .flatten(),
        iq_id: crate::xmpp::stream::id_attr(st).to_string(),
    };
    let res = if local == "prefs" {
        prefs_iq(ctx.shard, st, child, r.stype == SType::Set, reply)
    } else {
        // XEP-0313 §4: a query to the user's own archive.
        let m = ctx.shard.mam();
        parse_query(st, child, m.page_default, m.page_max)
            .and_then(|q| query(ctx.shard, ctx.jid.bare(), q, reply))
    };
    match res {
        Ok(()) => IqReply::Later,
        Err(c) => IqReply::Error(c),
    }
}

/// Parses a `<query/>` (data form fields and RSM) into a storage query.
pub fn parse_query(
    st: &Stanza,
    q: usize,
    page_default: usize,
    page_max: usize,
) -> Result<ArchiveQuery, Cond> {
    let mut out = ArchiveQuery {
        max: page_default,
        ..Default::default()
    };
    let tighten_after =
        |o: &mut ArchiveQuery, id: u64| o.after_id = Some(o.after_id.map_or(id, |a| a.max(id)));
    let tighten_before =
        |o: &mut ArchiveQuery, id: u64| o.before_id = Some(o.before_id.map_or(id, |b| b.min(id)));
    if let Some(x) = st.child(q, "x", ns::DATA) {
        for f in st.children(x) {
            let Some(var) = st.attr(f, "var").map(|a| a.value().into_owned()) else {
                continue;
            };
            let value = st
                .child(f, "value", ns::DATA)
                .map(|v| st.text(v).trim().to_string())
                .unwrap_or_default();
            let ms = || {
                humantime::parse_rfc3339_weak(&value)
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64)
            };
            match var.as_str() {
                "FORM_TYPE" if value != NS => return Err(Cond::BadRequest),
                "with" => {
                    out.with = Some(
                        Jid::parse(&value)
                            .map_err(|_| Cond::JidMalformed)?
                            .bare()
                            .to_string(),
                    )
                }
                "start" => tighten_after(
                    &mut out,
                    archive_id_at(ms().ok_or(Cond::BadRequest)?).saturating_sub(1),
                ),
                "end" => tighten_before(&mut out, archive_id_at(ms().ok_or(Cond::BadRequest)? + 1)),
                "after-id" => tighten_after(&mut out, parse_id(&value).ok_or(Cond::ItemNotFound)?),
                "before-id" => {
                    tighten_before(&mut out, parse_id(&value).ok_or(Cond::ItemNotFound)?)
                }
                _ => {}
            }
        }
    }
    // XEP-0059 paging by archive id; an `<index/>` is read (a malformed one is refused) but
    // not used.
    if let Some(set) = rsm::Query::parse(st, q)? {
        if let Some(max) = set.max {
            out.max = max;
        }
        if let Some(a) = set.after {
            tighten_after(&mut out, parse_id(&a).ok_or(Cond::ItemNotFound)?);
        }
        if let Some(b) = set.before {
            out.from_end = true;
            if !b.is_empty() {
                tighten_before(&mut out, parse_id(&b).ok_or(Cond::ItemNotFound)?);
            }
        }
    }
    out.max = out.max.clamp(1, page_max.max(1));
    Ok(out)
}

/// The archive is on and has storage behind it.
/// Whether the archive is on (and storage there to hold it).
pub fn archive_available<H: MamHost>(shard: &H) -> Result<(), Cond> {
    match (&shard.shared.storage, shard.mam().enabled) {
        (Some(_), true) => Ok(()),
        _ => Err(Cond::ServiceUnavailable),
    }
}

/// Sends a query to storage; the page comes back to this shard (`on_page`).
pub fn query<H: MamHost>(
    shard: &H,
    owner: &str,
    query: ArchiveQuery,
    reply: ArchiveReplyTo,
) -> Result<(), Cond> {
    archive_available(shard)?;
    shard
        .storage_try(Request::ArchiveQuery {
            owner: owner.to_string(),
            query,
            shard: shard.id,
            reply,
        })
        .map_err(|_| Cond::ResourceConstraint)
}

/// A result routed to the requester, wherever it lives.
fn routed(kind: Kind, stype: SType, to: &str, from: &str, attrs: &str, body: &[u8]) -> Routed {
    router::build(kind, stype, from, to, attrs, body)
}

/// A page from storage: one `<result/>` message per item, then the iq result with `<fin/>`,
/// routed to the requester (a room's page may be asked for from another shard). Results
/// travel as headlines inside the server: never archived, copied or stored offline.
pub fn on_page<H: MamHost>(shard: &H, page: ArchivePage, reply: ArchiveReplyTo) {
    for i in &page.items {
        let stamp = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(archive_id_ms(i.id)),
        );
        let mut body = Vec::with_capacity(256 + i.stanza.len());
        let mut result = Elem::new(&mut body, "result").attr("xmlns", NS);
        if let Some(q) = &reply.queryid {
            result = result.attr("queryid", q);
        }
        result = result.attr_fmt("id", format_args!("{:016x}", i.id));
        let mut forwarded = result.child("forwarded").attr("xmlns", ns::FORWARD);
        forwarded
            .child("delay")
            .attr("xmlns", ns::DELAY)
            .attr_fmt("stamp", &stamp)
            .end();
        forwarded.raw_with(|v| i.stanza.write_to(v)).end();
        result.end();
        router::route(
            shard,
            routed(
                Kind::Message,
                SType::Headline,
                &reply.to,
                &reply.from,
                "",
                &body,
            ),
        );
    }
    router::route(shard, fin_result(&page, &reply));
}

/// XEP-0313 §4.3: the iq result that ends a page, with `<fin/>` and its RSM `<set/>`.
fn fin_result(page: &ArchivePage, reply: &ArchiveReplyTo) -> Routed {
    result_iq(reply, 192, |iq| {
        let mut f = iq
            .child("fin")
            .attr("xmlns", NS)
            .attr_fmt("complete", page.complete);
        rsm::Page {
            ends: (page.items.first().zip(page.items.last()))
                .map(|(first, last)| (Uid(first.id), Uid(last.id))),
            index: None,
            count: None,
        }
        .write(&mut f);
        f.end();
    })
}

/// The iq result to the requester of `reply`: `<iq xmlns='jabber:client' to='…' from='…'
/// type='result' id='…'>` (the request's `id` copied as it came), its content written by
/// `content` (`cap`: about how long that is).
fn result_iq(reply: &ArchiveReplyTo, cap: usize, content: impl FnOnce(&mut Elem)) -> Routed {
    let len = reply.to.len() + reply.from.len() + reply.iq_id.len();
    let mut v = Vec::with_capacity(64 + len + cap);
    let mut iq = Elem::new(&mut v, "iq").attr("xmlns", ns::CLIENT);
    let to = iq.attr_span("to", &reply.to);
    let from = iq.attr_span("from", &reply.from);
    iq = iq.attr("type", "result");
    if !reply.iq_id.is_empty() {
        iq = iq.attrs_raw(reply.iq_id.as_bytes());
    }
    content(&mut iq);
    iq.end();
    let span = |r: std::ops::Range<usize>| r.start as u32..r.end as u32;
    Routed::from_parts(Kind::Iq, SType::Result, v, span(to), span(from))
}

/// A `<prefs/>` get or set (XEP-0313 §7): read or replace through the storage thread.
pub fn prefs_iq<H: MamHost>(
    shard: &H,
    st: &Stanza,
    child: usize,
    set: bool,
    reply: ArchiveReplyTo,
) -> Result<(), Cond> {
    archive_available(shard)?;
    let prefs = if set {
        let default_always = match st.attr(child, "default").map(|a| a.value()).as_deref() {
            Some("always") => true,
            Some("never") => false,
            Some("roster") => return Err(Cond::FeatureNotImplemented),
            _ => return Err(Cond::BadRequest),
        };
        let list = |name: &str| -> Result<Vec<String>, Cond> {
            let Some(l) = st.child(child, name, NS) else {
                return Ok(Vec::new());
            };
            st.children(l)
                .map(|j| {
                    Jid::parse(st.text(j).trim())
                        .map(|j| j.bare().to_string())
                        .map_err(|_| Cond::JidMalformed)
                })
                .collect()
        };
        Some(crate::storage::ArchivePrefs {
            default_always,
            always: list("always")?,
            never: list("never")?,
        })
    } else {
        None
    };
    let owner = reply.from.clone();
    shard
        .storage_try(Request::ArchivePrefs {
            owner,
            set: prefs,
            shard: shard.id,
            reply,
        })
        .map_err(|_| Cond::ResourceConstraint)
}

/// The preferences could not be stored: the iq's error.
pub fn on_prefs_failed<H: MamHost>(shard: &H, reply: ArchiveReplyTo) {
    let (v, to, from) = crate::xmpp::errors::error_stanza(
        "iq",
        &reply.from,
        &reply.to,
        &reply.iq_id,
        Cond::InternalServerError,
        Some("the preferences could not be stored"),
    );
    router::route(
        shard,
        Routed::from_parts(Kind::Iq, SType::Error, v, to, from),
    );
}

/// The preferences, as the iq result (sent by storage after the commit that stored them).
pub fn on_prefs<H: MamHost>(shard: &H, prefs: crate::storage::ArchivePrefs, reply: ArchiveReplyTo) {
    router::route(shard, prefs_result(&prefs, &reply));
}

/// XEP-0313 §7: the iq result with the preferences.
fn prefs_result(prefs: &crate::storage::ArchivePrefs, reply: &ArchiveReplyTo) -> Routed {
    let default = if prefs.default_always {
        "always"
    } else {
        "never"
    };
    result_iq(reply, 128, |iq| {
        let mut p = iq.child("prefs").attr("xmlns", NS).attr("default", default);
        for (name, jids) in [("always", &prefs.always), ("never", &prefs.never)] {
            let mut list = p.child(name).start_content();
            for j in jids {
                list.child("jid").text(j).end();
            }
            list.end();
        }
        p.end();
    })
}

#[cfg(test)]
mod tests {
    //! `parse_query` on XEP-0313's example queries (the stanzas as the XEP shows them, with
    //! its JIDs and dates), and on what a server refuses.
    use super::*;
    use crate::xml::stanza::Limits;

    fn parse(iq: &str) -> Result<ArchiveQuery, Cond> {
        let st = Stanza::parse(iq, &Limits::default()).unwrap();
        let q = st.child(0, "query", NS).unwrap();
        parse_query(&st, q, 50, 250)
    }

    fn ms(t: &str) -> u64 {
        humantime::parse_rfc3339_weak(t)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    /// XEP-0313's first example: querying an archive for all messages.
    #[test]
    fn all_messages() {
        let q = parse("<iq type='set' id='juliet1'><query xmlns='urn:xmpp:mam:2'/></iq>").unwrap();
        assert_eq!(
            q,
            ArchiveQuery {
                max: 50,
                ..Default::default()
            }
        );
    }

    /// XEP-0313's filtering by JID: `with` names the other party (a bare JID).
    #[test]
    fn filtering_by_jid() {
        let q = parse(
            "<iq type='set' id='juliet1'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>juliet@capulet.lit</value></field></x></query></iq>",
        )
        .unwrap();
        assert_eq!(q.with.as_deref(), Some("juliet@capulet.lit"));
    }

    /// XEP-0313's filtering by time: a time span (`start`, `end`), then only a `start`.
    #[test]
    fn filtering_by_time() {
        let q = parse(
            "<iq type='set' id='juliet1'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='start'><value>2010-06-07T00:00:00Z</value></field><field var='end'><value>2010-07-07T13:23:54Z</value></field></x></query></iq>",
        )
        .unwrap();
        assert_eq!(
            q.after_id,
            Some(archive_id_at(ms("2010-06-07T00:00:00Z")) - 1)
        );
        assert_eq!(
            q.before_id,
            Some(archive_id_at(ms("2010-07-07T13:23:54Z") + 1))
        );
        let q = parse(
            "<iq type='set' id='juliet1'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='start'><value>2010-08-07T00:00:00Z</value></field></x></query></iq>",
        )
        .unwrap();
        assert!(q.after_id.is_some() && q.before_id.is_none());
    }

    /// XEP-0313 with XEP-0059 paging: a page of at most 10, the last page (`<before/>`),
    /// the page after an id this server never made (`item-not-found`), after a real one.
    #[test]
    fn paging() {
        let q = parse(
            "<iq type='set' id='q29302'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>10</max></set></query></iq>",
        )
        .unwrap();
        assert_eq!((q.max, q.from_end), (10, false));
        let q = parse(
            "<iq type='set' id='q29302'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>20</max><before/></set></query></iq>",
        )
        .unwrap();
        assert_eq!((q.max, q.from_end, q.before_id), (20, true, None));
        let e = parse(
            "<iq type='set' id='q29303'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>09af3-cc343-b409f</after></set></query></iq>",
        );
        assert_eq!(e.err(), Some(Cond::ItemNotFound));
        let id = id_str(archive_id_at(ms("2010-06-07T00:00:00Z")));
        let q = parse(&format!(
            "<iq type='set' id='q29303'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>{id}</after></set></query></iq>"
        ))
        .unwrap();
        assert_eq!(q.after_id, parse_id(&id));
    }

    /// What a server may refuse: another form, a page size that is not a number; a page
    /// larger than allowed is cut to the largest.
    #[test]
    fn refusals_and_bounds() {
        let e = parse(
            "<iq type='set' id='x'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x></query></iq>",
        );
        assert_eq!(e.err(), Some(Cond::BadRequest));
        let e = parse(
            "<iq type='set' id='x'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>ten</max></set></query></iq>",
        );
        assert_eq!(e.err(), Some(Cond::BadRequest));
        let q = parse(
            "<iq type='set' id='x'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>100000</max></set></query></iq>",
        )
        .unwrap();
        assert_eq!(q.max, 250);
    }

    /// The iq results that end a page and that give the preferences: the request's `id`
    /// as it came (any quotes), or none.
    #[test]
    fn page_and_prefs_results() {
        use crate::storage::{ArchiveItem, ArchivePage, ArchivePrefs, Parts};
        let reply = |iq_id: &str| ArchiveReplyTo {
            to: "juliet@localhost/balcony".into(),
            from: "juliet@localhost".into(),
            queryid: Some("f'<".into()),
            iq_id: iq_id.into(),
        };
        let item = |id: u64| ArchiveItem {
            id,
            with: "romeo@localhost".into(),
            stanza: Parts::one(&b"<message/>"[..]),
            uid: 0,
        };
        let text = |r: Routed| String::from_utf8(r.payload.to_vec()).unwrap();
        let page = ArchivePage {
            items: vec![item(0x0123_4567_89ab_cdef), item(0x0123_4567_89ab_cdf0)],
            complete: true,
        };
        let r = fin_result(&page, &reply("id='q&amp;1'"));
        assert_eq!(
            (&*r.to(), &*r.from()),
            ("juliet@localhost/balcony", "juliet@localhost")
        );
        assert_eq!(
            text(r),
            "<iq xmlns='jabber:client' to='juliet@localhost/balcony' from='juliet@localhost' \
             type='result' id='q&amp;1'><fin xmlns='urn:xmpp:mam:2' complete='true'>\
             <set xmlns='http://jabber.org/protocol/rsm'><first>0123456789abcdef</first>\
             <last>0123456789abcdf0</last></set></fin></iq>"
        );
        let empty = ArchivePage {
            items: Vec::new(),
            complete: false,
        };
        assert_eq!(
            text(fin_result(&empty, &reply(""))),
            "<iq xmlns='jabber:client' to='juliet@localhost/balcony' from='juliet@localhost' \
             type='result'><fin xmlns='urn:xmpp:mam:2' complete='false'>\
             <set xmlns='http://jabber.org/protocol/rsm'/></fin></iq>"
        );
        let prefs = ArchivePrefs {
            default_always: true,
            always: vec!["romeo@localhost".into()],
            never: Vec::new(),
        };
        assert_eq!(
            text(prefs_result(&prefs, &reply("id=\"p'1\""))),
            "<iq xmlns='jabber:client' to='juliet@localhost/balcony' from='juliet@localhost' \
             type='result' id=\"p'1\"><prefs xmlns='urn:xmpp:mam:2' default='always'>\
             <always><jid>romeo@localhost</jid></always><never></never></prefs></iq>"
        );
        assert_eq!(
            text(prefs_result(&ArchivePrefs::default(), &reply(""))),
            "<iq xmlns='jabber:client' to='juliet@localhost/balcony' from='juliet@localhost' \
             type='result'><prefs xmlns='urn:xmpp:mam:2' default='always'>\
             <always></always><never></never></prefs></iq>"
        );
    }
}
