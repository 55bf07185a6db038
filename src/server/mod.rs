//! The composition root: what the server is made of and how its parts meet (the
//! connection task, the HTTP endpoints).

pub mod conn;
pub mod http;
