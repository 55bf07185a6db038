//! Stream errors (RFC 6120 §4.9, framed per RFC 7395 §3.6) and stanza errors (§8.3).

use super::sink::Framing;
use crate::net::websocket;
use crate::xml::ns;
use crate::xml::writer::Elem;
use std::ops::Range;

/// Declares a condition enum, its `ALL` (in declaration order: `ALL[c as usize] == c`, which
/// the metrics index their counters by) and its RFC names, from one list.
macro_rules! conditions {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($v:ident => $s:literal,)* }) => {
        $(#[$m])*
        $vis enum $name {
            $($v,)*
        }

        impl $name {
            /// Every condition, in declaration order.
            pub const ALL: [$name; [$($s),*].len()] = [$($name::$v),*];

            pub fn name(self) -> &'static str {
                match self {
                    $($name::$v => $s,)*
                }
            }
        }
    };
}

conditions! {
    /// The stream error conditions Aoba sends.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum StreamError {
        BadFormat => "bad-format",
        Conflict => "conflict",
        ConnectionTimeout => "connection-timeout",
        HostUnknown => "host-unknown",
        InternalServerError => "internal-server-error",
        InvalidNamespace => "invalid-namespace",
        InvalidXml => "invalid-xml",
        NotAuthorized => "not-authorized",
        NotWellFormed => "not-well-formed",
        PolicyViolation => "policy-violation",
        ResourceConstraint => "resource-constraint",
        RestrictedXml => "restricted-xml",
        SystemShutdown => "system-shutdown",
        UndefinedCondition => "undefined-condition",
        UnsupportedEncoding => "unsupported-encoding",
        UnsupportedStanzaType => "unsupported-stanza-type",
        UnsupportedVersion => "unsupported-version",
    }
}

/// `<open/>` of the server side of a stream (RFC 7395 §3.4).
pub fn open_element(domain: &str, id: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(160);
    Elem::new(&mut v, "open")
        .attr("xmlns", ns::FRAMING)
        .attr("from", domain)
        .attr("id", id)
        .attr("version", "1.0")
        .attr("xml:lang", "en")
        .end();
    v
}

pub fn close_element() -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    Elem::new(&mut v, "close").attr("xmlns", ns::FRAMING).end();
    v
}

/// RFC 6120 §4.7: the server's stream header on TCP (with the XML declaration).
pub fn stream_header(domain: &str, id: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(220);
    v.extend_from_slice(b"<?xml version='1.0'?>");
    Elem::new(&mut v, "stream:stream")
        .attr("xmlns", ns::CLIENT)
        .attr("xmlns:stream", ns::STREAMS)
        .attr("from", domain)
        .attr("id", id)
        .attr("version", "1.0")
        .attr("xml:lang", "en")
        .leave_open();
    v
}

/// The end of a TCP stream (RFC 6120 §4.4).
pub const STREAM_END: &[u8] = b"</stream:stream>";

/// The stream's opening as `framing` writes it: `<open/>`, or the TCP stream header.
pub fn opening(framing: Framing, domain: &str, id: &str) -> Vec<u8> {
    match framing {
        Framing::WebSocket => open_element(domain, id),
        Framing::Tcp => stream_header(domain, id),
    }
}

/// The stream's end as `framing` writes it: `<close/>`, or `</stream:stream>`.
pub fn closing(framing: Framing) -> Vec<u8> {
    match framing {
        Framing::WebSocket => close_element(),
        Framing::Tcp => STREAM_END.to_vec(),
    }
}

/// The last words of a stream: (its opening if none was sent yet,) the error and its end;
/// on WebSocket `<close/>` and the close frame, all framed, ready to write.
pub fn stream_error_bytes(
    framing: Framing,
    err: StreamError,
    text: Option<&str>,
    open_first: Option<(&str, &str)>,
) -> Vec<u8> {
    crate::metrics::shard().stream_errors[err as usize].inc();
    let mut out = Vec::with_capacity(320);
    let ws = framing == Framing::WebSocket;
    let put = |out: &mut Vec<u8>, xml: &[u8]| {
        if ws {
            out.extend_from_slice(&websocket::frame(websocket::OP_TEXT, xml));
        } else {
            out.extend_from_slice(xml);
        }
    };
    if let Some((domain, id)) = open_first {
        put(&mut out, &opening(framing, domain, id));
    }
    let mut e = Vec::with_capacity(200);
    let mut se = Elem::new(&mut e, "stream:error").attr("xmlns:stream", ns::STREAMS);
    se.child(err.name()).attr("xmlns", ns::STREAM_ERRORS).end();
    if let Some(t) = text {
        se.child("text")
            .attr("xmlns", ns::STREAM_ERRORS)
            .attr("xml:lang", "en")
            .text(t)
            .end();
    }
    se.end();
    put(&mut out, &e);
    put(&mut out, &closing(framing));
    if ws {
        out.extend_from_slice(&websocket::close_frame(websocket::CLOSE_NORMAL, ""));
    }
    out
}

