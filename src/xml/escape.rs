//! XML escaping and entity decoding.
//!
//! The server forwards stanzas verbatim, so it decodes only the few values it
//! actually reads (`to`, `type`, a SASL payload) and escapes only what it
//! writes itself (a stamped `from`, error text). Both directions return or
//! write borrowed data when nothing changes, so the common case allocates
//! nothing. Only the five predefined entities and character references exist
//! in XMPP: RFC 6120 §11.1 forbids DTDs, so no other entity can be defined.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

use super::stanza::XmlError;

/// `true` for bytes that [`escape_attr`] replaces.
///
/// Tab, LF and CR are also written as character references: a parser would
/// otherwise normalize them to spaces (XML 1.0 §3.3.3), and the value would
/// not survive a round trip.
const ATTR_ESC: [bool; 256] = table(b"&<>'\"\t\n\r");
/// `true` for bytes that [`escape_text`] replaces. CR is escaped so that the
/// line-end normalization of XML 1.0 §2.11 cannot turn it into LF.
const TEXT_ESC: [bool; 256] = table(b"&<>\r");

const fn table(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}

fn replacement(b: u8) -> &'static str {
    match b {
        b'&' => "&amp;",
        b'<' => "&lt;",
        b'>' => "&gt;",
        b'\'' => "&apos;",
        b'"' => "&quot;",
        b'\t' => "&#9;",
        b'\n' => "&#10;",
        _ => "&#13;",
    }
}

/// Calls `f` with the unchanged runs of `s` and the replacements, in order.
/// Every escaped byte is ASCII, so the runs stay on `char` boundaries.
#[inline]
fn for_each_piece(s: &str, esc: &[bool; 256], mut f: impl FnMut(&str)) {
    let bytes = s.as_bytes();
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if esc[b as usize] {
            if last < i {
                f(&s[last..i]);
            }
            f(replacement(b));
            last = i + 1;
        }
    }
    if last < s.len() {
        f(&s[last..]);
    }
}

fn needs_escape(s: &str, esc: &[bool; 256]) -> bool {
    s.as_bytes().iter().any(|&b| esc[b as usize])
}

fn escape_to_string<'s>(s: &'s str, esc: &[bool; 256]) -> Cow<'s, str> {
    if !needs_escape(s, esc) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for_each_piece(s, esc, |p| out.push_str(p));
    Cow::Owned(out)
}

/// Escapes `s` for use inside a `'...'` or `"..."` attribute value.
pub fn escape_attr(s: &str, out: &mut Vec<u8>) {
    escape_attr_buf(s, out);
}

/// Escapes `s` for use as element character data.
pub fn escape_text(s: &str, out: &mut Vec<u8>) {
    escape_text_buf(s, out);
}

/// [`escape_attr`] into any [`BufMut`] (`BytesMut`, `Vec<u8>`, ...).
pub fn escape_attr_buf<B: BufMut>(s: &str, out: &mut B) {
    for_each_piece(s, &ATTR_ESC, |p| out.put_slice(p.as_bytes()));
}

/// [`escape_text`] into any [`BufMut`] (`BytesMut`, `Vec<u8>`, ...).
pub fn escape_text_buf<B: BufMut>(s: &str, out: &mut B) {
    for_each_piece(s, &TEXT_ESC, |p| out.put_slice(p.as_bytes()));
}

/// [`escape_attr`] into a `BytesMut`, the connection's write buffer.
pub fn escape_attr_bytes(s: &str, out: &mut BytesMut) {
    escape_attr_buf(s, out);
}

/// [`escape_text`] into a `BytesMut`, the connection's write buffer.
pub fn escape_text_bytes(s: &str, out: &mut BytesMut) {
    escape_text_buf(s, out);
}

/// Attribute-escaped `s`; borrowed when nothing needed escaping.
pub fn escape_attr_to_string(s: &str) -> Cow<'_, str> {
    escape_to_string(s, &ATTR_ESC)
}

/// Text-escaped `s`; borrowed when nothing needed escaping.
pub fn escape_text_to_string(s: &str) -> Cow<'_, str> {
    escape_to_string(s, &TEXT_ESC)
}

/// Whether `c` is an XML 1.0 `Char` (§2.2).
#[inline]
pub fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

