//! The framer on realistic RFC 6120 streams split at every byte, restarts, linear work and
//! the header helpers. Bad input and limits are in `limit_tests.rs`, property tests in
//! `proptests.rs`; both use the harness here (`run`).

use super::*;
use crate::xml::stanza::{Stanza, XmlError};

pub(super) const XML_LIMITS: Limits = Limits {
    max_depth: 16,
    max_attrs: 16,
};

pub(super) fn limits() -> FrameLimits {
    FrameLimits {
        max_stanza_bytes: 64 * 1024,
        max_header_bytes: 1024,
        xml: XML_LIMITS,
    }
}

/// An event with its text owned, so runs over different splits compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ev {
    Header(String),
    Element(String),
    End,
}

/// What one run produced: the events, then the error that ended it (`None`: it wants more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    pub events: Vec<Ev>,
    pub error: Option<FrameError>,
}

/// How the test connection gives bytes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Drain {
    /// After `next` returned `None`, once per read (a `Vec<u8>` buffer).
    PerRead,
    /// After every event (`BytesMut::split_to` style).
    PerEvent,
}

/// Feeds `input` as reads cut at `cuts` (offsets, clamped and sorted as they come) the way
/// a connection does, restarting the stream after `<auth>` and `<starttls>` (the test
/// pretends the server said yes). Checks each event's range against its text.
pub(super) fn run(input: &[u8], cuts: &[usize], lim: FrameLimits, drain: Drain) -> Run {
    let mut f = Framer::new(lim);
    let mut buf: Vec<u8> = Vec::new();
    let mut events = vec![];
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        let c = c.clamp(prev, input.len());
        buf.extend_from_slice(&input[prev..c]);
        prev = c;
        loop {
            let ev = match f.next(&buf) {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => {
                    // Sticky: the same error again, whatever comes next.
                    assert_eq!(f.next(&buf), Err(e));
                    return Run {
                        events,
                        error: Some(e),
                    };
                }
            };
            let (ev, restart) = match ev {
                Event::Header { range, text } => {
                    assert_eq!(&buf[range], text.as_bytes());
                    (Ev::Header(text.to_string()), false)
                }
                Event::Element { range, text } => {
                    assert_eq!(&buf[range.clone()], text.as_bytes());
                    assert_eq!(f.consumed(), range.end);
                    let local = qname(text).1;
                    (
                        Ev::Element(text.to_string()),
                        local == "auth" || local == "starttls",
                    )
                }
                Event::End => (Ev::End, false),
            };
            events.push(ev);
            if restart {
                f.reset();
            }
            if drain == Drain::PerEvent {
                let n = f.consumed();
                buf.drain(..n);
                f.consume(n);
            }
        }
        let n = f.consumed();
        buf.drain(..n);
        f.consume(n);
    }
    Run {
        events,
        error: None,
    }
}

pub(super) fn unsplit(input: &[u8]) -> Run {
    run(input, &[], limits(), Drain::PerRead)
}

pub(super) const HDR: &str = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// A client's whole session as RFC 6120 §9.1 shows it (STARTTLS, SASL, bind), then the
/// stanzas a client sends: keepalives, nesting, `>` and quotes in attribute values, empty
/// tags with and without space, CDATA, entities, multi-byte names and text, prefixes,
/// whitespace in end tags, XEP-0198 nonzas, and the end.
const SESSION: &str = concat!(
    "<?xml version='1.0'?>\n",
    "<stream:stream from='juliet@im.example.com' to='im.example.com' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\n",
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    "<?xml version='1.0' encoding='UTF-8'?><stream:stream from='juliet@im.example.com' to='im.example.com' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    "<auth xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\" mechanism=\"PLAIN\">AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
    "<stream:stream from='juliet@im.example.com' to='im.example.com' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    "<iq id='tn281v37' type='set'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource></bind></iq>",
    " \n ",
    "<iq type='get' id='roster_1'><query xmlns='jabber:iq:roster'/></iq>",
    "<presence/>",
    "<message from='juliet@im.example.com/balcony' id='ju2ba41c' to='romeo@example.net' type = \"chat\" xml:lang='en'><body>Art thou not Romeo, and a Montague?</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread></message>",
    " ",
    "<presence><show>away</show><status>Text with &gt; and &amp; and 'quotes' and \"doubles\" &#233;&#x1F600;</status><priority>5</priority></presence>\r\n",
    "<message to='x@y' id='q\"&gt;' title=\"a > b 'c' />\"><body><![CDATA[<not a tag/> & ]] ] ]]]></body><x:foo xmlns:x='urn:x'><x:bar a='1'/></x:foo ></message>",
    "<message to='j\u{fc}rgen@example.de'><body>Gr\u{fc}\u{df}e \u{1f600} \u{65e5}\u{672c}\u{8a9e}</body><\u{fc}n\u{ef}code attr='\u{df}'>\u{e9}</\u{fc}n\u{ef}code></message>",
    "<enable xmlns='urn:xmpp:sm:3' resume='true'/><r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='3' />",
    "<iq type='get' id='p1'>\n  <ping xmlns='urn:xmpp:ping'/>\n</iq>",
    "\t\r\n ",
    "</stream:stream>",
    "\n",
);

