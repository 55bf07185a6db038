//! The prolog and header side of the framer: the XML declaration's check, and what the
//! caller uses on the header and on element names.

use super::FrameError;
use super::bytes::is_space;
use crate::xml::stanza::{Limits, Stanza, XmlError};

/// Checks the XML declaration's content (between `<?xml` and `?>`, starting with
/// whitespace): `version` first, then optional `encoding` (UTF-8 only: RFC 6120 §11.6) and
/// `standalone`, as XML 1.0 §2.8 orders them.
pub(super) fn check_declaration(d: &[u8]) -> Result<(), FrameError> {
    const BAD: FrameError = FrameError::NotWellFormed("invalid XML declaration");
    let mut i = 0;
    // 0: nothing yet, 1: version, 2: encoding, 3: standalone.
    let mut seen = 0;
    loop {
        let ws = i;
        while i < d.len() && is_space(d[i]) {
            i += 1;
        }
        if i == d.len() {
            break;
        }
        if i == ws {
            return Err(BAD);
        }
        let name_start = i;
        while i < d.len() && d[i].is_ascii_alphabetic() {
            i += 1;
        }
        let name = &d[name_start..i];
        while i < d.len() && is_space(d[i]) {
            i += 1;
        }
        if d.get(i) != Some(&b'=') {
            return Err(BAD);
        }
        i += 1;
        while i < d.len() && is_space(d[i]) {
            i += 1;
        }
        let q = match d.get(i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(BAD),
        };
        i += 1;
        let v_start = i;
        while i < d.len() && d[i] != q {
            i += 1;
        }
        if i == d.len() {
            return Err(BAD);
        }
        let value = &d[v_start..i];
        i += 1;
        match name {
            b"version" if seen == 0 => {
                let ok = value.len() > 2
                    && value.starts_with(b"1.")
                    && value[2..].iter().all(u8::is_ascii_digit);
                if !ok {
                    return Err(BAD);
                }
                seen = 1;
            }
            b"encoding" if seen == 1 => {
                let ok = value.first().is_some_and(u8::is_ascii_alphabetic)
                    && value
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
                if !ok {
                    return Err(BAD);
                }
                if !value.eq_ignore_ascii_case(b"UTF-8") {
                    return Err(FrameError::UnsupportedEncoding);
                }
                seen = 2;
            }
            b"standalone" if seen == 1 || seen == 2 => {
                if value != b"yes" && value != b"no" {
                    return Err(BAD);
                }
                seen = 3;
            }
            _ => return Err(BAD),
        }
    }
    if seen == 0 {
        return Err(BAD);
    }
    Ok(())
}

/// The prefix and local name of an element's start tag (`<stream:error>` gives
/// `("stream", "error")`, `<message …>` gives `("", "message")`). For a framed element:
/// the caller checks for the stream prefix before it parses (see the module docs).
pub fn qname(element: &str) -> (&str, &str) {
    let s = element.strip_prefix('<').unwrap_or(element);
    let end = s.find([' ', '\t', '\n', '\r', '/', '>']).unwrap_or(s.len());
    let name = &s[..end];
    match name.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", name),
    }
}

/// The header start tag written as an empty element (`<stream:stream …/>`), which
/// [`Stanza::parse`] reads like any element: attributes decoded, namespaces resolved,
/// duplicates refused.
pub fn self_closed_header(header: &str) -> String {
    let mut s = String::with_capacity(header.len() + 1);
    match header.strip_suffix('>') {
        Some(h) if !h.ends_with('/') => {
            s.push_str(h);
            s.push_str("/>");
        }
        _ => s.push_str(header),
    }
    s
}

/// The stream header's attributes (RFC 6120 §4.7), decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamHeader {
    /// The root's prefix (`stream`) and local name (`stream`).
    pub prefix: String,
    pub local: String,
    /// The root's namespace, from the declaration of its prefix (`xmlns:stream`): must be
    /// `http://etherx.jabber.org/streams`, else `invalid-namespace` (§4.9.3.10).
    pub ns: String,
    /// The default namespace (`xmlns`), the content namespace of the stanzas: must be
    /// `jabber:client` on a client stream, else `invalid-namespace`.
    pub content_ns: Option<String>,
    pub to: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    /// `xml:lang`: the default language of the stanzas (§4.7.4).
    pub lang: Option<String>,
}

/// Parses a header (the text of [`Event::Header`](super::Event::Header)) with [`Stanza::parse`]: no child,
/// attributes bounded only by the header's size (the framer bounds it). Allocates; once
/// per stream.
pub fn parse_header(header: &str) -> Result<StreamHeader, XmlError> {
    let src = self_closed_header(header);
    let limits = Limits {
        max_depth: 1,
        max_attrs: usize::MAX,
    };
    let st = Stanza::parse(&src, &limits)?;
    let root = st.root();
    let attr = |local: &str| st.attr(0, local).map(|a| a.value().into_owned());
    let content_ns = st.root_xmlns.as_ref().and_then(|r| {
        let decl = src.get(r.start as usize..r.end as usize)?;
        let (_, v) = decl.split_once('=')?;
        let v = v.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r'));
        Some(v.get(1..v.len().checked_sub(1)?)?.to_string())
    });
    Ok(StreamHeader {
        prefix: root.prefix.to_string(),
        local: root.local.to_string(),
        ns: root.ns.to_string(),
        content_ns,
        to: attr("to"),
        from: attr("from"),
        id: attr("id"),
        version: attr("version"),
        lang: st.attr_ns(0, "xml", "lang").map(|a| a.value().into_owned()),
    })
}
