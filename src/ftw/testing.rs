//! Unit-test helpers shared by the feature files: `deliver` a stanza to a JSON session
//! (render side) or `emit` an event from its browser (request side).

use super::render::{Out, render};
use super::request::{Request, request};
use super::{Ctx, Pending, ReqError};
use crate::xml::stanza::{Limits, Stanza};
use serde_json::Value;

/// The session under test.
pub(super) const CTX: Ctx<'static> = Ctx {
    jid: "alice@localhost/web",
    domain: "localhost",
    muc_domain: Some("conference.localhost"),
};

// ---- render side ----

/// What `xml`, delivered to the session, becomes; every iq id is pending as `pending`.
pub(super) fn deliver_with(xml: &str, pending: Option<Pending>) -> Vec<Out> {
    let st = Stanza::parse(xml, &Limits::default()).expect("test stanza parses");
    render(&st, &CTX, &|_: &str| pending.clone()).into_vec()
}

/// What `xml`, delivered to the session, becomes; no callback is waiting.
pub(super) fn deliver(xml: &str) -> Vec<Out> {
    deliver_with(xml, None)
}

pub(super) fn ev(name: &'static str, payload: Value) -> Out {
    Out::Event { name, payload }
}

/// The callback arguments of iq result or error `xml` (id `q1`) waiting as `kind`.
pub(super) fn answer(xml: &str, kind: Pending) -> Vec<Value> {
    match deliver_with(xml, Some(kind)).as_slice() {
        [Out::Answer { iq_id, args }] => {
            assert_eq!(iq_id, "q1");
            args.clone()
        }
        other => panic!("expected one answer, got {other:?}"),
    }
}

// ---- request side ----

/// The namespace declaration every built stanza starts with.
pub(super) const C: &str = "xmlns='jabber:client'";

/// What event `ev` with payload `p` (`cb`: with a callback) becomes; the session has
/// joined `group-x@conference.localhost` as `Al'<&`, and ids are `id1`, `id2`…
pub(super) fn emit(ev: &str, p: Value, cb: bool) -> Result<Request, ReqError> {
    let nick_in = |r: &str| (r == "group-x@conference.localhost").then(|| "Al'<&".to_string());
    let mut n = 0;
    request(ev, &p, cb, &CTX, &nick_in, &mut || {
        n += 1;
        format!("id{n}")
    })
}

/// The single stanza of a successful request, with its track and immediate.
pub(super) fn one(ev: &str, p: Value) -> (String, Option<(String, Pending)>, Option<Value>) {
    let r = emit(ev, p, true).unwrap();
    assert_eq!(r.stanzas.len(), 1, "{r:?}");
    (r.stanzas[0].clone(), r.track, r.immediate)
}

/// The single stanza of a successful request.
pub(super) fn xml(ev: &str, p: Value) -> String {
    one(ev, p).0
}

/// The description of the client error the request is refused with.
pub(super) fn err(ev: &str, p: Value, cb: bool) -> String {
    match emit(ev, p, cb) {
        Err(ReqError::Client(d)) => d,
        r => panic!("{ev}: {r:?}"),
    }
}

/// The single stanza of a request whose iq `id1` answers the callback as `pending`.
pub(super) fn tracked(ev: &str, p: Value, pending: Pending) -> String {
    let (x, track, imm) = one(ev, p);
    assert_eq!(track, Some(("id1".into(), pending)));
    assert_eq!(imm, None);
    x
}
