//! One client stream (RFC 6120 §4–§7 over RFC 7395): `<open/>`, SASL, resource binding,
//! then stanzas. The connection task feeds it one complete element at a time.

use super::core::Host;
use super::errors::{Cond, StreamError, error_stanza, stream_error_bytes};
use super::jid::Jid;
use super::router::{Kind, SType};
use super::session::BindError;
use super::sink::Framing;
use super::sink::{OutFrame, Sink};
use crate::net::outbox::CloseKind;
use crate::xml::ns;
use crate::xml::stanza::{Limits, Stanza, XmlError};
use crate::xml::writer::Elem;
use bytes::Bytes;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Close,
    /// Move the connection to the user's home shard.
    Handoff(usize),
    /// `<proceed/>` is queued: the connection starts TLS (RFC 6120 §5.4.3.3).
    StartTls,
    /// Authenticated, and the user lives on another node of the cluster: the connection
    /// is relayed there from now on (`server/relay.rs`).
    Relay,
}

/// What one session's stanza handlers need.
pub struct Ctx<'a, H> {
    pub shard: &'a H,
    pub ctl: &'a Rc<Sink>,
    pub jid: &'a Jid,
}

impl<H: Host> Ctx<'_, H> {
    pub fn reply(&self, v: Vec<u8>) {
        self.ctl.push_reply(OutFrame::text(Bytes::from(v)));
    }

    /// Answers the client's own stanza with an error (RFC 6120 §8.3.1): from the address
    /// it was sent to (or the server), to the sender, with its id.
    pub fn error(&self, st: &Stanza, kind: Kind, cond: Cond, text: Option<&str>) {
        let to = st.attr(0, "to").map(|a| a.value());
        let from = match &to {
            Some(t) if super::jid::Jid::parse(t).is_ok() => t.as_ref(),
            _ => self.shard.domain(),
        };
        let id = id_attr(st);
        let (v, _, _) = error_stanza(kind.name(), from, self.jid.as_str(), id, cond, text);
        self.reply(v);
    }
}

/// The raw `id='…'` attribute of a stanza's root (quotes included), or "".
pub fn id_attr<'a>(st: &Stanza<'a>) -> &'a str {
    st.attr(0, "id")
        .map(|a| &st.src[a.span.start as usize..a.span.end as usize])
        .unwrap_or("")
}

pub struct Stream {
    /// Localpart named by a valid `auth_token` cookie at the upgrade.
    pub cookie_user: Option<Box<str>>,
    /// Localpart authenticated by SASL.
    pub authed: Option<Box<str>>,
    /// Our `<open/>` was sent for the current stream.
    pub opened: bool,
    stream_id: u64,
    auth_failures: u32,
    pub jid: Option<Jid>,
    ping_seq: u32,
    /// XEP-0198 enabled, and stanzas received since.
    pub sm: Option<u32>,
    /// The XEP-0198 id of a resumable session.
    pub sm_id: Option<String>,
    /// The stream ended on purpose (`<close/>`, or a stream error other than a timeout):
    /// no resumption.
    pub clean_end: bool,
    /// The XEP-0198 ack barrier in flight, if any (`commit::ack_when_settled`).
    pub ack_inflight: Option<u64>,
    /// STARTTLS is offered on this (plaintext TCP) stream; `Some(true)`: required, so
    /// nothing else is offered and SASL is refused before it (RFC 6120 §5.3.1).
    pub starttls: Option<bool>,
}

impl Stream {
    pub fn new(cookie_user: Option<Box<str>>, authed: Option<Box<str>>) -> Stream {
        Stream {
            cookie_user,
            authed,
            opened: false,
            stream_id: 0,
            auth_failures: 0,
            jid: None,
            ping_seq: 0,
            sm: None,
            sm_id: None,
            clean_end: false,
            ack_inflight: None,
            starttls: None,
        }
    }

    fn stream_id(&self) -> String {
        format!("{:016x}", self.stream_id)
    }

    /// Ends the stream with a stream error (preceded by `<open/>` if none was sent).
    pub fn fail<H: Host>(
        &mut self,
        shard: &H,
        ctl: &Sink,
        err: StreamError,
        text: Option<&str>,
    ) -> Action {
        tracing::info!(
            shard = shard.id,
            conn = ctl.id,
            error = err.name(),
            text,
            "stream error"
        );
        let id = self.stream_id();
        let open = (!self.opened).then_some((shard.domain(), id.as_str()));
        ctl.close(
            CloseKind::Flush,
            stream_error_bytes(ctl.framing(), err, text, open),
        );
        self.clean_end = err != StreamError::ConnectionTimeout;
        Action::Close
    }

