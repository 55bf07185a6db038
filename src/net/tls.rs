//! TLS for every listener (HTTPS/wss, STARTTLS on TCP c2s, XEP-0368 direct TLS) on
//! rustls's *unbuffered* API: rustls keeps no I/O buffer of its own. The connection
//! reads ciphertext into a buffer borrowed from its shard's pool, [`TlsConn::read`]
//! decrypts the complete records and appends their plaintext to the connection's
//! (pooled) plaintext buffer, and the writer encrypts each batch of frames into records
//! of at most 16 KiB in its (pooled) batch buffer. Once the handshake is done rustls
//! hands its traffic keys over and its connection state is dropped: records are then
//! Aoba's own ([`record`], on ring's AEADs). An idle TLS session holds only its two keys
//! (and rustls's small TLS 1.3 key-update state): no read or write buffer.
//!
//! One [`Tls`] per process: its server configurations, its certificate store and its
//! session-ticket key are shared by every shard, so a reconnect resumes on any shard.
//! Certificates are chosen by SNI, the first configured one for a client that sends no
//! SNI; `reload` (SIGHUP) swaps them without touching live sessions.

use rustls::server::{ClientHello, ResolvesServerCert, UnbufferedServerConnection};
use rustls::sign::CertifiedKey;
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::{ServerConfig, crypto::CryptoProvider};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// TLS: certificates for `server.listen_tls` (wss), STARTTLS on `c2s.listen` and
/// `c2s.listen_direct_tls`. See `docs/tls.md`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chains and their keys (PEM files), e.g.
    /// `[{ cert_file = "/etc/letsencrypt/live/chat.example/fullchain.pem", key_file =
    /// "/etc/letsencrypt/live/chat.example/privkey.pem" }]`. Each is served to the clients
    /// that ask for one of its names (SNI); the first is served to clients that send no
    /// SNI. SIGHUP re-reads them; live sessions keep theirs, and a file that does not load
    /// keeps the old set (the log says why).
    pub certificates: Vec<CertFiles>,
    /// Time a client has to finish its TLS handshake; then the connection is closed.
    #[schemars(range(min = 100))]
    pub handshake_timeout_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificates: Vec::new(),
            handshake_timeout_ms: 10_000,
        }
    }
}

/// One certificate chain and its private key, both PEM.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CertFiles {
    /// The chain, leaf first (e.g. Let's Encrypt's `fullchain.pem`).
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1; e.g. `privkey.pem`).
    pub key_file: PathBuf,
}

/// Which listener a connection came in on: each has its own ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTTPS (wss): ALPN `http/1.1`.
    Https,
    /// STARTTLS on the TCP c2s port: no ALPN.
    StartTls,
    /// XEP-0368 direct TLS: ALPN `xmpp-client`.
    Direct,
}

/// One loaded certificate with the DNS names it is valid for (lower case; `*.x` for a
/// wildcard).
#[derive(Debug)]
struct Loaded {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// The certificates, swapped whole on reload.
#[derive(Debug, Default)]
pub struct CertStore {
    certs: RwLock<Arc<Vec<Loaded>>>,
}

impl CertStore {
    /// The certificate for `sni`: the first whose names match it, else the first one.
    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.read().ok()?.clone();
        if let Some(sni) = sni {
            let sni = sni.to_ascii_lowercase();
            for c in certs.iter() {
                if c.names.iter().any(|n| name_matches(n, &sni)) {
                    return Some(c.key.clone());
                }
            }
        }
        certs.first().map(|c| c.key.clone())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// RFC 6125 §6.4.3: a wildcard stands for exactly one whole left-most label.
fn name_matches(pattern: &str, sni: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => sni
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == sni,
    }
}

/// `ring`: a small pure-Rust-and-assembly build (aws-lc-rs compiles a large C library on
/// every clean build). rustls 0.23.48 deprecates ring's provider because it offers no
/// post-quantum key exchange (X25519MLKEM768); see `docs/tls.md`.
///
/// Key exchange: X25519 first, then P-256, then P-384. rustls 0.23.48 lists P-384 first,
/// and ring computes P-384 with generic bignum code: a handshake on P-384 cost this server
/// 1.2 ms of CPU, on X25519 a fraction of that (`docs/tls.md`). The client's order decides
/// when its key share is for a group both support (no HelloRetryRequest); this order
/// applies otherwise, and to TLS 1.2.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{default_provider, kx_group};
    let mut p = default_provider();
    p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    Arc::new(p)
}

