//! RFC 7622 JIDs (`localpart@domainpart/resourcepart`).
//!
//! A `Jid` is one normalized string plus the offsets of its separators, so
//! the bare JID and each part are slices of it with no allocation, and a
//! JID used as a routing-table key hashes like its string (`Borrow<str>`).
//! [`parse_ref`] validates without allocating and reports whether the input
//! is already normalized, so the hot path (stamping `from`, routing `to`)
//! copies only when a client sends upper case or a trailing dot.
//!
//! Simplifications against the full PRECIS profiles (RFC 8264/8265/8266):
//! - Localpart (UsernameCaseMapped): Unicode `to_lowercase` only; no width
//!   mapping, no NFC, no check of PRECIS's disallowed or unassigned code
//!   points (so `henryⅣ` or `♚` are accepted). Forbidden: `" & ' / : < > @`,
//!   whitespace, control characters and U+FFFE/U+FFFF (not XML characters).
//! - Domainpart: lower-cased, one trailing `.` stripped; accepted are IPv4
//!   (as digit labels), `[IPv6]`, or dot-separated labels of ASCII letters,
//!   digits, `-` and any non-ASCII character except whitespace, controls and
//!   U+FFFE/U+FFFF.
//!   No IDNA2008 / UTS 46 mapping, no punycode conversion; the 63-byte label
//!   limit is applied to the UTF-8 form.
//! - Resourcepart (OpaqueString): kept as is, case preserved, no NFC;
//!   control characters, U+FFFE/U+FFFF and leading/trailing whitespace are forbidden
//!   (RFC 7622 §3.5 lists `juliet@example.com/ foo` as invalid), inner
//!   spaces allowed.
//!
//! Each part must be 1..=1023 bytes, and the normal form must pass the same checks
//! (lower-casing can lengthen a label or a part).

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::Ipv6Addr;

use crate::xml::escape::is_xml_char;

/// RFC 7622 §3.1: each part is at most 1023 octets.
const MAX_PART: usize = 1023;
/// RFC 1034 label length, applied to the UTF-8 form.
const MAX_LABEL: usize = 63;

/// A validated, normalized JID.
#[derive(Clone, Debug)]
pub struct Jid {
    s: Box<str>,
    /// Offset of the '@' separating localpart and domainpart.
    at: Option<u16>,
    /// Offset of the '/' separating the resourcepart.
    slash: Option<u16>,
}

/// Why a JID was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JidError(pub &'static str);

impl fmt::Display for JidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JID: {}", self.0)
    }
}

impl std::error::Error for JidError {}

/// Borrowing parse for the hot path: validates and tells whether the input is already normalized,
/// so a caller can avoid allocating when it is (the common case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JidRef<'a> {
    pub local: Option<&'a str>,
    pub domain: &'a str,
    pub resource: Option<&'a str>,
}

/// Validates `s` as a JID without allocating. The parts are slices of `s`
/// (not normalized); the flag is `true` when `s` is already in normal form,
/// i.e. `Jid::parse(s)?.as_str() == s`.
pub fn parse_ref(s: &str) -> Result<(JidRef<'_>, bool), JidError> {
    let (pre, resource) = match s.find('/') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (local, domain) = match pre.find('@') {
        Some(i) => (Some(&pre[..i]), &pre[i + 1..]),
        None => (None, pre),
    };
    let mut normalized = match local {
        Some(l) => check_local(l)?,
        None => true,
    };
    normalized &= check_domain(domain)?;
    if let Some(r) = resource {
        check_resource(r)?;
    }
    Ok((
        JidRef {
            local,
            domain,
            resource,
        },
        normalized,
    ))
}

/// Whether lower-casing leaves `c` unchanged.
fn lower_is_identity(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_uppercase();
    }
    let mut l = c.to_lowercase();
    l.next() == Some(c) && l.next().is_none()
}

fn check_len(part: &str, what: &'static str) -> Result<(), JidError> {
    if part.is_empty() || part.len() > MAX_PART {
        return Err(JidError(what));
    }
    Ok(())
}

/// Validates a localpart; returns whether it is already lower case.
fn check_local(l: &str) -> Result<bool, JidError> {
    check_len(l, "localpart must be 1 to 1023 bytes")?;
    let mut normalized = true;
    for c in l.chars() {
        if matches!(c, '"' | '&' | '\'' | '/' | ':' | '<' | '>' | '@')
            || c.is_whitespace()
            || c.is_control()
            || !is_xml_char(c)
        {
            return Err(JidError("forbidden character in localpart"));
        }
        normalized &= lower_is_identity(c);
    }
    Ok(normalized)
}

