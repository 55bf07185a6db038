//! Configuration: one TOML file, every key optional, every limit named with its unit.
//!
//! Each section is the config of one part of the server, with its defaults and its
//! documentation in one place (ejabberd's way): the doc comment on a field is what
//! `docs/configuration.md` says about the key.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub ping: PingConfig,
    pub muc: crate::muc::MucConfig,
    pub storage: crate::storage::StorageConfig,
    pub sm: crate::xmpp::sm::SmConfig,
    pub mam: crate::features::mam::MamConfig,
    pub ftw: crate::ftw::FtwConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the WebSocket listener binds (one SO_REUSEPORT listener per shard).
    pub listen: SocketAddr,
    /// The XMPP domain served (JIDs `user@domain`).
    pub domain: String,
    /// Number of shards (threads pinned to cores); 0 = one per available core.
    pub shards: usize,
    /// Pin each shard thread to its own core.
    pub pin_shards: bool,
    /// Directory for the generated JWT secret and (later) the embedded database.
    pub data_dir: PathBuf,
    /// Force the epoll driver instead of io_uring (also `MONOIO_FORCE_LEGACY_DRIVER=1`).
    pub force_legacy_driver: bool,
    /// io_uring submission queue entries per shard.
    pub uring_entries: u32,
    /// Capacity (messages) of each shard's inbound cross-shard queue.
    pub mailbox_capacity: usize,
    /// Listen backlog of each shard's listener.
    pub listen_backlog: i32,
    /// Bound on the graceful shutdown: after this, remaining connections are dropped.
    pub shutdown_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8082".parse().unwrap(),
            domain: "localhost".into(),
            shards: 0,
            pin_shards: true,
            data_dir: PathBuf::from("./data"),
            force_legacy_driver: false,
            uring_entries: 1024,
            mailbox_capacity: 65536,
            listen_backlog: 4096,
            shutdown_timeout_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 shared secret. Empty: `AOBA_JWT_SECRET`, else a random secret generated into
    /// `<data_dir>/jwt-secret` on first start.
    pub jwt_secret: String,
    /// JWT algorithm: HS256, RS256 or ES256.
    pub jwt_algorithm: String,
    /// PEM public key for RS256/ES256.
    pub jwt_public_key_file: Option<PathBuf>,
    /// PEM private key for RS256/ES256, used only by `aoba token`.
    pub jwt_private_key_file: Option<PathBuf>,
    /// Required `iss` claim, if set.
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, if set.
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub jwt_leeway_s: u64,
    /// Claim that names the user: a localpart, or `local@domain` of this domain.
    pub jwt_username_claim: String,
    /// SASL failures allowed on one connection before it is closed.
    pub max_auth_failures: u32,
    /// Time from connection to successful SASL, after which the connection is closed.
    pub auth_timeout_ms: u64,
    /// RS256/ES256 only: signature checks of new tokens per second on each shard (a
    /// token checked once is remembered until it expires). Past it a login is told to
    /// retry (HTTP 503, SASL `temporary-auth-failure`) instead of stalling the shard.
    pub jwt_signature_checks_per_sec: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: String::new(),
            jwt_algorithm: "HS256".into(),
            jwt_public_key_file: None,
            jwt_private_key_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway_s: 30,
            jwt_username_claim: "sub".into(),
            max_auth_failures: 3,
            auth_timeout_ms: 30_000,
            jwt_signature_checks_per_sec: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest WebSocket message (one stanza), fragments included, in bytes.
    pub max_stanza_bytes: usize,
    /// Largest HTTP upgrade request, in bytes.
    pub max_http_request_bytes: usize,
    /// Deepest element nesting in one stanza (the stanza element is depth 1).
    pub max_xml_depth: usize,
    /// Most attributes (namespace declarations included) on one element.
    pub max_attrs_per_element: usize,
    /// Sustained stanzas per second one connection may send.
    pub max_stanzas_per_sec: u32,
    /// Burst of stanzas allowed above the sustained rate.
    pub stanza_burst: u32,
    /// Bytes queued towards one connection before it is closed as a slow consumer.
    pub outbound_queue_bytes_max: usize,
    /// Bound resources (sessions) one user may hold at once.
    pub max_sessions_per_user: usize,
    /// Entities one session may send directed presence to (each gets `unavailable` at the end).
    pub max_directed_presence: usize,
    /// A user's requests that may wait for something the server is loading (its roster,
    /// right after login); past it they get `resource-constraint` at once.
    pub max_pending_iqs: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_stanza_bytes: 256 * 1024,
            max_http_request_bytes: 8 * 1024,
            max_xml_depth: 32,
            max_attrs_per_element: 64,
            max_stanzas_per_sec: 200,
            stanza_burst: 400,
            outbound_queue_bytes_max: 4 * 1024 * 1024,
            max_sessions_per_user: 100,
            max_directed_presence: 1000,
            max_pending_iqs: 256,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PingConfig {
    /// A client silent this long gets an XEP-0199 ping from the server.
    pub client_idle_ms: u64,
    /// Time after that ping with no traffic before the connection is closed
    /// with `connection-timeout`.
    pub client_ping_timeout_ms: u64,
}

