//! Routing: a stanza is stamped and serialized once on its sender's shard, then delivered
//! on the home shard of its recipient (a local call, or one push onto that shard's
//! mailbox). Delivery follows RFC 6121 §8.5; what cannot be delivered is bounced with an
//! error to the sender, never dropped silently (except where §8.5 says to ignore it).

use super::core::{Host, Msg};
use super::errors::{Cond, error_stanza};
use super::sink::{FrameExtra, OutFrame, Sink, StanzaFrame};
use crate::net::outbox::PushError;
use crate::runtime::Home;
use crate::xml::escape::{escape_attr, unescape};
use crate::xml::stanza::Stanza;
use bytes::Bytes;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::ops::Range;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    Message,
    Presence,
    Iq,
}

impl Kind {
    pub fn from_name(s: &str) -> Option<Kind> {
        match s {
            "message" => Some(Kind::Message),
            "presence" => Some(Kind::Presence),
            "iq" => Some(Kind::Iq),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Presence => "presence",
            Kind::Iq => "iq",
        }
    }
}

/// The `type` attribute, by kind (RFC 6121 §5.2.2, §4.7.1; RFC 6120 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SType {
    Normal,
    Chat,
    Groupchat,
    Headline,
    Available,
    Unavailable,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Probe,
    Get,
    Set,
    Result,
    Error,
}

impl SType {
    /// `None`: a value the RFCs do not define for this kind.
    pub fn parse(kind: Kind, v: Option<&str>) -> Option<SType> {
        use SType::*;
        Some(match (kind, v) {
            (_, Some("error")) => Error,
            (Kind::Message, None | Some("normal")) => Normal,
            (Kind::Message, Some("chat")) => Chat,
            (Kind::Message, Some("groupchat")) => Groupchat,
            (Kind::Message, Some("headline")) => Headline,
            // RFC 6121 §5.2.2: an unknown message type is treated as normal.
            (Kind::Message, Some(_)) => Normal,
            (Kind::Presence, None) => Available,
            (Kind::Presence, Some("unavailable")) => Unavailable,
            (Kind::Presence, Some("subscribe")) => Subscribe,
            (Kind::Presence, Some("subscribed")) => Subscribed,
            (Kind::Presence, Some("unsubscribe")) => Unsubscribe,
            (Kind::Presence, Some("unsubscribed")) => Unsubscribed,
            (Kind::Presence, Some("probe")) => Probe,
            (Kind::Iq, Some("get")) => Get,
            (Kind::Iq, Some("set")) => Set,
            (Kind::Iq, Some("result")) => Result,
            _ => return None,
        })
    }

    pub fn is_subscription(self) -> bool {
        matches!(
            self,
            SType::Subscribe | SType::Subscribed | SType::Unsubscribe | SType::Unsubscribed
        )
    }
}

/// A stanza on its way to its recipient's home shard: the serialized bytes and where in
/// them its addresses and id are. Plain data, so it could cross a node boundary as is.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Routed {
    pub kind: Kind,
    pub stype: SType,
    pub payload: Bytes,
    to: Range<u32>,
    from: Range<u32>,
    /// The whole `id='…'` attribute, or empty.
    id: Range<u32>,
    /// Bytes delivered at positions of `payload`, in order (the recipient's
    /// `<stanza-id/>` as first child, an offline `<delay/>` as last child): parts of what is
    /// delivered and stored, never copied into the payload.
    insert: Option<Box<Inserts>>,
    /// A cluster-unique id given once, where a client's stanza enters the server
    /// (`stamp`; 0 for stanzas the server makes): its archive rows are stored once per
    /// owner even when it is routed again after a node's failure.
    pub uid: u64,
}

thread_local! {
    static UID: std::cell::Cell<u64> = std::cell::Cell::new({
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        u64::from_le_bytes(seed) | 1
    });
}

