//! XEP-0202 Entity Time: the server tells its time (UTC, and its offset: Aoba keeps UTC).

use crate::xml::ns;
use crate::xml::writer::Elem;
use crate::xmpp::core::{Host, IqReply, IqRequest};
use crate::xmpp::errors::Cond;
use crate::xmpp::router::SType;
use crate::xmpp::stream::Ctx;

/// §3: a `get` to the server is answered with `<tzo/>` and `<utc/>` (XEP-0082 format).
pub fn handle<H: Host>(_: &Ctx<H>, r: &IqRequest<H>) -> IqReply {
    if r.stype != SType::Get || !r.to_server() {
        return IqReply::Error(Cond::ServiceUnavailable);
    }
    let utc = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let mut v = Vec::with_capacity(96);
    let mut t = Elem::new(&mut v, "time").attr("xmlns", ns::TIME);
    t.child("tzo").text("+00:00").end();
    t.child("utc").text_fmt(&utc).end();
    t.end();
    IqReply::Result(v)
}
