//! Small protocol extensions, one file each, that answer IQs addressed to the server or
//! to an account (Prosody's way: core routing knows none of them; they register here).

pub mod carbons;
pub mod disco;
pub mod mam;
pub mod offline;
pub mod ping;

pub mod version;

use crate::shard::Shard;
use crate::xml::stanza::Stanza;
use crate::xmpp::errors::Cond;
use crate::xmpp::jid::Jid;
use crate::xmpp::router::SType;

pub struct IqRequest<'a, 's> {
    pub shard: &'a Shard,
    pub from: &'a Jid,
    /// `None`: sent without `to` (to the user's own account).
    pub to: Option<&'a Jid>,
    pub stype: SType,
    pub st: &'a Stanza<'s>,
    /// The iq's one child element.
    pub child: usize,
}

impl IqRequest<'_, '_> {
    /// Addressed to the server's domain (not to an account).
    pub fn to_server(&self) -> bool {
        self.to.is_some_and(|t| t.local().is_none())
    }
}

pub enum IqReply {
    /// The child of the result (may be empty).
    Result(Vec<u8>),
    Error(Cond),
}

pub type IqHandler = fn(&IqRequest) -> IqReply;

/// The handlers, by the namespace of the iq's child.
const IQ_HANDLERS: &[(&str, IqHandler)] = &[
    (ping::NS, ping::handle),
    (disco::NS_INFO, disco::info),
    (disco::NS_ITEMS, disco::items),
    (version::NS, version::handle),
    (carbons::NS, carbons::handle),
    (crate::xmpp::NS_SESSION, legacy_session),
];

/// RFC 3921 session establishment, advertised as optional (RFC 6121 Appendix E): a no-op.
fn legacy_session(r: &IqRequest) -> IqReply {
    if r.stype == SType::Set {
        IqReply::Result(Vec::new())
    } else {
        IqReply::Error(Cond::BadRequest)
    }
}

pub fn iq_handler(ns: &str) -> Option<IqHandler> {
    IQ_HANDLERS.iter().find(|(n, _)| *n == ns).map(|(_, h)| *h)
}

/// The features the server advertises in disco#info.
pub fn server_features() -> impl Iterator<Item = &'static str> {
    IQ_HANDLERS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n != crate::xmpp::NS_SESSION)
}
