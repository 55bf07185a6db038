//! The session sink: what a session's stanzas pass through on their way to its
//! connection's byte outbox (`net::outbox`).
//!
//! In order: XEP-0198 keeps every stanza it counts until the client acknowledges it (and
//! asks for acks); then, for a client that does not speak XML (an XMPP-FTW JSON session),
//! the renderer turns the XML into the frames that client understands; then the outbox
//! queues bytes. Stream management and rerouting therefore always hold the XML: a stanza a
//! dropped JSON session never got is routed again like any other.

use crate::net::outbox::{CloseKind, Frame, Outbox, PushError};
use bytes::Bytes;
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// A frame as the XMPP layer queues it: bytes plus what rerouting needs (see `FrameExtra`).
pub type OutFrame = Frame<Meta>;

/// What only some frames carry, behind one pointer.
pub type Meta = Option<Rc<FrameExtra>>;

const SM_REQUEST: &[u8] = b"<r xmlns='urn:xmpp:sm:3'/>";

/// `OutFrame::flags`: a copy whose original goes its own way (a carbon): never routed again.
const COPY_ONLY: u8 = 1;

/// See `Meta`.
pub enum FrameExtra {
    /// Shared by the copies of one stanza given to several connections (a message to a
    /// bare JID and its equal-priority resources): how many are still held and not lost.
    /// A copy that is lost (its connection closed or its detached session ended without
    /// an ack) is routed again only if it was the last one: a copy someone else got is
    /// never routed twice.
    Copies(Cell<u32>),
    /// For a frame rendered for a non-XML client: the XML frame it came from, which is
    /// what routing again needs.
    Original(OutFrame),
}

/// What the XMPP layer reads and marks on its frames.
pub trait StanzaFrame: Sized {
    /// One of several copies sharing `copies` (a `FrameExtra::Copies`).
    fn with_copies(self, copies: &Rc<FrameExtra>) -> Self;
    /// The count shared by the copies of this stanza, if it was given to several.
    fn copies(&self) -> Option<&Cell<u32>>;
    /// The XML frame a rendered frame came from.
    fn original(&self) -> Option<&OutFrame>;
    /// Marks a copy whose original goes its own way (never routed again).
    fn copy_only(self) -> Self;
    fn is_copy_only(&self) -> bool;
    /// Whether this frame is an XMPP stanza (what XEP-0198 counts), not negotiation,
    /// stream management or raw bytes.
    fn is_stanza(&self) -> bool;
}

impl StanzaFrame for OutFrame {
    fn with_copies(mut self, copies: &Rc<FrameExtra>) -> OutFrame {
        self.meta = Some(copies.clone());
        self
    }

    fn copies(&self) -> Option<&Cell<u32>> {
        match self.meta.as_deref() {
            Some(FrameExtra::Copies(c)) => Some(c),
            _ => None,
        }
    }

    fn original(&self) -> Option<&OutFrame> {
        match self.meta.as_deref() {
            Some(FrameExtra::Original(f)) => Some(f),
            _ => None,
        }
    }

    fn copy_only(mut self) -> OutFrame {
        self.flags |= COPY_ONLY;
        self
    }

    fn is_copy_only(&self) -> bool {
        self.flags & COPY_ONLY != 0
    }

    fn is_stanza(&self) -> bool {
        self.is_text()
            && self.parts.first().is_some_and(|p| {
                p.starts_with(b"<message") || p.starts_with(b"<presence") || p.starts_with(b"<iq")
            })
    }
}

/// The stanza kind of a text frame (`metrics::KINDS` index), from its first bytes.
#[inline]
fn stanza_kind(f: &OutFrame) -> Option<usize> {
    if !f.is_text() {
        return None;
    }
    match f.parts.first()?.get(..2)? {
        b"<m" => Some(0),
        b"<p" => Some(1),
        b"<i" => Some(2),
        _ => None,
    }
}