/// Loads every configured certificate; the first error names its file.
fn load_all(files: &[CertFiles], provider: &CryptoProvider) -> Result<Vec<Loaded>, String> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&f.cert_file)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| format!("{}: {e}", f.cert_file.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: no certificate in it", f.cert_file.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&f.key_file)
            .map_err(|e| format!("{}: {e}", f.key_file.display()))?;
        let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
            format!(
                "{} with {}: {e}",
                f.cert_file.display(),
                f.key_file.display()
            )
        })?;
        let leaf = webpki::EndEntityCert::try_from(&key.cert[0])
            .map_err(|e| format!("{}: {e:?}", f.cert_file.display()))?;
        let names = leaf
            .valid_dns_names()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        out.push(Loaded {
            names,
            key: Arc::new(key),
        });
    }
    Ok(out)
}

/// Certificates loaded from their files and checked, ready to be served (`Tls::install`).
#[derive(Debug)]
pub struct CertSet {
    loaded: Vec<Loaded>,
    files: Vec<CertFiles>,
}

/// The process's TLS: one configuration per listener kind, sharing the certificate store,
/// the session cache and the session-ticket key.
#[derive(Debug)]
pub struct Tls {
    store: Arc<CertStore>,
    files: RwLock<Vec<CertFiles>>,
    https: Arc<ServerConfig>,
    starttls: Arc<ServerConfig>,
    direct: Arc<ServerConfig>,
    domain: String,
}

