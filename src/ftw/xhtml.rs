//! XHTML-IM message bodies (`format: "xhtml"`), both ways, for one-to-one chat and rooms.
//!
//! - Requested: the `content` of `xmpp.chat.message` / `xmpp.muc.message` with
//!   `format: "xhtml"` is XHTML markup (`<p>Hello <strong>you</strong></p>`). It becomes
//!   `<body>` with its text and `<html xmlns='…xhtml-im'><body xmlns='…xhtml'>` with the
//!   markup, sanitized; content that is not well-formed XML is refused with the client
//!   error `Can not parse XHTML message` (the original gateway's).
//! - Rendered: a message with `<html/>` gives `format: "xhtml"` and, as `content`, the
//!   sanitized content of its first XHTML `<body/>` (trimmed), as the original gateway
//!   rendered it; a plain message has no `format` key.
//!
//! Sanitizing is the same both ways: XEP-0071's recommended profile ("Summary of
//! Recommendations"), its business rules and security considerations, and the XHTML user
//! agent conformance it points to (unknown elements are "ignored" by keeping their content,
//! unknown attributes are dropped):
//!
//! - kept: `a` (`href`, `style`, `type`), `blockquote`, `cite`, `li`, `ol`, `p`, `span`,
//!   `ul` (`style`), `br`, `em`, `strong`, `img` (`alt`, `height`, `src`, `style`,
//!   `width`); every other attribute (`onclick` and every event attribute, `class`, `id`,
//!   prefixed ones) is dropped;
//! - dropped with their content: scripts, styles, embedded objects, frames, forms, media,
//!   SVG/MathML, the document head, and every element outside the XHTML namespace;
//! - any other XHTML element (`div`, `h1`, `b`, `table`…) is unwrapped: its text stays;
//! - `href` only with `http`, `https`, `mailto` or `xmpp` (an `a` without one is
//!   unwrapped), `src` only with `http` or `https` (an `img` without one becomes its `alt`
//!   text); `style` keeps only the recommended properties, with values made of plain
//!   characters (no `url(`, `expression(`, escapes, comments or `:`);
//! - element names are matched without regard to case (a browser reads `<SCRIPT>` as a
//!   script), and kept elements are nested at most [`MAX_NESTING`] deep (deeper ones are
//!   unwrapped), so a sanitized message is at most 11 elements deep (the default
//!   `limits.max_xml_depth` is 32).
//!
//! Elements other than `br` and `img` are written with an end tag (`<span></span>`, never
//! `<span/>`), so the result reads the same to an HTML parser as to an XML one.

use super::common::{R, client, text};
use crate::xml::ns::XHTML as NS_XHTML;
use crate::xml::ns::XHTML_IM as NS_XHTML_IM;
use crate::xml::stanza::{Limits, Stanza};
use crate::xml::writer::Elem;

/// The deepest nesting of kept elements; deeper ones are unwrapped, their text kept.
pub(super) const MAX_NESTING: usize = 8;

/// The client error for content that is not well-formed XML.
pub(super) const UNPARSABLE: &str = "Can not parse XHTML message";
/// The client error for content that sanitizing leaves empty (only a `<script>`, say).
pub(super) const EMPTY: &str = "XHTML message is empty once sanitized";

/// The `format` values of a message.
pub(super) const FORMATS: &[&str] = &["plain", "xhtml"];

/// The style properties XEP-0071 recommends ("Recommended Style Properties").
const STYLE_PROPERTIES: &[&str] = &[
    "background-color",
    "color",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "margin-left",
    "margin-right",
    "text-align",
    "text-decoration",
];

