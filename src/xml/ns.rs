//! Every XML namespace the server names, defined once. Modules use these (a module may
//! alias one: `use crate::xml::ns::MAM as NS;`); test fixtures keep their literals.

// XML itself.

/// The `xml:` prefix's namespace, bound by definition (Namespaces in XML 1.0 §3).
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of `xmlns` declarations; nothing may be bound to it (Namespaces in XML
/// 1.0 §3).
pub const XMLNS: &str = "http://www.w3.org/2000/xmlns/";

// The core: RFC 6120 (XMPP Core) over RFC 7395 (WebSocket), RFC 6121 (IM).

/// `<open/>` and `<close/>` of a stream over WebSocket (RFC 7395 §3.3.1).
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
/// The stanzas of a client stream (RFC 6120 §4.8.3).
pub const CLIENT: &str = "jabber:client";
/// The `stream:` prefix of `<stream:features/>` and `<stream:error/>` (RFC 6120 §4.8.1).
pub const STREAMS: &str = "http://etherx.jabber.org/streams";
/// Stream error conditions (RFC 6120 §4.9.2).
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Stanza error conditions (RFC 6120 §8.3.2).
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// SASL negotiation (RFC 6120 §6.4).
/// RFC 6120 §5: STARTTLS.
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding (RFC 6120 §7).
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// Session establishment, optional since RFC 6121 (RFC 3921 §3; RFC 6121 Appendix E).
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// The roster (RFC 6121 §2).
pub const ROSTER: &str = "jabber:iq:roster";

// Extensions (XEPs).

/// Data forms (XEP-0004).
pub const DATA: &str = "jabber:x:data";
/// Service discovery, information (XEP-0030 §3).
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// Service discovery, items (XEP-0030 §4).
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// Multi-user chat: joining a room (XEP-0045 §7.2).
pub const MUC: &str = "http://jabber.org/protocol/muc";
/// Multi-user chat: occupant information, invitations, status codes (XEP-0045 §7).
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// Multi-user chat: moderator and admin requests (XEP-0045 §8, §9).
pub const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
/// Multi-user chat: owner requests (XEP-0045 §10).
pub const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// Multi-user chat: the room configuration form's `FORM_TYPE` (XEP-0045 §10.2, §15.5.3).
pub const MUC_ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";
/// XEP-0045 §7.10: the FORM_TYPE of a room registration.
pub const MUC_REGISTER: &str = "http://jabber.org/protocol/muc#register";
/// XEP-0045 §7.13, §8.6: the FORM_TYPE of a voice request and its approval.
pub const MUC_REQUEST: &str = "http://jabber.org/protocol/muc#request";
/// XEP-0410 §3.3: a room answers its occupants' self-pings itself.
pub const MUC_SELF_PING: &str = "http://jabber.org/protocol/muc#self-ping-optimization";
/// XEP-0077 In-Band Registration (used by XEP-0045 §7.10 to register with a room).
pub const REGISTER: &str = "jabber:iq:register";
/// Result set management: paging (XEP-0059).
pub const RSM: &str = "http://jabber.org/protocol/rsm";
/// XHTML-IM: the `<html/>` wrapper of a message's formatted body (XEP-0071 §4).
pub const XHTML_IM: &str = "http://jabber.org/protocol/xhtml-im";
/// XHTML 1.0: the `<body/>` inside the XHTML-IM wrapper and its content (XEP-0071 §4).
pub const XHTML: &str = "http://www.w3.org/1999/xhtml";
/// Chat state notifications (XEP-0085).
pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// Software version (XEP-0092).
pub const VERSION: &str = "jabber:iq:version";
/// Entity capabilities: the `<c/>` of a presence (XEP-0115).
pub const CAPS: &str = "http://jabber.org/protocol/caps";
/// User nickname (XEP-0172).
pub const NICK: &str = "http://jabber.org/protocol/nick";
/// Message delivery receipts (XEP-0184).
pub const RECEIPTS: &str = "urn:xmpp:receipts";
/// Stream management (XEP-0198).
pub const SM: &str = "urn:xmpp:sm:3";
/// XMPP ping (XEP-0199).
pub const PING: &str = "urn:xmpp:ping";
/// Entity time (XEP-0202).
pub const TIME: &str = "urn:xmpp:time";
/// Delayed delivery (XEP-0203).
pub const DELAY: &str = "urn:xmpp:delay";
/// Message carbons (XEP-0280).
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// Stanza forwarding (XEP-0297).
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// Last message correction (XEP-0308).
pub const CORRECT: &str = "urn:xmpp:message-correct:0";
/// Message archive management (XEP-0313).
pub const MAM: &str = "urn:xmpp:mam:2";
/// Unique and stable stanza IDs (XEP-0359).
pub const SID: &str = "urn:xmpp:sid:0";

// Aoba's own.

/// The MUC service's public-room directory headlines between shards (Aoba-internal: a
/// room tells the service's home shard whether it is listed; `muc/directory.rs`).
pub const MUC_DIRECTORY: &str = "urn:aoba:muc:directory";