/// Validates a domainpart; returns whether it is already normalized
/// (lower case, no trailing dot).
fn check_domain(d: &str) -> Result<bool, JidError> {
    let (body, dot) = match d.strip_suffix('.') {
        Some(b) => (b, true),
        None => (d, false),
    };
    check_len(body, "domainpart must be 1 to 1023 bytes")?;
    let mut normalized = !dot;
    if let Some(inner) = body.strip_prefix('[') {
        let ip = inner
            .strip_suffix(']')
            .ok_or(JidError("unterminated IPv6 literal"))?;
        ip.parse::<Ipv6Addr>()
            .map_err(|_| JidError("invalid IPv6 literal"))?;
        return Ok(normalized && !ip.bytes().any(|b| b.is_ascii_uppercase()));
    }
    // IPv4 addresses are digit labels and pass the hostname rules below.
    for label in body.split('.') {
        if label.is_empty() {
            return Err(JidError("empty label in domainpart"));
        }
        if label.len() > MAX_LABEL {
            return Err(JidError("domain label longer than 63 bytes"));
        }
        for c in label.chars() {
            let ok = if c.is_ascii() {
                c.is_ascii_alphanumeric() || c == '-'
            } else {
                !c.is_whitespace() && !c.is_control() && is_xml_char(c)
            };
            if !ok {
                return Err(JidError("forbidden character in domainpart"));
            }
            normalized &= lower_is_identity(c);
        }
    }
    Ok(normalized)
}

fn check_resource(r: &str) -> Result<(), JidError> {
    check_len(r, "resourcepart must be 1 to 1023 bytes")?;
    if r.chars().any(char::is_control) {
        return Err(JidError("control character in resourcepart"));
    }
    // U+FFFE and U+FFFF: a JID must fit in XML (PRECIS disallows noncharacters anyway).
    if !r.chars().all(is_xml_char) {
        return Err(JidError("non-XML character in resourcepart"));
    }
    // RFC 7622 §3.5 lists `juliet@example.com/ foo` as invalid.
    if r.starts_with(char::is_whitespace) || r.ends_with(char::is_whitespace) {
        return Err(JidError("leading or trailing space in resourcepart"));
    }
    Ok(())
}

fn norm_local(l: &str) -> Result<Cow<'_, str>, JidError> {
    if check_local(l)? {
        return Ok(Cow::Borrowed(l));
    }
    let n = l.to_lowercase();
    // Lower-casing can lengthen a string (e.g. U+0130): the normal form must be valid too.
    check_local(&n)?;
    Ok(Cow::Owned(n))
}

fn norm_domain(d: &str) -> Result<Cow<'_, str>, JidError> {
    if check_domain(d)? {
        return Ok(Cow::Borrowed(d));
    }
    let n = d.strip_suffix('.').unwrap_or(d).to_lowercase();
    // Lower-casing can lengthen a label past 63 bytes or the part past 1023 (e.g. U+0130
    // becomes 3 bytes): the normal form must be valid too, or it would not parse again.
    check_domain(&n)?;
    Ok(Cow::Owned(n))
}

impl Jid {
    /// Joins already validated and normalized parts.
    fn assemble(local: Option<&str>, domain: &str, resource: Option<&str>) -> Jid {
        let len =
            local.map_or(0, |l| l.len() + 1) + domain.len() + resource.map_or(0, |r| r.len() + 1);
        let mut s = String::with_capacity(len);
        let mut at = None;
        if let Some(l) = local {
            s.push_str(l);
            at = Some(s.len() as u16);
            s.push('@');
        }
        s.push_str(domain);
        let mut slash = None;
        if let Some(r) = resource {
            slash = Some(s.len() as u16);
            s.push('/');
            s.push_str(r);
        }
        // Three parts of at most 1023 bytes each fit the u16 offsets.
        Jid {
            s: s.into_boxed_str(),
            at,
            slash,
        }
    }

    /// Parses and normalizes `s`.
    pub fn parse(s: &str) -> Result<Jid, JidError> {
        let (r, normalized) = parse_ref(s)?;
        if normalized {
            return Ok(Jid::assemble(r.local, r.domain, r.resource));
        }
        let local = r.local.map(norm_local).transpose()?;
        let domain = norm_domain(r.domain)?;
        Ok(Jid::assemble(local.as_deref(), &domain, r.resource))
    }

