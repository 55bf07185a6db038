//! XEP-0199 XMPP Ping: the server answers pings addressed to it (or to an account).
//! The server's own keepalive pings to idle clients live in the connection task.

use crate::xmpp::core::{Host, IqReply, IqRequest};
use crate::xmpp::router::SType;
use crate::xmpp::stream::Ctx;

pub fn handle<H: Host>(_: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    if r.stype == SType::Get {
        IqReply::Result(Vec::new())
    } else {
        IqReply::Error(crate::xmpp::errors::Cond::BadRequest)
    }
}
