//! Messages from a session (RFC 6121 §5, §8.5). Receipt requests and receipts (XEP-0184)
//! are children the server forwards untouched, with the sender's `id` kept.

use super::core::Host;
use super::errors::Cond;
use super::jid::Jid;
use super::router::{Kind, SType, route, stamp};
use super::stream::Ctx;
use crate::xml::stanza::Stanza;

pub fn on_message<H: Host>(ctx: &Ctx<H>, st: &Stanza, stype: SType, to: Option<Jid>) {
    let domain = ctx.shard.domain();
    // RFC 6120 §10.3.1: no 'to' means the sender's own bare JID.
    let to_str: &str = match &to {
        None => ctx.jid.bare(),
        Some(j) => j.as_str(),
    };
    let to_domain = to.as_ref().map_or(domain, |j| j.domain());
    let to_local = to.as_ref().is_none_or(|j| j.local().is_some());
    if to_domain != domain && !ctx.shard.is_component_domain(to_domain) {
        if stype != SType::Error {
            ctx.error(
                st,
                Kind::Message,
                Cond::RemoteServerNotFound,
                Some("no route to that domain"),
            );
        }
        return;
    }
    if !to_local && to_domain == domain {
        // To the server itself: nothing here consumes messages.
        if matches!(stype, SType::Chat | SType::Normal) {
            ctx.error(st, Kind::Message, Cond::ServiceUnavailable, None);
        }
        return;
    }
    let r = stamp(st, Kind::Message, stype, ctx.jid.as_str(), Some(to_str));
    ctx.shard
        .on_message_out(ctx.jid, ctx.ctl.id, &r, to_domain == domain);
    route(ctx.shard, r);
}
