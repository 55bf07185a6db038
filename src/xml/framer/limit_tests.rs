//! The framer on bad input and against every limit: each gives its error, at any split,
//! and an endless element stops at its bound having scanned only that much.

use super::tests::{Drain, Ev, HDR, limits, run, unsplit};
use super::*;
use crate::xml::stanza::{Stanza, XmlError};

/// Every bad input gives its error, whatever the split.
#[test]
fn bad_streams_give_their_error_at_any_split() {
    use FrameError::{NotWellFormed as Nwf, Restricted, UnsupportedEncoding};
    let h = |rest: &str| format!("{HDR}{rest}").into_bytes();
    let cases: Vec<(Vec<u8>, FrameError)> = vec![
        (h("<message><body></message>"), Nwf("mismatched end tag")),
        (h("<message></foo>"), Nwf("mismatched end tag")),
        (h("<a:b></a:c>"), Nwf("mismatched end tag")),
        (h("<a:b></b>"), Nwf("mismatched end tag")),
        (h("</foo>"), Nwf("mismatched end tag")),
        (h("</stream:streamx>"), Nwf("mismatched end tag")),
        (h("</stream>"), Nwf("mismatched end tag")),
        (h("<message></message x>"), Nwf("invalid end tag")),
        (h("<message></>"), Nwf("mismatched end tag")),
        (h("<message to='a<b'/>"), Nwf("'<' in an attribute value")),
        (h("<message to=\"a<b\"/>"), Nwf("'<' in an attribute value")),
        (h("<message to='a' <b/>"), Nwf("'<' in a start tag")),
        (h("<message/ >"), Nwf("'/' not followed by '>' in a tag")),
        (h("<message>< body/></message>"), Nwf("invalid tag name")),
        (h("<>"), Nwf("invalid tag name")),
        (h("<a=b/>"), Nwf("invalid character in a tag name")),
        (h("hello"), Nwf("text between stanzas")),
        (h(" &#32;"), Nwf("text between stanzas")),
        (h("\u{a0}"), Nwf("text between stanzas")),
        (h("<![CDATA[x]]>"), Nwf("CDATA outside a stanza")),
        (
            h("<message><![CDAT[x]]></message>"),
            Nwf("invalid CDATA section"),
        ),
        (
            h("<message><!x></message>"),
            Nwf("invalid markup after '<!'"),
        ),
        (
            h("</stream:stream><message/>"),
            Nwf("data after the end of the stream"),
        ),
        (
            h("</stream:stream> \n x"),
            Nwf("data after the end of the stream"),
        ),
        (
            h(&format!("</stream:stream>{HDR}")),
            Nwf("data after the end of the stream"),
        ),
        (
            h("<message>\u{e9}</message>\u{e9}"),
            Nwf("text between stanzas"),
        ),
        (h("<?xml version='1.0'?>"), Nwf("misplaced XML declaration")),
        (
            h("<message><?xml version='1.0'?></message>"),
            Nwf("misplaced XML declaration"),
        ),
        (h("<!-- hi -->"), Restricted("comment")),
        (h("<message><!-- hi --></message>"), Restricted("comment")),
        (h("<?pi x?>"), Restricted("processing instruction")),
        (
            h("<message><?php ?></message>"),
            Restricted("processing instruction"),
        ),
        (
            h("<message><!ENTITY x 'y'></message>"),
            Restricted("DTD markup"),
        ),
        (h("<!DOCTYPE x>"), Restricted("DTD markup")),
        (
            format!("<!DOCTYPE stream>{HDR}").into_bytes(),
            Restricted("DTD markup"),
        ),
        (format!("<!--x-->{HDR}").into_bytes(), Restricted("comment")),
        (
            format!("<?xml-stylesheet href='a'?>{HDR}").into_bytes(),
            Restricted("processing instruction"),
        ),
        (
            format!("<?xml version='1.0'?><?xml version='1.0'?>{HDR}").into_bytes(),
            Nwf("misplaced XML declaration"),
        ),
        (
            format!("<?XML version='1.0'?>{HDR}").into_bytes(),
            Nwf("misplaced XML declaration"),
        ),
        (
            format!("<?xml?>{HDR}").into_bytes(),
            Nwf("invalid XML declaration"),
        ),
        (
            format!("<?xml version='2.0'?>{HDR}").into_bytes(),
            Nwf("invalid XML declaration"),
        ),
        (
            format!("<?xml encoding='UTF-8'?>{HDR}").into_bytes(),
            Nwf("invalid XML declaration"),
        ),
        (
            format!("<?xml version='1.0' standalone='maybe'?>{HDR}").into_bytes(),
            Nwf("invalid XML declaration"),
        ),
        (
            format!("<?xml version='1.0'encoding='UTF-8'?>{HDR}").into_bytes(),
            Nwf("invalid XML declaration"),
        ),
        (
            format!("<?xml version='1.0' encoding='ISO-8859-1'?>{HDR}").into_bytes(),
            UnsupportedEncoding,
        ),
        (
            format!("<?xml version='1.0' encoding='UTF-16'?>{HDR}").into_bytes(),
            UnsupportedEncoding,
        ),
        (
            format!("\u{feff}{HDR}").into_bytes(),
            Nwf("text before the stream header"),
        ),
        (
            format!("x{HDR}").into_bytes(),
            Nwf("text before the stream header"),
        ),
        (
            b"</stream:stream>".to_vec(),
            Nwf("end tag before the stream header"),
        ),
        (
            b"<stream:stream to='a<b'>".to_vec(),
            Nwf("'<' in an attribute value"),
        ),
        (
            h("<message>\u{e9}</message>")
                .into_iter()
                .filter(|&b| b != 0xa9)
                .collect(),
            Nwf("invalid UTF-8"),
        ),
        (
            [h("<message>"), vec![0xff], b"</message>".to_vec()].concat(),
            Nwf("invalid UTF-8"),
        ),
        (
            [h("<message a='"), vec![0xc3], b"'/>".to_vec()].concat(),
            Nwf("invalid UTF-8"),
        ),
        (
            [h("<m"), vec![0xed, 0xa0, 0x80], b"/>".to_vec()].concat(),
            Nwf("invalid UTF-8"),
        ),
        (
            [b"<stream:stream a='".to_vec(), vec![0xff], b"'>".to_vec()].concat(),
            Nwf("invalid UTF-8"),
        ),
    ];
    for (input, want) in cases {
        let shown = String::from_utf8_lossy(&input).into_owned();
        let whole = unsplit(&input);
        assert_eq!(whole.error, Some(want), "{shown:?}");
        assert_ne!(want.condition(), "policy-violation");
        for k in 0..=input.len() {
            assert_eq!(
                run(&input, &[k], limits(), Drain::PerRead),
                whole,
                "{shown:?} cut at {k}"
            );
        }
    }
}

