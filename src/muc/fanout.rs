//! What a room sends: stanzas to one occupant, and broadcasts serialized once as a head and
//! a tail around the `to` attribute, sent as one batch per destination shard.

use crate::features::mam::MamHost;
use crate::xml::escape::escape_attr;
use crate::xmpp::router::{self, Kind, Routed, SType};
use bytes::Bytes;

/// What one room operation sends, flushed after the room table is released (a delivery
/// can then never re-enter the room).
/// Kept in order: XEP-0045 fixes the order a joiner sees things in (§7.2.3), and both
/// kinds travel the same per-shard mailbox, so sending in order delivers in order.
#[derive(Default)]
pub struct Out {
    ops: Vec<Op>,
    /// A stored change is among what this reports: send it all after the commit.
    durable: bool,
}

enum Op {
    One(Routed),
    /// An iq result, and the error to send instead if the change it reports was not stored.
    Result(Routed, Routed),
    Fan(Bytes, Bytes, Vec<(crate::runtime::Home, Bytes)>),
}

impl Out {
    pub fn one(&mut self, r: Routed) {
        self.ops.push(Op::One(r));
    }

    pub fn result(&mut self, ok: Routed, err: Routed) {
        self.ops.push(Op::Result(ok, err));
    }

    /// Everything here waits for the storage commit of the change just queued.
    pub fn after_commit(&mut self) {
        self.durable = true;
    }

    /// A broadcast: `head + to + tail` to each `(home shard, escaped full JID)`.
    pub fn fan(&mut self, head: Bytes, tail: Bytes, tos: Vec<(crate::runtime::Home, Bytes)>) {
        if !tos.is_empty() {
            self.ops.push(Op::Fan(head, tail, tos));
        }
    }

    pub fn flush<H: MamHost>(self, shard: &H) {
        if self.durable && shard.shared.storage.is_some() {
            crate::xmpp::commit::after_commit(
                shard,
                Box::new(move |shard: &H, stored: bool| self.send(shard, stored)),
            );
        } else {
            self.send(shard, true);
        }
    }

    fn send<H: MamHost>(self, shard: &H, stored: bool) {
        for op in self.ops {
            match op {
                Op::One(r) => router::route(shard, r),
                Op::Result(ok, err) => router::route(shard, if stored { ok } else { err }),
                Op::Fan(head, tail, tos) => router::fanout(shard, head, tail, &tos),
            }
        }
    }
}

/// A stanza to one recipient (see `router::build`).
pub fn build(kind: Kind, stype: SType, from: &str, to: &str, attrs: &str, inner: &str) -> Routed {
    router::build(kind, stype, from, to, attrs, inner.as_bytes())
}

fn close(v: &mut Vec<u8>, name: &str, inner: &str) {
    if inner.is_empty() {
        v.extend_from_slice(b"/>");
    } else {
        v.push(b'>');
        v.extend_from_slice(inner.as_bytes());
        v.extend_from_slice(b"</");
        v.extend_from_slice(name.as_bytes());
        v.push(b'>');
    }
}

/// The head and tail of a broadcast stanza (the `to` goes between them).
pub fn head_tail(kind: Kind, from: &str, attrs: &str, inner: &str) -> (Bytes, Bytes) {
    let name = kind.name();
    let mut h = Vec::with_capacity(48 + from.len() + attrs.len());
    h.push(b'<');
    h.extend_from_slice(name.as_bytes());
    h.extend_from_slice(b" xmlns='jabber:client' from='");
    escape_attr(from, &mut h);
    h.push(b'\'');
    h.extend_from_slice(attrs.as_bytes());
    h.extend_from_slice(b" to='");
    let mut t = Vec::with_capacity(16 + inner.len());
    t.push(b'\'');
    close(&mut t, name, inner);
    (Bytes::from(h), Bytes::from(t))
}

/// An escaped full JID as the `to` part of fan-outs, made once per joined session.
pub fn to_bytes(jid: &str) -> Bytes {
    let mut v = Vec::with_capacity(jid.len());
    escape_attr(jid, &mut v);
    Bytes::from(v)
}
