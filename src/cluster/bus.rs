//! The pipe between nodes (issue 14): core NATS, one subject per node
//! (`aoba.{cluster}.node.{node}`), reached from the shards through a bounded queue and one
//! gateway thread per node. The gateway runs a tokio current-thread runtime with one
//! async-nats client (shards never run tokio), batches the frames waiting for each
//! destination node into one NATS message, and hands what arrives to `deliver` (the shard
//! mailboxes).
//!
//! Order: one client connection publishes everything, and NATS keeps one publisher's order
//! per subject, so the frames one node sends another arrive in the order they were queued.
//! Reliability does not come from the bus (core NATS is at most once; a restart of
//! nats-server loses what was in flight): the nodes keep what they sent until the
//! receiver's commit barrier covers it (issue 14's outbox, built on this).
//!
//! A NATS message: `b'A', 1` (format), the sender's name (`u8` length, bytes), then frames
//! of `shard: u16`, `len: u32` (big-endian) and `len` bytes. A message that does not parse
//! is dropped whole and counted; nothing in it can panic the gateway.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the bus needs; these become `cluster.*` configuration keys when nodes are wired.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `nats://host:port`.
    pub url: String,
    /// The subjects' namespace: nodes of one cluster share it.
    pub cluster: String,
    /// This node's name (letters, digits, `-` and `_`, at most 64).
    pub node: String,
    /// Frames the shards may queue for the gateway; past it `send` says `Full`.
    pub queue_frames: usize,
    /// The most bytes one NATS message carries (below nats-server's `max_payload`, 1 MiB by
    /// default); a frame larger than it travels alone.
    pub batch_bytes_max: usize,
    /// How long `start` waits for the first connection.
    pub connect_timeout_ms: u64,
}

impl BusConfig {
    pub fn new(url: &str, cluster: &str, node: &str) -> BusConfig {
        BusConfig {
            url: url.into(),
            cluster: cluster.into(),
            node: node.into(),
            queue_frames: 65_536,
            batch_bytes_max: 256 * 1024,
            connect_timeout_ms: 5_000,
        }
    }
}

/// Names usable as one NATS subject token.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn subject(cluster: &str, node: &str) -> String {
    format!("aoba.{cluster}.node.{node}")
}

/// A frame from another node, for one of this node's shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub from: Arc<str>,
    pub shard: u16,
    pub body: Bytes,
    /// The epoch of the view the sender routed it by (its sequenced frames carry it; 0
    /// for others).
    pub epoch: i64,
}

/// Why `send` did not queue a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The queue holds `queue_frames`: stop reading clients until it drains.
    Full,
    /// The gateway has stopped.
    Closed,
    /// The destination is not a valid node name.
    BadNode,
}

/// Counters, read by tests and metrics.
#[derive(Debug, Default)]
pub struct BusStats {
    pub frames_out: AtomicU64,
    pub messages_out: AtomicU64,
    pub frames_in: AtomicU64,
    pub messages_in: AtomicU64,
    /// Messages dropped whole because they did not parse.
    pub malformed_in: AtomicU64,
    /// Frames NATS refused (larger than the server's `max_payload`, or no connection).
    pub publish_failed: AtomicU64,
    /// Times the connection to nats-server was lost.
    pub disconnects: AtomicU64,
    /// Messages the client library dropped because the gateway did not read them fast
    /// enough (its `SlowConsumer` event), or the server reported an error.
    pub errors: AtomicU64,
}

struct Out {
    node: Arc<str>,
    shard: u16,
    body: Bytes,
}

/// The receiving side: called on the gateway thread for each frame, in order; `Err` gives
/// the frame back when the shard cannot take it now (it is offered again shortly, and the
/// frames after it wait).
pub type Deliver = Box<dyn FnMut(Incoming) -> Result<(), Incoming> + Send>;

/// One node's end of the bus.
pub struct Bus {
    tx: Option<tokio::sync::mpsc::Sender<Out>>,
    stats: Arc<BusStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bus {
    /// Connects (waiting at most `connect_timeout_ms`), subscribes to this node's subject
    /// and starts the gateway thread.
    pub fn start(cfg: BusConfig, deliver: Deliver) -> Result<Bus, String> {
        for (what, v) in [("cluster", &cfg.cluster), ("node", &cfg.node)] {
            if !valid_name(v) {
                return Err(format!(
                    "{what} name {v:?}: use 1 to 64 letters, digits, '-' or '_'"
                ));
            }
        }
        let (tx, rx) = tokio::sync::mpsc::channel(cfg.queue_frames.max(1));
        let stats = Arc::new(BusStats::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("aoba-bus-{}", cfg.node))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("bus runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(gateway(cfg, rx, deliver, st, ready_tx));
            })
            .map_err(|e| format!("bus thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Bus {
                tx: Some(tx),
                stats,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err("bus thread ended".into())
            }
        }
    }

