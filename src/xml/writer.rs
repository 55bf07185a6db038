//! The one writer for the XML the server makes itself (answers, errors, wrappers): an
//! element written straight into a `Vec<u8>`, attributes in the order given and quoted
//! with `'`, values and text escaped ([`super::escape`]), `/>` when it has no content.
//!
//! ```
//! use aoba::xml::writer::Elem;
//! let mut v = Vec::new();
//! let mut iq = Elem::new(&mut v, "iq").attr("type", "result").attr("to", "a@b/c<");
//! iq.child("ping").attr("xmlns", "urn:xmpp:ping").end();
//! iq.child("note").text("1 < 2").end();
//! iq.end();
//! assert_eq!(
//!     v,
//!     b"<iq type='result' to='a@b/c&lt;'><ping xmlns='urn:xmpp:ping'/><note>1 &lt; 2</note></iq>"
//! );
//! ```
//!
//! Attribute and content calls take and give back the element, so a small element is one
//! chain ending in [`Elem::end`]; [`Elem::child`] borrows its parent for a nested element.
//! Dropping an element ends it as `end` would. Nothing is allocated but the output buffer
//! (numbers and other `Display` values are formatted into it, escaped on the way).

use super::escape::{escape_attr, escape_text};
use std::fmt::{self, Display, Write as _};
use std::ops::Range;

/// An element being written at the end of a buffer; see the module documentation.
pub struct Elem<'o, 'n> {
    out: &'o mut Vec<u8>,
    name: &'n str,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the start tag: attributes may follow, `/>` if nothing else does.
    Start,
    /// The start tag is ended (`>`): content was written, `</name>` closes it.
    Content,
    /// Nothing more to write: ended, or left open on purpose (`leave_open`).
    Done,
}

impl<'o, 'n> Elem<'o, 'n> {
    /// Writes `<name` at the end of `out`.
    pub fn new(out: &'o mut Vec<u8>, name: &'n str) -> Self {
        out.push(b'<');
        out.extend_from_slice(name.as_bytes());
        Elem {
            out,
            name,
            state: State::Start,
        }
    }

    /// ` name='value'`, the value escaped.
    pub fn attr(mut self, name: &str, value: &str) -> Self {
        self.attr_span(name, value);
        self
    }

    /// Like [`Elem::attr`]; returns where the escaped value is in the buffer.
    pub fn attr_span(&mut self, name: &str, value: &str) -> Range<usize> {
        self.attr_start(name);
        let start = self.out.len();
        escape_attr(value, self.out);
        let span = start..self.out.len();
        self.out.push(b'\'');
        span
    }

    /// ` name='value'` with the value's `Display` output, escaped (numbers, ids).
    pub fn attr_fmt(mut self, name: &str, value: impl Display) -> Self {
        self.attr_start(name);
        let _ = write!(EscapeAttr(self.out), "{value}");
        self.out.push(b'\'');
        self
    }

    /// ` name='value'` with a value that is already escaped, written as it is.
    pub fn attr_raw(mut self, name: &str, value: &[u8]) -> Self {
        self.attr_start(name);
        self.out.extend_from_slice(value);
        self.out.push(b'\'');
        self
    }

    /// A space and `attrs`, attributes already written as XML (e.g. a stanza's own
    /// `id='…'`, copied verbatim), written as they are, even when empty.
    pub fn attrs_raw(self, attrs: &[u8]) -> Self {
        self.open_tag();
        self.out.push(b' ');
        self.out.extend_from_slice(attrs);
        self
    }

    /// Text content, escaped. Even empty text ends the start tag: `text("")` gives
    /// `<name></name>`, not `<name/>`.
    pub fn text(mut self, text: &str) -> Self {
        self.content();
        escape_text(text, self.out);
        self
    }

    /// Text content from a `Display` value, escaped.
    pub fn text_fmt(mut self, value: impl Display) -> Self {
        self.content();
        let _ = write!(EscapeText(self.out), "{value}");
        self
    }

    /// Content that is already XML (a stanza's bytes, a prepared child), as it is.
    pub fn raw(mut self, xml: &[u8]) -> Self {
        self.content();
        self.out.extend_from_slice(xml);
        self
    }

    /// Content that is already XML, written into the buffer by `write` (e.g. a stanza kept
    /// as several slices).
    pub fn raw_with(mut self, write: impl FnOnce(&mut Vec<u8>)) -> Self {
        self.content();
        write(self.out);
        self
    }

    /// Ends the start tag now, so that the element ends with `</name>` even when no
    /// content follows (`<name></name>`, where a peer or a test expects that form).
    pub fn start_content(mut self) -> Self {
        self.content();
        self
    }

    /// Starts a child element (ending this one's start tag first). End the child before
    /// writing more of this one.
    pub fn child<'c, 'm>(&'c mut self, name: &'m str) -> Elem<'c, 'm> {
        self.content();
        Elem::new(self.out, name)
    }

    /// The buffer's length: where the next byte goes.
    pub fn pos(&self) -> usize {
        self.out.len()
    }

    /// Ends the start tag and nothing else: the head of a wrapper whose content and end
    /// tag ([`end_tag`]) are written, or sent, separately.
    pub fn leave_open(mut self) {
        self.content();
        self.state = State::Done;
    }

    /// Ends the element: `/>` if nothing followed the attributes, else `</name>`.
    pub fn end(self) {}

    fn open_tag(&self) {
        debug_assert!(
            self.state == State::Start,
            "<{}>: an attribute after the start tag",
            self.name
        );
    }

