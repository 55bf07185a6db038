//! The connection task: reads the socket, runs the HTTP upgrade and parses WebSocket frames
//! in place (RFC 7395), or frames an RFC 6120 TCP stream (`xml::framer`), feeds complete
//! elements to the XMPP stream, and keeps the timers (time to authenticate, idle ping, ping
//! timeout). Writes go through the connection's outbound queue and its writer task.
//!
//! An idle connection holds no read buffer: it waits for readiness, then borrows a buffer
//! from its shard's pool and gives it back as soon as no partial frame is left.
//! As soon as the user is known, the connection moves to the user's home shard: its socket
//! is taken out of this shard's event loop and handed over with any unread bytes.

mod tcp;
mod tls;

use super::{Listener, Shard, ShardMsg};
use crate::ftw::session::FtwConn;
use crate::ftw::transport::Proto;
use crate::net::outbox::{CloseKind, Event, SharedTls, WriterExit, writer};
use crate::net::shaper::Shaper;
use crate::net::tls::TlsConn;
use crate::net::websocket::{self, WsError};
use crate::xml::framer::{FrameLimits, Framer};
use crate::xmpp::errors::{StreamError, stream_error_bytes};
use crate::xmpp::router;
use crate::xmpp::sink::{Framing, OutFrame, Sink};
use crate::xmpp::stream::{Action, Stream};
use bytes::Bytes;
use monoio::io::{AsyncReadRent, OwnedReadHalf, Splitable};
use monoio::net::TcpStream;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A connection on its way to its user's home shard.
pub struct Handoff {
    fd: RawFd,
    /// A TCP c2s connection (else WebSocket).
    tcp: bool,
    /// Bytes read but not yet processed.
    leftover: Vec<u8>,
    stream: Stream,
    accepted: Instant,
    peer: SocketAddr,
    ftw: Option<Box<crate::ftw::session::FtwMove>>,
    /// The connection's TLS state, moving with it.
    tls: Option<Box<TlsConn>>,
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if self.fd >= 0 {
            unsafe { libc::close(self.fd) };
        }
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Http,
    Ws,
    /// RFC 6120 over TCP: the framer finds each element.
    Tcp,
}

struct Conn {
    shard: Rc<Shard>,
    ctl: Rc<Sink>,
    peer: SocketAddr,
    phase: Phase,
    stream: Stream,
    action: Action,
    /// A fragmented WebSocket message being reassembled.
    frag: Vec<u8>,
    frag_active: bool,
    accepted: Instant,
    last_activity: Instant,
    ping_sent: Option<Instant>,
    /// An XMPP-FTW JSON session instead of an XML one.
    ftw: Option<FtwConn>,
    /// The rate limit (`limits.max_stanzas_per_sec`, `stanza_burst`): every complete
    /// WebSocket message and control frame costs a token.
    shaper: Shaper,
    /// Out of tokens: read nothing until then.
    throttled: Option<Instant>,
    /// Frames were left unprocessed because the shard is overflowing.
    held: bool,
    /// The TCP stream's framer (boxed: WebSocket connections have none).
    framer: Option<Box<Framer>>,
    /// TLS (shared with the writer, which encrypts).
    tls: Option<SharedTls>,
    /// `<starttls/>` was answered with `<proceed/>`: the connection restarts with TLS.
    start_tls: bool,
    /// The user lives on another node: every message is relayed there (`relay.rs`).
    relay: Option<Box<super::relay::Landing>>,
}

enum Exit {
    Done,
    Handoff(usize, Vec<u8>),
}

/// Serves a freshly accepted connection: an HTTP upgrade to WebSocket, or an RFC 6120 TCP
/// stream; over TLS from the first byte for the HTTPS and direct TLS listeners.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr, kind: Listener) {
    tracing::debug!(shard = shard.id, %peer, ?kind, "accepted");
    let now = Instant::now();
    let tls = match kind.tls() {
        None => None,
        Some(k) => match shard.net.tls.as_ref().map(|t| t.accept(k)) {
            Some(Ok(c)) => Some(Box::new(c)),
            other => {
                tracing::warn!(shard = shard.id, %peer, error = ?other.map(|r| r.err()), "TLS unavailable");
                return;
            }
        },
    };
    let mut st = Stream::new(None, None);
    if kind == Listener::C2s && shard.net.tls.is_some() {
        st.starttls = Some(shard.config.c2s.require_tls);
    }
    let phase = if kind.is_c2s() {
        Phase::Tcp
    } else {
        Phase::Http
    };
    run(shard, stream, peer, phase, st, Vec::new(), now, None, tls).await
}

