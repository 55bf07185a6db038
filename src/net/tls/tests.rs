//! `TlsConn` against a real rustls client, in memory: handshakes, records split at every
//! byte and coalesced, SNI and the default certificate, ALPN refusal, reload, resumption,
//! close_notify.

use super::*;
use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use std::io::{Read, Write};

struct Cert {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn mint(names: &[&str]) -> Cert {
    let c =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    Cert {
        cert_pem: c.cert.pem(),
        key_pem: c.signing_key.serialize_pem(),
        der: c.cert.der().clone(),
    }
}

fn write_files(dir: &std::path::Path, tag: &str, c: &Cert) -> CertFiles {
    let cert_file = dir.join(format!("{tag}.crt"));
    let key_file = dir.join(format!("{tag}.key"));
    std::fs::write(&cert_file, &c.cert_pem).unwrap();
    std::fs::write(&key_file, &c.key_pem).unwrap();
    CertFiles {
        cert_file,
        key_file,
    }
}

fn client_config(trust: &[&Cert], alpn: &[&[u8]], sni: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in trust {
        roots.add(c.der.clone()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg.enable_sni = sni;
    Arc::new(cfg)
}

/// `testing::pump`, returning the plaintext the server got.
fn pump(client: &mut ClientConnection, server: &mut TlsConn, chunk: usize) -> Vec<u8> {
    let mut plain = Vec::new();
    testing::pump(client, server, chunk, &mut plain);
    plain
}

fn setup(names: &[&str]) -> (tempfile::TempDir, Cert, Tls) {
    let dir = tempfile::tempdir().unwrap();
    let cert = mint(names);
    let files = write_files(dir.path(), "a", &cert);
    let tls = Tls::load(
        &TlsConfig {
            certificates: vec![files],
            ..Default::default()
        },
        "localhost",
    )
    .unwrap();
    (dir, cert, tls)
}

fn connect(
    tls: &Tls,
    kind: Kind,
    cfg: Arc<rustls::ClientConfig>,
    name: &str,
) -> (ClientConnection, TlsConn) {
    let client =
        ClientConnection::new(cfg, ServerName::try_from(name.to_string()).unwrap()).unwrap();
    let server = tls.accept(kind).unwrap();
    (client, server)
}

#[test]
fn handshake_and_data_both_ways_at_every_split() {
    let (_d, cert, tls) = setup(&["localhost"]);
    let cfg = client_config(&[&cert], &[], true);
    for chunk in [1, 2, 3, 5, 7, 64, 1000, usize::MAX] {
        let (mut client, mut server) = connect(&tls, Kind::StartTls, cfg.clone(), "localhost");
        pump(&mut client, &mut server, chunk);
        assert!(server.ready() && !client.is_handshaking(), "chunk {chunk}");
        // Client → server: several records in one write, each split at `chunk`.
        let msg = "<m to='b'><b>héllo</b></m>".repeat(3);
        client.writer().write_all(msg.as_bytes()).unwrap();
        client.writer().write_all(b"<r/>").unwrap();
        let got = pump(&mut client, &mut server, chunk);
        assert_eq!(got, format!("{msg}<r/>").into_bytes(), "chunk {chunk}");
        assert!(server.cipher.is_empty(), "no partial record left");
        // Server → client.
        let mut out = Vec::new();
        server.encrypt(b"<p/>", &mut out).unwrap();
        client.read_tls(&mut &out[..]).unwrap();
        client.process_new_packets().unwrap();
        let mut back = String::new();
        let _ = client.reader().read_to_string(&mut back);
        assert_eq!(back, "<p/>");
    }
}

#[test]
fn big_plaintext_is_cut_into_full_records() {
    let (_d, cert, tls) = setup(&["localhost"]);
    let (mut client, mut server) = connect(
        &tls,
        Kind::StartTls,
        client_config(&[&cert], &[], true),
        "localhost",
    );
    pump(&mut client, &mut server, usize::MAX);
    let big: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut out = Vec::new();
    server.encrypt(&big, &mut out).unwrap();
    assert!(
        out.len() <= big.len() + 3 * RECORD_OVERHEAD,
        "three records"
    );
    let mut back = Vec::new();
    let mut wire = &out[..];
    while !wire.is_empty() {
        client.read_tls(&mut wire).unwrap();
        client.process_new_packets().unwrap();
        let _ = client.reader().read_to_end(&mut back);
    }
    assert!(back == big, "{} bytes back", back.len());
    // And a full 16 KiB record from the client, fed a byte at a time.
    client
        .writer()
        .write_all(&big[..MAX_RECORD_PLAINTEXT])
        .unwrap();
    let got = pump(&mut client, &mut server, 1);
    assert!(got == big[..MAX_RECORD_PLAINTEXT], "{} bytes", got.len());
}

#[test]
fn certificate_by_sni_and_the_first_without_sni() {
    let dir = tempfile::tempdir().unwrap();
    let a = mint(&["localhost"]);
    let b = mint(&["chat.example", "*.other.example"]);
    let tls = Tls::load(
        &TlsConfig {
            certificates: vec![
                write_files(dir.path(), "a", &a),
                write_files(dir.path(), "b", &b),
            ],
            ..Default::default()
        },
        "localhost",
    )
    .unwrap();
    // Each client trusts only one of the two: the handshake succeeds only with that one.
    for (name, trust, sni) in [
        ("chat.example", &b, true),
        ("x.other.example", &b, true),
        ("localhost", &a, true),
        ("chat.example", &a, false), // no SNI: the first certificate (verified as "localhost" fails)
    ] {
        let verify_as = if sni { name } else { "localhost" };
        let (mut client, mut server) = connect(
            &tls,
            Kind::StartTls,
            client_config(&[trust], &[], sni),
            verify_as,
        );
        pump(&mut client, &mut server, usize::MAX);
        assert!(server.ready(), "{name} sni={sni}");
        let peer = client.peer_certificates().unwrap()[0].clone();
        assert_eq!(peer, trust.der, "{name} sni={sni}");
    }
    // A name no certificate has: the first one.
    let (mut client, mut server) = connect(
        &tls,
        Kind::StartTls,
        client_config(&[&a, &b], &[], true),
        "nope.example",
    );
    for _ in 0..4 {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        server.cipher.extend_from_slice(&wire);
        let _ = server.read(&mut Vec::new());
        let out = server.take_pending();
        let _ = client.read_tls(&mut &out[..]);
        let _ = client.process_new_packets();
    }
    assert!(
        !server.ready(),
        "the client refuses a certificate not valid for its name"
    );
}

#[test]
fn direct_tls_refuses_other_alpn_and_says_so() {
    let (_d, cert, tls) = setup(&["localhost"]);
    let (mut client, mut server) = connect(
        &tls,
        Kind::Direct,
        client_config(&[&cert], &[b"h2"], true),
        "localhost",
    );
    let mut wire = Vec::new();
    client.write_tls(&mut wire).unwrap();
    server.cipher.extend_from_slice(&wire);
    let err = server.read(&mut Vec::new()).unwrap_err();
    assert!(
        matches!(err, rustls::Error::NoApplicationProtocol),
        "{err:?}"
    );
    let alert = server.take_pending();
    assert!(!alert.is_empty(), "the peer is told");
    client.read_tls(&mut &alert[..]).unwrap();
    assert!(client.process_new_packets().is_err());
    // xmpp-client is agreed on; no ALPN at all is accepted too.
    for alpn in [&[&b"xmpp-client"[..]][..], &[]] {
        let (mut client, mut server) = connect(
            &tls,
            Kind::Direct,
            client_config(&[&cert], alpn, true),
            "localhost",
        );
        pump(&mut client, &mut server, usize::MAX);
        assert!(server.ready());
        assert_eq!(server.alpn(), alpn.first().copied());
    }
}

#[test]
fn garbage_is_an_error_with_an_alert() {
    let (_d, _cert, tls) = setup(&["localhost"]);
    let mut server = tls.accept(Kind::StartTls).unwrap();
    server
        .cipher
        .extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(server.read(&mut Vec::new()).is_err());
}

#[test]
fn reload_serves_the_new_certificate_and_keeps_the_old_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let old = mint(&["localhost"]);
    let files = write_files(dir.path(), "a", &old);
    let tls = Tls::load(
        &TlsConfig {
            certificates: vec![files.clone()],
            ..Default::default()
        },
        "localhost",
    )
    .unwrap();
    let served = |trust: &Cert| {
        let (mut c, mut s) = connect(
            &tls,
            Kind::StartTls,
            client_config(&[trust], &[], true),
            "localhost",
        );
        pump(&mut c, &mut s, usize::MAX);
        c.peer_certificates().map(|p| p[0].clone())
    };
    // A session established before the reload keeps working after it.
    let (mut live_c, mut live_s) = connect(
        &tls,
        Kind::StartTls,
        client_config(&[&old], &[], true),
        "localhost",
    );
    pump(&mut live_c, &mut live_s, usize::MAX);
    assert_eq!(served(&old), Some(old.der.clone()));
    let new = mint(&["localhost"]);
    std::fs::write(&files.cert_file, &new.cert_pem).unwrap();
    std::fs::write(&files.key_file, &new.key_pem).unwrap();
    assert_eq!(tls.reload(), Ok(1));
    assert_eq!(served(&new), Some(new.der.clone()));
    // A broken file: the error names it, the current certificate stays.
    std::fs::write(&files.key_file, "not a key").unwrap();
    let e = tls.reload().unwrap_err();
    assert!(e.contains("a.key"), "{e}");
    assert_eq!(served(&new), Some(new.der.clone()));
    // A key that is not the certificate's.
    std::fs::write(&files.key_file, &old.key_pem).unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(served(&new), Some(new.der.clone()));
    live_c.writer().write_all(b"<still/>").unwrap();
    assert_eq!(pump(&mut live_c, &mut live_s, usize::MAX), b"<still/>");
}

#[test]
fn a_second_connection_resumes_with_the_ticket() {
    let (_d, cert, tls) = setup(&["localhost"]);
    let cfg = client_config(&[&cert], &[], true);
    for round in 0..3 {
        let (mut c, mut s) = connect(&tls, Kind::StartTls, cfg.clone(), "localhost");
        pump(&mut c, &mut s, usize::MAX);
        assert!(s.ready());
        // The ticket arrives after the handshake: read it on the client.
        c.writer().write_all(b"x").unwrap();
        pump(&mut c, &mut s, usize::MAX);
        assert_eq!(s.resumed(), round > 0, "round {round}");
    }
}

#[test]
fn close_notify_both_ways() {
    let (_d, cert, tls) = setup(&["localhost"]);
    let (mut c, mut s) = connect(
        &tls,
        Kind::StartTls,
        client_config(&[&cert], &[], true),
        "localhost",
    );
    pump(&mut c, &mut s, usize::MAX);
    c.writer().write_all(b"</stream:stream>").unwrap();
    c.send_close_notify();
    let mut wire = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut wire).unwrap();
    }
    s.cipher.extend_from_slice(&wire);
    let mut plain = Vec::new();
    assert_eq!(s.read(&mut plain).unwrap(), ReadStatus::PeerClosed);
    assert_eq!(
        plain, b"</stream:stream>",
        "data before the alert is delivered"
    );
    // We may still send our closing words, then our own close_notify.
    let mut out = Vec::new();
    s.encrypt(b"</stream:stream>", &mut out).unwrap();
    s.close_notify(&mut out);
    c.read_tls(&mut &out[..]).unwrap();
    let st = c.process_new_packets().unwrap();
    assert!(st.peer_has_closed());
}

