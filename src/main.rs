//! `aoba serve | token | check-config | config-doc`.

use aoba::config::Config;
use aoba::xmpp::jwt;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "aoba",
    version,
    about = "Thread-per-core XMPP server over WebSocket (RFC 7395)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(clap::Args, Default, Clone)]
struct Common {
    /// TOML configuration file (every key optional).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// XMPP domain served.
    #[arg(long)]
    domain: Option<String>,
    /// Data directory (generated JWT secret, database).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HS256 secret for the JWTs (overrides the file).
    #[arg(long, env = "AOBA_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default with no subcommand).
    Serve {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        listen: Listen,
        /// Number of shards (0 = one per core).
        #[arg(long)]
        shards: Option<usize>,
        /// How long a dropped XEP-0198 session may be resumed, in seconds.
        #[arg(long, value_name = "SECS")]
        sm_resume_timeout: Option<u64>,
    },
    /// Print a JWT for USER signed with the configured key (for development and tests).
    Token {
        user: String,
        /// Lifetime, e.g. 1h, 30m, 7d.
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,
        #[command(flatten)]
        common: Common,
    },
    /// Validate a configuration file and print the effective configuration.
    CheckConfig { file: PathBuf },
    /// Print the configuration reference (Markdown: `docs/configuration.md`).
    ConfigDoc,
    /// A client of the admin API: stats, sessions, kick, message, announce, log level,
    /// rooms, users, reload.
    Ctl(aoba::ctl::Ctl),
}

fn load(common: &Common) -> Result<Config, String> {
    let mut cfg = match &common.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    common.apply(&mut cfg);
    Ok(cfg)
}

impl Common {
    /// What the flags override in a file's configuration.
    fn apply(&self, cfg: &mut Config) {
        if let Some(d) = &self.domain {
            cfg.server.domain = d.clone();
        }
        if let Some(d) = &self.data_dir {
            cfg.server.data_dir = d.clone();
        }
        if let Some(s) = &self.jwt_secret {
            cfg.auth.jwt_secret = s.clone();
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.cmd, None | Some(Cmd::Serve { .. })) {
        init_logging("text", "info");
    }
    let r = match cli.cmd.unwrap_or(Cmd::Serve {
        common: Common::default(),
        listen: Listen::default(),
        shards: None,
        sm_resume_timeout: None,
    }) {
        Cmd::Serve {
            common,
            listen,
            shards,
            sm_resume_timeout,
        } => serve(common, listen, shards, sm_resume_timeout),
        Cmd::Token { user, ttl, common } => token(common, &user, ttl.as_secs()),
        Cmd::CheckConfig { file } => Config::load(&file).and_then(|mut c| {
            c.validate()?;
            println!("{}", c.to_effective_toml()?);
            eprintln!("{}: ok", file.display());
            Ok(())
        }),
        Cmd::Ctl(c) => std::process::exit(aoba::ctl::run(c)),
        Cmd::ConfigDoc => {
            print!("{}", aoba::config::reference());
            Ok(())
        }
    };
    if let Err(e) = r {
        eprintln!("aoba: {e}");
        std::process::exit(1);
    }
}

/// Logs to stderr, as text or one JSON object per line (`AOBA_LOG_FORMAT`, else
/// `log.format`); the filter (`AOBA_LOG` when set and not empty, else `log.level`) can
/// change at runtime through the admin API.
fn init_logging(format: &str, level: &str) {
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("AOBA_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| level.to_string());
    let env = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (layer, handle) = tracing_subscriber::reload::Layer::new(env);
    let format = std::env::var("AOBA_LOG_FORMAT").unwrap_or_else(|_| format.to_string());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(layer);
    if format == "json" {
        registry.with(fmt.json()).init();
    } else {
        registry
            .with(fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())))
            .init();
    }
    aoba::logctl::install(
        filter,
        Box::new(move |f| {
            let new = tracing_subscriber::EnvFilter::try_new(f).map_err(|e| e.to_string())?;
            handle.reload(new).map_err(|e| e.to_string())
        }),
    );
}