/// A session whose client does not speak XML (an XMPP-FTW JSON session): every XML text
/// frame queued on it is rendered into the frames the client understands, at the moment
/// it is queued, and the last words of a closing stream likewise.
pub trait Render {
    /// Appends to `out` what to queue instead of the XML text frame `f` (maybe nothing).
    fn render(&self, f: &OutFrame, out: &mut SmallVec<[OutFrame; 2]>);
    /// The bytes to write last instead of `final_bytes` (framed XML, or a close frame).
    fn last_words(&self, final_bytes: Vec<u8>) -> Vec<u8>;
}

/// XEP-0198 outbound state: stanzas sent and not yet acknowledged by the client.
struct SmOut {
    h: u32,
    unacked: VecDeque<OutFrame>,
    bytes: usize,
    /// An `<r/>` is out and its `<a/>` has not come back.
    asked: bool,
    /// Ask for an ack once this many stanzas are unacknowledged.
    ask_after: usize,
    /// The server ended this session on purpose (an admin kick): it is not kept for
    /// resumption when its connection ends.
    no_resume: bool,
}

/// One session's way out: its connection's outbox, and what sits in front of it.
pub struct Sink {
    pub id: u64,
    pub out: Outbox<Meta>,
    /// XEP-0198, once enabled (boxed: most sessions never enable it).
    sm: RefCell<Option<Box<SmOut>>>,
    /// XEP-0198: stanzas handled from the client (mirrors the stream's count, so a
    /// resumption can take over a connection that has not noticed its own drop yet).
    handled: Cell<u32>,
    /// The XEP-0198 state went to a detached or resumed session (`sm_take`): every stanza
    /// this connection still holds is that session's now, so closing must not route it.
    sm_handed_over: Cell<bool>,
    render: RefCell<Option<Rc<dyn Render>>>,
    rendering: Cell<bool>,
    /// The last words of a connection whose own replies (answers, pongs, acks) pass the
    /// outbound bound because it does not read.
    reply_overflow: Cell<fn(Framing) -> Vec<u8>>,
    framing: Cell<Framing>,
    /// Where the connection comes from, for the admin API's session list.
    origin: Cell<Origin>,
}

/// Where a connection comes from: its peer, its transport (`metrics::TRANSPORTS` index)
/// and since when (seconds since the Unix epoch). Packed in 24 bytes: every connection
/// carries one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin {
    /// IPv6, or IPv4-mapped.
    addr: [u8; 16],
    port: u16,
    pub transport: u8,
    known: bool,
    since_unix_s: u32,
}

impl Origin {
    pub fn new(peer: std::net::SocketAddr, transport: u8, since_unix_s: u64) -> Origin {
        let addr = match peer.ip() {
            std::net::IpAddr::V4(a) => a.to_ipv6_mapped(),
            std::net::IpAddr::V6(a) => a,
        };
        Origin {
            addr: addr.octets(),
            port: peer.port(),
            transport,
            known: true,
            since_unix_s: since_unix_s.min(u32::MAX as u64) as u32,
        }
    }

    pub fn peer(&self) -> Option<std::net::SocketAddr> {
        if !self.known {
            return None;
        }
        let a = std::net::Ipv6Addr::from(self.addr);
        let ip = match a.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(a),
        };
        Some(std::net::SocketAddr::new(ip, self.port))
    }

    pub fn since_unix_s(&self) -> u64 {
        self.since_unix_s as u64
    }
}

/// How a connection frames its XML: RFC 7395 (one element per WebSocket message,
/// `<open/>` and `<close/>`), or RFC 6120 over TCP (one XML document, `<stream:stream>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Framing {
    #[default]
    WebSocket,
    Tcp,
}

impl AsRef<Outbox<Meta>> for Sink {
    fn as_ref(&self) -> &Outbox<Meta> {
        &self.out
    }
}

impl Sink {
    pub fn new(id: u64, limit: usize) -> Sink {
        Sink {
            id,
            out: Outbox::new(limit),
            sm: RefCell::new(None),
            handled: Cell::new(0),
            sm_handed_over: Cell::new(false),
            render: RefCell::new(None),
            rendering: Cell::new(false),
            reply_overflow: Cell::new(|_| Vec::new()),
            origin: Cell::new(Origin::default()),
            framing: Cell::new(Framing::WebSocket),
        }
    }

    /// What to say when the connection's own replies pass the outbound bound.
    pub fn set_reply_overflow(&self, words: fn(Framing) -> Vec<u8>) {
        self.reply_overflow.set(words);
    }