#[test]
fn wildcards_match_one_label() {
    assert!(name_matches("*.example.com", "a.example.com"));
    assert!(!name_matches("*.example.com", "a.b.example.com"));
    assert!(!name_matches("*.example.com", "example.com"));
    assert!(name_matches("example.com", "example.com"));
}

#[test]
fn idle_state_is_small_and_holds_no_buffer() {
    let (_d, cert, tls) = setup(&["localhost"]);
    let (mut c, mut s) = connect(
        &tls,
        Kind::StartTls,
        client_config(&[&cert], &[], true),
        "localhost",
    );
    pump(&mut c, &mut s, usize::MAX);
    assert!(s.ready());
    assert!(
        s.cipher.is_empty(),
        "the connection gives the buffer back to its pool"
    );
    assert_eq!(s.pending.capacity(), 0);
    assert!(
        std::mem::size_of::<TlsConn>() <= 128,
        "{}",
        std::mem::size_of::<TlsConn>()
    );
}

/// A key schedule used up (`EncryptExhausted`) or an absurd size request ends in an error
/// that closes the connection, never in a huge allocation or a panic; a size request is
/// retried with the size asked for.
#[test]
fn append_retries_sizes_and_stops_on_what_cannot_be_retried() {
    let mut out = b"head".to_vec();
    assert!(append(&mut out, 16, |_| Err(None)).is_err());
    assert_eq!(out, b"head");
    assert!(append(&mut out, 16, |_| Err(Some(usize::MAX))).is_err());
    assert_eq!(out, b"head");
    let mut asked = 0;
    append(&mut out, 2, |b| {
        asked += 1;
        if b.len() < 5 {
            return Err(Some(5));
        }
        b[..5].copy_from_slice(b"12345");
        Ok(5)
    })
    .unwrap();
    assert_eq!((out.as_slice(), asked), (&b"head12345"[..], 2));
}

