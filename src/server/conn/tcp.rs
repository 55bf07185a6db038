//! The connection's RFC 6120 TCP part: the framer's events handed to the XMPP stream, the
//! stream header, and `<starttls/>` (with the plaintext-injection check).

use super::Conn;
use crate::net::outbox::CloseKind;
use crate::xml::framer::{self, Event as XmlEvent, FrameError, Framer};
use crate::xml::ns;
use crate::xmpp::errors::{StreamError, stream_error_bytes};
use crate::xmpp::sink::Framing;
use crate::xmpp::stream::Action;
use std::time::Instant;

impl Conn {
    /// Hands every complete element of the TCP stream in `buf` to the XMPP stream; returns
    /// how many bytes at the front of `buf` are done with. Each element costs a token of
    /// the rate limit, as a WebSocket message does.
    pub(super) fn process_tcp(&mut self, buf: &[u8]) -> usize {
        let Some(mut framer) = self.framer.take() else {
            return buf.len();
        };
        let now = Instant::now();
        let (per_sec, burst) = {
            let l = &self.shard.cfg().limits;
            (l.max_stanzas_per_sec, l.stanza_burst)
        };
        let (shard, ctl) = (self.shard.clone(), self.ctl.clone());
        while self.action == Action::Continue {
            if let Err(until) = self.shaper.ready(now, per_sec, burst) {
                self.throttle(now, until);
                break;
            }
            if shard.overflowing() {
                self.held = true;
                break;
            }
            let ev = match framer.next(buf) {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => {
                    let err = match e {
                        FrameError::NotWellFormed(_) => StreamError::NotWellFormed,
                        FrameError::Restricted(_) => StreamError::RestrictedXml,
                        FrameError::UnsupportedEncoding => StreamError::UnsupportedEncoding,
                        _ => StreamError::PolicyViolation,
                    };
                    self.action = self.stream.fail(&*shard, &ctl, err, Some(&e.to_string()));
                    break;
                }
            };
            self.shaper.take();
            if self.relay.is_some() {
                self.relay_tcp(&framer, ev);
                continue;
            }
            match ev {
                XmlEvent::Header { text, .. } => self.on_tcp_header(text),
                XmlEvent::Element { text, .. } => {
                    tracing::trace!(conn = ctl.id, "recv {text}");
                    let (prefix, local) = framer::qname(text);
                    if !prefix.is_empty() && prefix.as_bytes() == stream_prefix(&framer) {
                        // RFC 6120 §4.9.1: the client's stream error ends the stream; a
                        // client sends no other stream-level element (§4.9.3.24).
                        self.action = if local == "error" {
                            self.stream.end_requested(&ctl)
                        } else {
                            self.stream.fail(
                                &*shard,
                                &ctl,
                                StreamError::UnsupportedStanzaType,
                                None,
                            )
                        };
                        continue;
                    }
                    let authed = self.stream.authed.is_some();
                    self.action = self.stream.on_element(&*shard, &ctl, text);
                    if self.action == Action::StartTls {
                        let after = &buf[framer.consumed()..];
                        if !after.iter().all(u8::is_ascii_whitespace) {
                            // Plaintext sent after <starttls/> would be read as if it came
                            // over TLS: refuse it (and do not send <proceed/>).
                            tracing::info!(conn = ctl.id, "bytes after <starttls/>");
                            ctl.close(
                                CloseKind::Abort,
                                stream_error_bytes(
                                    Framing::Tcp,
                                    StreamError::PolicyViolation,
                                    Some("data after <starttls/>"),
                                    None,
                                ),
                            );
                            self.action = Action::Close;
                        } else {
                            // The stream and its framer end here (whitespace after it
                            // is dropped); the TLS stream gets new ones.
                            self.start_tls = true;
                            self.framer = Some(framer);
                            return buf.len();
                        }
                        break;
                    }
                    // SASL success: the client restarts the stream (RFC 6120 §6.4.6).
                    if !authed && self.stream.authed.is_some() {
                        framer.reset();
                    }
                }
                XmlEvent::End => self.action = self.stream.end_requested(&ctl),
            }
        }
        let n = framer.consumed();
        framer.consume(n);
        self.framer = Some(framer);
        n
    }

    /// A relayed TCP stream (`relay.rs`): headers are checked here and go on in the
    /// self-closed form the XMPP stream takes, elements as they are, and the end of the
    /// stream (or the client's stream error) as the end.
    fn relay_tcp(&mut self, framer: &Framer, ev: XmlEvent<'_>) {
        let (shard, ctl) = (self.shard.clone(), self.ctl.clone());
        let Some(l) = self.relay.as_mut() else { return };
        match ev {
            XmlEvent::Header { text, .. } => {
                let ok = framer::parse_header(text).is_ok_and(|h| {
                    h.local == "stream"
                        && h.ns == ns::STREAMS
                        && h.content_ns.as_deref() == Some(ns::CLIENT)
                });
                if !ok {
                    self.ctl.close(
                        CloseKind::Flush,
                        stream_error_bytes(
                            Framing::Tcp,
                            StreamError::InvalidNamespace,
                            Some("expected a jabber:client stream"),
                            None,
                        ),
                    );
                    self.action = Action::Close;
                    return;
                }
                let h = framer::self_closed_header(text);
                super::super::relay::forward(&shard, &ctl, l, h.as_bytes());
            }
            XmlEvent::Element { text, .. } => {
                let (prefix, _) = framer::qname(text);
                if !prefix.is_empty() && prefix.as_bytes() == stream_prefix(framer) {
                    super::super::relay::forward_end(&shard, &ctl, l);
                } else {
                    super::super::relay::forward(&shard, &ctl, l, text.as_bytes());
                }
            }
            XmlEvent::End => super::super::relay::forward_end(&shard, &ctl, l),
        }
    }

    /// A TCP stream header: its namespaces checked, then handled as the stream's opening.
    fn on_tcp_header(&mut self, text: &str) {
        let (shard, ctl) = (self.shard.clone(), self.ctl.clone());
        let h = match framer::parse_header(text) {
            Ok(h) => h,
            Err(_) => {
                self.action = self.stream.fail(
                    &*shard,
                    &ctl,
                    StreamError::NotWellFormed,
                    Some("bad stream header"),
                );
                return;
            }
        };
        if h.local != "stream" || h.ns != ns::STREAMS || h.content_ns.as_deref() != Some(ns::CLIENT)
        {
            self.action = self.stream.fail(
                &*shard,
                &ctl,
                StreamError::InvalidNamespace,
                Some("expected a jabber:client stream"),
            );
            return;
        }
        self.action = self
            .stream
            .on_element(&*shard, &ctl, &framer::self_closed_header(text));
    }
}

/// The prefix the stream root was opened with (`stream`).
fn stream_prefix(f: &Framer) -> &[u8] {
    let root = f.root_name();
    root.iter()
        .position(|&b| b == b':')
        .map_or(&root[..0], |i| &root[..i])
}
