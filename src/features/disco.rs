//! XEP-0030 Service Discovery for the server and for accounts.

use crate::xml::ns;
use crate::xml::writer::Elem;
use crate::xmpp::core::{Host, IqReply, IqRequest};
use crate::xmpp::errors::Cond;
use crate::xmpp::router::SType;
use crate::xmpp::stream::Ctx;

pub fn info<H: Host>(_: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    if r.stype != SType::Get {
        return IqReply::Error(Cond::BadRequest);
    }
    if r.st.attr(r.child, "node").is_some() {
        return IqReply::Error(Cond::ItemNotFound);
    }
    let mut v = Vec::with_capacity(512);
    let mut q = Elem::new(&mut v, "query").attr("xmlns", ns::DISCO_INFO);
    if r.to_server() {
        q.child("identity")
            .attr("category", "server")
            .attr("type", "im")
            .attr("name", "Aoba")
            .end();
        // Exactly what works: what the host's modules declare.
        for f in r.shard.server_features() {
            q.child("feature").attr("var", f).end();
        }
    } else {
        q.child("identity")
            .attr("category", "account")
            .attr("type", "registered")
            .end();
        q.child("feature").attr("var", ns::DISCO_INFO).end();
        for f in r.shard.account_features() {
            q.child("feature").attr("var", f).end();
        }
    }
    q.end();
    IqReply::Result(v)
}

pub fn items<H: Host>(_: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    if r.stype != SType::Get {
        return IqReply::Error(Cond::BadRequest);
    }
    // The server's items are its services (the MUC); an account has none to show.
    let mut v = Vec::with_capacity(128);
    let mut q = Elem::new(&mut v, "query")
        .attr("xmlns", ns::DISCO_ITEMS)
        .start_content();
    if r.to_server() {
        for d in &r.shard.shared.component_domains {
            q.child("item").attr("jid", d).end();
        }
    }
    q.end();
    IqReply::Result(v)
}
