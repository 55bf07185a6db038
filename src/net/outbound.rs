//! The bounded outbound queue of one connection and the task that writes it.
//!
//! Every delivery to a connection is an `OutFrame`: a WebSocket header kept inline and the
//! payload as shared `Bytes` parts, so a stanza routed to several resources (or a room's
//! occupants) is referenced, never copied. The writer drains the queue into one `writev`.
//! The queue is bounded in bytes: a consumer that stays over the bound is closed, and what
//! it had not been sent is handed back to the reader, which bounces it to the senders.

use bytes::Bytes;
use monoio::buf::IoVecBuf;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, OwnedWriteHalf};
use monoio::net::TcpStream;
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::websocket;

#[derive(Clone)]
pub struct OutFrame {
    hdr: [u8; 10],
    hdr_len: u8,
    /// A copy whose original goes its own way (a carbon): never routed again.
    copy_only: bool,
    pub parts: SmallVec<[Bytes; 3]>,
    /// What only some frames carry, behind one pointer (the frame stays small: a room's
    /// fan-out makes one per recipient).
    extra: Option<Rc<FrameExtra>>,
}

/// See `OutFrame::extra`.
pub enum FrameExtra {
    /// Shared by the copies of one stanza given to several connections (a message to a
    /// bare JID and its equal-priority resources): how many are still held and not lost.
    /// A copy that is lost (its connection closed or its detached session ended without
    /// an ack) is routed again only if it was the last one: a copy someone else got is
    /// never routed twice.
    Copies(Cell<u32>),
    /// For a frame translated for a non-XML client: the XML frame it came from, which is
    /// what routing again needs.
    Original(OutFrame),
}

impl OutFrame {
    /// A text message whose payload is the concatenation of `parts`.
    pub fn text_parts(parts: SmallVec<[Bytes; 3]>) -> OutFrame {
        let len = parts.iter().map(|p| p.len()).sum();
        let (hdr, hdr_len) = websocket::header(websocket::OP_TEXT, len);
        OutFrame {
            hdr,
            hdr_len,
            copy_only: false,
            parts,
            extra: None,
        }
    }

    /// One of several copies sharing `copies` (a `FrameExtra::Copies`).
    pub fn with_copies(mut self, copies: &Rc<FrameExtra>) -> OutFrame {
        self.extra = Some(copies.clone());
        self
    }

    /// The count shared by the copies of this stanza, if it was given to several.
    pub fn copies(&self) -> Option<&Cell<u32>> {
        match self.extra.as_deref() {
            Some(FrameExtra::Copies(c)) => Some(c),
            _ => None,
        }
    }

    /// The XML frame a translated frame came from.
    pub fn original(&self) -> Option<&OutFrame> {
        match self.extra.as_deref() {
            Some(FrameExtra::Original(f)) => Some(f),
            _ => None,
        }
    }

    /// Marks a copy whose original goes its own way (never routed again).
    pub fn copy_only(mut self) -> OutFrame {
        self.copy_only = true;
        self
    }

    pub fn is_copy_only(&self) -> bool {
        self.copy_only
    }

    pub fn text(payload: Bytes) -> OutFrame {
        let mut parts = SmallVec::new();
        parts.push(payload);
        OutFrame::text_parts(parts)
    }

    /// Bytes that are already framed (HTTP responses, control frames).
    pub fn raw(bytes: Bytes) -> OutFrame {
        let mut parts = SmallVec::new();
        parts.push(bytes);
        OutFrame {
            hdr: [0; 10],
            hdr_len: 0,
            copy_only: false,
            parts,
            extra: None,
        }
    }