fn lim(max_stanza_bytes: usize, max_depth: usize, max_attrs: usize) -> FrameLimits {
    FrameLimits {
        max_stanza_bytes,
        max_header_bytes: 512,
        xml: Limits {
            max_depth,
            max_attrs,
        },
    }
}

/// Depth and attributes are counted exactly as `Stanza::parse` counts them: one more than
/// the limit is an error in both, the limit itself is not.
#[test]
fn depth_and_attribute_limits_agree_with_the_stanza_parser() {
    let xml = Limits {
        max_depth: 3,
        max_attrs: 3,
    };
    let l = lim(4096, 3, 3);
    let cases = [
        ("<a><b><c/></b></a>", None),
        ("<a><b><c><d/></c></b></a>", Some(FrameError::TooDeep)),
        ("<a><b/><b><c></c></b><b/></a>", None),
        (
            "<a><b><c></c><c><d></d></c></b></a>",
            Some(FrameError::TooDeep),
        ),
        ("<a xmlns='x' b='1' c='2'/>", None),
        (
            "<a xmlns='x' xmlns:p='y' b='1' c='2'/>",
            Some(FrameError::TooManyAttributes),
        ),
        ("<a><b x='1' y='2' z='3'/></a>", None),
        (
            "<a><b x='1' y='2' z='3' w=\"4\"/></a>",
            Some(FrameError::TooManyAttributes),
        ),
    ];
    for (el, want) in cases {
        let input = format!("{HDR}{el}");
        let r = run(input.as_bytes(), &[], l, Drain::PerRead);
        assert_eq!(r.error, want, "{el}");
        let parsed = Stanza::parse(el, &xml);
        match want {
            None => {
                assert!(parsed.is_ok(), "{el}");
                assert_eq!(r.events.last(), Some(&Ev::Element(el.into())));
            }
            Some(_) => assert!(matches!(parsed, Err(XmlError::Limit(_))), "{el}"),
        }
    }
    // The header's attributes do not count (4 here): its bytes are bounded.
    let r = run(HDR.as_bytes(), &[], lim(4096, 3, 3), Drain::PerRead);
    assert_eq!((r.error, r.events.len()), (None, 1));
}

/// An element of exactly `max_stanza_bytes` passes; one byte more fails as soon as the
/// limit is reached, before the end of the element is even sent.
#[test]
fn stanza_bytes_limit_is_exact() {
    let max = 1024;
    let el = |n: usize| format!("<message><body>{}</body></message>", "a".repeat(n - 32));
    assert_eq!(el(max).len(), max);
    let l = lim(max, 16, 16);
    let ok = format!("{HDR} {} ", el(max));
    let r = run(ok.as_bytes(), &[], l, Drain::PerRead);
    assert_eq!((r.error, r.events.len()), (None, 2));
    let big = format!("{HDR} {}", el(max + 1));
    let r = run(big.as_bytes(), &[], l, Drain::PerRead);
    assert_eq!(r.error, Some(FrameError::StanzaTooLarge));
    // The error comes with the limit's last byte: the rest of the element is not needed.
    let upto = HDR.len() + 1 + max;
    let r = run(&big.as_bytes()[..upto], &[], l, Drain::PerRead);
    assert_eq!(r.error, Some(FrameError::StanzaTooLarge));
    let r = run(&big.as_bytes()[..upto - 1], &[], l, Drain::PerRead);
    assert_eq!(r.error, None);
}

