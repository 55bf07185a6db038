//! Requests to a JSON session that its browser answers itself.
//!
//! A ping (XEP-0199) or a disco#info query (XEP-0030) addressed to the session is shown
//! to the browser (`xmpp.ping`, `xmpp.discover.client`, with the asker's `from` and the
//! iq's `id`). By default the server answers it at once for the session, as for any XMPP
//! client it hosts. A session that logged in with `answers: ["xmpp.ping",
//! "xmpp.discover.client"]` (either or both) answers those itself (`xmpp.ping.pong`,
//! `xmpp.discover.client` with `to`, `id` and `features`), as the original gateway's
//! browsers did; the request waits for that answer here, bounded two ways:
//!
//! - at most `ftw.max_pending_incoming_iqs` requests wait per session; another one gets
//!   `wait`/`resource-constraint` at once (and is not shown);
//! - each waits at most `ftw.incoming_iq_timeout_ms`; then, or when the session ends
//!   first, the asker gets `cancel`/`service-unavailable` (RFC 6120 §8.4: every iq get is
//!   answered).
//!
//! An answer that names no waiting request (wrong `to` or `id`, already answered, timed
//! out, or a session that did not opt in) is a client error. The requests wait oldest
//! first, and every one waits as long, so the oldest is always the next to time out.

use super::common::{XMLNS, el};
use super::render::{Ask, Asked};
use crate::xml::escape::escape_text_to_string;
use crate::xml::ns::DISCO_INFO as NS_DISCO_INFO;
use crate::xml::ns::STANZAS as NS_STANZAS;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The client error for an answer that matches no waiting request.
pub(super) const NOTHING_WAITING: &str =
    "No request with this 'id' from 'to' is waiting for an answer";

/// Which kinds of request the browser answers itself (`answers` of `xmpp.login`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answers {
    ping: bool,
    disco: bool,
}

impl Answers {
    /// `answers` of `xmpp.login`: absent (or `null`), or an array of the event names
    /// `"xmpp.ping"` and `"xmpp.discover.client"`. Anything else is `Err`.
    pub fn parse(v: Option<&Value>) -> Result<Answers, ()> {
        let mut a = Answers::default();
        let list = match v {
            None | Some(Value::Null) => return Ok(a),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(()),
        };
        for name in list {
            match name.as_str() {
                Some("xmpp.ping") => a.ping = true,
                Some("xmpp.discover.client") => a.disco = true,
                _ => return Err(()),
            }
        }
        Ok(a)
    }

    fn covers(self, kind: Asked) -> bool {
        match kind {
            Asked::Ping => self.ping,
            Asked::DiscoInfo => self.disco,
        }
    }
}

/// A request waiting for the browser's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    kind: Asked,
    from: String,
    id: String,
    node: Option<String>,
    deadline: Instant,
}

/// What to do with a request to the session.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Show it; it waits for the browser's answer.
    Hold,
    /// Show it, and answer it now for the session (the browser does not answer this kind).
    Auto,
    /// Do not show it; send this refusal (too many are waiting).
    Refuse(String),
}

/// The requests of one session that wait for its browser.
#[derive(Debug, Default)]
pub struct Waiting {
    /// What the browser answers itself.
    pub answers: Answers,
    /// Oldest first.
    held: VecDeque<Held>,
}

impl Waiting {
    /// A request `a` to the session at `now`: held (at most `max` at once, each for
    /// `timeout`), answered for the session, or refused.
    pub fn ask(&mut self, a: &Ask, now: Instant, max: usize, timeout: Duration) -> Decision {
        let Some(id) = a.id.as_ref().filter(|_| self.answers.covers(a.kind)) else {
            return Decision::Auto;
        };
        if self.held.len() >= max {
            return Decision::Refuse(error(
                &a.from,
                id,
                "wait",
                "resource-constraint",
                "too many requests are waiting for this client's answer",
            ));
        }
        self.held.push_back(Held {
            kind: a.kind,
            from: a.from.clone(),
            id: id.clone(),
            node: a.node.clone(),
            deadline: now + timeout,
        });
        Decision::Hold
    }

    /// The waiting request of `kind` from `from` with `id`, taken out (the oldest if the
    /// asker repeated an id).
    pub fn take(&mut self, kind: Asked, from: &str, id: &str) -> Option<Held> {
        let i = self
            .held
            .iter()
            .position(|h| h.kind == kind && h.id == id && h.from == from)?;
        self.held.remove(i)
    }

    /// When the oldest waiting request times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held.front().map(|h| h.deadline)
    }

    /// Takes out the requests whose time is up at `now`; their refusals.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(h) = self.held.front().filter(|h| h.deadline <= now) {
            out.push(unavailable(h, "this client did not answer in time"));
            self.held.pop_front();
        }
        out
    }

    /// Takes out every waiting request (the session is ending); their refusals.
    pub fn abandon(&mut self) -> Vec<String> {
        self.held
            .drain(..)
            .map(|h| unavailable(&h, "this client went offline"))
            .collect()
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.held.len()
    }
}

/// The result of waiting request `h` carrying `inner` (the children of a disco#info
/// `<query/>`, which echoes the asked node; nothing for a ping).
pub fn answer(h: &Held, inner: &str) -> String {
    let payload = match h.kind {
        Asked::Ping => String::new(),
        Asked::DiscoInfo => el(
            "query",
            &[("xmlns", Some(NS_DISCO_INFO)), ("node", h.node.as_deref())],
            inner,
        ),
    };
    el(
        "iq",
        &[
            XMLNS,
            ("type", Some("result")),
            ("to", Some(&h.from)),
            ("id", Some(&h.id)),
        ],
        &payload,
    )
}