/// A client restricted to one cipher suite (and so to its TLS version).
fn suite_client(trust: &Cert, suite: rustls::SupportedCipherSuite) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.der.clone()).unwrap();
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite],
        ..(*provider()).clone()
    };
    let version: &'static rustls::SupportedProtocolVersion = match suite {
        rustls::SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
        rustls::SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
    };
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

const SUITES: [rustls::SupportedCipherSuite; 6] = {
    use rustls::crypto::ring::cipher_suite::*;
    [
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
};

/// Everything the server sent, read by the client: its plaintext.
fn client_reads(client: &mut ClientConnection, wire: &[u8]) -> Vec<u8> {
    let mut back = Vec::new();
    let mut wire = wire;
    while !wire.is_empty() {
        client.read_tls(&mut wire).unwrap();
        client.process_new_packets().unwrap();
        let _ = client.reader().read_to_end(&mut back);
    }
    back
}

/// A client on `suite` and the server, past the handshake.
fn established_on(
    tls: &Tls,
    cert: &Cert,
    suite: rustls::SupportedCipherSuite,
) -> (ClientConnection, TlsConn) {
    let (mut client, mut server) =
        connect(tls, Kind::StartTls, suite_client(cert, suite), "localhost");
    pump(&mut client, &mut server, usize::MAX);
    (client, server)
}

/// Everything the client has to send, as TLS bytes.
fn client_wire(client: &mut ClientConnection) -> Vec<u8> {
    let mut wire = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut wire).unwrap();
    }
    wire
}

