//! IQs addressed to an occupant (`room@service/nick`): relayed between occupants without
//! their real JIDs (XEP-0045 §17.4: the service "SHOULD forward the stanza to the
//! recipient's real JID" and "MUST NOT reveal the sender's real JID to the recipient …,
//! nor reveal the recipient's real JID to the sender"), and XEP-0410 self-pings, which
//! the room answers itself (§3.3).
//!
//! A request goes to one session of the target occupant, from the sender's occupant JID,
//! with an id that carries the sender's session: `muc.{base64url(sender full JID)}.{id}`.
//! The answer (to the sender's occupant JID) is recognized by that id and goes back to that
//! session, from the target's occupant JID, with the original id. Nothing is kept in the
//! room between the two: an answer with an id the room did not make, or for a session that
//! is no longer the occupant's, is dropped (IQ results and errors are never answered).
//!
//! Who may not reach an occupant gets `not-acceptable`: a non-occupant (XEP-0410 §3.2: so a
//! client that believes it is still joined learns it is not), including for a room that is
//! gone. `item-not-found` is only for an occupant asking for a nick nobody has (XEP-0410:
//! "the occupant just changed their name").

use super::fanout::Out;
use super::room::{Rooms, err, parse};
use crate::xml::ns;
use crate::xmpp::errors::Cond;
use crate::xmpp::router::{Routed, SType};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

const PREFIX: &str = "muc.";

/// An iq to occupant `nick` of room `bare`, from session `from`.
pub(super) fn iq(rooms: &Rooms, r: &Routed, bare: &str, nick: &str, from: &str, out: &mut Out) {
    let room = rooms.get(bare);
    if matches!(r.stype, SType::Result | SType::Error) {
        if let Some(room) = room {
            answer(room, r, nick, from, out);
        }
        return;
    }
    let Some((room, sender)) = room.and_then(|room| Some((room, room.occupants.by_session(from)?)))
    else {
        return err(
            out,
            r,
            Cond::NotAcceptable,
            Some("only occupants of the room reach its occupants"),
        );
    };
    let Some(target) = room.occupants.by_nick(nick) else {
        return err(
            out,
            r,
            Cond::ItemNotFound,
            Some("no occupant has that nick"),
        );
    };
    if target == sender && is_ping(r) {
        // XEP-0410 §3.3: joined; the room answers for the occupant.
        return super::room::iq_result(out, r, "");
    }
    let Some(to) = room.occupants[target].sessions().first() else {
        return;
    };
    let id = format!(
        "{PREFIX}{}.{}",
        B64.encode(from.as_bytes()),
        id_value(r.id_attr())
    );
    let me = room.occupant_jid(room.occupants[sender].nick());
    out.one(r.readdressed(to.jid.as_str(), &me, Some(&id), b""));
}

/// An answer from session `from` to occupant `nick`, for a request the room relayed.
fn answer(room: &super::room::Room, r: &Routed, nick: &str, from: &str, out: &mut Out) {
    let Some((asker, id)) = id_value(r.id_attr())
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(who, id)| {
            let who = String::from_utf8(B64.decode(who).ok()?).ok()?;
            Some((who, id.to_string()))
        })
    else {
        return;
    };
    let (Some(answerer), Some(asked)) = (
        room.occupants.by_session(from),
        room.occupants.by_session(&asker),
    ) else {
        return;
    };
    if room.occupants[asked].nick() != nick {
        return;
    }
    let me = room.occupant_jid(room.occupants[answerer].nick());
    out.one(r.readdressed(&asker, &me, Some(&id), b""));
}

/// The value of an `id='…'` (or `id="…"`) attribute as written (escaped), ready to be
/// written between `'`.
fn id_value(attr: &str) -> std::borrow::Cow<'_, str> {
    let Some(v) = attr.get(4..attr.len().saturating_sub(1)) else {
        return "".into();
    };
    if attr.as_bytes().get(3) == Some(&b'"') && v.contains('\'') {
        v.replace('\'', "&apos;").into()
    } else {
        v.into()
    }
}

/// Whether iq `r` is an XEP-0199 ping.
fn is_ping(r: &Routed) -> bool {
    r.stype == SType::Get
        && parse(r).is_some_and(|st| {
            let mut c = st.children(0);
            matches!((c.next(), c.next()), (Some(p), None) if st.elems[p].ns == ns::PING && st.elems[p].local == "ping")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muc::room::tests::{routed, text};
    use crate::xmpp::router::Kind;

    #[test]
    fn ids_as_written_go_between_single_quotes() {
        assert_eq!(id_value("id='a&amp;b'"), "a&amp;b");
        assert_eq!(id_value("id=\"it's\""), "it&apos;s");
        assert_eq!(id_value(""), "");
    }

    /// The relayed request keeps the content and the attributes other than the address
    /// and the id; the answer gets its id back.
    #[test]
    fn readdressed_bytes() {
        let r = routed(
            Kind::Iq,
            SType::Get,
            "alice@localhost/web",
            "<iq id=\"x'1\" type='get' to='coven@conference.localhost/b&amp;'><ping xmlns='urn:xmpp:ping'/></iq>",
        );
        let id = format!(
            "muc.{}.{}",
            B64.encode("alice@localhost/web"),
            id_value(r.id_attr())
        );
        let out = r.readdressed(
            "bob@localhost/desk",
            "coven@conference.localhost/O'N",
            Some(&id),
            b"",
        );
        assert_eq!(
            text(&out),
            format!(
                "<iq id='{id}' type='get'  xmlns='jabber:client' to='bob@localhost/desk' \
                 from='coven@conference.localhost/O&apos;N'><ping xmlns='urn:xmpp:ping'/></iq>"
            )
        );
        assert_eq!(id, "muc.YWxpY2VAbG9jYWxob3N0L3dlYg.x&apos;1");
        assert_eq!(&*out.to(), "bob@localhost/desk");
        assert_eq!(&*out.from(), "coven@conference.localhost/O'N");
    }
}
