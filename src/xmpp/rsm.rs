//! XEP-0059 Result Set Management: the `<set/>` a request pages with, read from the
//! borrowed view ([`Query`]), and the `<set/>` that says what a page holds, written with the
//! element writer ([`Page`]). Every paged answer uses these: the message archive
//! (`features/mam.rs`) and the MUC service's room directory (`muc/directory.rs`). What the
//! UIDs are, and how a page is cut, is the using protocol's business.

use crate::xml::ns::RSM as NS;
use crate::xml::stanza::Stanza;
use crate::xml::writer::Elem;
use crate::xmpp::errors::Cond;
use std::borrow::Cow;
use std::fmt::Display;
use std::num::IntErrorKind;

/// What a request's `<set/>` asks for (XEP-0059 §2). UIDs are opaque, their surrounding
/// whitespace trimmed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    /// `<max/>`: at most this many items (§2.1); 0 asks for the count alone (§2.7). A
    /// number too large for `usize` reads as `usize::MAX` (the using protocol caps it).
    pub max: Option<usize>,
    /// `<after/>`: the page that starts right after the item with this UID (§2.2).
    pub after: Option<Cow<'a, str>>,
    /// `<before/>`: the page that ends right before the item with this UID (§2.3); empty:
    /// the last page (§2.5).
    pub before: Option<Cow<'a, str>>,
    /// `<index/>`: the page that starts at this position in the full set (§2.6).
    pub index: Option<usize>,
}

