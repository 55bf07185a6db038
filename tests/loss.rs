//! Nothing lost, nothing twice, with the defaults a user gets (issue 10): a sender far
//! faster than the default rate limit (shaped, never disconnected) sends receipt-requesting
//! messages to a user with two resources of equal priority: `desk`, always connected, and
//! `phone`, whose connection drops at random points and comes back by resuming (XEP-0198)
//! or with a fresh login, sometimes after acknowledging what it read and sometimes not.
//! Most messages go to the bare JID (both resources get a copy), every fourth to the
//! phone's full JID (only the phone holds it while it is connected or waiting).
//!
//! What must hold:
//! - `desk` gets every bare-JID message exactly once: a copy the phone held is never routed
//!   to it again when the phone's waiting session ends (the duplicates bug).
//! - Every message reaches the user (desk or phone).
//! - The phone gets nothing twice, except a full-JID message it read but had not
//!   acknowledged when it dropped and came back with a fresh login: the window XEP-0198
//!   allows. The test counts that window and reports it; the server asks for acks right
//!   away, so it stays small.
//!
//! Run once with one shard (sender and recipient share a thread) and once with two (every
//! message crosses a mailbox). Knobs for hunting a regression: `LOSS_MODE=resume|fresh`
//! forces one reconnect style; `LOSS_NO_WAIT=1` always reconnects without waiting for the
//! server to see the drop (else one reconnect in four does); `LOSS_N` changes the number
//! of messages (4,000). On failure it prints the server's session events.
//!
//! This test found: unacknowledged frames dropped when a connection ended without
//! detaching; an offline page landing on a *new* session of the same resource before it
//! enabled stream management (lost); frames a failed write handed back after the session
//! detached being routed a second time; and a bare-JID copy held by a waiting session
//! routed again to the live resource when that session ended (duplicates).

mod common;
use common::*;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

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
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0)
        .saturating_sub(1)
}

fn is_stanza(m: &str) -> bool {
    m.starts_with("<message") || m.starts_with("<presence") || m.starts_with("<iq")
}

/// The message number of a test message.
fn id_of(m: &str) -> Option<usize> {
    if !m.starts_with("<message") || !m.contains("id='L") {
        return None;
    }
    between(m, "id='L", "'").parse().ok()
}

/// Counts a frame the phone read: nothing twice, except a full-JID message in the
/// fresh-login window. Returns the message number, if it is a test message.
fn note(seen: &mut HashMap<usize, usize>, window: &HashSet<usize>, m: &str) -> Option<usize> {
    let i = id_of(m)?;
    let n = seen.entry(i).or_default();
    *n += 1;
    assert!(
        *n == 1 || (to_phone_only(i) && window.contains(&i)),
        "the phone got L{i} {n} times; it was not in the fresh-login window"
    );
    Some(i)
}

/// Reads until a frame containing `pat`, counting every test message on the way (a
/// message routed to the phone's new session can come before `<enabled/>`).
async fn phone_until(
    c: &mut Client,
    pat: &str,
    seen: &mut HashMap<usize, usize>,
    window: &HashSet<usize>,
    got: &mut Vec<usize>,
) -> String {
    loop {
        let m = c.recv().await;
        got.extend(note(seen, window, &m));
        if m.contains(pat) {
            return m;
        }
    }
}

/// Messages `i` with `i % 4 == 3` go to the phone's full JID, the rest to the bare JID.
fn to_phone_only(i: usize) -> bool {
    i % 4 == 3
}

#[tokio::test]
async fn messages_through_drops_with_a_live_and_a_waiting_resource_one_shard() {
    messages_through_drops(1, 0x9e37_79b9_7f4a_7c15).await;
}

#[tokio::test]
async fn messages_through_drops_with_a_live_and_a_waiting_resource_two_shards() {
    messages_through_drops(2, 0x2545_f491_4f6c_dd1d).await;
}

