//! XEP-0092 Software Version of the server.

use crate::xmpp::core::{Host, IqReply, IqRequest};
use crate::xmpp::errors::Cond;
use crate::xmpp::router::SType;
use crate::xmpp::stream::Ctx;

pub const NS: &str = "jabber:iq:version";

pub fn handle<H: Host>(_: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    if r.stype != SType::Get || !r.to_server() {
        return IqReply::Error(Cond::ServiceUnavailable);
    }
    IqReply::Result(
        format!(
            "<query xmlns='{NS}'><name>Aoba</name><version>{}</version></query>",
            env!("CARGO_PKG_VERSION")
        )
        .into_bytes(),
    )
}
