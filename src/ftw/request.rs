//! XMPP-FTW events from the browser, as the stanzas an XML client would send (helper-owned).

use super::{Ctx, Pending, ReqError};
use serde_json::Value;

/// What one event becomes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Stanzas to handle as if the client had sent them, in order (no `from`).
    pub stanzas: Vec<String>,
    /// The id of the one iq among them whose result answers the callback, and its meaning.
    pub track: Option<(String, Pending)>,
    /// Without `track`: the callback's result (second argument) at once, e.g. `{id}`.
    pub immediate: Option<Value>,
}

/// Turns event `event` with `payload` into stanzas. `has_callback`: the browser passed a
/// callback. `nick_in(room)`: the nick this session joined `room` with, if it did.
/// `new_id()`: a fresh stanza id.
pub fn request(
    _event: &str,
    _payload: &Value,
    _has_callback: bool,
    _ctx: &Ctx,
    _nick_in: &dyn Fn(&str) -> Option<String>,
    _new_id: &mut dyn FnMut() -> String,
) -> Result<Request, ReqError> {
    Err(ReqError::NotImplemented)
}
