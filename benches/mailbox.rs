//! The cross-shard hand-off: ns per message through `aoba::runtime::mailbox` between two real
//! threads, each running its own monoio runtime (as two shards do).
//!
//! - `batched`: one thread sends as fast as the queue takes messages (yielding when it is
//!   full), the other drains with `recv_batch(.., 256)`: the cost under load, where one
//!   wake-up is paid per batch, not per message.
//! - `ping_pong`: one message at a time, each answered before the next is sent, so every
//!   message finds the receiver parked and pays a full wake-up (eventfd, io_uring wait):
//!   the cost at low load, i.e. the hand-off latency.
//!
//! The payload has the size of the real `ShardMsg`, so the channel copies as many bytes per
//! slot as the server does. Thread start-up is outside the timed window.
//!
//! Run: `cargo bench --bench mailbox`.

use aoba::runtime::mailbox::{Mailbox, MailboxSender, mailbox};
use aoba::server::ShardMsg;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The server's allocator, so allocation costs are the ones the server pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Same capacity as `server.mailbox_capacity`'s default.
const CAPACITY: usize = 65_536;
/// What a shard drains per turn.
const BATCH: usize = 256;

/// A message as large as `ShardMsg`, carrying a sequence number.
struct Msg {
    seq: u64,
    _pad: [u8; std::mem::size_of::<ShardMsg>().saturating_sub(8)],
}

impl Msg {
    fn new(seq: u64) -> Self {
        Msg {
            seq,
            _pad: [0; std::mem::size_of::<ShardMsg>().saturating_sub(8)],
        }
    }
}

/// Runs `f` on a fresh thread inside its own monoio runtime (io_uring, epoll fallback).
fn on_runtime<R: Send + 'static>(
    f: impl AsyncFnOnce() -> R + Send + 'static,
) -> std::thread::JoinHandle<R> {
    std::thread::spawn(move || {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("monoio runtime")
            .block_on(f())
    })
}

/// Sends until the queue takes the message; a full queue makes the sender yield, as a shard
/// would move on to other work.
fn send(tx: &MailboxSender<Msg>, mut m: Msg) {
    loop {
        match tx.try_send(m) {
            Ok(()) => return,
            Err(back) => {
                m = back;
                std::thread::yield_now();
            }
        }
    }
}

/// Receives exactly one message (waits while there is none).
async fn recv_one(rx: &Mailbox<Msg>, buf: &mut Vec<Msg>) -> Msg {
    buf.clear();
    rx.recv_batch(buf, 1).await;
    buf.pop().expect("recv_batch returns at least one message")
}

/// `n` messages from one runtime thread to another, drained in batches of up to 256.
fn batched(n: u64) -> Duration {
    let (tx, rx) = mailbox::<Msg>(CAPACITY);
    let start = Arc::new(Barrier::new(2));
    let go = start.clone();
    let receiver = on_runtime(async move || {
        let mut buf = Vec::with_capacity(BATCH);
        let mut next = 0u64;
        go.wait();
        while next < n {
            buf.clear();
            rx.recv_batch(&mut buf, BATCH).await;
            for m in buf.drain(..) {
                debug_assert_eq!(m.seq, next);
                next += 1;
            }
        }
        Instant::now()
    });
    let sender = on_runtime(async move || {
        start.wait();
        let t0 = Instant::now();
        for i in 0..n {
            send(&tx, Msg::new(black_box(i)));
        }
        t0
    });
    let t0 = sender.join().expect("sender thread");
    let t1 = receiver.join().expect("receiver thread");
    t1.duration_since(t0)
}

/// `n` messages alternating direction, each sent only after the previous one arrived.
fn ping_pong(n: u64) -> Duration {
    let (to_b, b_rx) = mailbox::<Msg>(CAPACITY);
    let (to_a, a_rx) = mailbox::<Msg>(CAPACITY);
    let start = Arc::new(Barrier::new(2));
    let go = start.clone();
    // B answers every message it gets with the next sequence number.
    let b = on_runtime(async move || {
        let mut buf = Vec::with_capacity(1);
        go.wait();
        let mut seq = 1u64;
        while seq < n {
            let m = recv_one(&b_rx, &mut buf).await;
            debug_assert_eq!(m.seq + 1, seq);
            send(&to_a, Msg::new(seq));
            seq += 2;
        }
        if seq == n {
            // n is odd: the last message, sent by A, still has to arrive here.
            recv_one(&b_rx, &mut buf).await;
        }
    });
    let a = on_runtime(async move || {
        let mut buf = Vec::with_capacity(1);
        start.wait();
        let t0 = Instant::now();
        let mut seq = 0u64;
        while seq < n {
            send(&to_b, Msg::new(seq));
            if seq + 1 < n {
                let m = recv_one(&a_rx, &mut buf).await;
                debug_assert_eq!(m.seq, seq + 1);
            }
            seq += 2;
        }
        t0
    });
    let t0 = a.join().expect("thread A");
    b.join().expect("thread B");
    t0.elapsed()
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("mailbox");
    g.throughput(Throughput::Elements(1));
    g.bench_function("batched", |b| b.iter_custom(|iters| batched(iters.max(1))));
    g.bench_function("ping_pong", |b| {
        b.iter_custom(|iters| ping_pong(iters.max(1)))
    });
    g.finish();
}

criterion_group! {
    name = benches_group;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(benches_group);