impl Default for PingConfig {
    fn default() -> Self {
        PingConfig {
            client_idle_ms: 120_000,
            client_ping_timeout_ms: 30_000,
        }
    }
}

impl Config {
    pub fn load(path: &std::path::Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cfg: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// Checks what serde cannot (ranges, the domain, the algorithm and its keys) and
    /// normalizes the domain (RFC 7622: `Chat.Example` is `chat.example`).
    pub fn validate(&mut self) -> Result<(), String> {
        let domain = crate::xmpp::jid::Jid::parse(&self.server.domain)
            .ok()
            .filter(|j| j.local().is_none() && j.resource().is_none())
            .ok_or_else(|| {
                format!(
                    "server.domain {:?} is not a valid domain",
                    self.server.domain
                )
            })?;
        self.server.domain = domain.as_str().to_string();
        let l = &self.limits;
        let checks: [(&str, bool); 9] = [
            (
                "limits.max_stanza_bytes must be 1024..=16777216",
                (1024..=16 << 20).contains(&l.max_stanza_bytes),
            ),
            (
                "limits.max_http_request_bytes must be 512..=65536",
                (512..=65536).contains(&l.max_http_request_bytes),
            ),
            (
                "limits.max_xml_depth must be 2..=1000",
                (2..=1000).contains(&l.max_xml_depth),
            ),
            (
                "limits.max_attrs_per_element must be 4..=1000",
                (4..=1000).contains(&l.max_attrs_per_element),
            ),
            (
                "limits.max_stanzas_per_sec must be >= 1",
                l.max_stanzas_per_sec >= 1,
            ),
            (
                "limits.outbound_queue_bytes_max must be >= max_stanza_bytes",
                l.outbound_queue_bytes_max >= l.max_stanza_bytes,
            ),
            (
                "limits.max_sessions_per_user must be >= 1",
                l.max_sessions_per_user >= 1,
            ),
            (
                "server.mailbox_capacity must be >= 64",
                self.server.mailbox_capacity >= 64,
            ),
            (
                "ping.client_idle_ms and client_ping_timeout_ms must be >= 100",
                self.ping.client_idle_ms >= 100 && self.ping.client_ping_timeout_ms >= 100,
            ),
        ];
        if let Some((msg, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err((*msg).to_string());
        }
        match self.auth.jwt_algorithm.as_str() {
            "HS256" => {}
            "RS256" | "ES256" => {
                if self.auth.jwt_public_key_file.is_none() {
                    return Err(format!(
                        "auth.jwt_algorithm {} needs auth.jwt_public_key_file",
                        self.auth.jwt_algorithm
                    ));
                }
            }
            other => {
                return Err(format!(
                    "auth.jwt_algorithm {other:?}: expected HS256, RS256 or ES256"
                ));
            }
        }
        self.muc.validate()?;
        if self.auth.jwt_signature_checks_per_sec == 0 {
            return Err("auth.jwt_signature_checks_per_sec must be >= 1".into());
        }
        if self.auth.jwt_username_claim.is_empty() {
            return Err("auth.jwt_username_claim must not be empty".into());
        }
        Ok(())
    }

    pub fn shard_count(&self) -> usize {
        if self.server.shards > 0 {
            self.server.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}