/// An endless element in any scan state (text, attribute value, start tag, CDATA, end
/// tag name) stops with the bytes limit once the limit is passed, having scanned only
/// that much, with a buffer of at most the limit plus one read.
#[test]
fn endless_elements_stop_at_the_limit() {
    let max = 8192;
    let read = 4096;
    let cases: [(&str, &[u8]); 6] = [
        ("<message><body>", b"a"),
        ("<message to='", b"x"),
        ("<message", b" "),
        ("<message><![CDATA[", b"]"),
        ("<message></mess", b"a"),
        ("<mess", b"a"),
    ];
    for (start, filler) in cases {
        let mut f = Framer::new(lim(max, 16, 16));
        let mut buf = format!("{HDR}{start}").into_bytes();
        assert!(matches!(f.next(&buf), Ok(Some(Event::Header { .. }))));
        let mut max_buf = 0;
        let err = loop {
            match f.next(&buf) {
                Ok(None) => {}
                Ok(Some(ev)) => panic!("{start}: {ev:?}"),
                Err(e) => break e,
            }
            let n = f.consumed();
            buf.drain(..n);
            f.consume(n);
            max_buf = max_buf.max(buf.len());
            assert!(max_buf <= max + start.len(), "{start}: buffered {max_buf}");
            for _ in 0..read {
                buf.extend_from_slice(filler);
            }
        };
        assert_eq!(err, FrameError::StanzaTooLarge, "{start}");
        assert!(
            f.work() <= 2 * (HDR.len() + max) as u64,
            "{start}: work {}",
            f.work()
        );
    }
}

/// Whitespace between stanzas is released as it is scanned: a keepalive-only stream never
/// makes the buffer grow.
#[test]
fn keepalives_do_not_accumulate() {
    let mut f = Framer::new(lim(1024, 16, 16));
    let mut buf = HDR.as_bytes().to_vec();
    assert!(matches!(f.next(&buf), Ok(Some(Event::Header { .. }))));
    for _ in 0..1000 {
        buf.extend_from_slice(&[b' '; 4096]);
        assert_eq!(f.next(&buf), Ok(None));
        let n = f.consumed();
        assert_eq!(n, buf.len());
        buf.drain(..n);
        f.consume(n);
    }
    buf.extend_from_slice(b"<presence/>");
    assert!(matches!(f.next(&buf), Ok(Some(Event::Element { .. }))));
}

#[test]
fn header_limits() {
    // A header longer than the bound, declaration and whitespace included.
    let long = format!(
        "<?xml version='1.0'?>\n<stream:stream to='{}' xmlns='jabber:client'>",
        "a".repeat(600)
    );
    let r = run(long.as_bytes(), &[], lim(4096, 16, 16), Drain::PerRead);
    assert_eq!(r.error, Some(FrameError::HeaderTooLarge));
    assert_eq!(r.error.unwrap().condition(), "policy-violation");
    // Endless whitespace before the header.
    let r = run(&[b' '; 600], &[], lim(4096, 16, 16), Drain::PerRead);
    assert_eq!(r.error, Some(FrameError::HeaderTooLarge));
    // An endless declaration.
    let mut decl = b"<?xml version='1.0'".to_vec();
    decl.resize(600, b' ');
    let r = run(&decl, &[], lim(4096, 16, 16), Drain::PerRead);
    assert_eq!(r.error, Some(FrameError::HeaderTooLarge));
    // A root name longer than 64 bytes.
    let r = run(
        format!("<{}:stream>", "s".repeat(60)).as_bytes(),
        &[],
        lim(4096, 16, 16),
        Drain::PerRead,
    );
    assert_eq!(r.error, Some(FrameError::HeaderTooLarge));
    // Exactly at the bound is fine.
    let hdr = format!("{HDR}{}", " ".repeat(0));
    let l = FrameLimits {
        max_header_bytes: hdr.len(),
        ..lim(4096, 16, 16)
    };
    assert_eq!(run(hdr.as_bytes(), &[], l, Drain::PerRead).error, None);
    let l = FrameLimits {
        max_header_bytes: hdr.len() - 1,
        ..l
    };
    assert_eq!(
        run(hdr.as_bytes(), &[], l, Drain::PerRead).error,
        Some(FrameError::HeaderTooLarge)
    );
}