/// After the handshake the server keeps only the traffic keys (its own record layer):
/// for every suite of both versions, data both ways, records split at every size and
/// coalesced, 16 KiB records, and close_notify both ways.
#[test]
fn own_record_layer_for_every_suite() {
    let (_d, cert, tls) = setup(&["localhost"]);
    for suite in SUITES {
        for chunk in [1, 3, 17, 5000, usize::MAX] {
            let (mut client, mut server) = connect(
                &tls,
                Kind::StartTls,
                suite_client(&cert, suite),
                "localhost",
            );
            // Written before the handshake ends: it rides with the client's last flight.
            client.writer().write_all(b"<early/>").unwrap();
            let mut got = pump(&mut client, &mut server, chunk);
            assert!(server.ready(), "{suite:?}");
            assert!(
                matches!(server.phase, Phase::Traffic(_)),
                "rustls's state is dropped"
            );
            let big: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
            for _ in 0..3 {
                client.writer().write_all(b"<m>h\xc3\xa9</m>").unwrap();
            }
            client.writer().write_all(&big).unwrap();
            got.extend(pump(&mut client, &mut server, chunk));
            let mut want = b"<early/>".to_vec();
            for _ in 0..3 {
                want.extend_from_slice("<m>hé</m>".as_bytes());
            }
            want.extend_from_slice(&big);
            assert!(got == want, "{suite:?} chunk {chunk}: {} bytes", got.len());
            assert!(server.cipher.is_empty());
            let mut out = Vec::new();
            server.encrypt(b"<p/>", &mut out).unwrap();
            server.encrypt(&big, &mut out).unwrap();
            assert!(out.len() <= 4 + big.len() + 4 * RECORD_OVERHEAD);
            let back = client_reads(&mut client, &out);
            assert!(back[..4] == *b"<p/>" && back[4..] == big, "{suite:?}");
            // close_notify both ways.
            client.writer().write_all(b"</stream>").unwrap();
            client.send_close_notify();
            server.cipher.extend_from_slice(&client_wire(&mut client));
            let mut plain = Vec::new();
            assert_eq!(server.read(&mut plain).unwrap(), ReadStatus::PeerClosed);
            assert_eq!(plain, b"</stream>");
            let mut out = Vec::new();
            server.encrypt(b"</stream>", &mut out).unwrap();
            server.close_notify(&mut out);
            assert!(server.encrypt(b"x", &mut Vec::new()).is_err(), "closed");
            client.read_tls(&mut &out[..]).unwrap();
            let st = client.process_new_packets().unwrap();
            assert!(st.peer_has_closed(), "{suite:?}");
        }
    }
}