/// A new random message id (xorshift seeded from the OS; never 0): 64 bits make a
/// collision between two messages of one owner negligible.
pub fn new_uid() -> u64 {
    UID.with(|c| {
        let mut x = c.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.set(x);
        x
    })
}

/// Insertions into a held payload: (position, bytes), by position.
type Inserts = SmallVec<[(u32, Bytes); 2]>;

fn slice<'a>(b: &'a Bytes, r: &Range<u32>) -> &'a str {
    // The payload was built from &str pieces and ASCII, so any range we recorded is UTF-8.
    std::str::from_utf8(&b[r.start as usize..r.end as usize]).unwrap_or("")
}

impl Routed {
    pub fn to(&self) -> Cow<'_, str> {
        let raw = slice(&self.payload, &self.to);
        unescape(raw).unwrap_or(Cow::Borrowed(raw))
    }

    pub fn from(&self) -> Cow<'_, str> {
        let raw = slice(&self.payload, &self.from);
        unescape(raw).unwrap_or(Cow::Borrowed(raw))
    }

    pub fn id_attr(&self) -> &str {
        slice(&self.payload, &self.id)
    }

    /// Where the whole `id='…'` attribute is in `payload` (empty when there is none).
    pub fn id_range(&self) -> Range<u32> {
        self.id.clone()
    }

    /// Where the `to` and `from` values are in `payload` (as `stamp` wrote them: ` to='…'
    /// from='…'` just before the end of the start tag).
    pub fn to_range(&self) -> Range<u32> {
        self.to.clone()
    }

    pub fn from_range(&self) -> Range<u32> {
        self.from.clone()
    }

    /// The splice API: `bytes` go at position `at` of the payload when it is delivered or
    /// stored (`parts`); the payload itself is never copied. Insertions keep their order.
    fn splice(mut self, at: u32, bytes: Bytes) -> Routed {
        let ins = self.insert.get_or_insert_with(Default::default);
        let i = ins.partition_point(|(p, _)| *p <= at);
        ins.insert(i, (at, bytes));
        self
    }

    /// The stanza with `child` as its first child (a part, see `splice`). Given back
    /// unchanged when the stanza has no room for a child (self-closing).
    pub fn with_first_child(self, child: Bytes) -> Result<Routed, Routed> {
        // `stamp` and `build` end the start tag right after `from='…'`.
        let gt = self.from.end as usize + 1;
        if self.payload.get(gt) != Some(&b'>') {
            return Err(self);
        }
        Ok(self.splice(gt as u32 + 1, child))
    }

    /// The stanza with `child` as its last child, before its end tag (a part, see
    /// `splice`). Given back unchanged when the stanza is self-closing.
    pub fn with_last_child(self, child: Bytes) -> Result<Routed, Routed> {
        let p = &self.payload;
        let end = p.len().saturating_sub(self.kind.name().len() + 3);
        let closing = p.get(end..end + 2) == Some(b"</")
            && p.get(end + 2..p.len() - 1) == Some(self.kind.name().as_bytes());
        if !closing || self.payload.get(self.from.end as usize + 1) != Some(&b'>') {
            return Err(self);
        }
        Ok(self.splice(end as u32, child))
    }

    /// The stanza's bytes as shared parts, in order (the payload, split where something
    /// is inserted).
    pub fn parts(&self) -> SmallVec<[Bytes; 3]> {
        let Some(ins) = self.insert.as_deref() else {
            return smallvec::smallvec![self.payload.clone()];
        };
        let mut out = SmallVec::new();
        let mut pos = 0usize;
        for (at, b) in ins {
            let at = *at as usize;
            if at > pos {
                out.push(self.payload.slice(pos..at));
            }
            out.push(b.clone());
            pos = at;
        }
        if pos < self.payload.len() {
            out.push(self.payload.slice(pos..));
        }
        out
    }

    /// The start tag up to its addresses (`<message id='…' type='…'`, without the ` to='…'
    /// from='…'` that `stamp` writes last): the head of a readdressed copy.
    pub fn start_before_addresses(&self) -> &[u8] {
        &self.payload[..self.to.start as usize - 5]
    }

    /// Where the content starts (after the start tag), or `None` when the stanza is
    /// self-closing.
    pub fn content_start(&self) -> Option<usize> {
        let gt = self.from.end as usize + 1;
        (self.payload.get(gt) == Some(&b'>')).then_some(gt + 1)
    }

    /// The content and end tag, shared with the payload (`None`: self-closing).
    pub fn content(&self) -> Option<Bytes> {
        self.content_start().map(|c| self.payload.slice(c..))
    }

    /// The stanza readdressed: new `to` and `from` (written after the sender's other
    /// attributes, as `stamp` writes them), `id` replaced by `new_id` (already escaped)
    /// when given, and `first_child` (already XML) inserted before the content; the rest of
    /// the sender's bytes as they are. One copy: a service (the MUC) that rewrites the
    /// start tag of a stanza it relays.
    pub fn readdressed(
        &self,
        to: &str,
        from: &str,
        new_id: Option<&str>,
        first_child: &[u8],
    ) -> Routed {
        let p = &self.payload;
        let cut = self.to.start as usize - 5; // " to='"
        let after = self.from.end as usize + 1; // '>' or '/>'
        let cap = p.len() + 16 + to.len() + from.len() + first_child.len();
        let mut v = Vec::with_capacity(cap + new_id.map_or(0, str::len));
        match new_id.filter(|_| !self.id.is_empty()) {
            Some(id) => {
                v.extend_from_slice(&p[..self.id.start as usize]);
                v.extend_from_slice(b"id='");
                v.extend_from_slice(id.as_bytes());
                v.push(b'\'');
                v.extend_from_slice(&p[self.id.end as usize..cut]);
            }
            None => v.extend_from_slice(&p[..cut]),
        }
        let (to_r, from_r) = write_addresses(&mut v, to, from);
        if !p[after..].starts_with(b"/>") {
            v.push(b'>');
            v.extend_from_slice(first_child);
            v.extend_from_slice(&p[after + 1..]);
        } else if first_child.is_empty() {
            v.extend_from_slice(b"/>");
        } else {
            v.push(b'>');
            v.extend_from_slice(first_child);
            v.extend_from_slice(b"</");
            v.extend_from_slice(self.kind.name().as_bytes());
            v.push(b'>');
        }
        Routed::from_parts(self.kind, self.stype, v, to_r, from_r)
    }

    /// The whole stanza in one buffer: a copy, for the cold paths that rewrite it.
    pub fn to_vec(&self) -> Vec<u8> {
        let parts = self.parts();
        let mut v = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
        for p in &parts {
            v.extend_from_slice(p);
        }
        v
    }

    /// The same stanza with bytes changed only after its start tag (so every recorded
    /// range still points at the same attribute).
    pub fn with_payload(&self, payload: Vec<u8>) -> Routed {
        debug_assert!(payload.len() >= self.from.end as usize);
        Routed {
            kind: self.kind,
            stype: self.stype,
            payload: Bytes::from(payload),
            to: self.to.clone(),
            from: self.from.clone(),
            id: self.id.clone(),
            insert: None,
            uid: self.uid,
        }
    }

    /// Builds a routed stanza from bytes whose `to`/`from` value ranges are known.
    pub fn from_parts(
        kind: Kind,
        stype: SType,
        payload: Vec<u8>,
        to: Range<u32>,
        from: Range<u32>,
    ) -> Routed {
        Routed {
            kind,
            stype,
            payload: Bytes::from(payload),
            to,
            from,
            id: 0..0,
            insert: None,
            uid: 0,
        }
    }
}

