//! The resumable framer for XMPP over TCP (RFC 6120 §4): one long XML document
//! `<?xml …?><stream:stream …>…</stream:stream>` arrives as a byte stream, split anywhere.
//! [`Framer`] finds where the stream header and each top-level child of the stream root
//! end, so the caller hands each complete child, as one `&str`, to the same
//! [`Stanza::parse`] the WebSocket path uses (one parse per stanza).
//!
//! # How a connection uses it
//!
//! The connection owns a buffer it appends reads to (`Vec<u8>`, `BytesMut`) and calls
//! [`Framer::next`] on it until it returns `Ok(None)` (more bytes needed); then it drains
//! the front of the buffer the framer is done with:
//!
//! ```
//! # use aoba::xml::framer::{Event, FrameLimits, Framer};
//! # use aoba::xml::Limits;
//! let mut framer = Framer::new(FrameLimits::new(256 * 1024, Limits::default()));
//! let mut buf: Vec<u8> = Vec::new();
//! for read in [&b"<stream:stream xmlns='jabber:client' xmlns:stream='http://"[..],
//!              &b"etherx.jabber.org/streams' version='1.0'> <presence/><mess"[..],
//!              &b"age to='a@b'><body>hi</body></message></stream:stream>"[..]] {
//!     buf.extend_from_slice(read);
//!     while let Some(ev) = framer.next(&buf).expect("well-formed") {
//!         match ev {
//!             Event::Header { text, .. } => { /* parse_header(text), answer */ }
//!             Event::Element { text, .. } => { /* Stanza::parse(text, &limits) */ }
//!             Event::End => { /* send </stream:stream>, close */ }
//!         }
//!     }
//!     let n = framer.consumed();
//!     buf.drain(..n);
//!     framer.consume(n);
//! }
//! ```
//!
//! The buffer must keep the bytes the framer has not released (`buf[consumed()..]`)
//! unchanged between calls, and only grow at its end. The buffer never needs to hold more
//! than `consumed() + max_stanza_bytes` (or the header bound) plus one read: a unit that
//! does not end within its bound is an error as soon as that many bytes were scanned.
//! With a `BytesMut`, `buf.split_to(range.end)` right after an `Element` hands the
//! element on without a copy (then `consume(range.end)`).
//!
//! # What it checks, and what it leaves to [`Stanza::parse`]
//!
//! Only what finding the boundaries needs, and the limits, checked while scanning, before
//! anything is buffered past them:
//!
//! - start and end tags matched by qualified name (`</stream:stream>` closes the root;
//!   inside a stanza `</a>` must close `<a>`), attribute values quoted with `<` refused in
//!   them, `>` allowed in them, CDATA sections inside stanzas, whitespace between stanzas
//!   skipped (keepalives), the XML declaration before the header (its `encoding` must be
//!   UTF-8), nothing after `</stream:stream>` but whitespace;
//! - the limits: bytes of one top-level child (`max_stanza_bytes`), nesting depth and
//!   attributes per element exactly as [`Stanza::parse`] counts them (the child is depth 1;
//!   namespace declarations are attributes), and bytes of the prolog plus header (the
//!   header's attributes are bounded by those bytes, not by `max_attrs`);
//! - RFC 6120 §11.1: comments, processing instructions, DTDs are refused where they start;
//! - UTF-8: each complete unit is validated once when it ends (a character split between
//!   reads is never an error, invalid UTF-8 in a complete unit is).
//!
//! Names, entities, characters, namespaces and duplicate attributes are checked by the one
//! parse of the element (`Stanza::parse`), as on WebSocket. Whatever `Stanza::parse`
//! accepts as an element the framer accepts as a top-level child, and a depth or
//! attribute limit the framer reports is one `Stanza::parse` refuses too (property
//! tests). Whitespace between stanzas is RFC 6120 §4.6.1's keepalive; the framer skips
//! it and releases it at once (a caller that wants to see it compares
//! [`Framer::consumed`] before and after).
//!
//! # Namespaces on TCP
//!
//! A top-level child on TCP usually carries no `xmlns`: it inherits the content namespace
//! (`jabber:client`) the header declared as its default. `Stanza::parse` of the child alone
//! then gives the root namespace `""`, which the core already takes as `jabber:client`
//! (`xmpp::stream`: `ns::CLIENT | ""`), and the one serialization (`router::stamp`) adds
//! `xmlns='jabber:client'` when the stanza has none, so a WebSocket recipient gets it.
//! Children in the stream namespace use the header's prefix (`<stream:error>`); parsed
//! alone that prefix is undeclared, so the caller looks at [`qname`] first: per RFC 6120
//! §4.9.1 a `<stream:error>` from the client is its stream error (the stream is over:
//! answer `</stream:stream>` and close, §4.4); any other stream-namespace child (a client
//! never sends `<stream:features>`) is a first-level child the server does not support,
//! `unsupported-stanza-type` (§4.9.3.24). Other prefixes declared on the header and used
//! by children (RFC 6120 §4.8.5 says SHOULD NOT for the content namespace) make
//! `Stanza::parse` report an undeclared prefix (`not-well-formed`); no known client does
//! it.
//!
//! # Restarts
//!
//! After STARTTLS (`<proceed/>`) and after SASL success the client sends a new header
//! (RFC 6120 §5.4.3.3, §6.4.6). Call [`Framer::reset`] right after handling the element
//! that restarts the stream, before the next [`Framer::next`]: the framer then reads a new
//! prolog and header from [`Framer::consumed`] on. For STARTTLS the caller also discards
//! whatever plaintext followed `<starttls/>` in its buffer (those bytes were not protected
//! by TLS): `buf.drain(..)`, `framer.consume(n)` with `n` the length, as above.