    /// Queues `body` for `shard` of node `node`; never blocks.
    pub fn send(&self, node: &str, shard: u16, body: Bytes) -> Result<(), SendError> {
        self.send_to(Arc::from(node), shard, body)
    }

    /// `send` with the node's name already shared (no allocation per frame).
    pub fn send_to(&self, node: Arc<str>, shard: u16, body: Bytes) -> Result<(), SendError> {
        if !valid_name(&node) {
            return Err(SendError::BadNode);
        }
        let tx = self.tx.as_ref().ok_or(SendError::Closed)?;
        tx.try_send(Out { node, shard, body }).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => SendError::Full,
            tokio::sync::mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    pub fn stats(&self) -> &BusStats {
        &self.stats
    }

    /// The counters, shared (for the metrics scrape).
    pub fn stats_arc(&self) -> Arc<BusStats> {
        self.stats.clone()
    }
}

impl Drop for Bus {
    /// Sends what is queued, then stops the gateway.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn gateway(
    cfg: BusConfig,
    mut rx: tokio::sync::mpsc::Receiver<Out>,
    mut deliver: Deliver,
    stats: Arc<BusStats>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    use futures_util::StreamExt;
    let ev = stats.clone();
    let node = cfg.node.clone();
    let opts = async_nats::ConnectOptions::new()
        .event_callback(move |e| {
            match e {
                async_nats::Event::Connected => {}
                async_nats::Event::Disconnected => {
                    ev.disconnects.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    ev.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            tracing::warn!(node = %node, event = %e, "bus: NATS event");
            std::future::ready(())
        })
        .name(format!("aoba-{}", cfg.node))
        .connection_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        // Reconnects for ever: a restarted nats-server is found again.
        .max_reconnects(None);
    let connect = tokio::time::timeout(
        Duration::from_millis(cfg.connect_timeout_ms),
        async_nats::connect_with_options(cfg.url.as_str(), opts),
    )
    .await;
    let client = match connect {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let _ = ready.send(Err(format!("NATS {}: {e}", cfg.url)));
            return;
        }
        Err(_) => {
            let _ = ready.send(Err(format!(
                "NATS {}: no connection within {} ms",
                cfg.url, cfg.connect_timeout_ms
            )));
            return;
        }
    };
    let mut sub = match client.subscribe(subject(&cfg.cluster, &cfg.node)).await {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(format!("NATS subscribe: {e}")));
            return;
        }
    };
    // Up only once the server routes to the subscription: a probe we publish to ourselves
    // comes back (a flush alone does not wait for the server to have processed the SUB, and
    // another node's first frames would find no subscriber). Frames that arrive first are
    // delivered as usual.
    let probe = Bytes::from_static(PROBE);
    let me_subject = subject(&cfg.cluster, &cfg.node);
    let probed = async {
        client.publish(me_subject, probe).await.ok()?;
        client.flush().await.ok()?;
        while let Some(msg) = sub.next().await {
            if msg.payload.as_ref() == PROBE {
                return Some(());
            }
            on_message(msg.payload, &mut deliver, &stats).await;
        }
        None
    };
    match tokio::time::timeout(Duration::from_millis(cfg.connect_timeout_ms), probed).await {
        Ok(Some(())) => {}
        _ => {
            let _ = ready.send(Err(format!(
                "NATS {}: the subscription was not confirmed within {} ms",
                cfg.url, cfg.connect_timeout_ms
            )));
            return;
        }
    }
    let _ = ready.send(Ok(()));
    tracing::info!(node = %cfg.node, url = %cfg.url, "bus connected");
    let me: Arc<str> = Arc::from(cfg.node.as_str());
    let mut batches: Vec<(Arc<str>, BytesMut)> = Vec::new();
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(first) = out else { break };
                let mut total = 0usize;
                let mut next = Some(first);
                while let Some(o) = next.take() {
                    total += o.body.len() + 6;
                    add(&mut batches, &me, o, &cfg, &client, &stats).await;
                    if total < cfg.batch_bytes_max {
                        next = rx.try_recv().ok();
                    }
                }
                for (node, payload) in batches.drain(..) {
                    publish(&client, &cfg, &node, payload, &stats).await;
                }
            }
            msg = sub.next() => {
                let Some(msg) = msg else { break };
                on_message(msg.payload, &mut deliver, &stats).await;
            }
        }
    }
    let _ = client.flush().await;
}

/// A node's own start-up probe (format 0): never a frame.
const PROBE: &[u8] = b"A\x00";

