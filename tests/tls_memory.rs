//! What an idle TLS session holds in the server: the heap bytes still allocated by a
//! `TlsConn` after its handshake (and a message each way), counted by a counting allocator
//! in this test binary, plus its inline size. Issue 12's goal is at most 3 KiB per idle
//! session over the same transport without TLS. After the handshake Aoba keeps only the
//! traffic keys (`src/net/tls/record.rs`): 2,072 bytes here (104 inline; on the heap the
//! record layer's 1,184 with two AES-GCM keys of 544, and rustls's TLS 1.3 key-update
//! state, 560 and its key schedule), against 3,356 when rustls's whole connection stayed.
//! The bound leaves a little room for allocator and library changes.

use aoba::net::tls::{CertFiles, Kind, Tls, TlsConfig, TlsConn};
use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn pump(c: &mut ClientConnection, s: &mut TlsConn, plain: &mut Vec<u8>) {
    aoba::net::tls::testing::pump(c, s, usize::MAX, plain);
}

#[test]
fn an_idle_tls_session_holds_little() {
    let dir = tempfile::tempdir().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let files = CertFiles {
        cert_file: dir.path().join("c.pem"),
        key_file: dir.path().join("k.pem"),
    };
    std::fs::write(&files.cert_file, cert.pem()).unwrap();
    std::fs::write(&files.key_file, key.serialize_pem()).unwrap();
    let tls = Tls::load(
        &TlsConfig {
            certificates: vec![files],
            ..Default::default()
        },
        "localhost",
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(aoba::net::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for (label, kind, resume) in [
        ("direct TLS, full", Kind::Direct, false),
        ("STARTTLS, full", Kind::StartTls, false),
        ("HTTPS, full", Kind::Https, false),
        ("direct TLS, resumed", Kind::Direct, true),
    ] {
        const N: usize = 200;
        let mut servers = Vec::with_capacity(N);
        let mut cfg = (*client).clone();
        if !resume {
            cfg.resumption = rustls::client::Resumption::disabled();
        }
        cfg.alpn_protocols = match kind {
            Kind::Direct => vec![b"xmpp-client".to_vec()],
            Kind::Https => vec![b"http/1.1".to_vec()],
            Kind::StartTls => vec![],
        };
        let cfg = Arc::new(cfg);
        if resume {
            // One handshake to get a ticket.
            let mut c =
                ClientConnection::new(cfg.clone(), ServerName::try_from("localhost").unwrap())
                    .unwrap();
            let mut s = tls.accept(kind).unwrap();
            pump(&mut c, &mut s, &mut Vec::new());
            c.writer().write_all(b"x").unwrap();
            pump(&mut c, &mut s, &mut Vec::new());
        }
        let before = LIVE.load(Ordering::Relaxed);
        for _ in 0..N {
            let mut c =
                ClientConnection::new(cfg.clone(), ServerName::try_from("localhost").unwrap())
                    .unwrap();
            let mut s = tls.accept(kind).unwrap();
            let mut plain = Vec::new();
            pump(&mut c, &mut s, &mut plain);
            c.writer().write_all(b"<presence/>").unwrap();
            pump(&mut c, &mut s, &mut plain);
            let mut out = Vec::new();
            s.encrypt(b"<presence/>", &mut out).unwrap();
            c.read_tls(&mut &out[..]).unwrap();
            c.process_new_packets().unwrap();
            let mut back = Vec::new();
            let _ = c.reader().read_to_end(&mut back);
            assert!(s.ready() && s.cipher.is_empty() && !s.has_pending());
            // The connection gives its buffers back to the pool: only the state stays.
            s.cipher = Vec::new();
            drop(c);
            drop(plain);
            servers.push(s);
        }
        let heap = (LIVE.load(Ordering::Relaxed) - before) as usize / N;
        let inline = std::mem::size_of::<TlsConn>();
        eprintln!("{label}: {heap} heap + {inline} inline bytes per session");
        assert!(heap + inline <= 2304, "{label}: {heap} + {inline} bytes");
        drop(servers);
    }
}
