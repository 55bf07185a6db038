//! The network side of a connection: HTTP/1.1 upgrade, WebSocket framing, the reading
//! connection task and its outbound queue.

pub mod conn;
pub mod http;
pub mod outbound;
pub mod shaper;
pub mod websocket;