/// Serializes a received stanza once for routing: the original bytes with `from` (and
/// `to`, normalized) rewritten in the start tag and `xmlns='jabber:client'` added when the
/// client left it implicit. Everything after the start tag is copied as it came.
pub fn stamp(st: &Stanza, kind: Kind, stype: SType, from: &str, to: Option<&str>) -> Routed {
    let src = st.src;
    let root = st.root();
    let start = root.start as usize;
    let tag_end = root.start_tag_end as usize;
    let ins = if src[..tag_end].ends_with("/>") {
        tag_end - 2
    } else {
        tag_end - 1
    };
    let mut cuts: SmallVec<[Range<u32>; 2]> = SmallVec::new();
    for name in ["from", "to"] {
        if let Some(a) = st.attr(0, name) {
            cuts.push(a.span.clone());
        }
    }
    if cuts.len() == 2 && cuts[1].start < cuts[0].start {
        cuts.swap(0, 1);
    }
    let id_span = st.attr(0, "id").map(|a| a.span.clone());
    let mut out: Vec<u8> =
        Vec::with_capacity(root.end as usize - start + 64 + from.len() + to.map_or(0, str::len));
    let mut id = 0..0;
    let mut copy = |out: &mut Vec<u8>, r: Range<usize>| {
        if let Some(s) = id_span
            .as_ref()
            .filter(|s| s.start as usize >= r.start && s.end as usize <= r.end)
        {
            let base = (out.len() + (s.start as usize - r.start)) as u32;
            id = base..base + (s.end - s.start);
        }
        out.extend_from_slice(&src.as_bytes()[r]);
    };
    let mut pos = start;
    for c in &cuts {
        copy(&mut out, pos..c.start as usize);
        pos = c.end as usize;
    }
    copy(&mut out, pos..ins);
    if !st.root_xmlns_declared() {
        out.extend_from_slice(b" xmlns='jabber:client'");
    }
    let mut to_r = 0..0;
    if let Some(t) = to {
        out.extend_from_slice(b" to='");
        let t0 = out.len() as u32;
        escape_attr(t, &mut out);
        to_r = t0..out.len() as u32;
        out.push(b'\'');
    }
    out.extend_from_slice(b" from='");
    let f0 = out.len() as u32;
    escape_attr(from, &mut out);
    let from_r = f0..out.len() as u32;
    out.push(b'\'');
    copy(&mut out, ins..root.end as usize);
    Routed {
        kind,
        stype,
        payload: Bytes::from(out),
        to: to_r,
        from: from_r,
        id,
        insert: None,
        uid: new_uid(),
    }
}

