//! The framer's errors, each with the RFC 6120 stream error the caller sends.

/// Why the stream must end; [`FrameError::condition`] names its RFC 6120 stream error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Bad XML: a mismatched or misplaced end tag, `<` in an attribute value, text other
    /// than whitespace between stanzas, a second root, bytes after `</stream:stream>`,
    /// invalid UTF-8, a misplaced XML declaration… → `not-well-formed` (§4.9.3.13).
    NotWellFormed(&'static str),
    /// A comment, a processing instruction (other than the XML declaration before the
    /// header), DTD markup (`<!DOCTYPE`, `<!ENTITY`…) → `restricted-xml` (§4.9.3.18, §11.1).
    Restricted(&'static str),
    /// The XML declaration names an encoding other than UTF-8 → `unsupported-encoding`
    /// (§4.9.3.22, §11.6).
    UnsupportedEncoding,
    /// A top-level child longer than `max_stanza_bytes` → `policy-violation`.
    StanzaTooLarge,
    /// Elements nested deeper than `xml.max_depth` → `policy-violation`.
    TooDeep,
    /// More than `xml.max_attrs` attributes on one element of a stanza (the header is
    /// bounded by `max_header_bytes` instead) → `policy-violation`.
    TooManyAttributes,
    /// Prolog and header longer than `max_header_bytes`, or a root name longer than 64
    /// bytes → `policy-violation`.
    HeaderTooLarge,
}

impl FrameError {
    /// The RFC 6120 §4.9.3 stream error condition the caller sends.
    pub fn condition(&self) -> &'static str {
        match self {
            FrameError::NotWellFormed(_) => "not-well-formed",
            FrameError::Restricted(_) => "restricted-xml",
            FrameError::UnsupportedEncoding => "unsupported-encoding",
            FrameError::StanzaTooLarge
            | FrameError::TooDeep
            | FrameError::TooManyAttributes
            | FrameError::HeaderTooLarge => "policy-violation",
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::NotWellFormed(m) => write!(f, "not well-formed: {m}"),
            FrameError::Restricted(m) => write!(f, "restricted XML: {m}"),
            FrameError::UnsupportedEncoding => f.write_str("encoding other than UTF-8"),
            FrameError::StanzaTooLarge => f.write_str("stanza larger than the limit"),
            FrameError::TooDeep => f.write_str("element nesting too deep"),
            FrameError::TooManyAttributes => f.write_str("too many attributes"),
            FrameError::HeaderTooLarge => f.write_str("stream header larger than the limit"),
        }
    }
}

impl std::error::Error for FrameError {}
