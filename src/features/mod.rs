//! Small protocol extensions, one file each: IQ handlers for requests to the server or to
//! an account, and the hooks the per-shard host (`server::shard`) calls (Prosody's way:
//! core routing knows none of them; the host's module list names them).

pub mod carbons;
pub mod disco;
pub mod mam;
pub mod offline;
pub mod ping;
pub mod roster;
pub mod sm;
pub mod time;
pub mod version;

use crate::xmpp::core::{Host, IqReply, IqRequest};
use crate::xmpp::errors::Cond;
use crate::xmpp::router::SType;
use crate::xmpp::stream::Ctx;

/// RFC 3921 session establishment, advertised as optional (RFC 6121 Appendix E): a no-op.
pub fn legacy_session<H: Host>(_: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    if r.stype == SType::Set {
        IqReply::Result(Vec::new())
    } else {
        IqReply::Error(Cond::BadRequest)
    }
}
