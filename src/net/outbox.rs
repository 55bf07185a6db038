//! The bounded outbox of one connection and the task that writes it.
//!
//! Every delivery to a connection is a [`Frame`]: a framing header kept inline (a
//! WebSocket header, or none) and the payload as shared `Bytes` parts, so bytes given to
//! several connections are referenced, never copied. The writer drains the queue into one
//! `writev`. The queue is bounded in bytes: a push past the bound is refused, and the
//! layer above decides how the connection ends (`close`) and what becomes of the frames
//! it was never sent (`take_unsent`). Nothing here knows what the bytes mean: the layer
//! above keeps its own bookkeeping in each frame's `flags` and `meta`.

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

use super::tls::{MAX_RECORD_PLAINTEXT, TlsConn};
use super::websocket;

/// One write: a header, the payload parts, and what the layer above keeps with it.
#[derive(Clone)]
pub struct Frame<M> {
    hdr: [u8; 10],
    hdr_len: u8,
    /// Bits the layer above keeps with the frame (it stays small: a room's fan-out makes
    /// one frame per recipient).
    pub flags: u8,
    pub parts: SmallVec<[Bytes; 3]>,
    pub meta: M,
}

impl<M: Default> Frame<M> {
    /// A WebSocket text message whose payload is the concatenation of `parts`.
    pub fn text_parts(parts: SmallVec<[Bytes; 3]>) -> Frame<M> {
        let len = parts.iter().map(|p| p.len()).sum();
        let (hdr, hdr_len) = websocket::header(websocket::OP_TEXT, len);
        Frame {
            hdr,
            hdr_len,
            flags: 0,
            parts,
            meta: M::default(),
        }
    }

    pub fn text(payload: Bytes) -> Frame<M> {
        let mut parts = SmallVec::new();
        parts.push(payload);
        Frame::text_parts(parts)
    }

    /// Bytes that are already framed (HTTP responses, control frames).
    pub fn raw(bytes: Bytes) -> Frame<M> {
        let mut parts = SmallVec::new();
        parts.push(bytes);
        Frame {
            hdr: [0; 10],
            hdr_len: 0,
            flags: 0,
            parts,
            meta: M::default(),
        }
    }
}

impl<M> Frame<M> {
    pub fn len(&self) -> usize {
        self.hdr_len as usize + self.parts.iter().map(|p| p.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this frame is a text message (not raw or control bytes).
    pub fn is_text(&self) -> bool {
        self.hdr[0] & 0x0F == websocket::OP_TEXT
    }

    /// Appends the frame's bytes as they go on the wire (its header, then its parts).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hdr[..self.hdr_len as usize]);
        for p in &self.parts {
            out.extend_from_slice(p);
        }
    }
}

/// What a writer that is not a socket's takes from the queue (`Outbox::next`).
pub enum Taken<M> {
    Frames(VecDeque<Frame<M>>),
    /// Close requested: the final bytes (the queue was flushed before, unless `Abort`).
    Close(CloseKind, Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// Flush what is queued, then the final bytes, then close the socket.
    Flush,
    /// Write only the final bytes (the queue is left for the reader to take back).
    Abort,
    /// Flush what is queued, then give the socket back (to move it to another shard).
    Handoff,
}

struct CloseReq {
    kind: CloseKind,
    final_bytes: Vec<u8>,
}

struct Queue<M> {
    frames: VecDeque<Frame<M>>,
    bytes: usize,
    writer: Option<Waker>,
    reader: Option<Waker>,
    close: Option<CloseReq>,
    writer_done: bool,
    broken: bool,
}

/// What a connection shares with the rest of its shard: the queue others push into, the
/// close signal and the reader's wake-ups. Owned by `Rc`; only its shard ever touches it.
pub struct Outbox<M> {
    limit: usize,
    q: RefCell<Queue<M>>,
    /// When the connection's reader wants to be woken (auth timeout, idle ping, ping
    /// timeout); the shard's timer sweep fires it. No per-connection timer exists.
    deadline: Cell<Option<Instant>>,
    timer_due: Cell<bool>,
    /// Work for the connection's own task (`poke`).
    poked: Cell<bool>,
    /// The connection is a plain byte stream (RFC 6120 over TCP), not WebSocket: text
    /// messages are written without their frame header.
    raw_text: Cell<bool>,
    /// The writer has TLS bytes to send that are not frames (`kick`).
    kicked: Cell<bool>,
}

/// What woke a waiting reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Close,
    Timer,
    /// Someone left work for the connection's task (see `Outbox::poke`).
    Poke,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The connection is closing; the frame was not queued.
    Closed,
    /// The queue would go over its bound; the frame was not queued (the caller closes the
    /// connection, saying why).
    Overflow,
}

impl<M> Outbox<M> {
    pub fn new(limit: usize) -> Outbox<M> {
        Outbox {
            limit,
            q: RefCell::new(Queue {
                frames: VecDeque::new(),
                bytes: 0,
                writer: None,
                reader: None,
                close: None,
                writer_done: false,
                broken: false,
            }),
            deadline: Cell::new(None),
            timer_due: Cell::new(false),
            poked: Cell::new(false),
            raw_text: Cell::new(false),
            kicked: Cell::new(false),
        }
    }

