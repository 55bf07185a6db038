//! XMPP-FTW: the Socket.IO / primus packet parser (`transport::parse`), and the JSON event
//! to stanza translation (`request::request`) on the events it yields, as the session
//! calls it. Every stanza a request produces must parse as XML: it is handed to the stream
//! handler as if the client had sent it, so a malformed one would be an injection.
//!
//! First byte: 0 → Socket.IO text, 1 → primus text, 2 → `event-index JSON payload`
//! straight into `request` (reaches the translation without the framing).
#![no_main]

use aoba::ftw::request::request;
use aoba::ftw::transport::{Packet, Proto, parse};
use aoba::ftw::{Ctx, ReqError};
use aoba::xml::{Limits, Stanza};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const EVENTS: &[&str] = &[
    "xmpp.presence",
    "xmpp.presence.offline",
    "xmpp.presence.get",
    "xmpp.presence.subscribe",
    "xmpp.presence.subscribed",
    "xmpp.presence.unsubscribe",
    "xmpp.presence.unsubscribed",
    "xmpp.roster.get",
    "xmpp.roster.add",
    "xmpp.roster.edit",
    "xmpp.roster.group",
    "xmpp.roster.remove",
    "xmpp.chat.message",
    "xmpp.chat.receipt",
    "xmpp.muc.join",
    "xmpp.muc.leave",
    "xmpp.muc.message",
    "xmpp.muc.subject",
    "xmpp.muc.role.set",
    "xmpp.muc.affiliation",
    "xmpp.muc.room.config.get",
    "xmpp.muc.room.config.set",
    "xmpp.muc.destroy",
    "xmpp.muc.invite",
    "xmpp.muc.invite.decline",
    "xmpp.discover.info",
    "xmpp.discover.items",
    "xmpp.discover.client",
    "xmpp.ping",
    "xmpp.ping.pong",
    "xmpp.login.anonymous",
    "xmpp.register.get",
    "xmpp.mam.query",
    "xmpp.mam.preferences",
    "xmpp.login",
    "xmpp.unknown",
    "nope",
];

fn translate(name: &str, payload: &Value, has_callback: bool) {
    let ctx = Ctx {
        jid: "juliet@localhost/balcony",
        domain: "localhost",
        muc_domain: Some("conference.localhost"),
    };
    // Rooms whose JID has an even length count as joined (as "nick").
    let nick_in = |room: &str| room.len().is_multiple_of(2).then(|| "nick".to_string());
    let mut n = 0u32;
    let mut new_id = || {
        n += 1;
        format!("ftw{n}")
    };
    match request(name, payload, has_callback, &ctx, &nick_in, &mut new_id) {
        Ok(req) => {
            for s in &req.stanzas {
                if let Err(e) = Stanza::parse(s, &Limits::default()) {
                    panic!("{name} {payload} produced a malformed stanza: {e}\n{s}");
                }
            }
            if let Some((id, _)) = &req.track {
                let id = aoba::xml::escape_attr_to_string(id);
                assert!(req.stanzas.iter().any(|s| s.contains(id.as_ref())));
            }
        }
        Err(ReqError::Client(_) | ReqError::NotImplemented | ReqError::NotAllowed(_)) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        2 => {
            let Some((&ev, json)) = rest.split_first() else {
                return;
            };
            let Ok(payload) = serde_json::from_slice::<Value>(json) else {
                return;
            };
            let name = EVENTS[usize::from(ev) % EVENTS.len()];
            translate(name, &payload, ev & 0x80 != 0);
        }
        p => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let proto = if p == 0 {
                Proto::SocketIo
            } else {
                Proto::Primus
            };
            if let Ok(Packet::Event { name, payload, ack }) = parse(proto, text) {
                translate(&name, &payload, ack.is_some());
            }
        }
    }
});
