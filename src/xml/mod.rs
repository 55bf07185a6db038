//! XML for XMPP over WebSocket (RFC 7395): each WebSocket message holds one
//! complete top-level element, parsed once into a borrowing [`Stanza`] view
//! and usually forwarded verbatim; [`escape`] covers the little the server
//! decodes or writes itself; [`writer`] writes the elements the server makes, and [`ns`]
//! names every namespace the server uses. Over TCP (RFC 6120) the [`framer`] finds where
//! each top-level child of the stream ends across reads, so each is parsed the same way.

pub mod escape;
pub mod framer;
pub mod ns;
pub mod stanza;
pub mod writer;

pub use escape::{
    escape_attr, escape_attr_buf, escape_attr_bytes, escape_attr_to_string, escape_text,
    escape_text_buf, escape_text_bytes, escape_text_to_string, unescape,
};
pub use stanza::{Attr, Element, Limits, Stanza, XmlError};