impl Tls {
    /// Loads the certificates of `cfg` for a server of `domain` (a warning is logged when
    /// none of them is valid for it: native clients check the certificate against the
    /// JID's domain).
    pub fn load(cfg: &TlsConfig, domain: &str) -> Result<Tls, String> {
        if cfg.certificates.is_empty() {
            return Err("tls.certificates is empty".into());
        }
        let provider = provider();
        let loaded = load_all(&cfg.certificates, &provider)?;
        let store = Arc::new(CertStore {
            certs: RwLock::new(Arc::new(loaded)),
        });
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
        let sessions = rustls::server::ServerSessionMemoryCache::new(1024);
        let build = |alpn: &[&[u8]]| -> Result<Arc<ServerConfig>, String> {
            let mut c = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| e.to_string())?
                .with_no_client_auth()
                .with_cert_resolver(store.clone());
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            c.ticketer = ticketer.clone();
            c.session_storage = sessions.clone();
            // One ticket is enough for a client's next reconnect.
            c.send_tls13_tickets = 1;
            // After the handshake Aoba keeps only the traffic keys (`record.rs`).
            c.enable_secret_extraction = true;
            Ok(Arc::new(c))
        };
        let tls = Tls {
            https: build(&[b"http/1.1"])?,
            starttls: build(&[])?,
            direct: build(&[b"xmpp-client"])?,
            store,
            files: RwLock::new(cfg.certificates.clone()),
            domain: domain.to_string(),
        };
        tls.check_domain();
        Ok(tls)
    }

    fn check_domain(&self) {
        let certs = self
            .store
            .certs
            .read()
            .map(|c| c.clone())
            .unwrap_or_default();
        if !certs
            .iter()
            .any(|c| c.names.iter().any(|n| name_matches(n, &self.domain)))
        {
            tracing::warn!(domain = %self.domain, "no TLS certificate is valid for the served domain: native clients will refuse it");
        }
    }

    /// Re-reads the certificate files (SIGHUP). On error the old certificates stay.
    /// Returns how many certificates are now served.
    pub fn reload(&self) -> Result<usize, String> {
        let files = self.files.read().map_err(|e| e.to_string())?.clone();
        let set = Tls::prepare(&files)?;
        self.install(set)
    }

    /// Loads and checks `files` without serving them yet (`install`): a configuration
    /// reload checks everything before it changes anything.
    pub fn prepare(files: &[CertFiles]) -> Result<CertSet, String> {
        if files.is_empty() {
            return Err("tls.certificates is empty".into());
        }
        Ok(CertSet {
            loaded: load_all(files, &provider())?,
            files: files.to_vec(),
        })
    }

    /// Serves `set` to new connections from now on (live sessions keep theirs); a later
    /// SIGHUP re-reads its files. Returns how many certificates are served.
    pub fn install(&self, set: CertSet) -> Result<usize, String> {
        let n = set.loaded.len();
        *self.files.write().map_err(|e| e.to_string())? = set.files;
        *self.store.certs.write().map_err(|e| e.to_string())? = Arc::new(set.loaded);
        self.check_domain();
        Ok(n)
    }

    /// A new server-side TLS connection for a listener of `kind`.
    pub fn accept(&self, kind: Kind) -> Result<TlsConn, rustls::Error> {
        let cfg = match kind {
            Kind::Https => &self.https,
            Kind::StartTls => &self.starttls,
            Kind::Direct => &self.direct,
        };
        Ok(TlsConn {
            phase: Phase::Handshake(Box::new(UnbufferedServerConnection::new(cfg.clone())?)),
            cipher: Vec::new(),
            pending: Vec::new(),
            since: std::time::Instant::now(),
            kind,
            resumed: false,
            alpn: None,
        })
    }
}

/// The largest plaintext of one record (RFC 8446 §5.1).
pub const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;
/// The most one record adds to its plaintext: the header, the content type (TLS 1.3),
/// the tag or the explicit nonce and tag (TLS 1.2).
pub const RECORD_OVERHEAD: usize = 5 + 1 + 16 + 8;
/// The largest record a peer may send (RFC 5246 §6.2.3: plaintext + 2048 on TLS 1.2;
/// RFC 8446 §5.2: + 256 on TLS 1.3), with its header.
pub const MAX_RECORD_BYTES: usize = 5 + MAX_RECORD_PLAINTEXT + 2048;

/// What reading gave.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// More bytes are needed (nothing, or only some plaintext, came out of these).
    More,
    /// The peer sent close_notify: no more data will come.
    PeerClosed,
}

/// One connection's TLS state: rustls's unbuffered connection during the handshake, then
/// only the traffic keys ([`record::Traffic`]); the partial record read so far (a pool
/// buffer, only while a record is incomplete), and the TLS bytes the read side produced
/// (handshake flights, alerts, key updates) for the writer to send first.
pub struct TlsConn {
    phase: Phase,
    /// Ciphertext not yet processed: empty (capacity 0) when no record is partial.
    pub cipher: Vec<u8>,
    pending: Vec<u8>,
    /// When the handshake started (for its timeout).
    since: std::time::Instant,
    kind: Kind,
    resumed: bool,
    alpn: Option<&'static [u8]>,
}

enum Phase {
    Handshake(Box<UnbufferedServerConnection>),
    Traffic(Box<record::Traffic>),
    /// The handshake failed, or the keys could not be taken over.
    Failed,
}

