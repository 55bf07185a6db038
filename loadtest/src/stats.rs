//! Counters, latency histograms, server /proc sampling and the report (human + JSON).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

const SHARDS: usize = 64;
/// Histograms count microseconds from 1 us to 1 hour with 3 significant figures.
const HIST_MAX_US: u64 = 3_600_000_000;

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

/// A latency histogram that many tasks record into (sharded mutexes, merged at the end).
pub struct LatHist {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for LatHist {
    fn default() -> Self {
        LatHist {
            shards: (0..SHARDS).map(|_| Mutex::new(new_hist())).collect(),
        }
    }
}

impl LatHist {
    pub fn record_us(&self, key: usize, us: u64) {
        let mut h = self.shards[key % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        h.saturating_record(us.clamp(1, HIST_MAX_US));
    }

    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_hist();
        for s in &self.shards {
            let h = s.lock().unwrap_or_else(|e| e.into_inner());
            all.add(&*h).expect("same bounds");
        }
        all
    }
}

#[derive(Serialize, Deserialize, Default, Clone, Copy, Debug)]
pub struct LatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    pub count: u64,
}

impl LatencyMs {
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencyMs::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencyMs {
            p50: ms(h.value_at_quantile(0.50)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
            count: h.len(),
        }
    }
}

/// Reason-keyed counters (login failures, stanza errors, disconnects).
#[derive(Default)]
pub struct Reasons(Mutex<BTreeMap<String, u64>>);

impl Reasons {
    pub fn add(&self, reason: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(reason.to_string()).or_insert(0) += 1;
    }
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn total(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }
}

/// Shared run statistics for message scenarios.
pub struct Stats {
    pub epoch: Instant,
    pub run_id: String,
    pub lat: LatHist,
    /// Receive count per sequence number.
    pub recv: Vec<AtomicU32>,
    pub received: AtomicU64,
    pub foreign: AtomicU64,
    pub last_delivery_ns: AtomicU64,
    /// Errors after login: stanza errors, stream errors, unexpected disconnects.
    pub errors: Reasons,
}

impl Stats {
    pub fn new(run_id: String, max_msgs: usize) -> Self {
        Stats {
            epoch: Instant::now(),
            run_id,
            lat: LatHist::default(),
            recv: (0..max_msgs).map(|_| AtomicU32::new(0)).collect(),
            received: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            errors: Reasons::default(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// A message body `lt RUN SEQ TS ...` arrived at session `who`.
    pub fn on_body(&self, who: usize, body: &str) {
        let mut it = body.split(' ');
        if it.next() != Some("lt") {
            return;
        }
        let (Some(run), Some(seq), Some(ts)) = (it.next(), it.next(), it.next()) else {
            self.foreign.fetch_add(1, Relaxed);
            return;
        };
        let (Ok(seq), Ok(ts)) = (seq.parse::<usize>(), ts.parse::<u64>()) else {
            self.foreign.fetch_add(1, Relaxed);
            return;
        };
        if run != self.run_id || seq >= self.recv.len() {
            self.foreign.fetch_add(1, Relaxed);
            return;
        }
        let now = self.now_ns();
        self.lat.record_us(who, now.saturating_sub(ts) / 1000);
        self.recv[seq].fetch_add(1, Relaxed);
        self.received.fetch_add(1, Relaxed);
        self.last_delivery_ns.fetch_max(now, Relaxed);
    }
}

/// CPU time and RSS of a server process from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    pub cpu_s: f64,
    pub rss_bytes: u64,
}

pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

pub fn sample_proc(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the command name (which may contain spaces) start at field 3 (state)
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?; // field 14
    let stime: u64 = f.get(12)?.parse().ok()?; // field 15
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcSample {
        cpu_s: (utime + stime) as f64 / clk_tck(),
        rss_bytes: rss_kb * 1024,
    })
}

/// `sample_proc` summed over `pids` and their live children (`None` without pids, or if
/// one of them is gone).
pub fn sample_procs(pids: &[u32]) -> Option<ProcSample> {
    if pids.is_empty() {
        return None;
    }
    // Every descendant (runuser → postmaster → backends), from one scan of /proc.
    let mut parent: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some(ppid) = stat
                .rfind(')')
                .and_then(|i| stat[i + 2..].split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok())
            {
                parent.push((pid, ppid));
            }
        }
    }
    let mut all: Vec<u32> = pids.to_vec();
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        for (c, pp) in &parent {
            if *pp == p && !all.contains(c) {
                all.push(*c);
            }
        }
        i += 1;
    }
    let mut sum = ProcSample {
        cpu_s: 0.0,
        rss_bytes: 0,
    };
    for (i, pid) in all.iter().enumerate() {
        match sample_proc(*pid) {
            Some(s) => {
                sum.cpu_s += s.cpu_s;
                sum.rss_bytes += s.rss_bytes;
            }
            // A named process must be there; a child may have ended meanwhile.
            None if i < pids.len() => return None,
            None => {}
        }
    }
    Some(sum)
}

