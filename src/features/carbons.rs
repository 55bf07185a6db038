//! XEP-0280 Message Carbons: a user's other resources that enabled carbons get a copy of
//! the chat messages it sends (`<sent/>`) and receives (`<received/>`), so every device
//! shows the whole conversation. A carbon is `[wrapper head, the original stanza's bytes,
//! wrapper tail]`: the message itself is shared, never copied per device.

use crate::xml::ns;
use crate::xml::writer::{Elem, end_tag};
use crate::xmpp::core::{Host, IqReply, IqRequest};
use crate::xmpp::errors::Cond;
use crate::xmpp::jid::Jid;
use crate::xmpp::router::{self, SType};
use crate::xmpp::sink::{OutFrame, Sink, StanzaFrame};
use crate::xmpp::stream::Ctx;
use bytes::Bytes;
use smallvec::SmallVec;
use std::rc::Rc;

/// `<enable/>` / `<disable/>` (§4, §5).
pub fn handle<H: Host>(_: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    if r.stype != SType::Set || r.to.is_some_and(|t| t.bare() != r.from.bare()) {
        return IqReply::Error(Cond::BadRequest);
    }
    let on = match r.st.elems[r.child].local {
        "enable" => true,
        "disable" => false,
        _ => return IqReply::Error(Cond::BadRequest),
    };
    let mut sessions = r.shard.sessions.borrow_mut();
    let Some(res) = sessions
        .user_mut(r.from.bare())
        .and_then(|u| u.resources.iter_mut().find(|x| x.jid == *r.from))
    else {
        return IqReply::Error(Cond::ServiceUnavailable);
    };
    res.carbons = on;
    IqReply::Result(Vec::new())
}

/// Whether a message is carbon-copied (§6): type chat, not marked private or no-copy.
pub fn eligible(stype: SType, payload: &[u8]) -> bool {
    stype == SType::Chat
        && !payload
            .windows(ns::CARBONS.len())
            .any(|w| w == ns::CARBONS.as_bytes())
        && !payload.windows(14).any(|w| w == b"<no-copy xmlns")
}

/// The user's resources with carbons on, except `except` (connection ids).
fn carbon_targets<H: Host>(shard: &H, bare: &str, except: &[u64]) -> Vec<(Jid, Rc<Sink>)> {
    shard
        .sessions
        .borrow()
        .resources_where(bare, |r| r.carbons && !except.contains(&r.ctl.id))
}

fn send(targets: Vec<(Jid, Rc<Sink>)>, bare: &str, kind: &str, message: &[Bytes]) {
    for (jid, ctl) in targets {
        let mut head = Vec::with_capacity(192);
        let mut m = Elem::new(&mut head, "message")
            .attr("xmlns", ns::CLIENT)
            .attr("from", bare)
            .attr("to", jid.as_str())
            .attr("type", "chat");
        let mut k = m.child(kind).attr("xmlns", ns::CARBONS);
        k.child("forwarded").attr("xmlns", ns::FORWARD).leave_open();
        k.leave_open();
        m.leave_open();
        let mut tail = Vec::with_capacity(48);
        end_tag(&mut tail, "forwarded");
        end_tag(&mut tail, kind);
        end_tag(&mut tail, "message");
        let mut parts: SmallVec<[Bytes; 3]> = SmallVec::with_capacity(message.len() + 2);
        parts.push(Bytes::from(head));
        parts.extend(message.iter().cloned());
        parts.push(Bytes::from(tail));
        let _ = ctl.push(
            OutFrame::text_parts(parts).copy_only(),
            router::overflow_words,
        );
    }
}

/// `<sent/>` copies to the sender's other resources (on the sender's home shard).
pub fn sent<H: Host>(shard: &H, sender: &Jid, sender_conn: u64, payload: &Bytes) {
    let targets = carbon_targets(shard, sender.bare(), &[sender_conn]);
    send(
        targets,
        sender.bare(),
        "sent",
        std::slice::from_ref(payload),
    );
}

/// `<received/>` copies to the recipient's resources that did not get the message
/// (on the recipient's home shard); `message` is the delivered stanza's parts.
pub fn received<H: Host>(shard: &H, recipient_bare: &str, delivered_to: &[u64], message: &[Bytes]) {
    let targets = carbon_targets(shard, recipient_bare, delivered_to);
    send(targets, recipient_bare, "received", message);
}