    pub fn send(&self, ctl: &Sink, v: Vec<u8>) {
        ctl.push_reply(OutFrame::text(Bytes::from(v)));
    }

    /// Handles one complete top-level element.
    pub fn on_element<H: Host>(&mut self, shard: &H, ctl: &Rc<Sink>, text: &str) -> Action {
        crate::fault::panic_on(text);
        crate::fault::stall_on(text);
        let l = &shard.cfg().limits;
        let limits = Limits {
            max_depth: l.max_xml_depth,
            max_attrs: l.max_attrs_per_element,
        };
        let st = match Stanza::parse(text, &limits) {
            Ok(st) => st,
            Err(XmlError::NotWellFormed(why)) => {
                return self.fail(shard, ctl, StreamError::NotWellFormed, Some(why));
            }
            Err(XmlError::Restricted(why)) => {
                return self.fail(shard, ctl, StreamError::RestrictedXml, Some(why));
            }
            Err(XmlError::Limit(why)) => {
                return self.fail(shard, ctl, StreamError::PolicyViolation, Some(why));
            }
        };
        let root = st.root();
        match (root.ns, root.local) {
            (ns::FRAMING, "open") if ctl.framing() == Framing::WebSocket => {
                self.on_open(shard, ctl, &st)
            }
            // On TCP the stream header, as the connection's framer hands it over (a
            // self-closed copy of `<stream:stream …>`).
            (ns::STREAMS, "stream") if ctl.framing() == Framing::Tcp => {
                self.on_open(shard, ctl, &st)
            }
            (ns::FRAMING, "close") if ctl.framing() == Framing::WebSocket => {
                self.end_requested(ctl)
            }
            (_, "open" | "close") => self.fail(
                shard,
                ctl,
                StreamError::InvalidNamespace,
                Some("expected urn:ietf:params:xml:ns:xmpp-framing"),
            ),
            _ if !self.opened => self.fail(
                shard,
                ctl,
                StreamError::NotAuthorized,
                Some("send <open/> first"),
            ),
            (ns::TLS, "starttls") if self.authed.is_none() && self.starttls.is_some() => {
                let mut v = Vec::with_capacity(64);
                Elem::new(&mut v, "proceed").attr("xmlns", ns::TLS).end();
                self.send(ctl, v);
                Action::StartTls
            }
            (ns::TLS, _) => {
                // Not offered (already TLS, or no certificate): RFC 6120 §5.4.2.2.
                let mut v = Vec::with_capacity(64);
                Elem::new(&mut v, "failure").attr("xmlns", ns::TLS).end();
                self.send(ctl, v);
                self.end_requested(ctl)
            }
            (ns::SASL, "auth") if self.authed.is_none() && self.starttls == Some(true) => {
                self.sasl_failure(shard, ctl, "encryption-required")
            }
            (ns::SASL, "auth") if self.authed.is_none() => self.on_auth(shard, ctl, &st),
            (ns::SASL, "abort") if self.authed.is_none() => {
                auth_failed("aborted");
                self.send(ctl, sasl_failure_xml("aborted"));
                Action::Continue
            }
            (ns::CLIENT | "", name) if Kind::from_name(name).is_some() => {
                let kind = Kind::from_name(name).expect("the match guard checked it");
                match &self.jid {
                    Some(_) => self.on_stanza(shard, ctl, &st, kind),
                    None if self.authed.is_some() && kind == Kind::Iq => {
                        self.on_prebind_iq(shard, ctl, &st)
                    }
                    None => self.fail(
                        shard,
                        ctl,
                        StreamError::NotAuthorized,
                        Some("authenticate and bind a resource first"),
                    ),
                }
            }
            (ns::SASL, _) => self.fail(
                shard,
                ctl,
                StreamError::PolicyViolation,
                Some("unexpected SASL element"),
            ),
            (nonza_ns, name) => match shard.nonza_handler(nonza_ns) {
                Some(handler) => handler(self, shard, ctl, &st, name),
                None => self.fail(shard, ctl, StreamError::UnsupportedStanzaType, None),
            },
        }
    }

    /// The client ends the stream (`<close/>`, or `</stream:stream>` on TCP): the server
    /// ends its side too, and the connection closes (RFC 6120 §4.4, RFC 7395 §3.6).
    pub fn end_requested(&mut self, ctl: &Sink) -> Action {
        self.clean_end = true;
        match ctl.framing() {
            Framing::WebSocket => {
                self.send(ctl, super::errors::close_element());
                ctl.close(
                    CloseKind::Flush,
                    crate::net::websocket::close_frame(crate::net::websocket::CLOSE_NORMAL, ""),
                );
            }
            Framing::Tcp => ctl.close(CloseKind::Flush, super::errors::STREAM_END.to_vec()),
        }
        Action::Close
    }