    /// `local@domain/resource`, each part validated and normalized.
    pub fn new_full(local: &str, domain: &str, resource: &str) -> Result<Jid, JidError> {
        let local = norm_local(local)?;
        let domain = norm_domain(domain)?;
        check_resource(resource)?;
        Ok(Jid::assemble(Some(&local), &domain, Some(resource)))
    }

    /// `local@domain`, each part validated and normalized.
    pub fn new_bare(local: &str, domain: &str) -> Result<Jid, JidError> {
        let local = norm_local(local)?;
        let domain = norm_domain(domain)?;
        Ok(Jid::assemble(Some(&local), &domain, None))
    }

    /// A domain-only JID (a server or component address).
    pub fn new_domain(domain: &str) -> Result<Jid, JidError> {
        let domain = norm_domain(domain)?;
        Ok(Jid::assemble(None, &domain, None))
    }

    pub fn local(&self) -> Option<&str> {
        self.at.map(|a| &self.s[..usize::from(a)])
    }

    pub fn domain(&self) -> &str {
        let start = self.at.map_or(0, |a| usize::from(a) + 1);
        &self.s[start..self.bare_end()]
    }

    pub fn resource(&self) -> Option<&str> {
        self.slash.map(|p| &self.s[usize::from(p) + 1..])
    }

    fn bare_end(&self) -> usize {
        self.slash.map_or(self.s.len(), usize::from)
    }

    /// "local@domain" or "domain": a slice of the JID, no allocation.
    pub fn bare(&self) -> &str {
        &self.s[..self.bare_end()]
    }

    /// The full normalized form.
    pub fn as_str(&self) -> &str {
        &self.s
    }

    pub fn is_bare(&self) -> bool {
        self.slash.is_none()
    }

    pub fn to_bare(&self) -> Jid {
        Jid {
            s: self.bare().into(),
            at: self.at,
            slash: None,
        }
    }

    /// This JID's bare form with resource `r` (validated, kept as is).
    pub fn with_resource(&self, r: &str) -> Result<Jid, JidError> {
        check_resource(r)?;
        let bare = self.bare();
        let mut s = String::with_capacity(bare.len() + 1 + r.len());
        s.push_str(bare);
        s.push('/');
        s.push_str(r);
        Ok(Jid {
            s: s.into_boxed_str(),
            at: self.at,
            slash: Some(bare.len() as u16),
        })
    }
}

// Equality and hashing use the string alone (the offsets follow from it),
// which keeps `Borrow<str>` lookups in hash maps consistent.
impl PartialEq for Jid {
    fn eq(&self, other: &Jid) -> bool {
        self.s == other.s
    }
}

impl Eq for Jid {}

impl Hash for Jid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.s.hash(state);
    }
}

impl Borrow<str> for Jid {
    fn borrow(&self) -> &str {
        &self.s
    }
}