use std::ops::Range;

use smallvec::SmallVec;

use super::stanza::Limits;
#[cfg(doc)]
use super::stanza::Stanza;

mod bytes;
mod error;
mod header;

use bytes::{STOP_CLOSE_NAME, STOP_IN_TAG, STOP_START_NAME, find2, is_space, skip_until};
pub use error::FrameError;
use header::check_declaration;
pub use header::{StreamHeader, parse_header, qname, self_closed_header};

/// Bound on the prolog (XML declaration, whitespace) plus the stream header, in bytes, if
/// the caller has no other: an RFC 6120 header is about 200 bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 4096;

/// Longest qualified name of the stream root (`stream:stream` is 13 bytes).
const ROOT_NAME_MAX: usize = 64;

/// The bounds the framer enforces while scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Bytes of one top-level child, from its `<` to its last `>` (`limits.max_stanza_bytes`).
    pub max_stanza_bytes: usize,
    /// Bytes from the start of a stream (after a restart: the first byte of the new
    /// stream) to the `>` of its header, XML declaration and whitespace included.
    pub max_header_bytes: usize,
    /// Depth and attributes, counted as [`Stanza::parse`] counts them (pass the same value
    /// to both).
    pub xml: Limits,
}

impl FrameLimits {
    /// `max_stanza_bytes` and `xml` from the configuration, the header bound
    /// [`DEFAULT_MAX_HEADER_BYTES`].
    pub fn new(max_stanza_bytes: usize, xml: Limits) -> Self {
        FrameLimits {
            max_stanza_bytes,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            xml,
        }
    }
}