/// Parses the reference at the start of `b` (which begins with `&`).
/// Returns the character and the length of the reference in bytes.
fn parse_ref(b: &[u8]) -> Result<(char, usize), XmlError> {
    if b.get(1) == Some(&b'#') {
        let (radix, start) = if b.get(2) == Some(&b'x') {
            (16, 3)
        } else {
            (10, 2)
        };
        let mut v: u32 = 0;
        let mut j = start;
        while let Some(d) = b.get(j).and_then(|&c| (c as char).to_digit(radix)) {
            // Saturates far above U+10FFFF, so overlong references fail below.
            v = v.saturating_mul(radix).saturating_add(d);
            j += 1;
        }
        if j == start || b.get(j) != Some(&b';') {
            return Err(XmlError::NotWellFormed("malformed character reference"));
        }
        match char::from_u32(v) {
            Some(c) if is_xml_char(c) => Ok((c, j + 1)),
            _ => Err(XmlError::NotWellFormed(
                "character reference to a non-XML character",
            )),
        }
    } else {
        let rest = &b[1.min(b.len())..];
        const NAMED: [(&[u8], char); 5] = [
            (b"amp;", '&'),
            (b"lt;", '<'),
            (b"gt;", '>'),
            (b"apos;", '\''),
            (b"quot;", '"'),
        ];
        for (name, c) in NAMED {
            if rest.starts_with(name) {
                return Ok((c, 1 + name.len()));
            }
        }
        Err(XmlError::NotWellFormed("undefined entity reference"))
    }
}

/// Checks, without allocating, that every `&` in `s` starts one of the five
/// predefined entity references or a reference to a valid XML character.
pub fn validate_refs(s: &str) -> Result<(), XmlError> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&c| c == b'&') {
        let (_, len) = parse_ref(&b[i + p..])?;
        i += p + len;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Entities only.
    Plain,
    /// Entities, and literal CR LF / CR become LF (XML 1.0 §2.11).
    Text,
    /// Entities, and literal TAB / LF / CR / CR LF become a space (XML 1.0 §3.3.3).
    Attr,
}

fn decode(s: &str, mode: Mode) -> Result<Cow<'_, str>, XmlError> {
    let special = |c: u8| {
        c == b'&'
            || match mode {
                Mode::Plain => false,
                Mode::Text => c == b'\r',
                Mode::Attr => matches!(c, b'\t' | b'\n' | b'\r'),
            }
    };
    let b = s.as_bytes();
    let Some(first) = b.iter().position(|&c| special(c)) else {
        return Ok(Cow::Borrowed(s));
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..first]);
    let mut i = first;
    while i < b.len() {
        match b[i] {
            b'&' => {
                let (c, len) = parse_ref(&b[i..])?;
                out.push(c);
                i += len;
            }
            b'\r' if mode != Mode::Plain => {
                out.push(if mode == Mode::Attr { ' ' } else { '\n' });
                i += 1;
                if b.get(i) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\t' | b'\n' if mode == Mode::Attr => {
                out.push(' ');
                i += 1;
            }
            _ => {
                // `b[i]` is not special, so the run is non-empty; both ends sit
                // on ASCII bytes or the end, hence on char boundaries.
                let end = b[i..]
                    .iter()
                    .position(|&c| special(c))
                    .map_or(b.len(), |p| i + p);
                out.push_str(&s[i..end]);
                i = end;
            }
        }
    }
    Ok(Cow::Owned(out))
}

/// Decodes the five predefined entities and character references
/// (`&#N;`, `&#xH;`, which must name a valid XML `Char`). Anything else after
/// a `&` is `NotWellFormed`. Borrows when `s` contains no `&`.
pub fn unescape(s: &str) -> Result<Cow<'_, str>, XmlError> {
    decode(s, Mode::Plain)
}

/// [`unescape`] plus XML attribute-value normalization: a literal tab, LF, CR
/// or CR LF becomes one space; the same characters written as references are
/// kept. This is what a conforming parser reports as the attribute's value.
pub fn unescape_attr(s: &str) -> Result<Cow<'_, str>, XmlError> {
    decode(s, Mode::Attr)
}

/// [`unescape`] plus line-end normalization (literal CR LF and CR become LF),
/// which is what a conforming parser reports as character data.
pub fn unescape_text(s: &str) -> Result<Cow<'_, str>, XmlError> {
    decode(s, Mode::Text)
}

