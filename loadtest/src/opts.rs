//! Command-line options shared by every scenario (spelled as in the issue so scripts can rely
//! on them), plus the TOML scenario-file mapping.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::client::{AuthMode, ClientCfg, Target};
use crate::tls::{self, TlsClient, TlsResumption, Trust};
use crate::transport::{Transport, parse_url};

#[derive(Parser, Debug)]
#[command(
    name = "aoba-loadtest",
    version,
    about = "XMPP load generator: WebSocket (RFC 7395) and TCP (RFC 6120) sessions, with or without TLS"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open N sessions at rate R (connect, auth, bind, initial presence): logins/s, latency.
    Login(Opts),
    /// Hold N idle sessions for --duration seconds; bytes of server RSS per session.
    Hold(Opts),
    /// N sessions sending 1:1 chat to random online peers at --rate msgs/s in total.
    Chat(Opts),
    /// --rooms K of --occupants M; --senders per room sending groupchat at --rate in total.
    Muc(Opts),
    /// Step the offered --rate of a scenario up until p99 passes --p99-bound-ms or errors appear.
    Capacity(CapOpts),
    /// Run a TOML scenario file (keys are the long option names); extra args override it.
    Run {
        file: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        extra: Vec<String>,
    },
    /// An Aoba cluster: `kill -9` one node (--kill-pid, named --victim in --cluster-nodes)
    /// while a user homed there receives a message every 10 ms from a user of another node;
    /// prints the time from the kill to that user's login again and to its first delivery.
    Failover(FailoverOpts),
    /// Internal: one worker process of `hold --procs N`.
    #[command(hide = true)]
    HoldWorker {
        /// JSON-encoded options
        spec: String,
        first: usize,
        count: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Login,
    Hold,
    Chat,
    Muc,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Login => "login",
            Scenario::Hold => "hold",
            Scenario::Chat => "chat",
            Scenario::Muc => "muc",
        }
    }
}

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct Opts {
    /// ws: RFC 7395 over WebSocket; wss: the same over TLS; tcp: RFC 6120 over plaintext TCP
    /// (the server's c2s listener, `aoba serve --c2s-listen ADDR`); starttls: RFC 6120 TCP
    /// upgraded with STARTTLS; tls: XEP-0368 direct TLS. The TLS ones need --ca.
    #[arg(long, value_enum, default_value = "ws")]
    pub transport: Transport,
    /// Server address, loopback only: ws://HOST:PORT/PATH for ws (default
    /// ws://127.0.0.1:8082/xmpp), wss://HOST:PORT/PATH for wss (default
    /// wss://127.0.0.1:8443/xmpp), tcp://HOST:PORT for tcp and starttls (default
    /// tcp://127.0.0.1:5222), tls://HOST:PORT for tls (default tls://127.0.0.1:5223).
    /// Several nodes: repeat --url or give a comma-separated list; session i goes to URL
    /// i mod (number of URLs), by its global index (also across `hold --procs`).
    #[arg(long, value_delimiter = ',')]
    pub url: Vec<String>,
    /// XMPP domain (the `to` of <open/> or of the stream header; on TLS transports also the
    /// SNI and the name the server's certificate is verified for).
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Default: jwt-cookie on ws and wss, jwt-plain on tcp, starttls and tls (they have no
    /// HTTP upgrade to carry a cookie: jwt-cookie is refused there).
    #[arg(long, value_enum)]
    pub auth: Option<AuthMode>,
    /// wss, starttls, tls: PEM file with the CA certificate(s) the server's certificate must
    /// chain to (verified for --domain). Required on those transports (or --tls-insecure).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// wss, starttls, tls: on = one TLS client config and session cache for every session of
    /// the process, so reconnects resume; off = every login a full handshake.
    #[arg(long, value_enum, default_value = "on")]
    pub tls_resumption: TlsResumption,
    /// wss, starttls, tls: do not verify the server's certificate at all (instead of --ca).
    #[arg(long)]
    pub tls_insecure: bool,
    /// HS256 secret for jwt-cookie / jwt-plain.
    #[arg(long, default_value = "")]
    pub jwt_secret: String,
    /// SASL PLAIN password for --auth plain.
    #[arg(long, default_value = "pass")]
    pub password: String,
    /// Users are {prefix}1 .. {prefix}N.
    #[arg(long, default_value = "user")]
    pub users_prefix: String,
    /// An Aoba cluster: the node names (`cluster.node`) of the `--url`s, in the same order.
    /// Each session's user is then chosen so that its home node (Aoba's placement) is the
    /// node of its URL: `{prefix}{n}x{k}` for the first k that lands there.
    #[arg(long, value_delimiter = ',')]
    pub cluster_nodes: Vec<String>,
    /// With --cluster-nodes: each session's home is the node of the next URL instead, so
    /// every session is relayed by the node it connects to (proxy mode).
    #[arg(long)]
    pub relayed: bool,
    /// chat: `same` pairs each sender with a peer on its own URL; `cross` with a peer on
    /// another URL (with --cluster-nodes: another home node, so every message crosses).
    #[arg(long, default_value = "same", value_parser = ["same", "cross"])]
    pub pairing: String,
    /// muc, in a cluster: each room's occupants are the consecutive sessions of the
    /// single-URL layout, so they spread over every URL (and, with --cluster-nodes, every
    /// home node): a groupchat message reaches occupants on every node.
    #[arg(long)]
    pub rooms_across_urls: bool,
    /// Number of sessions (muc: rooms x occupants unless larger).
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// Offered rate: stanzas/s in total (login: logins/s).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of sending (chat, muc) or holding (hold).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// MUC rooms.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Occupants per MUC room.
    #[arg(long, default_value_t = 10)]
    pub occupants: usize,
    /// Senders per MUC room (default: every occupant).
    #[arg(long)]
    pub senders: Option<usize>,
    /// MUC service (default conference.DOMAIN).
    #[arg(long)]
    pub muc_service: Option<String>,
    /// Server processes to sample (CPU time and RSS from /proc, summed with their
    /// children's: a PostgreSQL postmaster counts its backends), comma-separated: a
    /// cluster's nodes, nats-server and PostgreSQL together.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Seed for every random choice (peers, rooms names, senders).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// hold: worker processes (each holds at most --max-per-proc sockets).
    #[arg(long, default_value_t = 1)]
    pub procs: usize,
    /// hold: most sessions per process (RLIMIT_NOFILE is 20,000 here).
    #[arg(long, default_value_t = 19_000)]
    pub max_per_proc: usize,
    /// Do not request the `xmpp` WebSocket subprotocol (ejabberd 23.01; ws and wss only).
    #[arg(long)]
    pub no_subprotocol: bool,
    /// login/hold/chat, ws and wss only: log in as XMPP-FTW JSON sessions over Socket.IO (Aoba only): the
    /// URL's path becomes `/socket.io/?EIO=4&transport=websocket`, then `xmpp.login` and
    /// `xmpp.presence`; chat sends and reads `xmpp.chat.message` events; Engine.IO pings
    /// are answered.
    #[arg(long)]
    pub ftw: bool,
    /// Resource requested at bind.
    #[arg(long, default_value = "lt")]
    pub resource: String,
    /// Login rate (sessions/s) for the setup phase of hold, chat and muc.
    #[arg(long, default_value_t = 1000.0)]
    pub login_rate: f64,
    /// Most logins in flight at once.
    #[arg(long, default_value_t = 256)]
    pub login_concurrency: usize,
    /// Seconds allowed for one login (connect to initial presence) and for MUC joins.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Seconds to let the server settle between the login (and join) phase and sending.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
    /// Seconds to wait for outstanding deliveries after the last send.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Loopback source addresses to spread connections over (0 = auto: one per 10,000, at least 16).
    #[arg(long, default_value_t = 0)]
    pub src_addrs: u32,
    /// Message body size in bytes (the stamp is inside it).
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
    /// Tokio worker threads (0 = number of CPUs).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Per-connection read buffer (WebSocket client; bytes asked of each TCP read).
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CapOpts {
    /// Scenario to step (chat, muc or login).
    #[arg(value_enum)]
    pub target: Scenario,
    /// Explicit offered rates, e.g. 1000,2000,4000.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Without --rates: first rate ...
    #[arg(long, default_value_t = 500.0)]
    pub rate_start: f64,
    /// ... multiplied by this each step ...
    #[arg(long, default_value_t = 2.0)]
    pub rate_factor: f64,
    /// ... for at most this many steps.
    #[arg(long, default_value_t = 10)]
    pub steps_max: usize,
    /// Stop when p99 latency passes this bound.
    #[arg(long, default_value_t = 100.0)]
    pub p99_bound_ms: f64,
    /// CSV output (default capacity-SCENARIO.csv).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// SVG plot output (default capacity-SCENARIO.svg).
    #[arg(long)]
    pub svg: Option<PathBuf>,
    #[command(flatten)]
    pub opts: Opts,
}

#[derive(clap::Args, Debug, Clone)]
pub struct FailoverOpts {
    /// The pid of the node to kill.
    #[arg(long)]
    pub kill_pid: u32,
    /// Its name (one of --cluster-nodes).
    #[arg(long)]
    pub victim: String,
    /// Seconds the run may take after the kill before it gives up.
    #[arg(long, default_value_t = 60.0)]
    pub bound_s: f64,
    #[command(flatten)]
    pub opts: Opts,
}

/// Hard bounds so every run stops by itself.
pub const MAX_SESSIONS: usize = 1_000_000;
pub const MAX_DURATION_S: f64 = 3600.0;
pub const MAX_MESSAGES: f64 = 200_000_000.0;

impl Opts {
    /// The server URLs (`--url`, repeated or comma-separated; or the transport's default).
    pub fn urls(&self) -> Vec<String> {
        if self.url.is_empty() {
            vec![self.transport.default_url().to_string()]
        } else {
            self.url.clone()
        }
    }

    /// The server URL as reported: the only one, or all of them joined with commas.
    pub fn url(&self) -> String {
        self.urls().join(",")
    }

    /// Each URL checked against the transport (and loopback), with its address; an error
    /// names the URL at fault.
    fn targets(&self) -> Result<Vec<Target>, String> {
        let urls = self.urls();
        let several = urls.len() > 1;
        urls.into_iter()
            .map(|url| match parse_url(&url, self.transport) {
                Ok(addr) => Ok(Target { url, addr }),
                // parse_url's own messages name the URL except for the host checks
                Err(e) if several && !e.contains(url.as_str()) => Err(format!("--url {url}: {e}")),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// `--auth`, or the transport's default: the JWT as a cookie on a WebSocket upgrade, as
    /// the SASL PLAIN password on TCP.
    pub fn auth(&self) -> AuthMode {
        self.auth.unwrap_or(if self.transport.is_ws() {
            AuthMode::JwtCookie
        } else {
            AuthMode::JwtPlain
        })
    }

    /// Whom the TLS transports trust: `--ca FILE` or `--tls-insecure`.
    fn trust(&self) -> Result<Trust, String> {
        let t = self.transport.name();
        match (&self.ca, self.tls_insecure) {
            (Some(_), true) => Err("--ca and --tls-insecure exclude each other".into()),
            (Some(ca), false) => Ok(Trust::Ca(ca.clone())),
            (None, true) => Ok(Trust::Insecure),
            (None, false) => Err(format!(
                "--transport {t} verifies the server's certificate and has no built-in trust: pass --ca FILE (PEM, the CA certificate(s) the server's certificate chains to; it is verified for --domain {}), or --tls-insecure to skip verification",
                self.domain
            )),
        }
    }

    /// The TLS client of the TLS transports: the process's shared client config (built and
    /// the CA file read on first use) and this run's handshake counters.
    fn tls_client(&self) -> Result<Option<TlsClient>, String> {
        if !self.transport.is_tls() {
            return Ok(None);
        }
        let config = tls::client_config(self.transport, &self.trust()?, self.tls_resumption)?;
        TlsClient::new(config, &self.domain, self.tls_resumption).map(Some)
    }

    /// With --cluster-nodes: the user of every session, homed on its URL's node (or the
    /// next one with --relayed).
    fn cluster_names(&self) -> Option<Arc<Vec<String>>> {
        if self.cluster_nodes.is_empty() {
            return None;
        }
        let nodes = self.cluster_nodes.len();
        let names = (0..self.sessions)
            .map(|i| {
                let u = crate::client::url_index(i, nodes);
                let want = &self.cluster_nodes[if self.relayed { (u + 1) % nodes } else { u }];
                (0..)
                    .map(|k| format!("{}{i}x{k}", self.users_prefix))
                    .find(|name| {
                        let bare = format!("{name}@{}", self.domain);
                        aoba::cluster::placement::home_of(&bare, &self.cluster_nodes)
                            .is_some_and(|h| &self.cluster_nodes[h] == want)
                    })
                    .unwrap_or_default()
            })
            .collect();
        Some(Arc::new(names))
    }

    pub fn validate(&self) -> Result<(), String> {
        if !self.cluster_nodes.is_empty() && self.cluster_nodes.len() != self.url.len().max(1) {
            return Err(format!(
                "--cluster-nodes names {} nodes for {} --url",
                self.cluster_nodes.len(),
                self.url.len().max(1)
            ));
        }
        let targets = self.targets()?;
        if let Some(dup) = targets
            .iter()
            .enumerate()
            .find(|(i, t)| targets[..*i].iter().any(|o| o.url == t.url))
        {
            return Err(format!("--url {} is given twice", dup.1.url));
        }
        if !self.transport.is_ws() {
            if self.auth() == AuthMode::JwtCookie {
                return Err(format!(
                    "--auth jwt-cookie sends the JWT as a cookie on the WebSocket upgrade, and --transport {} has none: use --auth jwt-plain (the JWT as the SASL PLAIN password, the default on {0}) or --auth plain",
                    self.transport.name()
                ));
            }
            if self.ftw {
                return Err(format!(
                    "--ftw (XMPP-FTW over Socket.IO) needs --transport ws or wss, not {}",
                    self.transport.name()
                ));
            }
        }
        if self.transport.is_tls() {
            self.tls_client()?;
        } else if self.ca.is_some() || self.tls_insecure {
            return Err(format!(
                "--ca and --tls-insecure are for --transport wss, starttls and tls, not {}",
                self.transport.name()
            ));
        }
        if self.sessions == 0 || self.sessions > MAX_SESSIONS {
            return Err(format!("--sessions must be 1..={MAX_SESSIONS}"));
        }
        if !(self.duration > 0.0 && self.duration <= MAX_DURATION_S) {
            return Err(format!("--duration must be in (0, {MAX_DURATION_S}]"));
        }
        if !(self.rate > 0.0 && self.rate * self.duration <= MAX_MESSAGES) {
            return Err(format!(
                "--rate must be > 0 and rate x duration <= {MAX_MESSAGES}"
            ));
        }
        if self.login_rate.is_nan() || self.login_rate <= 0.0 || self.login_concurrency == 0 {
            return Err("--login-rate and --login-concurrency must be > 0".into());
        }
        if !(self.timeout > 0.0
            && self.timeout <= 600.0
            && (0.0..=600.0).contains(&self.drain)
            && (0.0..=600.0).contains(&self.settle))
        {
            return Err("--timeout must be in (0, 600], --drain and --settle in [0, 600]".into());
        }
        if matches!(self.auth(), AuthMode::JwtCookie | AuthMode::JwtPlain)
            && self.jwt_secret.is_empty()
        {
            return Err("--auth jwt-cookie/jwt-plain needs --jwt-secret".into());
        }
        if self.max_per_proc == 0 || self.procs == 0 || self.procs > 256 {
            return Err("--procs must be 1..=256 and --max-per-proc > 0".into());
        }
        Ok(())
    }

    pub fn client_cfg(&self) -> Arc<ClientCfg> {
        let src_addrs = if self.src_addrs == 0 {
            (self.sessions.div_ceil(10_000) as u32).max(16)
        } else {
            self.src_addrs
        };
        Arc::new(ClientCfg {
            transport: self.transport,
            targets: self.targets().expect("validated"),
            domain: self.domain.clone(),
            auth: self.auth(),
            jwt_secret: self.jwt_secret.clone(),
            password: self.password.clone(),
            users_prefix: self.users_prefix.clone(),
            names: self.cluster_names(),
            subprotocol: !self.no_subprotocol && !self.ftw,
            ftw: self.ftw,
            resource: self.resource.clone(),
            timeout: Duration::from_secs_f64(self.timeout),
            src_addrs,
            read_buffer: self.read_buffer.max(256),
            tls: self.tls_client().expect("validated").map(Arc::new),
        })
    }

    pub fn muc_service(&self) -> String {
        self.muc_service
            .clone()
            .unwrap_or_else(|| format!("conference.{}", self.domain))
    }
}

/// Turn a TOML scenario file into command-line arguments: `scenario = "chat"` is the
/// subcommand, `target = "chat"` the capacity target, every other key `k = v` becomes
/// `--k=v` (underscores may be used for dashes; arrays are joined with commas; `true` is a flag).
pub fn toml_to_args(text: &str, extra: &[String]) -> Result<Vec<String>, String> {
    // options given on the command line override the file's
    let overridden: Vec<String> = extra
        .iter()
        .filter_map(|a| a.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .collect();
    let table: toml::Table = text.parse().map_err(|e| format!("scenario file: {e}"))?;
    let scenario = table
        .get("scenario")
        .and_then(|v| v.as_str())
        .ok_or("scenario file needs scenario = \"login|hold|chat|muc|capacity\"")?;
    let mut args = vec!["aoba-loadtest".to_string(), scenario.to_string()];
    if let Some(t) = table.get("target").and_then(|v| v.as_str()) {
        args.push(t.to_string());
    }
    for (k, v) in &table {
        if k == "scenario" || k == "target" {
            continue;
        }
        let key = format!("--{}", k.replace('_', "-"));
        if overridden.iter().any(|o| *o == key[2..]) {
            continue;
        }
        let val = match v {
            toml::Value::Boolean(true) => {
                args.push(key);
                continue;
            }
            toml::Value::Boolean(false) => continue,
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Array(a) => a
                .iter()
                .map(|x| match x {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => return Err(format!("unsupported value for {k}: {other}")),
        };
        args.push(format!("{key}={val}"));
    }
    args.extend(extra.iter().cloned());
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_args() {
        let a = toml_to_args("scenario = \"capacity\"\ntarget = \"chat\"\nrates = [1000, 2000]\nno_subprotocol = true\nurl = \"ws://127.0.0.1:1/x\"\nsessions = 5\n",
            &["--sessions".into(), "7".into()],
        )
        .unwrap();
        assert_eq!(a[1], "capacity");
        assert_eq!(a[2], "chat");
        assert!(a.contains(&"--rates=1000,2000".to_string()));
        assert!(a.contains(&"--no-subprotocol".to_string()));
        let cli = Cli::try_parse_from(&a).unwrap();
        match cli.cmd {
            Command::Capacity(c) => {
                assert_eq!(c.rates, vec![1000.0, 2000.0]);
                assert!(c.opts.no_subprotocol);
                assert_eq!(c.opts.sessions, 7);
            }
            _ => panic!("wrong subcommand"),
        }
    }

    #[test]
    fn transports() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Chat(o) = cli.cmd else { panic!() };
            o
        };
        // ws: the defaults as before
        let o = parse(&["x", "chat", "--jwt-secret", "S"]);
        assert_eq!(o.transport, Transport::Ws);
        assert_eq!(o.url(), "ws://127.0.0.1:8082/xmpp");
        assert_eq!(o.auth(), AuthMode::JwtCookie);
        o.validate().unwrap();
        // tcp: its own default URL, the JWT as the SASL PLAIN password
        let o = parse(&["x", "chat", "--transport", "tcp", "--jwt-secret", "S"]);
        assert_eq!(o.url(), "tcp://127.0.0.1:5222");
        assert_eq!(o.auth(), AuthMode::JwtPlain);
        o.validate().unwrap();
        assert_eq!(
            o.client_cfg().target(0).addr,
            "127.0.0.1:5222".parse().unwrap()
        );
        let e = parse(&[
            "x",
            "chat",
            "--transport",
            "tcp",
            "--auth",
            "jwt-cookie",
            "--jwt-secret",
            "S",
        ])
        .validate()
        .unwrap_err();
        assert!(e.contains("--auth jwt-plain"), "{e}");
        let e = parse(&[
            "x",
            "chat",
            "--url",
            "tcp://127.0.0.1:5222",
            "--jwt-secret",
            "S",
        ])
        .validate()
        .unwrap_err();
        assert!(e.contains("--transport tcp"), "{e}");
        assert!(
            parse(&[
                "x",
                "chat",
                "--transport",
                "tcp",
                "--ftw",
                "--jwt-secret",
                "S"
            ])
            .validate()
            .is_err()
        );
        // the shipped TCP scenario file
        let a = toml_to_args(include_str!("../scenarios/tcp-chat.toml"), &[]).unwrap();
        let o = parse(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.transport, Transport::Tcp);
        o.validate().unwrap();
    }

    #[test]
    fn tls_transports() {
        let ca = crate::tls::tests::ca_file("opts.pem");
        let ca = ca.to_str().unwrap();
        let parse = |args: &[&str]| {
            let mut all = vec!["x", "login", "--jwt-secret", "S"];
            all.extend_from_slice(args);
            let cli = Cli::try_parse_from(all).unwrap();
            let Command::Login(o) = cli.cmd else { panic!() };
            o
        };
        for (t, url, auth) in [
            ("wss", "wss://127.0.0.1:8443/xmpp", AuthMode::JwtCookie),
            ("starttls", "tcp://127.0.0.1:5222", AuthMode::JwtPlain),
            ("tls", "tls://127.0.0.1:5223", AuthMode::JwtPlain),
        ] {
            // the defaults, and --ca required
            let o = parse(&["--transport", t]);
            assert_eq!((o.url().as_str(), o.auth()), (url, auth), "{t}");
            let e = o.validate().unwrap_err();
            assert!(
                e.contains("pass --ca FILE") && e.contains("--domain localhost"),
                "{e}"
            );
            let o = parse(&["--transport", t, "--ca", ca]);
            o.validate().unwrap();
            assert_eq!(o.tls_resumption, TlsResumption::On);
            let cfg = o.client_cfg();
            assert_eq!(cfg.tls.as_ref().unwrap().resumption, TlsResumption::On);
            // --tls-resumption off
            let o = parse(&["--transport", t, "--ca", ca, "--tls-resumption", "off"]);
            o.validate().unwrap();
            assert_eq!(
                o.client_cfg().tls.as_ref().unwrap().resumption,
                TlsResumption::Off
            );
            // --tls-insecure instead of --ca, not both
            parse(&["--transport", t, "--tls-insecure"])
                .validate()
                .unwrap();
            let e = parse(&["--transport", t, "--tls-insecure", "--ca", ca])
                .validate()
                .unwrap_err();
            assert!(e.contains("exclude"), "{e}");
            // a CA file that cannot be read
            let e = parse(&["--transport", t, "--ca", "/nonexistent/ca.pem"])
                .validate()
                .unwrap_err();
            assert!(e.contains("/nonexistent/ca.pem"), "{e}");
            // the loopback check holds on every scheme
            let far = url.replace("127.0.0.1", "10.1.2.3");
            assert!(
                parse(&["--transport", t, "--ca", ca, "--url", &far])
                    .validate()
                    .is_err()
            );
        }
        assert!(
            Cli::try_parse_from(["x", "login", "--tls-resumption", "maybe"]).is_err(),
            "on or off"
        );
        // cookie auth: only where there is an HTTP upgrade
        for t in ["starttls", "tls"] {
            let e = parse(&["--transport", t, "--ca", ca, "--auth", "jwt-cookie"])
                .validate()
                .unwrap_err();
            assert!(e.contains("--auth jwt-plain"), "{e}");
        }
        parse(&["--transport", "wss", "--ca", ca, "--auth", "jwt-cookie"])
            .validate()
            .unwrap();
        // --ftw: ws and wss (Socket.IO over the same TLS WebSocket), not the TCP ones
        parse(&["--transport", "wss", "--ca", ca, "--ftw"])
            .validate()
            .unwrap();
        for t in ["tcp", "starttls", "tls"] {
            let e = parse(&["--transport", t, "--ca", ca, "--ftw"])
                .validate()
                .unwrap_err();
            assert!(e.contains("--ftw") && e.contains("ws or wss"), "{t}: {e}");
        }
        // --ca and --tls-insecure mean nothing without TLS: refused
        for t in ["ws", "tcp"] {
            let e = parse(&["--transport", t, "--ca", ca])
                .validate()
                .unwrap_err();
            assert!(e.contains("wss, starttls and tls"), "{e}");
            assert!(
                parse(&["--transport", t, "--tls-insecure"])
                    .validate()
                    .is_err()
            );
            let o = parse(&["--transport", t]);
            o.validate().unwrap();
            assert!(o.client_cfg().tls.is_none());
        }
        // a scenario file carries the options
        let a = toml_to_args(
            &format!("scenario = \"chat\"\ntransport = \"tls\"\nurl = \"tls://127.0.0.1:5223\"\nca = \"{ca}\"\ntls_resumption = \"off\"\njwt_secret = \"S\"\n"),
            &[],
        )
        .unwrap();
        let cli = Cli::try_parse_from(&a).unwrap();
        let Command::Chat(o) = cli.cmd else { panic!() };
        assert_eq!(
            (o.transport, o.tls_resumption),
            (Transport::Tls, TlsResumption::Off)
        );
        o.validate().unwrap();
    }

    #[test]
    fn several_urls() {
        let parse = |args: &[&str]| {
            let mut all = vec!["x", "hold", "--jwt-secret", "S"];
            all.extend_from_slice(args);
            let cli = Cli::try_parse_from(all).unwrap();
            let Command::Hold(o) = cli.cmd else { panic!() };
            o
        };
        let (a, b) = ("ws://127.0.0.1:8082/xmpp", "ws://127.0.0.2:9082/xmpp");
        // repeated, comma-separated, or both: the same list, in order
        for args in [
            vec!["--url", a, "--url", b],
            vec!["--url", &format!("{a},{b}")],
            vec![&format!("--url={a},{b}")],
        ] {
            let o = parse(&args.iter().map(|s| s.as_ref()).collect::<Vec<&str>>());
            assert_eq!(o.urls(), [a, b]);
            assert_eq!(o.url(), format!("{a},{b}"));
            o.validate().unwrap();
            let cfg = o.client_cfg();
            let addrs: Vec<String> = cfg.targets.iter().map(|t| t.addr.to_string()).collect();
            assert_eq!(addrs, ["127.0.0.1:8082", "127.0.0.2:9082"]);
            // session i goes to URL i mod 2
            assert_eq!(cfg.target(0).url, a);
            assert_eq!(cfg.target(1).url, b);
            assert_eq!(cfg.target(38).url, a);
            assert_eq!(cfg.target(39).url, b);
        }
        // one URL, or none: as before
        let o = parse(&["--url", a]);
        assert_eq!((o.urls(), o.url()), (vec![a.to_string()], a.to_string()));
        assert!((0..5).all(|i| o.client_cfg().target(i).url == a));
        assert_eq!(parse(&[]).url(), "ws://127.0.0.1:8082/xmpp");
        // a URL that does not fit the transport is named
        let e = parse(&["--url", a, "--url", "tcp://127.0.0.1:5222"])
            .validate()
            .unwrap_err();
        assert!(
            e.contains("tcp://127.0.0.1:5222") && e.contains("--transport tcp"),
            "{e}"
        );
        let e = parse(&[
            "--transport",
            "tcp",
            "--url",
            "tcp://127.0.0.1:5222,ws://127.0.0.1:1/x",
        ])
        .validate()
        .unwrap_err();
        assert!(e.contains("ws://127.0.0.1:1/x"), "{e}");
        // every URL must be loopback, and the error names the one that is not
        for far in ["ws://10.1.2.3:8082/xmpp", "ws://example.com:8082/xmpp"] {
            let e = parse(&["--url", a, "--url", far]).validate().unwrap_err();
            assert!(e.contains(far), "{e}");
        }
        // TLS: each URL needs the TLS scheme
        let e = parse(&[
            "--transport",
            "tls",
            "--tls-insecure",
            "--url",
            "tls://127.0.0.1:5223,tcp://127.0.0.1:5222",
        ])
        .validate()
        .unwrap_err();
        assert!(e.contains("tcp://127.0.0.1:5222"), "{e}");
        parse(&[
            "--transport",
            "tls",
            "--tls-insecure",
            "--url",
            "tls://127.0.0.1:5223,tls://127.0.0.2:5223",
        ])
        .validate()
        .unwrap();
        // the same URL twice would not spread anything
        let e = parse(&["--url", a, "--url", a]).validate().unwrap_err();
        assert!(e.contains("twice") && e.contains(a), "{e}");
        // an empty item is refused too (e.g. a trailing comma)
        assert!(parse(&["--url", &format!("{a},")]).validate().is_err());
        // a scenario file's array of URLs
        let args = toml_to_args(
            &format!("scenario = \"login\"\nurl = [\"{a}\", \"{b}\"]\njwt_secret = \"S\"\n"),
            &[],
        )
        .unwrap();
        let Command::Login(o) = Cli::try_parse_from(&args).unwrap().cmd else {
            panic!()
        };
        assert_eq!(o.urls(), [a, b]);
        // the options travel to `hold --procs` workers as JSON
        let o = parse(&["--url", a, "--url", b]);
        let back: Opts = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back.urls(), [a, b]);
    }

    #[test]
    fn cli_spelling() {
        let cli = Cli::try_parse_from([
            "x",
            "chat",
            "--url",
            "ws://127.0.0.1:8082/xmpp",
            "--domain",
            "d",
            "--auth",
            "plain",
            "--jwt-secret",
            "s",
            "--password",
            "p",
            "--users-prefix",
            "u",
            "--sessions",
            "5",
            "--rate",
            "10",
            "--duration",
            "2",
            "--rooms",
            "1",
            "--occupants",
            "2",
            "--server-pid",
            "1",
            "--seed",
            "7",
            "--json",
            "/tmp/x.json",
        ])
        .unwrap();
        let Command::Chat(o) = cli.cmd else { panic!() };
        assert_eq!(o.auth(), AuthMode::Plain);
        assert_eq!(o.transport, Transport::Ws);
        assert_eq!(o.seed, 7);
        o.validate().unwrap();
    }
}