/// The ALPN protocols the listeners offer (kept after the handshake without a copy).
const ALPN: [&[u8]; 2] = [b"http/1.1", b"xmpp-client"];

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("ready", &self.ready())
            .field("cipher", &self.cipher.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// Appends what `encode` writes to `out`, growing it as rustls asks (`Err(Some(n))`: n
/// bytes are needed); `Err(None)` cannot be retried (the connection's keys are used up).
fn append(
    out: &mut Vec<u8>,
    hint: usize,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> Result<(), rustls::Error> {
    let start = out.len();
    let mut want = hint;
    for _ in 0..3 {
        out.resize(start + want, 0);
        match encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n.min(want));
                return Ok(());
            }
            // A record is at most a few bytes over 16 KiB: anything else is not retried.
            Err(Some(required)) if required <= 4 * MAX_RECORD_BYTES => want = required,
            Err(_) => break,
        }
    }
    out.truncate(start);
    Err(rustls::Error::General("TLS output: cannot encode".into()))
}

fn encode_err(e: EncodeError) -> Result<usize, Option<usize>> {
    match e {
        EncodeError::InsufficientSize(s) => Err(Some(s.required_size)),
        EncodeError::AlreadyEncoded => Ok(0),
    }
}

impl TlsConn {
    /// The handshake is done: application data flows both ways.
    pub fn ready(&self) -> bool {
        matches!(self.phase, Phase::Traffic(_))
    }

    /// When the handshake started.
    pub fn since(&self) -> std::time::Instant {
        self.since
    }

