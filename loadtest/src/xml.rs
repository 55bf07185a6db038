//! Minimal string-level inspection of frames.
//!
//! RFC 7395 puts exactly one complete XML element in each WebSocket text message, and on TCP
//! `split.rs` cuts the RFC 6120 stream into the same one-element strings, so a load client
//! only needs the root element's name, a few attributes of the root start tag and the text
//! of a few well-known children. No allocation on the hot path.

/// The frame's root element name including any prefix (`message`, `stream:features`, `open`).
pub fn root_name(frame: &str) -> &str {
    let tag = root_tag(frame);
    let inner = tag.strip_prefix('<').unwrap_or(tag);
    let end = inner
        .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .unwrap_or(inner.len());
    &inner[..end]
}

/// The root element's local name (`features` for `stream:features`).
pub fn root_local(frame: &str) -> &str {
    let n = root_name(frame);
    n.rsplit(':').next().unwrap_or(n)
}

/// The root start tag, from `<` up to and including the first `>` (XML declaration skipped).
pub fn root_tag(frame: &str) -> &str {
    let mut s = frame.trim_start();
    while s.starts_with("<?") || s.starts_with("<!--") {
        let close = if s.starts_with("<?") { "?>" } else { "-->" };
        match s.find(close) {
            Some(i) => s = s[i + close.len()..].trim_start(),
            None => return "",
        }
    }
    match s.find('>') {
        Some(i) => &s[..=i],
        None => s,
    }
}

/// Value of attribute `name` on the root start tag (quotes of either kind), not unescaped.
pub fn root_attr<'a>(frame: &'a str, name: &str) -> Option<&'a str> {
    attr_in_tag(root_tag(frame), name)
}

/// Value of attribute `name` inside one start tag.
pub fn attr_in_tag<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let bytes = tag.as_bytes();
    let mut from = 0;
    while let Some(pos) = tag[from..].find(name) {
        let start = from + pos;
        let after = start + name.len();
        from = after;
        // must be preceded by whitespace and followed by optional spaces, '=' and a quote
        if start == 0 || !bytes[start - 1].is_ascii_whitespace() {
            continue;
        }
        let rest = tag[after..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let q = match rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => continue,
        };
        let val = &rest[1..];
        return val.find(q).map(|e| &val[..e]);
    }
    None
}

/// Text content of the first `<name>...</name>` child (no nested elements expected).
pub fn child_text<'a>(frame: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}");
    let mut from = 0;
    while let Some(pos) = frame[from..].find(&open) {
        let start = from + pos + open.len();
        from = start;
        let next = frame[start..].chars().next()?;
        if !(next == '>' || next.is_ascii_whitespace()) {
            continue; // e.g. <bodyx> when looking for <body
        }
        let gt = start + frame[start..].find('>')?;
        if frame[..gt].ends_with('/') {
            return Some("");
        }
        let close = format!("</{name}>");
        let end = gt + 1 + frame[gt + 1..].find(&close)?;
        return Some(&frame[gt + 1..end]);
    }
    None
}

/// True if the frame contains a start tag `<name` (followed by space, `/` or `>`).
pub fn has_element(frame: &str, name: &str) -> bool {
    let open = format!("<{name}");
    let mut from = 0;
    while let Some(pos) = frame[from..].find(&open) {
        let after = from + pos + open.len();
        match frame[after..].chars().next() {
            Some(c) if c == '>' || c == '/' || c.is_ascii_whitespace() => return true,
            _ => from = after,
        }
    }
    false
}

/// The defined condition of an `<error>` child (stanza errors) or a stream error.
pub fn error_condition(frame: &str) -> String {
    let body = match frame.find("<error") {
        Some(i) => &frame[i..],
        None => frame,
    };
    // the first child element of <error> (or of <stream:error>/<failure>) that is not <text>
    let mut rest = match body.find('>') {
        Some(i) => &body[i + 1..],
        None => return "unknown".into(),
    };
    if root_local(frame) == "failure" {
        rest = match frame.find('>') {
            Some(i) => &frame[i + 1..],
            None => return "unknown".into(),
        };
    }
    while let Some(lt) = rest.find('<') {
        let name = &rest[lt + 1..];
        let end = name
            .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
            .unwrap_or(name.len());
        let n = &name[..end];
        if !n.starts_with('/') && n != "text" && !n.is_empty() {
            return n.to_string();
        }
        rest = &name[end..];
    }
    "unknown".into()
}

/// Escape text for XML character data / attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots() {
        let f = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms/></stream:features>";
        assert_eq!(root_name(f), "stream:features");
        assert_eq!(root_local(f), "features");
        assert_eq!(root_name("<open xmlns='x' from='localhost'/>"), "open");
        assert_eq!(root_name("<?xml version='1.0'?><success/>"), "success");
        assert_eq!(root_name("  <message>"), "message");
    }

    #[test]
    fn attrs() {
        let f = "<iq xmlns='jabber:client' type=\"result\" id='b1'><bind/></iq>";
        assert_eq!(root_attr(f, "type"), Some("result"));
        assert_eq!(root_attr(f, "id"), Some("b1"));
        assert_eq!(root_attr(f, "to"), None);
        // 'id' must not match inside 'xid'
        assert_eq!(attr_in_tag("<a xid='1' id='2'>", "id"), Some("2"));
    }

    #[test]
    fn children() {
        let f = "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>u@d/r</jid></bind></iq>";
        assert_eq!(child_text(f, "jid"), Some("u@d/r"));
        assert!(has_element(f, "bind"));
        assert!(!has_element(f, "bin"));
        let fail = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>";
        assert_eq!(error_condition(fail), "not-authorized");
        let e = "<message type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>";
        assert_eq!(error_condition(e), "service-unavailable");
        assert_eq!(
            child_text("<m><bodyx>a</bodyx><body>b</body></m>", "body"),
            Some("b")
        );
    }
}
