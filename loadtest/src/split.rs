//! Splits the server's side of an RFC 6120 stream (one XML document over TCP) into its
//! stream header, its top-level children (stanzas, features, SASL and stream errors) and its
//! end, across reads split at any byte.
//!
//! A load client only needs the boundaries, not a parser: the scan tracks the depth over
//! start, end and empty tags, quoted attribute values (a `>` or `/>` inside quotes is not a
//! tag end), CDATA sections, comments and processing instructions (the `<?xml ...?>`
//! declaration before each header). Each element is handed out as one `String`, as a
//! WebSocket message is (RFC 7395), so the same string-level inspection (`xml.rs`) serves
//! both transports. A new `<stream:stream>` inside the stream is a restart (the server's
//! answer to the client's new header after SASL), not a child. It checks well-formedness
//! no further than that: the server is trusted to send XML, the checks here only keep a
//! broken stream from growing the buffer without bound.

/// One top-level item of the server's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The `<stream:stream ...>` start tag (a first header or a restart).
    Header(String),
    /// One complete top-level element (a child of the stream).
    Element(String),
    /// `</stream:stream>`: the server ended the stream.
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// A top-level element passed the size bound before it was complete.
    TooBig(usize),
    /// An end tag with no open element, or an element that is not UTF-8.
    Malformed(&'static str),
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitError::TooBig(n) => write!(f, "a top-level element of more than {n} bytes"),
            SplitError::Malformed(m) => write!(f, "malformed stream: {m}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Character data (between top-level items: whitespace keepalives).
    Text,
    /// Just after `<`.
    Lt,
    /// In a start (or empty-element) tag; `Some(q)` inside a value quoted with `q`.
    Start(Option<u8>),
    /// In an end tag.
    End,
    /// After `<!`: a comment, a CDATA section or a declaration, decided on the next byte.
    Bang,
    Comment,
    CData,
    /// `<!DOCTYPE ...>` or another declaration (not sent by XMPP servers; skipped).
    Decl,
    /// `<? ... ?>`.
    Pi,
}

/// The resumable splitter; it owns the read buffer (read straight into `buffer()`).
pub struct Splitter {
    buf: Vec<u8>,
    /// Bytes before this were handed out (or were whitespace between items).
    done: usize,
    /// Bytes before this were scanned.
    pos: usize,
    /// Start of the pending top-level item.
    start: usize,
    /// Start of the markup (`<`) being scanned.
    tag: usize,
    /// 0 outside the stream, 1 between the stream's children, 2+ inside a child.
    depth: u32,
    state: State,
    max: usize,
}

impl Splitter {
    /// `max`: the largest top-level element accepted, in bytes.
    pub fn new(max: usize) -> Self {
        Splitter {
            buf: Vec::new(),
            done: 0,
            pos: 0,
            start: 0,
            tag: 0,
            depth: 0,
            state: State::Text,
            max,
        }
    }

    /// The buffer to read into (append only); what was handed out is dropped first.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        self.compact();
        &mut self.buf
    }

    /// Bytes buffered and not handed out yet (scanned or not).
    pub fn unread(&self) -> usize {
        self.buf.len() - self.done
    }

    /// Append bytes (tests, and callers that read elsewhere).
    #[cfg(test)]
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer().extend_from_slice(bytes);
    }

    /// True if no unread bytes are buffered but whitespace.
    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        self.buf[self.done..].iter().all(u8::is_ascii_whitespace) && self.depth <= 1
    }

    fn compact(&mut self) {
        if self.done == 0 {
            return;
        }
        if self.done == self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..self.done);
        }
        self.pos -= self.done;
        self.start = self.start.saturating_sub(self.done);
        self.tag = self.tag.saturating_sub(self.done);
        self.done = 0;
    }

    fn take(&mut self, end: usize) -> Result<String, SplitError> {
        let s = std::str::from_utf8(&self.buf[self.start..end])
            .map_err(|_| SplitError::Malformed("not UTF-8"))?
            .to_owned();
        self.done = end;
        Ok(s)
    }

    /// The next complete item among the bytes buffered so far; `Ok(None)` when more bytes
    /// are needed.
    pub fn next_item(&mut self) -> Result<Option<Item>, SplitError> {
        while self.pos < self.buf.len() {
            let i = self.pos;
            let b = self.buf[i];
            self.pos += 1;
            match self.state {
                State::Text => {
                    if b == b'<' {
                        self.state = State::Lt;
                        self.tag = i;
                        if self.depth <= 1 {
                            self.start = i;
                        }
                    } else if self.depth <= 1 {
                        // whitespace keepalive (or stray text) between items
                        self.done = self.pos;
                    }
                }
                State::Lt => {
                    self.state = match b {
                        b'/' => State::End,
                        b'?' => State::Pi,
                        b'!' => State::Bang,
                        _ => State::Start(None),
                    }
                }
                State::Start(Some(q)) => {
                    if b == q {
                        self.state = State::Start(None);
                    }
                }
                State::Start(None) => match b {
                    b'\'' | b'"' => self.state = State::Start(Some(b)),
                    b'>' => {
                        self.state = State::Text;
                        let empty = self.buf[i - 1] == b'/';
                        if empty {
                            if self.depth <= 1 {
                                return self.take(self.pos).map(|s| Some(Item::Element(s)));
                            }
                        } else if self.depth == 0 || (self.depth == 1 && self.is_stream_tag()) {
                            // the stream header, or a new one after a restart
                            self.depth = 1;
                            return self.take(self.pos).map(|s| Some(Item::Header(s)));
                        } else {
                            self.depth += 1;
                        }
                    }
                    _ => {}
                },
                State::End => {
                    if b == b'>' {
                        self.state = State::Text;
                        match self.depth {
                            0 => return Err(SplitError::Malformed("end tag outside the stream")),
                            1 => {
                                self.depth = 0;
                                self.done = self.pos;
                                return Ok(Some(Item::End));
                            }
                            2 => {
                                self.depth = 1;
                                return self.take(self.pos).map(|s| Some(Item::Element(s)));
                            }
                            _ => self.depth -= 1,
                        }
                    }
                }
                State::Bang => {
                    self.state = match b {
                        b'-' => State::Comment,
                        b'[' => State::CData,
                        _ => State::Decl,
                    }
                }
                State::Comment => {
                    // "<!--" then anything, then "-->" (shortest: "<!---->")
                    if b == b'>' && i >= self.tag + 6 && &self.buf[i - 2..i] == b"--" {
                        self.end_markup();
                    }
                }
                State::CData => {
                    // "<![CDATA[" then anything, then "]]>" (shortest: "<![CDATA[]]>")
                    if b == b'>' && i >= self.tag + 11 && &self.buf[i - 2..i] == b"]]" {
                        self.state = State::Text;
                    }
                }
                State::Decl => {
                    if b == b'>' {
                        self.end_markup();
                    }
                }
                State::Pi => {
                    if b == b'>' && i >= self.tag + 3 && self.buf[i - 1] == b'?' {
                        self.end_markup();
                    }
                }
            }
        }
        // Between items everything scanned was handed out or dropped; a pending item is
        // bounded.
        let pending = self.depth >= 2 || self.state != State::Text;
        if pending && self.buf.len() - self.start > self.max {
            return Err(SplitError::TooBig(self.max));
        }
        Ok(None)
    }

    /// A comment, declaration or processing instruction ended: between items it is dropped
    /// (the `<?xml ...?>` before a header), inside an element it is part of it.
    fn end_markup(&mut self) {
        self.state = State::Text;
        if self.depth <= 1 {
            self.done = self.pos;
        }
    }

    /// The start tag at `self.tag` is `<stream:stream` (or an unprefixed `<stream`).
    fn is_stream_tag(&self) -> bool {
        let name = &self.buf[self.tag + 1..self.pos];
        let end = name
            .iter()
            .position(|c| c.is_ascii_whitespace() || *c == b'>' || *c == b'/')
            .unwrap_or(name.len());
        let name = &name[..end];
        let local = match name.iter().rposition(|&c| c == b':') {
            Some(k) => &name[k + 1..],
            None => name,
        };
        local == b"stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's side of a login, chat, MUC and end, as Aoba writes it over TCP (header
    /// and features from a recorded session; the rest extended with the cases that matter
    /// to the scan: `>` and `/>` in quoted values, CDATA with markup in it, a multi-byte
    /// character, whitespace keepalives, a stream error).
    const STREAM: &str = concat!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='5b1c' version='1.0' xml:lang='en'>",
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='77e0' version='1.0' xml:lang='en'>",
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session><sm xmlns='urn:xmpp:sm:3'/></stream:features>",
        "<iq xmlns='jabber:client' type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>user1@localhost/lt</jid></bind></iq>",
        "<presence xmlns='jabber:client' from='user1@localhost/lt' to='user1@localhost/lt'/>",
        " \n",
        "<message xmlns='jabber:client' from='user2@localhost/lt' to='user1@localhost/lt' type='chat' id='lt7' x=\"a > b /> 'c'\" y='\"/>\"'><body>lt r 7 1 h\u{e9}llo \u{2603} a &gt; b</body></message>",
        "<presence xmlns='jabber:client' from='group-1@conference.localhost/user1' to='user1@localhost/lt'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/><status code='110'/><status code='201'/></x></presence>",
        "<message xmlns='jabber:client' type='groupchat' from='group-1@conference.localhost/user1'><body><![CDATA[<not a='tag'/> ]] > ]]></body><!-- c > d --></message>",
        "\n",
        "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bye</text></stream:error>",
        "</stream:stream>",
    );

    fn all(s: &mut Splitter, out: &mut Vec<Item>) {
        while let Some(it) = s.next_item().expect("well-formed") {
            out.push(it);
        }
    }

    fn whole() -> Vec<Item> {
        let mut s = Splitter::new(1 << 20);
        s.push(STREAM.as_bytes());
        let mut out = Vec::new();
        all(&mut s, &mut out);
        assert!(s.is_idle());
        out
    }

    #[test]
    fn splits_the_recorded_stream() {
        let items = whole();
        let kinds: Vec<String> = items
            .iter()
            .map(|i| match i {
                Item::Header(h) => format!("H:{}", crate::xml::root_attr(h, "id").unwrap()),
                Item::Element(e) => crate::xml::root_local(e).to_string(),
                Item::End => "END".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "H:5b1c", "features", "success", "H:77e0", "features", "iq", "presence", "message",
                "presence", "message", "error", "END"
            ]
        );
        let Item::Element(m) = &items[7] else {
            panic!()
        };
        assert!(
            m.starts_with("<message ") && m.ends_with("</message>"),
            "{m}"
        );
        assert_eq!(
            crate::xml::child_text(m, "body"),
            Some("lt r 7 1 h\u{e9}llo \u{2603} a &gt; b")
        );
        let Item::Element(g) = &items[9] else {
            panic!()
        };
        assert!(g.ends_with("<!-- c > d --></message>"), "{g}");
        let Item::Header(h) = &items[0] else { panic!() };
        assert!(h.starts_with("<stream:stream ") && h.ends_with("xml:lang='en'>"));
    }

    /// Every split of the stream into two reads gives the same items, and so does a read
    /// per byte (every offset at once, including inside the multi-byte characters).
    #[test]
    fn every_byte_offset() {
        let want = whole();
        let bytes = STREAM.as_bytes();
        for cut in 0..=bytes.len() {
            let mut s = Splitter::new(1 << 20);
            let mut got = Vec::new();
            s.push(&bytes[..cut]);
            all(&mut s, &mut got);
            s.push(&bytes[cut..]);
            all(&mut s, &mut got);
            assert_eq!(got, want, "split at {cut}");
        }
        let mut s = Splitter::new(1 << 20);
        let mut got = Vec::new();
        for b in bytes {
            s.push(std::slice::from_ref(b));
            all(&mut s, &mut got);
        }
        assert_eq!(got, want);
        assert!(s.is_idle());
    }

    /// Three reads at every pair of offsets over the part with quotes and CDATA.
    #[test]
    fn every_pair_of_offsets_in_the_tricky_part() {
        let want = whole();
        let bytes = STREAM.as_bytes();
        let from = STREAM.find("<message").unwrap();
        let to = STREAM.find("<stream:error").unwrap();
        for a in from..to {
            for b in a..to {
                let mut s = Splitter::new(1 << 20);
                let mut got = Vec::new();
                for part in [&bytes[..a], &bytes[a..b], &bytes[b..]] {
                    s.push(part);
                    all(&mut s, &mut got);
                }
                assert_eq!(got, want, "split at {a} and {b}");
            }
        }
    }

    #[test]
    fn the_buffer_is_compacted() {
        let mut s = Splitter::new(1 << 20);
        s.push(b"<stream:stream xmlns:stream='x'>");
        assert!(matches!(s.next_item(), Ok(Some(Item::Header(_)))));
        for i in 0..1000 {
            s.push(format!("<presence id='{i}'/> ").as_bytes());
            let Ok(Some(Item::Element(e))) = s.next_item() else {
                panic!()
            };
            assert_eq!(
                crate::xml::root_attr(&e, "id"),
                Some(i.to_string().as_str())
            );
        }
        assert!(s.buffer().len() < 64, "{}", s.buffer().len());
    }

    #[test]
    fn bounds_and_errors() {
        let mut s = Splitter::new(64);
        s.push(b"<stream:stream><message><body>");
        assert!(matches!(s.next_item(), Ok(Some(Item::Header(_)))));
        assert_eq!(s.next_item(), Ok(None));
        s.push(&[b'x'; 64]);
        assert_eq!(s.next_item(), Err(SplitError::TooBig(64)));
        // garbage outside any element is bounded too
        let mut s = Splitter::new(64);
        s.push(&[b'x'; 100]);
        assert_eq!(s.next_item(), Ok(None));
        let mut s = Splitter::new(64);
        s.push(b"</a>");
        assert!(matches!(s.next_item(), Err(SplitError::Malformed(_))));
        let mut s = Splitter::new(64);
        s.push(b"<stream:stream><a>\xff</a>");
        assert!(matches!(s.next_item(), Ok(Some(Item::Header(_)))));
        assert!(matches!(s.next_item(), Err(SplitError::Malformed(_))));
    }
}