/// TLS 1.3 key updates (RFC 8446 §4.6.3): a client that renews its key and asks us to
/// renew ours; and our own renewal before the confidentiality limit.
#[test]
fn key_updates_both_ways() {
    let (_d, cert, tls) = setup(&["localhost"]);
    use rustls::crypto::ring::cipher_suite::*;
    for suite in [TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256] {
        let (mut client, mut server) =
            connect(&tls, Kind::Direct, suite_client(&cert, suite), "localhost");
        pump(&mut client, &mut server, usize::MAX);
        for round in 0..3 {
            client.refresh_traffic_keys().unwrap();
            client.writer().write_all(b"<after-update/>").unwrap();
            let got = pump(&mut client, &mut server, 7);
            assert_eq!(got, b"<after-update/>", "round {round}");
            // We answered (a KeyUpdate under the old key, which `pump` delivered) and
            // switched to our next key, whose sequence numbers start at 0.
            assert_eq!(server.traffic().tx_seq(), 0, "round {round}");
            let mut out = Vec::new();
            server.encrypt(b"<new-key/>", &mut out).unwrap();
            assert_eq!(client_reads(&mut client, &out), b"<new-key/>");
        }
        // Our own limit, reached at the third record: renewed before it.
        let seq = server.traffic().tx_seq();
        server.traffic().set_tx_limit(seq + 2);
        let mut out = Vec::new();
        for i in 0..6 {
            server
                .encrypt(format!("<n{i}/>").as_bytes(), &mut out)
                .unwrap();
            if i == 2 {
                assert_eq!(server.traffic().tx_seq(), 1, "renewed: sequence from 0");
                server.traffic().set_tx_limit(u64::MAX);
            }
        }
        assert_eq!(
            client_reads(&mut client, &out),
            b"<n0/><n1/><n2/><n3/><n4/><n5/>"
        );
        client.writer().write_all(b"<still/>").unwrap();
        assert_eq!(pump(&mut client, &mut server, usize::MAX), b"<still/>");
    }
}