    fn on_open<H: Host>(&mut self, shard: &H, ctl: &Sink, st: &Stanza) -> Action {
        self.stream_id = shard.random();
        self.opened = false;
        if st.attr(0, "version").map(|a| a.value()) != Some("1.0".into()) {
            return self.fail(
                shard,
                ctl,
                StreamError::UnsupportedVersion,
                Some("version='1.0' required"),
            );
        }
        if let Some(to) = st.attr(0, "to") {
            let ok = Jid::parse(&to.value()).is_ok_and(|j| j.as_str() == shard.domain());
            if !ok {
                return self.fail(
                    shard,
                    ctl,
                    StreamError::HostUnknown,
                    Some("this server serves another domain"),
                );
            }
        }
        self.send(
            ctl,
            super::errors::opening(ctl.framing(), shard.domain(), &self.stream_id()),
        );
        self.opened = true;
        let mut v = Vec::with_capacity(256);
        let mut features = Elem::new(&mut v, "stream:features").attr("xmlns:stream", ns::STREAMS);
        if self.authed.is_none() {
            if let Some(required) = self.starttls {
                let mut tls = features.child("starttls").attr("xmlns", ns::TLS);
                if required {
                    tls.child("required").end();
                }
                tls.end();
            }
            if self.starttls != Some(true) {
                let mut mechanisms = features.child("mechanisms").attr("xmlns", ns::SASL);
                mechanisms.child("mechanism").text("PLAIN").end();
                mechanisms.end();
            }
        } else {
            features.child("bind").attr("xmlns", ns::BIND).end();
            let mut session = features.child("session").attr("xmlns", ns::SESSION);
            session.child("optional").end();
            session.end();
            for (name, xmlns) in shard.stream_features() {
                features.child(name).attr("xmlns", xmlns).end();
            }
        }
        features.end();
        self.send(ctl, v);
        Action::Continue
    }

    fn sasl_failure<H: Host>(&mut self, shard: &H, ctl: &Sink, cond: &str) -> Action {
        auth_failed(cond);
        self.auth_failures += 1;
        self.send(ctl, sasl_failure_xml(cond));
        if self.auth_failures >= shard.cfg().auth.max_auth_failures {
            return self.fail(
                shard,
                ctl,
                StreamError::PolicyViolation,
                Some("too many authentication failures"),
            );
        }
        Action::Continue
    }

    fn on_auth<H: Host>(&mut self, shard: &H, ctl: &Sink, st: &Stanza) -> Action {
        use base64::Engine;
        let mech = st
            .attr(0, "mechanism")
            .map(|a| a.value())
            .unwrap_or_default();
        let payload = st.text(0);
        let payload = payload.trim();
        let decoded = if payload.is_empty() || payload == "=" {
            Some(Vec::new())
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(payload)
                .ok()
        };
        let plain = decoded.as_deref().and_then(|d| {
            let mut it = d.split(|b| *b == 0);
            let (z, c, p) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() {
                return None;
            }
            Some((
                std::str::from_utf8(z).ok()?,
                std::str::from_utf8(c).ok()?,
                std::str::from_utf8(p).ok()?,
            ))
        });
        let user = if let Some(cookie) = self.cookie_user.clone() {
            // The API: with a valid cookie, SASL auto-succeeds — for that user only.
            let names_other = plain.is_some_and(|(authz, authc, _)| {
                let other_c = !authc.is_empty() && !same_user(authc, &cookie, shard.domain());
                let other_z = !authz.is_empty() && !same_user(authz, &cookie, shard.domain());
                other_c || other_z
            });
            if names_other {
                return self.sasl_failure(shard, ctl, "not-authorized");
            }
            cookie
        } else {
            if mech != "PLAIN" {
                return self.sasl_failure(shard, ctl, "invalid-mechanism");
            }
            if decoded.is_none() {
                return self.sasl_failure(shard, ctl, "incorrect-encoding");
            }
            let Some((authz, authc, password)) = plain else {
                return self.sasl_failure(shard, ctl, "malformed-request");
            };
            match shard.check_token(password) {
                Err(super::jwt::TokenError::Busy) => {
                    // Not the client's fault: no failure counted; it retries (RFC 6120 §6.5.13).
                    auth_failed("temporary-auth-failure");
                    self.send(ctl, sasl_failure_xml("temporary-auth-failure"));
                    return Action::Continue;
                }
                Ok(local)
                    if same_user(authc, &local, shard.domain())
                        && (authz.is_empty() || same_user(authz, &local, shard.domain())) =>
                {
                    local.into_boxed_str()
                }
                Ok(local) => {
                    tracing::info!(shard = shard.id, conn = ctl.id, token_user = %local, authcid = authc, "SASL PLAIN: the token names another user");
                    return self.sasl_failure(shard, ctl, "not-authorized");
                }
                Err(super::jwt::TokenError::Bad(e)) => {
                    tracing::info!(shard = shard.id, conn = ctl.id, error = %e, "SASL PLAIN with a bad JWT");
                    return self.sasl_failure(shard, ctl, "not-authorized");
                }
            }
        };
        crate::metrics::shard().logins[0].inc();
        let mut v = Vec::with_capacity(64);
        Elem::new(&mut v, "success").attr("xmlns", ns::SASL).end();
        self.send(ctl, v);
        self.opened = false; // the client restarts the stream (RFC 6120 §6.4.6)
        let bare = format!("{user}@{}", shard.domain());
        tracing::info!(shard = shard.id, conn = ctl.id, user = %bare, "authenticated");
        self.authed = Some(user);
        let home = shard.home(&bare);
        if !shard.is_local(home) {
            Action::Relay
        } else if home.shard() != shard.id {
            Action::Handoff(home.shard())
        } else {
            Action::Continue
        }
    }