    /// The listener kind it was accepted for.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// TLS bytes waiting for the writer.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the TLS bytes waiting for the writer.
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// The ALPN protocol agreed on, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        match &self.phase {
            Phase::Handshake(c) => c.alpn_protocol(),
            _ => self.alpn,
        }
    }

    /// The handshake resumed an earlier session (a ticket).
    pub fn resumed(&self) -> bool {
        match &self.phase {
            Phase::Handshake(c) => c.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            _ => self.resumed,
        }
    }

    /// Processes the records in `self.cipher`: the plaintext of each complete record is
    /// appended to `plain`, handshake and alert bytes to the pending output; the bytes
    /// of a partial record stay in `self.cipher`. On error, the alert for the peer (if
    /// any) is in the pending output.
    pub fn read(&mut self, plain: &mut Vec<u8>) -> Result<ReadStatus, rustls::Error> {
        match &mut self.phase {
            Phase::Traffic(t) => t.read(&mut self.cipher, plain, &mut self.pending),
            Phase::Handshake(_) => {
                let r = self.handshake(plain);
                if let Err(e) = &r {
                    self.flush_alert();
                    self.phase = Phase::Failed;
                    tracing::debug!(error = %e, "TLS handshake failed");
                }
                // Records that came after the handshake's last one.
                match (&r, &mut self.phase) {
                    (Ok(ReadStatus::More), Phase::Traffic(t)) if !self.cipher.is_empty() => {
                        t.read(&mut self.cipher, plain, &mut self.pending)
                    }
                    _ => r,
                }
            }
            Phase::Failed => Err(rustls::Error::General("TLS connection failed".into())),
        }
    }

    /// Runs rustls until the handshake is done, then keeps only the traffic keys.
    fn handshake(&mut self, plain: &mut Vec<u8>) -> Result<ReadStatus, rustls::Error> {
        let Phase::Handshake(conn) = &mut self.phase else {
            return Ok(ReadStatus::More);
        };
        loop {
            let UnbufferedStatus { mut discard, state } =
                conn.process_tls_records(&mut self.cipher[..]);
            let mut done = None;
            let mut established = false;
            match state {
                Err(e) => {
                    self.cipher.drain(..discard.min(self.cipher.len()));
                    return Err(e);
                }
                Ok(ConnectionState::ReadTraffic(mut r)) => {
                    while let Some(rec) = r.next_record() {
                        let rec = rec?;
                        discard += rec.discard;
                        plain.extend_from_slice(rec.payload);
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    append(&mut self.pending, 4096, |b| e.encode(b).or_else(encode_err))?;
                }
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    // Sent by the writer, in order, with what it encrypts after.
                    t.done();
                }
                Ok(ConnectionState::BlockedHandshake) => done = Some(ReadStatus::More),
                Ok(ConnectionState::WriteTraffic(_)) => {
                    established = !conn.is_handshaking();
                    done = Some(ReadStatus::More);
                }
                Ok(ConnectionState::PeerClosed) | Ok(ConnectionState::Closed) => {
                    done = Some(ReadStatus::PeerClosed);
                }
                Ok(_) => {
                    // Early data is never accepted (max_early_data_size = 0).
                    return Err(rustls::Error::General("unexpected TLS state".into()));
                }
            }
            self.cipher.drain(..discard.min(self.cipher.len()));
            if established {
                break;
            }
            if let Some(s) = done {
                return Ok(s);
            }
        }
        self.take_keys()?;
        Ok(ReadStatus::More)
    }

    /// The handshake is done: rustls hands its traffic keys over (everything it had to
    /// send is in `pending` already) and its connection state is dropped.
    fn take_keys(&mut self) -> Result<(), rustls::Error> {
        let Phase::Handshake(conn) = std::mem::replace(&mut self.phase, Phase::Failed) else {
            return Ok(());
        };
        self.resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        self.alpn = conn
            .alpn_protocol()
            .and_then(|p| ALPN.iter().copied().find(|a| *a == p));
        let (secrets, kernel) = conn.dangerous_into_kernel_connection()?;
        self.phase = Phase::Traffic(Box::new(record::Traffic::new(secrets, kernel)?));
        Ok(())
    }

    /// After a handshake error: the alert rustls queued for the peer, into the pending
    /// output.
    fn flush_alert(&mut self) {
        let Phase::Handshake(conn) = &mut self.phase else {
            return;
        };
        for _ in 0..4 {
            let st = conn.process_tls_records(&mut []);
            match st.state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    let _ = append(&mut self.pending, 64, |b| e.encode(b).or_else(encode_err));
                }
                Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
                _ => return,
            }
        }
    }

    /// Encrypts `plain` into records of at most 16 KiB appended to `out` (after a key
    /// update when one is due).
    pub fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), rustls::Error> {
        match &mut self.phase {
            Phase::Traffic(t) => t.encrypt(plain, out),
            _ => Err(rustls::Error::General(
                "TLS: no application data before the handshake is done".into(),
            )),
        }
    }

    /// Appends a close_notify alert to `out` (nothing before the handshake is done).
    pub fn close_notify(&mut self, out: &mut Vec<u8>) {
        if let Phase::Traffic(t) = &mut self.phase {
            t.close_notify(out);
        }
    }

    #[cfg(test)]
    fn traffic(&mut self) -> &mut record::Traffic {
        match &mut self.phase {
            Phase::Traffic(t) => t,
            _ => panic!("the handshake is not done"),
        }
    }
}

/// For tests and benches: a rustls client and a `TlsConn` in memory.
#[doc(hidden)]
pub mod testing {
    use super::TlsConn;
    use std::io::Write as _;

    /// Moves bytes between `client` and `server` until neither has more to send, feeding
    /// the server `chunk` bytes at a time; the server's plaintext goes to `plain`.
    pub fn pump(
        client: &mut rustls::ClientConnection,
        server: &mut TlsConn,
        chunk: usize,
        plain: &mut Vec<u8>,
    ) {
        for _ in 0..64 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).expect("client TLS bytes");
            }
            for piece in wire.chunks(chunk.max(1)) {
                server.cipher.extend_from_slice(piece);
                server.read(plain).expect("the server reads them");
            }
            let out = server.take_pending();
            if !out.is_empty() {
                client.read_tls(&mut &out[..]).expect("client reads");
                client.process_new_packets().expect("client accepts");
            }
            let _ = client.writer().flush();
            if wire.is_empty() && out.is_empty() {
                break;
            }
        }
    }
}

mod record;

#[cfg(test)]
mod tests;
