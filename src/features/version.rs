//! XEP-0092 Software Version of the server.

use crate::xml::ns;
use crate::xml::writer::Elem;
use crate::xmpp::core::{Host, IqReply, IqRequest};
use crate::xmpp::errors::Cond;
use crate::xmpp::router::SType;
use crate::xmpp::stream::Ctx;

pub fn handle<H: Host>(_: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    if r.stype != SType::Get || !r.to_server() {
        return IqReply::Error(Cond::ServiceUnavailable);
    }
    let mut v = Vec::with_capacity(96);
    let mut q = Elem::new(&mut v, "query").attr("xmlns", ns::VERSION);
    q.child("name").text("Aoba").end();
    q.child("version").text(env!("CARGO_PKG_VERSION")).end();
    q.end();
    IqReply::Result(v)
}