conditions! {
    /// Stanza error conditions (RFC 6120 §8.3.3) with their default error type.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Cond {
        BadRequest => "bad-request",
        Conflict => "conflict",
        FeatureNotImplemented => "feature-not-implemented",
        Forbidden => "forbidden",
        InternalServerError => "internal-server-error",
        ItemNotFound => "item-not-found",
        JidMalformed => "jid-malformed",
        NotAcceptable => "not-acceptable",
        NotAllowed => "not-allowed",
        NotAuthorized => "not-authorized",
        PolicyViolation => "policy-violation",
        RecipientUnavailable => "recipient-unavailable",
        RegistrationRequired => "registration-required",
        RemoteServerNotFound => "remote-server-not-found",
        ResourceConstraint => "resource-constraint",
        ServiceUnavailable => "service-unavailable",
    }
}

impl Cond {
    pub fn error_type(self) -> &'static str {
        use Cond::*;
        match self {
            BadRequest | JidMalformed | NotAcceptable | PolicyViolation => "modify",
            Forbidden | NotAuthorized | RegistrationRequired => "auth",
            InternalServerError | RecipientUnavailable | ResourceConstraint => "wait",
            Conflict
            | FeatureNotImplemented
            | ItemNotFound
            | NotAllowed
            | RemoteServerNotFound
            | ServiceUnavailable => "cancel",
        }
    }
}

/// An error stanza. `from`/`to` are plain strings (escaped here); `id_attr` is the raw
/// `id='…'` attribute of the original stanza, quotes included, copied verbatim.
/// Returns the stanza and the byte ranges of the `to` and `from` values in it.
pub fn error_stanza(
    kind: &str,
    from: &str,
    to: &str,
    id_attr: &str,
    cond: Cond,
    text: Option<&str>,
) -> (Vec<u8>, Range<u32>, Range<u32>) {
    crate::metrics::shard().stanza_errors[cond as usize].inc();
    let mut v = Vec::with_capacity(256);
    let mut st = Elem::new(&mut v, kind).attr("xmlns", ns::CLIENT);
    let to_r = st.attr_span("to", to);
    let from_r = st.attr_span("from", from);
    st = st.attr("type", "error");
    if !id_attr.is_empty() {
        st = st.attrs_raw(id_attr.as_bytes());
    }
    let mut error = st.child("error").attr("type", cond.error_type());
    error.child(cond.name()).attr("xmlns", ns::STANZAS).end();
    if let Some(t) = text {
        error
            .child("text")
            .attr("xmlns", ns::STANZAS)
            .attr("xml:lang", "en")
            .text(t)
            .end();
    }
    error.end();
    st.end();
    (v, span32(to_r), span32(from_r))
}

fn span32(r: Range<usize>) -> Range<u32> {
    r.start as u32..r.end as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metrics index their counters by these enums: `ALL` is in declaration order.
    #[test]
    fn all_is_in_declaration_order() {
        for (i, c) in Cond::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
        }
        for (i, e) in StreamError::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "{}", e.name());
        }
    }

    /// RFC 6120 §4.9: on TCP the last words are the error and `</stream:stream>`, raw
    /// (preceded by the stream header when the server had not sent one yet).
    #[test]
    fn stream_error_on_tcp() {
        let v = stream_error_bytes(
            Framing::Tcp,
            StreamError::NotWellFormed,
            None,
            Some(("localhost", "s1")),
        );
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s1' \
             version='1.0' xml:lang='en'><stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
             <not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
        );
        let ws = stream_error_bytes(Framing::WebSocket, StreamError::NotWellFormed, None, None);
        assert_eq!(ws[0], 0x81, "framed on WebSocket");
        assert!(ws.ends_with(&websocket::close_frame(websocket::CLOSE_NORMAL, "")));
    }
}