    pub fn len(&self) -> usize {
        self.hdr_len as usize + self.parts.iter().map(|p| p.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this frame is an XMPP stanza (what XEP-0198 counts), not negotiation,
    /// stream management or raw bytes.
    pub fn is_stanza(&self) -> bool {
        self.hdr_len > 0
            && self.parts.first().is_some_and(|p| {
                p.starts_with(b"<message") || p.starts_with(b"<presence") || p.starts_with(b"<iq")
            })
    }

    /// Whether this frame carries a stanza (not raw/control bytes).
    pub fn is_text(&self) -> bool {
        self.hdr_len > 0 && self.hdr[0] & 0x0F == websocket::OP_TEXT
    }
}

/// A connection whose client does not speak XML (an XMPP-FTW JSON session): every XML
/// text frame queued on it is rendered into the frames the client understands, at the
/// moment it is queued, and the last words of a closing stream likewise.
pub trait Translate {
    /// Appends to `out` what to queue instead of the XML text frame `f` (maybe nothing).
    fn translate(&self, f: &OutFrame, out: &mut SmallVec<[OutFrame; 2]>);
    /// The bytes to write last instead of `final_bytes` (framed XML, or a close frame).
    fn last_words(&self, final_bytes: Vec<u8>) -> Vec<u8>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// Flush what is queued, then the final bytes, then close the socket.
    Flush,
    /// Write only the final bytes (the queue is left for the reader to bounce).
    Abort,
    /// Flush what is queued, then give the socket back (to move it to another shard).
    Handoff,
}

struct CloseReq {
    kind: CloseKind,
    final_bytes: Vec<u8>,
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
}

#[derive(Default)]
struct Outbound {
    sm: Option<SmOut>,
    queue: VecDeque<OutFrame>,
    bytes: usize,
    writer: Option<Waker>,
    reader: Option<Waker>,
    close: Option<CloseReq>,
    writer_done: bool,
    broken: bool,
}

/// What a connection shares with the rest of its shard: the queue others push into, and the
/// close signal. Owned by `Rc`; only its shard ever touches it.
pub struct ConnCtl {
    pub id: u64,
    limit: usize,
    out: RefCell<Outbound>,
    /// When the connection's reader wants to be woken (auth timeout, idle ping, ping
    /// timeout); the shard's timer sweep fires it. No per-connection timer exists.
    deadline: Cell<Option<Instant>>,
    timer_due: Cell<bool>,
    /// XEP-0198: stanzas handled from the client (mirrors the stream's count, so a
    /// resumption can take over a connection that has not noticed its own drop yet).
    handled: Cell<u32>,
    /// The XEP-0198 state went to a detached or resumed session (`sm_take`): every stanza
    /// this connection still holds is that session's now, so closing must not route it.
    sm_handed_over: Cell<bool>,
    translate: RefCell<Option<std::rc::Rc<dyn Translate>>>,
    translating: Cell<bool>,
    /// Work for the connection's own task (`poke`).
    poked: Cell<bool>,
    /// The last words of a connection whose own replies (answers, pongs, acks) pass the
    /// outbound bound because it does not read.
    reply_overflow: Cell<fn() -> Vec<u8>>,
}

/// What woke a waiting reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Close,
    Timer,
    /// Someone left work for the connection's task (see `ConnCtl::poke`).
    Poke,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The connection is closing; the frame was not queued.
    Closed,
    /// The queue went over its bound; the connection is now closing as a slow consumer.
    Overflow,
}

impl ConnCtl {
    pub fn new(id: u64, limit: usize) -> ConnCtl {
        ConnCtl {
            id,
            limit,
            out: RefCell::new(Outbound::default()),
            deadline: Cell::new(None),
            timer_due: Cell::new(false),
            handled: Cell::new(0),
            sm_handed_over: Cell::new(false),
            translate: RefCell::new(None),
            translating: Cell::new(false),
            poked: Cell::new(false),
            reply_overflow: Cell::new(Vec::new),
        }
    }

    /// What to say when the connection's own replies pass the outbound bound.
    pub fn set_reply_overflow(&self, words: fn() -> Vec<u8>) {
        self.reply_overflow.set(words);
    }

    /// Queues a frame. On overflow the connection is closed as a slow consumer with
    /// `overflow_final` as its last words; a refused frame is dropped here and the caller
    /// bounces the stanza it carried.
    pub fn push(&self, f: OutFrame, overflow_final: fn() -> Vec<u8>) -> Result<(), PushError> {
        if let Some(mut frames) = self.translated(&f) {
            // The first translated frame carries the XML: if the connection drops before
            // it is written, that is what is routed again.
            if let Some(first) = frames.first_mut() {
                first.extra = Some(Rc::new(FrameExtra::Original(f)));
            }
            for t in frames {
                self.push_one(t, overflow_final)?;
            }
            return Ok(());
        }
        self.push_one(f, overflow_final)
    }

    /// Wakes the connection's task to look at work left for it (a JSON session's
    /// automatic answers, rendered while some other task was delivering).
    pub fn poke(&self) {
        self.poked.set(true);
        if let Some(w) = self.out.borrow_mut().reader.take() {
            w.wake();
        }
    }

    /// Sets (or clears) the translation of this connection's XML frames.
    pub fn set_translate(&self, t: Option<std::rc::Rc<dyn Translate>>) {
        self.translating.set(t.is_some());
        *self.translate.borrow_mut() = t;
    }

    /// With a translation: what `f` becomes (an XML text frame only).
    #[inline]
    fn translated(&self, f: &OutFrame) -> Option<SmallVec<[OutFrame; 2]>> {
        // The XML connections' path: one flag test.
        if !self.translating.get() || !f.is_text() {
            return None;
        }
        let t = self.translate.borrow().clone()?;
        let mut out = SmallVec::new();
        t.translate(f, &mut out);
        Some(out)
    }

