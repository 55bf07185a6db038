//! The client side of TLS for `wss`, `starttls` and `tls` (XEP-0368): one rustls
//! `ClientConfig` per process (ring provider), trust from `--ca`, SNI and verification
//! against the XMPP domain, and counts of full and resumed handshakes.
//!
//! With `--tls-resumption on` every session of the process shares the one `Arc<ClientConfig>`
//! and so rustls's in-memory client session cache: a later connection resumes with a ticket
//! (TLS 1.3) or a session id / ticket (TLS 1.2) that an earlier one received. With `off` the
//! config has `Resumption::disabled()` and every login is a full handshake.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
pub use tokio_rustls::client::TlsStream;

use crate::transport::Transport;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TlsResumption {
    /// One shared client config and session cache: reconnects resume.
    On,
    /// No session cache: every handshake is a full one.
    Off,
}

impl TlsResumption {
    pub fn name(self) -> &'static str {
        match self {
            TlsResumption::On => "on",
            TlsResumption::Off => "off",
        }
    }
}

/// Whom to trust: the CAs of a PEM file, or (explicitly) anyone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Trust {
    Ca(PathBuf),
    Insecure,
}

/// What a client config is built from; one config per distinct key is kept for the process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    alpn: Option<&'static [u8]>,
    trust: Trust,
    resumption: TlsResumption,
}

/// The ALPN protocol each TLS transport offers: `http/1.1` for the HTTPS upgrade of `wss`,
/// `xmpp-client` for XEP-0368 direct TLS, none for STARTTLS.
pub fn alpn(transport: Transport) -> Option<&'static [u8]> {
    match transport {
        Transport::Wss => Some(b"http/1.1"),
        Transport::Tls => Some(b"xmpp-client"),
        Transport::Ws | Transport::Tcp | Transport::Starttls => None,
    }
}

/// The ring provider. rustls 0.23.48 deprecates it because ring has no post-quantum key
/// exchange (X25519MLKEM768 is aws-lc-rs only); the load client uses it on purpose (no
/// aws-lc build). Key exchange X25519 first, as OpenSSL, browsers and Android offer it:
/// rustls's own ring default puts P-384 first, which the server then computes with
/// ring's slow generic code, and a load test would measure a handshake no real client makes.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{default_provider, kx_group};
    let mut p = default_provider();
    p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    Arc::new(p)
}

/// The CA certificates of a PEM file (at least one).
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| format!("--ca {shown}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in iter {
        let cert = cert.map_err(|e| format!("--ca {shown}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("--ca {shown}: not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "--ca {shown}: no certificate in it (expected PEM `-----BEGIN CERTIFICATE-----`)"
        ));
    }
    Ok(roots)
}

fn build(key: &Key) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let mut config = match &key.trust {
        // rustls's webpki verifier: a chain to a root of the file, the domain in the
        // certificate's subjectAltName, the validity dates.
        Trust::Ca(path) => builder
            .with_root_certificates(load_roots(path)?)
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
            .with_no_client_auth(),
    };
    config.alpn_protocols = key.alpn.map(|p| vec![p.to_vec()]).unwrap_or_default();
    if key.resumption == TlsResumption::Off {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// The process's client config for these settings: built (and the CA file read) once, then
/// shared, so that every session of the process, across capacity steps too, uses the same
/// session cache.
pub fn client_config(
    transport: Transport,
    trust: &Trust,
    resumption: TlsResumption,
) -> Result<Arc<ClientConfig>, String> {
    static CONFIGS: Mutex<Vec<(Key, Arc<ClientConfig>)>> = Mutex::new(Vec::new());
    let key = Key {
        alpn: alpn(transport),
        trust: trust.clone(),
        resumption,
    };
    let mut all = CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = all.iter().find(|(k, _)| *k == key) {
        return Ok(c.clone());
    }
    let c = build(&key)?;
    all.push((key, c.clone()));
    Ok(c)
}

/// The TLS side of a run: the connector over the shared config, the name sent as SNI and
/// verified in the certificate (the XMPP domain), and the handshake counts of this run.
pub struct TlsClient {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    pub resumption: TlsResumption,
    full: AtomicU64,
    resumed: AtomicU64,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .field("resumption", &self.resumption)
            .finish_non_exhaustive()
    }
}

/// Handshakes completed so far: full (with or without a HelloRetryRequest) and resumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub full: u64,
    pub resumed: u64,
}

