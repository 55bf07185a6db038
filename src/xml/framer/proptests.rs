//! Property tests: any split gives the events of one read (valid streams, garbage and
//! mutated streams alike: the same verdict), generated stanzas come out whole and parse,
//! and the framer accepts every element `Stanza::parse` accepts.

use proptest::prelude::*;

use super::tests::{CORPUS, Drain, Ev, HDR, XML_LIMITS, limits, run, unsplit};
use super::*;
use crate::xml::escape::{escape_attr_to_string, escape_text_to_string, is_xml_char};
use crate::xml::stanza::Stanza;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn drain() -> impl Strategy<Value = Drain> {
    prop_oneof![Just(Drain::PerRead), Just(Drain::PerEvent)]
}

/// Cut points (any order, any value: `run` clamps them into reads).
fn cuts(max: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..max.max(1) + 1, 0..24).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

fn xml_string(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..max)
        .prop_map(|v| v.into_iter().filter(|&c| is_xml_char(c)).collect())
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    attrs: Vec<(String, String, bool)>,
    text: String,
    cdata: Option<String>,
    children: Vec<Node>,
}

fn tree() -> impl Strategy<Value = Node> {
    let leaf = (
        "[a-z\u{e9}\u{65e5}][a-z0-9_.\u{e9}-]{0,5}",
        proptest::collection::btree_map(
            "[a-z][a-z0-9]{0,3}",
            (xml_string(10), any::<bool>()),
            0..4,
        ),
        xml_string(20),
        proptest::option::of("[a-z<>&\\] \u{1f600}]{0,12}"),
    )
        .prop_map(|(name, attrs, text, cdata)| Node {
            name,
            attrs: attrs
                .into_iter()
                .filter(|(k, _)| k != "xmlns")
                .map(|(k, (v, dq))| (k, v, dq))
                .collect(),
            text,
            cdata: cdata.filter(|c| !c.contains("]]>")),
            children: vec![],
        });
    leaf.prop_recursive(4, 24, 4, |inner| {
        (inner.clone(), proptest::collection::vec(inner, 0..4)).prop_map(|(mut n, kids)| {
            n.children = kids;
            n
        })
    })
}

fn write(n: &Node, out: &mut String) {
    out.push('<');
    out.push_str(&n.name);
    for (k, v, dq) in &n.attrs {
        let q = if *dq { '"' } else { '\'' };
        out.push_str(&format!(" {k}={q}{}{q}", escape_attr_to_string(v)));
    }
    if n.text.is_empty() && n.children.is_empty() && n.cdata.is_none() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    out.push_str(&escape_text_to_string(&n.text));
    if let Some(c) = &n.cdata {
        out.push_str(&format!("<![CDATA[{c}]]>"));
    }
    for c in &n.children {
        write(c, out);
    }
    out.push_str(&format!("</{}>", n.name));
}

