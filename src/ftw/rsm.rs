//! XEP-0059 result set management, both ways, for every event that pages (discovery in
//! `disco.rs`, the archive in `mam.rs`), as the original gateway's `xep-0059` helper did.
//!
//! - Requested: the payload's `rsm` object, `{max?, after?, before?, index?}`, becomes the
//!   query's `<set/>`; `before: true` (or `""`) asks for the last page.
//! - Rendered: a result's `<set/>` becomes the callback's third argument, `{count?, first?,
//!   first-index?, last?}` (`count` and `first-index` numbers).

use super::common::{Obj, R, child_text, el, opt_int, opt_obj, opt_str, opt_text, put};
use crate::xml::ns::RSM as NS_RSM;
use crate::xml::stanza::Stanza;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Stanza → events

/// The summary of the `<set/>` child of element `parent`: `{count?, first?, first-index?,
/// last?}`, a value left out when absent (or, for the numbers, not a number); `None`
/// without a `<set/>`.
pub(super) fn summary(st: &Stanza, parent: usize) -> Option<Obj> {
    let set = st.child(parent, "set", NS_RSM)?;
    let number = |t: Option<std::borrow::Cow<str>>| t.and_then(|c| c.trim().parse::<u64>().ok());
    let mut o = Obj::new();
    put(
        &mut o,
        "count",
        number(child_text(st, set, "count", NS_RSM)),
    );
    if let Some(first) = st.child(set, "first", NS_RSM) {
        o.insert("first".into(), st.text(first).into());
        put(
            &mut o,
            "first-index",
            number(st.attr(first, "index").map(|a| a.value())),
        );
    }
    put(&mut o, "last", child_text(st, set, "last", NS_RSM));
    Some(o)
}

// ---------------------------------------------------------------------------------------
// Events → stanzas

/// The `<set/>` asked for by the payload's `rsm` object, or `""` when there is none (or it
/// asks nothing). `max` and `index` are numbers of items; `after` and `before` UIDs
/// (`before: true` or `""`: the last page).
pub(super) fn request(m: &Obj) -> R<String> {
    let Some(rsm) = opt_obj(m, "rsm")? else {
        return Ok(String::new());
    };
    let number = |k| opt_int(rsm, k, 0..=i64::MAX).map(|n| n.map(|n| n.to_string()));
    let mut set = opt_text("max", number("max")?.as_deref());
    set += &opt_text("after", opt_str(rsm, "after")?.as_deref());
    set += &match rsm.get("before") {
        Some(Value::Bool(true)) => "<before/>".to_string(),
        Some(Value::Bool(false)) => String::new(),
        _ => opt_text("before", opt_str(rsm, "before")?.as_deref()),
    };
    set += &opt_text("index", number("index")?.as_deref());
    Ok(if set.is_empty() {
        set
    } else {
        el("set", &[("xmlns", Some(NS_RSM))], &set)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::stanza::Limits;
    use serde_json::json;

    fn obj(v: Value) -> Obj {
        match v {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    /// The requests of XEP-0059 §2.2, §2.5 and §2.6, from the original gateway's shape.
    #[test]
    fn requests() {
        let set = |p: Value| request(&obj(p));
        assert_eq!(set(json!({})), Ok(String::new()));
        assert_eq!(set(json!({"rsm": null})), Ok(String::new()));
        assert_eq!(set(json!({"rsm": {}})), Ok(String::new()));
        assert_eq!(
            set(json!({"rsm": {"max": 10, "after": "peterpan@neverland.lit"}})),
            Ok("<set xmlns='http://jabber.org/protocol/rsm'><max>10</max>\
                <after>peterpan@neverland.lit</after></set>"
                .into())
        );
        assert_eq!(
            set(json!({"rsm": {"max": "10", "before": true}})),
            Ok("<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set>".into())
        );
        assert_eq!(
            set(json!({"rsm": {"before": "a<b", "after": "x&y", "index": 371}})),
            Ok(
                "<set xmlns='http://jabber.org/protocol/rsm'><after>x&amp;y</after>\
                <before>a&lt;b</before><index>371</index></set>"
                    .into()
            )
        );
        assert_eq!(set(json!({"rsm": {"before": false}})), Ok(String::new()));
    }

    #[test]
    fn refused_requests() {
        let err = |p: Value| match request(&obj(p)) {
            Err(super::super::ReqError::Client(d)) => d,
            r => panic!("{r:?}"),
        };
        assert_eq!(err(json!({"rsm": 3})), "Invalid 'rsm' value");
        assert_eq!(err(json!({"rsm": {"max": "many"}})), "Invalid 'max' value");
        assert_eq!(err(json!({"rsm": {"max": -1}})), "Invalid 'max' value");
        assert_eq!(err(json!({"rsm": {"index": 1.5}})), "Invalid 'index' value");
        assert_eq!(err(json!({"rsm": {"after": [7]}})), "Invalid 'after' value");
    }

    fn summary_of(xml: &str) -> Option<Value> {
        let st = Stanza::parse(xml, &Limits::default()).unwrap();
        let q = st.children(0).next().unwrap();
        summary(&st, q).map(Value::Object)
    }

    /// The answers of XEP-0059 §2.2 (example 7), an empty page (example 6), and odd ones.
    #[test]
    fn summaries() {
        assert_eq!(
            summary_of(
                "<iq type='result' id='page2'><query xmlns='jabber:iq:search'>\
                 <set xmlns='http://jabber.org/protocol/rsm'>\
                 <first index='10'>peter@pixyland.org</first><last>peter@rabbit.lit</last>\
                 <count>800</count></set></query></iq>"
            ),
            Some(
                json!({"count": 800, "first": "peter@pixyland.org", "first-index": 10,
                        "last": "peter@rabbit.lit"})
            )
        );
        assert_eq!(
            summary_of(
                "<iq type='result' id='page80'><query xmlns='jabber:iq:search'>\
                 <set xmlns='http://jabber.org/protocol/rsm'><count>790</count></set></query></iq>"
            ),
            Some(json!({"count": 790}))
        );
        assert_eq!(
            summary_of(
                "<iq type='result'><query xmlns='q'><set xmlns='http://jabber.org/protocol/rsm'>\
                 <first index='x'>a&amp;b</first><count>lots</count></set></query></iq>"
            ),
            Some(json!({"first": "a&b"}))
        );
        assert_eq!(
            summary_of("<iq type='result'><query xmlns='q'><set xmlns='urn:other'/></query></iq>"),
            None
        );
    }
}
