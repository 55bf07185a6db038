//! Several nodes as one XMPP domain (issue 14): the bus between nodes ([`bus`]),
//! membership in PostgreSQL ([`membership`]), rendezvous placement ([`placement`]), and
//! the view every shard routes by ([`NodeView`]).

pub mod bus;
pub mod membership;
pub mod placement;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Several nodes as one domain (`docs/cluster.md`). Unset `node`: one node alone, the
/// default. With `node` set, the node joins the cluster whose membership lives in the
/// PostgreSQL database of `storage.postgres_url` (so `storage.backend` must be
/// `"postgres"`) and reaches the other nodes through the NATS server at `nats_url`. Every
/// node of a cluster has the same domain, JWT keys and PostgreSQL.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster (1 to 64 letters, digits, `-`, `_`); a
    /// second live process with the same name is refused. Flag `--node NAME`.
    pub node: Option<String>,
    /// The cluster's name: its NATS subjects are `aoba.{name}.node.{node}`, so clusters
    /// with different names can share a NATS server.
    pub name: String,
    /// The NATS server (core NATS, no JetStream), e.g. `nats://127.0.0.1:4222`. Flag
    /// `--nats URL`.
    pub nats_url: Option<String>,
    /// How often the node writes its heartbeat and reads the members.
    #[schemars(range(min = 10))]
    pub heartbeat_ms: u64,
    /// A member silent this long is removed from the cluster; a node that could not
    /// write its heartbeat this long stops (fenced) rather than act as a home others may
    /// have taken over.
    #[schemars(range(min = 100))]
    pub failure_timeout_ms: u64,
    /// Frames the shards may queue for the bus gateway; past it a shard stops reading
    /// its clients until the queue drains.
    #[schemars(range(min = 16))]
    pub bus_queue_frames: usize,
    /// Largest NATS message the gateway sends (frames for one node are batched up to it).
    #[schemars(range(min = 4096, max = 1048576))]
    pub bus_batch_bytes_max: usize,
    /// How long start-up waits for PostgreSQL and NATS.
    #[schemars(range(min = 100))]
    pub connect_timeout_ms: u64,
    /// Bytes of stanzas one shard keeps for other nodes until they confirm them committed
    /// (re-sent to the new home if that node dies). Past it the shard stops reading its
    /// clients until the confirmations come (about every `server` timer tick).
    #[schemars(range(min = 4096))]
    pub outbox_bytes_max: usize,
    /// A node that has not confirmed what this node sent it within this time (the bus lost
    /// something: a nats-server restart) gets it all again, in order; acknowledgements
    /// waiting for it start over.
    #[schemars(range(min = 100))]
    pub resend_after_ms: u64,
    /// This node's WebSocket URL as clients reach it (e.g. `wss://n1.chat.example/xmpp`),
    /// for `redirect`. Unset: clients are never sent here by another node.
    pub advertise_url: Option<String>,
    /// This node's admin API as the other nodes reach it (`http://HOST:PORT`, plain HTTP
    /// on a private network): another node's admin API forwards here the calls for users
    /// and rooms homed here, and a user's deletion here removes its affiliations from the
    /// rooms homed on every node that set it. Unset: those calls are answered 421
    /// `redirect` naming this node.
    pub admin_url: Option<String>,
    /// A client that lands on a node other than its user's home (known from the
    /// `auth_token` cookie) is told to reconnect to the home's `advertise_url` (RFC 7395
    /// §3.6.1 `see-other-uri`) instead of being relayed there. Off: relayed (works for
    /// every client). XMPP-FTW sessions and TCP clients are always relayed.
    pub redirect: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node: None,
            name: "aoba".into(),
            nats_url: None,
            heartbeat_ms: 1_000,
            failure_timeout_ms: 5_000,
            bus_queue_frames: 65_536,
            bus_batch_bytes_max: 256 * 1024,
            connect_timeout_ms: 5_000,
            outbox_bytes_max: 8 * 1024 * 1024,
            resend_after_ms: 3_000,
            advertise_url: None,
            admin_url: None,
            redirect: false,
        }
    }
}

impl ClusterConfig {
    /// The checks across keys; `backend` is `storage.backend`.
    pub fn validate(&self, backend: &str) -> Result<(), String> {
        if !bus::valid_name(&self.name) {
            return Err(format!(
                "cluster.name {:?}: use 1 to 64 letters, digits, '-' or '_'",
                self.name
            ));
        }
        if let Some(u) = &self.admin_url
            && (!u.starts_with("http://") || u.len() <= "http://".len())
        {
            return Err(format!(
                "cluster.admin_url {u:?}: use http://HOST:PORT (the admin listener, plain HTTP)"
            ));
        }
        if self.failure_timeout_ms < 2 * self.heartbeat_ms {
            return Err(
                "cluster.failure_timeout_ms must be at least twice cluster.heartbeat_ms".into(),
            );
        }
        let Some(node) = &self.node else {
            if self.nats_url.is_some() {
                return Err(
                    "cluster.nats_url without cluster.node: set both (or --node and --nats)".into(),
                );
            }
            return Ok(());
        };
        if !bus::valid_name(node) {
            return Err(format!(
                "cluster.node {node:?}: use 1 to 64 letters, digits, '-' or '_'"
            ));
        }
        if self.nats_url.as_deref().is_none_or(|u| u.trim().is_empty()) {
            return Err("cluster.node needs cluster.nats_url (or --nats URL)".into());
        }
        if backend != "postgres" {
            return Err(format!(
                "cluster.node needs storage.backend = \"postgres\" (got {backend:?}): every node \
                 stores in the same PostgreSQL"
            ));
        }
        Ok(())
    }
}

/// One member as the shards see it.
#[derive(Debug, Clone)]
pub struct NodeRef {
    pub num: u16,
    pub name: Arc<str>,
    pub shards: u16,
    /// Its incarnation: a node that restarted under the same number is a new one.
    pub incarnation: i64,
    /// Where clients reach it (`cluster.advertise_url`).
    pub url: Option<Arc<str>>,
}

/// The cluster as the shards route by: handed to every shard through its mailbox at each
/// change of membership (no lock on the stanza path).
#[derive(Debug)]
pub struct NodeView {
    pub epoch: i64,
    /// The largest archive id stored when the view changed (`Core::raise_archive_floor`).
    pub archive_floor: u64,
    /// This node's number.
    pub me: u16,
    pub members: Vec<membership::Member>,
    pub nodes: Vec<NodeRef>,
}

impl NodeView {
    pub fn new(v: &membership::View, me: &membership::Member) -> NodeView {
        NodeView {
            epoch: v.epoch,
            archive_floor: v.archive_floor,
            me: me.num as u16,
            members: v.members.clone(),
            nodes: v
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| NodeRef {
                    num: m.num as u16,
                    name: m.name.as_str().into(),
                    shards: m.shards,
                    incarnation: m.incarnation,
                    url: v.urls.get(i).cloned().flatten().map(Arc::from),
                })
                .collect(),
        }
    }

    /// The home node of `key` and its shard count (this node alone: `None`).
    pub fn home(&self, key: &str) -> Option<(u16, u16)> {
        placement::home(key, &self.members).map(|m| (m.num as u16, m.shards))
    }

    pub fn node(&self, num: u16) -> Option<&NodeRef> {
        self.nodes.iter().find(|n| n.num == num)
    }

    /// The other members.
    pub fn others(&self) -> impl Iterator<Item = &NodeRef> {
        self.nodes.iter().filter(move |n| n.num != self.me)
    }
}