/// Line-end normalization alone, for CDATA sections (no entity decoding).
pub fn normalize_newlines(s: &str) -> Cow<'_, str> {
    if !s.contains('\r') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace("\r\n", "\n").replace('\r', "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(s: &str) -> String {
        let mut v = Vec::new();
        escape_attr(s, &mut v);
        String::from_utf8(v).unwrap()
    }

    fn text(s: &str) -> String {
        let mut v = Vec::new();
        escape_text(s, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_attribute_values() {
        assert_eq!(attr("plain"), "plain");
        assert_eq!(attr(""), "");
        assert_eq!(attr(r#"a&b<c>d'e"f"#), "a&amp;b&lt;c&gt;d&apos;e&quot;f");
        assert_eq!(attr("a\tb\nc\rd"), "a&#9;b&#10;c&#13;d");
        assert_eq!(attr("ünï&cødé"), "ünï&amp;cødé");
    }

    #[test]
    fn escapes_text() {
        // RFC 6120 §4.9.4 error text style content.
        assert_eq!(text("Hello & welcome <b>"), "Hello &amp; welcome &lt;b&gt;");
        assert_eq!(text("it's \"quoted\"\n"), "it's \"quoted\"\n");
        assert_eq!(text("a\r\nb"), "a&#13;\nb");
    }

    #[test]
    fn escape_to_string_borrows_when_clean() {
        assert!(matches!(
            escape_attr_to_string("juliet@example.com/balcony"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(escape_text_to_string("O Romeo"), Cow::Borrowed(_)));
        assert_eq!(escape_attr_to_string("a'b"), "a&apos;b");
        assert_eq!(escape_text_to_string("1 < 2"), "1 &lt; 2");
    }

    #[test]
    fn escapes_into_bytes_mut() {
        let mut b = BytesMut::new();
        escape_attr_bytes("x'y", &mut b);
        escape_text_bytes("&", &mut b);
        escape_attr_buf("<", &mut b);
        assert_eq!(&b[..], b"x&apos;y&amp;&lt;");
    }

    #[test]
    fn escape_round_trips_through_unescape() {
        for s in [
            "",
            "a",
            "&",
            "<&>'\"",
            "tab\there",
            "line\r\nend",
            "ελληνικά & 日本",
        ] {
            assert_eq!(unescape_attr(&attr(s)).unwrap(), s);
            assert_eq!(unescape_text(&text(s)).unwrap(), s);
        }
    }

    #[test]
    fn unescapes_predefined_and_char_refs() {
        assert!(matches!(unescape("no refs").unwrap(), Cow::Borrowed(_)));
        assert_eq!(unescape("&amp;&lt;&gt;&apos;&quot;").unwrap(), "&<>'\"");
        assert_eq!(unescape("&#65;&#x42;&#x63;&#0000068;").unwrap(), "ABcD");
        assert_eq!(unescape("&#x1F600;!").unwrap(), "😀!");
        assert_eq!(unescape("Hello &amp; welcome").unwrap(), "Hello & welcome");
        assert_eq!(unescape("&#9;&#10;&#13;").unwrap(), "\t\n\r");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "&",
            "a & b",
            "&amp",
            "&foo;",
            "&AMP;",
            "&#;",
            "&#x;",
            "&#0;",
            "&#xD800;",
            "&#xDFFF;",
            "&#xFFFE;",
            "&#xFFFF;",
            "&#x110000;",
            "&#1;",
            "&#X41;",
            "&#65",
            "&#99999999999999999999;",
            "&#xg;",
            "&#-1;",
        ] {
            assert!(
                matches!(unescape(bad), Err(XmlError::NotWellFormed(_))),
                "{bad:?}"
            );
            assert!(validate_refs(bad).is_err(), "{bad:?}");
        }
        assert!(validate_refs("ok &amp; &#x20; fine").is_ok());
    }

    #[test]
    fn normalizes_whitespace_like_a_parser() {
        assert_eq!(unescape_attr("a\tb\nc\r\nd\re").unwrap(), "a b c d e");
        assert_eq!(unescape_attr("a&#10;b").unwrap(), "a\nb");
        assert_eq!(unescape_text("a\r\nb\rc\nd").unwrap(), "a\nb\nc\nd");
        assert_eq!(unescape("a\r\nb").unwrap(), "a\r\nb");
        assert_eq!(normalize_newlines("a\r\nb\r"), "a\nb\n");
        assert!(matches!(normalize_newlines("x\ny"), Cow::Borrowed(_)));
    }
}