    pub fn origin(&self) -> Origin {
        self.origin.get()
    }

    pub fn set_origin(&self, o: Origin) {
        self.origin.set(o);
    }

    pub fn framing(&self) -> Framing {
        self.framing.get()
    }

    /// The connection is a TCP stream (or a WebSocket one): text frames are written as
    /// it frames them.
    pub fn set_framing(&self, f: Framing) {
        self.framing.set(f);
        self.out.set_raw_text(f == Framing::Tcp);
    }

    /// Sets (or clears) the rendering of this session's XML frames.
    pub fn set_render(&self, r: Option<Rc<dyn Render>>) {
        self.rendering.set(r.is_some());
        *self.render.borrow_mut() = r;
    }

    /// Queues a stanza. On overflow the connection is closed as a slow consumer with
    /// `overflow_final` as its last words; a refused frame is dropped here and the caller
    /// bounces the stanza it carried.
    #[inline]
    pub fn push(
        &self,
        f: OutFrame,
        overflow_final: fn(Framing) -> Vec<u8>,
    ) -> Result<(), PushError> {
        match self.queue(f) {
            Ok(false) => Ok(()),
            // Queued, but the client never acknowledges: it is held for routing again.
            Ok(true) => {
                self.close(CloseKind::Abort, overflow_final(self.framing()));
                Ok(())
            }
            Err(e) => {
                if e == PushError::Overflow {
                    self.close(CloseKind::Abort, overflow_final(self.framing()));
                }
                Err(e)
            }
        }
    }

    /// Queues a frame of the connection's own negotiation/replies (answers, pongs, acks).
    /// They count against the same outbound bound: a client that keeps asking and never
    /// reads is closed as a slow consumer, like one that never reads what others send.
    pub fn push_reply(&self, f: OutFrame) {
        if let Err(PushError::Overflow) = self.queue(f) {
            tracing::info!(
                conn = self.id,
                "closing slow consumer: its own replies pass the outbound limit"
            );
            self.close(
                CloseKind::Abort,
                (self.reply_overflow.get())(self.framing()),
            );
        }
    }

    /// Stream management, then rendering, then the outbox. `Ok(true)`: queued, and the
    /// stanzas the client has not acknowledged now pass the outbound bound.
    #[inline]
    fn queue(&self, f: OutFrame) -> Result<bool, PushError> {
        let kind = stanza_kind(&f);
        let r = self.queue_frame(f);
        if let (Some(k), Ok(_)) = (kind, &r) {
            crate::metrics::shard().stanzas_out[k].inc();
        }
        if matches!(r, Err(PushError::Overflow) | Ok(true)) {
            crate::metrics::shard().slow_consumer_closes.inc();
        }
        r
    }

    #[inline]
    fn queue_frame(&self, f: OutFrame) -> Result<bool, PushError> {
        // The XML connections' path: one flag test.
        if self.rendering.get() && f.is_text() {
            let r = self.render.borrow().clone();
            if let Some(r) = r {
                let mut frames = SmallVec::new();
                r.render(&f, &mut frames);
                // The first rendered frame carries the XML: if the connection drops before
                // it is written, that is what is routed again.
                if let Some(first) = frames.first_mut() {
                    first.meta = Some(Rc::new(FrameExtra::Original(f)));
                }
                for t in frames {
                    self.out.push(t)?;
                }
                return Ok(false);
            }
        }
        if self.sm.borrow().is_none() || !f.is_stanza() {
            return self.out.push(f).map(|()| false);
        }
        let kept = f.clone();
        self.out.push(f)?;
        let (over, ask) = self.record(kept);
        if ask {
            self.ask();
        }
        Ok(over)
    }

    /// `<r/>`: a few bytes that may pass the bound (the ack they ask for frees far more).
    fn ask(&self) {
        self.out
            .push_control(OutFrame::text(Bytes::from_static(SM_REQUEST)));
    }