/// Takes over a connection handed to this shard (or restarting with STARTTLS).
pub fn adopt(shard: &Rc<Shard>, mut h: Handoff) {
    let fd = std::mem::replace(&mut h.fd, -1);
    let std_stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    match TcpStream::from_std(std_stream) {
        Ok(stream) => {
            let leftover = std::mem::take(&mut h.leftover);
            let st = std::mem::replace(&mut h.stream, Stream::new(None, None));
            let ftw = h.ftw.take().map(|m| FtwConn::from_move(*m));
            monoio::spawn(run(
                shard.clone(),
                stream,
                h.peer,
                if h.tcp { Phase::Tcp } else { Phase::Ws },
                st,
                leftover,
                h.accepted,
                ftw,
                h.tls.take(),
            ));
        }
        Err(e) => {
            tracing::warn!(shard = shard.id, error = %e, "could not adopt a handed-off connection")
        }
    }
}

/// After a connection's writer is gone: ends its session, re-routes what the client may
/// not have (with XEP-0198 every stanza it did not acknowledge, else what was never
/// written), forgets the connection.
pub(super) fn finish_session(
    shard: &Rc<Shard>,
    stream: &mut Stream,
    ctl: &Rc<Sink>,
    peer: SocketAddr,
) {
    stream.end(&**shard, ctl);
    let unsent = ctl.out.take_unsent();
    let lost = match ctl.sm_take() {
        Some((_, unacked)) => unacked,
        // Detached or taken over: the session that took the state holds all of it,
        // including what the writer gave back after a failed write.
        None if ctl.sm_handed_over() => Default::default(),
        None => unsent,
    };
    for f in lost {
        if f.is_text() {
            router::reroute_frame(&**shard, &f);
        }
    }
    shard.unregister_conn(ctl.id);
    tracing::info!(shard = shard.id, conn = ctl.id, %peer, "closed");
}

/// Asks a connection to end with `system-shutdown`.
pub fn shutdown_conn(ctl: &Sink) {
    ctl.close(
        CloseKind::Flush,
        stream_error_bytes(
            ctl.framing(),
            StreamError::SystemShutdown,
            Some("server shutting down"),
            None,
        ),
    );
}

#[allow(clippy::too_many_arguments)]
async fn run(
    shard: Rc<Shard>,
    stream: TcpStream,
    peer: SocketAddr,
    phase: Phase,
    st: Stream,
    buf: Vec<u8>,
    accepted: Instant,
    ftw: Option<FtwConn>,
    tls: Option<Box<TlsConn>>,
) {
    let ctl = shard.register_conn(shard.cfg().limits.outbound_queue_bytes_max);
    ctl.set_reply_overflow(router::overflow_words);
    let framer = (phase == Phase::Tcp).then(|| {
        ctl.set_framing(Framing::Tcp);
        let l = &shard.cfg().limits;
        let xml = crate::xml::stanza::Limits {
            max_depth: l.max_xml_depth,
            max_attrs: l.max_attrs_per_element,
        };
        Box::new(Framer::new(FrameLimits::new(l.max_stanza_bytes, xml)))
    });
    let (mut rh, wh) = stream.into_split();
    let tls: Option<SharedTls> = tls.map(|t| Rc::new(RefCell::new(*t)));
    let writer_task = monoio::spawn(writer(
        ctl.clone(),
        wh,
        shard.write_pool.clone(),
        tls.clone(),
    ));
    if tls.as_ref().is_some_and(|t| t.borrow().has_pending()) {
        ctl.out.kick();
    }
    let now = Instant::now();
    let mut conn = Conn {
        shard: shard.clone(),
        ctl: ctl.clone(),
        peer,
        phase,
        stream: st,
        action: Action::Continue,
        frag: Vec::new(),
        frag_active: false,
        accepted,
        last_activity: now,
        ping_sent: None,
        ftw,
        shaper: Shaper::new(shard.cfg().limits.stanza_burst, now),
        throttled: None,
        held: false,
        framer,
        tls,
        start_tls: false,
        relay: None,
    };
    if let Some(f) = &mut conn.ftw {
        // Moved here from the shard that accepted it: finish what the move interrupted.
        f.attach(&ctl, false, shard.cfg().limits.max_stanza_bytes);
        conn.action = f.resume_login(&mut conn.stream, &*shard, &ctl);
    }
    let transport = conn.count_open(accepted) as u8;
    let exit = if conn.action == Action::Close {
        Exit::Done
    } else {
        conn.read_loop(&mut rh, buf).await
    };
    // Cold path, boxed: its futures would otherwise enlarge every idle connection's task.
    Box::pin(conn.exit(exit, rh, writer_task)).await;
    crate::metrics::shard().connections[transport as usize].add(-1);
}