/// What happens to an element of the XHTML namespace.
enum Policy {
    /// Written, with these attributes (when they pass their checks).
    Keep(&'static str, &'static [&'static str]),
    /// Written without content (`<br/>`, `<img/>`).
    Void(&'static str, &'static [&'static str]),
    /// Left out, its content kept.
    Unwrap,
    /// Left out with all its content.
    Drop,
}

fn policy(local: &str) -> Policy {
    const STYLE: &[&str] = &["style"];
    const KEEP: &[(&str, &[&str])] = &[
        ("a", &["href", "style", "type"]),
        ("blockquote", STYLE),
        ("cite", STYLE),
        ("em", &[]),
        ("li", STYLE),
        ("ol", STYLE),
        ("p", STYLE),
        ("span", STYLE),
        ("strong", &[]),
        ("ul", STYLE),
    ];
    const DROP: &[&str] = &[
        "applet", "area", "audio", "base", "basefont", "button", "canvas", "embed", "fieldset",
        "form", "frame", "frameset", "head", "iframe", "input", "keygen", "link", "map", "math",
        "meta", "noembed", "noframes", "noscript", "object", "option", "param", "script", "select",
        "source", "style", "svg", "template", "textarea", "title", "track", "video",
    ];
    let is = |n: &&str| n.eq_ignore_ascii_case(local);
    if let Some((name, attrs)) = KEEP.iter().find(|(n, _)| is(n)) {
        Policy::Keep(name, attrs)
    } else if local.eq_ignore_ascii_case("br") {
        Policy::Void("br", &[])
    } else if local.eq_ignore_ascii_case("img") {
        Policy::Void("img", &["alt", "height", "src", "style", "width"])
    } else if DROP.iter().any(is) {
        Policy::Drop
    } else {
        Policy::Unwrap
    }
}

/// Elements after which the plain text goes on on a new line.
fn is_block(local: &str) -> bool {
    [
        "address",
        "blockquote",
        "dd",
        "div",
        "dl",
        "dt",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "table",
        "tr",
        "ul",
    ]
    .iter()
    .any(|b| b.eq_ignore_ascii_case(local))
}

/// Sanitized content: the XHTML markup and its text.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Clean {
    pub(super) xhtml: String,
    pub(super) plain: String,
}

/// The content of element `root` (an XHTML `<body/>`), sanitized.
pub(super) fn sanitize(st: &Stanza, root: usize) -> Clean {
    let mut xhtml = Vec::new();
    let mut plain = String::new();
    content(st, root, 0, &mut xhtml, &mut plain);
    Clean {
        // Written from `&str` pieces and escapes only.
        xhtml: String::from_utf8(xhtml).unwrap_or_default(),
        plain: plain.trim().to_string(),
    }
}

/// The text and elements inside `e`, in document order.
fn content(st: &Stanza, e: usize, depth: usize, x: &mut Vec<u8>, plain: &mut String) {
    let Some(el) = st.elems.get(e) else { return };
    let mut pos = el.inner.start;
    for c in st.children(e) {
        run(&st.text_in(pos..st.elems[c].start), x, plain);
        element(st, c, depth, x, plain);
        pos = st.elems[c].end;
    }
    run(&st.text_in(pos..el.inner.end), x, plain);
}

fn run(t: &str, x: &mut Vec<u8>, plain: &mut String) {
    crate::xml::escape::escape_text(t, x);
    plain.push_str(t);
}

fn newline(plain: &mut String) {
    if !plain.is_empty() && !plain.ends_with('\n') {
        plain.push('\n');
    }
}

fn element(st: &Stanza, c: usize, depth: usize, x: &mut Vec<u8>, plain: &mut String) {
    let el = &st.elems[c];
    if el.ns != NS_XHTML {
        return; // not XHTML at all: its meaning is unknown
    }
    let block = is_block(el.local);
    if block {
        newline(plain);
    }
    match policy(el.local) {
        Policy::Drop => {}
        Policy::Unwrap => content(st, c, depth, x, plain),
        Policy::Keep(_, _) if depth >= MAX_NESTING => content(st, c, depth, x, plain),
        Policy::Keep(name, allowed) => {
            let attrs = kept_attrs(st, c, name, allowed);
            if name == "a" && !attrs.iter().any(|(k, _)| *k == "href") {
                content(st, c, depth, x, plain); // a link without a safe target
            } else {
                let mut e = Elem::new(x, name);
                for (k, v) in &attrs {
                    e = e.attr(k, v);
                }
                e.raw_with(|x| content(st, c, depth + 1, x, plain)).end();
            }
        }
        Policy::Void(name, allowed) => {
            let attrs = kept_attrs(st, c, name, allowed);
            let alt = attrs
                .iter()
                .find(|(k, _)| *k == "alt")
                .map(|(_, v)| v.as_str());
            if name == "br" {
                Elem::new(x, "br").end();
                plain.push('\n');
            } else if !attrs.iter().any(|(k, _)| *k == "src") {
                run(alt.unwrap_or(""), x, plain); // an image without a safe source
            } else {
                plain.push_str(alt.unwrap_or(""));
                let mut e = Elem::new(x, name);
                for (k, v) in &attrs {
                    e = e.attr(k, v);
                }
                e.end();
            }
        }
    }
    if block {
        newline(plain);
    }
}

/// The attributes of element `c` that `allowed` names and that pass their checks, in the
/// order `allowed` gives, with their cleaned values.
fn kept_attrs(
    st: &Stanza,
    c: usize,
    name: &str,
    allowed: &[&'static str],
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for &k in allowed {
        let Some(a) = st.elems[c]
            .attrs
            .clone()
            .filter_map(|i| st.attrs.get(usize::from(i)))
            .find(|a| a.prefix.is_empty() && a.local.eq_ignore_ascii_case(k))
        else {
            continue;
        };
        let v = a.value();
        let v = match (name, k) {
            (_, "style") => clean_style(&v),
            ("a", "href") => safe_url(&v, &["http", "https", "mailto", "xmpp"]),
            ("img", "src") => safe_url(&v, &["http", "https"]),
            ("img", "height" | "width") => length(&v),
            _ => Some(v.into_owned()),
        };
        if let Some(v) = v {
            out.push((k, v));
        }
    }
    out
}

/// `v` when it is an absolute URL with one of `schemes` (after surrounding whitespace,
/// which browsers ignore too). A scheme with anything but letters, digits, `+`, `-` and
/// `.` (`java\tscript:`) is no scheme.
fn safe_url(v: &str, schemes: &[&str]) -> Option<String> {
    let v = v.trim_matches(|c: char| c.is_ascii_whitespace() || c.is_ascii_control());
    let (scheme, _) = v.split_once(':')?;
    let well_formed = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    (well_formed && schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme))).then(|| v.into())
}

/// An image dimension: digits, optionally a percentage.
fn length(v: &str) -> Option<String> {
    let v = v.trim();
    let digits = v.strip_suffix('%').unwrap_or(v);
    (!digits.is_empty() && digits.len() <= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.into())
}

/// The recommended declarations of a `style` attribute, `prop: value; …`; `None` when
/// none is left.
fn clean_style(s: &str) -> Option<String> {
    let mut out = String::new();
    for decl in s.split(';') {
        let Some((prop, value)) = decl.split_once(':') else {
            continue;
        };
        let (prop, value) = (prop.trim(), value.trim());
        let Some(prop) = STYLE_PROPERTIES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(prop))
        else {
            continue;
        };
        if !safe_css_value(value) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(prop);
        out.push_str(": ");
        out.push_str(value);
    }
    (!out.is_empty()).then_some(out)
}

/// A CSS value of plain characters: letters, digits, spaces, `#%.,-_'"+!`, and
/// parentheses only as colour functions (`rgb(…)`, `rgba(…)`, `hsl(…)`, `hsla(…)`). That
/// leaves out `url(…)`, `expression(…)`, `\` escapes, `/*` comments and any `:`.
fn safe_css_value(v: &str) -> bool {
    if v.is_empty() {
        return false;
    }
    let plain = v.chars().all(|c| {
        c.is_alphanumeric()
            || matches!(
                c,
                ' ' | '#' | '%' | '.' | ',' | '-' | '_' | '\'' | '"' | '+' | '!' | '(' | ')'
            )
    });
    // Every `(` opens a colour function: the word before it is one.
    plain
        && v.match_indices('(').all(|(i, _)| {
            let word = v[..i]
                .rsplit(|c: char| !(c.is_alphanumeric() || c == '-'))
                .next()
                .unwrap_or("");
            ["rgb", "rgba", "hsl", "hsla"]
                .iter()
                .any(|f| f.eq_ignore_ascii_case(word))
        })
}

// ---------------------------------------------------------------------------------------
// Requested

/// The `<body/>` and `<html/>` of a message whose `content` is XHTML markup.
pub(super) fn message_bodies(content: &str) -> R<String> {
    let src = format!("<body xmlns='{NS_XHTML}'>{content}</body>");
    let Ok(st) = Stanza::parse(&src, &Limits::default()) else {
        return client(UNPARSABLE);
    };
    let clean = sanitize(&st, 0);
    if clean.plain.is_empty() && clean.xhtml.trim().is_empty() {
        return client(EMPTY);
    }
    let mut v = text("body", &clean.plain).into_bytes();
    let mut html = Elem::new(&mut v, "html").attr("xmlns", NS_XHTML_IM);
    html.child("body")
        .attr("xmlns", NS_XHTML)
        .raw(clean.xhtml.as_bytes())
        .end();
    html.end();
    // Built from `&str` pieces and escapes only.
    Ok(String::from_utf8(v).unwrap_or_default())
}

// ---------------------------------------------------------------------------------------
// Rendered

/// `content` for the browser from message `m`'s XHTML-IM `<html/>`: the sanitized
/// content of its first XHTML `<body/>`, trimmed; `None` when there is none or nothing is
/// left of it.
pub(super) fn render(st: &Stanza, m: usize) -> Option<String> {
    let html = st.child(m, "html", NS_XHTML_IM)?;
    let body = st.child(html, "body", NS_XHTML)?;
    let clean = sanitize(st, body);
    let t = clean.xhtml.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use serde_json::json;

    /// The sanitized markup and text of `content`.
    fn clean(content: &str) -> (String, String) {
        let src = format!("<body xmlns='{NS_XHTML}'>{content}</body>");
        let st = Stanza::parse(&src, &Limits::default()).expect("test content parses");
        let c = sanitize(&st, 0);
        (c.xhtml, c.plain)
    }

    fn x(content: &str) -> String {
        clean(content).0
    }

    #[test]
    fn the_recommended_profile_passes() {
        // XEP-0071 examples 2, 4 and 5.
        let c = "<p style='font-size:large'><span style='font-style: italic'>OMG</span>, \
                 I&apos;m <span style='color:green'>green</span> with \
                 <span style='font-weight: bold'>envy</span>!</p>";
        assert_eq!(
            clean(c),
            (
                "<p style='font-size: large'><span style='font-style: italic'>OMG</span>, \
                 I'm <span style='color: green'>green</span> with \
                 <span style='font-weight: bold'>envy</span>!</p>"
                    .into(),
                "OMG, I'm green with envy!".into()
            )
        );
        let c = "<p>Hey, are you licensed to <a href='http://www.jabber.org/'>Jabber</a>?</p>\
                 <p><img src='http://www.jabber.org/images/psa-license.jpg' \
                 alt='A License to Jabber' height='261' width='537'/></p>";
        assert_eq!(
            clean(c),
            (
                "<p>Hey, are you licensed to <a href='http://www.jabber.org/'>Jabber</a>?</p>\
                 <p><img alt='A License to Jabber' height='261' \
                 src='http://www.jabber.org/images/psa-license.jpg' width='537'/></p>"
                    .into(),
                "Hey, are you licensed to Jabber?\nA License to Jabber".into()
            )
        );
        let c = "<p>Here&apos;s my .plan:</p><ol><li>one<ul><li>a</li><li>b</li></ul></li>\
                 <li>two<br/>lines</li></ol><blockquote><cite>x</cite> <em>y</em> \
                 <strong>z</strong></blockquote>";
        assert_eq!(
            clean(c),
            (
                "<p>Here's my .plan:</p><ol><li>one<ul><li>a</li><li>b</li></ul></li>\
                 <li>two<br/>lines</li></ol><blockquote><cite>x</cite> <em>y</em> \
                 <strong>z</strong></blockquote>"
                    .into(),
                "Here's my .plan:\none\na\nb\ntwo\nlines\nx y z".into()
            )
        );
    }

    #[test]
    fn scripts_and_event_attributes_are_stripped() {
        assert_eq!(
            clean("<p onclick='alert(1)' class='c' id='i'>hi<script>alert(2)</script></p>"),
            ("<p>hi</p>".into(), "hi".into())
        );
        for c in [
            "<SCRIPT>alert(1)</SCRIPT>ok",
            "<style>p { color: red }</style>ok",
            "<iframe src='http://evil.example/'>x</iframe>ok",
            "<object data='x'><param name='a' value='b'/>x</object>ok",
            "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>ok",
            "<x:p xmlns:x='urn:example'>foreign</x:p>ok",
            "<head><title>t</title></head>ok",
            "<form action='http://evil.example/'><input name='pw'/></form>ok",
        ] {
            assert_eq!(clean(c), ("ok".into(), "ok".into()), "{c}");
        }
        // Event attributes in any case, on any element; prefixed attributes too.
        assert_eq!(
            x("<span ONMOUSEOVER='x()' onload='y()' style='color: red' xml:lang='en'>s</span>"),
            "<span style='color: red'>s</span>"
        );
        assert_eq!(
            x("<img src='http://a.example/i.png' alt='i' onerror='alert(1)'/>"),
            "<img alt='i' src='http://a.example/i.png'/>"
        );
    }

    #[test]
    fn other_elements_are_unwrapped() {
        assert_eq!(
            clean("<div><h1>Title</h1><b>bold</b> <code>x &lt; y</code></div>"),
            ("Titlebold x &lt; y".into(), "Title\nbold x < y".into())
        );
        // A prefixed XHTML element is the same element; names are written unprefixed.
        assert_eq!(
            x("<h:p xmlns:h='http://www.w3.org/1999/xhtml'>p</h:p>"),
            "<p>p</p>"
        );
        // Uppercase kept elements are written in lowercase.
        assert_eq!(x("<P>a<BR/>b</P>"), "<p>a<br/>b</p>");
        // Empty elements keep their end tag (an HTML parser reads <span/> as an open tag).
        assert_eq!(x("<span/><p></p>"), "<span></span><p></p>");
    }

    #[test]
    fn links_only_to_the_allowed_schemes() {
        for ok in [
            "http://example.com/",
            "HTTPS://example.com/a?b=c&d=e",
            "mailto:juliet@example.com",
            "xmpp:romeo@example.net?message",
            "  http://example.com/  ",
        ] {
            let want = format!(
                "<a href='{}'>x</a>",
                crate::xml::escape::escape_attr_to_string(ok.trim())
            );
            let src = format!(
                "<a href='{}'>x</a>",
                crate::xml::escape::escape_attr_to_string(ok)
            );
            assert_eq!(x(&src), want, "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "jav&#x09;ascript:alert(1)",
            "&#x20;javascript:alert(1)",
            "vbscript:x",
            "data:text/html,<script>alert(1)</script>",
            "//evil.example/",
            "/relative",
            "ftp://example.com/",
            "",
        ] {
            let src = format!(
                "<a href='{}' onclick='x()'>text</a>",
                bad.replace('<', "&lt;")
            );
            assert_eq!(clean(&src), ("text".into(), "text".into()), "{bad}");
        }
        // An image from anywhere but http(s) is its alt text.
        assert_eq!(
            clean("<img src='javascript:alert(1)' alt='a &lt;b&gt;'/>"),
            ("a &lt;b&gt;".into(), "a <b>".into())
        );
        assert_eq!(
            x("<img src='data:image/png;base64,AAAA' alt='pic' width='10' height='1e9'/>"),
            "pic"
        );
        assert_eq!(
            x("<img src='https://a.example/p.png' width='50%' height='9999999'/>"),
            "<img src='https://a.example/p.png' width='50%'/>"
        );
    }

    #[test]
    fn styles_keep_only_recommended_plain_declarations() {
        let s = |style: &str| {
            let src = format!(
                "<span style='{}'>s</span>",
                crate::xml::escape::escape_attr_to_string(style)
            );
            x(&src)
        };
        assert_eq!(
            s("color: #ff0000; FONT-WEIGHT: bold; position: fixed; text-align:center"),
            "<span style='color: #ff0000; font-weight: bold; text-align: center'>s</span>"
        );
        assert_eq!(
            s("color: rgb(10, 20, 30); background-color: hsla(1, 2%, 3%, .5)"),
            "<span style='color: rgb(10, 20, 30); background-color: hsla(1, 2%, 3%, .5)'>s</span>"
        );
        assert_eq!(
            s("font-family: 'Comic Sans MS', sans-serif !important"),
            "<span style='font-family: &apos;Comic Sans MS&apos;, sans-serif !important'>s</span>"
        );
        for bad in [
            "background-color: url(http://evil.example/track.png)",
            "background-color: URL(x)",
            "color: expression(alert(1))",
            "color: red; background-image: url(x)",
            "color: \\65xpression(alert(1))",
            "color: red /* */",
            "color: javascript:alert(1)",
            "color: xrgb(1,2,3)",
            "font-family: a(b)",
            "color: <script>",
            "color:",
            "just text",
        ] {
            let kept = s(bad);
            assert!(
                kept == "<span>s</span>" || kept == "<span style='color: red'>s</span>",
                "{bad}: {kept}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "<span>".repeat(20) + "deep" + &"</span>".repeat(20);
        let out = x(&deep);
        assert_eq!(out.matches("<span>").count(), MAX_NESTING, "{out}");
        assert!(out.contains("deep"));
        // The message built from it parses within the default stanza depth.
        let m = super::super::testing::xml(
            "xmpp.chat.message",
            json!({"to": "bob@localhost", "content": deep, "format": "xhtml"}),
        );
        assert!(Stanza::parse(&m, &Limits::default()).is_ok(), "{m}");
    }

    #[test]
    fn xhtml_chat_message_out() {
        let (m, _, i) = one(
            "xmpp.chat.message",
            json!({"to": "bob@localhost", "format": "xhtml", "state": "active",
                   "content": "<p>This will <strong onclick='x()'>pass</strong></p><script>bad()</script>"}),
        );
        assert_eq!(
            m,
            format!(
                "<message {C} type='chat' to='bob@localhost' id='id1'><body>This will pass</body>\
                 <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>\
                 <p>This will <strong>pass</strong></p></body></html>\
                 <active xmlns='http://jabber.org/protocol/chatstates'/></message>"
            )
        );
        assert_eq!(i, Some(json!({"id": "id1"})));
        // "plain" (or no format) sends the content as text, markup and all.
        assert_eq!(
            xml(
                "xmpp.chat.message",
                json!({"to": "bob@localhost", "format": "plain", "content": "<b>x</b>"})
            ),
            format!(
                "<message {C} type='chat' to='bob@localhost' id='id1'><body>&lt;b&gt;x&lt;/b&gt;</body></message>"
            )
        );
    }

    #[test]
    fn xhtml_muc_message_out() {
        // Rooms use the same body builder (muc/messages.rs calls chat::body_and_state).
        assert_eq!(
            xml(
                "xmpp.muc.message",
                json!({"room": "group-x", "format": "xhtml", "content": "<em>hi</em> all"})
            ),
            format!(
                "<message {C} type='groupchat' to='group-x@conference.localhost' id='id1'>\
                 <body>hi all</body><html xmlns='http://jabber.org/protocol/xhtml-im'>\
                 <body xmlns='http://www.w3.org/1999/xhtml'><em>hi</em> all</body></html></message>"
            )
        );
    }

    #[test]
    fn malformed_or_empty_xhtml_is_refused() {
        let e = |content: &str| {
            err(
                "xmpp.chat.message",
                json!({"to": "bob@localhost", "format": "xhtml", "content": content}),
                false,
            )
        };
        for bad in [
            "This will <strong>fail",
            "a </p> b",
            "<p a='1' a='2'>dup</p>",
            "&nbsp;",
            "x</body><script>alert(1)</script><body>",
            "<!-- comment -->",
            "<?pi x?>",
            "<!DOCTYPE html>",
            "<undeclared:p>x</undeclared:p>",
        ] {
            assert_eq!(e(bad), UNPARSABLE, "{bad}");
        }
        // Deeper than a stanza may nest.
        assert_eq!(e(&("<p>".repeat(40) + &"</p>".repeat(40))), UNPARSABLE);
        assert_eq!(e("<script>alert(1)</script>"), EMPTY);
        assert_eq!(e("<style>x</style>   "), EMPTY);
        assert_eq!(
            err(
                "xmpp.chat.message",
                json!({"to": "bob@localhost", "format": "html", "content": "x"}),
                false
            ),
            "Invalid 'format' value"
        );
    }

    #[test]
    fn xhtml_chat_message_in() {
        // The original gateway's fixture (test/resources/chat/xhtml-with-state), with
        // something hostile added.
        let xml = "<message from='user@domain/resource' type='chat'>\
            <body>hi!</body>\
            <html xmlns='http://jabber.org/protocol/xhtml-im'>\
            <body xmlns='http://www.w3.org/1999/xhtml'>\n  <p onclick='steal()'>Hello to \
            <strong>you!</strong><script>steal()</script></p>\n</body></html>\
            <composing xmlns='http://jabber.org/protocol/chatstates'/></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.chat.message",
                json!({
                    "from": {"user": "user", "domain": "domain", "resource": "resource"},
                    "content": "<p>Hello to <strong>you!</strong></p>",
                    "format": "xhtml",
                    "state": "composing",
                })
            )]
        );
        // Nothing left of the XHTML: the plain body, no format.
        let xml = "<message from='bob@localhost/desk' type='chat'><body>plain</body>\
            <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>\
            <script>x()</script></body></html></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.chat.message",
                json!({"from": {"user": "bob", "domain": "localhost", "resource": "desk"}, "content": "plain"})
            )]
        );
    }

    #[test]
    fn xhtml_muc_message_in() {
        let xml = "<message from='coven@conference.localhost/thirdwitch' type='groupchat' id='g1'>\
            <body>hi</body><html xmlns='http://jabber.org/protocol/xhtml-im'>\
            <body xmlns='http://www.w3.org/1999/xhtml'><em>hi</em></body></html></message>";
        assert_eq!(
            deliver(xml),
            vec![ev(
                "xmpp.muc.message",
                json!({
                    "room": "coven@conference.localhost", "nick": "thirdwitch", "private": false,
                    "content": "<em>hi</em>", "format": "xhtml", "id": "g1",
                })
            )]
        );
    }
}
