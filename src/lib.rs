//! Aoba: a thread-per-core XMPP server for browser and app clients.
//! See `DESIGN.md` in the shared notes and `docs/` for the why of the shape.

pub mod cluster;
pub mod config;
pub mod ctl;
pub mod fault;
pub mod features;
pub mod ftw;
pub mod logctl;
pub mod metrics;
pub mod muc;
pub mod net;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod xml;
pub mod xmpp;
