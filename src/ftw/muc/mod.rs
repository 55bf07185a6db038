//! Multi-user chat rooms, both ways. Here: what all room events share (room and occupant
//! addresses, whether a JID is on the MUC service, `<reason/>`); the events themselves are
//! in `occupants.rs` (creating, joining, nick changes, leaving, who is in the room),
//! `messages.rs` (what is said, the subject, invitations), `voice.rs` (voice requests),
//! `register.rs` (registration, reserved nicks) and `admin.rs` (roles, affiliations,
//! configuration, cancelling a new room, destruction).
//!
//! XEP-0045 (multi-user chat).

pub(super) mod admin;
pub(super) mod messages;
pub(super) mod occupants;
pub(super) mod register;
pub(super) mod voice;

use super::Ctx;
use super::common::{Obj, R, addr, bad_jid, opt_str, opt_text, req};
use crate::xmpp::jid::Jid;
use serde_json::Value;

/// `(room, nick?)` when `jid` is on the MUC service.
pub(super) fn from_room<'j>(ctx: &Ctx, jid: &'j str) -> Option<(&'j str, Option<&'j str>)> {
    let (room, nick) = match jid.split_once('/') {
        Some((b, r)) => (b, Some(r)),
        None => (jid, None),
    };
    let domain = room.split_once('@').map_or(room, |(_, d)| d);
    ctx.muc_domain
        .is_some_and(|d| d.eq_ignore_ascii_case(domain))
        .then_some((room, nick))
}

/// A bare room JID: `room` may omit `@muc_domain`.
fn room(m: &Obj, ctx: &Ctx) -> R<Jid> {
    let v = req(m.get("room").filter(|v| !v.is_null()), "room")?;
    let jid = match (v, ctx.muc_domain) {
        (Value::String(s), Some(muc)) if !s.contains('@') => {
            addr(&Value::String(format!("{s}@{muc}")))?
        }
        _ => addr(v)?,
    };
    if jid.local().is_none() {
        return Err(bad_jid());
    }
    Ok(jid.to_bare())
}

/// `room/nick`, the nick validated as a resourcepart.
fn occupant(room: &Jid, nick: &str) -> R<Jid> {
    room.with_resource(nick).map_err(|_| bad_jid())
}

/// `<reason>` if the payload has one.
fn reason(m: &Obj) -> R<String> {
    Ok(opt_text("reason", opt_str(m, "reason")?.as_deref()))
}