/// No declaration, double quotes, CRLF, a stream that only keeps alive, then ends.
const KEEPALIVES: &str = "<stream:stream\r\n  xmlns=\"jabber:client\"\r\n  xmlns:stream=\"http://etherx.jabber.org/streams\"\r\n  to=\"localhost\" version=\"1.0\">\r\n \r\n \r\n<message><body>a</body></message>\r\n \r\n</stream:stream >";

/// Deep nesting, many attributes, a long text, pubsub-like payload.
const PUBSUB: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"no\" ?>",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
    "<iq type='set' id='pub1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='princely_musings'><item id='ae890ac52d0df67ed7cfdf51b644e901'>",
    "<entry xmlns='http://www.w3.org/2005/Atom'><title>Soliloquy</title><summary>To be, or not to be: that is the question: Whether 'tis nobler in the mind to suffer The slings and arrows of outrageous fortune, Or to take arms against a sea of troubles, And by opposing end them?</summary>",
    "<link rel='alternate' type='text/html' href='http://denmark.lit/2003/12/13/atom03'/><id>tag:denmark.lit,2003:entry-32397</id><published>2003-12-13T18:30:02Z</published><updated>2003-12-13T18:30:02Z</updated></entry>",
    "</item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field></x></publish-options></pubsub></iq>",
    "</stream:stream>",
);

/// The root closed in its start tag: a stream with nothing in it.
const EMPTY_ROOT: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'/>";

pub(super) const CORPUS: &[&str] = &[SESSION, KEEPALIVES, PUBSUB, EMPTY_ROOT];

fn names(r: &Run) -> Vec<String> {
    r.events
        .iter()
        .map(|e| match e {
            Ev::Header(_) => "HEADER".to_string(),
            Ev::Element(t) => qname(t).1.to_string(),
            Ev::End => "END".to_string(),
        })
        .collect()
}

#[test]
fn session_frames_as_rfc_6120_says() {
    let r = unsplit(SESSION.as_bytes());
    assert_eq!(r.error, None);
    assert_eq!(
        names(&r),
        [
            "HEADER", "starttls", "HEADER", "auth", "HEADER", "iq", "iq", "presence", "message",
            "presence", "message", "message", "enable", "r", "a", "iq", "END"
        ]
    );
    // The XML declaration is skipped, the header is the root's start tag alone.
    let Ev::Header(h) = &r.events[0] else {
        panic!()
    };
    assert!(h.starts_with("<stream:stream from=") && h.ends_with("streams'>"));
    // Elements are exact: no surrounding whitespace, `>` in attribute values kept.
    assert!(r.events.contains(&Ev::Element("<presence/>".into())));
    assert!(r.events.contains(&Ev::Element(
        "<iq type='get' id='p1'>\n  <ping xmlns='urn:xmpp:ping'/>\n</iq>".into()
    )));
    let r = unsplit(KEEPALIVES.as_bytes());
    assert_eq!(names(&r), ["HEADER", "message", "END"]);
    assert_eq!(names(&unsplit(PUBSUB.as_bytes())), ["HEADER", "iq", "END"]);
    assert_eq!(names(&unsplit(EMPTY_ROOT.as_bytes())), ["HEADER", "END"]);
}