    fn on_prebind_iq<H: Host>(&mut self, shard: &H, ctl: &Rc<Sink>, st: &Stanza) -> Action {
        crate::metrics::shard().stanzas_in[Kind::Iq as usize].inc();
        let id = id_attr(st);
        let ty = st.attr(0, "type").map(|a| a.value());
        if let Some(b) = st
            .child(0, "bind", ns::BIND)
            .filter(|_| ty.as_deref() == Some("set"))
        {
            let local = self.authed.clone().unwrap_or_default();
            let requested = st
                .child(b, "resource", ns::BIND)
                .map(|r| st.text(r).trim().to_string())
                .filter(|r| !r.is_empty());
            let resource = requested.unwrap_or_else(|| random_resource(shard));
            let jid = match Jid::new_full(&local, shard.domain(), &resource) {
                Ok(j) => j,
                Err(_) => {
                    let (v, _, _) = error_stanza(
                        "iq",
                        "",
                        &format!("{local}@{}", shard.domain()),
                        id,
                        Cond::BadRequest,
                        Some("invalid resource"),
                    );
                    self.send(ctl, v);
                    return Action::Continue;
                }
            };
            let max = shard.cfg().limits.max_sessions_per_user;
            let bound = shard
                .sessions
                .borrow_mut()
                .bind(jid.clone(), ctl.clone(), max);
            match bound {
                Err(BindError::TooManySessions) => {
                    let (v, _, _) = error_stanza(
                        "iq",
                        "",
                        jid.bare(),
                        id,
                        Cond::ResourceConstraint,
                        Some("too many sessions for this user"),
                    );
                    self.send(ctl, v);
                    return Action::Continue;
                }
                Ok(Some(old)) => {
                    tracing::info!(shard = shard.id, conn = old.ctl.id, jid = %jid, "session replaced by a new bind");
                    old.ctl.close(
                        CloseKind::Flush,
                        stream_error_bytes(
                            old.ctl.framing(),
                            StreamError::Conflict,
                            Some("replaced by a new session"),
                            None,
                        ),
                    );
                    super::presence::session_ended(shard, old);
                }
                Ok(None) => {}
            }
            let mut v = Vec::with_capacity(200);
            let mut iq = Elem::new(&mut v, "iq")
                .attr("xmlns", ns::CLIENT)
                .attr("type", "result")
                .attrs_raw(id.as_bytes());
            let mut bind = iq.child("bind").attr("xmlns", ns::BIND);
            bind.child("jid").text(jid.as_str()).end();
            bind.end();
            iq.end();
            self.send(ctl, v);
            tracing::info!(shard = shard.id, conn = ctl.id, jid = %jid, "bound");
            shard.on_bind(&jid);
            self.bound(jid);
            return Action::Continue;
        }
        if st.child(0, "session", ns::SESSION).is_some() {
            let mut v = Vec::with_capacity(96);
            Elem::new(&mut v, "iq")
                .attr("xmlns", ns::CLIENT)
                .attr("type", "result")
                .attrs_raw(id.as_bytes())
                .end();
            self.send(ctl, v);
            return Action::Continue;
        }
        self.fail(
            shard,
            ctl,
            StreamError::NotAuthorized,
            Some("bind a resource first"),
        )
    }