fn unavailable(h: &Held, why: &str) -> String {
    error(&h.from, &h.id, "cancel", "service-unavailable", why)
}

/// An iq error to `to` for request `id`.
fn error(to: &str, id: &str, ty: &str, condition: &str, text: &str) -> String {
    let stanzas = ("xmlns", Some(NS_STANZAS));
    let inner =
        el(condition, &[stanzas], "") + &el("text", &[stanzas], &escape_text_to_string(text));
    let err = el("error", &[("type", Some(ty))], &inner);
    el(
        "iq",
        &[
            XMLNS,
            ("type", Some("error")),
            ("to", Some(to)),
            ("id", Some(id)),
        ],
        &err,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ask(kind: Asked, id: &str) -> Ask {
        Ask {
            kind,
            from: "bob@localhost/desk".into(),
            id: Some(id.into()),
            node: (kind == Asked::DiscoInfo).then(|| "https://app.example#v='1'".into()),
            event: "xmpp.ping",
            payload: json!({}),
            auto: "<iq/>".into(),
        }
    }

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn opt_in() {
        assert_eq!(Answers::parse(None), Ok(Answers::default()));
        assert_eq!(Answers::parse(Some(&json!(null))), Ok(Answers::default()));
        assert_eq!(
            Answers::parse(Some(&json!(["xmpp.ping", "xmpp.discover.client"]))),
            Ok(Answers {
                ping: true,
                disco: true
            })
        );
        for bad in [
            json!("xmpp.ping"),
            json!(["xmpp.pong"]),
            json!([1]),
            json!({}),
        ] {
            assert_eq!(Answers::parse(Some(&bad)), Err(()), "{bad}");
        }
        // Without the opt-in, the server answers.
        let mut w = Waiting::default();
        let now = Instant::now();
        assert_eq!(w.ask(&ask(Asked::Ping, "p1"), now, 4, T), Decision::Auto);
        w.answers = Answers::parse(Some(&json!(["xmpp.discover.client"]))).unwrap();
        assert_eq!(w.ask(&ask(Asked::Ping, "p1"), now, 4, T), Decision::Auto);
        assert_eq!(
            w.ask(&ask(Asked::DiscoInfo, "d1"), now, 4, T),
            Decision::Hold
        );
        // A request without an id cannot be answered by id: the server answers.
        let mut no_id = ask(Asked::DiscoInfo, "x");
        no_id.id = None;
        assert_eq!(w.ask(&no_id, now, 4, T), Decision::Auto);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn held_requests_are_bounded_and_answered_once() {
        let mut w = Waiting {
            answers: Answers {
                ping: true,
                disco: true,
            },
            ..Default::default()
        };
        let now = Instant::now();
        assert_eq!(w.ask(&ask(Asked::Ping, "p1"), now, 2, T), Decision::Hold);
        assert_eq!(
            w.ask(&ask(Asked::DiscoInfo, "d1"), now, 2, T),
            Decision::Hold
        );
        // Past the bound: refused at once.
        assert_eq!(
            w.ask(&ask(Asked::Ping, "p2"), now, 2, T),
            Decision::Refuse(
                "<iq xmlns='jabber:client' type='error' to='bob@localhost/desk' id='p2'>\
                 <error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>too many requests are waiting \
                 for this client's answer</text></error></iq>"
                    .into()
            )
        );
        assert_eq!(w.len(), 2);
        // The kind, the asker and the id must all match.
        assert_eq!(w.take(Asked::DiscoInfo, "bob@localhost/desk", "p1"), None);
        assert_eq!(w.take(Asked::Ping, "bob@localhost/other", "p1"), None);
        let p = w.take(Asked::Ping, "bob@localhost/desk", "p1").unwrap();
        assert_eq!(
            answer(&p, ""),
            "<iq xmlns='jabber:client' type='result' to='bob@localhost/desk' id='p1'/>"
        );
        assert_eq!(
            w.take(Asked::Ping, "bob@localhost/desk", "p1"),
            None,
            "answered once"
        );
        let d = w
            .take(Asked::DiscoInfo, "bob@localhost/desk", "d1")
            .unwrap();
        assert_eq!(
            answer(&d, "<feature var='urn:xmpp:ping'/>"),
            "<iq xmlns='jabber:client' type='result' to='bob@localhost/desk' id='d1'>\
             <query xmlns='http://jabber.org/protocol/disco#info' node='https://app.example#v=&apos;1&apos;'>\
             <feature var='urn:xmpp:ping'/></query></iq>"
        );
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn time_out_oldest_first_and_at_the_end() {
        let mut w = Waiting {
            answers: Answers {
                ping: true,
                disco: true,
            },
            ..Default::default()
        };
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        w.ask(&ask(Asked::Ping, "p1"), t0, 8, T);
        w.ask(&ask(Asked::Ping, "p2"), t1, 8, T);
        w.ask(&ask(Asked::DiscoInfo, "d3"), t1, 8, T);
        assert_eq!(w.next_deadline(), Some(t0 + T));
        assert_eq!(
            w.expire(t0 + T - Duration::from_millis(1)),
            Vec::<String>::new()
        );
        assert_eq!(
            w.expire(t0 + T),
            vec![
                "<iq xmlns='jabber:client' type='error' to='bob@localhost/desk' id='p1'>\
                 <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>this client did not answer in time\
                 </text></error></iq>"
                    .to_string()
            ]
        );
        assert_eq!(w.next_deadline(), Some(t1 + T));
        let gone = w.abandon();
        assert_eq!(gone.len(), 2);
        assert!(
            gone[1].contains("id='d3'") && gone[1].contains("went offline"),
            "{gone:?}"
        );
        assert_eq!(w.len(), 0);
    }
}
