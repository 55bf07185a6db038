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