/// What [`Framer::next`] found. Ranges index the buffer passed to that call; `text` is
/// `buf[range]`, valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'b> {
    /// The stream root's start tag, complete (`<stream:stream …>`), the XML declaration
    /// before it skipped. See [`parse_header`].
    Header { range: Range<usize>, text: &'b str },
    /// One complete top-level child of the root: a stanza or a nonza.
    Element { range: Range<usize>, text: &'b str },
    /// `</stream:stream>`: the client ended the stream. Only whitespace may follow.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the header's `>`.
    Prolog,
    /// Inside the root.
    Stream,
    /// After `</stream:stream>`.
    Ended,
}

/// Where the scan is. Each state is resumable at any byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Whitespace between units (prolog, between stanzas, after the end).
    Idle,
    /// Just after `<`.
    Lt,
    /// In a start tag's name (from `tag`).
    StartName,
    /// In a start tag, between attributes.
    InTag,
    /// In an attribute value quoted by this byte.
    AttrValue(u8),
    /// After `/` in a start tag: `>` must follow.
    EmptySlash,
    /// In an end tag's name (from `tag`).
    CloseName,
    /// After an end tag's name: whitespace, then `>`.
    CloseTail,
    /// Character data inside a stanza.
    Text,
    /// Just after `<!`.
    Bang,
    /// After `<![`: this many bytes of `CDATA[` matched.
    CdataOpen(u8),
    /// In a CDATA section: this many `]` in a row just before (at most 2).
    Cdata(u8),
    /// After `<?`: the low 7 bits count the bytes of the target read (up to 3, while they
    /// spell `xml` in any case); bit 7 set when one of them was upper case.
    Pi(u8),
    /// In the XML declaration (content from `tag`); true right after a `?`.
    Decl(bool),
}

const CDATA_OPEN: &[u8] = b"CDATA[";

/// Finds where each top-level child of a TCP stream ends; see the module documentation.
///
/// Between calls it keeps only a fixed scan state (positions, counts, the state of the
/// tag, quote, CDATA or declaration it is in) and, for end-tag matching, the offsets and
/// lengths of the open elements' names (inline up to depth 8, at most `max_depth`). The
/// scan never goes back: each byte is examined once whatever the reads, plus once by the
/// UTF-8 check when its element is complete (and end-tag names once more, to match them);
/// nothing is allocated per element.
#[derive(Debug, Clone)]
pub struct Framer {
    limits: FrameLimits,
    phase: Phase,
    st: St,
    /// Next byte to scan, as an index into the caller's buffer.
    pos: usize,
    /// Start of the unit being scanned; everything before it is released. While
    /// `phase == Prolog` it stays at the first byte of the stream (the header bound counts
    /// from there).
    mark: usize,
    /// Start of the current tag name or declaration content, relative to `mark`.
    tag: usize,
    /// Attributes seen in the current start tag.
    attrs: usize,
    decl_seen: bool,
    /// Open elements of the current child: (name offset from `mark`, name length).
    open: SmallVec<[(u32, u32); 8]>,
    root_name: [u8; ROOT_NAME_MAX],
    root_len: u8,
    /// A self-closed root (`<stream:stream/>`): `End` right after `Header`.
    pending_end: bool,
    /// The first error; returned again by every later call.
    failed: Option<FrameError>,
    /// Bytes examined plus states entered (tests check the work is linear).
    #[cfg(test)]
    work: u64,
}

impl Framer {
    pub fn new(limits: FrameLimits) -> Self {
        let mut limits = limits;
        // Name offsets are kept as u32; Stanza::parse refuses more than 4 GiB anyway.
        limits.max_stanza_bytes = limits.max_stanza_bytes.min(u32::MAX as usize);
        Framer {
            limits,
            phase: Phase::Prolog,
            st: St::Idle,
            pos: 0,
            mark: 0,
            tag: 0,
            attrs: 0,
            decl_seen: false,
            open: SmallVec::new(),
            root_name: [0; ROOT_NAME_MAX],
            root_len: 0,
            pending_end: false,
            failed: None,
            #[cfg(test)]
            work: 0,
        }
    }

    pub fn limits(&self) -> &FrameLimits {
        &self.limits
    }

    /// Bytes at the front of the buffer the framer no longer needs: every event returned so
    /// far and the whitespace after it. The caller may drain them and call
    /// [`Framer::consume`].
    pub fn consumed(&self) -> usize {
        self.mark
    }

