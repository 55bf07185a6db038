//! Several nodes as one XMPP domain (issue 14). So far: the bus between nodes
//! ([`bus`]); membership, placement and cross-node routing build on it.

pub mod bus;
pub mod membership;
pub mod placement;
