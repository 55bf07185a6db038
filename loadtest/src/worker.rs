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
    spec.server_pid = None;
    spec.procs = 1;
    spec.no_progress = true;
    spec.login_rate = opts.login_rate / procs as f64;
    spec.login_concurrency = (opts.login_concurrency / procs).max(1);
    let spec_json = serde_json::to_string(&spec).expect("options serialize");

    let per = n.div_ceil(procs);
    let mut workers = Vec::new();
    let mut first = 0;
    while first < n {
        let count = per.min(n - first);
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
        first += count;
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
    let after = opts.server_pid.and_then(crate::stats::sample_proc);

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
