//! Connections relayed between nodes (issue 14, proxy mode). A client may land on any
//! node L; when its user lives on another node H, L keeps the socket, TLS and the
//! WebSocket framing and relays each complete WebSocket text message to H, where a
//! connection without a socket runs the XMPP (or XMPP-FTW) session exactly as a local
//! one, with its XEP-0198 state; what H writes comes back to L as wire bytes, which L
//! writes. So everything a user has (sessions, roster, carbons, resumption) stays at its
//! home, and a resumption works wherever the client reconnects while H lives.
//!
//! Frames carry sequence numbers: the bus is at most once, and a gap (a nats-server
//! restart) ends the relayed connection on both sides rather than leave a hole in a
//! stream; with XEP-0198 the client resumes, and nothing acknowledged is lost (acks follow
//! commits at H).

use super::{Shard, conn};
use crate::cluster::bus::Incoming;
use crate::ftw::session::FtwConn;
use crate::ftw::transport::Proto;
use crate::net::outbox::{CloseKind, Event, Taken};
use crate::xmpp::router;
use crate::xmpp::sink::{OutFrame, Sink};
use crate::xmpp::stream::{Action, Stream};
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The first tag of relay frames (the core's messages use the tags below it).
pub const FIRST_TAG: u8 = 10;
/// L → H: a connection for a user of H.
const OPEN: u8 = 10;
/// L → H: one WebSocket text message of the client.
const IN: u8 = 11;
/// H → L: bytes to write to the client.
const OUT: u8 = 12;
/// L → H: the client's connection ended.
const GONE: u8 = 13;
/// H → L: close the client's connection after these final bytes.
const CLOSE: u8 = 14;

/// The landing side of a relayed connection (kept by `conn.rs`).
pub struct Landing {
    pub node: u16,
    pub home_shard: u16,
    /// Next sequence number of what goes to H.
    seq: u32,
}

/// Per relayed connection that landed here: the next sequence number of what its home
/// sends (`OUT`) and the home's node.
#[derive(Default)]
pub struct Landed {
    next: RefCell<ahash::HashMap<u64, (u32, u16)>>,
    /// Relayed connections at their home, by (landing node, landing connection).
    homes: RefCell<ahash::HashMap<(u16, u64), Rc<AtHome>>>,
    /// Connections to answer with `see-other-uri` at their `<open/>` (`cluster.redirect`),
    /// kept here rather than in every connection's state.
    redirects: RefCell<ahash::HashMap<u64, Box<str>>>,
}

impl Landed {
    pub fn redirect(&self, conn: u64, uri: &str) {
        self.redirects.borrow_mut().insert(conn, uri.into());
    }

    /// The redirect of `conn`, if any (taken).
    pub fn take_redirect(&self, conn: u64) -> Option<Box<str>> {
        let mut r = self.redirects.borrow_mut();
        if r.is_empty() {
            return None;
        }
        r.remove(&conn)
    }
}

/// The home side of a relayed connection.
pub struct AtHome {
    ctl: Rc<Sink>,
    queue: RefCell<VecDeque<Bytes>>,
    next_in: Cell<u32>,
    /// The landing side is gone (nothing more to send it).
    gone: Cell<bool>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// How the landing node knows the user.
pub enum Auth<'a> {
    /// The `auth_token` cookie of the upgrade: the home's stream starts fresh, as a local
    /// cookie connection's does.
    Cookie(&'a str),
    /// SASL succeeded here: the home's stream starts authenticated (the client restarts
    /// the stream next).
    Sasl(&'a str),
    /// SASL succeeded on an RFC 6120 TCP stream (after STARTTLS, if any): the same, and
    /// the home writes without WebSocket framing.
    SaslTcp(&'a str),
    /// An XMPP-FTW login with the token in its JSON (`xmpp.login`) named a user of the
    /// home: the Engine.IO/Socket.IO handshake happened here, so the home's translator
    /// starts connected, and the login event itself is relayed next (the home checks the
    /// token again and answers it).
    FtwLogin(&'a str),
}

/// L: the user of this upgraded connection lives on another node: open its session there.
pub fn open(
    shard: &Shard,
    ctl: &Sink,
    home: crate::runtime::Home,
    auth: Auth<'_>,
    ftw: Option<Proto>,
    peer: std::net::SocketAddr,
) -> Landing {
    let (node, home_shard) = (home.node, home.shard);
    let (authed, user) = match auth {
        Auth::Cookie(u) => (0u8, u),
        Auth::Sasl(u) => (1u8, u),
        Auth::SaslTcp(u) => (2u8, u),
        Auth::FtwLogin(u) => (3u8, u),
    };
    let mut b = vec![OPEN];
    b.extend_from_slice(&shard.node_num().to_be_bytes());
    b.extend_from_slice(&(shard.id as u16).to_be_bytes());
    b.extend_from_slice(&ctl.id.to_be_bytes());
    b.push(match ftw {
        None => 0,
        Some(Proto::SocketIo) => 1,
        Some(Proto::Primus) => 2,
    });
    b.push(authed);
    put_str(&mut b, user);
    put_str(&mut b, &peer.to_string());
    shard.landed.next.borrow_mut().insert(ctl.id, (0, node));
    super::cluster::send_frame(shard, node, home_shard, Bytes::from(b));
    crate::metrics::shard().relayed.add(1);
    Landing {
        node,
        home_shard,
        seq: 0,
    }
}

/// L: one text message of the client (a WebSocket message, or an element of a TCP
/// stream), for H.
pub fn forward(shard: &Shard, ctl: &Sink, l: &mut Landing, text: &[u8]) {
    forward_kind(shard, ctl, l, TEXT, text)
}

/// L: the client ended its TCP stream (`</stream:stream>` or a stream error).
pub fn forward_end(shard: &Shard, ctl: &Sink, l: &mut Landing) {
    forward_kind(shard, ctl, l, END, b"")
}

/// What an `IN` frame carries.
const TEXT: u8 = 0;
const END: u8 = 1;

fn forward_kind(shard: &Shard, ctl: &Sink, l: &mut Landing, kind: u8, text: &[u8]) {
    let mut b = Vec::with_capacity(16 + text.len());
    b.push(IN);
    b.extend_from_slice(&shard.node_num().to_be_bytes());
    b.extend_from_slice(&ctl.id.to_be_bytes());
    b.extend_from_slice(&l.seq.to_be_bytes());
    b.push(kind);
    b.extend_from_slice(text);
    l.seq = l.seq.wrapping_add(1);
    super::cluster::send_frame(shard, l.node, l.home_shard, Bytes::from(b));
}

/// L: the client's connection ended.
pub fn gone(shard: &Shard, ctl: &Sink, l: &Landing) {
    shard.landed.next.borrow_mut().remove(&ctl.id);
    let mut b = vec![GONE];
    b.extend_from_slice(&shard.node_num().to_be_bytes());
    b.extend_from_slice(&ctl.id.to_be_bytes());
    super::cluster::send_frame(shard, l.node, l.home_shard, Bytes::from(b));
    crate::metrics::shard().relayed.add(-1);
}

/// L: the relayed connections whose home left the view end (their clients reconnect and
/// land on the new home, or are relayed to it).
pub fn homes_left(shard: &Shard) {
    let gone: Vec<u64> = {
        let view = shard.core.view.borrow();
        let Some(v) = view.as_ref() else { return };
        shard
            .landed
            .next
            .borrow()
            .iter()
            .filter(|(_, (_, node))| v.node(*node).is_none())
            .map(|(c, _)| *c)
            .collect()
    };
    for id in gone {
        if let Some(ctl) = shard.conn(id) {
            tracing::info!(
                conn = id,
                "the relayed connection's home left the cluster: closing"
            );
            conn::shutdown_conn(&ctl);
        }
    }
}

/// A relay frame from another node.
pub fn on_frame(shard: &Rc<Shard>, inc: Incoming) {
    if decode(shard, &inc).is_none() {
        tracing::warn!(from = %inc.from, "malformed relay frame: dropped");
    }
}

fn decode(shard: &Rc<Shard>, inc: &Incoming) -> Option<()> {
    let body = &inc.body;
    let mut r = Rd { b: body, at: 1 };
    match body[0] {
        OPEN => {
            let node = r.u16()?;
            let l_shard = r.u16()?;
            let l_conn = r.u64()?;
            let ftw = match r.u8()? {
                0 => None,
                1 => Some(Proto::SocketIo),
                2 => Some(Proto::Primus),
                _ => return None,
            };
            let auth = r.u8()?;
            let user = r.str()?.to_string();
            let peer = r
                .str()?
                .parse()
                .unwrap_or(std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
            at_home(shard, (node, l_shard, l_conn), user, auth, ftw, peer);
        }
        IN => {
            let node = r.u16()?;
            let l_conn = r.u64()?;
            let seq = r.u32()?;
            let text = inc.body.slice(r.at..);
            let h = shard.landed.homes.borrow().get(&(node, l_conn)).cloned();
            let Some(h) = h else {
                return Some(()); // ended here already
            };
            if seq != h.next_in.get() {
                tracing::warn!(
                    conn = h.ctl.id,
                    expected = h.next_in.get(),
                    got = seq,
                    "relayed connection lost frames on the bus: closing"
                );
                h.ctl.close(CloseKind::Abort, Vec::new());
                return Some(());
            }
            h.next_in.set(seq.wrapping_add(1));
            h.queue.borrow_mut().push_back(text);
            h.ctl.out.poke();
        }
        GONE => {
            let node = r.u16()?;
            let l_conn = r.u64()?;
            if let Some(h) = shard.landed.homes.borrow().get(&(node, l_conn)) {
                h.gone.set(true);
                h.ctl.close(CloseKind::Abort, Vec::new());
            }
        }
        OUT | CLOSE => {
            let l_conn = r.u64()?;
            let seq = r.u32()?;
            let bytes = inc.body.slice(r.at..);
            let Some(ctl) = shard.conn(l_conn) else {
                return Some(());
            };
            let ok = {
                let mut next = shard.landed.next.borrow_mut();
                match next.get_mut(&l_conn) {
                    Some((n, _)) if *n == seq => {
                        *n = n.wrapping_add(1);
                        true
                    }
                    _ => false,
                }
            };
            if !ok {
                tracing::warn!(
                    conn = l_conn,
                    "relayed connection lost frames on the bus: closing"
                );
                ctl.close(CloseKind::Abort, Vec::new());
            } else if body[0] == CLOSE {
                ctl.close(CloseKind::Flush, bytes.to_vec());
            } else if !bytes.is_empty() && ctl.out.push(OutFrame::raw(bytes)).is_err() {
                // The client does not read what its home sends: the home's own bound
                // shaped it already; this one ends the connection (resumable).
                tracing::info!(
                    conn = l_conn,
                    "relayed connection's outbound queue is full: closing"
                );
                ctl.close(CloseKind::Abort, Vec::new());
            }
        }
        _ => return None,
    }
    Some(())
}

/// H: a session for a connection that landed on another node.
fn at_home(
    shard: &Rc<Shard>,
    (node, l_shard, l_conn): (u16, u16, u64),
    user: String,
    auth: u8,
    ftw: Option<Proto>,
    peer: std::net::SocketAddr,
) {
    let ctl = shard.register_conn(shard.cfg().limits.outbound_queue_bytes_max);
    ctl.set_reply_overflow(router::overflow_words);
    if auth == 2 {
        ctl.set_framing(crate::xmpp::sink::Framing::Tcp);
    }
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    ctl.set_origin(crate::xmpp::sink::Origin::new(peer, 0, since));
    let h = Rc::new(AtHome {
        ctl: ctl.clone(),
        queue: RefCell::new(VecDeque::new()),
        next_in: Cell::new(0),
        gone: Cell::new(false),
    });
    shard
        .landed
        .homes
        .borrow_mut()
        .insert((node, l_conn), h.clone());
    tracing::info!(shard = shard.id, conn = ctl.id, landing_node = node, user = %user, "relayed connection at its home");
    let stream = match auth {
        1 | 2 => Stream::new(None, Some(user.into_boxed_str())),
        3 => Stream::new(None, None),
        _ => Stream::new(Some(user.into_boxed_str()), None),
    };
    let ftw_login = auth == 3;
    monoio::spawn(run_home(
        shard.clone(),
        h,
        (node, l_shard, l_conn),
        stream,
        ftw.map(|p| (p, ftw_login)),
        peer,
    ));
}

async fn run_home(
    shard: Rc<Shard>,
    h: Rc<AtHome>,
    (node, l_shard, l_conn): (u16, u16, u64),
    mut stream: Stream,
    ftw: Option<(Proto, bool)>,
    peer: std::net::SocketAddr,
) {
    let ctl = h.ctl.clone();
    let max = shard.cfg().limits.max_stanza_bytes;
    // `login`: the client's handshake happened at the landing node, its login comes next.
    let mut ftw = ftw.map(|(p, login)| {
        let muc = Some(shard.muc.domain().to_string());
        let mut f = FtwConn::new(&*shard, p, &shard.config.ftw, muc);
        if login {
            f.assume_connected();
        }
        f.attach(&ctl, !login, max);
        crate::metrics::shard().ftw_sessions.add(1);
        f
    });
    let writer = monoio::spawn(write_home(
        shard.clone(),
        ctl.clone(),
        h.clone(),
        node,
        l_shard,
        l_conn,
    ));
    let mut action = Action::Continue;
    while action == Action::Continue {
        // Engine.IO's pings are the session's (they are XMPP-FTW's protocol); a WebSocket
        // ping from the landing node keeps the XML ones alive.
        if let Some(f) = ftw.as_ref().filter(|f| f.proto == Proto::SocketIo) {
            let t = &f.tuning;
            let at = if f.ping_outstanding {
                f.last_ping + Duration::from_millis(t.ping_timeout_ms)
            } else {
                f.last_ping + Duration::from_millis(t.ping_interval_ms)
            };
            let at = f.held_deadline().map_or(at, |d| d.min(at));
            ctl.out.set_deadline(at);
        }
        match ctl.out.event().await {
            Event::Close => break,
            Event::Timer => {
                if let Some(f) = ftw.as_mut() {
                    let now = Instant::now();
                    action = f.expire_held(now, &mut stream, &*shard, &ctl);
                    if action != Action::Continue || f.proto != Proto::SocketIo {
                        continue;
                    }
                    let due = if f.ping_outstanding {
                        f.last_ping + Duration::from_millis(f.tuning.ping_timeout_ms)
                    } else {
                        f.last_ping + Duration::from_millis(f.tuning.ping_interval_ms)
                    };
                    if now < due {
                        continue;
                    }
                    if f.ping_outstanding {
                        action = stream.fail(
                            &*shard,
                            &ctl,
                            crate::xmpp::errors::StreamError::ConnectionTimeout,
                            Some("no answer to ping"),
                        );
                    } else {
                        f.ping(&ctl);
                    }
                }
            }
            Event::Poke => {
                if let Some(f) = ftw.as_mut() {
                    action = f.flush_replies(&mut stream, &*shard, &ctl);
                }
                while action == Action::Continue {
                    let Some(b) = h.queue.borrow_mut().pop_front() else {
                        break;
                    };
                    if b.first() == Some(&END) {
                        action = stream.end_requested(&ctl);
                        break;
                    }
                    let Ok(text) = std::str::from_utf8(b.get(1..).unwrap_or_default()) else {
                        ctl.close(CloseKind::Abort, Vec::new());
                        action = Action::Close;
                        break;
                    };
                    if text.bytes().all(|c| c.is_ascii_whitespace()) {
                        continue;
                    }
                    action = match ftw.as_mut() {
                        Some(f) => f.on_text(&mut stream, &*shard, &ctl, text),
                        None => stream.on_element(&*shard, &ctl, text),
                    };
                    // The landing node chose this node by its view; this node's may still
                    // differ for a heartbeat: the session is served here (what is routed
                    // meanwhile by the older view is kept and routed again, never lost).
                    if matches!(action, Action::Relay | Action::Handoff(_)) {
                        action = Action::Continue;
                    }
                }
            }
        }
    }
    if let Some(f) = ftw.as_mut() {
        f.abandon_held(&mut stream, &*shard, &ctl);
        crate::metrics::shard().ftw_sessions.add(-1);
    }
    ctl.close(CloseKind::Flush, Vec::new());
    // A resumable session whose connection just dropped waits for <resume/>.
    stream.connection_ended(&*shard, &ctl);
    let _ = writer.await;
    conn::finish_session(&shard, &mut stream, &ctl, peer);
    shard.landed.homes.borrow_mut().remove(&(node, l_conn));
}

/// H: what the session writes goes to the landing node, in order, as wire bytes.
async fn write_home(
    shard: Rc<Shard>,
    ctl: Rc<Sink>,
    h: Rc<AtHome>,
    node: u16,
    l_shard: u16,
    l_conn: u64,
) {
    let mut seq = 0u32;
    loop {
        let (tag, bytes) = match ctl.out.next().await {
            Taken::Frames(frames) => {
                let mut b = Vec::with_capacity(frames.iter().map(|f| f.len()).sum::<usize>());
                for f in &frames {
                    f.write_to(&mut b);
                }
                (OUT, b)
            }
            Taken::Close(_, last) => (CLOSE, last),
        };
        if !h.gone.get() {
            let mut b = Vec::with_capacity(13 + bytes.len());
            b.push(tag);
            b.extend_from_slice(&l_conn.to_be_bytes());
            b.extend_from_slice(&seq.to_be_bytes());
            b.extend_from_slice(&bytes);
            seq = seq.wrapping_add(1);
            super::cluster::send_frame(&shard, node, l_shard, Bytes::from(b));
            crate::metrics::shard().bytes_out.add(bytes.len() as u64);
        }
        if tag == CLOSE {
            ctl.out.writer_done(false);
            return;
        }
        // The bus queue is full: wait here, so this connection's own bound shapes it.
        while super::cluster::flush_held(&shard) {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
