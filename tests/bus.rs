//! The bus between nodes (`src/cluster/bus.rs`) through a real nats-server: frames cross
//! both ways in order per destination, whole; a message that does not parse is dropped
//! and counted without stopping the gateway; a restarted nats-server is found again; no
//! nats-server is an error at start that names the URL; a shard that cannot take a frame
//! holds the frames after it back instead of losing them.

mod common;
use common::WAIT;
use common::nats::Nats;

use aoba::cluster::bus::{Bus, BusConfig, Incoming, SendError};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

/// Each test's own subject namespace (one nats-server per test besides).
fn cluster(nats: &Nats) -> String {
    format!("t{}", nats.port)
}

fn node(nats: &Nats, name: &str) -> (Bus, Receiver<Incoming>) {
    let (tx, rx): (Sender<Incoming>, _) = channel();
    let bus = Bus::start(
        BusConfig::new(&nats.url(), &cluster(nats), name),
        Box::new(move |i| {
            let _ = tx.send(i);
            Ok(())
        }),
    )
    .unwrap();
    (bus, rx)
}

fn body(i: usize) -> Bytes {
    // Sizes from 0 to a few KiB; the sequence number first.
    let pad = "x".repeat((i * 37) % 3000);
    Bytes::from(format!("{i:08}{pad}"))
}

fn send_all(bus: &Bus, to: &str, n: usize) {
    for i in 0..n {
        let mut b = body(i);
        loop {
            match bus.send(to, (i % 3) as u16, b) {
                Ok(()) => break,
                Err(SendError::Full) => {
                    // Bounded: wait for the gateway to drain (what a shard does by
                    // stopping reading its clients).
                    std::thread::sleep(Duration::from_millis(1));
                    b = body(i);
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }
}

fn receive(rx: &Receiver<Incoming>, from: &str, n: usize) {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    for i in 0..n {
        let got = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("frame {i} of {n}"));
        assert_eq!(&*got.from, from);
        assert_eq!(got.shard, (i % 3) as u16, "frame {i}");
        assert!(got.body == body(i), "frame {i} in order and whole");
    }
}

#[test]
fn frames_cross_both_ways_in_order_and_whole() {
    let nats = Nats::start();
    let (a, from_b) = node(&nats, "a");
    let (b, from_a) = node(&nats, "b");
    let from_a = std::thread::scope(|s| {
        s.spawn(|| send_all(&a, "b", 20_000));
        s.spawn(|| send_all(&b, "a", 5_000));
        let r = s.spawn(move || {
            receive(&from_a, "a", 20_000);
            from_a
        });
        receive(&from_b, "b", 5_000);
        r.join().unwrap()
    });
    let st = a.stats();
    assert_eq!(st.frames_out.load(Ordering::Relaxed), 20_000);
    assert_eq!(b.stats().frames_in.load(Ordering::Relaxed), 20_000);
    eprintln!(
        "a sent 20,000 frames in {} NATS messages",
        st.messages_out.load(Ordering::Relaxed)
    );
    assert!(from_a.try_recv().is_err(), "nothing twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_is_dropped_and_counted_and_frames_keep_flowing() {
    let nats = Nats::start();
    let (a, _) = node(&nats, "a");
    let (b, from_a) = node(&nats, "b");
    let raw = async_nats::connect(nats.url()).await.unwrap();
    for junk in [
        &b""[..],
        b"A",
        b"A\x01\x05ab",
        b"A\x01\x01a\x00\x01\x00\x00\x00\x09x",
        b"\xff\xff",
    ] {
        raw.publish(
            format!("aoba.{}.node.b", cluster(&nats)),
            Bytes::from(junk.to_vec()),
        )
        .await
        .unwrap();
    }
    raw.flush().await.unwrap();
    tokio::task::block_in_place(|| {
        let until = Instant::now() + WAIT;
        while b.stats().malformed_in.load(Ordering::Relaxed) < 5 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(b.stats().malformed_in.load(Ordering::Relaxed), 5);
        send_all(&a, "b", 100);
        receive(&from_a, "a", 100);
    });
    assert_eq!(
        b.send("not a node", 0, Bytes::new()),
        Err(SendError::BadNode)
    );
}

#[test]
fn a_restarted_nats_server_is_found_again() {
    let mut nats = Nats::start();
    let (a, _) = node(&nats, "a");
    let (_b, from_a) = node(&nats, "b");
    send_all(&a, "b", 10);
    receive(&from_a, "a", 10);
    nats.restart();
    // Core NATS: what is sent while the connection is down may be lost (the nodes' outbox
    // re-sends it); once both are back, frames flow again.
    let until = Instant::now() + WAIT;
    let mut got = false;
    while !got && Instant::now() < until {
        a.send("b", 1, Bytes::from_static(b"again")).unwrap();
        if let Ok(i) = from_a.recv_timeout(Duration::from_millis(200)) {
            got = i.body == Bytes::from_static(b"again");
        }
    }
    assert!(got, "frames flow after the restart");
}

#[test]
fn no_nats_server_is_an_error_naming_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = BusConfig::new(&format!("nats://127.0.0.1:{port}"), "test", "a");
    cfg.connect_timeout_ms = 500;
    let e = Bus::start(cfg.clone(), Box::new(|_| Ok(()))).err().unwrap();
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    cfg.node = "a.b".into();
    let e = Bus::start(cfg, Box::new(|_| Ok(()))).err().unwrap();
    assert!(e.contains("node name"), "{e}");
}

/// A shard that cannot take a frame now (its mailbox is full) gets it again; the frames
/// after it wait behind it: nothing is lost or reordered by the receiving gateway.
#[test]
fn a_busy_shard_holds_the_frames_back_instead_of_losing_them() {
    let nats = Nats::start();
    let (a, _) = node(&nats, "a");
    let (tx, rx) = channel();
    let mut refusals = 0;
    let _b = Bus::start(
        BusConfig::new(&nats.url(), &cluster(&nats), "b"),
        Box::new(move |i: Incoming| {
            // Refuses every frame twice before taking it.
            refusals += 1;
            if refusals % 3 != 0 {
                return Err(i);
            }
            let _ = tx.send(i);
            Ok(())
        }),
    )
    .unwrap();
    send_all(&a, "b", 300);
    receive(&rx, "a", 300);
}
