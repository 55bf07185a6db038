//! The network side of a connection: HTTP/1.1 upgrade, WebSocket framing, the rate
//! shaper, and the bounded byte outbox with its writer. Nothing here knows XMPP.

pub mod http;
pub mod outbox;
pub mod shaper;
pub mod tls;
pub mod websocket;
