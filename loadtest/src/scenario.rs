//! Scenarios: login, hold, chat, muc (capacity steps these in capacity.rs).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};

use crate::client::{self, ClientCfg};
use crate::opts::{Opts, Scenario};
use crate::session::{self, Cmd, Event, Handle, SessionCtx};
use crate::stats::{
    self, LatHist, LatencyMs, LoginSummary, ProcSample, Reasons, Report, RssBytes, Stats, UrlCount,
};

pub fn progress(opts: &Opts, len: u64, msg: &str) -> ProgressBar {
    use std::io::IsTerminal;
    if opts.no_progress || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(msg.to_string());
    pb
}

fn server_sample(opts: &Opts) -> Option<ProcSample> {
    stats::sample_procs(&opts.server_pid)
}

fn run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{:08x}", (t ^ (u64::from(std::process::id()) << 32)) as u32)
}

/// Logged-in sessions (indexed by position in the requested range) and the login figures.
pub struct Logged {
    pub handles: Vec<Option<Handle>>,
    /// Sessions and successful logins per `--url`.
    pub per_url: Vec<UrlCount>,
    pub summary: LoginSummary,
    pub hist: hdrhistogram::Histogram<u64>,
}

/// Log in sessions `first .. first+count` (users `first+1 ..`) at `rate`/s with at most
/// `concurrency` in flight; each successful session starts its run loop immediately.
pub async fn login_all(
    cfg: &Arc<ClientCfg>,
    first: usize,
    count: usize,
    rate: f64,
    concurrency: usize,
    ctx: &Arc<SessionCtx>,
    pb: &ProgressBar,
) -> Logged {
    let sem = Arc::new(Semaphore::new(concurrency));
    let failures = Arc::new(Reasons::default());
    let hist = Arc::new(LatHist::default());
    let start = Instant::now();
    let last_done_ns = Arc::new(AtomicU64::new(0));
    let shown = Arc::new(AtomicBool::new(false));
    let tls0 = cfg.tls.as_ref().map(|t| t.counts()).unwrap_or_default();
    let mut joins = Vec::with_capacity(count);
    let mut i = 0usize;
    while i < count {
        let due = ((start.elapsed().as_secs_f64() * rate) as usize + 1).min(count);
        while i < due {
            let permit = sem.clone().acquire_owned().await.expect("semaphore open");
            let idx = first + i;
            let (cfg, ctx, failures, hist, last, shown, pb) = (
                cfg.clone(),
                ctx.clone(),
                failures.clone(),
                hist.clone(),
                last_done_ns.clone(),
                shown.clone(),
                pb.clone(),
            );
            joins.push(tokio::spawn(async move {
                let r = client::login(&cfg, cfg.target(idx), idx + 1, cfg.src_addr(idx)).await;
                drop(permit);
                pb.inc(1);
                match r {
                    Ok(s) => {
                        // The window ends at the last *successful* login: a failure that
                        // only ends at --timeout must not stretch it.
                        last.fetch_max(start.elapsed().as_nanos() as u64, Relaxed);
                        hist.record_us(idx, s.login_time.as_micros() as u64);
                        Some(session::spawn(idx, s.conn, s.jid, ctx))
                    }
                    Err(e) => {
                        if !shown.swap(true, Relaxed) {
                            let d: String = e.detail.chars().take(300).collect();
                            pb.suspend(|| {
                                eprintln!(
                                    "first login failure ({}): {} {}",
                                    cfg.user(idx + 1),
                                    e.reason,
                                    d
                                )
                            });
                        }
                        failures.add(&e.reason);
                        None
                    }
                }
            }));
            i += 1;
        }
        if i < count {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut handles = Vec::with_capacity(count);
    for j in joins {
        handles.push(j.await.unwrap_or(None));
    }
    let ok = handles.iter().filter(|h| h.is_some()).count() as u64;
    let mut per_url: Vec<UrlCount> = cfg
        .targets
        .iter()
        .map(|t| UrlCount {
            url: t.url.clone(),
            ..UrlCount::default()
        })
        .collect();
    for (i, h) in handles.iter().enumerate() {
        let u = &mut per_url[client::url_index(first + i, cfg.targets.len())];
        u.sessions += 1;
        u.logins_ok += u64::from(h.is_some());
    }
    let tls = cfg.tls.as_ref().map(|t| t.counts()).unwrap_or_default();
    let window_s = (last_done_ns.load(Relaxed) as f64 / 1e9).max(1e-9);
    let h = hist.merged();
    Logged {
        summary: LoginSummary {
            attempted: count as u64,
            ok,
            failed: count as u64 - ok,
            per_sec: ok as f64 / window_s,
            window_s,
            latency_ms: LatencyMs::from_hist(&h),
            failures: failures.snapshot(),
            tls_full: tls.full - tls0.full,
            tls_resumed: tls.resumed - tls0.resumed,
        },
        handles,
        per_url,
        hist: h,
    }
}

/// Ask every session to close and wait (bounded) for their tasks.
pub async fn close_all(handles: Vec<Option<Handle>>) {
    let mut tasks = Vec::with_capacity(handles.len());
    for h in handles.into_iter().flatten() {
        let _ = h.tx.send(Cmd::Close);
        tasks.push(h.task);
    }
    let all = futures_util::future::join_all(tasks);
    let _ = tokio::time::timeout(Duration::from_secs(15), all).await;
}

fn base_report(scn: Scenario, opts: &Opts, sessions: usize) -> Report {
    Report {
        scenario: scn.name().to_string(),
        sessions: sessions as u64,
        transport: opts.transport.name().to_string(),
        tls_resumption: opts
            .transport
            .is_tls()
            .then(|| opts.tls_resumption.name().to_string()),
        url: opts.url(),
        seed: opts.seed,
        offered_rate: opts.rate,
        duration_s: opts.duration,
        procs: 1,
        ..Report::default()
    }
}

fn fill_server(r: &mut Report, before: Option<ProcSample>, after: Option<ProcSample>) {
    if let (Some(b), Some(a)) = (before, after) {
        let cpu = a.cpu_s - b.cpu_s;
        r.server_cpu_s = Some(cpu);
        r.per_server_core_sec = if cpu > 0.0 {
            Some(r.delivered as f64 / cpu)
        } else {
            None
        };
        r.server_rss_bytes = RssBytes {
            before: Some(b.rss_bytes),
            after: Some(a.rss_bytes),
        };
    }
}

// ---------------------------------------------------------------- login

pub async fn run_login(opts: &Opts) -> Report {
    let cfg = opts.client_cfg();
    let n = opts.sessions;
    let stats = Arc::new(Stats::new(run_id(), 0));
    let ctx = Arc::new(SessionCtx {
        stats: stats.clone(),
        events: None,
    });
    let before = server_sample(opts);
    let pb = progress(opts, n as u64, "login");
    let logged = login_all(&cfg, 0, n, opts.rate, opts.login_concurrency, &ctx, &pb).await;
    let after = server_sample(opts);
    pb.finish_and_clear();
    close_all(logged.handles).await;

    let mut r = base_report(Scenario::Login, opts, n);
    r.per_url = logged.per_url;
    let s = logged.summary;
    r.sent = s.attempted;
    r.delivered = s.ok;
    r.delivered_per_sec = s.per_sec;
    r.logins_per_sec = s.per_sec;
    r.measured_s = s.window_s;
    r.latency_ms = s.latency_ms;
    r.error_reasons = stats.errors.snapshot();
    r.errors = s.failed + stats.errors.total();
    r.login = s;
    fill_server(&mut r, before, after);
    r
}

// ---------------------------------------------------------------- pacing

struct Paced {
    sent: u64,
    /// seq numbers whose dispatch failed (the session was gone): not counted as sent.
    undispatched: Vec<usize>,
    lag_ms_max: f64,
    start_ns: u64,
    end_ns: u64,
}

/// Offer `total` messages at `rate`/s, paced on a 1 ms tick (never a burst bigger than one
/// tick's worth). Message `seq` is stamped with its scheduled time, so a lagging client shows
/// up as latency (no coordinated omission) and in `lag_ms_max`.
async fn pace(
    stats: &Stats,
    rate: f64,
    total: usize,
    handles: &[Option<Handle>],
    pb: &ProgressBar,
    mut make: impl FnMut(usize, u64) -> (usize, String),
) -> Paced {
    let start_ns = stats.now_ns();
    let period_ns = 1e9 / rate;
    let mut seq = 0usize;
    let mut lag_ms_max: f64 = 0.0;
    let mut undispatched = Vec::new();
    while seq < total {
        let now = stats.now_ns();
        let due = ((((now - start_ns) as f64) / period_ns) as usize + 1).min(total);
        if seq < due {
            let first_ts = start_ns + (seq as f64 * period_ns) as u64;
            lag_ms_max = lag_ms_max.max(now.saturating_sub(first_ts) as f64 / 1e6);
        }
        while seq < due {
            let ts = start_ns + (seq as f64 * period_ns) as u64;
            let (who, stanza) = make(seq, ts);
            let ok = match &handles[who] {
                Some(h) => h.tx.send(Cmd::Send(stanza)).is_ok(),
                None => false,
            };
            if !ok {
                stats.errors.add("dispatch:session-gone");
                undispatched.push(seq);
            }
            seq += 1;
        }
        pb.set_position(seq as u64);
        if seq < total {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Paced {
        sent: (total - undispatched.len()) as u64,
        undispatched,
        lag_ms_max,
        start_ns,
        end_ns: stats.now_ns(),
    }
}

/// Wait until `expected` deliveries arrived or `drain` seconds passed after the last send.
async fn drain(stats: &Stats, expected: u64, drain_s: f64) {
    let end = Instant::now() + Duration::from_secs_f64(drain_s);
    while stats.received.load(Relaxed) < expected && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn body(run: &str, seq: usize, ts: u64, pad: &str) -> String {
    let head = format!("lt {run} {seq} {ts} ");
    let n = pad.len().saturating_sub(head.len()).max(1);
    format!("{head}{}", &pad[..n])
}

/// lost / duplicated / delivered from per-seq receive counts and expected counts.
fn tally(stats: &Stats, sent_seqs: impl Iterator<Item = (usize, u32)>) -> (u64, u64, u64, u64) {
    let (mut expected, mut delivered, mut lost, mut dup) = (0u64, 0u64, 0u64, 0u64);
    for (seq, exp) in sent_seqs {
        let got = stats.recv[seq].load(Relaxed);
        expected += u64::from(exp);
        delivered += u64::from(got.min(exp));
        lost += u64::from(exp.saturating_sub(got));
        dup += u64::from(got.saturating_sub(exp));
    }
    (expected, delivered, lost, dup)
}

fn finish_msg_report(r: &mut Report, stats: &Stats, p: &Paced, drain_end_ns: u64) {
    let last = stats
        .last_delivery_ns
        .load(Relaxed)
        .max(p.end_ns)
        .min(drain_end_ns);
    r.measured_s = (last.saturating_sub(p.start_ns) as f64 / 1e9).max(1e-9);
    r.delivered_per_sec = r.delivered as f64 / r.measured_s;
    r.latency_ms = LatencyMs::from_hist(&stats.lat.merged());
    r.foreign = stats.foreign.load(Relaxed);
    r.pacer_lag_ms_max = p.lag_ms_max;
    r.error_reasons = stats.errors.snapshot();
    r.errors = stats.errors.total() + r.login.failed;
}

// ---------------------------------------------------------------- chat

/// Who may send to whom in `chat`. With several `--url`s the sessions are on separate
/// servers (no cluster yet: a message to a user of another node cannot be delivered), so a
/// sender only writes to a peer on its own URL; with one URL everyone is a peer of
/// everyone, and the random choices are the same as they always were.
struct ChatPeers {
    /// Logged-in sessions with at least one other logged-in session on their URL.
    senders: Vec<usize>,
    /// Logged-in sessions per URL (`cross`: the sessions of every other URL).
    groups: Vec<Vec<usize>>,
    cross: bool,
}

impl ChatPeers {
    #[cfg(test)]
    fn new(alive: &[usize], urls: usize) -> Self {
        Self::with(alive, urls, false)
    }

    /// `cross`: each sender's peers are the sessions of the other URLs.
    fn with(alive: &[usize], urls: usize, cross: bool) -> Self {
        let urls = urls.max(1);
        let mut groups = vec![Vec::new(); urls];
        for &i in alive {
            groups[client::url_index(i, urls)].push(i);
        }
        let groups = if cross {
            (0..urls)
                .map(|u| {
                    (0..urls)
                        .filter(|&o| o != u)
                        .flat_map(|o| groups[o].iter().copied())
                        .collect()
                })
                .collect()
        } else {
            groups
        };
        let need = if cross { 1 } else { 2 };
        let senders = alive
            .iter()
            .copied()
            .filter(|&i| groups[client::url_index(i, urls)].len() >= need)
            .collect();
        ChatPeers {
            senders,
            groups,
            cross,
        }
    }

    /// A random sender and a random other session on the sender's URL (`cross`: on
    /// another URL).
    fn pick(&self, rng: &mut StdRng) -> (usize, usize) {
        let a = self.senders[rng.random_range(0..self.senders.len())];
        let g = &self.groups[client::url_index(a, self.groups.len())];
        if self.cross {
            return (a, g[rng.random_range(0..g.len())]);
        }
        let mut b = g[rng.random_range(0..g.len() - 1)];
        if b == a {
            b = g[g.len() - 1];
        }
        (a, b)
    }
}

pub async fn run_chat(opts: &Opts) -> Report {
    let cfg = opts.client_cfg();
    let n = opts.sessions;
    let total = (opts.rate * opts.duration).round().max(1.0) as usize;
    let stats = Arc::new(Stats::new(run_id(), total));
    let ctx = Arc::new(SessionCtx {
        stats: stats.clone(),
        events: None,
    });
    let pb = progress(opts, n as u64, "login");
    let logged = login_all(
        &cfg,
        0,
        n,
        opts.login_rate,
        opts.login_concurrency,
        &ctx,
        &pb,
    )
    .await;
    pb.finish_and_clear();
    let mut r = base_report(Scenario::Chat, opts, n);
    r.logins_per_sec = logged.summary.per_sec;
    r.login = logged.summary.clone();
    r.per_url = logged.per_url.clone();
    let alive: Vec<usize> = (0..n).filter(|&i| logged.handles[i].is_some()).collect();
    let peers = ChatPeers::with(&alive, cfg.targets.len(), opts.pairing == "cross");
    if peers.senders.is_empty() {
        eprintln!(
            "chat: fewer than 2 sessions logged in{}; nothing to send",
            if cfg.targets.len() > 1 {
                " on every URL"
            } else {
                ""
            }
        );
        r.errors = r.login.failed;
        close_all(logged.handles).await;
        return r;
    }
    let jids: Vec<String> = logged
        .handles
        .iter()
        .map(|h| h.as_ref().map(|h| h.jid.clone()).unwrap_or_default())
        .collect();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let pad = "x".repeat(opts.body_bytes.max(40));
    let run = stats.run_id.clone();
    tokio::time::sleep(Duration::from_secs_f64(opts.settle)).await;

    let before = server_sample(opts);
    let pb = progress(opts, total as u64, "chat");
    let p = pace(&stats, opts.rate, total, &logged.handles, &pb, |seq, ts| {
        let (a, b) = peers.pick(&mut rng);
                let s = if opts.ftw {
            // The same message as an XMPP-FTW event (the body has no JSON-special characters).
            format!(
                "42[\"xmpp.chat.message\",{{\"to\":\"{}\",\"content\":\"{}\"}}]",
                jids[b],
                body(&run, seq, ts, &pad)
            )
        } else {
            format!(
                "<message xmlns='jabber:client' to='{}' type='chat' id='lt{seq}'><body>{}</body></message>",
                jids[b],
                body(&run, seq, ts, &pad)
            )
        };
        (a, s)
    })
    .await;
    pb.set_message("drain");
    drain(&stats, p.sent, opts.drain).await;
    let drain_end = stats.now_ns();
    let after = server_sample(opts);
    pb.finish_and_clear();

    r.sent = p.sent;
    let mut skip = p.undispatched.iter().copied().peekable();
    let seqs = (0..total).filter(|s| {
        if skip.peek() == Some(s) {
            skip.next();
            false
        } else {
            true
        }
    });
    let (expected, delivered, lost, dup) = tally(&stats, seqs.map(|s| (s, 1)));
    r.expected = expected;
    r.delivered = delivered;
    r.lost = lost;
    r.duplicated = dup;
    finish_msg_report(&mut r, &stats, &p, drain_end);
    fill_server(&mut r, before, after);
    close_all(logged.handles).await;
    r
}

// ---------------------------------------------------------------- muc

/// Which sessions are the occupants of which room. With one URL room `r` holds sessions
/// `r*m .. (r+1)*m`. With `u` URLs (separate servers, so a room lives on one of them) room
/// `r` is on URL `r mod u` and holds the next `m` sessions of that URL, so every occupant
/// of a room is on the room's URL while sessions still go to URLs round-robin by index
/// (`--rooms` must be a multiple of `u`, checked before the run).
#[derive(Clone, Copy, Debug)]
pub struct MucLayout {
    pub occupants: usize,
    pub urls: usize,
}

impl MucLayout {
    /// Session index of occupant `j` of room `r`.
    pub fn occupant(self, r: usize, j: usize) -> usize {
        let u = self.urls.max(1);
        r % u + u * ((r / u) * self.occupants + j)
    }

    /// The room of session `idx`.
    pub fn room_of(self, idx: usize) -> usize {
        let u = self.urls.max(1);
        (idx / u / self.occupants) * u + idx % u
    }
}

fn uuid_from(rng: &mut StdRng) -> String {
    let a: u64 = rng.random();
    let b: u64 = rng.random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Wait for join events of `want` sessions; returns the ones that joined (and whether the
/// room was created by that join).
async fn await_joins(
    events: &mut mpsc::UnboundedReceiver<Event>,
    want: &[usize],
    deadline: tokio::time::Instant,
    stats: &Stats,
) -> BTreeMap<usize, bool> {
    let mut pending: std::collections::BTreeSet<usize> = want.iter().copied().collect();
    let mut joined = BTreeMap::new();
    while !pending.is_empty() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Event::Joined { idx, created })) => {
                if pending.remove(&idx) {
                    joined.insert(idx, created);
                }
            }
            Ok(Some(Event::JoinFailed { idx, reason })) => {
                if pending.remove(&idx) {
                    stats.errors.add(&format!("muc-join:{reason}"));
                }
            }
            Ok(Some(Event::Iq { .. })) => {}
        }
    }
    for _ in &pending {
        stats.errors.add("muc-join:timeout");
    }
    joined
}

pub async fn run_muc(opts: &Opts) -> Report {
    let cfg = opts.client_cfg();
    let (k, m) = (opts.rooms.max(1), opts.occupants.max(1));
    let n = k * m;
    let total = (opts.rate * opts.duration).round().max(1.0) as usize;
    let stats = Arc::new(Stats::new(run_id(), total));
    let (etx, mut erx) = mpsc::unbounded_channel();
    let ctx = Arc::new(SessionCtx {
        stats: stats.clone(),
        events: Some(etx),
    });
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let service = opts.muc_service();
    let rooms: Vec<String> = (0..k)
        .map(|_| format!("group-{}@{service}", uuid_from(&mut rng)))
        .collect();

    let pb = progress(opts, n as u64, "login");
    let logged = login_all(
        &cfg,
        0,
        n,
        opts.login_rate,
        opts.login_concurrency,
        &ctx,
        &pb,
    )
    .await;
    pb.finish_and_clear();
    let mut r = base_report(Scenario::Muc, opts, n);
    r.rooms = Some(k as u64);
    r.occupants = Some(m as u64);
    r.logins_per_sec = logged.summary.per_sec;
    r.login = logged.summary.clone();
    r.per_url = logged.per_url;
    let handles = logged.handles;
    let layout = MucLayout {
        occupants: m,
        urls: if opts.rooms_across_urls {
            1
        } else {
            cfg.targets.len()
        },
    };

    let join = |idx: usize| -> bool {
        let room = &rooms[layout.room_of(idx)];
        let nick = cfg.user(idx + 1);
        let s = format!(
            "<presence xmlns='jabber:client' to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
        );
        handles[idx]
            .as_ref()
            .is_some_and(|h| h.tx.send(Cmd::Send(s)).is_ok())
    };
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs_f64(opts.timeout.max(5.0) * 4.0);
    // 1. the first logged-in occupant of each room creates it (instant room if locked)
    let owners: Vec<usize> = (0..k)
        .filter_map(|r| {
            (0..m)
                .map(|j| layout.occupant(r, j))
                .find(|&i| handles[i].is_some())
        })
        .collect();
    let owners: Vec<usize> = owners.into_iter().filter(|&i| join(i)).collect();
    let owner_joined = await_joins(&mut erx, &owners, deadline, &stats).await;
    let mut cfg_pending = std::collections::BTreeSet::new();
    for (&idx, &created) in &owner_joined {
        if created {
            let room = &rooms[layout.room_of(idx)];
            let s = format!(
                "<iq xmlns='jabber:client' type='set' to='{room}' id='cfg{idx}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>"
            );
            if let Some(h) = &handles[idx]
                && h.tx.send(Cmd::Send(s)).is_ok()
            {
                cfg_pending.insert(format!("cfg{idx}"));
            }
        }
    }
    while !cfg_pending.is_empty() {
        match tokio::time::timeout_at(deadline, erx.recv()).await {
            Ok(Some(Event::Iq { id, ok, .. })) => {
                if cfg_pending.remove(&id) && !ok {
                    stats.errors.add("muc-config:error");
                }
            }
            Ok(Some(_)) => {}
            _ => {
                stats.errors.add("muc-config:timeout");
                break;
            }
        }
    }
    // 2. everyone else joins, paced at the login rate
    let pb = progress(opts, n as u64, "join");
    let start = Instant::now();
    let mut others = Vec::new();
    let mut sent_joins = 0usize;
    let mut room_ok = vec![false; k];
    for &o in owner_joined.keys() {
        room_ok[layout.room_of(o)] = true;
    }
    let owner_set: std::collections::BTreeSet<usize> = owners.iter().copied().collect();
    for (i, h) in handles.iter().enumerate() {
        // skip failed logins, the owners, and rooms that could not be created
        if h.is_none() || owner_set.contains(&i) || !room_ok[layout.room_of(i)] {
            continue;
        }
        while (start.elapsed().as_secs_f64() * opts.login_rate) < sent_joins as f64 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if join(i) {
            others.push(i);
        }
        sent_joins += 1;
        pb.inc(1);
    }
    let joined_others = await_joins(&mut erx, &others, deadline, &stats).await;
    pb.finish_and_clear();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for &i in owner_joined.keys().chain(joined_others.keys()) {
        members[layout.room_of(i)].push(i);
    }
    for v in &mut members {
        v.sort_unstable();
    }
    let joined_total: usize = members.iter().map(Vec::len).sum();
    let senders_per_room = opts.senders.unwrap_or(m).max(1);
    let senders: Vec<Vec<usize>> = members
        .iter()
        .map(|v| v.iter().copied().take(senders_per_room).collect())
        .collect();
    let active_rooms: Vec<usize> = (0..k).filter(|&r| !senders[r].is_empty()).collect();
    // let joins and their presence broadcasts settle before measuring
    tokio::time::sleep(Duration::from_secs_f64(opts.settle)).await;
    if active_rooms.is_empty() {
        eprintln!("muc: no room could be joined");
        r.errors = stats.errors.total() + r.login.failed;
        r.error_reasons = stats.errors.snapshot();
        close_all(handles).await;
        return r;
    }
    eprintln!(
        "muc: {joined_total}/{n} occupants joined {} rooms",
        active_rooms.len()
    );

    let pad = "x".repeat(opts.body_bytes.max(40));
    let run = stats.run_id.clone();
    let mut expected_of = vec![0u32; total];
    let before = server_sample(opts);
    let pb = progress(opts, total as u64, "muc");
    let p = pace(&stats, opts.rate, total, &handles, &pb, |seq, ts| {
        let room = active_rooms[rng.random_range(0..active_rooms.len())];
        let who = senders[room][rng.random_range(0..senders[room].len())];
        expected_of[seq] = members[room].len() as u32;
        let s = format!(
            "<message xmlns='jabber:client' to='{}' type='groupchat' id='lt{seq}'><body>{}</body></message>",
            rooms[room],
            body(&run, seq, ts, &pad)
        );
        (who, s)
    })
    .await;
    for &s in &p.undispatched {
        expected_of[s] = 0;
    }
    let expected_total: u64 = expected_of.iter().map(|&e| u64::from(e)).sum();
    pb.set_message("drain");
    drain(&stats, expected_total, opts.drain).await;
    let drain_end = stats.now_ns();
    let after = server_sample(opts);
    pb.finish_and_clear();

    r.sent = p.sent;
    let (expected, delivered, lost, dup) =
        tally(&stats, expected_of.iter().enumerate().map(|(s, &e)| (s, e)));
    r.expected = expected;
    r.delivered = delivered;
    r.lost = lost;
    r.duplicated = dup;
    finish_msg_report(&mut r, &stats, &p, drain_end);
    fill_server(&mut r, before, after);
    close_all(handles).await;
    r
}

// ---------------------------------------------------------------- hold

/// What one hold process reports (in-process or a worker).
#[derive(Serialize, Deserialize, Default, Debug)]
pub struct HoldPart {
    pub login: LoginSummary,
    #[serde(default)]
    pub per_url: Vec<UrlCount>,
    pub hist: Vec<(u64, u64)>,
    pub held_at_end: u64,
    pub errors: BTreeMap<String, u64>,
}

fn hist_pairs(h: &hdrhistogram::Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub async fn run_hold(opts: &Opts) -> Report {
    let n = opts.sessions;
    let procs = opts.procs.max(n.div_ceil(opts.max_per_proc));
    let before = server_sample(opts);
    let t0 = Instant::now();
    let (parts, after) = if procs <= 1 {
        hold_in_process(opts).await
    } else {
        crate::worker::hold_multi(opts, procs).await
    };
    let mut r = base_report(Scenario::Hold, opts, n);
    r.procs = procs as u64;
    r.offered_rate = opts.login_rate;
    let mut hist = stats::new_hist();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut login = LoginSummary::default();
    let mut held = 0u64;
    for p in &parts {
        stats::merge_per_url(&mut r.per_url, &p.per_url);
        for &(v, c) in &p.hist {
            let _ = hist.record_n(v, c);
        }
        for (k, v) in &p.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &p.login.failures {
            *login.failures.entry(k.clone()).or_default() += v;
        }
        login.attempted += p.login.attempted;
        login.ok += p.login.ok;
        login.failed += p.login.failed;
        login.tls_full += p.login.tls_full;
        login.tls_resumed += p.login.tls_resumed;
        login.window_s = login.window_s.max(p.login.window_s);
        held += p.held_at_end;
    }
    login.per_sec = login.ok as f64 / login.window_s.max(1e-9);
    login.latency_ms = LatencyMs::from_hist(&hist);
    r.sent = login.attempted;
    r.delivered = held;
    r.lost = login.ok.saturating_sub(held);
    r.held_sessions = Some(held);
    r.errors = login.failed + errors.values().sum::<u64>();
    r.error_reasons = errors;
    r.logins_per_sec = login.per_sec;
    r.delivered_per_sec = login.per_sec;
    r.latency_ms = login.latency_ms;
    r.measured_s = t0.elapsed().as_secs_f64();
    r.login = login;
    fill_server(&mut r, before, after);
    if let (Some(b), Some(a)) = (before, after)
        && held > 0
    {
        r.bytes_per_session = Some((a.rss_bytes as f64 - b.rss_bytes as f64) / held as f64);
    }
    r
}

/// Log in, hold for --duration, sample the server at the end of the hold, close.
async fn hold_in_process(opts: &Opts) -> (Vec<HoldPart>, Option<ProcSample>) {
    let cfg = opts.client_cfg();
    let stats = Arc::new(Stats::new(run_id(), 0));
    let ctx = Arc::new(SessionCtx {
        stats: stats.clone(),
        events: None,
    });
    let pb = progress(opts, opts.sessions as u64, "login");
    let logged = login_all(
        &cfg,
        0,
        opts.sessions,
        opts.login_rate,
        opts.login_concurrency,
        &ctx,
        &pb,
    )
    .await;
    pb.finish_and_clear();
    eprintln!(
        "hold: {} sessions logged in; holding {} s",
        logged.summary.ok, opts.duration
    );
    hold_sleep(opts).await;
    let after = server_sample(opts);
    let held = logged
        .handles
        .iter()
        .flatten()
        .filter(|h| !h.task.is_finished())
        .count() as u64;
    let part = HoldPart {
        hist: hist_pairs(&logged.hist),
        login: logged.summary,
        per_url: logged.per_url,
        held_at_end: held,
        errors: stats.errors.snapshot(),
    };
    close_all(logged.handles).await;
    (vec![part], after)
}

pub async fn hold_sleep(opts: &Opts) {
    let secs = opts.duration.ceil() as u64;
    let pb = progress(opts, secs, "hold");
    let end = Instant::now() + Duration::from_secs_f64(opts.duration);
    while Instant::now() < end {
        let left = end - Instant::now();
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        pb.inc(1);
    }
    pb.finish_and_clear();
}

/// A worker's part of a multi-process hold: log in `first..first+count`, report, wait for
/// "stop" on stdin (bounded), report again, close.
pub async fn hold_worker_part(opts: &Opts, first: usize, count: usize) -> (Logged, Arc<Stats>) {
    let cfg = opts.client_cfg();
    let stats = Arc::new(Stats::new(run_id(), 0));
    let ctx = Arc::new(SessionCtx {
        stats: stats.clone(),
        events: None,
    });
    let logged = login_all(
        &cfg,
        first,
        count,
        opts.login_rate,
        opts.login_concurrency,
        &ctx,
        &ProgressBar::hidden(),
    )
    .await;
    (logged, stats)
}

pub fn hold_part(logged: &Logged, stats: &Stats) -> HoldPart {
    HoldPart {
        login: logged.summary.clone(),
        per_url: logged.per_url.clone(),
        hist: hist_pairs(&logged.hist),
        held_at_end: logged
            .handles
            .iter()
            .flatten()
            .filter(|h| !h.task.is_finished())
            .count() as u64,
        errors: stats.errors.snapshot(),
    }
}

pub async fn run(scn: Scenario, opts: &Opts) -> Report {
    let cpu0 = stats::self_cpu_s();
    let mut r = match scn {
        Scenario::Login => run_login(opts).await,
        Scenario::Hold => run_hold(opts).await,
        Scenario::Chat => run_chat(opts).await,
        Scenario::Muc => run_muc(opts).await,
    };
    r.client_cpu_s = stats::self_cpu_s() - cpu0;
    if opts.transport.is_tls() {
        r.tls_full = Some(r.login.tls_full);
        r.tls_resumed = Some(r.login.tls_resumed);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_deterministic() {
        let a = uuid_from(&mut StdRng::seed_from_u64(5));
        let b = uuid_from(&mut StdRng::seed_from_u64(5));
        assert_eq!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    /// With several URLs a chat message only goes between sessions of the same URL (the
    /// servers are separate); with one URL the choices are those of before (the same
    /// random draws as the old inline code).
    #[test]
    fn chat_peers_stay_on_their_url() {
        let alive: Vec<usize> = (0..40).filter(|i| i % 7 != 3).collect();
        let peers = ChatPeers::new(&alive, 2);
        let mut rng = StdRng::seed_from_u64(9);
        let mut per_url = [0usize; 2];
        for _ in 0..10_000 {
            let (a, b) = peers.pick(&mut rng);
            assert_ne!(a, b);
            assert!(alive.contains(&a) && alive.contains(&b));
            assert_eq!(client::url_index(a, 2), client::url_index(b, 2));
            per_url[client::url_index(a, 2)] += 1;
        }
        assert!(per_url.iter().all(|&c| c > 4000), "{per_url:?}");
        // a URL with a single logged-in session has no sender
        let peers = ChatPeers::new(&[0, 1, 2, 4], 2);
        assert_eq!(peers.senders, [0, 2, 4]);
        assert!(ChatPeers::new(&[0, 1], 2).senders.is_empty());
        // one URL: the draws of the old code
        let cross = ChatPeers::with(&alive, 2, true);
        for _ in 0..1000 {
            let (a, b) = cross.pick(&mut rng);
            assert_ne!(client::url_index(a, 2), client::url_index(b, 2));
        }
        let peers = ChatPeers::new(&alive, 1);
        let (mut r1, mut r2) = (StdRng::seed_from_u64(3), StdRng::seed_from_u64(3));
        for _ in 0..1000 {
            let a = alive[r2.random_range(0..alive.len())];
            let mut b = alive[r2.random_range(0..alive.len() - 1)];
            if b == a {
                b = alive[alive.len() - 1];
            }
            assert_eq!(peers.pick(&mut r1), (a, b));
        }
    }

    /// Each room's occupants are on one URL, every session is in exactly one room, and
    /// with one URL room r is sessions r*m..(r+1)*m as before.
    #[test]
    fn muc_rooms_stay_on_their_url() {
        for (k, m, u) in [(4, 5, 1), (4, 5, 2), (6, 3, 3), (2, 1, 2), (8, 10, 4)] {
            let l = MucLayout {
                occupants: m,
                urls: u,
            };
            let mut seen = vec![false; k * m];
            for r in 0..k {
                for j in 0..m {
                    let i = l.occupant(r, j);
                    assert!(i < k * m && !seen[i], "k {k} m {m} u {u}");
                    seen[i] = true;
                    assert_eq!(l.room_of(i), r);
                    assert_eq!(client::url_index(i, u), r % u);
                    if u == 1 {
                        assert_eq!(i, r * m + j);
                    }
                }
            }
        }
    }

    #[test]
    fn per_url_merges_by_url() {
        let c = |url: &str, sessions, logins_ok| UrlCount {
            url: url.into(),
            sessions,
            logins_ok,
        };
        let mut acc = Vec::new();
        stats::merge_per_url(&mut acc, &[c("a", 7, 7), c("b", 7, 6)]);
        stats::merge_per_url(&mut acc, &[c("a", 7, 5), c("b", 6, 6)]);
        assert_eq!(acc, [c("a", 14, 12), c("b", 13, 12)]);
    }

    #[test]
    fn body_size() {
        let pad = "x".repeat(64);
        let b = body("abcd1234", 12, 123456789, &pad);
        assert_eq!(b.len(), 64);
        assert!(b.starts_with("lt abcd1234 12 123456789 "));
    }
}