    fn attr_start(&mut self, name: &str) {
        self.open_tag();
        self.out.push(b' ');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"='");
    }

    fn content(&mut self) {
        debug_assert!(
            self.state != State::Done,
            "<{}>: written after its end",
            self.name
        );
        if self.state == State::Start {
            self.out.push(b'>');
            self.state = State::Content;
        }
    }
}

impl Drop for Elem<'_, '_> {
    fn drop(&mut self) {
        match self.state {
            State::Start => self.out.extend_from_slice(b"/>"),
            State::Content => end_tag(self.out, self.name),
            State::Done => {}
        }
        self.state = State::Done;
    }
}

/// `</name>`: the end of an element written as a separate head ([`Elem::leave_open`]).
pub fn end_tag(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"</");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

/// Formats into the buffer, escaping as an attribute value.
struct EscapeAttr<'a>(&'a mut Vec<u8>);

impl fmt::Write for EscapeAttr<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_attr(s, self.0);
        Ok(())
    }
}

/// Formats into the buffer, escaping as text.
struct EscapeText<'a>(&'a mut Vec<u8>);

impl fmt::Write for EscapeText<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_text(s, self.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn empty_element_self_closes() {
        let mut v = Vec::new();
        Elem::new(&mut v, "a").end();
        assert_eq!(s(v), "<a/>");
        let mut v = Vec::new();
        Elem::new(&mut v, "a")
            .attr("xmlns", "urn:xmpp:sm:3")
            .attr_fmt("h", 42u32)
            .end();
        assert_eq!(s(v), "<a xmlns='urn:xmpp:sm:3' h='42'/>");
    }

    #[test]
    fn empty_text_keeps_the_end_tag() {
        let mut v = Vec::new();
        Elem::new(&mut v, "always").text("").end();
        assert_eq!(s(v), "<always></always>");
        let mut v = Vec::new();
        Elem::new(&mut v, "query")
            .attr("xmlns", "q")
            .start_content()
            .end();
        assert_eq!(s(v), "<query xmlns='q'></query>");
    }

    #[test]
    fn attribute_values_and_text_are_escaped() {
        let mut v = Vec::new();
        Elem::new(&mut v, "x")
            .attr("a", "it's <&> \"q\"\t\n\r")
            .attr_fmt("b", format_args!("{}'{}", 1, "<"))
            .text("a < b & c > d\r'\"")
            .text_fmt(format_args!("{}&", "<"))
            .end();
        assert_eq!(
            s(v),
            "<x a='it&apos;s &lt;&amp;&gt; &quot;q&quot;&#9;&#10;&#13;' b='1&apos;&lt;'>\
             a &lt; b &amp; c &gt; d&#13;'\"&lt;&amp;</x>"
        );
    }

    #[test]
    fn raw_parts_are_written_as_they_are() {
        let mut v = Vec::new();
        Elem::new(&mut v, "iq")
            .attr_raw("to", b"a&amp;b")
            .attrs_raw(b"id='1'")
            .raw(b"<query xmlns='q'/>")
            .raw_with(|v| v.extend_from_slice(b"<x/>"))
            .end();
        assert_eq!(s(v), "<iq to='a&amp;b' id='1'><query xmlns='q'/><x/></iq>");
        // An empty raw attribute text still writes its space (callers rely on it).
        let mut v = Vec::new();
        Elem::new(&mut v, "iq").attrs_raw(b"").attr("to", "t").end();
        assert_eq!(s(v), "<iq  to='t'/>");
    }

    #[test]
    fn children_nest_and_close() {
        let mut v = b"prefix".to_vec();
        let mut e = Elem::new(&mut v, "error").attr("type", "cancel");
        e.child("item-not-found")
            .attr("xmlns", "urn:ietf:params:xml:ns:xmpp-stanzas")
            .end();
        {
            let mut t = e.child("text").attr("xml:lang", "en");
            t.child("b").text("x").end();
            t.child("c").end();
        }
        e.end();
        assert_eq!(
            s(v),
            "prefix<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xml:lang='en'><b>x</b><c/></text></error>"
        );
    }

    #[test]
    fn spans_point_at_the_escaped_values() {
        let mut v = Vec::new();
        let mut e = Elem::new(&mut v, "m");
        let to = e.attr_span("to", "a<b");
        let from = e.attr_span("from", "c");
        assert_eq!(e.pos(), 23);
        e.end();
        assert_eq!(&v[to], b"a&lt;b");
        assert_eq!(&v[from], b"c");
        assert_eq!(s(v), "<m to='a&lt;b' from='c'/>");
    }

    #[test]
    fn a_wrapper_head_is_left_open() {
        let mut v = Vec::new();
        let mut m = Elem::new(&mut v, "message").attr("to", "a");
        m.child("sent")
            .attr("xmlns", "urn:xmpp:carbons:2")
            .leave_open();
        m.leave_open();
        assert_eq!(
            s(v.clone()),
            "<message to='a'><sent xmlns='urn:xmpp:carbons:2'>"
        );
        end_tag(&mut v, "sent");
        end_tag(&mut v, "message");
        assert_eq!(
            s(v),
            "<message to='a'><sent xmlns='urn:xmpp:carbons:2'></sent></message>"
        );
    }

    #[test]
    fn dropping_ends_the_element() {
        let mut v = Vec::new();
        {
            let mut e = Elem::new(&mut v, "a");
            let _ = e.child("b").text("t");
        }
        assert_eq!(s(v), "<a><b>t</b></a>");
    }
}