impl Conn {
    async fn exit(
        mut self,
        exit: Exit,
        rh: OwnedReadHalf<TcpStream>,
        writer_task: monoio::task::JoinHandle<WriterExit>,
    ) {
        let (shard, ctl) = (self.shard.clone(), self.ctl.clone());
        if self.ftw.is_some() {
            crate::metrics::shard().ftw_sessions.add(-1);
        }
        match exit {
            Exit::Handoff(dest, leftover) => {
                ctl.close(CloseKind::Handoff, Vec::new());
                let WriterExit::Handoff(wh) = writer_task.await else {
                    self.finish().await;
                    return;
                };
                shard.unregister_conn(ctl.id);
                let Some(tls) = self.take_tls() else {
                    tracing::warn!(conn = ctl.id, "TLS state still shared at handoff");
                    return;
                };
                match rh.reunite(wh) {
                    Ok(stream) => {
                        let fd = stream.into_raw_fd();
                        let stream = std::mem::replace(&mut self.stream, Stream::new(None, None));
                        ctl.set_render(None);
                        let mut h = Handoff {
                            fd,
                            tcp: self.phase == Phase::Tcp,
                            leftover,
                            stream,
                            accepted: self.accepted,
                            peer: self.peer,
                            ftw: self.ftw.take().map(|f| Box::new(f.into_move())),
                            tls,
                        };
                        if self.start_tls {
                            // RFC 6120 §5.4.3.3: TLS on the same socket, a new stream, and
                            // nothing kept from the one before.
                            match shard
                                .net
                                .tls
                                .as_ref()
                                .map(|t| t.accept(crate::net::tls::Kind::StartTls))
                            {
                                Some(Ok(t)) => h.tls = Some(Box::new(t)),
                                _ => return,
                            }
                            h.stream = Stream::new(None, None);
                            tracing::debug!(conn = ctl.id, "STARTTLS");
                            adopt(&shard, h);
                            return;
                        }
                        tracing::info!(
                            from = shard.id,
                            to = dest,
                            conn = ctl.id,
                            tls = h.tls.is_some(),
                            "handoff to home shard"
                        );
                        shard.rt.send(dest, ShardMsg::Handoff(h));
                    }
                    Err(_) => {
                        tracing::warn!(conn = ctl.id, "could not reunite socket halves for handoff")
                    }
                }
            }
            Exit::Done => {
                shard.landed.take_redirect(ctl.id);
                if let Some(l) = self.relay.take() {
                    super::relay::gone(&shard, &ctl, &l);
                }
                // Requests that waited for a JSON session's browser get their refusal.
                if let Some(f) = self.ftw.as_mut() {
                    f.abandon_held(&mut self.stream, &*shard, &ctl);
                }
                ctl.close(CloseKind::Flush, Vec::new());
                // A resumable session whose connection just dropped waits for <resume/>.
                self.stream.connection_ended(&*shard, &ctl);
                let mut writer_task = writer_task;
                let bound = Duration::from_millis(crate::net::outbox::FINAL_WRITE_MS + 500);
                if let Err(e) = monoio::time::timeout(bound, &mut writer_task).await {
                    // A client that does not read holds the writer in a write that cannot
                    // finish: shut the socket so it fails, and take back what it held.
                    let _ = e;
                    use std::os::fd::AsRawFd;
                    let fd = unsafe { &*rh.0.get() }.as_raw_fd();
                    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                    let _ = writer_task.await;
                }
                drop(rh);
                self.finish().await;
            }
        }
    }

    /// After the writer is gone: bounce what was never written, forget the connection.
    async fn finish(&mut self) {
        finish_session(&self.shard, &mut self.stream, &self.ctl, self.peer);
    }