/// A record that does not authenticate, one longer than TLS allows, and a fatal alert from
/// the peer each end the connection, and the peer is told (bad_record_mac,
/// record_overflow); no panic on any byte.
#[test]
fn bad_records_end_the_connection_with_an_alert() {
    let (_d, cert, tls) = setup(&["localhost"]);
    for suite in SUITES {
        // A flipped bit in the body.
        let (mut client, mut server) = established_on(&tls, &cert, suite);
        client.writer().write_all(b"<m/>").unwrap();
        let mut wire = client_wire(&mut client);
        let last = wire.len() - 3;
        wire[last] ^= 1;
        server.cipher.extend_from_slice(&wire);
        assert!(server.read(&mut Vec::new()).is_err(), "{suite:?}");
        let alert = server.take_pending();
        client.read_tls(&mut &alert[..]).unwrap();
        let e = client.process_new_packets().unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::AlertReceived(rustls::AlertDescription::BadRecordMac)
            ),
            "{suite:?}: {e:?}"
        );
        assert!(server.read(&mut Vec::new()).is_err(), "stays failed");
        assert!(server.encrypt(b"x", &mut Vec::new()).is_err());
        // A header announcing more than a record may hold.
        let (mut client, mut server) = established_on(&tls, &cert, suite);
        server.cipher.extend_from_slice(&[23, 3, 3, 0xff, 0xff]);
        assert!(server.read(&mut Vec::new()).is_err());
        let alert = server.take_pending();
        client.read_tls(&mut &alert[..]).unwrap();
        let e = client.process_new_packets().unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::AlertReceived(rustls::AlertDescription::RecordOverflow)
            ),
            "{suite:?}: {e:?}"
        );
        // Every prefix of a valid record, then garbage after a valid record: never a panic.
        let (mut client, mut server) = established_on(&tls, &cert, suite);
        client.writer().write_all(b"<x/>").unwrap();
        let wire = client_wire(&mut client);
        for cut in 0..wire.len() {
            let mut s = tls.accept(Kind::StartTls).unwrap();
            s.phase = Phase::Failed;
            s.cipher.extend_from_slice(&wire[..cut]);
            let _ = s.read(&mut Vec::new());
        }
        server.cipher.extend_from_slice(&wire);
        server.cipher.extend_from_slice(&[22, 3, 3, 0, 0, 1, 2, 3]);
        let mut plain = Vec::new();
        assert!(server.read(&mut plain).is_err());
        assert_eq!(plain, b"<x/>", "what came before the bad record is kept");
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn established(suite: usize) -> (tempfile::TempDir, ClientConnection, TlsConn) {
        let (d, cert, tls) = setup(&["localhost"]);
        let (c, s) = established_on(&tls, &cert, SUITES[suite % SUITES.len()]);
        assert!(s.ready());
        (d, c, s)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Records of random sizes, cut at random places: the same plaintext comes out.
        #[test]
        fn random_splits_give_the_same_plaintext(
            suite in 0usize..6,
            sizes in proptest::collection::vec(0usize..20_000, 1..6),
            cuts in proptest::collection::vec(1usize..3000, 1..40),
        ) {
            let (_d, mut c, mut s) = established(suite);
            let mut want = Vec::new();
            let mut wire = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                let part: Vec<u8> = (0..*n).map(|k| b'a' + ((k + i) % 26) as u8).collect();
                c.writer().write_all(&part).unwrap();
                want.extend(part);
                wire.extend(client_wire(&mut c));
            }
            let mut got = Vec::new();
            let mut rest = &wire[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (a, b) = rest.split_at((*cut).min(rest.len()));
                s.cipher.extend_from_slice(a);
                prop_assert_eq!(s.read(&mut got).unwrap(), ReadStatus::More);
                rest = b;
            }
            prop_assert!(got == want, "{} of {} bytes", got.len(), want.len());
            prop_assert!(s.cipher.is_empty());
        }

        /// Any bytes after the handshake: an error or more plaintext, never a panic.
        #[test]
        fn any_bytes_after_the_handshake_never_panic(
            suite in 0usize..6,
            junk in proptest::collection::vec(any::<u8>(), 0..200),
            header in any::<bool>(),
        ) {
            let (_d, _c, mut s) = established(suite);
            if header {
                // A plausible header, so the body reaches the AEAD.
                let len = junk.len() as u16;
                s.cipher.extend_from_slice(&[23, 3, 3]);
                s.cipher.extend_from_slice(&len.to_be_bytes());
            }
            s.cipher.extend_from_slice(&junk);
            let mut plain = Vec::new();
            if s.read(&mut plain).is_ok() {
                prop_assert!(plain.is_empty(), "nothing authenticates by chance");
            }
        }
    }
}