/// ` to='TO' from='FROM'` at the end of `v`, escaped; where the two values are.
#[inline]
fn write_addresses(v: &mut Vec<u8>, to: &str, from: &str) -> (Range<u32>, Range<u32>) {
    v.extend_from_slice(b" to='");
    let t0 = v.len() as u32;
    escape_attr(to, v);
    let t1 = v.len() as u32;
    v.extend_from_slice(b"' from='");
    let f0 = v.len() as u32;
    escape_attr(from, v);
    let f1 = v.len() as u32;
    v.push(b'\'');
    (t0..t1, f0..f1)
}

/// `<kind xmlns='jabber:client' to='TO' from='FROM'{attrs}>{inner}</kind>` (or `/>` when
/// `inner` is empty), with the ranges routing needs. `attrs` is raw (already escaped) and
/// starts with a space; `inner` is already XML. Every stanza the server makes itself is
/// built here.
pub fn build(kind: Kind, stype: SType, from: &str, to: &str, attrs: &str, inner: &[u8]) -> Routed {
    let name = kind.name();
    let mut v = Vec::with_capacity(64 + from.len() + to.len() + attrs.len() + inner.len());
    v.push(b'<');
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(b" xmlns='jabber:client'");
    let (to_r, from_r) = write_addresses(&mut v, to, from);
    v.extend_from_slice(attrs.as_bytes());
    if inner.is_empty() {
        v.extend_from_slice(b"/>");
    } else {
        v.push(b'>');
        v.extend_from_slice(inner);
        v.extend_from_slice(b"</");
        v.extend_from_slice(name.as_bytes());
        v.push(b'>');
    }
    Routed::from_parts(kind, stype, v, to_r, from_r)
}

