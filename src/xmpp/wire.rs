//! The core's messages on the wire between nodes (issue 14): `Msg` as bytes for the bus,
//! and back. A frame that does not decode is dropped by the receiver (counted); nothing
//! in it can panic a shard.

use super::core::Msg;
use super::router::{Fanout, Routed};
use crate::runtime::Home;
use bytes::Bytes;

pub const ROUTE: u8 = 1;
pub const FANOUT: u8 = 2;
pub const BARRIER: u8 = 3;
pub const BARRIER_DONE: u8 = 4;

/// `m` as one bus frame; `None` for what never crosses (a local barrier).
pub fn encode(m: &Msg) -> Option<Bytes> {
    let mut out = Vec::new();
    match m {
        Msg::Route(r) => {
            out.reserve(32 + r.payload.len());
            out.push(ROUTE);
            r.encode(&mut out);
        }
        Msg::Fanout(f) => {
            out.push(FANOUT);
            for p in [&f.head, &f.tail] {
                out.extend_from_slice(&(p.len() as u32).to_be_bytes());
                out.extend_from_slice(p);
            }
            out.extend_from_slice(&(f.tos.len() as u32).to_be_bytes());
            for t in &f.tos {
                out.extend_from_slice(&(t.len() as u32).to_be_bytes());
                out.extend_from_slice(t);
            }
        }
        Msg::RemoteBarrier { token, reply } => {
            out.push(BARRIER);
            out.extend_from_slice(&token.to_be_bytes());
            out.extend_from_slice(&reply.node.to_be_bytes());
            out.extend_from_slice(&reply.shard.to_be_bytes());
        }
        Msg::BarrierDone { token, ok } => {
            out.push(BARRIER_DONE);
            out.extend_from_slice(&token.to_be_bytes());
            out.push(*ok as u8);
        }
        Msg::Barrier { .. } => return None,
    }
    Some(Bytes::from(out))
}

struct Reader {
    b: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Option<Bytes> {
        let end = self.at.checked_add(n)?;
        if end > self.b.len() {
            return None;
        }
        let s = self.b.slice(self.at..end);
        self.at = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?[..].try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?[..].try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?[..].try_into().ok()?))
    }
    fn chunk(&mut self) -> Option<Bytes> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// The message a frame holds (`None`: not one of the core's, or malformed); a fan-out's
/// recipient count is checked against the bytes left.
pub fn decode(b: Bytes) -> Option<Msg> {
    let tag = *b.first()?;
    let mut r = Reader { b, at: 1 };
    Some(match tag {
        ROUTE => Msg::Route(Routed::decode(r.b.slice(1..))?),
        FANOUT => {
            let head = r.chunk()?;
            let tail = r.chunk()?;
            let n = r.u32()? as usize;
            // Each recipient takes at least 4 bytes: a count past what is left is a lie.
            if n > (r.b.len() - r.at) / 4 {
                return None;
            }
            let mut tos = Vec::with_capacity(n);
            for _ in 0..n {
                let t = r.chunk()?;
                std::str::from_utf8(&t).ok()?;
                tos.push(t);
            }
            Msg::Fanout(Fanout { head, tail, tos })
        }
        BARRIER => Msg::RemoteBarrier {
            token: r.u64()?,
            reply: Home {
                node: r.u16()?,
                shard: r.u16()?,
            },
        },
        BARRIER_DONE => Msg::BarrierDone {
            token: r.u64()?,
            ok: r.u8()? != 0,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::router::{Kind, SType};

    #[test]
    fn every_message_round_trips_and_every_cut_is_refused() {
        let payload =
            b"<message to='b@x' from='a@x/r' type='chat'><body>h\xc3\xa9</body></message>";
        let r = Routed::from_parts(Kind::Message, SType::Chat, payload.to_vec(), 13..16, 24..29);
        let msgs = [
            Msg::Route(r),
            Msg::Fanout(Fanout {
                head: Bytes::from_static(b"<message to='"),
                tail: Bytes::from_static(b"'/>"),
                tos: vec![Bytes::from_static(b"a@x/1"), Bytes::from_static(b"b@x/2")],
            }),
            Msg::RemoteBarrier {
                token: 7,
                reply: Home { node: 3, shard: 1 },
            },
            Msg::BarrierDone { token: 9, ok: true },
        ];
        for m in &msgs {
            let b = encode(m).unwrap();
            let back = decode(b.clone()).expect("decodes");
            assert_eq!(encode(&back).unwrap(), b);
            if let (Msg::Route(a), Msg::Route(c)) = (m, &back) {
                assert_eq!(a.to(), c.to());
                assert_eq!(a.from(), c.from());
            }
            // Every strict prefix but those that happen to be whole is refused, none panics.
            for cut in 0..b.len() {
                let _ = decode(b.slice(..cut));
            }
        }
        assert!(
            encode(&Msg::Barrier {
                token: 1,
                origin: 0
            })
            .is_none()
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode(Bytes::from(b));
        }
    }
}