/// What no real client sends, crafted under the client's own keys (extracted from a rustls
/// client): each is refused with the alert RFC 8446 / RFC 5246 name, or ignored where they
/// say so, and what came before it is kept.
#[test]
fn records_a_client_should_not_send() {
    use rustls::crypto::ring::cipher_suite::*;
    let (_d, cert, tls) = setup(&["localhost"]);
    // (suite, records to send after "<ok/>", what the server must do: Some(alert) or None
    // = ignored and the connection goes on).
    type Case = (&'static str, Vec<(u8, Vec<u8>)>, Option<u8>);
    let cases13: Vec<Case> = vec![
        (
            "NewSessionTicket from a client",
            vec![(22, vec![4, 0, 0, 0])],
            Some(10),
        ),
        (
            "KeyUpdate with a bad request",
            vec![(22, vec![24, 0, 0, 1, 7])],
            Some(50),
        ),
        (
            "KeyUpdate not ending its record",
            vec![(22, vec![24, 0, 0, 1, 0, 1])],
            Some(10),
        ),
        ("record of padding only", vec![(0, vec![0, 0, 0])], Some(10)),
        ("unknown content type", vec![(99, vec![1])], Some(10)),
        (
            "user_canceled then data",
            vec![(21, vec![1, 90]), (23, b"<more/>".to_vec())],
            None,
        ),
        ("fatal alert", vec![(21, vec![2, 40])], Some(255)),
        ("alert of one byte", vec![(21, vec![2])], Some(50)),
    ];
    let cases12: Vec<Case> = vec![
        (
            "renegotiation (ClientHello)",
            vec![(22, vec![1, 0, 0, 0])],
            Some(100),
        ),
        (
            "warning alert then data",
            vec![(21, vec![1, 100]), (23, b"<more/>".to_vec())],
            None,
        ),
        (
            "change_cipher_spec after the handshake",
            vec![(20, vec![1])],
            Some(10),
        ),
    ];
    for (suite, tls13, cases) in [
        (TLS13_AES_128_GCM_SHA256, true, &cases13),
        (TLS13_CHACHA20_POLY1305_SHA256, true, &cases13),
        (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, false, &cases12),
        (
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            false,
            &cases12,
        ),
    ] {
        for (what, records, expect) in cases {
            let mut cfg = (*suite_client(&cert, suite)).clone();
            cfg.enable_secret_extraction = true;
            let (mut client, mut server) =
                connect(&tls, Kind::StartTls, Arc::new(cfg), "localhost");
            pump(&mut client, &mut server, usize::MAX);
            let secrets = client.dangerous_extract_secrets().unwrap();
            let mut me = record::Traffic::for_test(tls13, secrets);
            let mut wire = Vec::new();
            me.seal_for_test(23, b"<ok/>", &mut wire);
            for (typ, body) in records {
                if tls13 && *typ == 0 {
                    // Only padding: the inner type byte itself is zero.
                    me.seal_for_test(0, &body[..body.len() - 1], &mut wire);
                } else {
                    me.seal_for_test(*typ, body, &mut wire);
                }
            }
            server.cipher.extend_from_slice(&wire);
            let mut plain = Vec::new();
            let r = server.read(&mut plain);
            let alert = server.take_pending();
            match expect {
                None => {
                    assert_eq!(r.unwrap(), ReadStatus::More, "{what}");
                    assert_eq!(plain, b"<ok/><more/>", "{what}");
                    assert!(alert.is_empty(), "{what}");
                }
                Some(desc) => {
                    assert!(r.is_err(), "{what} ({suite:?}) is refused");
                    assert_eq!(plain, b"<ok/>", "{what}: what came before is kept");
                    if *desc == 255 {
                        assert!(alert.is_empty(), "{what}: no alert after the peer's");
                    } else {
                        let mut got = Vec::new();
                        let e = me.read(&mut alert.clone(), &mut got, &mut Vec::new());
                        let e = e.unwrap_err().to_string();
                        assert!(
                            e.contains(&format!("TLS alert {desc} ")),
                            "{what} ({suite:?}): {e}"
                        );
                    }
                }
            }
        }
    }
}
