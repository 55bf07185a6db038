//! Stanzas delivered to a JSON session, as XMPP-FTW events (helper-owned; see mod.rs).

use super::{Ctx, Pending};
use crate::xml::stanza::Stanza;
use serde_json::Value;
use smallvec::SmallVec;

/// What one delivered stanza becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Emit event `name` with `payload` to the browser.
    Event { name: &'static str, payload: Value },
    /// The answer to the callback waiting for iq `iq_id`: the callback's arguments,
    /// e.g. `[null, true]`, `[{type, condition, description?}]`, `[null, echo, rsm]`.
    Answer { iq_id: String, args: Vec<Value> },
    /// A stanza to send on the session's behalf (an automatic answer).
    Reply(String),
}

/// Renders one stanza delivered to the session. `pending(id)` says whether an iq result
/// or error with that id answers a waiting callback, and how to read it.
pub fn render(
    _st: &Stanza,
    _ctx: &Ctx,
    _pending: &dyn Fn(&str) -> Option<Pending>,
) -> SmallVec<[Out; 2]> {
    SmallVec::new()
}
