//! Nothing lost, nothing twice: 10,000 receipt-requesting messages to a user whose
//! connection drops at random points; it comes back by resuming (XEP-0198) or, after
//! acknowledging what it read, with a fresh session. Every id arrives exactly once.
//!
//! Run once with one shard (sender and recipient share a thread) and once with two (every
//! message crosses a mailbox). Knobs for hunting a regression: `LOSS_MODE=resume|fresh`
//! forces one reconnect style; `LOSS_NO_WAIT=1` reconnects without waiting for the server
//! to see the drop. On failure it prints the server's session events.
//!
//! This test found three bugs: unacknowledged frames dropped when a connection ended
//! without detaching; an offline page landing on a *new* session of the same resource
//! before it enabled stream management (lost); and frames a failed write handed back
//! after the session detached being routed a second time (duplicates).

mod common;
use common::*;
use std::collections::HashMap;

/// A tiny deterministic PRNG (xorshift) so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn connections(s: &Server) -> u64 {
    let out = s.http_get("/health").await;
    // The health request's own connection is counted too.
    out.split("\"connections\":")
        .nth(1)
        .and_then(|r| r.split('}').next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0)
        .saturating_sub(1)
}

fn is_stanza(m: &str) -> bool {
    m.starts_with("<message") || m.starts_with("<presence") || m.starts_with("<iq")
}

#[tokio::test]
async fn ten_thousand_messages_through_drops_one_shard() {
    ten_thousand_messages_through_drops(1, 0x9e37_79b9_7f4a_7c15).await;
}

#[tokio::test]
async fn ten_thousand_messages_through_drops_two_shards() {
    ten_thousand_messages_through_drops(2, 0x2545_f491_4f6c_dd1d).await;
}

async fn ten_thousand_messages_through_drops(shards: usize, seed: u64) {
    const N: usize = 10_000;
    let s = Server::start_with(
        "[limits]\nmax_stanzas_per_sec = 1000000\nstanza_burst = 1000000\n[storage]\noffline_quota = 100000\n[sm]\nresume_timeout_ms = 60000\n",
        shards,
    );
    let (a, b) = if s.shards > 1 {
        s.users_apart()
    } else {
        ("user0".to_string(), "user1".to_string())
    };
    drop(Client::login(&s, &a, Some("phone")).await); // alice exists
    let mut bob = Client::online(&s, &b, "desk", 0).await;
    bob.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    bob.recv_until("<enabled").await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let to = format!("{a}@localhost");
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent_in = sent.clone();
    let sender = tokio::spawn(async move {
        for i in 0..N {
            sent_in.store(i, std::sync::atomic::Ordering::Relaxed);
            bob.send(&format!("<message to='{to}' type='chat' id='L{i}'><body>{i}</body><request xmlns='urn:xmpp:receipts'/></message>")).await;
            if i % 500 == 499 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        // Everything bob sent is settled (delivered, queued or stored) before we count.
        bob.send("<r xmlns='urn:xmpp:sm:3'/>").await;
        let a = bob.recv_until("<a xmlns").await;
        assert!(a.contains(&format!("h='{N}'")), "{a}");
        let _ = tx.send(());
        bob
    });

    let mut rng = Rng(seed);
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut resume: Option<(String, u32)> = None; // (previd, h)
    let (mut resumed, mut fresh) = (0, 0);
    let mut sender_done = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while seen.len() < N || !sender_done {
        if std::time::Instant::now() >= deadline {
            let mut missing: Vec<usize> = (0..N).filter(|i| !seen.contains_key(i)).collect();
            missing.truncate(10);
            let log = s.log();
            let interesting: Vec<&str> = log
                .lines()
                .filter(|l| {
                    l.contains("DBG")
                        || l.contains("detached")
                        || l.contains("resum")
                        || l.contains("replaced")
                        || l.contains("takes over")
                        || l.contains("stream error")
                })
                .collect();
            panic!(
                "not all arrived: {} of {N}; first missing {missing:?}; resumed {resumed}, fresh {fresh}; sender at {} (finished: {})\n{}",
                seen.len(),
                sent.load(std::sync::atomic::Ordering::Relaxed),
                sender.is_finished(),
                interesting[interesting.len().saturating_sub(80)..].join("\n")
            );
        }
        // Connect: resume if we can, else a fresh session with initial presence.
        let mut c = Client::connect(&s, Some(&s.token(&a))).await;
        c.jid = format!("{a}@localhost/phone");
        c.open().await;
        c.auth_plain(&a, "").await;
        c.open().await;
        let mut h: u32;
        let mut ok = false;
        if let Some((id, hh)) = resume.take() {
            c.send(&format!(
                "<resume xmlns='urn:xmpp:sm:3' h='{hh}' previd='{id}'/>"
            ))
            .await;
            let r = c.recv_until("urn:xmpp:sm:3").await;
            if r.contains("<resumed") {
                ok = true;
                resumed += 1;
                resume = Some((id, hh));
            }
        }
        let id;
        if ok {
            let (i, hh) = resume.take().unwrap();
            id = i;
            h = hh;
        } else {
            fresh += 1;
            c.bind(Some("phone")).await;
            c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
                .await;
            let e = c.recv_until("<enabled").await;
            id = between(&e, "id='", "'").to_string();
            h = 0;
            c.send("<presence/>").await;
        }
        // Read a random number of stanzas (acking now and then), then drop.
        let budget = 200 + rng.next(1500) as usize;
        let mut read = 0;
        while read < budget && !(sender_done && seen.len() == N) {
            if !sender_done && rx.try_recv().is_ok() {
                sender_done = true;
            }
            let m =
                match tokio::time::timeout(std::time::Duration::from_millis(300), c.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        if sender_done {
                            break;
                        }
                        continue;
                    }
                };
            if is_stanza(&m) {
                h = h.wrapping_add(1);
                read += 1;
            }
            if m.starts_with("<message") && m.contains("id='L") {
                let i: usize = between(&m, "id='L", "'").parse().unwrap();
                *seen.entry(i).or_default() += 1;
            } else if m.starts_with("<r xmlns='urn:xmpp:sm:3'") {
                c.send(&format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>")).await;
            }
        }
        if seen.len() == N && sender_done {
            break;
        }
        let mode = std::env::var("LOSS_MODE").unwrap_or_default();
        if mode == "resume" || (mode.is_empty() && rng.next(2) == 0) {
            // A flaky network: gone with whatever was not acknowledged; resume next time.
            resume = Some((id, h));
        } else {
            // The app acknowledges what it read and is killed: a fresh session next time.
            c.send(&format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>")).await;
            c.ping_server("flush").await;
        }
        drop(c);
        // Reconnect only once the server has seen the drop (its connection count falls
        // back to bob's one connection).
        if std::env::var_os("LOSS_NO_WAIT").is_none() {
            for _ in 0..200 {
                if connections(&s).await <= 1 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }
    let _bob = sender.await.unwrap();
    let twice: Vec<_> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| *i)
        .collect();
    if !twice.is_empty() {
        std::fs::write("/tmp/loss_full.log", s.log()).unwrap();
    }
    assert!(
        twice.is_empty(),
        "delivered more than once: {:?}",
        &twice[..twice.len().min(20)]
    );
    assert_eq!(
        seen.len(),
        N,
        "lost: {} ({} resumed, {} fresh sessions)",
        N - seen.len(),
        resumed,
        fresh
    );
}