    /// The caller removed `n` bytes (at most [`Framer::consumed`]) from the front of its
    /// buffer. Panics if `n > consumed()`: the framer still needs those bytes.
    pub fn consume(&mut self, n: usize) {
        assert!(
            n <= self.mark,
            "Framer::consume({n}) beyond consumed() = {}",
            self.mark
        );
        self.mark -= n;
        self.pos -= n;
    }

    /// A stream restart (after STARTTLS or SASL success): a new prolog and header are read
    /// from [`Framer::consumed`] on. Call it right after the event that restarts the stream.
    pub fn reset(&mut self) {
        self.phase = Phase::Prolog;
        self.st = St::Idle;
        self.pos = self.mark;
        self.tag = 0;
        self.attrs = 0;
        self.decl_seen = false;
        self.open.clear();
        self.root_len = 0;
        self.pending_end = false;
        self.failed = None;
    }

    /// Whether the header of the current stream was read.
    pub fn in_stream(&self) -> bool {
        self.phase != Phase::Prolog
    }

    /// The qualified name of the stream root (`stream:stream`), once the header was read.
    pub fn root_name(&self) -> &[u8] {
        &self.root_name[..usize::from(self.root_len)]
    }

    #[cfg(test)]
    pub(crate) fn work(&self) -> u64 {
        self.work
    }

