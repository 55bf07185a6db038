//! The configuration sections the XMPP core owns (`[auth]`, `[limits]`, `[ping]`; `[sm]` is
//! in `sm.rs`), and `CoreConfig`, what the core reads of the whole configuration (the
//! server's `config.rs` composes every section and builds it).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the XMPP core reads: the domain and the core's own sections, plus storage's.
#[derive(Debug, Clone, Default)]
pub struct CoreConfig {
    pub domain: String,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub ping: PingConfig,
    pub storage: crate::storage::StorageConfig,
}

/// JWT authentication: the key tokens are checked with, the claims required, and the
/// bounds on logging in.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 shared secret; `--jwt-secret` and `AOBA_JWT_SECRET` override it. Empty: the
    /// secret in `<data_dir>/jwt-secret`, generated there (random, mode 0600) on first
    /// start.
    pub jwt_secret: String,
    /// `HS256` with `jwt_secret`, or `RS256`/`ES256` with `jwt_public_key_file` (PEM).
    /// `alg: none` and any other algorithm are refused.
    pub jwt_algorithm: String,
    /// PEM public key for RS256/ES256 (required with them).
    pub jwt_public_key_file: Option<PathBuf>,
    /// PEM private key for RS256/ES256, used only by `aoba token`.
    pub jwt_private_key_file: Option<PathBuf>,
    /// When set, the `iss` claim is required and must match.
    pub jwt_issuer: Option<String>,
    /// When set, the `aud` claim is required and must match.
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp` (always required) and `nbf`, in seconds.
    pub jwt_leeway_s: u64,
    /// Claim that names the user (not empty): a localpart (`alice`), or `local@domain`
    /// naming this domain (`alice@domain`).
    pub jwt_username_claim: String,
    /// SASL failures allowed on one connection; the last one gets `policy-violation` and
    /// the connection is closed.
    #[schemars(range(min = 1))]
    pub max_auth_failures: u32,
    /// Time from connect until a resource is bound; past it the connection is closed with
    /// `connection-timeout`.
    #[schemars(range(min = 100))]
    pub auth_timeout_ms: u64,
    /// RS256/ES256 only, per shard: signature checks per second of tokens not seen before
    /// (a checked token is remembered until it expires). Past it a login is told to retry
    /// instead of stalling the shard: HTTP 503 with `Retry-After: 1` at the upgrade, SASL
    /// `temporary-auth-failure` (not counted as a failure). One check costs 1.96 µs with
    /// HS256, 172 µs with RS256 and 294 µs with ES256 (`cargo bench --bench auth`,
    /// 2026-12-06, this 2-vCPU VM), so the default keeps them under about 30 % of a
    /// shard's core.
    #[schemars(range(min = 1))]
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

impl AuthConfig {
    /// The algorithm and its key, and a username claim.
    pub fn validate(&self) -> Result<(), String> {
        match self.jwt_algorithm.as_str() {
            "HS256" => {}
            "RS256" | "ES256" => {
                if self.jwt_public_key_file.is_none() {
                    return Err(format!(
                        "auth.jwt_algorithm {} needs auth.jwt_public_key_file",
                        self.jwt_algorithm
                    ));
                }
            }
            other => {
                return Err(format!(
                    "auth.jwt_algorithm {other:?}: expected HS256, RS256 or ES256"
                ));
            }
        }
        if self.jwt_username_claim.is_empty() {
            return Err("auth.jwt_username_claim must not be empty".into());
        }
        Ok(())
    }
}

/// Each limit is enforced and has a test that exceeds it (`tests/limits.rs`,
/// `tests/auth.rs`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest WebSocket message (one stanza), fragments included, in bytes; checked from
    /// the frame header before the payload is buffered → `policy-violation`.
    #[schemars(range(min = 1024, max = 16 << 20))]
    pub max_stanza_bytes: usize,
    /// Largest HTTP upgrade request, in bytes → HTTP 431.
    #[schemars(range(min = 512, max = 65536))]
    pub max_http_request_bytes: usize,
    /// Deepest element nesting in one stanza (the stanza element is depth 1) →
    /// `policy-violation`.
    #[schemars(range(min = 2, max = 1000))]
    pub max_xml_depth: usize,
    /// Most attributes (namespace declarations included) on one element →
    /// `policy-violation`.
    #[schemars(range(min = 4, max = 1000))]
    pub max_attrs_per_element: usize,
    /// Sustained stanzas per second one connection may send. With `stanza_burst` it is a
    /// token bucket per connection; every WebSocket message and control frame (pings,
    /// `<r/>`, `<a/>`) costs a token. An empty bucket **shapes**: the connection stops
    /// reading until a token is back, so TCP pushes back on the client; nothing is refused
    /// or closed for its rate ([durability.md](durability.md)).
    #[schemars(range(min = 1))]
    pub max_stanzas_per_sec: u32,
    /// Burst of stanzas allowed above the sustained rate (the size of the bucket of
    /// `max_stanzas_per_sec`).
    #[schemars(range(min = 1))]
    pub stanza_burst: u32,
    /// Bytes queued towards one client, its own answers, pongs and acks included; above it
    /// the client is closed as a slow consumer (`policy-violation`) and the stanzas it was
    /// not sent are routed again (its other resources, else offline storage). Must be at
    /// least `max_stanza_bytes`.
    pub outbound_queue_bytes_max: usize,
    /// Bound resources (sessions) one user may hold at once; another bind gets
    /// `resource-constraint` (rebinding an existing resource replaces it: the old session
    /// gets the `conflict` stream error).
    #[schemars(range(min = 1))]
    pub max_sessions_per_user: usize,
    /// Entities one session may send directed presence to (each is remembered, and gets
    /// `unavailable` at the end); past it the presence gets a `policy-violation` stanza
    /// error.
    pub max_directed_presence: usize,
    /// A user's requests that may wait for something the server is loading (its roster,
    /// right after login); past it they get `resource-constraint` at once.
    #[schemars(range(min = 1))]
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

impl LimitsConfig {
    /// A client's queue holds at least one stanza.
    pub fn validate(&self) -> Result<(), String> {
        if self.outbound_queue_bytes_max < self.max_stanza_bytes {
            return Err(format!(
                "limits.outbound_queue_bytes_max must be >= limits.max_stanza_bytes (got {} < {})",
                self.outbound_queue_bytes_max, self.max_stanza_bytes
            ));
        }
        Ok(())
    }
}

/// Keepalive of idle XMPP clients (XEP-0199). Timeouts fire within one sweep tick: a
/// quarter of the shortest of `auth.auth_timeout_ms`, `client_idle_ms`,
/// `client_ping_timeout_ms` and `sm.resume_timeout_ms`, between 5 ms and 1 s.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PingConfig {
    /// A client silent this long (any frame counts, WebSocket pongs included) gets an
    /// XEP-0199 ping from the server.
    #[schemars(range(min = 100))]
    pub client_idle_ms: u64,
    /// Further silence after that ping before the connection is closed with
    /// `connection-timeout`.
    #[schemars(range(min = 100))]
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
