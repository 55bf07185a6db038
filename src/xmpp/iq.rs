//! IQ (RFC 6120 §8.2.3, RFC 6121 §8.5): to a connected full JID it is routed; to the
//! server or to an account's bare JID the server answers, through the handlers that
//! modules register with the host (by namespace); anything else gets an error with the request's id.

use super::core::{Host, IqReply, IqRequest};
use super::errors::Cond;
use super::jid::Jid;
use super::router::{Kind, SType, route, stamp};
use super::stream::{Ctx, id_attr};
use crate::xml::ns;
use crate::xml::stanza::Stanza;
use crate::xml::writer::Elem;

pub fn on_iq<H: Host>(ctx: &Ctx<H>, st: &Stanza, stype: Option<SType>, to: Option<Jid>) {
    let Some(stype) = stype else {
        ctx.error(
            st,
            Kind::Iq,
            Cond::BadRequest,
            Some("iq type must be get, set, result or error"),
        );
        return;
    };
    let is_request = matches!(stype, SType::Get | SType::Set);
    if is_request {
        if st.attr(0, "id").is_none() {
            ctx.error(st, Kind::Iq, Cond::BadRequest, Some("iq needs an id"));
            return;
        }
        if st.children(0).count() != 1 {
            ctx.error(
                st,
                Kind::Iq,
                Cond::BadRequest,
                Some("an iq get/set has exactly one child"),
            );
            return;
        }
    }
    let domain = ctx.shard.domain();
    match &to {
        Some(j) if ctx.shard.is_component_domain(j.domain()) => {
            route(
                ctx.shard,
                stamp(st, Kind::Iq, stype, ctx.jid.as_str(), Some(j.as_str())),
            );
        }
        Some(j) if j.domain() != domain => {
            if is_request {
                ctx.error(
                    st,
                    Kind::Iq,
                    Cond::RemoteServerNotFound,
                    Some("no route to that domain"),
                );
            }
        }
        Some(j) if j.local().is_some() && j.resource().is_some() => {
            route(
                ctx.shard,
                stamp(st, Kind::Iq, stype, ctx.jid.as_str(), Some(j.as_str())),
            );
        }
        // The server itself, or an account's bare JID (answered on the account's behalf).
        _ => {
            if is_request {
                answer(ctx, st, stype, to.as_ref());
            }
            // Results and errors to the server (e.g. the answer to our ping) need nothing:
            // the traffic itself already counted as activity.
        }
    }
}

fn answer<H: Host>(ctx: &Ctx<H>, st: &Stanza, stype: SType, to: Option<&Jid>) {
    let child = st
        .children(0)
        .next()
        .expect("on_iq refuses a request without exactly one child");
    let child_ns = st.elems[child].ns;
    let reply = match ctx.shard.iq_handler(child_ns, st.elems[child].local) {
        Some(h) => h(
            ctx,
            &IqRequest {
                shard: ctx.shard,
                from: ctx.jid,
                to,
                stype,
                st,
                child,
            },
        ),
        None => IqReply::Error(Cond::ServiceUnavailable),
    };
    match reply {
        IqReply::Error(c) => ctx.error(st, Kind::Iq, c, None),
        IqReply::Later => {}
        IqReply::Result(inner) => {
            let mut v = Vec::with_capacity(96 + inner.len());
            let mut iq = Elem::new(&mut v, "iq")
                .attr("xmlns", ns::CLIENT)
                .attr("type", "result")
                .attrs_raw(id_attr(st).as_bytes());
            if let Some(t) = to {
                iq = iq.attr("from", t.as_str());
            }
            iq = iq.attr("to", ctx.jid.as_str());
            if !inner.is_empty() {
                iq = iq.raw(&inner);
            }
            iq.end();
            ctx.reply(v);
        }
    }
}