/// Delivers a message's frames in order (waiting for a shard that cannot take one now).
async fn on_message(payload: Bytes, deliver: &mut Deliver, stats: &BusStats) {
    if payload.as_ref() == PROBE {
        return;
    }
    stats.messages_in.fetch_add(1, Ordering::Relaxed);
    let Some((from, frames)) = parse(payload) else {
        stats.malformed_in.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("bus: a message that does not parse was dropped");
        return;
    };
    for (shard, body) in frames {
        stats.frames_in.fetch_add(1, Ordering::Relaxed);
        let mut inc = Incoming {
            from: from.clone(),
            shard,
            body,
            epoch: 0,
        };
        // Backpressure: wait for the shard rather than drop.
        while let Err(back) = deliver(inc) {
            inc = back;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Appends a frame to its node's batch, sending that batch first if the frame would not
/// fit (the order per node is kept).
async fn add(
    batches: &mut Vec<(Arc<str>, BytesMut)>,
    me: &Arc<str>,
    o: Out,
    cfg: &BusConfig,
    client: &async_nats::Client,
    stats: &BusStats,
) {
    let i = match batches.iter().position(|(n, _)| *n == o.node) {
        Some(i) => i,
        None => {
            batches.push((o.node.clone(), header(me)));
            batches.len() - 1
        }
    };
    let full = batches.get(i).is_some_and(|(_, b)| {
        b.len() > 3 + me.len() && b.len() + 6 + o.body.len() > cfg.batch_bytes_max
    });
    if full {
        let fresh = header(me);
        if let Some((node, b)) = batches.get_mut(i) {
            let payload = std::mem::replace(b, fresh);
            let node = node.clone();
            publish(client, cfg, &node, payload, stats).await;
        }
    }
    if let Some((_, b)) = batches.get_mut(i) {
        b.put_u16(o.shard);
        b.put_u32(o.body.len() as u32);
        b.extend_from_slice(&o.body);
    }
    stats.frames_out.fetch_add(1, Ordering::Relaxed);
}

fn header(me: &str) -> BytesMut {
    let mut b = BytesMut::with_capacity(1024);
    b.put_u8(b'A');
    b.put_u8(1);
    b.put_u8(me.len() as u8);
    b.extend_from_slice(me.as_bytes());
    b
}

async fn publish(
    client: &async_nats::Client,
    cfg: &BusConfig,
    node: &str,
    payload: BytesMut,
    stats: &BusStats,
) {
    match client
        .publish(subject(&cfg.cluster, node), payload.freeze())
        .await
    {
        Ok(()) => {
            stats.messages_out.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            stats.publish_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(node, error = %e, "bus: publish failed");
        }
    }
}

/// One message: its sender, and its frames (shard, body) in order.
type Message = (Arc<str>, Vec<(u16, Bytes)>);

/// The sender and the frames of one message; `None` if any of it is malformed.
fn parse(mut p: Bytes) -> Option<Message> {
    if p.len() < 3 || p[0] != b'A' || p[1] != 1 {
        return None;
    }
    let n = p[2] as usize;
    p.advance(3);
    if p.len() < n {
        return None;
    }
    let from = std::str::from_utf8(&p[..n]).ok()?;
    if !valid_name(from) {
        return None;
    }
    let from: Arc<str> = Arc::from(from);
    p.advance(n);
    let mut frames = Vec::new();
    while !p.is_empty() {
        if p.len() < 6 {
            return None;
        }
        let shard = p.get_u16();
        let len = p.get_u32() as usize;
        if p.len() < len {
            return None;
        }
        frames.push((shard, p.split_to(len)));
    }
    Some((from, frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_and_garbage_does_not() {
        let mut b = header("n1");
        for (s, body) in [(0u16, &b"<a/>"[..]), (3, b""), (1, b"x")] {
            b.put_u16(s);
            b.put_u32(body.len() as u32);
            b.extend_from_slice(body);
        }
        let whole = b.freeze();
        let (from, frames) = parse(whole.clone()).unwrap();
        assert_eq!(&*from, "n1");
        assert_eq!(
            frames,
            vec![
                (0, Bytes::from_static(b"<a/>")),
                (3, Bytes::new()),
                (1, Bytes::from_static(b"x"))
            ]
        );
        // Every truncation but the frame boundaries is refused; none panics.
        for cut in 0..whole.len() {
            let r = parse(whole.slice(..cut));
            let boundary = [5, 15, 21].contains(&cut);
            assert_eq!(r.is_some(), boundary, "cut {cut}");
        }
        assert!(
            parse(Bytes::from_static(b"A\x01\x02n!")).is_none(),
            "bad name"
        );
        assert!(parse(Bytes::from_static(b"B\x01\x00")).is_none());
    }

    #[test]
    fn names() {
        assert!(valid_name("node-1_a"));
        assert!(!valid_name(""));
        assert!(!valid_name("a.b"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