impl<'a> Query<'a> {
    /// The `<set/>` child of element `parent`, or `None` when there is none. A `<max/>` or
    /// `<index/>` that is not a number of items (empty, negative, not digits) is
    /// `bad-request`.
    pub fn parse(st: &Stanza<'a>, parent: usize) -> Result<Option<Query<'a>>, Cond> {
        let Some(set) = st.child(parent, "set", NS) else {
            return Ok(None);
        };
        let text = |local: &str| st.child(set, local, NS).map(|e| trimmed(st.text(e)));
        let number = |local: &str| text(local).map(|t| count(&t)).transpose();
        Ok(Some(Query {
            max: number("max")?,
            after: text("after"),
            before: text("before"),
            index: number("index")?,
        }))
    }
}

/// A number of items: digits, saturating at `usize::MAX`.
fn count(t: &str) -> Result<usize, Cond> {
    t.parse::<usize>().or_else(|e| match e.kind() {
        IntErrorKind::PosOverflow => Ok(usize::MAX),
        _ => Err(Cond::BadRequest),
    })
}

/// `c` without leading and trailing whitespace, still borrowed when it was.
fn trimmed(c: Cow<'_, str>) -> Cow<'_, str> {
    match c {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
    }
}

/// What a page of a result set says about itself (XEP-0059 §2.2), written as the `<set/>`
/// of an answer: the UIDs of its first and last items, with the first's position in the
/// full set (none of these for an empty page), and the full set's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<I> {
    /// The UIDs of the page's first and last items (the same UID for a page of one); `None`
    /// for an empty page.
    pub ends: Option<(I, I)>,
    /// The first item's position in the full set (`<first index='…'>`), when known.
    pub index: Option<usize>,
    /// The number of items in the full set (`<count/>`), when known.
    pub count: Option<usize>,
}

impl<I: Display> Page<I> {
    /// Writes `<set xmlns='http://jabber.org/protocol/rsm'>` as the next child of `parent`:
    /// `<first index='…'>`, `<last/>` and `<count/>` as far as they are known; `<set/>` when
    /// nothing is.
    pub fn write(&self, parent: &mut Elem<'_, '_>) {
        let mut set = parent.child("set").attr("xmlns", NS);
        if let Some((first, last)) = &self.ends {
            let mut f = set.child("first");
            if let Some(i) = self.index {
                f = f.attr_fmt("index", i);
            }
            f.text_fmt(first).end();
            set.child("last").text_fmt(last).end();
        }
        if let Some(n) = self.count {
            set.child("count").text_fmt(n).end();
        }
        set.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::stanza::Limits;

    /// A request's `<set/>` as owned values: `(max, after, before, index)`.
    type Asked = (Option<usize>, Option<String>, Option<String>, Option<usize>);

    /// What the `<set/>` in the first child of `xml` asks.
    fn parse(xml: &str) -> Result<Option<Asked>, Cond> {
        let st = Stanza::parse(xml, &Limits::default()).unwrap();
        let q = st.children(0).next().unwrap();
        let own = |c: Option<Cow<str>>| c.map(Cow::into_owned);
        Query::parse(&st, q).map(|q| q.map(|q| (q.max, own(q.after), own(q.before), q.index)))
    }

    fn set(inner: &str) -> String {
        format!(
            "<iq type='get' id='ex2'><query xmlns='http://jabber.org/protocol/disco#items'>\
             <set xmlns='http://jabber.org/protocol/rsm'>{inner}</set></query></iq>"
        )
    }

    /// The requests of XEP-0059 §2.1–2.7 (and §3, example 17), as the using protocol gets
    /// them.
    #[test]
    fn requests_of_the_xep() {
        let q = |max, after: Option<&str>, before: Option<&str>, index| {
            Ok(Some((
                max,
                after.map(String::from),
                before.map(String::from),
                index,
            )))
        };
        // §2.1, example 1: a limit.
        assert_eq!(parse(&set("<max>10</max>")), q(Some(10), None, None, None));
        // §2.2, example 5: the page after the last UID received (whitespace as indented).
        assert_eq!(
            parse(&set(
                "\n  <max>10</max>\n  <after>\n peterpan@neverland.lit </after>\n"
            )),
            q(Some(10), Some("peterpan@neverland.lit"), None, None)
        );
        // §2.3, example 8: the page before the first UID received.
        assert_eq!(
            parse(&set("<max>10</max><before>peter@pixyland.org</before>")),
            q(Some(10), None, Some("peter@pixyland.org"), None)
        );
        // §2.5, example 11: the last page.
        assert_eq!(
            parse(&set("<max>10</max><before/>")),
            q(Some(10), None, Some(""), None)
        );
        // §2.6, example 12: a page at an index.
        assert_eq!(
            parse(&set("<max>10</max><index>371</index>")),
            q(Some(10), None, None, Some(371))
        );
        // §2.7, example 15: the count alone.
        assert_eq!(parse(&set("<max>0</max>")), q(Some(0), None, None, None));
        // An empty <set/> asks for nothing in particular; no <set/> is not paging.
        assert_eq!(parse(&set("")), q(None, None, None, None));
        assert_eq!(
            parse("<iq type='get'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"),
            Ok(None)
        );
        // Escaped UIDs are read decoded.
        assert_eq!(
            parse(&set("<after>a&amp;b</after>")),
            q(None, Some("a&b"), None, None)
        );
        // A <set/> of another namespace is not RSM.
        assert_eq!(
            parse(
                "<iq type='get'><query xmlns='http://jabber.org/protocol/disco#items'>\
                 <set xmlns='urn:example'><max>x</max></set></query></iq>"
            ),
            Ok(None)
        );
    }

    #[test]
    fn a_max_or_index_that_is_no_number_is_a_bad_request() {
        for inner in [
            "<max>ten</max>",
            "<max/>",
            "<max>-1</max>",
            "<max>1.5</max>",
            "<index>first</index>",
            "<index>-3</index>",
        ] {
            assert_eq!(parse(&set(inner)), Err(Cond::BadRequest), "{inner}");
        }
        // Too large for usize: as many as the using protocol allows.
        assert_eq!(
            parse(&set("<max>99999999999999999999999999</max>")),
            Ok(Some((Some(usize::MAX), None, None, None)))
        );
    }

    fn written(page: &Page<&str>) -> String {
        let mut v = Vec::new();
        let mut q = Elem::new(&mut v, "query").attr("xmlns", "q");
        page.write(&mut q);
        q.end();
        String::from_utf8(v).unwrap()
    }

    /// The answers of XEP-0059 §2.2 (examples 4 and 7), §2.7 (example 16) and an empty
    /// page (example 6); UIDs escaped.
    #[test]
    fn pages_of_the_xep() {
        assert_eq!(
            written(&Page {
                ends: Some(("stpeter@jabber.org", "peterpan@neverland.lit")),
                index: Some(0),
                count: Some(800),
            }),
            "<query xmlns='q'><set xmlns='http://jabber.org/protocol/rsm'>\
             <first index='0'>stpeter@jabber.org</first><last>peterpan@neverland.lit</last>\
             <count>800</count></set></query>"
        );
        assert_eq!(
            written(&Page {
                ends: None,
                index: None,
                count: Some(790),
            }),
            "<query xmlns='q'><set xmlns='http://jabber.org/protocol/rsm'>\
             <count>790</count></set></query>"
        );
        assert_eq!(
            written(&Page {
                ends: Some(("a<b", "a<b")),
                index: None,
                count: None,
            }),
            "<query xmlns='q'><set xmlns='http://jabber.org/protocol/rsm'>\
             <first>a&lt;b</first><last>a&lt;b</last></set></query>"
        );
        assert_eq!(
            written(&Page {
                ends: None,
                index: Some(3),
                count: None,
            }),
            "<query xmlns='q'><set xmlns='http://jabber.org/protocol/rsm'/></query>"
        );
    }
}