impl TlsClient {
    pub fn new(
        config: Arc<ClientConfig>,
        domain: &str,
        resumption: TlsResumption,
    ) -> Result<Self, String> {
        let server_name = ServerName::try_from(domain.to_string())
            .map_err(|e| format!("--domain {domain} is not usable as a TLS server name: {e}"))?;
        Ok(TlsClient {
            connector: TlsConnector::from(config),
            server_name,
            resumption,
            full: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
        })
    }

    /// The TLS handshake over `tcp` (SNI = the domain; the certificate is verified for it);
    /// counts it as full or resumed.
    pub async fn handshake(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await?;
        match tls.get_ref().1.handshake_kind() {
            Some(HandshakeKind::Resumed) => &self.resumed,
            _ => &self.full,
        }
        .fetch_add(1, Relaxed);
        Ok(tls)
    }

    pub fn counts(&self) -> Counts {
        Counts {
            full: self.full.load(Relaxed),
            resumed: self.resumed.load(Relaxed),
        }
    }
}

/// A short failure key for a TLS handshake error (`tls:certificate`, `tls:alert`, ...).
pub fn handshake_reason(e: &std::io::Error) -> &'static str {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => "tls:certificate",
        Some(rustls::Error::AlertReceived(_)) => "tls:alert",
        Some(rustls::Error::NoApplicationProtocol) => "tls:alpn",
        Some(_) => "tls:protocol",
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => "tls:closed",
        None => "tls:io",
    }
}

/// `--tls-insecure`: accept any certificate for any name. The handshake signatures are still
/// checked (the server holds the key of the certificate it sent), so only trust is skipped.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A self-signed CA certificate (PEM) written to a fresh file; returns its path.
    pub fn ca_file(name: &str) -> PathBuf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "unit test CA");
        let cert = p.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!("aoba-lt-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, cert.pem()).unwrap();
        path
    }

    #[test]
    fn roots_from_pem() {
        let ok = ca_file("roots-ok.pem");
        assert_eq!(load_roots(&ok).unwrap().len(), 1);
        // two CAs in one file
        let two = ok.with_file_name("roots-two.pem");
        let pem = std::fs::read_to_string(&ok).unwrap()
            + &std::fs::read_to_string(ca_file("roots-b.pem")).unwrap();
        std::fs::write(&two, pem).unwrap();
        assert_eq!(load_roots(&two).unwrap().len(), 2);
        let e = load_roots(&ok.with_file_name("missing.pem")).unwrap_err();
        assert!(e.contains("--ca") && e.contains("missing.pem"), "{e}");
        let empty = ok.with_file_name("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let e = load_roots(&empty).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
        let bad = ok.with_file_name("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(load_roots(&bad).is_err());
    }

    #[test]
    fn one_config_per_process_and_settings() {
        let ca = Trust::Ca(ca_file("config.pem"));
        let on = client_config(Transport::Tls, &ca, TlsResumption::On).unwrap();
        let again = client_config(Transport::Tls, &ca, TlsResumption::On).unwrap();
        assert!(Arc::ptr_eq(&on, &again), "the sessions share one config");
        assert_eq!(on.alpn_protocols, vec![b"xmpp-client".to_vec()]);
        assert!(format!("{:?}", on.resumption).contains("ClientSessionMemoryCache"));
        let off = client_config(Transport::Tls, &ca, TlsResumption::Off).unwrap();
        assert!(!Arc::ptr_eq(&on, &off));
        assert!(format!("{:?}", off.resumption).contains("NoClientSessionStorage"));
        let wss = client_config(Transport::Wss, &ca, TlsResumption::On).unwrap();
        assert_eq!(wss.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let st = client_config(Transport::Starttls, &ca, TlsResumption::On).unwrap();
        assert!(st.alpn_protocols.is_empty());
        let insecure = client_config(Transport::Tls, &Trust::Insecure, TlsResumption::On).unwrap();
        assert!(!Arc::ptr_eq(&on, &insecure));
        let c = TlsClient::new(on, "localhost", TlsResumption::On).unwrap();
        assert_eq!(c.counts(), Counts::default());
    }

    #[test]
    fn handshake_reasons() {
        use std::io::{Error, ErrorKind};
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        assert_eq!(
            handshake_reason(&Error::new(ErrorKind::InvalidData, cert)),
            "tls:certificate"
        );
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        assert_eq!(
            handshake_reason(&Error::new(ErrorKind::InvalidData, alert)),
            "tls:alert"
        );
        assert_eq!(
            handshake_reason(&Error::from(ErrorKind::UnexpectedEof)),
            "tls:closed"
        );
    }
}
