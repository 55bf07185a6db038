//! The composition root: the per-shard host with its module list (`shard`), the
//! connection task (`conn`), the HTTP endpoints (`http`), and `run`, which wires the
//! configuration, storage and the runtime together.

pub mod admin;
pub mod admin_api;
mod admin_forward;
pub mod admin_manage;
pub mod admin_ops;
mod admin_reload;
mod admin_rooms_users;
pub mod cluster;
pub mod conn;
pub mod demo;
pub mod http;
pub mod notify;
mod relay;
pub mod shard;

pub use shard::{Shard, ShardMsg};

use crate::config::Config;
use crate::runtime::mailbox;
use crate::xmpp::core::Shared;
use crate::xmpp::jwt::JwtVerifier;
use std::sync::Arc;
use std::time::Duration;

/// How often a shard checks its connections' deadlines: a quarter of the shortest
/// configured timeout, between 5 ms and 1 s. Timeouts fire within one tick of their time.
pub fn timer_tick(cfg: &Config) -> Duration {
    let shortest = cfg
        .auth
        .auth_timeout_ms
        .min(cfg.ping.client_idle_ms)
        .min(cfg.ping.client_ping_timeout_ms)
        .min(cfg.sm.resume_timeout_ms)
        .min(cfg.ftw.incoming_iq_timeout_ms)
        .min(cfg.tls.handshake_timeout_ms);
    Duration::from_millis((shortest / 4).clamp(5, 1000))
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// HTTP: the WebSocket upgrade at `/xmpp`, `/socket.io/`, `/ftw`, `/health`, `/demo`.
    Http,
    /// The same over TLS (`server.listen_tls`).
    Https,
    /// RFC 6120 TCP c2s, with STARTTLS when certificates are configured.
    C2s,
    /// XEP-0368 direct TLS.
    C2sDirectTls,
}

impl Listener {
    /// The TLS a connection starts with, if any.
    pub fn tls(self) -> Option<crate::net::tls::Kind> {
        match self {
            Listener::Https => Some(crate::net::tls::Kind::Https),
            Listener::C2sDirectTls => Some(crate::net::tls::Kind::Direct),
            Listener::Http | Listener::C2s => None,
        }
    }

    /// An RFC 6120 stream (else HTTP, then WebSocket).
    pub fn is_c2s(self) -> bool {
        matches!(self, Listener::C2s | Listener::C2sDirectTls)
    }

    fn scheme(self) -> &'static str {
        match self {
            Listener::Http => "ws",
            Listener::Https => "wss",
            Listener::C2s => "tcp",
            Listener::C2sDirectTls => "tls",
        }
    }
}

/// What every shard shares about the network: its listeners, in the runtime's order
/// (the first is always `server.listen`), the process's TLS (with certificates), and the
/// cluster.
pub struct Net {
    pub listeners: Vec<Listener>,
    pub tls: Option<crate::net::tls::Tls>,
    /// This node's end of the cluster (none: one node alone).
    pub cluster: Option<Arc<cluster::Link>>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("listeners", &self.listeners)
            .field("cluster", &self.cluster.is_some())
            .finish()
    }
}

impl Default for Net {
    fn default() -> Self {
        Net {
            listeners: vec![Listener::Http],
            tls: None,
            cluster: None,
        }
    }
}

/// Where the configuration came from, for `POST /api/reload`: the file (none: defaults
/// only) and what the command line overrides in it.
pub struct ConfigSource {
    pub path: Option<std::path::PathBuf>,
    pub overrides: Box<dyn Fn(&mut Config) + Send>,
}

/// The admin API's token: `AOBA_ADMIN_TOKEN`, else `admin.token_file` (trimmed); none
/// means the API answers 403. A token file that cannot be read stops the start.
pub(super) fn admin_token(cfg: &crate::config::AdminConfig) -> Result<Option<String>, String> {
    if let Ok(t) = std::env::var("AOBA_ADMIN_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(Some(t.trim().to_string()));
    }
    match &cfg.token_file {
        None => Ok(None),
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| format!("admin.token_file {}: {e}", p.display()))?;
            let t = t.trim();
            if t.len() < 16 {
                return Err(format!(
                    "admin.token_file {}: the token must have at least 16 characters",
                    p.display()
                ));
            }
            Ok(Some(t.to_string()))
        }
    }
}