    /// Scans `buf` from where the last call stopped; returns the next event, `Ok(None)`
    /// when every byte of `buf` was scanned and more are needed, or the error that ends the
    /// stream (returned again by every later call). `buf` is the caller's buffer: what it
    /// held at the last call, less what was [consumed](Framer::consume), plus new bytes.
    pub fn next<'b>(&mut self, buf: &'b [u8]) -> Result<Option<Event<'b>>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        assert!(
            self.pos <= buf.len(),
            "Framer::next: the buffer lost bytes the framer had scanned"
        );
        if self.pending_end {
            self.pending_end = false;
            return Ok(Some(Event::End));
        }
        loop {
            let in_unit = match self.phase {
                Phase::Prolog => true,
                Phase::Stream => self.st != St::Idle,
                Phase::Ended => false,
            };
            let max = match self.phase {
                Phase::Prolog => self.limits.max_header_bytes,
                _ => self.limits.max_stanza_bytes,
            };
            let end = if in_unit {
                buf.len().min(self.mark.saturating_add(max))
            } else {
                buf.len()
            };
            if self.pos >= end {
                if in_unit && self.pos - self.mark >= max {
                    // The unit is incomplete after all the bytes it may have.
                    return Err(self.fail(match self.phase {
                        Phase::Prolog => FrameError::HeaderTooLarge,
                        _ => FrameError::StanzaTooLarge,
                    }));
                }
                return Ok(None);
            }
            #[cfg(test)]
            let before = self.pos;
            let r = self.step(buf, end);
            #[cfg(test)]
            {
                self.work += self.pos.saturating_sub(before) as u64;
            }
            match r {
                Ok(None) => {}
                Ok(Some(ev)) => return Ok(Some(ev)),
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        self.failed = Some(e);
        e
    }

    /// Scans from `pos` until an event completes or `end` is reached (or, when a stanza
    /// starts, the end of its window: the caller then computes it again).
    fn step<'b>(&mut self, buf: &'b [u8], mut end: usize) -> Result<Option<Event<'b>>, FrameError> {
        let mut p = self.pos;
        while p < end {
            #[cfg(test)]
            {
                self.work += 1;
            }
            match self.st {
                St::Idle => {
                    while p < end && is_space(buf[p]) {
                        p += 1;
                    }
                    if self.phase != Phase::Prolog {
                        self.mark = p;
                    }
                    if p < end {
                        if buf[p] != b'<' {
                            return Err(FrameError::NotWellFormed(match self.phase {
                                Phase::Prolog => "text before the stream header",
                                Phase::Stream => "text between stanzas",
                                Phase::Ended => "data after the end of the stream",
                            }));
                        }
                        if self.phase == Phase::Ended {
                            return Err(FrameError::NotWellFormed(
                                "data after the end of the stream",
                            ));
                        }
                        if self.phase == Phase::Stream {
                            // A stanza starts here: its window.
                            end = end.min(p.saturating_add(self.limits.max_stanza_bytes));
                        }
                        self.st = St::Lt;
                        p += 1;
                    }
                }
                St::Lt => {
                    let b = buf[p];
                    match b {
                        b'/' => {
                            if self.phase == Phase::Prolog {
                                return Err(FrameError::NotWellFormed(
                                    "end tag before the stream header",
                                ));
                            }
                            self.tag = p + 1 - self.mark;
                            self.st = St::CloseName;
                        }
                        b'!' => self.st = St::Bang,
                        b'?' => self.st = St::Pi(0),
                        b'>' | b'<' | b'=' | b'\'' | b'"' => {
                            return Err(FrameError::NotWellFormed("invalid tag name"));
                        }
                        _ if is_space(b) => {
                            return Err(FrameError::NotWellFormed("invalid tag name"));
                        }
                        _ => {
                            self.tag = p - self.mark;
                            self.st = St::StartName;
                        }
                    }
                    p += 1;
                }
                St::StartName => {
                    p = skip_until(buf, p, end, STOP_START_NAME);
                    if p < end {
                        if matches!(buf[p], b'<' | b'\'' | b'"' | b'=') {
                            return Err(FrameError::NotWellFormed(
                                "invalid character in a tag name",
                            ));
                        }
                        // The delimiter is left for `InTag`.
                        self.start_name_done(buf, p)?;
                    }
                }
                St::InTag => {
                    p = skip_until(buf, p, end, STOP_IN_TAG);
                    if p < end {
                        match buf[p] {
                            b'>' => {
                                if let Some(ev) = self.start_tag_end(buf, p)? {
                                    return Ok(Some(ev));
                                }
                                p += 1;
                            }
                            b'/' => {
                                self.st = St::EmptySlash;
                                p += 1;
                            }
                            q @ (b'\'' | b'"') => {
                                self.attrs += 1;
                                // The header is bounded by its bytes: it has 6 or 7
                                // attributes where `max_attrs_per_element` may be 4.
                                if self.attrs > self.limits.xml.max_attrs
                                    && self.phase != Phase::Prolog
                                {
                                    return Err(FrameError::TooManyAttributes);
                                }
                                self.st = St::AttrValue(q);
                                p += 1;
                            }
                            _ => return Err(FrameError::NotWellFormed("'<' in a start tag")),
                        }
                    }
                }
                St::AttrValue(q) => match find2(&buf[p..end], q, b'<') {
                    Some(i) => {
                        p += i;
                        if buf[p] == b'<' {
                            return Err(FrameError::NotWellFormed("'<' in an attribute value"));
                        }
                        self.st = St::InTag;
                        p += 1;
                    }
                    None => p = end,
                },
                St::EmptySlash => {
                    if buf[p] != b'>' {
                        return Err(FrameError::NotWellFormed(
                            "'/' not followed by '>' in a tag",
                        ));
                    }
                    if let Some(ev) = self.empty_tag_end(buf, p)? {
                        return Ok(Some(ev));
                    }
                    p += 1;
                }
                St::Text => match find2(&buf[p..end], b'<', b'<') {
                    Some(i) => {
                        p += i + 1;
                        self.st = St::Lt;
                    }
                    None => p = end,
                },
                St::CloseName => {
                    p = skip_until(buf, p, end, STOP_CLOSE_NAME);
                    if p < end {
                        if !matches!(buf[p], b'>' | b' ' | b'\t' | b'\n' | b'\r') {
                            return Err(FrameError::NotWellFormed(
                                "invalid character in an end tag",
                            ));
                        }
                        self.check_close_name(buf, p)?;
                        self.st = St::CloseTail;
                    }
                }
                St::CloseTail => {
                    while p < end && is_space(buf[p]) {
                        p += 1;
                    }
                    if p < end {
                        if buf[p] != b'>' {
                            return Err(FrameError::NotWellFormed("invalid end tag"));
                        }
                        if let Some(ev) = self.end_tag_end(buf, p)? {
                            return Ok(Some(ev));
                        }
                        p += 1;
                    }
                }
                St::Bang => {
                    match buf[p] {
                        b'-' => return Err(FrameError::Restricted("comment")),
                        b'[' if self.phase == Phase::Stream && !self.open.is_empty() => {
                            self.st = St::CdataOpen(0);
                        }
                        b'[' => return Err(FrameError::NotWellFormed("CDATA outside a stanza")),
                        b'A'..=b'Z' => return Err(FrameError::Restricted("DTD markup")),
                        _ => return Err(FrameError::NotWellFormed("invalid markup after '<!'")),
                    }
                    p += 1;
                }
                St::CdataOpen(i) => {
                    if buf[p] != CDATA_OPEN[usize::from(i)] {
                        return Err(FrameError::NotWellFormed("invalid CDATA section"));
                    }
                    p += 1;
                    self.st = if usize::from(i) + 1 == CDATA_OPEN.len() {
                        St::Cdata(0)
                    } else {
                        St::CdataOpen(i + 1)
                    };
                }
                St::Cdata(mut n) => {
                    let mut done = false;
                    while p < end {
                        if n == 0 {
                            match find2(&buf[p..end], b']', b']') {
                                Some(i) => p += i,
                                None => {
                                    p = end;
                                    break;
                                }
                            }
                        }
                        let b = buf[p];
                        p += 1;
                        if b == b']' {
                            n = (n + 1).min(2);
                        } else if b == b'>' && n == 2 {
                            done = true;
                            break;
                        } else {
                            n = 0;
                        }
                    }
                    self.st = if done { St::Text } else { St::Cdata(n) };
                }
                St::Pi(n) => {
                    let b = buf[p];
                    let (read, upper) = (n & 0x7f, n & 0x80);
                    if read < 3 {
                        let want = b"xml"[usize::from(read)];
                        if b == want {
                            self.st = St::Pi((read + 1) | upper);
                        } else if b.to_ascii_lowercase() == want {
                            self.st = St::Pi((read + 1) | 0x80);
                        } else {
                            return Err(FrameError::Restricted("processing instruction"));
                        }
                    } else if is_space(b) {
                        if upper != 0 || self.phase != Phase::Prolog || self.decl_seen {
                            return Err(FrameError::NotWellFormed("misplaced XML declaration"));
                        }
                        self.decl_seen = true;
                        self.tag = p - self.mark;
                        self.st = St::Decl(false);
                    } else if b == b'?' {
                        return Err(FrameError::NotWellFormed("invalid XML declaration"));
                    } else {
                        return Err(FrameError::Restricted("processing instruction"));
                    }
                    p += 1;
                }
                St::Decl(mut q) => {
                    let mut done = false;
                    while p < end {
                        let b = buf[p];
                        p += 1;
                        if q && b == b'>' {
                            done = true;
                            break;
                        }
                        q = b == b'?';
                    }
                    if done {
                        let content = &buf[self.mark + self.tag..p - 2];
                        #[cfg(test)]
                        {
                            self.work += content.len() as u64;
                        }
                        check_declaration(content)?;
                        self.st = St::Idle;
                    } else {
                        self.st = St::Decl(q);
                    }
                }
            }
        }
        self.pos = p;
        Ok(None)
    }

    /// A start tag's name ends at `p` (a delimiter, left for `InTag`).
    fn start_name_done(&mut self, buf: &[u8], p: usize) -> Result<(), FrameError> {
        let start = self.mark + self.tag;
        let len = p - start;
        self.attrs = 0;
        if self.phase == Phase::Prolog {
            if len > ROOT_NAME_MAX {
                return Err(FrameError::HeaderTooLarge);
            }
            self.root_name[..len].copy_from_slice(&buf[start..p]);
            self.root_len = len as u8;
        } else {
            // Stanza::parse: the child is depth 1 and `max_depth` counts it.
            if self.open.len() >= self.limits.xml.max_depth {
                return Err(FrameError::TooDeep);
            }
            // Both below the stanza bound, itself at most u32::MAX.
            self.open.push((self.tag as u32, len as u32));
        }
        self.st = St::InTag;
        self.pos = p;
        Ok(())
    }

    /// `>` of a start tag at `p`.
    fn start_tag_end<'b>(
        &mut self,
        buf: &'b [u8],
        p: usize,
    ) -> Result<Option<Event<'b>>, FrameError> {
        if self.phase == Phase::Prolog {
            self.phase = Phase::Stream;
            return self.header_done(buf, p + 1);
        }
        self.st = St::Text;
        self.pos = p + 1;
        Ok(None)
    }

    /// `>` of `/>` at `p`.
    fn empty_tag_end<'b>(
        &mut self,
        buf: &'b [u8],
        p: usize,
    ) -> Result<Option<Event<'b>>, FrameError> {
        if self.phase == Phase::Prolog {
            // `<stream:stream …/>`: a stream without content, over at once.
            self.phase = Phase::Ended;
            self.pending_end = true;
            return self.header_done(buf, p + 1);
        }
        self.open.pop();
        if self.open.is_empty() {
            return self.element_done(buf, p + 1);
        }
        self.st = St::Text;
        self.pos = p + 1;
        Ok(None)
    }

    /// `>` of an end tag at `p` (its name was checked).
    fn end_tag_end<'b>(
        &mut self,
        buf: &'b [u8],
        p: usize,
    ) -> Result<Option<Event<'b>>, FrameError> {
        if self.open.pop().is_none() {
            // `</stream:stream>`.
            self.phase = Phase::Ended;
            self.st = St::Idle;
            self.pos = p + 1;
            self.mark = p + 1;
            return Ok(Some(Event::End));
        }
        if self.open.is_empty() {
            return self.element_done(buf, p + 1);
        }
        self.st = St::Text;
        self.pos = p + 1;
        Ok(None)
    }

    /// An end tag's name ends at `p`: it must name the innermost open element (the root
    /// when no child is open).
    fn check_close_name(&mut self, buf: &[u8], p: usize) -> Result<(), FrameError> {
        let name = &buf[self.mark + self.tag..p];
        let open: &[u8] = match self.open.last() {
            Some(&(at, len)) => {
                let at = self.mark + at as usize;
                &buf[at..at + len as usize]
            }
            None => &self.root_name[..usize::from(self.root_len)],
        };
        #[cfg(test)]
        {
            self.work += name.len() as u64;
        }
        // Names are short: a loop beats a call to memcmp.
        if name.len() != open.len() || name.iter().zip(open).any(|(a, b)| a != b) {
            return Err(FrameError::NotWellFormed("mismatched end tag"));
        }
        self.pos = p;
        Ok(())
    }

    fn header_done<'b>(
        &mut self,
        buf: &'b [u8],
        end: usize,
    ) -> Result<Option<Event<'b>>, FrameError> {
        // The header starts at the `<` before the root's name.
        let range = self.mark + self.tag - 1..end;
        let text = self.utf8(buf, range.clone())?;
        self.st = St::Idle;
        self.pos = end;
        self.mark = end;
        Ok(Some(Event::Header { range, text }))
    }

    fn element_done<'b>(
        &mut self,
        buf: &'b [u8],
        end: usize,
    ) -> Result<Option<Event<'b>>, FrameError> {
        let range = self.mark..end;
        let text = self.utf8(buf, range.clone())?;
        self.st = St::Idle;
        self.pos = end;
        self.mark = end;
        Ok(Some(Event::Element { range, text }))
    }

    fn utf8<'b>(&mut self, buf: &'b [u8], range: Range<usize>) -> Result<&'b str, FrameError> {
        #[cfg(test)]
        {
            self.work += range.len() as u64;
        }
        std::str::from_utf8(&buf[range]).map_err(|_| FrameError::NotWellFormed("invalid UTF-8"))
    }
}

#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
