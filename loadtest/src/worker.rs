//! `hold --procs N`: re-exec this binary as N worker processes (each holding at most
//! --max-per-proc sockets, since RLIMIT_NOFILE's hard limit is per process) and aggregate.
//!
//! Protocol on the worker's stdout: `READY <HoldPart json>` after its logins, then after the
//! parent writes `stop` on its stdin, `DONE <HoldPart json>`; then it closes and exits.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::opts::Opts;
use crate::scenario::{self, HoldPart};
use crate::stats::ProcSample;

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

async fn read_tagged(w: &mut Worker, tag: &str, wait: Duration) -> Option<HoldPart> {
    let r = tokio::time::timeout(wait, async {
        while let Ok(Some(line)) = w.lines.next_line().await {
            if let Some(j) = line.strip_prefix(tag) {
                return serde_json::from_str::<HoldPart>(j.trim()).ok();
            }
        }
        None
    })
    .await;
    r.ok().flatten()
}

/// The sessions of each of `procs` workers: `(first, count)` over the global indices
/// `0..n`, in order. A worker logs in its sessions by their global index, so the spread
/// over `--url`s (`client::url_index`) is the same whatever `procs` is.
pub fn worker_ranges(n: usize, procs: usize) -> Vec<(usize, usize)> {
    let per = n.div_ceil(procs.max(1)).max(1);
    (0..n)
        .step_by(per)
        .map(|first| (first, per.min(n - first)))
        .collect()
}

pub async fn hold_multi(opts: &Opts, procs: usize) -> (Vec<HoldPart>, Option<ProcSample>) {
    let n = opts.sessions;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("hold: cannot find own executable: {e}");
            return (Vec::new(), None);
        }
    };
    let mut spec = opts.clone();
    spec.json = None;
    spec.server_pid = Vec::new();
    spec.procs = 1;
    spec.no_progress = true;
    spec.login_rate = opts.login_rate / procs as f64;
    spec.login_concurrency = (opts.login_concurrency / procs).max(1);
    let spec_json = serde_json::to_string(&spec).expect("options serialize");

    let per = n.div_ceil(procs);
    let mut workers = Vec::new();
    for (first, count) in worker_ranges(n, procs) {
        let spawned = Command::new(&exe)
            .arg("hold-worker")
            .arg(&spec_json)
            .arg(first.to_string())
            .arg(count.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(mut child) => {
                let stdin = child.stdin.take().expect("piped stdin");
                let stdout = child.stdout.take().expect("piped stdout");
                workers.push(Worker {
                    child,
                    stdin,
                    lines: BufReader::new(stdout).lines(),
                });
            }
            Err(e) => eprintln!("hold: cannot start worker: {e}"),
        }
    }
    eprintln!(
        "hold: {} worker processes, up to {per} sessions each",
        workers.len()
    );

    let login_wait = Duration::from_secs_f64(per as f64 / spec.login_rate + opts.timeout + 60.0);
    let mut ready = 0u64;
    for w in &mut workers {
        if let Some(p) = read_tagged(w, "READY ", login_wait).await {
            ready += p.login.ok;
        }
    }
    eprintln!(
        "hold: {ready} sessions logged in; holding {} s",
        opts.duration
    );
    scenario::hold_sleep(opts).await;
    let after = crate::stats::sample_procs(&opts.server_pid);

    for w in &mut workers {
        let _ = w.stdin.write_all(b"stop\n").await;
        let _ = w.stdin.flush().await;
    }
    let mut parts = Vec::new();
    for w in &mut workers {
        match read_tagged(w, "DONE ", Duration::from_secs(60)).await {
            Some(p) => parts.push(p),
            None => eprintln!("hold: a worker did not report"),
        }
    }
    for mut w in workers {
        if tokio::time::timeout(Duration::from_secs(30), w.child.wait())
            .await
            .is_err()
        {
            // our own child, by its handle (pid)
            let _ = w.child.start_kill();
            let _ = w.child.wait().await;
        }
    }
    (parts, after)
}

/// Entry point of a worker process.
pub async fn worker_main(spec: &str, first: usize, count: usize) -> i32 {
    let opts: Opts = match serde_json::from_str(spec) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("hold-worker: bad spec: {e}");
            return 2;
        }
    };
    if let Err(e) = opts.validate() {
        eprintln!("hold-worker: {e}");
        return 2;
    }
    let (logged, stats) = scenario::hold_worker_part(&opts, first, count).await;
    let part = scenario::hold_part(&logged, &stats);
    println!("READY {}", serde_json::to_string(&part).expect("serialize"));
    // wait for "stop" (or EOF), bounded so the worker always ends by itself
    let bound = Duration::from_secs_f64(opts.duration + opts.timeout + 600.0);
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let _ = tokio::time::timeout(bound, async {
        while let Ok(Some(l)) = stdin.next_line().await {
            if l.trim() == "stop" {
                break;
            }
        }
    })
    .await;
    let part = scenario::hold_part(&logged, &stats);
    println!("DONE {}", serde_json::to_string(&part).expect("serialize"));
    scenario::close_all(logged.handles).await;
    0
}

#[cfg(test)]
mod tests {
    use super::worker_ranges;
    use crate::client::url_index;

    /// Sessions go to URLs by their global index: the same counts per URL whether one
    /// process logs them all in or `procs` workers split them, and the counts differ by at
    /// most one between URLs.
    #[test]
    fn spread_over_urls_is_by_global_index() {
        // indices to URLs
        let got: Vec<usize> = (0..7).map(|i| url_index(i, 3)).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
        assert!((0..100).all(|i| url_index(i, 1) == 0));
        for n in [1, 2, 7, 40, 41, 1000, 19_001] {
            for urls in 1..=5 {
                let mut one = vec![0usize; urls];
                for i in 0..n {
                    one[url_index(i, urls)] += 1;
                }
                assert!(one.iter().max().unwrap() - one.iter().min().unwrap() <= 1);
                for procs in [1, 2, 3, 4, 7, 16] {
                    let ranges = worker_ranges(n, procs);
                    assert!(ranges.len() <= procs, "{n} {procs}");
                    // the ranges cover 0..n once, in order
                    let mut next = 0;
                    let mut split = vec![0usize; urls];
                    for &(first, count) in &ranges {
                        assert_eq!(first, next);
                        assert!(count > 0);
                        for i in first..first + count {
                            split[url_index(i, urls)] += 1;
                        }
                        next = first + count;
                    }
                    assert_eq!(next, n);
                    assert_eq!(split, one, "n {n} urls {urls} procs {procs}");
                }
            }
        }
        // the example of the README: 40 sessions, 2 URLs, 3 processes
        assert_eq!(worker_ranges(40, 3), [(0, 14), (14, 14), (28, 12)]);
    }
}