/// Starts every shard and blocks until they have all stopped (after SIGTERM/SIGINT).
pub fn run(cfg: Config, verifier: JwtVerifier, source: ConfigSource) -> Result<(), String> {
    let (soft, hard) = crate::runtime::raise_nofile();
    tracing::info!(soft, hard, "RLIMIT_NOFILE");
    if cfg.server.force_legacy_driver {
        // Read by monoio's io_uring detection, before any runtime is built.
        unsafe { std::env::set_var("MONOIO_FORCE_LEGACY_DRIVER", "1") };
    }
    let n = cfg.shard_count();
    let mut wanted = vec![(Listener::Http, cfg.server.listen)];
    for (kind, a) in [
        (Listener::Https, cfg.server.listen_tls),
        (Listener::C2s, cfg.c2s.listen),
        (Listener::C2sDirectTls, cfg.c2s.listen_direct_tls),
    ] {
        if let Some(a) = a {
            wanted.push((kind, a));
        }
    }
    let want: Vec<_> = wanted.iter().map(|w| w.1).collect();
    // Per shard, one listener per address, in `wanted`'s order.
    let (bound, listeners) = crate::runtime::bind_shards(&want, n, cfg.server.listen_backlog)?;
    let addrs: Vec<_> = wanted.iter().map(|w| w.0).zip(bound).collect();
    let addr = addrs[0].1;
    // The admin listener: bound now, so a port in use stops the start.
    let admin = if cfg.admin.enabled {
        let l = std::net::TcpListener::bind(cfg.admin.listen)
            .map_err(|e| format!("admin.listen {}: {e}", cfg.admin.listen))?;
        Some(l)
    } else {
        None
    };
    let tls = if cfg.tls.certificates.is_empty() {
        None
    } else {
        Some(crate::net::tls::Tls::load(&cfg.tls, &cfg.server.domain)?)
    };
    let mut senders = Vec::with_capacity(n);
    let mut boxes = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mailbox::mailbox(cfg.server.mailbox_capacity);
        senders.push(tx);
        boxes.push(rx);
    }
    let senders: Arc<[mailbox::MailboxSender<ShardMsg>]> = senders.into();
    // A cluster node: the bus first (frames wait in the mailboxes until the shards run),
    // then the membership, whose first view is queued for every shard before it starts.
    let cluster = cluster::start(&cfg, n, senders.clone())?;
    let net = Arc::new(Net {
        listeners: addrs.iter().map(|a| a.0).collect(),
        tls,
        cluster: cluster.clone(),
    });
    let backend = crate::storage::open(&cfg.storage, &cfg.server.data_dir)?;
    tracing::info!(backend = %cfg.storage.backend, "storage opened");
    #[allow(clippy::result_large_err)] // the reply goes back to be retried, not dropped
    let reply_to: crate::storage::ReplyTo = {
        let senders = senders.clone();
        // A shard that has stopped takes no more replies: dropped, not retried forever
        // (which kept the storage thread from flushing and the process from exiting).
        Arc::new(move |shard, r| {
            senders[shard]
                .try_send_or_drop(ShardMsg::Storage(r))
                .map_err(|m| match m {
                    ShardMsg::Storage(r) => r,
                    _ => unreachable!("only storage replies are sent here"),
                })
        })
    };
    let (storage, storage_thread) =
        crate::storage::start(backend, &cfg.storage, cfg.mam.retention_s, n, reply_to);
    // The services at their own domain (the MUC, also when it is off: it then answers
    // `service-unavailable`).
    let component_domains = vec![format!("{}.{}", cfg.muc.subdomain, cfg.server.domain)];
    let spec = crate::runtime::Spec {
        pin: cfg.server.pin_shards,
        uring_entries: cfg.server.uring_entries,
        tick: timer_tick(&cfg),
    };
    let config = Arc::new(cfg.clone());
    let shared = Arc::new(Shared::new(
        cfg.core(),
        verifier,
        component_domains,
        Some(storage.clone()),
        n,
    ));
    let (sh, mb, co, ne) = (shared.clone(), senders.clone(), config.clone(), net.clone());
    let threads = crate::runtime::start(&spec, listeners, boxes, move |id| {
        crate::storage::set_current_shard(id);
        crate::metrics::register_shard(id);
        Shard::new(
            crate::runtime::Runtime::new(id, mb.clone()),
            sh.clone(),
            co.clone(),
            ne.clone(),
        )
    })?;
    // The line scripts and tests wait for.
    println!("aoba listening on ws://{addr}/xmpp shards={n}");
    for &(kind, a) in &addrs[1..] {
        match kind {
            Listener::Https => println!("aoba listening on wss://{a}/xmpp"),
            _ => println!("aoba c2s listening on {}://{a}", kind.scheme()),
        }
    }
    if let Some(l) = admin {
        let a = l.local_addr().map_err(|e| e.to_string())?;
        let mb = senders.clone();
        let depths: Arc<crate::metrics::Depths> =
            Arc::new(move || mb.iter().map(|m| m.len()).collect());
        let token = admin_token(&cfg.admin)?;
        let api = admin_api::Api {
            senders: senders.clone(),
            domain: cfg.server.domain.clone(),
            muc_domain: format!("{}.{}", cfg.muc.subdomain, cfg.server.domain),
            deadline: Duration::from_millis(cfg.admin.request_timeout_ms),
            max_items: cfg.admin.max_items_per_request,
            cluster: cluster
                .clone()
                .zip(cfg.cluster.node.clone())
                .map(|(l, n)| (n, l)),
        };
        let admin = admin::Admin {
            cfg: cfg.admin.clone(),
            token,
            depths,
            api,
            reload: admin_reload::Reload {
                source,
                running: cfg.clone(),
                net: net.clone(),
            },
        };
        admin::start(l, admin).map_err(|e| e.to_string())?;
        println!("aoba admin listening on http://{a}");
    }
    println!("aoba ready");
    notify::notify("READY=1\nSTATUS=serving");
    notify::start_watchdog(senders.clone());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, shards = n, domain = %shared.cfg.domain, "listening");

    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == signal_hook::consts::SIGHUP {
                    // Certificates only: live sessions keep theirs; a bad file keeps the
                    // old set.
                    match net.tls.as_ref().map(|t| t.reload()) {
                        Some(Ok(n)) => tracing::info!(certificates = n, "SIGHUP: TLS certificates reloaded"),
                        Some(Err(e)) => tracing::warn!(error = %e, "SIGHUP: TLS certificates not reloaded, the old ones stay"),
                        None => tracing::info!("SIGHUP: no TLS certificates configured"),
                    }
                    continue;
                }
                tracing::info!(sig, "shutting down");
                notify::notify("STOPPING=1");
                for mb in senders.iter() {
                    while mb.try_send(ShardMsg::Shutdown).is_err() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                break;
            }
        })
        .map_err(|e| e.to_string())?;
    for t in threads {
        let _ = t.join();
    }
    if let Some(c) = &cluster {
        c.leave();
    }
    // Graceful shutdown flushes storage: everything the shards queued is made durable.
    storage.stop();
    let _ = storage_thread.join();
    tracing::info!("stopped");
    Ok(())
}