/// Each element parses with `Stanza::parse` (the same limits), each header with
/// `parse_header`.
#[test]
fn corpus_round_trips_through_the_stanza_parser() {
    for s in CORPUS {
        let r = unsplit(s.as_bytes());
        assert_eq!(r.error, None, "{s}");
        for e in &r.events {
            match e {
                Ev::Header(h) => {
                    let hd = parse_header(h).unwrap();
                    assert_eq!(
                        (hd.prefix.as_str(), hd.local.as_str()),
                        ("stream", "stream")
                    );
                    assert_eq!(hd.ns, crate::xml::ns::STREAMS);
                    assert_eq!(hd.content_ns.as_deref(), Some(crate::xml::ns::CLIENT));
                    assert_eq!(hd.version.as_deref(), Some("1.0"));
                }
                Ev::Element(t) => {
                    let st = Stanza::parse(t, &XML_LIMITS)
                        .unwrap_or_else(|e| panic!("{t:?} does not parse: {e}"));
                    assert_eq!(st.root().end as usize, t.len());
                }
                Ev::End => {}
            }
        }
    }
}

/// Two reads cut at every offset, and one byte per read, give the events of one read;
/// draining per read or per event makes no difference.
#[test]
fn corpus_split_at_every_byte_gives_the_same_events() {
    for s in CORPUS {
        let b = s.as_bytes();
        let whole = unsplit(b);
        for k in 0..=b.len() {
            assert_eq!(run(b, &[k], limits(), Drain::PerRead), whole, "cut at {k}");
            assert_eq!(run(b, &[k], limits(), Drain::PerEvent), whole, "cut at {k}");
        }
        let bytes: Vec<usize> = (1..b.len()).collect();
        assert_eq!(run(b, &bytes, limits(), Drain::PerRead), whole);
        assert_eq!(run(b, &bytes, limits(), Drain::PerEvent), whole);
    }
}

/// A multi-byte character split between reads is no error; the element is checked whole.
#[test]
fn partial_utf8_at_the_end_of_a_read_waits() {
    let input = format!("{HDR}<message><body>\u{1f600}</body></message>");
    let emoji = input.find('\u{1f600}').unwrap();
    let mut f = Framer::new(limits());
    let b = input.as_bytes();
    for cut in emoji + 1..emoji + 4 {
        let mut f2 = f.clone();
        assert!(matches!(f2.next(&b[..cut]), Ok(Some(Event::Header { .. }))));
        assert_eq!(f2.next(&b[..cut]), Ok(None));
        assert!(matches!(f2.next(b), Ok(Some(Event::Element { .. }))));
    }
    assert!(matches!(f.next(b), Ok(Some(Event::Header { .. }))));
}

