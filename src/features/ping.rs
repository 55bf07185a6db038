//! XEP-0199 XMPP Ping: the server answers pings addressed to it (or to an account).
//! The server's own keepalive pings to idle clients live in the connection task.

use super::{IqReply, IqRequest};
use crate::xmpp::router::SType;

pub const NS: &str = "urn:xmpp:ping";

pub fn handle(r: &IqRequest) -> IqReply {
    if r.stype == SType::Get {
        IqReply::Result(Vec::new())
    } else {
        IqReply::Error(crate::xmpp::errors::Cond::BadRequest)
    }
}