async fn messages_through_drops(shards: usize, seed: u64) {
    let n_env = std::env::var("LOSS_N").ok().and_then(|n| n.parse().ok());
    #[allow(non_snake_case)]
    let N: usize = n_env.unwrap_or(4_000);
    let s = Server::start_with("", shards); // the defaults a user gets
    let (a, b) = if s.shards > 1 {
        s.users_apart()
    } else {
        ("user0".to_string(), "user1".to_string())
    };
    // The live resource reads everything, all the time.
    let desk_seen: Arc<Mutex<HashMap<usize, usize>>> = Arc::default();
    let mut desk = Client::online(&s, &a, "desk", 0).await;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<String>();
    let desk_in = desk_seen.clone();
    let desk_task = tokio::spawn(async move {
        // Reads until told the marker's id, then reads up to that marker.
        let mut marker: Option<String> = None;
        loop {
            let m = match tokio::time::timeout(std::time::Duration::from_millis(200), desk.recv())
                .await
            {
                Ok(m) => m,
                Err(_) => {
                    if marker.is_none()
                        && let Ok(id) = stop_rx.try_recv()
                    {
                        marker = Some(id);
                    }
                    continue;
                }
            };
            if let Some(i) = id_of(&m) {
                *desk_in.lock().unwrap().entry(i).or_default() += 1;
            }
            if marker.is_none()
                && let Ok(id) = stop_rx.try_recv()
            {
                marker = Some(id);
            }
            if let Some(mk) = &marker
                && m.contains(&format!("id='{mk}'"))
            {
                return desk;
            }
        }
    });

    let mut bob = Client::online(&s, &b, "desk", 0).await;
    bob.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    bob.recv_until("<enabled").await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (bare, full) = (format!("{a}@localhost"), format!("{a}@localhost/phone"));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent_in = sent.clone();
    let sender = tokio::spawn(async move {
        // As fast as the socket takes them: far above the default 200/s, so the server
        // shapes this sender (stops reading) and must not disconnect it or lose anything.
        for i in 0..N {
            sent_in.store(i, std::sync::atomic::Ordering::Relaxed);
            let to = if to_phone_only(i) { &full } else { &bare };
            bob.send(&format!("<message to='{to}' type='chat' id='L{i}'><body>{i}</body><request xmlns='urn:xmpp:receipts'/></message>")).await;
        }
        // Everything bob sent is settled (delivered, queued or stored) before we count.
        bob.send("<r xmlns='urn:xmpp:sm:3'/>").await;
        // The writes went into kernel buffers long before the shaped server read them.
        let a = bob
            .recv_until_within("<a xmlns", std::time::Duration::from_secs(120))
            .await;
        assert!(a.contains(&format!("h='{N}'")), "{a}");
        let _ = tx.send(());
        bob
    });

    let mut rng = Rng(seed);
    let mut phone_seen: HashMap<usize, usize> = HashMap::new();
    // Full-JID messages the phone read but had not acknowledged when it dropped, before a
    // fresh login: the only ones it may get again.
    let mut window: HashSet<usize> = HashSet::new();
    let mut resume: Option<(String, u32)> = None; // (previd, h)
    let (mut resumed, mut fresh, mut unacked_drops) = (0, 0, 0);
    let mut sender_done = false;
    let everywhere = |phone: &HashMap<usize, usize>, desk: &Arc<Mutex<HashMap<usize, usize>>>| {
        let d = desk.lock().unwrap();
        (0..N)
            .filter(|i| phone.contains_key(i) || d.contains_key(i))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    while everywhere(&phone_seen, &desk_seen) < N || !sender_done {
        if std::time::Instant::now() >= deadline {
            let d = desk_seen.lock().unwrap().clone();
            let mut missing: Vec<usize> = (0..N)
                .filter(|i| !phone_seen.contains_key(i) && !d.contains_key(i))
                .collect();
            missing.truncate(10);
            let log = s.log();
            let interesting: Vec<&str> = log
                .lines()
                .filter(|l| {
                    l.contains("detached")
                        || l.contains("resum")
                        || l.contains("replaced")
                        || l.contains("takes over")
                        || l.contains("stream error")
                })
                .collect();
            panic!(
                "not all arrived: {} of {N}; first missing {missing:?}; resumed {resumed}, fresh {fresh}; sender at {} (finished: {})\n{}",
                everywhere(&phone_seen, &desk_seen),
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
            let r = phone_until(
                &mut c,
                "urn:xmpp:sm:3",
                &mut phone_seen,
                &window,
                &mut vec![],
            )
            .await;
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
            c.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>").await;
            phone_until(&mut c, "id='bind'", &mut phone_seen, &window, &mut vec![]).await;
            c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
                .await;
            // Anything before <enabled/> is not counted by stream management.
            let e = phone_until(&mut c, "<enabled", &mut phone_seen, &window, &mut vec![]).await;
            id = between(&e, "id='", "'").to_string();
            h = 0;
            c.send("<presence/>").await;
        }
        // Read a random number of stanzas (acking when asked), then drop.
        let budget = 20 + rng.next(300) as usize;
        let mut read = 0;
        let mut since_ack: Vec<usize> = Vec::new();
        while read < budget && std::time::Instant::now() < deadline {
            if !sender_done && rx.try_recv().is_ok() {
                sender_done = true;
            }
            if sender_done && everywhere(&phone_seen, &desk_seen) == N {
                break;
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
            if let Some(i) = note(&mut phone_seen, &window, &m) {
                since_ack.push(i);
            } else if m.starts_with("<r xmlns='urn:xmpp:sm:3'") {
                c.send(&format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>")).await;
                since_ack.clear();
            }
        }
        let mode = std::env::var("LOSS_MODE").unwrap_or_default();
        let roll = rng.next(3);
        if mode == "resume" || (mode.is_empty() && roll == 0) {
            // A flaky network: gone with whatever was not acknowledged; resume next time.
            resume = Some((id, h));
        } else if roll == 1 {
            // The app acknowledges what it read and is killed: a fresh session next time.
            c.send(&format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>")).await;
            c.send("<iq type='get' id='flush' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
                .await;
            // What arrives meanwhile was read after the ack: it is in the window.
            let mut late = Vec::new();
            phone_until(&mut c, "id='flush'", &mut phone_seen, &window, &mut late).await;
            window.extend(late.into_iter().filter(|i| to_phone_only(*i)));
        } else {
            // Killed without acknowledging, and a fresh login next time: what it read
            // since its last ack may come again (only full-JID ones: the desk had the rest).
            unacked_drops += 1;
            window.extend(since_ack.iter().copied().filter(|i| to_phone_only(*i)));
        }
        drop(c);
        // Usually reconnect once the server has seen the drop (its connection count falls
        // back to bob's and the desk's); sometimes at once (a takeover).
        let no_wait = std::env::var_os("LOSS_NO_WAIT").is_some() || rng.next(4) == 0;
        if !no_wait {
            for _ in 0..200 {
                if connections(&s).await <= 2 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }
    let mut bob = sender.await.unwrap();
    // End any session the phone left waiting (a fresh bind replaces it): what it held must
    // not reach the desk again. Then a marker to the desk closes the count.
    let last = Client::login(&s, &a, Some("phone")).await;
    bob.send(&format!(
        "<message to='{a}@localhost/desk' type='chat' id='marker'><body>end</body></message>"
    ))
    .await;
    let _ = stop_tx.send("marker".into());
    let _desk = tokio::time::timeout(std::time::Duration::from_secs(30), desk_task)
        .await
        .expect("the desk never got the marker")
        .unwrap();
    drop(last);
    let desk = desk_seen.lock().unwrap().clone();
    let twice: Vec<usize> = desk
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| *i)
        .collect();
    assert!(
        twice.is_empty(),
        "the desk got these more than once: {:?}",
        &twice[..twice.len().min(20)]
    );
    let missing_bare: Vec<usize> = (0..N)
        .filter(|i| !to_phone_only(*i) && !desk.contains_key(i))
        .collect();
    assert!(
        missing_bare.is_empty(),
        "bare-JID messages the desk never got: {:?}",
        &missing_bare[..missing_bare.len().min(20)]
    );
    let repeats: usize = phone_seen.values().map(|n| n - 1).sum();
    eprintln!(
        "loss test ({shards} shard(s)): {N} messages, {resumed} resumed and {fresh} fresh sessions \
         ({unacked_drops} fresh after an unacknowledged drop); repeats on the phone within the \
         fresh-login window: {repeats} (window held {} full-JID messages)",
        window.len()
    );
    assert!(repeats <= window.len());
}