    /// Wakes the writer to send what the connection's TLS state has for the peer
    /// (handshake flights, alerts), or the frames that waited for the handshake.
    pub fn kick(&self) {
        self.kicked.set(true);
        if let Some(w) = self.q.borrow_mut().writer.take() {
            w.wake();
        }
    }

    /// Writes text messages without a WebSocket header from now on (a TCP stream).
    pub fn set_raw_text(&self, raw: bool) {
        self.raw_text.set(raw);
    }

    /// A frame as this connection writes it: a text message loses its WebSocket header
    /// on a plain byte stream (it keeps its kind: `is_text`).
    /// A frame that lost its header on one connection gets it back on a WebSocket one (a
    /// session resumed, or a stanza rerouted, from TCP to WebSocket).
    fn for_wire(&self, mut f: Frame<M>) -> Frame<M> {
        if f.is_text() {
            if self.raw_text.get() {
                f.hdr_len = 0;
            } else if f.hdr_len == 0 {
                let len = f.parts.iter().map(|p| p.len()).sum();
                (f.hdr, f.hdr_len) = websocket::header(websocket::OP_TEXT, len);
            }
        }
        f
    }

    /// Queues a frame, within the bound.
    #[inline]
    pub fn push(&self, f: Frame<M>) -> Result<(), PushError> {
        let f = self.for_wire(f);
        let mut q = self.q.borrow_mut();
        if q.close.is_some() {
            return Err(PushError::Closed);
        }
        let len = f.len();
        if q.bytes + len > self.limit {
            return Err(PushError::Overflow);
        }
        q.bytes += len;
        q.frames.push_back(f);
        if let Some(w) = q.writer.take() {
            w.wake();
        }
        Ok(())
    }

    /// Queues a small control frame even past the bound (unless closing).
    pub fn push_control(&self, f: Frame<M>) {
        let f = self.for_wire(f);
        let mut q = self.q.borrow_mut();
        if q.close.is_some() {
            return;
        }
        q.bytes += f.len();
        q.frames.push_back(f);
        if let Some(w) = q.writer.take() {
            w.wake();
        }
    }

    /// The bound, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Wakes the connection's task to look at work left for it.
    pub fn poke(&self) {
        self.poked.set(true);
        if let Some(w) = self.q.borrow_mut().reader.take() {
            w.wake();
        }
    }

    /// Asks for the connection to close; the first request wins.
    pub fn close(&self, kind: CloseKind, final_bytes: Vec<u8>) {
        let mut q = self.q.borrow_mut();
        if q.close.is_some() {
            return;
        }
        q.close = Some(CloseReq { kind, final_bytes });
        if let Some(w) = q.writer.take() {
            w.wake();
        }
        if let Some(w) = q.reader.take() {
            w.wake();
        }
    }

    pub fn is_closing(&self) -> bool {
        self.q.borrow().close.is_some()
    }

    pub fn queued_bytes(&self) -> usize {
        self.q.borrow().bytes
    }

    pub fn set_deadline(&self, at: Instant) {
        self.deadline.set(Some(at));
    }

    /// Called by the shard's timer sweep: wakes the reader if its deadline has passed.
    pub fn check_deadline(&self, now: Instant) {
        if self.deadline.get().is_some_and(|d| d <= now) {
            self.deadline.set(None);
            self.timer_due.set(true);
            if let Some(w) = self.q.borrow_mut().reader.take() {
                w.wake();
            }
        }
    }

