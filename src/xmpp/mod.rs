//! XMPP core (RFC 6120/6121 over RFC 7395): JIDs, stream negotiation, SASL, bind,
//! sessions, routing, presence, rosters, iq, stream management. Nothing here names a
//! module: they plug in through the hook points of `core::Host`, which the server's
//! per-shard host implements.

pub mod commit;
pub mod config;
pub mod core;
pub mod errors;
pub mod iq;
pub mod jid;
pub mod jwt;
pub mod message;
pub mod presence;
pub mod roster;
pub mod roster_set;
pub mod router;
pub mod session;
pub mod sink;
pub mod sm;
pub mod stream;
pub mod subscription;

pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub const NS_CLIENT: &str = "jabber:client";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const NS_SM: &str = "urn:xmpp:sm:3";
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
