//! The stanza tokenizer/validator and its view: `Stanza::parse`, then every accessor on
//! every element (root, attr, attr_ns, children, child, text, Attr::value), with checks that
//! the spans stay inside the source, and that the decoded attribute values and texts survive
//! escape → parse → decode (and escape → unescape) unchanged.
#![no_main]

use aoba::xml::escape::{
    escape_attr_to_string, escape_text_to_string, unescape, unescape_attr, unescape_text,
};
use aoba::xml::{Limits, Stanza};
use libfuzzer_sys::fuzz_target;

const SMALL: Limits = Limits {
    max_depth: 3,
    max_attrs: 2,
};

fn roundtrip(text: &str, attr: &str) {
    let e = escape_text_to_string(text);
    assert_eq!(unescape_text(&e).unwrap(), text);
    let a = escape_attr_to_string(attr);
    assert_eq!(unescape_attr(&a).unwrap(), attr);
    assert_eq!(unescape(&a).unwrap(), attr);
    // Decoded values are XML characters, so the escaped forms must parse back to them.
    let doc = format!("<r a='{a}'>{e}</r>");
    let st = Stanza::parse(&doc, &Limits::default())
        .unwrap_or_else(|err| panic!("escaped output does not parse: {doc:?}: {err}"));
    assert_eq!(st.attr(0, "a").unwrap().value(), attr);
    assert_eq!(st.text(0), text);
}

fn walk(st: &Stanza<'_>) {
    let src = st.src;
    let root = st.root();
    assert_eq!(root.depth, 0);
    assert_eq!(root.parent, u16::MAX);
    let _ = st.root_xmlns_declared();
    if let Some(r) = &st.root_xmlns {
        assert!(src.get(r.start as usize..r.end as usize).is_some());
    }
    let mut direct = 0usize;
    for (i, e) in st.elems.iter().enumerate() {
        // Every span is in bounds and on char boundaries.
        assert!(src.get(e.start as usize..e.end as usize).is_some());
        assert!(
            src.get(e.inner.start as usize..e.inner.end as usize)
                .is_some()
        );
        assert!(e.start < e.start_tag_end && e.start_tag_end <= e.end);
        assert!(e.inner.start >= e.start_tag_end && e.inner.end <= e.end);
        let _ = e.is_empty_tag();
        if i > 0 {
            let p = &st.elems[usize::from(e.parent)];
            assert!(usize::from(e.parent) < i && e.depth == p.depth + 1);
            assert!(p.start < e.start && e.end <= p.inner.end);
        }
        let attrs = &st.attrs[usize::from(e.attrs.start)..usize::from(e.attrs.end)];
        for a in attrs {
            assert!(
                src.get(a.span.start as usize..a.span.end as usize)
                    .is_some()
            );
            let found = st
                .attr_ns(i, a.prefix, a.local)
                .expect("attribute not found by name");
            assert_eq!(found, a);
            if a.prefix.is_empty() {
                assert_eq!(st.attr(i, a.local), Some(a));
            }
            let v = a.value();
            roundtrip("", &v);
        }
        let kids: Vec<usize> = st.children(i).collect();
        assert_eq!(e.has_children, !kids.is_empty());
        for &c in &kids {
            assert_eq!(usize::from(st.elems[c].parent), i);
            let k = &st.elems[c];
            let first = st.child(i, k.local, k.ns).expect("child not found by name");
            assert!(first <= c);
        }
        if i == 0 {
            direct = kids.len();
        }
        let t = st.text(i);
        roundtrip(&t, "");
    }
    assert_eq!(st.elems.iter().filter(|e| e.parent == 0).count(), direct);
    // Out-of-range indices are harmless.
    let past = st.elems.len();
    assert!(st.attr(past, "to").is_none());
    assert_eq!(st.children(past).count(), 0);
    assert_eq!(st.text(past), "");
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(st) = Stanza::parse(s, &Limits::default()) {
        walk(&st);
    }
    if let Ok(st) = Stanza::parse(s, &SMALL) {
        assert!(st.elems.iter().all(|e| e.depth < 3));
        walk(&st);
    }
    // Escaping, decoding and re-parsing arbitrary text (not only parsed text).
    let _ = unescape(s);
    let _ = unescape_attr(s);
    let _ = unescape_text(s);
    if s.chars().all(aoba::xml::escape::is_xml_char) {
        roundtrip(s, s);
    }
});
