//! The stanza view against well-formed, hostile and limit-breaking input.

use super::*;

const LIMITS: Limits = Limits {
    max_depth: 16,
    max_attrs: 16,
};

fn parse(s: &str) -> Result<Stanza<'_>, XmlError> {
    Stanza::parse(s, &LIMITS)
}

fn nwf(s: &str) {
    assert!(
        matches!(parse(s), Err(XmlError::NotWellFormed(_))),
        "expected NotWellFormed for {s:?}, got {:?}",
        parse(s).map(|st| st.elems.len())
    );
}

fn restricted(s: &str) {
    assert!(
        matches!(parse(s), Err(XmlError::Restricted(_))),
        "expected Restricted for {s:?}, got {:?}",
        parse(s).map(|st| st.elems.len())
    );
}

const BENCH: &str = "<message to='bob@localhost' from='alice@localhost/web-1' type='chat' id='a1b2c3' xml:lang='en' xmlns='jabber:client'><body>Hello &amp; welcome, Bob! How are you today?</body><request xmlns='urn:xmpp:receipts'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>";

#[test]
fn benchmark_stanza_stays_inline() {
    let st = parse(BENCH).unwrap();
    assert!(!st.elems.spilled());
    assert!(!st.attrs.spilled());
    assert_eq!(st.elems.len(), 4);
    assert_eq!(st.attrs.len(), 5);
    let root = st.root();
    assert_eq!((root.local, root.ns), ("message", "jabber:client"));
    assert!(st.root_xmlns_declared());
    let x = st.root_xmlns.clone().unwrap();
    assert_eq!(
        &BENCH[x.start as usize..x.end as usize],
        "xmlns='jabber:client'"
    );
    assert_eq!(st.attr(0, "to").unwrap().value(), "bob@localhost");
    assert_eq!(st.attr(0, "type").unwrap().raw, "chat");
    assert_eq!(st.attr_ns(0, "xml", "lang").unwrap().raw, "en");
    assert!(st.attr(0, "lang").is_none());
    let from = st.attr(0, "from").unwrap();
    assert_eq!(
        &BENCH[from.span.start as usize..from.span.end as usize],
        "from='alice@localhost/web-1'"
    );
    let body = st.child(0, "body", "jabber:client").unwrap();
    assert!(matches!(st.text(body), Cow::Owned(_)));
    assert_eq!(st.text(body), "Hello & welcome, Bob! How are you today?");
    let req = st.child(0, "request", "urn:xmpp:receipts").unwrap();
    assert!(st.elems[req].is_empty_tag());
    assert_eq!(
        st.child(0, "active", "http://jabber.org/protocol/chatstates"),
        Some(3)
    );
    assert_eq!(st.child(0, "active", "jabber:client"), None);
    assert_eq!(st.children(0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(root.has_children);
    assert_eq!(root.end as usize, BENCH.len());
    assert_eq!(&BENCH[root.inner.end as usize..], "</message>");
}

#[test]
fn offsets_of_start_tag_inner_and_end() {
    let s = "  <iq type='get' id='x'><query xmlns='jabber:iq:roster'/></iq>\n";
    let st = parse(s).unwrap();
    let r = st.root();
    assert_eq!(r.start, 2);
    assert_eq!(
        &s[r.start as usize..r.start_tag_end as usize],
        "<iq type='get' id='x'>"
    );
    assert_eq!(
        &s[r.inner.start as usize..r.inner.end as usize],
        "<query xmlns='jabber:iq:roster'/>"
    );
    assert_eq!(&s[r.start as usize..r.end as usize], s.trim());
    let q = &st.elems[1];
    assert_eq!((q.parent, q.depth, q.ns), (0, 1, "jabber:iq:roster"));
    assert_eq!(q.inner, q.end..q.end);
    assert!(!st.root_xmlns_declared());
    assert_eq!(r.ns, "");
}

#[test]
fn rfc6120_and_rfc7395_examples() {
    // RFC 7395 §3.4
    let open =
        "<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" to=\"example.com\" version=\"1.0\" />";
    let st = parse(open).unwrap();
    assert_eq!(st.root().ns, "urn:ietf:params:xml:ns:xmpp-framing");
    assert_eq!(st.attr(0, "version").unwrap().value(), "1.0");
    // RFC 7395 §3.6
    parse("<close xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" />").unwrap();
    // RFC 6120 §6.4.2
    let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>";
    let st = parse(auth).unwrap();
    assert!(matches!(
        st.text(0),
        Cow::Borrowed("AGp1bGlldAByMG0zMG15cjBtMzA=")
    ));
    assert_eq!(st.attr(0, "mechanism").unwrap().raw, "PLAIN");
    // RFC 6120 §7.6.1 (resource binding)
    let bind = "<iq id='tn281v37' type='set'>\n <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\n   <resource>balcony</resource>\n </bind>\n</iq>";
    let st = parse(bind).unwrap();
    let b = st
        .child(0, "bind", "urn:ietf:params:xml:ns:xmpp-bind")
        .unwrap();
    let r = st
        .child(b, "resource", "urn:ietf:params:xml:ns:xmpp-bind")
        .unwrap();
    assert_eq!(st.text(r), "balcony");
    assert_eq!(st.elems[r].depth, 2);
    // RFC 6120 §8.3.3.1 (stanza error with a prefixed-free defined condition)
    let err = "<iq from='im.example.com' id='ixc3v1b9' to='juliet@im.example.com/foo' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>[ ... application-specific information ... ]</text></error></iq>";
    let st = parse(err).unwrap();
    let e = st.child(0, "error", "").unwrap();
    let t = st
        .child(e, "text", "urn:ietf:params:xml:ns:xmpp-stanzas")
        .unwrap();
    assert_eq!(st.attr_ns(t, "xml", "lang").unwrap().value(), "en");
    // RFC 6121 §5.2.3 message with thread, with the stream prefix bound on the root.
    let msg = "<message from='juliet@example.com/balcony' id='ktx72v49' to='romeo@example.net' type='chat' xml:lang='en'>\n  <body>Art thou not Romeo, and a Montague?</body>\n  <thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>\n</message>";
    let st = parse(msg).unwrap();
    assert_eq!(st.children(0).count(), 2);
    assert_eq!(st.text(0), "\n  \n  \n");
}

#[test]
fn prefixed_namespaces() {
    // RFC 6120 §4.8.5 style prefixed stream-namespace elements.
    let s = "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>";
    let st = parse(s).unwrap();
    assert_eq!(st.root().prefix, "stream");
    assert_eq!(st.root().ns, "http://etherx.jabber.org/streams");
    assert!(!st.root_xmlns_declared());
    assert_eq!(st.elems[1].ns, "urn:ietf:params:xml:ns:xmpp-streams");
    // Declaration after use in the same start tag is fine.
    let st = parse("<p:a p:x='1' xmlns:p='urn:p'><p:b/><c/></p:a>").unwrap();
    assert_eq!(st.elems[1].ns, "urn:p");
    assert_eq!(st.elems[2].ns, "");
    assert_eq!(st.attr_ns(0, "p", "x").unwrap().raw, "1");
    // Scoping: the inner declaration does not leak to siblings.
    let st = parse("<a xmlns='u1'><b xmlns='u2'><c/></b><d/><e xmlns=''/></a>").unwrap();
    let ns: Vec<_> = st.elems.iter().map(|e| e.ns).collect();
    assert_eq!(ns, ["u1", "u2", "u2", "u1", ""]);
    nwf("<a><b xmlns:p='u'/><p:c/></a>");
    nwf("<p:a/>");
    nwf("<a p:x='1'/>");
    nwf("<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>");
    parse("<a xmlns:p='u' xmlns:q='v' p:x='1' q:x='2' x='3'/>").unwrap();
    nwf("<a xmlns:p=''/>");
    nwf("<xmlns:a/>");
    nwf("<a xmlns:xmlns='u'/>");
    nwf("<a xmlns:xml='u'/>");
    nwf("<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>");
    nwf("<a xmlns='http://www.w3.org/2000/xmlns/'/>");
    parse("<a xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>").unwrap();
    nwf("<:a/>");
    nwf("<a :x='1'/>");
    nwf("<a:/>");
}

#[test]
fn duplicates() {
    nwf("<message to='a' to='b'/>");
    nwf("<message xmlns='jabber:client' xmlns='jabber:client'/>");
    nwf("<a xmlns:p='u' xmlns:p='u'/>");
    nwf("<a xml:lang='en' xml:lang='de'/>");
    // Same local name, different prefix: distinct attributes.
    parse("<a lang='x' xml:lang='en'/>").unwrap();
    // Same declaration on parent and child: fine.
    parse("<a xmlns='u'><b xmlns='u'/></a>").unwrap();
}

#[test]
fn structure_errors() {
    nwf("");
    nwf("   \n ");
    nwf("<body>x</bodyy>");
    nwf("<message><body>x</body>");
    nwf("<a><b></a></b>");
    nwf("<a/><b/>");
    nwf("<a></a></a>");
    nwf("text<a/>");
    nwf("<a/>text");
    nwf("<a/><![CDATA[x]]>");
    nwf("</a>");
    nwf("<a>");
    nwf("<a");
    nwf("<a x='1>");
    nwf("<a x=1/>");
    nwf("<a>]]></a>");
    nwf("<p:a xmlns:p='u'></q:a>");
    nwf("<p:a xmlns:p='u'></a>");
    nwf("<a><!DOCTYPE x></a>");
    nwf(" <?xml version='1.0'?><a/>");
    nwf("<a/><?xml version='1.0'?>");
    parse("\n<a/>\n\t ").unwrap();
    parse("<?xml version='1.0'?><a/>").unwrap();
    parse("<?xml version='1.0' encoding='UTF-8'?>\n<a/>").unwrap();
    parse("\u{FEFF}<a/>").unwrap();
}

#[test]
fn restricted_xml() {
    restricted("<!-- hi --><a/>");
    restricted("<a><!-- hi --></a>");
    restricted("<a/><!-- hi -->");
    restricted("<?xml-stylesheet href='x'?><a/>");
    restricted("<a><?php echo 1; ?></a>");
    restricted("<!DOCTYPE a><a/>");
    restricted("<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>");
    restricted(
        "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><lolz>&lol2;</lolz>",
    );
}

#[test]
fn entities_and_characters() {
    nwf("<a>&foo;</a>");
    nwf("<a>&#0;</a>");
    nwf("<a>&#xD800;</a>");
    nwf("<a>AT&T</a>");
    nwf("<a x='&foo;'/>");
    nwf("<a x='a & b'/>");
    nwf("<a x='<'/>");
    nwf("<a>\u{0}</a>");
    nwf("<a>\u{1b}</a>");
    nwf("<a x='\u{7}'/>");
    nwf("<a>\u{FFFE}</a>");
    nwf("<a>\u{FFFF}</a>");
    nwf("<a\u{1}/>");
    nwf("<a>x</a>\u{0}");
    let st = parse("<a x='&lt;&#x41;&#66;&quot;' y=\"it's\">1 &lt; 2 &#x26; &#9731;</a>").unwrap();
    assert_eq!(st.attr(0, "x").unwrap().value(), "<AB\"");
    assert_eq!(st.attr(0, "x").unwrap().raw, "&lt;&#x41;&#66;&quot;");
    assert_eq!(st.attr(0, "y").unwrap().value(), "it's");
    assert_eq!(st.text(0), "1 < 2 & ☃");
    parse("<a x='>'>\t\r\n\u{85}\u{2028}\u{10FFFF}</a>").unwrap();
    // Entities inside CDATA are literal and not checked.
    let st = parse("<a>x<![CDATA[&foo; <b>]]>y</a>").unwrap();
    assert_eq!(st.text(0), "x&foo; <b>y");
}

#[test]
fn text_skips_children_and_borrows_when_possible() {
    let s = "<a>one<b>two</b>three<c/>four</a>";
    let st = parse(s).unwrap();
    assert_eq!(st.text(0), "onethreefour");
    assert_eq!(st.text(1), "two");
    assert!(matches!(st.text(1), Cow::Borrowed(_)));
    assert!(matches!(st.text(2), Cow::Borrowed("")));
    assert_eq!(st.text(99), "");
    let st = parse("<a>x\r\ny&amp;</a>").unwrap();
    assert_eq!(st.text(0), "x\ny&");
    let st = parse("<a v='1\t2\r\n3'/>").unwrap();
    assert_eq!(st.attr(0, "v").unwrap().value(), "1 2 3");
    assert!(st.attr(5, "v").is_none());
    assert_eq!(st.children(5).count(), 0);
}

#[test]
fn children_and_depth() {
    let st = parse("<a><b><c/><d/></b><e><f><g/></f></e><h/></a>").unwrap();
    assert_eq!(st.children(0).collect::<Vec<_>>(), [1, 4, 7]);
    assert_eq!(st.children(1).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(st.children(4).collect::<Vec<_>>(), [5]);
    assert_eq!(st.children(6).count(), 0);
    assert_eq!(st.elems[6].depth, 3);
    assert_eq!(st.elems[6].parent, 5);
    assert_eq!(st.root().parent, u16::MAX);
    assert!(!st.elems[7].has_children);
}

#[test]
fn limits() {
    let l = |max_depth, max_attrs| Limits {
        max_depth,
        max_attrs,
    };
    let s = "<a><b><c/></b></a>";
    assert!(Stanza::parse(s, &l(3, 0)).is_ok());
    assert_eq!(
        Stanza::parse(s, &l(2, 0)).unwrap_err(),
        XmlError::Limit("element nesting too deep")
    );
    assert!(Stanza::parse("<a/>", &l(1, 0)).is_ok());
    assert!(matches!(
        Stanza::parse("<a><b/></a>", &l(1, 0)),
        Err(XmlError::Limit(_))
    ));
    assert!(matches!(
        Stanza::parse("<a/>", &l(0, 0)),
        Err(XmlError::Limit(_))
    ));
    let s = "<a xmlns='u' x='1' y='2'/>";
    assert!(Stanza::parse(s, &l(1, 3)).is_ok());
    assert!(matches!(
        Stanza::parse(s, &l(1, 2)),
        Err(XmlError::Limit(_))
    ));
    let deep = "<a>".repeat(1000) + &"</a>".repeat(1000);
    assert!(matches!(
        Stanza::parse(&deep, &Limits::default()),
        Err(XmlError::Limit(_))
    ));
    // Element index space: u16::MAX elements cannot be addressed.
    let wide = format!("<a>{}</a>", "<b/>".repeat(70_000));
    let big = l(4, 4);
    assert_eq!(
        Stanza::parse(&wide, &big).unwrap_err(),
        XmlError::Limit("too many elements")
    );
    let ok = format!("<a>{}</a>", "<b/>".repeat(60_000));
    assert_eq!(
        Stanza::parse(&ok, &big).unwrap().children(0).count(),
        60_000
    );
}

fn exercise(st: &Stanza<'_>) {
    for i in 0..st.elems.len() {
        let e = &st.elems[i];
        assert!(e.start < e.start_tag_end && e.start_tag_end <= e.end);
        assert!(e.inner.start <= e.inner.end && e.inner.end <= e.end);
        assert!((e.end as usize) <= st.src.len());
        let _ = st.text(i);
        let _ = st.children(i).count();
        for a in st.elem_attrs(i) {
            let _ = a.value();
            assert!((a.span.end as usize) <= st.src.len());
        }
    }
}

const SAMPLES: &[&str] = &[
    BENCH,
    "<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" to=\"example.com\" version=\"1.0\" />",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
    "<?xml version='1.0'?><iq id='x' type='set'><p:x xmlns:p='urn:p' p:a='&#x41;'><![CDATA[<hi>]]>t&lt;</p:x></iq>",
    "<presence from='juliet@example.com/balcony' xml:lang='en'><show>away</show><status>be right back</status><priority>0</priority></presence>",
];

#[test]
fn truncations_and_garbage_never_panic() {
    for s in SAMPLES {
        exercise(&parse(s).unwrap());
        for (i, _) in s.char_indices().skip(1) {
            assert!(parse(&s[..i]).is_err(), "prefix {:?}", &s[..i]);
        }
    }
    for g in [
        "<",
        ">",
        "&",
        "/>",
        "</",
        "<<",
        "<a",
        "<a/",
        "<a x",
        "<a x=",
        "<a x='",
        "<![CDATA[",
        "<!",
        "<!-",
        "<!--",
        "<?",
        "<?x",
        "<!DOCTYPE",
        "<!DOCTYPE a [",
        "<!DOCTYPE a [<!ENTITY",
        "]]>",
        "<a></",
        "<a></a",
        "\u{FEFF}",
        "<a>&#",
        "<a>&#x",
        "<a>&#x10FFFFF;</a>",
    ] {
        assert!(parse(g).is_err(), "{g:?}");
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const BYTES: &[u8] = b"<>/'\"&;:=x!?[]- #\0\t\nabAmpltgq1";
    let mut ok = 0;
    for s in SAMPLES {
        for _ in 0..3000 {
            let mut b = s.as_bytes().to_vec();
            for _ in 0..1 + rnd() % 4 {
                let pos = (rnd() as usize) % (b.len() + 1);
                let byte = BYTES[(rnd() as usize) % BYTES.len()];
                match rnd() % 4 {
                    0 if pos < b.len() => b[pos] = byte,
                    1 if pos < b.len() => {
                        b.remove(pos);
                    }
                    2 => b.insert(pos, byte),
                    _ => b.truncate(pos),
                }
            }
            let Ok(m) = std::str::from_utf8(&b) else {
                continue;
            };
            if let Ok(st) = parse(m) {
                ok += 1;
                exercise(&st);
            }
        }
    }
    assert!(ok > 0);
}
