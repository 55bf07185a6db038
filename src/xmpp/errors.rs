//! Stream errors (RFC 6120 §4.9, framed per RFC 7395 §3.6) and stanza errors (§8.3).

use super::{NS_FRAMING, NS_STANZAS, NS_STREAM_ERRORS, NS_STREAMS};
use crate::net::websocket;
use crate::xml::escape::{escape_attr, escape_text};
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
    v.extend_from_slice(b"<open xmlns='");
    v.extend_from_slice(NS_FRAMING.as_bytes());
    v.extend_from_slice(b"' from='");
    escape_attr(domain, &mut v);
    v.extend_from_slice(b"' id='");
    escape_attr(id, &mut v);
    v.extend_from_slice(b"' version='1.0' xml:lang='en'/>");
    v
}

pub fn close_element() -> Vec<u8> {
    format!("<close xmlns='{NS_FRAMING}'/>").into_bytes()
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
    e.extend_from_slice(b"<stream:error xmlns:stream='");
    e.extend_from_slice(NS_STREAMS.as_bytes());
    e.extend_from_slice(b"'><");
    e.extend_from_slice(err.name().as_bytes());
    e.extend_from_slice(b" xmlns='");
    e.extend_from_slice(NS_STREAM_ERRORS.as_bytes());
    e.extend_from_slice(b"'/>");
    if let Some(t) = text {
        e.extend_from_slice(b"<text xmlns='");
        e.extend_from_slice(NS_STREAM_ERRORS.as_bytes());
        e.extend_from_slice(b"' xml:lang='en'>");
        escape_text(t, &mut e);
        e.extend_from_slice(b"</text>");
    }
    e.extend_from_slice(b"</stream:error>");
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
    v.push(b'<');
    v.extend_from_slice(kind.as_bytes());
    v.extend_from_slice(b" xmlns='jabber:client' to='");
    let t0 = v.len() as u32;
    escape_attr(to, &mut v);
    let to_r = t0..v.len() as u32;
    v.extend_from_slice(b"' from='");
    let f0 = v.len() as u32;
    escape_attr(from, &mut v);
    let from_r = f0..v.len() as u32;
    v.extend_from_slice(b"' type='error'");
    if !id_attr.is_empty() {
        v.push(b' ');
        v.extend_from_slice(id_attr.as_bytes());
    }
    v.extend_from_slice(b"><error type='");
    v.extend_from_slice(cond.error_type().as_bytes());
    v.extend_from_slice(b"'><");
    v.extend_from_slice(cond.name().as_bytes());
    v.extend_from_slice(b" xmlns='");
    v.extend_from_slice(NS_STANZAS.as_bytes());
    v.extend_from_slice(b"'/>");
    if let Some(t) = text {
        v.extend_from_slice(b"<text xmlns='");
        v.extend_from_slice(NS_STANZAS.as_bytes());
        v.extend_from_slice(b"' xml:lang='en'>");
        escape_text(t, &mut v);
        v.extend_from_slice(b"</text>");
    }
    v.extend_from_slice(b"</error></");
    v.extend_from_slice(kind.as_bytes());
    v.push(b'>');
    (v, to_r, from_r)
}
