//! aoba-loadtest: an XMPP load generator for Aoba, Prosody and ejabberd, over WebSocket
//! (RFC 7395) or TCP (RFC 6120), each plain or over TLS (wss, STARTTLS, XEP-0368 direct
//! TLS). See loadtest/README.md.

mod capacity;
mod client;
mod failover;
mod opts;
mod scenario;
mod session;
mod split;
mod stats;
mod tls;
mod transport;
mod worker;
mod xml;

use clap::Parser;

use opts::{Cli, Command, Opts, Scenario};

/// Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
fn raise_nofile() -> u64 {
    // SAFETY: rlimit is plain data; getrlimit/setrlimit only read/write it.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        }
        rl.rlim_cur as u64
    }
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        b.worker_threads(threads);
    }
    b.enable_all().build().expect("tokio runtime")
}

/// What a scenario needs of several `--url`s. They are separate servers until Aoba has a
/// cluster, so a message only reaches a session on the same server: `chat` pairs senders
/// with peers on their own URL (so each URL needs two sessions), and `muc` puts each room
/// and all its occupants on one URL (so the rooms must divide evenly among the URLs).
fn check_urls(o: &Opts, scn: Scenario) -> Result<(), String> {
    let urls = o.urls().len();
    if urls < 2 {
        return Ok(());
    }
    match scn {
        Scenario::Chat if o.sessions < 2 * urls => Err(format!(
            "chat over {urls} URLs sends only between sessions on the same URL (separate servers do not deliver to each other's users): --sessions must be at least 2 per URL ({})",
            2 * urls
        )),
        Scenario::Muc if !o.rooms_across_urls && !o.rooms.max(1).is_multiple_of(urls) => {
            Err(format!(
                "muc over {urls} URLs keeps each room and its occupants on one URL (separate servers do not share rooms): --rooms ({}) must be a multiple of the number of URLs",
                o.rooms.max(1)
            ))
        }
        _ => Ok(()),
    }
}

fn check(o: &Opts, scn: Scenario, nofile: u64) -> Result<(), String> {
    o.validate()?;
    check_urls(o, scn)?;
    let sessions = if scn == Scenario::Muc {
        o.rooms.max(1) * o.occupants.max(1)
    } else {
        o.sessions
    };
    let per_proc = if scn == Scenario::Hold {
        sessions.div_ceil(o.procs.max(sessions.div_ceil(o.max_per_proc)))
    } else {
        sessions
    };
    if per_proc as u64 + 64 > nofile {
        return Err(format!(
            "{per_proc} sessions in one process need more than RLIMIT_NOFILE {nofile} descriptors{}",
            if scn == Scenario::Hold {
                "; use --procs or lower --max-per-proc"
            } else {
                "; use fewer sessions (only hold has --procs)"
            }
        ));
    }
    Ok(())
}

fn finish(r: &stats::Report, o: &Opts) {
    r.print_human();
    if let Some(p) = &o.json {
        match r.write_json(p) {
            Ok(()) => println!("wrote {}", p.display()),
            Err(e) => eprintln!("cannot write {}: {e}", p.display()),
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let cmd = match cli.cmd {
        Command::Run { file, extra } => {
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
                eprintln!("cannot read {}: {e}", file.display());
                std::process::exit(2)
            });
            let args = opts::toml_to_args(&text, &extra).unwrap_or_else(|e| {
                eprintln!("{e}");
                std::process::exit(2)
            });
            Cli::parse_from(args).cmd
        }
        c => c,
    };
    let nofile = raise_nofile();
    let code = match cmd {
        Command::HoldWorker { spec, first, count } => {
            let threads = serde_json::from_str::<Opts>(&spec)
                .map(|o| o.threads)
                .unwrap_or(0);
            runtime(threads).block_on(worker::worker_main(&spec, first, count))
        }
        Command::Capacity(c) => {
            if let Err(e) = check(&c.opts, c.target, nofile) {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
            let reports = runtime(c.opts.threads).block_on(capacity::run(&c));
            if let Some(p) = &c.opts.json {
                let s = serde_json::to_string_pretty(&reports).unwrap_or_default();
                match std::fs::write(p, s + "\n") {
                    Ok(()) => println!("wrote {}", p.display()),
                    Err(e) => eprintln!("cannot write {}: {e}", p.display()),
                }
            }
            0
        }
        Command::Run { .. } => {
            eprintln!("a scenario file cannot run another scenario file");
            2
        }
        Command::Failover(f) => match runtime(f.opts.threads).block_on(failover::run(&f)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("failover: {e}");
                1
            }
        },
        other => {
            let (scn, o) = match other {
                Command::Login(o) => (Scenario::Login, o),
                Command::Hold(o) => (Scenario::Hold, o),
                Command::Chat(o) => (Scenario::Chat, o),
                Command::Muc(o) => (Scenario::Muc, o),
                _ => unreachable!("handled above"),
            };
            if let Err(e) = check(&o, scn, nofile) {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
            let r = runtime(o.threads).block_on(scenario::run(scn, &o));
            finish(&r, &o);
            0
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> (Scenario, Opts) {
        let mut all = vec!["x"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--jwt-secret", "S"]);
        match Cli::try_parse_from(all).unwrap().cmd {
            Command::Chat(o) => (Scenario::Chat, o),
            Command::Muc(o) => (Scenario::Muc, o),
            Command::Login(o) => (Scenario::Login, o),
            Command::Hold(o) => (Scenario::Hold, o),
            _ => panic!(),
        }
    }

    /// chat and muc over several URLs: what they need is checked before the run.
    #[test]
    fn several_urls_per_scenario() {
        const TWO: &str = "ws://127.0.0.1:1/xmpp,ws://127.0.0.1:2/xmpp";
        let ok = |args: &[&str]| {
            let (s, o) = opts(args);
            check(&o, s, 1 << 20)
        };
        ok(&["chat", "--url", TWO, "--sessions", "4"]).unwrap();
        let e = ok(&["chat", "--url", TWO, "--sessions", "3"]).unwrap_err();
        assert!(e.contains("same URL") && e.contains("(4)"), "{e}");
        ok(&["muc", "--url", TWO, "--rooms", "4"]).unwrap();
        let e = ok(&["muc", "--url", TWO, "--rooms", "3"]).unwrap_err();
        assert!(e.contains("multiple of the number of URLs"), "{e}");
        ok(&["login", "--url", TWO, "--sessions", "1"]).unwrap();
        ok(&["hold", "--url", TWO, "--sessions", "3", "--procs", "3"]).unwrap();
        // one URL: no new constraint
        ok(&["chat", "--sessions", "2"]).unwrap();
        ok(&["muc", "--rooms", "3"]).unwrap();
    }
}