#[test]
fn well_formed_oddities_are_accepted() {
    let ok = |rest: &str| {
        let r = unsplit(format!("{HDR}{rest}").as_bytes());
        assert_eq!(r.error, None, "{rest:?}");
        r
    };
    // `>` and `/>` in values, `]]>`-like text outside CDATA is the parser's business.
    ok("<message a='>' b=\"/>\" c = 'x'/>");
    ok("<message><body>a > b</body></message>");
    ok("<message><![CDATA[]]></message><message><![CDATA[]]]]></message>");
    ok("<message\n\tto='a'\r\n/>");
    ok("<m></m\t\r\n >");
    // Declaration variants the XML spec allows.
    for decl in [
        "<?xml version='1.0'?>",
        "<?xml version=\"1.0\" ?>",
        "<?xml version = '1.0' encoding = 'utf-8' standalone = 'yes'?>",
        "<?xml version='1.1' standalone='no'?>",
        "\n<?xml version='1.0'?>\n\n",
    ] {
        let r = unsplit(format!("{decl}{HDR}</stream:stream>").as_bytes());
        assert_eq!(r.error, None, "{decl:?}");
        assert_eq!(names(&r), ["HEADER", "END"]);
    }
    // Whitespace after the end is allowed (XML: Misc after the root).
    let r = unsplit(format!("{HDR}</stream:stream>\r\n \t").as_bytes());
    assert_eq!(
        (names(&r), r.error),
        (vec!["HEADER".into(), "END".into()], None)
    );
    // Any root prefix; the close tag must match it.
    let r = unsplit(b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'><message/></s:stream>");
    assert_eq!(names(&r), ["HEADER", "message", "END"]);
}

/// A large element fed one byte per read costs linear work: the framer never goes back to
/// the start of a partial element (a framer that rescanned would do ~n²/2 = 10¹⁰ here).
#[test]
fn byte_by_byte_work_is_linear() {
    let mut el = String::from("<iq type='set' id='big'><query xmlns='urn:x'>");
    let mut i = 0;
    while el.len() < 200_000 {
        el.push_str(&format!(
            "<item n='{i}' v=\"a > b\"><t>text &amp; more \u{e9}\u{1f600}</t><![CDATA[<x>]]]]><e/></item>"
        ));
        i += 1;
    }
    el.push_str("</query></iq>");
    let input = format!("{HDR}{el}");
    let b = input.as_bytes();
    let mut f = Framer::new(FrameLimits::new(1 << 20, XML_LIMITS));
    let mut got = None;
    for k in 1..=b.len() {
        if let Some(Event::Element { text, .. }) = f.next(&b[..k]).unwrap() {
            got = Some(text.len());
        } else {
            assert_eq!(f.next(&b[..k]), Ok(None));
        }
        // Checked as it goes, so a quadratic framer fails here rather than hangs.
        assert!(
            f.work() <= 4 * k as u64 + 64,
            "work {} after {k} bytes",
            f.work()
        );
    }
    assert_eq!(got, Some(el.len()));
    let n = b.len() as u64;
    // Per byte: one step on arrival (plus the empty call), one examination, the UTF-8
    // check at the end, end-tag comparisons.
    assert!(f.work() <= 5 * n, "work {} for {n} bytes", f.work());
    // And in one read: about 2 per byte (scan + UTF-8).
    let mut g = Framer::new(FrameLimits::new(1 << 20, XML_LIMITS));
    while g.next(b).unwrap().is_some() {}
    assert!(g.work() <= 3 * n, "work {} for {n} bytes", g.work());
}

/// Stream restarts: `reset` right after the element, the new header may already be in
/// the buffer (the client pipelined it) or come later.
#[test]
fn restart_after_sasl_reads_a_new_header() {
    let first = format!(
        "{HDR}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFAYgBj</auth>"
    );
    let second = format!("<?xml version='1.0'?>{HDR}<iq type='set' id='b'/></stream:stream>");
    let mut f = Framer::new(limits());
    let mut buf = first.clone().into_bytes();
    assert!(matches!(f.next(&buf), Ok(Some(Event::Header { .. }))));
    let Ok(Some(Event::Element { text, .. })) = f.next(&buf) else {
        panic!()
    };
    assert_eq!(qname(text), ("", "auth"));
    f.reset();
    assert!(!f.in_stream());
    assert_eq!(f.next(&buf), Ok(None));
    buf.extend_from_slice(second.as_bytes());
    assert!(matches!(f.next(&buf), Ok(Some(Event::Header { .. }))));
    assert!(f.in_stream());
    assert!(matches!(f.next(&buf), Ok(Some(Event::Element { .. }))));
    assert_eq!(f.next(&buf), Ok(Some(Event::End)));
    assert_eq!(f.next(&buf), Ok(None));
    // Without reset, a second header inside the stream is an element that never closes
    // with a matching name: the declaration before it is refused.
    let mut g = Framer::new(limits());
    let all = format!("{first}{second}");
    while let Ok(Some(_)) = g.next(all.as_bytes()) {}
    assert_eq!(
        g.next(all.as_bytes()),
        Err(FrameError::NotWellFormed("misplaced XML declaration"))
    );
}

/// After `<starttls/>` the connection drops the plaintext that followed it and starts the
/// framer afresh on the TLS bytes.
#[test]
fn restart_after_starttls_discards_the_plaintext_tail() {
    let mut f = Framer::new(limits());
    let mut buf =
        format!("{HDR}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message>injected")
            .into_bytes();
    assert!(matches!(f.next(&buf), Ok(Some(Event::Header { .. }))));
    assert!(matches!(f.next(&buf), Ok(Some(Event::Element { .. }))));
    f.reset();
    buf.clear();
    f.consume(f.consumed());
    buf.extend_from_slice(format!("{HDR}<presence/>").as_bytes());
    assert!(matches!(f.next(&buf), Ok(Some(Event::Header { .. }))));
    assert!(matches!(f.next(&buf), Ok(Some(Event::Element { text, .. })) if text == "<presence/>"));
}

#[test]
fn errors_are_sticky() {
    let mut f = Framer::new(limits());
    let buf = format!("{HDR}<!--x-->");
    assert!(f.next(buf.as_bytes()).unwrap().is_some());
    let e = f.next(buf.as_bytes()).unwrap_err();
    assert_eq!(e, FrameError::Restricted("comment"));
    assert_eq!(e.condition(), "restricted-xml");
    assert_eq!(f.next(b"anything else entirely"), Err(e));
}

#[test]
#[should_panic(expected = "beyond consumed")]
fn consuming_unreleased_bytes_is_a_caller_bug() {
    let mut f = Framer::new(limits());
    let buf = format!("{HDR}<message>");
    assert!(f.next(buf.as_bytes()).unwrap().is_some());
    assert_eq!(f.next(buf.as_bytes()), Ok(None));
    assert_eq!(f.consumed(), HDR.len());
    f.consume(HDR.len() + 1);
}

/// Open names are kept inline up to depth 8: a typical stanza allocates nothing; deeper
/// ones spill once per connection, not per element.
#[test]
fn no_allocation_per_element() {
    let mut f = Framer::new(limits());
    let input = unsplit(SESSION.as_bytes());
    assert_eq!(input.error, None);
    let mut buf = Vec::new();
    for part in SESSION.as_bytes().chunks(7) {
        buf.extend_from_slice(part);
        while let Ok(Some(ev)) = f.next(&buf) {
            if let Event::Element { text, .. } = ev
                && matches!(qname(text).1, "auth" | "starttls")
            {
                f.reset();
            }
            assert!(!f.open.spilled());
        }
    }
}

#[test]
fn header_helpers() {
    let h = "<stream:stream from='juliet@im.example.com' to='im.example.com' version='1.0' xml:lang='en' id='x&amp;y' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    let hd = parse_header(h).unwrap();
    assert_eq!(
        hd,
        StreamHeader {
            prefix: "stream".into(),
            local: "stream".into(),
            ns: crate::xml::ns::STREAMS.into(),
            content_ns: Some("jabber:client".into()),
            to: Some("im.example.com".into()),
            from: Some("juliet@im.example.com".into()),
            id: Some("x&y".into()),
            version: Some("1.0".into()),
            lang: Some("en".into()),
        }
    );
    // No default namespace, another prefix: reported as they are, the caller decides.
    let hd = parse_header("<s:stream xmlns:s='urn:other' >").unwrap();
    assert_eq!(
        (hd.prefix.as_str(), hd.ns.as_str(), hd.content_ns),
        ("s", "urn:other", None)
    );
    // An undeclared stream prefix or a duplicate attribute does not parse.
    assert!(parse_header("<stream:stream>").is_err());
    assert!(parse_header("<stream:stream xmlns:stream='a' to='a' to='b'>").is_err());
    assert_eq!(self_closed_header("<s a='>'>"), "<s a='>'/>");
    assert_eq!(self_closed_header("<s a='x'/>"), "<s a='x'/>");
    assert_eq!(qname("<stream:error>"), ("stream", "error"));
    assert_eq!(qname("<message to='a'/>"), ("", "message"));
    assert_eq!(qname("<r/>"), ("", "r"));
    assert_eq!(qname("<a:b\n/>"), ("a", "b"));
    assert_eq!(qname(""), ("", ""));
}

/// The client's own stream error arrives as an element with the stream prefix: the
/// caller sees it by `qname` before parsing (parsed alone, its prefix is undeclared).
#[test]
fn stream_prefixed_children_are_framed() {
    let input = format!(
        "{HDR}<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
    );
    let r = unsplit(input.as_bytes());
    assert_eq!(r.error, None);
    let Ev::Element(t) = &r.events[1] else {
        panic!()
    };
    assert_eq!(qname(t), ("stream", "error"));
    assert!(matches!(
        Stanza::parse(t, &XML_LIMITS),
        Err(XmlError::NotWellFormed(_))
    ));
    assert_eq!(r.events[2], Ev::End);
}

/// An idle TCP session keeps its framer (boxed) and no buffer: the state stays small.
#[test]
fn the_framer_state_is_small() {
    let size = std::mem::size_of::<Framer>();
    eprintln!("size_of::<Framer>() = {size}");
    assert!(size <= 256, "{size} bytes");
}
