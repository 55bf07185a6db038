//! Configuration: one TOML file, every key optional, every limit named with its unit.
//!
//! Each section is the config of one part of the server, declared once next to its struct
//! (ejabberd's way): the struct's doc comment introduces the section, the doc comment on a
//! field documents the key, `Default` gives the defaults, `#[schemars(range(..))]` declares
//! a key's allowed range and the section's `validate` holds the checks across keys.
//! `aoba config-doc` prints `docs/configuration.md` from those declarations (the JSON
//! schema `schemars` derives), and `Config::validate` checks every declared range against
//! the same schema.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Shards an archive id can tell apart: `storage::archive_id` keeps 8 bits of shard.
pub const ARCHIVE_ID_SHARDS: usize = 256;

/// The start of `docs/configuration.md`; the sections follow, generated.
pub const DOC_PREAMBLE: &str = "\
# Configuration reference

`aoba serve --config FILE`; every key is optional. `aoba check-config FILE` validates a file
and prints the effective configuration (a key left unset is listed as a comment).

This page is the output of `aoba config-doc`: each section and key is documented by the doc
comments on its config struct in the source, next to its default and its allowed range. Edit
those, then run `cargo run -- config-doc > docs/configuration.md`.
";

#[derive(Debug, Clone, Serialize, Deserialize, Default, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    // No doc comments on these fields: a section's introduction is its struct's doc comment.
    pub server: ServerConfig,
    pub c2s: C2sConfig,
    pub tls: crate::net::tls::TlsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub auth: crate::xmpp::config::AuthConfig,
    pub limits: crate::xmpp::config::LimitsConfig,
    pub ping: crate::xmpp::config::PingConfig,
    pub muc: crate::muc::MucConfig,
    pub storage: crate::storage::StorageConfig,
    pub sm: crate::features::sm::SmConfig,
    pub mam: crate::features::mam::MamConfig,
    pub ftw: crate::ftw::FtwConfig,
    pub demo: DemoConfig,
    pub cluster: crate::cluster::ClusterConfig,
}

/// The listener, the shards and their runtime.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the WebSocket listener; one SO_REUSEPORT listener per shard. Aoba refuses
    /// to start if another process listens on it.
    pub listen: SocketAddr,
    /// Address of the HTTPS listener: the same paths as `listen` (`/xmpp` for wss://,
    /// `/socket.io/`, `/ftw`, `/health`, `/demo`) over TLS, with the `[tls]` certificates.
    /// Unset: no HTTPS. `aoba serve --listen-tls ADDR` sets it.
    pub listen_tls: Option<SocketAddr>,
    /// The XMPP domain served (JIDs `user@domain`). It must be a valid domain, and is
    /// normalized (RFC 7622: `Chat.Example` is `chat.example`).
    pub domain: String,
    /// Number of shards (threads, each on its own core with `pin_shards`); 0 = one per
    /// available core. Archive ids (`storage::archive_id`) hold the shard in 8 bits, so at
    /// most 256 shards: with 0 on a machine with more cores, validation refuses the
    /// configuration and asks for an explicit count.
    #[schemars(range(max = ARCHIVE_ID_SHARDS))]
    pub shards: usize,
    /// Pin shard k to core k.
    pub pin_shards: bool,
    /// Directory for the generated JWT secret (`jwt-secret`, mode 0600) and the database
    /// (`db`, with `storage.backend = "fjall"`).
    pub data_dir: PathBuf,
    /// Use epoll instead of io_uring. `MONOIO_FORCE_LEGACY_DRIVER=1` does the same.
    /// Docker's default seccomp profile and `kernel.io_uring_disabled=2` turn io_uring off;
    /// monoio then falls back silently, so each shard logs its driver at start.
    pub force_legacy_driver: bool,
    /// io_uring submission queue entries per shard (the kernel takes at most 32768).
    #[schemars(range(min = 1, max = 32768))]
    pub uring_entries: u32,
    /// Capacity (messages) of each shard's inbound cross-shard queue; when it is full,
    /// senders keep their messages in order in a local overflow and their clients are
    /// slowed down.
    #[schemars(range(min = 64))]
    pub mailbox_capacity: usize,
    /// Listen backlog of each shard's listener (the kernel caps it at
    /// `net.core.somaxconn`).
    #[schemars(range(min = 1))]
    pub listen_backlog: i32,
    /// Bound on the graceful shutdown: SIGTERM/SIGINT sends `system-shutdown` to every
    /// session and waits at most this long; the connections left are then dropped.
    pub shutdown_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8082".parse().unwrap(),
            listen_tls: None,
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