    /// Resolves when a close was requested, the writer failed, the deadline passed or
    /// someone poked.
    pub async fn event(&self) -> Event {
        std::future::poll_fn(|cx| {
            let mut q = self.q.borrow_mut();
            if q.close.is_some() || q.broken {
                Poll::Ready(Event::Close)
            } else if self.timer_due.replace(false) {
                Poll::Ready(Event::Timer)
            } else if self.poked.replace(false) {
                Poll::Ready(Event::Poke)
            } else {
                q.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Resolves when a close was requested (by anyone) or the writer failed.
    pub async fn closed(&self) {
        std::future::poll_fn(|cx| {
            let mut q = self.q.borrow_mut();
            if q.close.is_some() || q.broken {
                Poll::Ready(())
            } else {
                q.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Resolves when the writer has finished.
    pub async fn writer_finished(&self) {
        std::future::poll_fn(|cx| {
            let mut q = self.q.borrow_mut();
            if q.writer_done {
                Poll::Ready(())
            } else {
                q.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Puts back at the front of the queue the frames of a failed write past the first
    /// `written` bytes (a frame cut in the middle is useless to the client: it goes back too).
    fn requeue_unwritten(&self, frames: &mut VecDeque<Frame<M>>, written: usize) {
        let mut end = 0usize;
        let mut keep = 0usize;
        for f in frames.iter() {
            end += f.len();
            if end > written {
                break;
            }
            keep += 1;
        }
        let mut q = self.q.borrow_mut();
        for f in frames.drain(keep..).rev() {
            q.bytes += f.len();
            q.frames.push_front(f);
        }
    }

    /// For a writer that is not a socket's (a connection relayed to another node): the
    /// queued frames, or the close once nothing is left to flush. Call `writer_done` when
    /// it ends.
    pub async fn next(&self) -> Taken<M> {
        std::future::poll_fn(|cx| {
            let mut q = self.q.borrow_mut();
            let kind = q.close.as_ref().map(|c| c.kind);
            if !q.frames.is_empty() && kind != Some(CloseKind::Abort) {
                q.bytes = 0;
                Poll::Ready(Taken::Frames(std::mem::take(&mut q.frames)))
            } else if let Some(c) = q.close.as_mut() {
                Poll::Ready(Taken::Close(c.kind, std::mem::take(&mut c.final_bytes)))
            } else {
                q.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// The writer of `next` has ended (`broken`: it could not deliver).
    pub fn writer_done(&self, broken: bool) {
        self.finish(broken);
    }

    /// The frames that were never written, for the reader to deal with after a close.
    pub fn take_unsent(&self) -> VecDeque<Frame<M>> {
        let mut q = self.q.borrow_mut();
        q.bytes = 0;
        std::mem::take(&mut q.frames)
    }

    fn finish(&self, broken: bool) {
        let mut q = self.q.borrow_mut();
        q.writer_done = true;
        q.broken |= broken;
        if let Some(w) = q.reader.take() {
            w.wake();
        }
    }
}

/// Frames taken off the queue for one `writev`, with their iovecs. The iovecs point into
/// `frames` (inline headers) and the `Bytes` parts, whose addresses do not move while the
/// batch is owned by the kernel.
pub struct WriteBatch<M> {
    frames: VecDeque<Frame<M>>,
    iov: Vec<libc::iovec>,
    pos: usize,
}

/// The buffers of one TLS write: the plaintext of the record being built, the records, and
/// after each record (plaintext bytes so far, ciphertext bytes so far). Pooled per shard
/// thread, apart from the batches, so that a plain connection's writer stays small.
#[derive(Default)]
struct TlsBuffers {
    stage: Vec<u8>,
    out: Vec<u8>,
    marks: Vec<(usize, usize)>,
}

thread_local! {
    static TLS_BUFFERS: RefCell<Vec<TlsBuffers>> = const { RefCell::new(Vec::new()) };
}

impl TlsBuffers {
    fn take() -> TlsBuffers {
        TLS_BUFFERS
            .with(|p| p.borrow_mut().pop())
            .unwrap_or_default()
    }

    fn give(mut self) {
        self.stage.clear();
        self.out.clear();
        self.marks.clear();
        // At most a few records' worth is kept.
        if self.out.capacity() > 4 * MAX_RECORD_PLAINTEXT {
            self.out = Vec::new();
        }
        TLS_BUFFERS.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < 256 {
                p.push(self);
            }
        });
    }

    /// Of `written` ciphertext bytes, the plaintext bytes the peer can decrypt (whole
    /// records only).
    fn plain_written(&self, written: usize) -> usize {
        self.marks
            .iter()
            .take_while(|m| m.1 <= written)
            .last()
            .map_or(0, |m| m.0)
    }
}

const MAX_IOV: usize = 512;
const MAX_BATCH_BYTES: usize = 1 << 20;

impl<M> WriteBatch<M> {
    pub fn new() -> WriteBatch<M> {
        WriteBatch {
            frames: VecDeque::new(),
            iov: Vec::new(),
            pos: 0,
        }
    }

    /// Takes frames off the queue. When they all fit, the queue's storage itself moves into
    /// the batch (which goes back to the shard's pool), so the connection keeps none.
    fn fill(&mut self, q: &mut VecDeque<Frame<M>>) -> usize {
        let total_iov: usize = q.iter().map(|f| f.parts.len() + 1).sum();
        let total_bytes: usize = q.iter().map(Frame::len).sum();
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

    /// Encrypts the batch's bytes after `out`'s current content (bytes the TLS state had
    /// for the peer), in records of at most 16 KiB, noting where each record ends.
    fn encrypt(&self, tls: &mut TlsConn, b: &mut TlsBuffers) -> Result<(), rustls::Error> {
        let out = &mut b.out;
        b.stage.clear();
        b.marks.clear();
        let mut plain = 0usize;
        for v in &self.iov[self.pos..] {
            // SAFETY: the iovecs point into `self.frames`, alive and unmoved.
            let mut s = unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) };
            while !s.is_empty() {
                let k = s.len().min(MAX_RECORD_PLAINTEXT - b.stage.len());
                b.stage.extend_from_slice(&s[..k]);
                s = &s[k..];
                if b.stage.len() == MAX_RECORD_PLAINTEXT {
                    tls.encrypt(&b.stage, out)?;
                    plain += b.stage.len();
                    b.marks.push((plain, out.len()));
                    b.stage.clear();
                }
            }
        }
        if !b.stage.is_empty() {
            tls.encrypt(&b.stage, out)?;
            plain += b.stage.len();
            b.marks.push((plain, out.len()));
            b.stage.clear();
        }
        Ok(())
    }
}

impl<M> Default for WriteBatch<M> {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl<M: Unpin + 'static> IoVecBuf for WriteBatch<M> {
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

/// A connection's TLS state, shared by its reader (which decrypts) and its writer (which
/// encrypts); neither holds the borrow across an await.
pub type SharedTls = Rc<RefCell<TlsConn>>;

/// The write side of one connection (`conn` holds its outbox). Batches come from (and go
/// back to) the shard's pool so that an idle connection owns no write buffer. With `tls`,
/// each batch is encrypted into the batch's record buffer (the handshake's and the
/// alerts' bytes from the TLS state first), and frames wait for the handshake to finish.
pub async fn writer<M: Unpin + 'static, C: AsRef<Outbox<M>>>(
    conn: Rc<C>,
    mut wh: OwnedWriteHalf<TcpStream>,
    pool: Rc<RefCell<Vec<WriteBatch<M>>>>,
    tls: Option<SharedTls>,
) -> WriterExit {
    let ctl: &Outbox<M> = (*conn).as_ref();
    loop {
        let step = std::future::poll_fn(|cx| {
            let mut o = ctl.q.borrow_mut();
            let kind = o.close.as_ref().map(|c| c.kind);
            let ready = tls.as_ref().is_none_or(|t| t.borrow().ready());
            if (!o.frames.is_empty() && ready || ctl.kicked.get()) && kind != Some(CloseKind::Abort)
            {
                ctl.kicked.set(false);
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
                let ready = tls.as_ref().is_none_or(|t| t.borrow().ready());
                if ready {
                    let mut o = ctl.q.borrow_mut();
                    let b = batch.fill(&mut o.frames);
                    o.bytes -= b;
                }
                let failed = match &tls {
                    None => {
                        let mut failed = None;
                        let mut written = 0usize;
                        while !batch.done() {
                            let (r, b) = wh.writev(batch).await;
                            batch = b;
                            match r {
                                Ok(0) | Err(_) => {
                                    failed = Some(written);
                                    break;
                                }
                                Ok(n) => {
                                    written += n;
                                    batch.advance(n);
                                    crate::metrics::shard().bytes_out.add(n as u64);
                                }
                            }
                        }
                        failed
                    }
                    // Boxed: its state would otherwise enlarge every connection's writer
                    // task, TLS or not.
                    Some(t) => Box::pin(write_tls(&mut wh, &mut batch, t)).await,
                };
                if let Some(written) = failed {
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
                if failed.is_some() {
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
                Box::pin(last_words(ctl, wh, tls)).await;
                return WriterExit::Closed;
            }
        }
    }
}

/// Encrypts a batch (after what the TLS state has for the peer) and writes the records;
/// on failure, how many plaintext bytes reached the peer in whole records.
async fn write_tls<M: Unpin + 'static>(
    wh: &mut OwnedWriteHalf<TcpStream>,
    batch: &mut WriteBatch<M>,
    tls: &SharedTls,
) -> Option<usize> {
    let mut bufs = TlsBuffers::take();
    let encrypted = {
        let mut t = tls.borrow_mut();
        let pending = t.take_pending();
        if bufs.out.capacity() < pending.len() {
            bufs.out = pending;
        } else {
            bufs.out.extend_from_slice(&pending);
        }
        batch.encrypt(&mut t, &mut bufs)
    };
    if let Err(e) = encrypted {
        tracing::info!(error = %e, "TLS encryption failed");
        bufs.give();
        return Some(0);
    }
    let mut out = std::mem::take(&mut bufs.out);
    let mut pos = 0usize;
    let mut failed = None;
    while pos < out.len() {
        let (r, back) = wh.write(monoio::buf::IoBuf::slice(out, pos..)).await;
        out = back.into_inner();
        match r {
            Ok(0) | Err(_) => {
                failed = Some(bufs.plain_written(pos));
                break;
            }
            Ok(n) => {
                pos += n;
                crate::metrics::shard().bytes_out.add(n as u64);
            }
        }
    }
    bufs.out = out;
    bufs.give();
    failed
}

/// Writes a closing connection's final bytes (bounded in time; encrypted and followed by
/// close_notify on TLS) and shuts the socket.
async fn last_words<M>(ctl: &Outbox<M>, mut wh: OwnedWriteHalf<TcpStream>, tls: Option<SharedTls>) {
    let fin = ctl
        .q
        .borrow_mut()
        .close
        .as_mut()
        .map(|c| std::mem::take(&mut c.final_bytes))
        .unwrap_or_default();
    let fin = match &tls {
        None => fin,
        Some(t) => {
            let mut t = t.borrow_mut();
            let mut out = t.take_pending();
            if t.ready() {
                if !fin.is_empty() {
                    let _ = t.encrypt(&fin, &mut out);
                }
                t.close_notify(&mut out);
            }
            out
        }
    };
    if !fin.is_empty() {
        let _ =
            monoio::time::timeout(Duration::from_millis(FINAL_WRITE_MS), wh.write_all(fin)).await;
    }
    let _ = wh.shutdown().await;
    ctl.finish(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a byte stream a text message goes out without its WebSocket header, and gets it
    /// back when it moves to a WebSocket connection (a session resumed or a message
    /// rerouted from TCP to WebSocket).
    #[test]
    fn text_frames_on_a_byte_stream_and_back() {
        let tcp: Outbox<()> = Outbox::new(1 << 20);
        tcp.set_raw_text(true);
        tcp.push(Frame::text(Bytes::from_static(b"<message/>")))
            .unwrap();
        tcp.push(Frame::raw(Bytes::from_static(b"raw"))).unwrap();
        let moved = tcp.take_unsent();
        assert_eq!(moved[0].len(), 10, "no header on TCP");
        assert!(moved[0].is_text() && !moved[1].is_text());
        let ws: Outbox<()> = Outbox::new(1 << 20);
        for f in moved {
            ws.push(f).unwrap();
        }
        let back = ws.take_unsent();
        assert_eq!(back[0].len(), 12, "a two-byte text header again");
        assert_eq!(&back[0].hdr[..2], &[0x81, 10]);
        assert_eq!(back[1].len(), 3, "raw bytes stay raw");
    }
}
