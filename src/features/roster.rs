//! RFC 6121 §2 roster get. Rosters are stored by the storage layer (not built yet): until
//! then every roster is empty and a roster set is refused rather than silently forgotten.

use super::{IqReply, IqRequest};
use crate::xmpp::errors::Cond;
use crate::xmpp::router::SType;

pub const NS: &str = "jabber:iq:roster";

pub fn handle(r: &IqRequest) -> IqReply {
    if r.to.is_some_and(|t| t.bare() != r.from.bare()) {
        return IqReply::Error(Cond::Forbidden);
    }
    match r.stype {
        SType::Get => IqReply::Result(format!("<query xmlns='{NS}'/>").into_bytes()),
        _ => IqReply::Error(Cond::ServiceUnavailable),
    }
}
