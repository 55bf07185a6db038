//! Stream errors (RFC 6120 §4.9, framed per RFC 7395 §3.6) and stanza errors (§8.3).

use crate::net::websocket;
use crate::xml::ns;
use crate::xml::writer::Elem;
use std::ops::Range;

/// The stream error conditions Aoba sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    BadFormat,
    Conflict,
    ConnectionTimeout,
    HostUnknown,
    InternalServerError,
    InvalidNamespace,
    InvalidXml,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    ResourceConstraint,
    RestrictedXml,
    SystemShutdown,
    UndefinedCondition,
    UnsupportedStanzaType,
    UnsupportedVersion,
}

impl StreamError {
    pub fn name(self) -> &'static str {
        use StreamError::*;
        match self {
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
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
        }
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

/// The last words of a stream: (an `<open/>` if none was sent yet,) the error, `<close/>`,
/// and the WebSocket close frame — all framed, ready to write.
pub fn stream_error_bytes(
    err: StreamError,
    text: Option<&str>,
    open_first: Option<(&str, &str)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    if let Some((domain, id)) = open_first {
        out.extend_from_slice(&websocket::frame(
            websocket::OP_TEXT,
            &open_element(domain, id),
        ));
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
    out.extend_from_slice(&websocket::frame(websocket::OP_TEXT, &e));
    out.extend_from_slice(&websocket::frame(websocket::OP_TEXT, &close_element()));
    out.extend_from_slice(&websocket::close_frame(websocket::CLOSE_NORMAL, ""));
    out
}

/// Stanza error conditions (RFC 6120 §8.3.3) with their default error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    RegistrationRequired,
    RemoteServerNotFound,
    ResourceConstraint,
    ServiceUnavailable,
}

impl Cond {
    pub fn name(self) -> &'static str {
        use Cond::*;
        match self {
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