    fn deadline(&self) -> Instant {
        let cfg = self.shard.cfg();
        if let Some(at) = self.handshake_deadline() {
            at
        } else if self.relay.is_some() {
            // The session is the home's; this node only checks the client is there.
            match self.ping_sent {
                Some(t) => t + Duration::from_millis(cfg.ping.client_ping_timeout_ms),
                None => self.last_activity + Duration::from_millis(cfg.ping.client_idle_ms),
            }
        } else if self.stream.jid.is_none() {
            self.accepted + Duration::from_millis(cfg.auth.auth_timeout_ms)
        } else if let Some(f) = self.ftw.as_ref().filter(|f| f.proto == Proto::SocketIo) {
            // Engine.IO: a ping every interval whatever the traffic, a pong within the timeout.
            let t = &f.tuning;
            if f.ping_outstanding {
                f.last_ping + Duration::from_millis(t.ping_timeout_ms)
            } else {
                f.last_ping + Duration::from_millis(t.ping_interval_ms)
            }
        } else if let Some(t) = self.ping_sent {
            t + Duration::from_millis(cfg.ping.client_ping_timeout_ms)
        } else {
            self.last_activity + Duration::from_millis(cfg.ping.client_idle_ms)
        }
    }

    /// When the reader must wake up without bytes: its deadline, or earlier when a request
    /// to a JSON session stops waiting for the browser's answer.
    fn wake_at(&self) -> Instant {
        let d = self.deadline();
        match self.ftw.as_ref().and_then(FtwConn::held_deadline) {
            Some(h) => d.min(h),
            None => d,
        }
    }

    /// Shaped: read nothing until a token is back (the kernel buffers fill and TCP pushes
    /// back on the client), but still honour a close, a deadline or work left for it.
    async fn wait_throttled(&mut self, until: Instant) -> Result<(), ()> {
        monoio::select! {
            _ = monoio::time::sleep_until(until.into()) => Ok(()),
            ev = self.ctl.out.event() => self.on_event(ev),
        }
    }

