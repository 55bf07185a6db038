//! systemd's notify protocol (`Type=notify`, `sd_notify(3)`): `READY=1` once every listener
//! is up, `STOPPING=1` on a graceful stop, and `WATCHDOG=1` every half `WATCHDOG_USEC` — but
//! only while every shard answers a ping through its mailbox, so a stuck shard lets systemd
//! restart the process. Nothing happens without `NOTIFY_SOCKET`.

use super::ShardMsg;
use super::admin_ops::{Op, Reply, Request};
use crate::runtime::mailbox::MailboxSender;
use std::sync::Arc;
use std::time::Duration;

/// Sends one notification (`KEY=VALUE` lines) to `NOTIFY_SOCKET`, if set.
pub fn notify(msg: &str) {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let r = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
        }
        None => sock.send_to(msg.as_bytes(), &path),
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "sd_notify");
    }
}

/// Whether every shard answers a ping within `deadline`.
fn shards_answer(senders: &[MailboxSender<ShardMsg>], deadline: Duration) -> bool {
    let mut waits = Vec::with_capacity(senders.len());
    for s in senders {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if s.try_send(ShardMsg::Admin(Request {
            op: Op::Ping,
            reply: tx,
        }))
        .is_err()
        {
            return false;
        }
        waits.push(rx);
    }
    let until = std::time::Instant::now() + deadline;
    waits.iter().all(|rx| {
        let left = until.saturating_duration_since(std::time::Instant::now());
        matches!(rx.recv_timeout(left), Ok(Reply::Done(true)))
    })
}

/// Starts the watchdog thread when systemd asks for one (`WATCHDOG_USEC`, for this pid).
pub fn start_watchdog(senders: Arc<[MailboxSender<ShardMsg>]>) {
    let Some(usec) = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|u| *u > 0)
    else {
        return;
    };
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        && pid != std::process::id()
    {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    let _ = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                if shards_answer(&senders, every / 2) {
                    notify("WATCHDOG=1");
                } else {
                    tracing::warn!("watchdog: a shard did not answer; not feeding systemd");
                }
            }
        });
}