    /// Keeps a stanza until the client acknowledges it, and asks for an ack as soon as
    /// `ask_after` are unacknowledged, one request at a time: what a client that drops and
    /// comes back with a fresh login may get twice (read, never acknowledged) stays what
    /// was in flight during one round trip. True when the unacknowledged bytes pass the
    /// outbound bound (a client that never acks); and whether to ask for an ack after it.
    fn record(&self, f: OutFrame) -> (bool, bool) {
        let mut sm = self.sm.borrow_mut();
        let Some(sm) = sm.as_mut() else {
            return (false, false);
        };
        sm.h = sm.h.wrapping_add(1);
        sm.bytes += f.len();
        sm.unacked.push_back(f);
        let over = sm.bytes > self.out.limit();
        let ask = !sm.asked && sm.unacked.len() >= sm.ask_after;
        sm.asked |= ask;
        (over, ask)
    }

    pub fn set_handled(&self, h: u32) {
        self.handled.set(h);
    }

    pub fn handled(&self) -> u32 {
        self.handled.get()
    }

    /// Starts counting sent stanzas from `h` (XEP-0198 enable, or resume); asks for an
    /// ack once `ask_after` stanzas are unacknowledged.
    pub fn sm_enable(&self, h: u32, ask_after: usize) {
        *self.sm.borrow_mut() = Some(Box::new(SmOut {
            h,
            unacked: VecDeque::new(),
            bytes: 0,
            asked: false,
            ask_after: ask_after.max(1),
            no_resume: false,
        }));
    }

    /// The server ends this session on purpose (an admin kick): when its connection ends
    /// it is not kept for XEP-0198 resumption.
    pub fn sm_forbid_resume(&self) {
        if let Some(s) = self.sm.borrow_mut().as_mut() {
            s.no_resume = true;
        }
    }

    /// Whether `sm_forbid_resume` was called.
    pub fn sm_resume_forbidden(&self) -> bool {
        self.sm.borrow().as_ref().is_some_and(|s| s.no_resume)
    }

    /// The client has handled `h` stanzas: forget those. False when `h` is more than was sent.
    pub fn sm_ack(&self, h: u32) -> bool {
        let ask = {
            let mut sm = self.sm.borrow_mut();
            let Some(sm) = sm.as_mut() else { return true };
            let base = sm.h.wrapping_sub(sm.unacked.len() as u32);
            let n = h.wrapping_sub(base);
            if n as usize > sm.unacked.len() {
                return false;
            }
            for f in sm.unacked.drain(..n as usize) {
                sm.bytes -= f.len();
            }
            // The answer to our request: ask again if more went out meanwhile.
            sm.asked = sm.unacked.len() >= sm.ask_after;
            sm.asked
        };
        if ask {
            self.ask();
        }
        true
    }

    /// Stanzas sent so far (the server's `h` in XEP-0198 terms).
    pub fn sm_sent(&self) -> Option<u32> {
        self.sm.borrow().as_ref().map(|s| s.h)
    }

    /// The outbound SM state, for a session that detaches: (sent, unacknowledged).
    pub fn sm_take(&self) -> Option<(u32, VecDeque<OutFrame>)> {
        let taken = self.sm.borrow_mut().take().map(|s| (s.h, s.unacked));
        if taken.is_some() {
            self.sm_handed_over.set(true);
        }
        taken
    }

    /// Whether `sm_take` gave this connection's stanzas to another session (the queue and
    /// any frames a failed write hands back are among them).
    pub fn sm_handed_over(&self) -> bool {
        self.sm_handed_over.get()
    }

    /// Asks for the connection to close; the first request wins. A rendered session's
    /// last words are rendered too.
    pub fn close(&self, kind: CloseKind, final_bytes: Vec<u8>) {
        let r = if self.rendering.get() {
            self.render.borrow().clone()
        } else {
            None
        };
        let final_bytes = match r {
            Some(r) if !final_bytes.is_empty() && !self.out.is_closing() => {
                r.last_words(final_bytes)
            }
            _ => final_bytes,
        };
        self.out.close(kind, final_bytes);
    }

    pub fn is_closing(&self) -> bool {
        self.out.is_closing()
    }

    /// Wakes the connection's task to look at work left for it (a JSON session's
    /// automatic answers, rendered while some other task was delivering).
    pub fn poke(&self) {
        self.out.poke();
    }
}