/// Splits a normalized JID into (bare, resource).
pub fn split_full(jid: &str) -> (&str, Option<&str>) {
    match jid.find('/') {
        Some(i) => (&jid[..i], Some(&jid[i + 1..])),
        None => (jid, None),
    }
}

/// Sends a stanza addressed to a user of this domain, or to a component, towards the
/// home shard of its bare `to`.
pub fn route<H: Host>(shard: &H, r: Routed) {
    let h = {
        let to = r.to();
        let (bare, _) = split_full(&to);
        if !bare.contains('@') && !shard.is_component_domain(bare) {
            // Addressed to the server itself (e.g. an error bounced back to it): nothing to do.
            return;
        }
        shard.home(bare)
    };
    // This shard: delivered at once; another: its mailbox (`Host::send` decides).
    shard.send(h, Msg::Route(r));
}

/// Returns an error to the sender of `r`, unless `r` is itself an error or iq result.
pub fn bounce<H: Host>(shard: &H, r: &Routed, cond: Cond) {
    bounce_with(shard, r, cond, None)
}

/// `bounce`, with a text saying why.
pub fn bounce_with<H: Host>(shard: &H, r: &Routed, cond: Cond, text: Option<&str>) {
    if r.stype == SType::Error || r.stype == SType::Result {
        return;
    }
    let (v, to, from) = error_stanza(r.kind.name(), &r.to(), &r.from(), r.id_attr(), cond, text);
    route(shard, Routed::from_parts(r.kind, SType::Error, v, to, from));
}

/// Queues a stanza on one connection. False when the connection would not take it.
pub fn push(ctl: &Sink, payload: &Bytes) -> bool {
    push_copy(ctl, OutFrame::text(payload.clone()), None)
}

/// `push`, for one of several copies of a stanza that share `copies`.
fn push_copy(ctl: &Sink, mut f: OutFrame, copies: Option<&Rc<FrameExtra>>) -> bool {
    if let Some(c) = copies {
        f = f.with_copies(c);
    }
    match ctl.push(f, overflow_words) {
        Ok(()) => true,
        Err(PushError::Overflow) => {
            tracing::info!(
                conn = ctl.id,
                "closing slow consumer: outbound queue over its limit"
            );
            false
        }
        Err(PushError::Closed) => false,
    }
}

/// The last words of a slow consumer.
pub fn overflow_words(framing: super::sink::Framing) -> Vec<u8> {
    super::errors::stream_error_bytes(
        framing,
        super::errors::StreamError::PolicyViolation,
        Some("outbound queue limit exceeded: the client is not reading"),
        None,
    )
}

/// Delivers on the recipient's home shard (RFC 6121 §8.5.2 bare JID, §8.5.3 full JID).
pub fn deliver<H: Host>(shard: &H, r: Routed) {
    deliver_with(shard, r, true)
}

