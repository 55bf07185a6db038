//! A test CA and a server certificate for `localhost` signed by it (rcgen), written as PEM
//! files, and rustls clients that trust only that CA.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

pub struct TestCa {
    pub dir: PathBuf,
    /// The CA certificate clients trust.
    pub ca_file: PathBuf,
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    /// The server's chain and key, for `[tls] certificates`.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub leaf_der: rustls::pki_types::CertificateDer<'static>,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    /// A new CA in a new directory, and a `localhost` certificate from it.
    pub fn new() -> TestCa {
        let dir = super::temp_dir();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Aoba test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let mut t = TestCa {
            ca_der: ca.der().clone(),
            cert_file: dir.join("server.crt"),
            key_file: dir.join("server.key"),
            leaf_der: ca.der().clone(),
            dir,
            ca_file,
            ca,
        };
        t.issue(&["localhost"]);
        t
    }

    /// Writes a new server certificate for `names` (and a new key) over the files.
    pub fn issue(&mut self, names: &[&str]) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(&self.cert_file, cert.pem()).unwrap();
        std::fs::write(&self.key_file, key.serialize_pem()).unwrap();
        self.leaf_der = cert.der().clone();
    }

    /// The `[tls]` section serving this certificate.
    pub fn config(&self) -> String {
        format!(
            "[tls]\ncertificates = [{{ cert_file = {:?}, key_file = {:?} }}]\n",
            self.cert_file, self.key_file
        )
    }

    /// A rustls client trusting only this CA, offering `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        // X25519 first, as real clients offer it (see `aoba::net::tls::provider`).
        let provider = aoba::net::tls::provider();
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }
}

pub type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS client connection (blocking, reads bounded by `WAIT`) to `port`, verifying the
/// certificate as `localhost`, after the handshake.
pub fn connect(cfg: &Arc<rustls::ClientConfig>, port: u16) -> Result<Tls, std::io::Error> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    wrap(cfg, tcp)
}

/// Starts TLS over an existing connection (STARTTLS) and finishes the handshake.
pub fn wrap(cfg: &Arc<rustls::ClientConfig>, tcp: TcpStream) -> Result<Tls, std::io::Error> {
    tcp.set_read_timeout(Some(super::WAIT))?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Reads from `r` until the text read so far contains `want` (bounded by the socket's
/// read timeout); returns everything read.
pub fn read_until(r: &mut impl Read, want: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(want) {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "waiting for {want:?}: {e}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads until the peer closes (or the read times out); returns what came.
pub fn read_to_end(r: &mut impl Read) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

pub fn send(w: &mut impl Write, s: &str) {
    w.write_all(s.as_bytes()).unwrap();
    w.flush().unwrap();
}