    #[inline]
    fn push_one(&self, f: OutFrame, overflow_final: fn() -> Vec<u8>) -> Result<(), PushError> {
        let mut o = self.out.borrow_mut();
        if o.close.is_some() {
            return Err(PushError::Closed);
        }
        let len = f.len();
        if o.bytes + len > self.limit {
            drop(o);
            self.close(CloseKind::Abort, overflow_final());
            return Err(PushError::Overflow);
        }
        o.bytes += len;
        let (sm_over, ask) = self.record(&mut o, &f);
        o.queue.push_back(f);
        if ask {
            Self::ask(&mut o);
        }
        if let Some(w) = o.writer.take() {
            w.wake();
        }
        if sm_over {
            drop(o);
            self.close(CloseKind::Abort, overflow_final());
        }
        Ok(())
    }

    /// Keeps a stanza until the client acknowledges it, and asks for an ack as soon as
    /// `ask_after` are unacknowledged, one request at a time: what a client that drops and
    /// comes back with a fresh login may get twice (read, never acknowledged) stays what
    /// was in flight during one round trip. True when the unacknowledged bytes pass the
    /// outbound bound (a client that never acks); and whether to ask for an ack after it.
    fn record(&self, o: &mut Outbound, f: &OutFrame) -> (bool, bool) {
        let Some(sm) = o.sm.as_mut().filter(|_| f.is_stanza()) else {
            return (false, false);
        };
        sm.h = sm.h.wrapping_add(1);
        sm.bytes += f.len();
        sm.unacked.push_back(f.clone());
        let over = sm.bytes > self.limit;
        let ask = !sm.asked && sm.unacked.len() >= sm.ask_after;
        sm.asked |= ask;
        (over, ask)
    }

    fn ask(o: &mut Outbound) {
        let r = OutFrame::text(Bytes::from_static(b"<r xmlns='urn:xmpp:sm:3'/>"));
        o.bytes += r.len();
        o.queue.push_back(r);
        if let Some(w) = o.writer.take() {
            w.wake();
        }
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
        self.out.borrow_mut().sm = Some(SmOut {
            h,
            unacked: VecDeque::new(),
            bytes: 0,
            asked: false,
            ask_after: ask_after.max(1),
        });
    }

    /// The client has handled `h` stanzas: forget those. False when `h` is more than was sent.
    pub fn sm_ack(&self, h: u32) -> bool {
        let mut o = self.out.borrow_mut();
        let Some(sm) = o.sm.as_mut() else { return true };
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
        if sm.asked {
            Self::ask(&mut o);
        }
        true
    }

    /// Stanzas sent so far (the server's `h` in XEP-0198 terms).
    pub fn sm_sent(&self) -> Option<u32> {
        self.out.borrow().sm.as_ref().map(|s| s.h)
    }