/// CPU seconds used by this process (and its reaped children, for --procs).
pub fn self_cpu_s() -> f64 {
    let mut t = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: rusage is plain data; getrusage fills it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut ru) } == 0 {
            let tv = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
            t += tv(ru.ru_utime) + tv(ru.ru_stime);
        }
    }
    t
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct RssBytes {
    pub before: Option<u64>,
    pub after: Option<u64>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct LoginSummary {
    pub attempted: u64,
    pub ok: u64,
    pub failed: u64,
    pub per_sec: f64,
    pub window_s: f64,
    pub latency_ms: LatencyMs,
    pub failures: BTreeMap<String, u64>,
    /// TLS handshakes completed during these logins (also those of logins that failed
    /// later): full ones and resumed ones. Zero on ws and tcp.
    #[serde(default)]
    pub tls_full: u64,
    #[serde(default)]
    pub tls_resumed: u64,
}

/// Sessions sent to one `--url` and how many of them logged in.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
pub struct UrlCount {
    pub url: String,
    pub sessions: u64,
    pub logins_ok: u64,
}

/// Add `part`'s per-URL counts into `acc` (matched by URL, in first-seen order).
pub fn merge_per_url(acc: &mut Vec<UrlCount>, part: &[UrlCount]) {
    for p in part {
        match acc.iter_mut().find(|a| a.url == p.url) {
            Some(a) => {
                a.sessions += p.sessions;
                a.logins_ok += p.logins_ok;
            }
            None => acc.push(p.clone()),
        }
    }
}

/// The result of one scenario run; the first block of fields is the contract.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Report {
    pub scenario: String,
    pub sessions: u64,
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub errors: u64,
    pub delivered_per_sec: f64,
    pub latency_ms: LatencyMs,
    pub server_cpu_s: Option<f64>,
    pub per_server_core_sec: Option<f64>,
    pub server_rss_bytes: RssBytes,
    // --- extras ---
    /// `ws`, `wss`, `tcp`, `starttls` or `tls`.
    pub transport: String,
    /// `on` or `off` on the TLS transports (`--tls-resumption`), null on ws and tcp.
    pub tls_resumption: Option<String>,
    /// TLS handshakes of the logins: full and resumed (null on ws and tcp).
    pub tls_full: Option<u64>,
    pub tls_resumed: Option<u64>,
    pub url: String,
    pub seed: u64,
    pub offered_rate: f64,
    pub duration_s: f64,
    /// Wall time of the measured window (what delivered_per_sec and server_cpu_s cover).
    pub measured_s: f64,
    pub logins_per_sec: f64,
    pub login: LoginSummary,
    /// Post-login errors by reason (stanza errors, stream errors, disconnects, dispatch failures).
    pub error_reasons: BTreeMap<String, u64>,
    pub bytes_per_session: Option<f64>,
    pub held_sessions: Option<u64>,
    pub rooms: Option<u64>,
    pub occupants: Option<u64>,
    /// Expected deliveries (muc: sent x joined occupants of the room).
    pub expected: u64,
    /// Messages from another run or not parseable (e.g. offline messages from an earlier run).
    pub foreign: u64,
    /// Largest delay of the sender pacer behind its schedule (client saturation indicator).
    pub pacer_lag_ms_max: f64,
    pub client_cpu_s: f64,
    pub procs: u64,
    /// Per `--url`, in the order given: sessions sent there and logins that succeeded there.
    #[serde(default)]
    pub per_url: Vec<UrlCount>,
}