impl AsRef<str> for Jid {
    fn as_ref(&self) -> &str {
        &self.s
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Jid, JidError> {
        Jid::parse(s)
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn ok(s: &str) -> Jid {
        Jid::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn bad(s: &str) {
        assert!(Jid::parse(s).is_err(), "{s:?} should be invalid");
        assert!(parse_ref(s).is_err(), "{s:?} should be invalid");
    }

    #[test]
    fn rfc7622_valid_examples() {
        // RFC 7622 §3.5.1, in order.
        let j = ok("juliet@example.com");
        assert_eq!(
            (j.local(), j.domain(), j.resource()),
            (Some("juliet"), "example.com", None)
        );
        let j = ok("juliet@example.com/foo");
        assert_eq!(j.resource(), Some("foo"));
        let j = ok("juliet@example.com/foo bar");
        assert_eq!(j.resource(), Some("foo bar"));
        let j = ok("juliet@example.com/foo@bar");
        assert_eq!((j.local(), j.resource()), (Some("juliet"), Some("foo@bar")));
        assert_eq!(ok("foo\\20bar@example.com").local(), Some("foo\\20bar"));
        ok("fussball@example.com");
        assert_eq!(ok("fußball@example.com").local(), Some("fußball"));
        assert_eq!(ok("π@example.com").local(), Some("π"));
        assert_eq!(ok("Σ@example.com/foo").as_str(), "σ@example.com/foo");
        assert_eq!(ok("σ@example.com/foo").local(), Some("σ"));
        assert_eq!(ok("ς@example.com/foo").local(), Some("ς"));
        assert_eq!(ok("king@example.com/♚").resource(), Some("♚"));
        let j = ok("example.com");
        assert_eq!(
            (j.local(), j.domain(), j.resource()),
            (None, "example.com", None)
        );
        let j = ok("example.com/foobar");
        assert_eq!((j.local(), j.resource()), (None, Some("foobar")));
        let j = ok("a.example.com/b@example.net");
        assert_eq!(
            (j.local(), j.domain(), j.resource()),
            (None, "a.example.com", Some("b@example.net"))
        );
    }

    #[test]
    fn rfc7622_invalid_examples() {
        // RFC 7622 §3.5.2, except the two that need full PRECIS tables
        // (`henryⅣ@example.com`, `♚@example.com`; see the module comment).
        bad("\"juliet\"@example.com");
        bad("foo bar@example.com");
        bad("juliet@example.com/ foo");
        bad("@example.com/");
        bad("juliet@");
        bad("/foobar");
        // And the brief's cases.
        bad("juliet@/foo");
        bad("juliet@example.com/");
        bad("@example.com");
        bad("");
        bad("/");
        bad("@");
    }

    #[test]
    fn splitting_rules() {
        // The resource may contain '@' and '/'.
        let j = ok("example.com/foo@bar");
        assert_eq!(
            (j.local(), j.domain(), j.resource()),
            (None, "example.com", Some("foo@bar"))
        );
        let j = ok("a@b.c/d/e@f");
        assert_eq!(
            (j.local(), j.domain(), j.resource()),
            (Some("a"), "b.c", Some("d/e@f"))
        );
        bad("a@b@c");
        bad("a:b@c");
    }

    #[test]
    fn normalization() {
        let j = ok("Juliet@Example.COM");
        assert_eq!(j.as_str(), "juliet@example.com");
        let j = ok("Juliet@Example.COM./Balcony");
        assert_eq!(j.as_str(), "juliet@example.com/Balcony");
        assert_eq!(j.to_string(), "juliet@example.com/Balcony");
        assert_eq!(ok("ÉLODIE@EXAMPLE.COM").local(), Some("élodie"));
        assert_eq!(ok("[::1]").domain(), "[::1]");
        assert_eq!(ok("x@[2001:DB8::1]/r").domain(), "[2001:db8::1]");
        assert_eq!(ok("x@127.0.0.1").domain(), "127.0.0.1");
        assert_eq!(ok("x@bücher.example").domain(), "bücher.example");

        assert!(parse_ref("juliet@example.com/Balcony").unwrap().1);
        assert!(parse_ref("example.com").unwrap().1);
        assert!(!parse_ref("Juliet@example.com").unwrap().1);
        assert!(!parse_ref("juliet@Example.com").unwrap().1);
        assert!(!parse_ref("juliet@example.com.").unwrap().1);
        assert!(!parse_ref("Σ@example.com").unwrap().1);
        let (r, n) = parse_ref("Romeo@Example.net/Orchard").unwrap();
        assert!(!n);
        assert_eq!(
            r,
            JidRef {
                local: Some("Romeo"),
                domain: "Example.net",
                resource: Some("Orchard")
            }
        );
        for s in ["a@b/c", "Ab@Cd./E", "ς@x", "İ@x", "x@[::A]"] {
            let (_, n) = parse_ref(s).unwrap();
            assert_eq!(n, ok(s).as_str() == s, "{s}");
        }
    }

    #[test]
    fn domain_rules() {
        bad("juliet@exa mple.com");
        bad("juliet@example..com");
        bad("juliet@.example.com");
        bad("juliet@.");
        bad("juliet@example.com..");
        bad("juliet@exa_mple.com");
        bad("juliet@[::1");
        bad("juliet@[nope]");
        bad("juliet@exa\u{3000}mple.com");
        ok(&format!("{}.com", "a".repeat(63)));
        bad(&format!("{}.com", "a".repeat(64)));
        let long = vec!["a".repeat(63); 17].join(".");
        assert!(long.len() > MAX_PART);
        bad(&long);
    }

    #[test]
    fn part_lengths() {
        let l = "a".repeat(MAX_PART);
        ok(&format!("{l}@x/{l}"));
        bad(&format!("{l}a@x"));
        bad(&format!("x@x/{l}a"));
        // U+0130 lowercases from 2 to 3 bytes: the normalized form is too long.
        let grow = "\u{130}".repeat(500);
        assert!(parse_ref(&format!("{grow}@x")).is_ok());
        bad_parse_only(&format!("{grow}@x"));
    }

    fn bad_parse_only(s: &str) {
        assert!(Jid::parse(s).is_err());
    }

    #[test]
    fn constructors_and_accessors() {
        let j = Jid::new_full("Juliet", "Example.com", "Balcony").unwrap();
        assert_eq!(j.as_str(), "juliet@example.com/Balcony");
        assert_eq!(j.bare(), "juliet@example.com");
        assert!(!j.is_bare());
        let b = j.to_bare();
        assert!(b.is_bare());
        assert_eq!(b, Jid::new_bare("juliet", "example.com").unwrap());
        assert_eq!(b.resource(), None);
        assert_eq!(b.local(), Some("juliet"));
        let r = b.with_resource("orchard 2").unwrap();
        assert_eq!(r.as_str(), "juliet@example.com/orchard 2");
        assert_eq!(r.domain(), "example.com");
        assert_eq!(r, ok("juliet@example.com/orchard 2"));
        assert!(b.with_resource("").is_err());
        assert!(b.with_resource("a\nb").is_err());
        let d = Jid::new_domain("Example.com.").unwrap();
        assert_eq!(
            (d.as_str(), d.bare(), d.local()),
            ("example.com", "example.com", None)
        );
        assert_eq!(d.with_resource("x").unwrap().as_str(), "example.com/x");
        assert!(Jid::new_bare("", "example.com").is_err());
        assert!(Jid::new_bare("a@b", "example.com").is_err());
        assert!(Jid::new_bare("a", "example.com/x").is_err());
        assert!(Jid::new_full("a", "example.com", "").is_err());
        assert_eq!("A@B".parse::<Jid>().unwrap().as_str(), "a@b");
    }

    #[test]
    fn hashes_like_its_string() {
        let mut set = HashSet::new();
        set.insert(ok("Juliet@Example.com/x"));
        assert!(set.contains("juliet@example.com/x"));
        assert!(!set.contains("juliet@example.com"));
    }

    #[test]
    fn control_characters() {
        bad("jul\u{0}iet@example.com");
        bad("juliet@exam\u{1}ple.com");
        bad("juliet@example.com/fo\u{7f}o");
        bad("juliet@example.com/\u{85}");
        bad("jul\tiet@example.com");
    }

    /// Found by fuzz/fuzz_targets/jid.rs: U+0130 (2 bytes) lower-cases to "i\u{307}"
    /// (3 bytes), so a 63-byte label became 64 bytes and the normal form did not re-parse.
    #[test]
    fn fuzz_lowercasing_must_not_lengthen_past_the_limits() {
        let label = format!("{}\u{130}", "a".repeat(61));
        assert_eq!(label.len(), 63);
        assert!(parse_ref(&format!("x@{label}.example")).is_ok());
        bad_parse_only(&format!("x@{label}.example"));
        bad_parse_only(&format!("x@{label}"));
        assert!(Jid::new_domain(&label).is_err());
        assert!(Jid::new_bare("x", &label).is_err());
        // Below the limit the normal form is accepted and re-parses to itself.
        let short = format!("{}\u{130}", "a".repeat(58));
        let j = ok(&format!("x@{short}"));
        assert_eq!(j.domain(), format!("{}i\u{307}", "a".repeat(58)));
        assert_eq!(ok(j.as_str()), j);
        assert!(parse_ref(j.as_str()).unwrap().1);
        // The same for a localpart at 1023 bytes.
        let local = format!("{}\u{130}", "a".repeat(1021));
        assert_eq!(local.len(), 1023);
        bad_parse_only(&format!("{local}@example.com"));
    }

    /// Found by fuzz/fuzz_targets/ftw.rs: U+FFFF passed as "not a control", so an XMPP-FTW
    /// `to` became a stanza attribute that is not well-formed XML.
    #[test]
    fn fuzz_non_xml_characters() {
        bad("rooo\u{ffff}m@conference.localhost");
        bad("juliet@exa\u{fffe}mple.com");
        bad("juliet@example.com/ba\u{ffff}lcony");
        assert!(Jid::new_full("a", "b", "\u{fffe}").is_err());
        ok("juliet@example.com/\u{fffd}\u{10ffff}");
    }
}
