//! XEP-0030 Service Discovery for the server and for accounts.

use super::{IqReply, IqRequest};
use crate::xmpp::errors::Cond;
use crate::xmpp::router::SType;

pub const NS_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_ITEMS: &str = "http://jabber.org/protocol/disco#items";

pub fn info(r: &IqRequest) -> IqReply {
    if r.stype != SType::Get {
        return IqReply::Error(Cond::BadRequest);
    }
    if r.st.attr(r.child, "node").is_some() {
        return IqReply::Error(Cond::ItemNotFound);
    }
    let mut v = format!("<query xmlns='{NS_INFO}'>");
    if r.to_server() {
        v.push_str("<identity category='server' type='im' name='Aoba'/>");
        for f in super::server_features() {
            v.push_str("<feature var='");
            v.push_str(f);
            v.push_str("'/>");
        }
    } else {
        v.push_str("<identity category='account' type='registered'/>");
        v.push_str(&format!("<feature var='{NS_INFO}'/>"));
    }
    v.push_str("</query>");
    IqReply::Result(v.into_bytes())
}

pub fn items(r: &IqRequest) -> IqReply {
    if r.stype != SType::Get {
        return IqReply::Error(Cond::BadRequest);
    }
    IqReply::Result(format!("<query xmlns='{NS_ITEMS}'/>").into_bytes())
}
