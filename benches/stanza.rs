//! The stanza hot path, in process: ns per stanza for each step of a 1:1 chat message.
//!
//! - `tokenize_only`: xmlparser over the stanza, every token visited (the floor).
//! - `parse_view`: the validated, borrowing Stanza view (tokenize + checks).
//! - `chat_route`: what the server does per message on the sender's side when the recipient
//!   is on the same shard: parse, JID of `to`, stamp `from` and serialize once, deliver to
//!   the recipient's outbound queue (RFC 6121 §8.5 rules).
//! - `ws_unmask`: parse and unmask the client's WebSocket frame around it.
//!
//! Group `framer` (RFC 6120 over TCP): a stream of the same chat message without `xmlns`
//! (TCP stanzas inherit it), 1000 per stream, fed in 4 KiB reads into a `Vec<u8>` the way a
//! connection does (append the read, frame, drain what was released); throughput in
//! stanzas, so ns per stanza = time / 1000.
//! - `frame_4k_reads`: the framer alone (with the UTF-8 check of each element).
//! - `frame_and_parse_4k_reads`: plus `Stanza::parse` of each element (compare with
//!   `stanza/parse_view`).
//!
//! Run: `cargo bench --bench stanza` (only the framer: `cargo bench --bench stanza -- framer`).

use aoba::config::Config;
use aoba::server::Shard;
use aoba::xml::framer::{Event, FrameLimits, Framer};
use aoba::xml::stanza::{Limits, Stanza};
use aoba::xmpp::jid::Jid;
use aoba::xmpp::router::{self, Kind, SType};
use aoba::xmpp::sink::Sink;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::rc::Rc;

/// The server's allocator, so allocation costs are the ones the server pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHAT: &str = "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='a1b2c3d4' xml:lang='en'><body>Hello &amp; welcome, Bob! How are you doing today? This is a typical short chat line.</body><request xmlns='urn:xmpp:receipts'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>";

fn shard() -> Rc<Shard> {
    let mut cfg = Config::default();
    cfg.auth.jwt_secret = "bench".into();
    Shard::standalone(cfg)
}

fn benches(c: &mut Criterion) {
    let limits = Limits {
        max_depth: 32,
        max_attrs: 64,
    };
    let mut g = c.benchmark_group("stanza");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tokenize_only", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for t in xmlparser::Tokenizer::from(black_box(CHAT)) {
                n += t.is_ok() as usize;
            }
            n
        })
    });
    g.bench_function("parse_view", |b| {
        b.iter(|| Stanza::parse(black_box(CHAT), &limits).unwrap().elems.len())
    });

    // The route decision alone: JID of `to`, home shard, type (no delivery).
    let st_once = Stanza::parse(CHAT, &limits).unwrap();
    g.bench_function("route_decision", |b| {
        b.iter(|| {
            let to = Jid::parse(&st_once.attr(0, "to").unwrap().value()).unwrap();
            let h = aoba::runtime::home(to.bare(), 4);
            let t = SType::parse(
                Kind::Message,
                st_once.attr(0, "type").map(|a| a.value()).as_deref(),
            );
            (h, t.is_some())
        })
    });
    // Serialization alone: stamp `from` (and the normalized `to`) into one buffer.
    let from = Jid::parse("alice@localhost/web-1").unwrap();
    g.bench_function("serialize", |b| {
        b.iter(|| {
            router::stamp(
                black_box(&st_once),
                Kind::Message,
                SType::Chat,
                from.as_str(),
                Some("bob@localhost"),
            )
            .payload
            .len()
        })
    });

    let shard = shard();
    let bob = Rc::new(Sink::new(1, usize::MAX));
    let bob_jid = Jid::parse("bob@localhost/phone").unwrap();
    shard
        .sessions
        .borrow_mut()
        .bind(bob_jid.clone(), bob.clone(), 10)
        .unwrap();
    shard
        .sessions
        .borrow_mut()
        .own_resource_mut(&bob_jid, 1)
        .unwrap()
        .available = true;
    let alice = Jid::parse("alice@localhost/web-1").unwrap();
    let mut n = 0u64;
    g.bench_function("chat_route", |b| {
        b.iter(|| {
            let st = Stanza::parse(black_box(CHAT), &limits).unwrap();
            let to = Jid::parse(&st.attr(0, "to").unwrap().value()).unwrap();
            let stype = SType::parse(
                Kind::Message,
                st.attr(0, "type").map(|a| a.value()).as_deref(),
            )
            .unwrap();
            router::route(
                &*shard,
                router::stamp(&st, Kind::Message, stype, alice.as_str(), Some(to.as_str())),
            );
            n += 1;
            if n.is_multiple_of(1024) {
                bob.out.take_unsent(); // what the writer does: empty the queue
            }
        })
    });
    let frame = {
        let k = [0x11u8, 0x22, 0x33, 0x44];
        let mut v = vec![0x81, 0x80 | 126];
        v.extend_from_slice(&(CHAT.len() as u16).to_be_bytes());
        v.extend_from_slice(&k);
        v.extend(CHAT.bytes().enumerate().map(|(i, b)| b ^ k[i % 4]));
        v
    };
    let mut buf = frame.clone();
    g.bench_function("ws_unmask", |b| {
        b.iter(|| {
            buf.copy_from_slice(&frame);
            aoba::net::websocket::parse_frame(black_box(&mut buf), 1 << 20)
                .unwrap()
                .unwrap()
                .frame_end
        })
    });
    g.finish();
}

/// Feeds `stream` in 4 KiB reads through a framer; calls `each` on every element.
fn frame_stream(stream: &[u8], limits: FrameLimits, buf: &mut Vec<u8>, mut each: impl FnMut(&str)) {
    let mut f = Framer::new(limits);
    buf.clear();
    for read in stream.chunks(4096) {
        buf.extend_from_slice(read);
        while let Some(ev) = f.next(buf).unwrap() {
            if let Event::Element { text, .. } = ev {
                each(text);
            }
        }
        let n = f.consumed();
        buf.drain(..n);
        f.consume(n);
    }
}

fn framer(c: &mut Criterion) {
    const N: usize = 1000;
    let xml = Limits {
        max_depth: 32,
        max_attrs: 64,
    };
    let limits = FrameLimits::new(256 * 1024, xml);
    let chat = CHAT.replace(" xmlns='jabber:client'", "");
    let mut stream = String::from(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
    );
    for _ in 0..N {
        stream.push_str(&chat);
    }
    stream.push_str("</stream:stream>");
    let stream = stream.into_bytes();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut count = 0;
    frame_stream(&stream, limits, &mut buf, |t| {
        assert_eq!(t, chat);
        count += 1;
    });
    assert_eq!(count, N);
    let mut g = c.benchmark_group("framer");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("frame_4k_reads", |b| {
        b.iter(|| {
            let mut n = 0usize;
            frame_stream(black_box(&stream), limits, &mut buf, |t| n += t.len());
            n
        })
    });
    g.bench_function("frame_and_parse_4k_reads", |b| {
        b.iter(|| {
            let mut n = 0usize;
            frame_stream(black_box(&stream), limits, &mut buf, |t| {
                n += Stanza::parse(t, &xml).unwrap().elems.len()
            });
            n
        })
    });
    g.finish();
}

criterion_group!(benches_group, benches, framer);
criterion_main!(benches_group);
