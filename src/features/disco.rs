//! XEP-0030 Service Discovery for the server and for accounts.

use crate::xmpp::core::{Host, IqReply, IqRequest};
use crate::xmpp::errors::Cond;
use crate::xmpp::router::SType;
use crate::xmpp::stream::Ctx;

pub const NS_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_ITEMS: &str = "http://jabber.org/protocol/disco#items";

pub fn info<H: Host>(_: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    if r.stype != SType::Get {
        return IqReply::Error(Cond::BadRequest);
    }
    if r.st.attr(r.child, "node").is_some() {
        return IqReply::Error(Cond::ItemNotFound);
    }
    let mut v = format!("<query xmlns='{NS_INFO}'>");
    if r.to_server() {
        v.push_str("<identity category='server' type='im' name='Aoba'/>");
        // Exactly what works: what the host's modules declare.
        for f in r.shard.server_features() {
            v.push_str("<feature var='");
            v.push_str(f);
            v.push_str("'/>");
        }
    } else {
        v.push_str("<identity category='account' type='registered'/>");
        v.push_str(&format!("<feature var='{NS_INFO}'/>"));
        for f in r.shard.account_features() {
            v.push_str("<feature var='");
            v.push_str(f);
            v.push_str("'/>");
        }
    }
    v.push_str("</query>");
    IqReply::Result(v.into_bytes())
}

pub fn items<H: Host>(_: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    if r.stype != SType::Get {
        return IqReply::Error(Cond::BadRequest);
    }
    // The server's items are its services (the MUC); an account has none to show.
    let mut v = format!("<query xmlns='{NS_ITEMS}'>");
    if r.to_server() {
        for d in &r.shard.shared.component_domains {
            v.push_str(&format!(
                "<item jid='{}'/>",
                crate::xml::escape::escape_attr_to_string(d)
            ));
        }
    }
    v.push_str("</query>");
    IqReply::Result(v.into_bytes())
}