    /// The stream now carries a bound session (after bind, or a resumption).
    pub fn bound(&mut self, jid: Jid) {
        self.jid = Some(jid);
    }

    fn on_stanza<H: Host>(&mut self, shard: &H, ctl: &Rc<Sink>, st: &Stanza, kind: Kind) -> Action {
        crate::metrics::shard().stanzas_in[kind as usize].inc();
        // The rate limit is applied before this, by the connection (it stops reading).
        if let Some(h) = &mut self.sm {
            *h = h.wrapping_add(1);
            ctl.set_handled(*h);
        }
        let jid = self
            .jid
            .as_ref()
            .expect("on_element calls this only once bound");
        let ctx = Ctx { shard, ctl, jid };
        let stype = SType::parse(kind, st.attr(0, "type").map(|a| a.value()).as_deref());
        let to = match st.attr(0, "to").map(|a| Jid::parse(&a.value())) {
            None => None,
            Some(Ok(j)) => Some(j),
            Some(Err(_)) => {
                if stype != Some(SType::Error) {
                    ctx.error(st, kind, Cond::JidMalformed, Some("invalid 'to' address"));
                }
                return Action::Continue;
            }
        };
        match kind {
            Kind::Message => {
                super::message::on_message(&ctx, st, stype.unwrap_or(SType::Normal), to)
            }
            Kind::Presence => super::presence::on_presence(&ctx, st, stype, to),
            Kind::Iq => super::iq::on_iq(&ctx, st, stype, to),
        }
        Action::Continue
    }

    /// An XEP-0199 ping from the server to an idle client.
    pub fn ping<H: Host>(&mut self, shard: &H, ctl: &Sink) {
        let Some(jid) = &self.jid else { return };
        self.ping_seq += 1;
        let mut v = Vec::with_capacity(160);
        let mut iq = Elem::new(&mut v, "iq")
            .attr("xmlns", ns::CLIENT)
            .attr("type", "get")
            .attr("from", shard.domain())
            .attr("to", jid.as_str())
            .attr_fmt("id", format_args!("aoba-ping-{}", self.ping_seq));
        iq.child("ping").attr("xmlns", ns::PING).end();
        iq.end();
        self.send(ctl, v);
    }

    /// The connection ended (closed on purpose, or lost: see `clean_end`): modules may
    /// keep the session (`Host::on_connection_end`); if none did, it ends.
    pub fn connection_ended<H: Host>(&mut self, shard: &H, ctl: &Rc<Sink>) {
        shard.on_connection_end(self, ctl);
        self.end(shard, ctl);
    }

    /// The session is over: unbind it and tell whoever saw it available.
    pub fn end<H: Host>(&mut self, shard: &H, ctl: &Sink) {
        if let Some(jid) = self.jid.take() {
            let res = shard.sessions.borrow_mut().unbind(&jid, ctl.id);
            if let Some(res) = res {
                super::presence::session_ended(shard, res);
            }
            tracing::info!(shard = shard.id, conn = ctl.id, jid = %jid, "session ended");
        }
    }
}

/// Whether a SASL authcid/authzid (a localpart or a bare JID) names `local` of `domain`.
fn same_user(name: &str, local: &str, domain: &str) -> bool {
    if !name.contains('@') {
        // A bare localpart (RFC 4616 authcid): compared as a localpart, normalized. Read as
        // a JID it would be a domain, and `sasl_user` is no valid domain.
        return Jid::new_bare(name, domain).is_ok_and(|j| j.local() == Some(local));
    }
    Jid::parse(name)
        .is_ok_and(|j| j.local() == Some(local) && j.domain() == domain && j.resource().is_none())
}

/// `web-` and ten base-36 characters, as in the API's `alice@localhost/web-abc123`.
fn random_resource<H: Host>(shard: &H) -> String {
    const A: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut x = shard.random();
    let mut s = String::with_capacity(14);
    s.push_str("web-");
    for _ in 0..10 {
        s.push(A[(x % 36) as usize] as char);
        x /= 36;
    }
    s
}

/// `<failure><cond/></failure>` of SASL (RFC 6120 §6.5).
/// Counts a failed authentication (`aoba_logins_total{result="failed"}` and its reason).
pub fn auth_failed(reason: &str) {
    let m = crate::metrics::shard();
    m.logins[1].inc();
    if let Some(i) = crate::metrics::AUTH_REASONS
        .iter()
        .position(|r| *r == reason)
    {
        m.auth_failures[i].inc();
    }
}

fn sasl_failure_xml(cond: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(96);
    let mut failure = Elem::new(&mut v, "failure").attr("xmlns", ns::SASL);
    failure.child(cond).end();
    failure.end();
    v
}
