//! Components: services at their own domain (the MUC at `conference.{domain}`), plugged
//! into routing without core routing knowing what they are (Prosody's way). Each shard has
//! its own instance of every component, holding the state whose home is that shard.

use super::router::Routed;
use crate::config::Config;
use crate::shard::Shard;
use std::sync::Arc;

pub trait Component {
    /// The domain this component serves (e.g. `conference.localhost`).
    fn domain(&self) -> &str;
    /// A stanza to this domain, on the home shard of its bare `to` (`room@domain`, or the
    /// domain itself for the service).
    fn handle(&self, shard: &Shard, r: Routed);
    /// At start: the records this component stored (e.g. persistent rooms) whose home is
    /// this shard.
    fn restore(&self, _shard: &Shard, _records: Vec<(String, Vec<u8>)>) {}
}

/// Builds one shard's instance of a component.
pub type ComponentFactory = Arc<dyn Fn(&Config) -> Box<dyn Component> + Send + Sync>;
