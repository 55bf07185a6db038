//! XMPP core (RFC 6120/6121 over RFC 7395): JIDs, stream negotiation, SASL, bind,
//! sessions, routing, presence, IQ and nonza dispatch, the session sink (with XEP-0198's
//! record of what the client has not acknowledged), XEP-0059's `<set/>` for the modules
//! that page (`rsm.rs`). Nothing here names a module: rosters, stream management's nonzas
//! and resumption, and every extension plug in through the hook points of `core::Host`,
//! which the server's per-shard host implements.

pub mod commit;
pub mod config;
pub mod core;
pub mod errors;
pub mod iq;
pub mod jid;
pub mod jwt;
pub mod message;
pub mod presence;
pub mod router;
pub mod rsm;
pub mod session;
pub mod sink;
pub mod stream;
pub mod wire;
