//! RFC 7622 JIDs: `Jid::parse`, `parse_ref`, the part constructors and the accessors, with
//! the invariants callers rely on (normal form is a fixed point, `parse_ref`'s flag is
//! exact, parts rebuild the JID).
#![no_main]

use aoba::xmpp::jid::{Jid, parse_ref};
use libfuzzer_sys::fuzz_target;

fn check(j: &Jid) {
    let again = Jid::parse(j.as_str())
        .unwrap_or_else(|e| panic!("normalized {:?} does not re-parse: {e}", j.as_str()));
    assert_eq!(&again, j, "normal form is not a fixed point");
    let (r, normalized) = parse_ref(j.as_str()).expect("parse_ref refuses a normalized JID");
    assert!(
        normalized,
        "parse_ref flags {:?} as not normalized",
        j.as_str()
    );
    assert_eq!(
        (r.local, r.domain, r.resource),
        (j.local(), j.domain(), j.resource())
    );
    let bare = j.to_bare();
    assert_eq!(bare.as_str(), j.bare());
    assert!(bare.is_bare());
    let rebuilt = match (j.local(), j.resource()) {
        (Some(l), Some(r)) => Jid::new_full(l, j.domain(), r),
        (Some(l), None) => Jid::new_bare(l, j.domain()),
        (None, None) => Jid::new_domain(j.domain()),
        (None, Some(r)) => Jid::new_domain(j.domain()).and_then(|d| d.with_resource(r)),
    };
    assert_eq!(rebuilt.as_ref(), Ok(j), "parts do not rebuild the JID");
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Jid::parse(s);
    let by_ref = parse_ref(s);
    if let Ok(j) = &parsed {
        assert!(
            by_ref.is_ok(),
            "Jid::parse accepts what parse_ref refuses: {s:?}"
        );
        check(j);
    }
    if let Ok((_, true)) = by_ref {
        assert_eq!(
            parsed.as_ref().map(Jid::as_str),
            Ok(s),
            "flag says normalized: {s:?}"
        );
    }
    // The constructors on the input split at NULs: local \0 domain \0 resource.
    let mut parts = s.splitn(3, '\0');
    let (l, d, r) = (parts.next().unwrap_or(""), parts.next(), parts.next());
    let built = match (d, r) {
        (Some(d), Some(r)) => Jid::new_full(l, d, r),
        (Some(d), None) => Jid::new_bare(l, d),
        _ => Jid::new_domain(l),
    };
    if let Ok(j) = &built {
        check(j);
        if let Ok(w) = j.with_resource("res") {
            check(&w);
        }
    }
});