/// RFC 6120 client connections over TCP, for native clients (Conversations, Gajim, Dino,
/// Monal, slixmpp…). Off unless `listen` or `listen_direct_tls` is set.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct C2sConfig {
    /// Address of the TCP c2s listener (port 5222 by convention); one SO_REUSEPORT
    /// listener per shard, like `server.listen`. STARTTLS is offered when `[tls]` has
    /// certificates. Unset: no such listener. `aoba serve --c2s-listen ADDR` sets it.
    pub listen: Option<SocketAddr>,
    /// Address of the XEP-0368 direct TLS listener (5223 by convention): TLS first (ALPN
    /// `xmpp-client`), then the stream. Needs `[tls]` certificates. `aoba serve
    /// --c2s-direct-tls-listen ADDR` sets it.
    pub listen_direct_tls: Option<SocketAddr>,
    /// On `listen`, STARTTLS is required before authentication (only STARTTLS is offered,
    /// and SASL before it is refused with `encryption-required`). False: optional, which
    /// lets a client authenticate in the clear, so it also needs `allow_plaintext`.
    pub require_tls: bool,
    /// Let TCP clients authenticate without TLS (on `listen` with no certificates, or with
    /// `require_tls = false`). For tests and loopback only, never for a network others can
    /// see: SASL PLAIN carries the JWT in the clear.
    pub allow_plaintext: bool,
}

impl Default for C2sConfig {
    fn default() -> Self {
        C2sConfig {
            listen: None,
            listen_direct_tls: None,
            require_tls: true,
            allow_plaintext: false,
        }
    }
}

impl C2sConfig {
    /// `certificates`: whether `[tls]` has any.
    pub fn validate(&self, certificates: bool) -> Result<(), String> {
        if self.listen.is_some() && !self.allow_plaintext {
            if !certificates {
                return Err(
                    "c2s.listen without TLS: configure [tls] certificates (STARTTLS), \
                     or set c2s.allow_plaintext = true (tests and loopback only)"
                        .into(),
                );
            }
            if !self.require_tls {
                return Err(
                    "c2s.require_tls = false lets clients authenticate in the clear: \
                     set c2s.allow_plaintext = true too (tests and loopback only)"
                        .into(),
                );
            }
        }
        if self.listen_direct_tls.is_some() && !certificates {
            return Err("c2s.listen_direct_tls needs [tls] certificates".into());
        }
        Ok(())
    }
}

/// The admin listener: `GET /metrics` (Prometheus). A private port: bind it to loopback
/// or to an address only the monitoring network reaches.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve the admin listener.
    pub enabled: bool,
    /// Its address. `aoba serve --admin-listen ADDR` sets it.
    pub listen: SocketAddr,
    /// The largest request it reads (headers included); a bigger one gets 400.
    #[schemars(range(min = 1024))]
    pub max_request_bytes: usize,
    /// How long a client has to send its request, and to read the answer.
    #[schemars(range(min = 100))]
    pub io_timeout_ms: u64,
    /// A file holding the admin API's bearer token (at least 16 characters);
    /// `AOBA_ADMIN_TOKEN` overrides it. Without either, every `/api/` call answers 403.
    pub token_file: Option<PathBuf>,
    /// How long an admin call waits for the shards' answers.
    #[schemars(range(min = 100))]
    pub request_timeout_ms: u64,
    /// Items (roster items, room affiliations) one admin API request may carry; more get
    /// 400 `policy-violation`. A request is also bounded by `max_request_bytes`.
    #[schemars(range(min = 1))]
    pub max_items_per_request: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: "127.0.0.1:8083".parse().unwrap(),
            max_request_bytes: 16 * 1024,
            io_timeout_ms: 5000,
            token_file: None,
            request_timeout_ms: 2000,
            max_items_per_request: 1000,
        }
    }
}

/// Logging (to stderr). The admin API can change the filter at runtime (`PUT
/// /api/log-level`), and `POST /api/reload` applies a changed `level`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text`, or `json` for one JSON object per line (for a log pipeline);
    /// `AOBA_LOG_FORMAT` overrides it.
    pub format: String,
    /// The filter, in `tracing`'s `EnvFilter` syntax: `info`, `debug`,
    /// `aoba=debug,info`… `AOBA_LOG`, when set and not empty, overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// The demo page: `GET /demo` on `server.listen` (and `server.listen_tls`) serves one
/// self-contained page to try the server in a browser: it logs in with the `auth_token`
/// cookie (or asks for a token), shows contacts' presence, 1:1 chat with delivery receipts,
/// a group room and the raw stanzas. `/demo` speaks XML over `/xmpp`,
/// `/demo?transport=ftw` the XMPP-FTW JSON events over Socket.IO (its client is served at
/// `/demo/socket.io.min.js`). It holds no secret and reaches nothing but this server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Serve `/demo` and `/demo/socket.io.min.js`; false: they answer 404. Turn it off in
    /// production if you do not want it there.
    pub enabled: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig { enabled: true }
    }
}