    /// The outbound SM state, for a session that detaches: (sent, unacknowledged).
    pub fn sm_take(&self) -> Option<(u32, VecDeque<OutFrame>)> {
        let taken = self.out.borrow_mut().sm.take().map(|s| (s.h, s.unacked));
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

    /// Queues a frame of the connection's own negotiation/replies (answers, pongs, acks).
    /// They count against the same outbound bound: a client that keeps asking and never
    /// reads is closed as a slow consumer, like one that never reads what others send.
    pub fn push_reply(&self, f: OutFrame) {
        if let Some(frames) = self.translated(&f) {
            for t in frames {
                self.push_reply_one(t);
            }
            return;
        }
        self.push_reply_one(f)
    }

    fn push_reply_one(&self, f: OutFrame) {
        let mut o = self.out.borrow_mut();
        if o.close.is_some() {
            return;
        }
        if o.bytes + f.len() > self.limit {
            drop(o);
            tracing::info!(
                conn = self.id,
                "closing slow consumer: its own replies pass the outbound limit"
            );
            self.close(CloseKind::Abort, (self.reply_overflow.get())());
            return;
        }
        o.bytes += f.len();
        let (_, ask) = self.record(&mut o, &f);
        o.queue.push_back(f);
        if ask {
            Self::ask(&mut o);
        }
        if let Some(w) = o.writer.take() {
            w.wake();
        }
    }

    /// Asks for the connection to close; the first request wins.
    pub fn close(&self, kind: CloseKind, final_bytes: Vec<u8>) {
        let t = if self.translating.get() {
            self.translate.borrow().clone()
        } else {
            None
        };
        let final_bytes = match t {
            Some(t) if !final_bytes.is_empty() && !self.is_closing() => t.last_words(final_bytes),
            _ => final_bytes,
        };
        let mut o = self.out.borrow_mut();
        if o.close.is_some() {
            return;
        }
        o.close = Some(CloseReq { kind, final_bytes });
        if let Some(w) = o.writer.take() {
            w.wake();
        }
        if let Some(w) = o.reader.take() {
            w.wake();
        }
    }

    pub fn is_closing(&self) -> bool {
        self.out.borrow().close.is_some()
    }

    pub fn queued_bytes(&self) -> usize {
        self.out.borrow().bytes
    }

    pub fn set_deadline(&self, at: Instant) {
        self.deadline.set(Some(at));
    }

    /// Called by the shard's timer sweep: wakes the reader if its deadline has passed.
    pub fn check_deadline(&self, now: Instant) {
        if self.deadline.get().is_some_and(|d| d <= now) {
            self.deadline.set(None);
            self.timer_due.set(true);
            if let Some(w) = self.out.borrow_mut().reader.take() {
                w.wake();
            }
        }
    }

    /// Resolves when a close was requested, the writer failed, or the deadline passed.
    pub async fn event(&self) -> Event {
        std::future::poll_fn(|cx| {
            let mut o = self.out.borrow_mut();
            if o.close.is_some() || o.broken {
                Poll::Ready(Event::Close)
            } else if self.timer_due.replace(false) {
                Poll::Ready(Event::Timer)
            } else if self.poked.replace(false) {
                Poll::Ready(Event::Poke)
            } else {
                o.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Resolves when a close was requested (by anyone) or the writer failed.
    pub async fn closed(&self) {
        std::future::poll_fn(|cx| {
            let mut o = self.out.borrow_mut();
            if o.close.is_some() || o.broken {
                Poll::Ready(())
            } else {
                o.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Resolves when the writer has finished.
    pub async fn writer_finished(&self) {
        std::future::poll_fn(|cx| {
            let mut o = self.out.borrow_mut();
            if o.writer_done {
                Poll::Ready(())
            } else {
                o.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Puts back at the front of the queue the frames of a failed write past the first
    /// `written` bytes (a frame cut in the middle is useless to the client: it goes back too).
    fn requeue_unwritten(&self, frames: &mut VecDeque<OutFrame>, written: usize) {
        let mut end = 0usize;
        let mut keep = 0usize;
        for f in frames.iter() {
            end += f.len();
            if end > written {
                break;
            }
            keep += 1;
        }
        let mut o = self.out.borrow_mut();
        for f in frames.drain(keep..).rev() {
            o.bytes += f.len();
            o.queue.push_front(f);
        }
    }

    /// The frames that were never written, for the reader to bounce after a close.
    pub fn take_unsent(&self) -> VecDeque<OutFrame> {
        let mut o = self.out.borrow_mut();
        o.bytes = 0;
        std::mem::take(&mut o.queue)
    }

    fn finish(&self, broken: bool) {
        let mut o = self.out.borrow_mut();
        o.writer_done = true;
        o.broken |= broken;
        if let Some(w) = o.reader.take() {
            w.wake();
        }
    }
}

/// Frames taken off the queue for one `writev`, with their iovecs. The iovecs point into
/// `frames` (inline headers) and the `Bytes` parts, whose addresses do not move while the
/// batch is owned by the kernel.
pub struct WriteBatch {
    frames: VecDeque<OutFrame>,
    iov: Vec<libc::iovec>,
    pos: usize,
}

const MAX_IOV: usize = 512;
const MAX_BATCH_BYTES: usize = 1 << 20;

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch {
            frames: VecDeque::new(),
            iov: Vec::new(),
            pos: 0,
        }
    }

    /// Takes frames off the queue. When they all fit, the queue's storage itself moves into
    /// the batch (which goes back to the shard's pool), so the connection keeps none.
    fn fill(&mut self, q: &mut VecDeque<OutFrame>) -> usize {
        let total_iov: usize = q.iter().map(|f| f.parts.len() + 1).sum();
        let total_bytes: usize = q.iter().map(OutFrame::len).sum();
        let bytes = if total_iov <= MAX_IOV && total_bytes <= MAX_BATCH_BYTES {
            debug_assert!(self.frames.is_empty());
            std::mem::swap(&mut self.frames, q);
            total_bytes
        } else {
            let mut bytes = 0;
            let mut iovs = 0;
            while let Some(f) = q.front() {
                let n = f.parts.len() + 1;
                if !self.frames.is_empty() && (iovs + n > MAX_IOV || bytes >= MAX_BATCH_BYTES) {
                    break;
                }
                iovs += n;
                bytes += f.len();
                self.frames.push_back(q.pop_front().unwrap());
            }
            bytes
        };
        self.iov.clear();
        self.pos = 0;
        for f in &self.frames {
            if f.hdr_len > 0 {
                self.iov.push(libc::iovec {
                    iov_base: f.hdr.as_ptr() as *mut _,
                    iov_len: f.hdr_len as usize,
                });
            }
            for p in &f.parts {
                if !p.is_empty() {
                    self.iov.push(libc::iovec {
                        iov_base: p.as_ptr() as *mut _,
                        iov_len: p.len(),
                    });
                }
            }
        }
        bytes
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 && self.pos < self.iov.len() {
            let v = &mut self.iov[self.pos];
            if n >= v.iov_len {
                n -= v.iov_len;
                self.pos += 1;
            } else {
                v.iov_base = unsafe { (v.iov_base as *mut u8).add(n) } as *mut _;
                v.iov_len -= n;
                n = 0;
            }
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.iov.len()
    }

    fn clear(&mut self) {
        self.frames.clear();
        self.iov.clear();
        self.pos = 0;
    }
}

impl Default for WriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl IoVecBuf for WriteBatch {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        unsafe { self.iov.as_ptr().add(self.pos) }
    }
    fn read_iovec_len(&self) -> usize {
        self.iov.len() - self.pos
    }
}

pub enum WriterExit {
    Closed,
    Handoff(OwnedWriteHalf<TcpStream>),
}

enum Step {
    Write,
    Close(CloseKind),
}

/// How long the final words of a closing connection may take to write.
pub const FINAL_WRITE_MS: u64 = 2000;

/// The write side of one connection. Batches come from (and go back to) the shard's pool so
/// that an idle connection owns no write buffer.
pub async fn writer(
    ctl: std::rc::Rc<ConnCtl>,
    mut wh: OwnedWriteHalf<TcpStream>,
    pool: std::rc::Rc<RefCell<Vec<WriteBatch>>>,
) -> WriterExit {
    loop {
        let step = std::future::poll_fn(|cx| {
            let mut o = ctl.out.borrow_mut();
            let kind = o.close.as_ref().map(|c| c.kind);
            if !o.queue.is_empty() && kind != Some(CloseKind::Abort) {
                Poll::Ready(Step::Write)
            } else if let Some(k) = kind {
                Poll::Ready(Step::Close(k))
            } else {
                o.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        match step {
            Step::Write => {
                let mut batch = pool.borrow_mut().pop().unwrap_or_default();
                let bytes = {
                    let mut o = ctl.out.borrow_mut();
                    let b = batch.fill(&mut o.queue);
                    o.bytes -= b;
                    b
                };
                debug_assert!(bytes > 0 || batch.frames.iter().all(|f| f.is_empty()));
                let mut failed = false;
                let mut written = 0usize;
                while !batch.done() {
                    let (r, b) = wh.writev(batch).await;
                    batch = b;
                    match r {
                        Ok(0) | Err(_) => {
                            failed = true;
                            break;
                        }
                        Ok(n) => {
                            written += n;
                            batch.advance(n);
                        }
                    }
                }
                if failed {
                    // Frames not wholly written go back to the queue: the connection's
                    // cleanup re-routes them like any stanza it was never sent.
                    ctl.requeue_unwritten(&mut batch.frames, written);
                }
                batch.clear();
                let mut p = pool.borrow_mut();
                if p.len() < 256 {
                    p.push(batch);
                }
                drop(p);
                if failed {
                    ctl.finish(true);
                    return WriterExit::Closed;
                }
            }
            Step::Close(CloseKind::Handoff) => {
                ctl.finish(false);
                return WriterExit::Handoff(wh);
            }
            Step::Close(_) => {
                // Cold path, boxed (see conn.rs).
                Box::pin(last_words(&ctl, wh)).await;
                return WriterExit::Closed;
            }
        }
    }
}

/// Writes a closing connection's final bytes (bounded in time) and shuts the socket.
async fn last_words(ctl: &ConnCtl, mut wh: OwnedWriteHalf<TcpStream>) {
    let fin = ctl
        .out
        .borrow_mut()
        .close
        .as_mut()
        .map(|c| std::mem::take(&mut c.final_bytes));
    if let Some(fin) = fin.filter(|f| !f.is_empty()) {
        let _ =
            monoio::time::timeout(Duration::from_millis(FINAL_WRITE_MS), wh.write_all(fin)).await;
    }
    let _ = wh.shutdown().await;
    ctl.finish(false);
}
