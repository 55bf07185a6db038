//! The XMPP-FTW edges, in process: what a JSON session costs per stanza on top of the XML
//! path (compare with `cargo bench --bench stanza`).
//!
//! - `render_chat`: a delivered chat message (as queued for the session) → parsed view →
//!   the `xmpp.chat.message` event → its Socket.IO text (`42[...]`).
//! - `request_chat`: the browser's `42["xmpp.chat.message",{...}]` → Socket.IO packet →
//!   the stanza an XML client would have sent.
//!
//! Run: `cargo bench --bench ftw`.

use aoba::ftw::transport::{self, Packet, Proto};
use aoba::ftw::{Ctx, render, request};
use aoba::xml::stanza::{Limits, Stanza};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DELIVERED: &str = "<message xmlns='jabber:client' to='bob@localhost/web' type='chat' id='a1b2c3d4' xml:lang='en' from='alice@localhost/phone'><body>Hello &amp; welcome, Bob! How are you doing today? This is a typical short chat line.</body><request xmlns='urn:xmpp:receipts'/><active xmlns='http://jabber.org/protocol/chatstates'/><stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='0001a2b3c4d5e6f7'/></message>";

const EVENT: &str = "4212[\"xmpp.chat.message\",{\"to\":\"bob@localhost\",\"content\":\"Hello & welcome, Bob! How are you doing today? This is a typical short chat line.\",\"state\":\"active\",\"receipt\":true}]";

fn ctx() -> Ctx<'static> {
    Ctx {
        jid: "bob@localhost/web",
        domain: "localhost",
        muc_domain: Some("conference.localhost"),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ftw");
    g.throughput(Throughput::Elements(1));
    g.bench_function("render_chat", |b| {
        b.iter(|| {
            let st = Stanza::parse(black_box(DELIVERED), &Limits::default()).unwrap();
            let outs = render::render(&st, &ctx(), &|_| None);
            let mut n = 0;
            for o in outs {
                if let render::Out::Event { name, payload } = o {
                    n += transport::event(Proto::SocketIo, name, &payload).len();
                }
            }
            black_box(n)
        })
    });
    g.bench_function("request_chat", |b| {
        let mut next = 0u64;
        b.iter(|| {
            let Ok(Packet::Event { name, payload, ack }) =
                transport::parse(Proto::SocketIo, black_box(EVENT))
            else {
                panic!("not an event")
            };
            let r = request::request(
                &name,
                &payload,
                ack.is_some(),
                &ctx(),
                &|_| None,
                &mut || {
                    next += 1;
                    format!("ftw{next}")
                },
            )
            .unwrap();
            black_box(r.stanzas.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
