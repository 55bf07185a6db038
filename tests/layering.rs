//! The layering of `src/` (DESIGN.md "Layout and layers", issue 11), checked as a ratchet:
//! each folder may name (`crate::…`) only folders of a lower layer; modules name each other
//! only through a declared edge. The imports that break the rule today are listed in
//! `KNOWN`: a new one fails this test, and so does a listed one that is gone (take it off
//! the list, so it cannot come back). The list is empty (issue 11): keep it so.
//!
//! Layers, low to high: `xml` and `fault` (nothing); `runtime` and `net`; `storage`;
//! `xmpp` (the core); the modules `features`, `muc`, `ftw`; `config` and `server` (the
//! composition root).

use std::collections::BTreeSet;

fn layer(folder: &str) -> Option<u8> {
    Some(match folder {
        "xml" | "fault" => 0,
        "runtime" | "net" => 1,
        "storage" | "cluster" => 2,
        "xmpp" => 3,
        "features" | "muc" | "ftw" => 4,
        "config" | "server" => 5,
        _ => return None,
    })
}

/// (from, to) imports across layers the target design forbids, as of this commit.
const KNOWN: &[(&str, &str)] = &[];

/// Declared edges between modules, each with its reason.
const DECLARED: &[(&str, &str)] = &[
    // Rooms keep their archive through MAM (XEP-0313 §6: a room's archive is queried like a
    // user's): `muc` uses `features::mam`, nothing else of `features`.
    ("muc", "features"),
    // The membership tests use the storage tests' throwaway PostgreSQL (`pg_test`); the
    // cluster code itself names no other module.
    ("cluster", "storage"),
];

fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn imports_only_go_down_the_layers() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut found: BTreeSet<(String, String)> = BTreeSet::new();
    for p in &all {
        let rel = p.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let Some(from) = layer(&top) else { continue }; // lib.rs, main.rs
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            !text.contains("crate::{"),
            "{}: grouped `crate::{{…}}` imports hide what is imported; name each path",
            rel.display()
        );
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let Some(to) = layer(&name) else { continue };
            if name == top {
                continue;
            }
            let same_modules = from == 4 && to == 4;
            let runtime_net = from == 1 && to == 1;
            let declared = DECLARED.contains(&(top.as_str(), name.as_str()));
            if (to > from || same_modules || runtime_net) && !declared {
                found.insert((top.clone(), name));
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        new.is_empty(),
        "new imports against the layering (DESIGN.md): {new:?}"
    );
    assert!(
        gone.is_empty(),
        "these no longer happen: take them off KNOWN so they cannot come back: {gone:?}"
    );
}

/// The runtime and the network layer carry bytes: no stanza kind, namespace or JID is
/// named outside their tests (DESIGN.md, issue 11).
#[test]
fn runtime_and_net_name_no_stanza() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src.join("runtime"), &mut all);
    files(&src.join("net"), &mut all);
    let words = [
        "<message",
        "<presence",
        "<iq",
        "jabber:",
        "urn:xmpp",
        "urn:ietf:params:xml:ns",
        "xmlns",
        "Jid",
        "Stanza",
        "crate::xml",
    ];
    for p in &all {
        let text = std::fs::read_to_string(p).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for w in words {
            assert!(
                !code.contains(w),
                "{} names {w:?}: the runtime and net/ carry bytes only",
                p.display()
            );
        }
    }
}