fn secret_for(cfg: &Config, create: bool) -> Result<Option<String>, String> {
    if cfg.auth.jwt_algorithm == "HS256" {
        jwt::resolve_secret(&cfg.auth, &cfg.server.data_dir, create).map(Some)
    } else {
        Ok(None)
    }
}

/// The listeners' flags (each overrides its config key).
#[derive(clap::Args, Default, Debug, Clone)]
struct Listen {
    /// Listen address (HTTP: WebSocket, XMPP-FTW, health), e.g. 127.0.0.1:8082.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// HTTPS listen address (wss://), e.g. 0.0.0.0:443. Needs [tls] certificates.
    #[arg(long, value_name = "ADDR")]
    listen_tls: Option<SocketAddr>,
    /// TCP c2s listen address (RFC 6120, native clients; STARTTLS), e.g. 0.0.0.0:5222.
    #[arg(long, value_name = "ADDR")]
    c2s_listen: Option<SocketAddr>,
    /// XEP-0368 direct TLS listen address, e.g. 0.0.0.0:5223. Needs [tls] certificates.
    #[arg(long, value_name = "ADDR")]
    c2s_direct_tls_listen: Option<SocketAddr>,
    /// Admin listen address (`GET /metrics`), e.g. 127.0.0.1:8083.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Store everything in PostgreSQL at URL (`storage.backend = "postgres"` with
    /// `storage.postgres_url`), e.g. postgresql://aoba@127.0.0.1/aoba.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Join a cluster as node NAME (`cluster.node`; needs --nats and --postgres).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// The cluster's NATS server (`cluster.nats_url`), e.g. nats://127.0.0.1:4222.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
}

impl Listen {
    /// What the listener flags and the other `serve` flags override.
    fn apply(&self, cfg: &mut Config, shards: Option<usize>, sm_resume: Option<u64>) {
        if let Some(l) = self.listen {
            cfg.server.listen = l;
        }
        if let Some(l) = self.listen_tls {
            cfg.server.listen_tls = Some(l);
        }
        if let Some(l) = self.c2s_listen {
            cfg.c2s.listen = Some(l);
        }
        if let Some(l) = self.c2s_direct_tls_listen {
            cfg.c2s.listen_direct_tls = Some(l);
        }
        if let Some(l) = self.admin_listen {
            cfg.admin.listen = l;
            cfg.admin.enabled = true;
        }
        if let Some(u) = &self.postgres {
            cfg.storage.backend = "postgres".into();
            cfg.storage.postgres_url = u.clone();
        }
        if let Some(n) = &self.node {
            cfg.cluster.node = Some(n.clone());
        }
        if let Some(u) = &self.nats {
            cfg.cluster.nats_url = Some(u.clone());
        }
        if let Some(s) = shards {
            cfg.server.shards = s;
        }
        if let Some(s) = sm_resume {
            cfg.sm.resume_timeout_ms = s * 1000;
        }
    }
}

fn serve(
    common: Common,
    listen: Listen,
    shards: Option<usize>,
    sm_resume: Option<u64>,
) -> Result<(), String> {
    let mut cfg = match load(&common) {
        Ok(c) => c,
        Err(e) => {
            init_logging("text", "info");
            return Err(e);
        }
    };
    init_logging(&cfg.log.format, &cfg.log.level);
    listen.apply(&mut cfg, shards, sm_resume);
    cfg.validate()?;
    let secret = secret_for(&cfg, true)?;
    let verifier = jwt::JwtVerifier::new(&cfg.auth, &cfg.server.domain, secret.as_deref())?;
    // What `POST /api/reload` re-reads: the same file, with the same flags over it.
    let source = aoba::server::ConfigSource {
        path: common.config.clone(),
        overrides: Box::new(move |cfg: &mut Config| {
            common.apply(cfg);
            listen.apply(cfg, shards, sm_resume);
        }),
    };
    aoba::runtime::crash_on_panic();
    aoba::server::run(cfg, verifier, source)
}

fn token(common: Common, user: &str, ttl_s: u64) -> Result<(), String> {
    let mut cfg = load(&common)?;
    cfg.validate()?;
    let secret = secret_for(&cfg, false)?;
    println!("{}", jwt::mint(&cfg.auth, secret.as_deref(), user, ttl_s)?);
    Ok(())
}