/// Element content from a small grammar: text, references, CDATA, empty elements and
/// nested pairs (prefixed, with `>` or `/>` in values, multi-byte names, whitespace in end
/// tags), with now and then a fragment that breaks it (a stray `<`, `&`, quote, `]]>`, a
/// comment, a PI): often well-formed, often deep or attribute-heavy, every scan state.
fn content() -> impl Strategy<Value = String> {
    let good = proptest::sample::select(vec![
        "text",
        "&amp;",
        "&#x1F600;",
        "&#233;",
        "<![CDATA[ <x> ]] ]]>",
        "<![CDATA[]]>",
        " ",
        "\r\n",
        "\t",
        "\u{e9}",
        "\u{1f600}",
        ">",
        "<d/>",
        "<d />",
        "<e x='1' y=\"&gt;\"/>",
        "<e x='1' y='2' z='3'/>",
        "<e\nx = '/>'\n/>",
    ]);
    let bad = proptest::sample::select(vec![
        "]]>",
        "<!--c-->",
        "<?p?>",
        "<!DOCTYPE x>",
        "&",
        "<",
        "'",
        "\"",
        "=",
        "/",
        "</a>",
        "<a>",
        "<![CDATA[",
    ]);
    let leaf = prop_oneof![8 => good, 1 => bad].prop_map(String::from);
    leaf.prop_recursive(5, 48, 5, |inner| {
        (
            proptest::sample::select(vec![
                ("<a>", "</a>"),
                ("<b:c xmlns:b='urn:b'>", "</b:c>"),
                ("<f a='/>' b=\"'\">", "</f >"),
                ("<g xmlns='urn:g' h='1'>", "</g\n>"),
                ("<\u{e9}t\u{e9}>", "</\u{e9}t\u{e9}>"),
            ]),
            proptest::collection::vec(inner, 0..5),
        )
            .prop_map(|((open, close), kids)| format!("{open}{}{close}", kids.concat()))
    })
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

proptest! {
    #![proptest_config(config(256))]

    /// Many reads of any sizes give the events of one read.
    #[test]
    fn corpus_random_splits(i in 0..CORPUS.len(), cuts in cuts(2500), d in drain()) {
        let b = CORPUS[i].as_bytes();
        prop_assert_eq!(run(b, &cuts, limits(), d), unsplit(b));
    }

    /// Generated stanzas with keepalives between them: each comes out whole (bytes as
    /// written), parses with `Stanza::parse`, and any split gives the same.
    #[test]
    fn generated_streams_frame_and_parse(
        trees in proptest::collection::vec((tree(), "[ \t\r\n]{0,3}"), 1..5),
        cuts in cuts(4000),
        d in drain(),
    ) {
        let mut input = format!("<?xml version='1.0'?>{HDR}");
        let mut want = vec![];
        for (t, ws) in &trees {
            let mut s = String::new();
            write(t, &mut s);
            input.push_str(&s);
            input.push_str(ws);
            want.push(s);
        }
        input.push_str("</stream:stream>");
        let lim = FrameLimits { max_stanza_bytes: 1 << 20, ..limits() };
        let r = run(input.as_bytes(), &[], lim, Drain::PerRead);
        prop_assert_eq!(r.error, None);
        prop_assert_eq!(r.events.len(), want.len() + 2);
        for (e, w) in r.events[1..=want.len()].iter().zip(&want) {
            prop_assert_eq!(e, &Ev::Element(w.clone()));
            prop_assert!(Stanza::parse(w, &XML_LIMITS).is_ok(), "{:?}", w);
        }
        prop_assert_eq!(run(input.as_bytes(), &cuts, lim, d), r);
    }

    /// Random bytes, after a valid header or not: no panic, and the verdict (events, then
    /// the error or "more") does not depend on the split.
    #[test]
    fn garbage_same_verdict_any_split(
        with_header in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        cuts in cuts(500),
        d in drain(),
    ) {
        let mut input = if with_header { HDR.as_bytes().to_vec() } else { vec![] };
        input.extend_from_slice(&bytes);
        let lim = FrameLimits { max_stanza_bytes: 100, max_header_bytes: 200, ..limits() };
        let whole = run(&input, &[], lim, Drain::PerRead);
        prop_assert_eq!(run(&input, &cuts, lim, d), whole);
    }

    /// Generated content between stanzas: the same verdict at any split.
    #[test]
    fn content_same_verdict_any_split(parts in proptest::collection::vec(content(), 1..4), cuts in cuts(600), d in drain()) {
        let input = format!("{HDR}{}</stream:stream>", parts.concat());
        let lim = FrameLimits { max_stanza_bytes: 120, xml: Limits { max_depth: 3, max_attrs: 2 }, ..limits() };
        let whole = run(input.as_bytes(), &[], lim, Drain::PerRead);
        prop_assert_eq!(run(input.as_bytes(), &cuts, lim, d), whole);
    }

    /// Valid streams with bytes replaced, inserted or removed: the same verdict at any
    /// split, and never a panic.
    #[test]
    fn mutated_corpus_same_verdict_any_split(
        i in 0..CORPUS.len(),
        muts in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..3, any::<u8>()), 1..6),
        cuts in cuts(2500),
        d in drain(),
    ) {
        let mut input = CORPUS[i].as_bytes().to_vec();
        for (at, kind, b) in muts {
            let k = at.index(input.len() + 1);
            match kind {
                0 if k < input.len() => input[k] = b,
                1 => input.insert(k, b),
                _ if k < input.len() => { input.remove(k); }
                _ => {}
            }
        }
        let whole = unsplit(&input);
        prop_assert_eq!(run(&input, &cuts, limits(), d), whole);
    }

    /// No false refusal: an element `Stanza::parse` accepts (same limits) comes out of a
    /// stream whole; a limit the framer reports is one the parser also refuses.
    #[test]
    fn accepts_what_the_stanza_parser_accepts(body in content(), wrap in any::<bool>(), lead in "[ \n]{0,2}") {
        let el = if wrap { format!("<r>{body}</r>") } else { body };
        let xml = Limits { max_depth: 3, max_attrs: 2 };
        let lim = FrameLimits { max_stanza_bytes: 1 << 16, xml, ..limits() };
        let input = format!("{HDR}{lead}{el}</stream:stream>");
        let r = run(input.as_bytes(), &[], lim, Drain::PerRead);
        let parsed = Stanza::parse(&el, &xml);
        let t = el.trim_matches(is_space);
        if parsed.is_ok() && t.starts_with('<') && !t.starts_with("<?") {
            prop_assert_eq!(r.error, None, "{:?}", el);
            prop_assert_eq!(&r.events[1..], &[Ev::Element(t.to_string()), Ev::End][..]);
        }
        if matches!(r.error, Some(FrameError::TooDeep | FrameError::TooManyAttributes)) {
            prop_assert!(parsed.is_err(), "{:?}", el);
        }
    }
}