impl ServerConfig {
    /// Normalizes the domain, and refuses a shard count archive ids cannot hold.
    pub fn validate(&mut self) -> Result<(), String> {
        let domain = crate::xmpp::jid::Jid::parse(&self.domain)
            .ok()
            .filter(|j| j.local().is_none() && j.resource().is_none())
            .ok_or_else(|| format!("server.domain {:?} is not a valid domain", self.domain))?;
        self.domain = domain.as_str().to_string();
        // An explicit count is checked against its declared range.
        let n = self.shard_count();
        if self.shards == 0 && n > ARCHIVE_ID_SHARDS {
            return Err(format!(
                "server.shards = 0 means one shard per core, {n} here, but archive ids hold at \
                 most {ARCHIVE_ID_SHARDS} shards: set server.shards"
            ));
        }
        Ok(())
    }

    /// The configured shard count, or one per available core.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

impl Config {
    pub fn load(path: &std::path::Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cfg: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// Checks what serde cannot: every declared range, then each section's own checks
    /// (across keys, the domain, the algorithm and its keys). Normalizes the domain
    /// (RFC 7622: `Chat.Example` is `chat.example`).
    pub fn validate(&mut self) -> Result<(), String> {
        self.server.validate()?;
        self.c2s.validate(!self.tls.certificates.is_empty())?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(format!(
                "log.format must be \"text\" or \"json\" (got {:?})",
                self.log.format
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| format!("log.level {:?}: {e}", self.log.level))?;
        if self.server.listen_tls.is_some() && self.tls.certificates.is_empty() {
            return Err("server.listen_tls needs [tls] certificates".into());
        }
        self.check_ranges()?;
        self.auth.validate()?;
        self.limits.validate()?;
        self.muc.validate()?;
        self.storage.validate()?;
        self.mam.validate()?;
        self.ftw.validate()?;
        self.cluster.validate(&self.storage.backend)?;
        if !self.tls.certificates.is_empty() {
            // Every file readable and each key its certificate's.
            crate::net::tls::Tls::load(&self.tls, &self.server.domain)?;
        }
        Ok(())
    }

    /// Every integer of the serialized configuration against its key's declared
    /// minimum and maximum.
    fn check_ranges(&self) -> Result<(), String> {
        let schema = schema();
        let values = serde_json::to_value(self).map_err(|e| e.to_string())?;
        for s in sections(&schema) {
            for (key, decl) in &s.keys {
                let Some(v) = int(&values[s.name.as_str()][key.as_str()]) else {
                    continue;
                };
                let (min, max) = bounds(decl);
                if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
                    return Err(format!(
                        "{}.{key} must be {} (got {v})",
                        s.name,
                        range_text(min, max)
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn shard_count(&self) -> usize {
        self.server.shard_count()
    }

    /// What the XMPP core reads of the configuration.
    pub fn core(&self) -> crate::xmpp::config::CoreConfig {
        crate::xmpp::config::CoreConfig {
            domain: self.server.domain.clone(),
            auth: self.auth.clone(),
            limits: self.limits.clone(),
            ping: self.ping.clone(),
            storage: self.storage.clone(),
        }
    }

    /// The configuration as TOML, every key in declaration order; a key without a value
    /// is listed as a comment.
    pub fn to_effective_toml(&self) -> Result<String, String> {
        let values = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let mut out = String::new();
        for (section, keys) in key_order() {
            if !out.is_empty() {
                out.push('\n');
            }
            out += &format!("[{section}]\n");
            for key in keys {
                match &values[section.as_str()][key.as_str()] {
                    Value::Null => out += &format!("# {key} is not set\n"),
                    v => {
                        let t = toml::Value::try_from(v).map_err(|e| format!("{key}: {e}"))?;
                        out += &format!("{key} = {t}\n");
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The JSON schema of `Config`, every section inline: doc comments are descriptions,
/// `Default` gives each key's default, `#[schemars(range(..))]` its minimum and maximum.
pub fn schema() -> schemars::Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<Config>()
}

/// One section as declared: its introduction and its keys' schemas, in declaration order.
struct Section<'a> {
    name: String,
    intro: Option<&'a str>,
    keys: Vec<(String, &'a Value)>,
}

fn sections(schema: &schemars::Schema) -> Vec<Section<'_>> {
    let props = &schema.as_value()["properties"];
    key_order()
        .into_iter()
        .map(|(name, keys)| {
            let sec = &props[name.as_str()];
            Section {
                intro: sec["description"].as_str(),
                keys: keys
                    .into_iter()
                    .map(|k| {
                        let decl = &sec["properties"][k.as_str()];
                        (k, decl)
                    })
                    .collect(),
                name,
            }
        })
        .collect()
}

/// Sections and keys in declaration order. The schema's maps sort their keys, but a
/// serialized struct lists its fields in order: read the default configuration back key
/// by key.
fn key_order() -> Vec<(String, Vec<String>)> {
    let json = serde_json::to_string(&Config::default()).expect("the config serializes");
    let Ordered(sections): Ordered<Ordered<serde::de::IgnoredAny>> =
        serde_json::from_str(&json).expect("the config reads back");
    sections
        .into_iter()
        .map(|(s, Ordered(keys))| (s, keys.into_iter().map(|(k, _)| k).collect()))
        .collect()
}

/// A map's entries in the order they were written.
struct Ordered<T>(Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = m.next_entry()? {
                    out.push(e);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

fn int(v: &Value) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
}

/// A key's declared minimum and maximum.
fn bounds(decl: &Value) -> (Option<i128>, Option<i128>) {
    (int(&decl["minimum"]), int(&decl["maximum"]))
}

fn range_text(min: Option<i128>, max: Option<i128>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("{a}..={b}"),
        (Some(a), None) => format!(">= {a}"),
        (None, Some(b)) => format!("<= {b}"),
        (None, None) => String::new(),
    }
}

/// The allowed range to document: none when it is only the type's own (an unsigned
/// integer's minimum 0).
fn declared_range(decl: &Value) -> Option<String> {
    match bounds(decl) {
        (None | Some(0), None) => None,
        (min, max) => Some(range_text(min, max)),
    }
}

fn type_text(decl: &Value) -> String {
    match &decl["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => {
            let ts: Vec<&str> = ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            format!("{}, optional", ts.join(" or "))
        }
        _ => "any".into(),
    }
}

fn default_text(decl: &Value) -> String {
    match decl.get("default") {
        None | Some(Value::Null) => "not set".into(),
        Some(v) => format!("`{v}`"),
    }
}

/// The Markdown configuration reference (`aoba config-doc`, `docs/configuration.md`).
pub fn reference() -> String {
    let schema = schema();
    let mut out = String::from(DOC_PREAMBLE);
    for s in sections(&schema) {
        out += &format!("\n## [{}]\n", s.name);
        if let Some(intro) = s.intro {
            out += &format!("\n{intro}\n");
        }
        for (key, decl) in &s.keys {
            out += &format!("\n### `{key}`\n\n");
            out += &format!("- type: {}\n", type_text(decl));
            out += &format!("- default: {}\n", default_text(decl));
            if let Some(r) = declared_range(decl) {
                out += &format!("- range: `{r}`\n");
            }
            if let Some(d) = decl["description"].as_str() {
                out += &format!("\n{d}\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_and_key_is_documented() {
        let schema = schema();
        for s in sections(&schema) {
            assert!(
                s.intro.is_some(),
                "[{}] has no doc comment on its struct",
                s.name
            );
            for (key, decl) in &s.keys {
                assert!(
                    decl["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{}.{key} has no doc comment",
                    s.name
                );
                assert!(
                    decl.get("default").is_some(),
                    "{}.{key}: no default",
                    s.name
                );
            }
        }
    }

    #[test]
    fn the_default_config_is_valid() {
        Config::default().validate().unwrap();
    }

    /// `server.shards` is bounded by what `storage::archive_id` can tell apart: the bits
    /// below an id's millisecond (shard and counter) differ for each of
    /// `ARCHIVE_ID_SHARDS` shards, and not for one more.
    #[test]
    fn the_shard_bound_fits_archive_ids() {
        let low = |shard: usize| {
            let id = crate::storage::archive_id(0, shard, &std::cell::Cell::new(0));
            id - crate::storage::archive_id_at(crate::storage::archive_id_ms(id))
        };
        let distinct = |n: usize| {
            (0..n)
                .map(low)
                .collect::<std::collections::HashSet<_>>()
                .len()
        };
        assert_eq!(distinct(ARCHIVE_ID_SHARDS), ARCHIVE_ID_SHARDS);
        assert_eq!(distinct(ARCHIVE_ID_SHARDS + 1), ARCHIVE_ID_SHARDS);
        let schema = schema();
        let decl = &schema.as_value()["properties"]["server"]["properties"]["shards"];
        assert_eq!(int(&decl["maximum"]), Some(ARCHIVE_ID_SHARDS as i128));
    }

    #[test]
    fn a_range_names_its_key() {
        let mut c = Config::default();
        c.limits.max_xml_depth = 1;
        assert_eq!(
            c.validate().unwrap_err(),
            "limits.max_xml_depth must be 2..=1000 (got 1)"
        );
    }
}