    /// What woke the reader besides bytes (a close, a deadline, work left for it); `Err`
    /// when the connection is to end.
    fn on_event(&mut self, ev: Event) -> Result<(), ()> {
        match ev {
            Event::Close => return Err(()),
            Event::Timer => self.on_timer(),
            Event::Poke => {
                if let Some(f) = self.ftw.as_mut() {
                    self.action = f.flush_replies(&mut self.stream, &*self.shard, &self.ctl);
                }
            }
        }
        if self.action == Action::Continue {
            Ok(())
        } else {
            Err(())
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if let Some(f) = self.ftw.as_mut() {
            self.action = f.expire_held(now, &mut self.stream, &*self.shard, &self.ctl);
            if self.action != Action::Continue {
                return;
            }
        }
        if now < self.deadline() {
            return;
        }
        if self.handshake_deadline().is_some() {
            tracing::info!(conn = self.ctl.id, peer = %self.peer, "TLS handshake timed out");
            self.ctl.close(CloseKind::Abort, Vec::new());
            self.action = Action::Close;
            return;
        }
        if self.relay.is_some() && self.phase == Phase::Tcp {
            // RFC 6120 §4.6.1: a whitespace keepalive (the XMPP pings are the home's).
            self.ctl.push_reply(OutFrame::raw(Bytes::from_static(b" ")));
            self.last_activity = now;
            return;
        }
        if self.relay.is_some() {
            if self.ping_sent.is_some() {
                tracing::info!(conn = self.ctl.id, "relayed connection: no answer to ping");
                self.ctl.close(CloseKind::Abort, Vec::new());
                self.action = Action::Close;
            } else {
                // A WebSocket ping: any answer (the pong) counts as activity.
                let ping = websocket::frame(websocket::OP_PING, b"");
                self.ctl.push_reply(OutFrame::raw(Bytes::from(ping)));
                self.ping_sent = Some(now);
            }
            return;
        }
        if self.stream.jid.is_none() {
            if self.phase != Phase::Http {
                if self.stream.authed.is_none() {
                    crate::xmpp::stream::auth_failed("timeout");
                }
                self.action = self.stream.fail(
                    &*self.shard,
                    &self.ctl,
                    StreamError::ConnectionTimeout,
                    Some("authentication took too long"),
                );
            } else {
                self.ctl.close(CloseKind::Abort, Vec::new());
                self.action = Action::Close;
            }
        } else {
            // Engine.IO counts its own pongs; XMPP and primus any bytes read.
            let waiting = match &self.ftw {
                Some(f) if f.proto == Proto::SocketIo => f.ping_outstanding,
                _ => self.ping_sent.is_some(),
            };
            if waiting {
                self.action = self.stream.fail(
                    &*self.shard,
                    &self.ctl,
                    StreamError::ConnectionTimeout,
                    Some("no answer to ping"),
                );
                return;
            }
            match self.ftw.as_mut() {
                Some(f) => f.ping(&self.ctl),
                None => self.stream.ping(&*self.shard, &self.ctl),
            }
            self.ping_sent = Some(now);
        }
    }

    async fn read_loop(&mut self, rh: &mut OwnedReadHalf<TcpStream>, mut buf: Vec<u8>) -> Exit {
        let max_frame = self.shard.cfg().limits.max_stanza_bytes + 14;
        // The TLS peer sent close_notify: what came before it is processed, then the end.
        let mut eof = false;
        loop {
            if !buf.is_empty() {
                let consumed = match self.phase {
                    Phase::Http => self.process_http(&buf),
                    Phase::Ws => self.process_ws(&mut buf),
                    Phase::Tcp => self.process_tcp(&buf),
                };
                buf.drain(..consumed);
                match self.action {
                    Action::Continue => {}
                    Action::Close => return Exit::Done,
                    Action::Handoff(dest) => return Exit::Handoff(dest, buf),
                    Action::StartTls => return Exit::Handoff(self.shard.id, buf),
                    Action::Relay if self.phase == Phase::Tcp => {
                        // SASL succeeded on a TCP stream for a user of another node: the
                        // restarted stream is relayed there.
                        self.relay_authenticated(true);
                        continue;
                    }
                    Action::Relay => {
                        // WebSocket logins become relays where they happen (`on_message`).
                        tracing::error!(conn = self.ctl.id, "a relay asked outside a login");
                        return Exit::Done;
                    }
                }
                if self.shard.overflowing() {
                    Box::pin(self.shard.wait_overflow()).await;
                }
                if std::mem::take(&mut self.held) && !buf.is_empty() {
                    continue; // frames left in the buffer come first
                }
                if self.phase == Phase::Http
                    && buf.len() >= self.shard.cfg().limits.max_http_request_bytes
                {
                    self.ctl
                        .push_reply(OutFrame::raw(Bytes::from(super::http::too_large())));
                    self.ctl.close(CloseKind::Flush, Vec::new());
                    return Exit::Done;
                }
            }
            if eof {
                return Exit::Done;
            }
            if let Some(until) = self.throttled.take() {
                // Cold path, boxed: a timer in this future would enlarge every idle
                // connection's task by its size.
                if Box::pin(self.wait_throttled(until)).await.is_err() {
                    return Exit::Done;
                }
                if self.throttled.is_none() && !buf.is_empty() {
                    continue;
                }
            }
            if buf.is_empty() && buf.capacity() > 0 {
                self.shard.rt.give_read_buf(std::mem::take(&mut buf));
            }
            // Wait for bytes, a close request or the deadline, holding no buffer and no
            // timer (the shard's sweep fires deadlines).
            self.ctl.out.set_deadline(self.wake_at());
            // SAFETY: `readable` only needs a shared reference to the stream; the halves
            // share it through an UnsafeCell exactly as monoio's own split does.
            let readable = unsafe { &*rh.0.get() }.readable(false);
            monoio::select! {
                r = readable => if r.is_err() { return Exit::Done; },
                ev = self.ctl.out.event() => {
                    if self.on_event(ev).is_err() {
                        return Exit::Done;
                    }
                    continue;
                },
            }
            // One read, into the plaintext buffer, or on TLS into the ciphertext buffer
            // (then decrypted into the plaintext one).
            let (mut into, limit) = match &self.tls {
                None => (std::mem::take(&mut buf), max_frame),
                Some(t) => (
                    std::mem::take(&mut t.borrow_mut().cipher),
                    crate::net::tls::MAX_RECORD_BYTES,
                ),
            };
            if into.capacity() == 0 {
                into = self.shard.rt.take_read_buf();
            }
            if into.capacity() - into.len() < 2048 {
                let want = (into.capacity() * 2).min(limit.max(into.len() + 4096));
                into.reserve(want.saturating_sub(into.len()).max(4096));
            }
            let len = into.len();
            let (r, s) = rh.read(monoio::buf::IoBufMut::slice_mut(into, len..)).await;
            into = s.into_inner();
            let got = match r {
                Ok(n) if n > 0 => {
                    crate::metrics::shard().bytes_in.add(n as u64);
                    true
                }
                _ => false,
            };
            let tls = self.tls.clone();
            match &tls {
                None => buf = into,
                Some(t) => t.borrow_mut().cipher = into,
            }
            if !got {
                return Exit::Done;
            }
            self.last_activity = Instant::now();
            self.ping_sent = None;
            if let Some(t) = &tls {
                match self.decrypt(t, &mut buf) {
                    Ok(closed) => eof = closed,
                    Err(()) => return Exit::Done,
                }
            }
        }
    }

    /// Out of rate-limit tokens until `until`: read nothing until then (counted).
    fn throttle(&mut self, now: Instant, until: Instant) {
        self.throttled = Some(until);
        let ns = until.saturating_duration_since(now).as_nanos() as u64;
        crate::metrics::shard().rate_limited_ns.add(ns);
    }

    /// Counts the connection open and records where it comes from; returns its transport.
    fn count_open(&self, accepted: Instant) -> usize {
        let transport = self.transport();
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(accepted.elapsed());
        self.ctl.set_origin(crate::xmpp::sink::Origin::new(
            self.peer,
            transport as u8,
            since.as_secs(),
        ));
        let m = crate::metrics::shard();
        m.connections[transport].add(1);
        if self.ftw.is_some() {
            m.ftw_sessions.add(1);
        }
        transport
    }

    /// The `metrics::TRANSPORTS` index of this connection.
    fn transport(&self) -> usize {
        use crate::net::tls::Kind;
        let tls = self.tls.as_ref().map(|t| t.borrow().kind());
        match (self.phase, tls) {
            (Phase::Tcp, None) => 2,
            (Phase::Tcp, Some(Kind::StartTls)) => 3,
            (Phase::Tcp, Some(_)) => 4,
            (_, None) => 0,
            (_, Some(_)) => 1,
        }
    }

    fn process_http(&mut self, buf: &[u8]) -> usize {
        use super::http::Outcome;
        match super::http::handle(&self.shard, buf) {
            Ok(None) => 0,
            Err(resp) | Ok(Some((Outcome::Respond(resp), _))) => {
                // One answer, then the close: it is queued whole even when it is larger
                // than the outbound bound (the demo page's Socket.IO client is 47 kB).
                self.ctl.out.push_control(OutFrame::raw(Bytes::from(resp)));
                self.ctl.close(CloseKind::Flush, Vec::new());
                self.action = Action::Close;
                buf.len()
            }
            Ok(Some((
                Outcome::Upgrade {
                    response,
                    user,
                    ftw,
                },
                n,
            ))) => {
                self.ctl.push_reply(OutFrame::raw(Bytes::from(response)));
                self.phase = Phase::Ws;
                if let Some(u) = &user {
                    let bare = format!("{u}@{}", self.shard.domain());
                    let home = self.shard.home(&bare);
                    let redirect = (ftw.is_none() && self.shard.config.cluster.redirect)
                        .then(|| {
                            self.shard
                                .core
                                .view
                                .borrow()
                                .as_ref()?
                                .node(home.node)?
                                .url
                                .clone()
                        })
                        .flatten();
                    if let (false, Some(uri)) = (self.shard.is_local(home), redirect) {
                        tracing::info!(shard = self.shard.id, conn = self.ctl.id, user = %bare, to = %uri, "upgraded with a valid cookie: sent to the user's node");
                        self.shard.landed.redirect(self.ctl.id, &uri);
                        return n;
                    }
                    if !self.shard.is_local(home) {
                        tracing::info!(shard = self.shard.id, conn = self.ctl.id, user = %bare, node = home.node, "upgraded with a valid cookie: relayed to the user's node");
                        self.relay = Some(Box::new(super::relay::open(
                            &self.shard,
                            &self.ctl,
                            home,
                            super::relay::Auth::Cookie(u),
                            ftw,
                            self.peer,
                        )));
                        return n;
                    }
                }
                if let Some(proto) = ftw {
                    let muc = Some(self.shard.muc.domain().to_string());
                    let f = FtwConn::new(&*self.shard, proto, &self.shard.config.ftw, muc);
                    f.attach(&self.ctl, true, self.shard.cfg().limits.max_stanza_bytes);
                    self.ftw = Some(f);
                    crate::metrics::shard().ftw_sessions.add(1);
                }
                if let Some(u) = user {
                    let bare = format!("{u}@{}", self.shard.domain());
                    tracing::info!(shard = self.shard.id, conn = self.ctl.id, user = %bare, "upgraded with a valid cookie");
                    let h = self.shard.home(&bare).shard();
                    self.stream.cookie_user = Some(u.into_boxed_str());
                    if h != self.shard.id {
                        self.action = Action::Handoff(h);
                    }
                } else {
                    tracing::info!(
                        shard = self.shard.id,
                        conn = self.ctl.id,
                        "upgraded without cookie"
                    );
                }
                n
            }
        }
    }

    fn ws_fail(&mut self, e: WsError) {
        if e.code == websocket::CLOSE_TOO_BIG {
            self.action = self.stream.fail(
                &*self.shard,
                &self.ctl,
                StreamError::PolicyViolation,
                Some("stanza larger than the limit"),
            );
        } else {
            tracing::info!(
                conn = self.ctl.id,
                code = e.code,
                reason = e.reason,
                "websocket protocol error"
            );
            self.ctl
                .close(CloseKind::Flush, websocket::close_frame(e.code, e.reason));
            self.action = Action::Close;
        }
    }

    /// Parses every complete frame in `buf`; returns how many bytes were used.
    fn process_ws(&mut self, buf: &mut [u8]) -> usize {
        let max = self.shard.cfg().limits.max_stanza_bytes;
        let mut pos = 0;
        let now = Instant::now();
        let (per_sec, burst) = {
            let l = &self.shard.cfg().limits;
            (l.max_stanzas_per_sec, l.stanza_burst)
        };
        while self.action == Action::Continue && pos < buf.len() {
            if let Err(until) = self.shaper.ready(now, per_sec, burst) {
                self.throttle(now, until);
                break;
            }
            // The shard holds too much for full mailboxes or a slow disk: stop here.
            if self.shard.overflowing() {
                self.held = true;
                break;
            }
            let f = match websocket::parse_frame(&mut buf[pos..], max) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    self.ws_fail(e);
                    return buf.len();
                }
            };
            // A message's non-final fragments are free (bounded by the stanza size).
            if f.fin || f.opcode >= websocket::OP_CLOSE {
                self.shaper.take();
            }
            let payload = pos + f.payload_start..pos + f.frame_end;
            pos += f.frame_end;
            match f.opcode {
                websocket::OP_TEXT | websocket::OP_CONT => {
                    if (f.opcode == websocket::OP_TEXT) == self.frag_active {
                        self.ws_fail(WsError {
                            code: websocket::CLOSE_PROTOCOL,
                            reason: "bad fragmentation",
                        });
                        break;
                    }
                    if f.fin && !self.frag_active {
                        self.on_message(&buf[payload]);
                    } else {
                        if self.frag.len() + payload.len() > max {
                            self.ws_fail(WsError {
                                code: websocket::CLOSE_TOO_BIG,
                                reason: "message too big",
                            });
                            break;
                        }
                        self.frag.extend_from_slice(&buf[payload]);
                        self.frag_active = !f.fin;
                        if f.fin {
                            let m = std::mem::take(&mut self.frag);
                            self.on_message(&m);
                        }
                    }
                }
                websocket::OP_BINARY => {
                    self.ws_fail(WsError {
                        code: websocket::CLOSE_UNSUPPORTED,
                        reason: "RFC 7395 uses text frames only",
                    });
                }
                websocket::OP_PING => {
                    let pong = websocket::frame(websocket::OP_PONG, &buf[payload]);
                    self.ctl.push_reply(OutFrame::raw(Bytes::from(pong)));
                }
                websocket::OP_PONG => {}
                _ => {
                    // Close: answer (RFC 6455 §5.5.1) and end.
                    let code = close_answer(&buf[payload]);
                    self.ctl
                        .close(CloseKind::Flush, websocket::close_frame(code, ""));
                    self.action = Action::Close;
                }
            }
        }
        pos
    }

    fn on_message(&mut self, bytes: &[u8]) {
        let Ok(text) = std::str::from_utf8(bytes) else {
            self.ws_fail(WsError {
                code: websocket::CLOSE_INVALID_DATA,
                reason: "text frame is not UTF-8",
            });
            return;
        };
        if text.bytes().all(|b| b.is_ascii_whitespace()) {
            return; // whitespace keepalive
        }
        tracing::trace!(conn = self.ctl.id, "recv {text}");
        if let Some(uri) = self.shard.landed.take_redirect(self.ctl.id) {
            // RFC 7395 §3.6.1: `<open/>`, then `<close see-other-uri/>`; the client
            // reconnects to its user's node.
            let id = format!("{:016x}", self.shard.random());
            let open = crate::xmpp::errors::opening(self.ctl.framing(), self.shard.domain(), &id);
            self.ctl.push_reply(OutFrame::text(Bytes::from(open)));
            let mut v = Vec::with_capacity(96 + uri.len());
            crate::xml::writer::Elem::new(&mut v, "close")
                .attr("xmlns", crate::xml::ns::FRAMING)
                .attr("see-other-uri", &uri)
                .end();
            self.ctl.push_reply(OutFrame::text(Bytes::from(v)));
            self.ctl.close(CloseKind::Flush, Vec::new());
            self.action = Action::Close;
            return;
        }
        if let Some(l) = self.relay.as_mut() {
            super::relay::forward(&self.shard, &self.ctl, l, bytes);
            return;
        }
        self.action = match self.ftw.as_mut() {
            Some(f) => f.on_text(&mut self.stream, &*self.shard, &self.ctl, text),
            None => self.stream.on_element(&*self.shard, &self.ctl, text),
        };
        if self.action == Action::Relay {
            if self.ftw.is_some() {
                self.relay_ftw_login(bytes);
            } else {
                // SASL over WebSocket named a user of another node: the session is opened
                // there, authenticated; the client's next <open/> goes there.
                self.relay_authenticated(false);
            }
        }
    }

    /// An XMPP-FTW login (the token in its JSON) named a user of another node: the session
    /// moves there with the login event itself, which the home checks and answers; from
    /// then on every message is relayed and the home runs the translator (and Engine.IO's
    /// pings), this node the socket.
    fn relay_ftw_login(&mut self, login: &[u8]) {
        let Some(f) = self.ftw.take() else { return };
        crate::metrics::shard().ftw_sessions.add(-1);
        self.ctl.set_render(None);
        let user = self.stream.authed.clone().unwrap_or_default();
        let home = self.shard.home(&format!("{user}@{}", self.shard.domain()));
        tracing::info!(conn = self.ctl.id, user = %user, "an XMPP-FTW login for a user of another node: relayed to the user's node");
        let mut l = super::relay::open(
            &self.shard,
            &self.ctl,
            home,
            super::relay::Auth::FtwLogin(&user),
            Some(f.proto),
            self.peer,
        );
        super::relay::forward(&self.shard, &self.ctl, &mut l, login);
        self.relay = Some(Box::new(l));
        self.action = Action::Continue;
    }

    /// SASL succeeded here for a user of another node: the session is opened there,
    /// authenticated, and the connection relayed from now on.
    fn relay_authenticated(&mut self, tcp: bool) {
        let user = self.stream.authed.clone().unwrap_or_default();
        let bare = format!("{user}@{}", self.shard.domain());
        let home = self.shard.home(&bare);
        let auth = if tcp {
            super::relay::Auth::SaslTcp(&user)
        } else {
            super::relay::Auth::Sasl(&user)
        };
        self.relay = Some(Box::new(super::relay::open(
            &self.shard,
            &self.ctl,
            home,
            auth,
            None,
            self.peer,
        )));
        self.action = Action::Continue;
    }
}

/// The code to answer a client's close frame with (RFC 6455 §5.5.1, §7.4): its own code
/// when that is one a peer may send, 1000 for an empty body, 1002 for a one-byte body or a
/// code no endpoint may send (1005, 1006, 1015, unassigned ranges), 1007 for a reason
/// that is not UTF-8.
fn close_answer(body: &[u8]) -> u16 {
    let [a, b, reason @ ..] = body else {
        return if body.is_empty() {
            websocket::CLOSE_NORMAL
        } else {
            websocket::CLOSE_PROTOCOL
        };
    };
    let code = u16::from_be_bytes([*a, *b]);
    let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !sendable {
        websocket::CLOSE_PROTOCOL
    } else if std::str::from_utf8(reason).is_err() {
        websocket::CLOSE_INVALID_DATA
    } else {
        code
    }
}

#[cfg(test)]
mod tests;