fn f(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) => format!("{v:.2}{unit}"),
        None => "-".into(),
    }
}

fn mib(v: Option<u64>) -> String {
    match v {
        Some(v) => format!("{:.1} MiB", v as f64 / 1048576.0),
        None => "-".into(),
    }
}

impl Report {
    pub fn print_human(&self) {
        let l = &self.latency_ms;
        println!("{}", self.title());
        println!(
            "sessions {}  logins ok {}/{} at {:.0}/s (login p50 {:.2} ms p99 {:.2} ms)",
            self.sessions,
            self.login.ok,
            self.login.attempted,
            self.login.per_sec,
            self.login.latency_ms.p50,
            self.login.latency_ms.p99
        );
        if !self.login.failures.is_empty() {
            println!("login failures: {:?}", self.login.failures);
        }
        if self.per_url.len() > 1 {
            for u in &self.per_url {
                println!(
                    "  {}: sessions {}  logins ok {}",
                    u.url, u.sessions, u.logins_ok
                );
            }
        }
        if let (Some(full), Some(resumed)) = (self.tls_full, self.tls_resumed) {
            println!(
                "tls handshakes: full {full}  resumed {resumed}  (resumption {})",
                self.tls_resumption.as_deref().unwrap_or("-")
            );
        }
        println!(
            "sent {}  delivered {}  lost {}  duplicated {}  errors {}  foreign {}",
            self.sent, self.delivered, self.lost, self.duplicated, self.errors, self.foreign
        );
        if !self.error_reasons.is_empty() {
            println!("errors by reason: {:?}", self.error_reasons);
        }
        println!(
            "delivered/s {:.1} over {:.2} s (offered {:.1}/s)  latency ms p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
            self.delivered_per_sec, self.measured_s, self.offered_rate, l.p50, l.p99, l.p999, l.max
        );
        println!(
            "server cpu {}  per server-core-second {}  rss {} -> {}{}",
            f(self.server_cpu_s, " s"),
            f(self.per_server_core_sec, ""),
            mib(self.server_rss_bytes.before),
            mib(self.server_rss_bytes.after),
            match self.bytes_per_session {
                Some(b) => format!("  bytes/session {b:.0}"),
                None => String::new(),
            }
        );
        println!(
            "client cpu {:.2} s  pacer lag max {:.1} ms",
            self.client_cpu_s, self.pacer_lag_ms_max
        );
    }

    /// The summary's first line: scenario, transport, URL, and the TLS resumption mode.
    pub fn title(&self) -> String {
        let tls = match &self.tls_resumption {
            Some(m) => format!(", TLS resumption {m}"),
            None => String::new(),
        };
        format!(
            "== {} over {} ({}{tls}) ==",
            self.scenario, self.transport, self.url
        )
    }

    pub fn write_json(&self, path: &std::path::Path) -> std::io::Result<()> {
        let s = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, s + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_parsing() {
        let s = Stats::new("r1".into(), 10);
        s.on_body(0, "lt r1 3 0 xxxx");
        s.on_body(1, "lt r1 3 0 xxxx");
        s.on_body(0, "lt r2 3 0");
        s.on_body(0, "lt r1 99 0");
        s.on_body(0, "hello");
        assert_eq!(s.recv[3].load(Relaxed), 2);
        assert_eq!(s.received.load(Relaxed), 2);
        assert_eq!(s.foreign.load(Relaxed), 2);
    }

    #[test]
    fn proc_self() {
        let p = sample_proc(std::process::id()).expect("own /proc entry");
        assert!(p.rss_bytes > 0);
    }
}
