//! TLS per message, in process, with the server's `TlsConn` (rustls unbuffered, ring) and a
//! rustls client, after a TLS 1.3 handshake (AES-128-GCM, the suite rustls picks first):
//!
//! - `encrypt_chat`: the server encrypts one chat message (the `stanza` bench's 1:1 chat
//!   line, 280 bytes) into a record: what the writer adds per message on a TLS connection.
//! - `decrypt_chat`: the server decrypts one such record from the client into its plaintext
//!   buffer: what the reader adds per message (the client's encryption is setup, not timed).
//! - `encrypt_16k`: one full record (16 KiB) — the writer's bulk rate.
//! - `handshake_full` / `handshake_resumed`: a whole TLS 1.3 handshake, client and server
//!   both in the loop (so about twice the server's share), with and without a ticket.
//!
//! Run: `cargo bench --bench tls`.

use aoba::net::tls::{CertFiles, Kind, Tls, TlsConfig, TlsConn};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHAT: &str = "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='a1b2c3d4' xml:lang='en'><body>Hello &amp; welcome, Bob! How are you doing today? This is a typical short chat line.</body><request xmlns='urn:xmpp:receipts'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>";

struct Setup {
    _dir: tempfile::TempDir,
    tls: Tls,
    client: Arc<rustls::ClientConfig>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_file = dir.path().join("c.pem");
    let key_file = dir.path().join("k.pem");
    std::fs::write(&cert_file, c.cert.pem()).unwrap();
    std::fs::write(&key_file, c.signing_key.serialize_pem()).unwrap();
    let tls = Tls::load(
        &TlsConfig {
            certificates: vec![CertFiles {
                cert_file,
                key_file,
            }],
            ..Default::default()
        },
        "localhost",
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(c.cert.der().clone()).unwrap();
    // X25519 first, as real clients offer it (see `aoba::net::tls::provider`).
    let provider = aoba::net::tls::provider();
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    Setup {
        _dir: dir,
        tls,
        client,
    }
}

/// A handshake in memory; returns both ends, the ticket delivered to the client.
fn handshake(s: &Setup, cfg: &Arc<rustls::ClientConfig>) -> (ClientConnection, TlsConn) {
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = ClientConnection::new(cfg.clone(), name).unwrap();
    let mut t = s.tls.accept(Kind::StartTls).unwrap();
    aoba::net::tls::testing::pump(&mut c, &mut t, usize::MAX, &mut Vec::new());
    assert!(t.ready() && !c.is_handshaking());
    (c, t)
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let mut g = c.benchmark_group("tls");
    g.throughput(Throughput::Bytes(CHAT.len() as u64));
    let (mut client, mut server) = handshake(&s, &s.client);
    let mut out = Vec::with_capacity(32 * 1024);
    g.bench_function("encrypt_chat", |b| {
        b.iter(|| {
            out.clear();
            server
                .encrypt(black_box(CHAT.as_bytes()), &mut out)
                .unwrap();
            black_box(out.len());
        })
    });
    let mut plain = Vec::with_capacity(32 * 1024);
    g.bench_function("decrypt_chat", |b| {
        b.iter_batched(
            || {
                client.writer().write_all(CHAT.as_bytes()).unwrap();
                let mut wire = Vec::new();
                client.write_tls(&mut wire).unwrap();
                wire
            },
            |wire| {
                server.cipher.extend_from_slice(&wire);
                plain.clear();
                server.read(&mut plain).unwrap();
                black_box(plain.len());
            },
            BatchSize::SmallInput,
        )
    });
    let big = vec![b'x'; 16 * 1024];
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("encrypt_16k", |b| {
        b.iter(|| {
            out.clear();
            server.encrypt(black_box(&big), &mut out).unwrap();
            black_box(out.len());
        })
    });
    g.throughput(Throughput::Elements(1));
    let mut no_tickets = (*s.client).clone();
    no_tickets.resumption = rustls::client::Resumption::disabled();
    let no_tickets = Arc::new(no_tickets);
    g.bench_function("handshake_full", |b| {
        b.iter(|| black_box(handshake(&s, &no_tickets)))
    });
    g.bench_function("handshake_resumed", |b| {
        b.iter(|| {
            let (c, t) = handshake(&s, &s.client);
            assert!(t.resumed());
            black_box((c, t))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