/// `archive`: false when re-delivering a stanza that was archived on its first arrival.
fn deliver_with<H: Host>(shard: &H, r: Routed, archive: bool) {
    // A module may take it (a service at its own domain, a subscription or probe for the
    // roster) or change it (the recipient's archive names the message for it).
    let Some(r) = shard.on_inbound(r, archive) else {
        return;
    };
    let mut targets: SmallVec<[Rc<Sink>; 4]> = SmallVec::new();
    let mut full_matched = false;
    {
        let to = r.to();
        let (bare, resource) = split_full(&to);
        let sessions = shard.sessions.borrow();
        if let Some(user) = sessions.user(bare) {
            // §8.5.3.1: a full JID of a connected resource gets the stanza. A stanza routed
            // again (its first session ended unacknowledged) waits for initial presence
            // instead: a new session of the same resource that has not sent it may not
            // have enabled stream management yet, and would never acknowledge it.
            if let Some(x) = resource.and_then(|res| {
                user.resources
                    .iter()
                    .find(|x| x.jid.resource() == Some(res) && (archive || x.available))
            }) {
                targets.push(x.ctl.clone());
                full_matched = true;
            }
            if !full_matched {
                let full_addressed = resource.is_some();
                match (r.kind, r.stype) {
                    // §8.5.3.2.1 treats chat/normal to an unknown resource as to the bare JID.
                    (Kind::Message, SType::Chat | SType::Normal) => {
                        let best = user
                            .resources
                            .iter()
                            .filter(|x| x.available && x.priority >= 0)
                            .map(|x| x.priority)
                            .max();
                        if let Some(p) = best {
                            targets.extend(
                                user.resources
                                    .iter()
                                    .filter(|x| x.available && x.priority == p)
                                    .map(|x| x.ctl.clone()),
                            );
                        }
                    }
                    (Kind::Message, SType::Headline) if !full_addressed => {
                        targets.extend(
                            user.resources
                                .iter()
                                .filter(|x| x.available && x.priority >= 0)
                                .map(|x| x.ctl.clone()),
                        );
                    }
                    // Probes are answered from rosters (a module, through `on_inbound`).
                    (Kind::Presence, t)
                        if (!full_addressed || t.is_subscription()) && t != SType::Probe =>
                    {
                        targets.extend(
                            user.resources
                                .iter()
                                .filter(|x| x.available)
                                .map(|x| x.ctl.clone()),
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    let mut delivered = false;
    // Copies of one message for several resources share one count (see `reroute_frame`).
    let copies = (targets.len() > 1).then(|| {
        Rc::new(FrameExtra::Copies(std::cell::Cell::new(
            targets.len() as u32
        )))
    });
    let parts = r.parts();
    for t in &targets {
        if push_copy(t, OutFrame::text_parts(parts.clone()), copies.as_ref()) {
            delivered = true;
        } else if let Some(FrameExtra::Copies(c)) = copies.as_deref() {
            c.set(c.get() - 1); // refused: that copy is not held anywhere
        }
    }
    if delivered {
        if r.kind == Kind::Message {
            let ids: SmallVec<[u64; 4]> = targets.iter().map(|t| t.id).collect();
            shard.after_delivery(&r, &ids);
        }
        return;
    }
    match (r.kind, r.stype) {
        // RFC 6121 §8.5.2.1.1: nobody available takes it: offline storage (XEP-0160).
        (Kind::Message, SType::Chat | SType::Normal) => shard.undeliverable(r),
        (Kind::Message, SType::Groupchat) => bounce(shard, &r, Cond::ServiceUnavailable),
        (Kind::Iq, SType::Get | SType::Set) => bounce(shard, &r, Cond::ServiceUnavailable),
        // Presence, headline and error stanzas nobody can take are dropped (§8.5.2.2, §8.5.3.2).
        _ => {}
    }
}

/// One stanza for many recipients on one shard (MUC fan-out): each gets a vectored write
/// of `[header, head, to, tail]`; `head` and `tail` are shared, never copied per recipient.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fanout {
    pub head: Bytes,
    pub tail: Bytes,
    /// Escaped full JIDs, all with their home on the receiving shard.
    pub tos: Vec<Bytes>,
}

/// Delivers a fan-out batch on the recipients' home shard. A recipient that is gone is
/// skipped: its `unavailable` is on its way to whoever sent this.
pub fn deliver_fanout<H: Host>(shard: &H, f: Fanout) {
    for to in &f.tos {
        let ctl = {
            let raw = std::str::from_utf8(to).unwrap_or("");
            let jid = unescape(raw).unwrap_or(Cow::Borrowed(raw));
            let (bare, res) = split_full(&jid);
            let sessions = shard.sessions.borrow();
            let Some(user) = sessions.user(bare) else {
                continue;
            };
            let Some(x) = user.resources.iter().find(|x| x.jid.resource() == res) else {
                continue;
            };
            x.ctl.clone()
        };
        let parts: SmallVec<[Bytes; 3]> =
            smallvec::smallvec![f.head.clone(), to.clone(), f.tail.clone()];
        if let Err(PushError::Overflow) = ctl.push(OutFrame::text_parts(parts), overflow_words) {
            tracing::info!(
                conn = ctl.id,
                "closing slow consumer: outbound queue over its limit"
            );
        }
    }
}

/// Sends a fan-out: recipients grouped by home shard, one mailbox message per shard.
pub fn fanout<H: Host>(shard: &H, head: Bytes, tail: Bytes, tos: &[(Home, Bytes)]) {
    let n = shard.shared.shards;
    let mut per: SmallVec<[Vec<Bytes>; 4]> = (0..n).map(|_| Vec::new()).collect();
    // Other nodes: one message per node, split by shard there (`fanout_arrived`).
    let mut nodes: SmallVec<[(Home, Vec<Bytes>); 2]> = SmallVec::new();
    for (h, to) in tos {
        if shard.is_local(*h) {
            if let Some(p) = per.get_mut(h.shard()) {
                p.push(to.clone());
            }
        } else {
            match nodes.iter_mut().find(|(n, _)| n.node == h.node) {
                Some((_, v)) => v.push(to.clone()),
                None => nodes.push((*h, vec![to.clone()])),
            }
        }
    }
    for (h, tos) in per.into_iter().enumerate() {
        if tos.is_empty() {
            continue;
        }
        let f = Fanout {
            head: head.clone(),
            tail: tail.clone(),
            tos,
        };
        let to = Home {
            node: 0,
            shard: h as u16,
        };
        shard.send(to, Msg::Fanout(f));
    }
    for (h, tos) in nodes {
        let f = Fanout {
            head: head.clone(),
            tail: tail.clone(),
            tos,
        };
        shard.send(h, Msg::Fanout(f));
    }
}

/// A fan-out from another node, for recipients homed on this one: split by home shard.
pub fn fanout_arrived<H: Host>(shard: &H, f: Fanout) {
    let tos: Vec<(Home, Bytes)> = f
        .tos
        .into_iter()
        .map(|to| {
            let raw = std::str::from_utf8(&to).unwrap_or("");
            let jid = unescape(raw).unwrap_or(Cow::Borrowed(raw));
            let (bare, _) = split_full(&jid);
            let h = crate::runtime::home(bare, shard.shared.shards);
            (h, to.clone())
        })
        .collect();
    fanout(shard, f.head, f.tail, &tos);
}

/// Parse limits for bytes the server made itself or already parsed once (a delivered
/// stanza, a carbon, an archive result): whatever a client's limits let through (at most
/// 1,000 by config validation) plus the wrappers the server adds around it.
pub const SERVER_MADE: crate::xml::stanza::Limits = crate::xml::stanza::Limits {
    max_depth: 1000 + 16,
    max_attrs: 1000 + 16,
};

/// A routed stanza from serialized bytes (a frame that was queued but never written):
/// parses once to find where `to`, `from` and `id` are.
pub fn reparse(text: &str) -> Option<Routed> {
    let st = Stanza::parse(text, &SERVER_MADE).ok()?;
    let kind = Kind::from_name(st.root().local)?;
    let stype = SType::parse(kind, st.attr(0, "type").map(|a| a.value()).as_deref())?;
    let base = text.as_ptr() as usize;
    let range = |name: &str| {
        st.attr(0, name).map(|a| {
            let s = (a.raw.as_ptr() as usize - base) as u32;
            s..s + a.raw.len() as u32
        })
    };
    let (to, from) = (range("to")?, range("from")?);
    let id = st.attr(0, "id").map(|a| a.span.clone()).unwrap_or(0..0);
    Some(Routed {
        kind,
        stype,
        payload: Bytes::copy_from_slice(text.as_bytes()),
        to,
        from,
        id,
        insert: None,
        uid: 0,
    })
}

/// A frame a connection was given but never acknowledged (it closed, or a detached
/// session expired) is not lost: a chat/normal message goes to the user's other resources
/// or offline storage (the session is already unbound), an iq request gets an error back;
/// the rest (presence, groupchat copies the room's history keeps) is dropped as RFC 6121
/// §8.5.3.2 allows.
pub fn reroute_frame<H: Host>(shard: &H, f: &OutFrame) {
    // A frame rendered for a non-XML client: route the XML it came from.
    let f = f.original().unwrap_or(f);
    // Carbons are copies: the original went (or goes) its own way.
    if !f.is_stanza() || f.is_copy_only() {
        return;
    }
    // One of several copies (a bare-JID message to equal-priority resources): routed
    // again only if every other copy was lost too; one that someone got is not repeated.
    if let Some(c) = f.copies() {
        let left = c.get().saturating_sub(1);
        c.set(left);
        if left > 0 {
            return;
        }
    }
    let mut v = Vec::new();
    for p in &f.parts {
        v.extend_from_slice(p);
    }
    let Ok(text) = std::str::from_utf8(&v) else {
        return;
    };
    let Some(r) = reparse(text) else { return };
    match (r.kind, r.stype) {
        (Kind::Message, SType::Chat | SType::Normal) => deliver_with(shard, r, false),
        (Kind::Iq, SType::Get | SType::Set) if r.from().contains('@') => {
            bounce(shard, &r, Cond::ServiceUnavailable)
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;

/// Every `Kind` and `SType` by its number on the wire between nodes (`xmpp::wire`).
const KINDS: [Kind; 3] = [Kind::Message, Kind::Presence, Kind::Iq];
const STYPES: [SType; 15] = [
    SType::Normal,
    SType::Chat,
    SType::Groupchat,
    SType::Headline,
    SType::Available,
    SType::Unavailable,
    SType::Subscribe,
    SType::Subscribed,
    SType::Unsubscribe,
    SType::Unsubscribed,
    SType::Probe,
    SType::Get,
    SType::Set,
    SType::Result,
    SType::Error,
];

impl Routed {
    /// Appends this stanza for another node: kind, type, the three ranges, then the
    /// stanza's bytes (with what was inserted: ranges lie in the start tag, before any
    /// insertion).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind as u8);
        out.push(self.stype as u8);
        for r in [&self.to, &self.from, &self.id] {
            out.extend_from_slice(&r.start.to_be_bytes());
            out.extend_from_slice(&r.end.to_be_bytes());
        }
        out.extend_from_slice(&self.uid.to_be_bytes());
        for p in self.parts() {
            out.extend_from_slice(&p);
        }
    }

    /// The stanza `encode` wrote (`None` if the bytes are not one: a range out of the
    /// payload or not on a character boundary).
    pub fn decode(b: Bytes) -> Option<Routed> {
        let kind = *KINDS.get(*b.first()? as usize)?;
        let stype = *STYPES.get(*b.get(1)? as usize)?;
        let mut r = [0u32; 6];
        for (i, v) in r.iter_mut().enumerate() {
            let at = 2 + i * 4;
            *v = u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?);
        }
        let uid = u64::from_be_bytes(b.get(26..34)?.try_into().ok()?);
        let payload = b.slice(34..);
        let text = std::str::from_utf8(&payload).ok()?;
        let ok = |s: u32, e: u32| {
            s <= e
                && (e as usize) <= text.len()
                && text.is_char_boundary(s as usize)
                && text.is_char_boundary(e as usize)
        };
        if !(ok(r[0], r[1]) && ok(r[2], r[3]) && ok(r[4], r[5])) {
            return None;
        }
        Some(Routed {
            kind,
            stype,
            payload,
            to: r[0]..r[1],
            from: r[2]..r[3],
            id: r[4]..r[5],
            insert: None,
            uid,
        })
    }
}
