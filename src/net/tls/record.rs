//! The TLS record layer after the handshake, on the traffic keys rustls hands over
//! (`dangerous_into_kernel_connection`, the API made for kTLS): rustls runs the handshake,
//! then an idle session keeps only its two AEAD keys, their IVs and sequence numbers (and,
//! on TLS 1.3, rustls's small key-update state) instead of rustls's whole connection.
//!
//! Records are decrypted in place in the connection's (pooled) ciphertext buffer and
//! encrypted straight into the writer's batch buffer; no per-record allocation.
//!
//! - TLS 1.3 (RFC 8446 §5): every record is `application_data` outside; the nonce is the
//!   IV xor the sequence number; the additional data is the record header; the real
//!   content type is the last non-zero byte of the plaintext. Post-handshake, a client
//!   may only send KeyUpdate (§4.6.3): the receive key is renewed, and when the client
//!   asks for it ours is renewed too, after a KeyUpdate of our own. Before our sequence
//!   number reaches the suite's confidentiality limit (AES-GCM: 2^24 records) we renew
//!   our key ourselves.
//! - TLS 1.2 (RFC 5288 AES-GCM with an 8-byte explicit nonce, RFC 7905 ChaCha20-Poly1305):
//!   the additional data is `seq ‖ type ‖ version ‖ length`. Renegotiation is refused.
//! - Alerts: close_notify ends the peer's side; any fatal alert (and, on TLS 1.3, any
//!   alert but user_canceled) is an error; a TLS 1.2 warning is ignored. Our own errors
//!   send a fatal alert.

use super::ReadStatus;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{ConnectionTrafficSecrets, ExtractedSecrets, ProtocolVersion, SupportedCipherSuite};

const HEADER: usize = 5;
const TAG: usize = 16;
const EXPLICIT_NONCE: usize = 8;
const MAX_PLAINTEXT: usize = 16 * 1024;

const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPDATA: u8 = 23;
const HS_KEY_UPDATE: u8 = 24;

/// Alert descriptions we send or read (RFC 8446 §6).
const CLOSE_NOTIFY: u8 = 0;
const UNEXPECTED_MESSAGE: u8 = 10;
const BAD_RECORD_MAC: u8 = 20;
const RECORD_OVERFLOW: u8 = 22;
const DECODE_ERROR: u8 = 50;
const INTERNAL_ERROR: u8 = 80;
const USER_CANCELED: u8 = 90;
const NO_RENEGOTIATION: u8 = 100;
/// Not an alert: the error needs none (the peer's own alert ended the connection).
const NO_ALERT: u8 = 255;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Version {
    Tls12,
    Tls13,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Aead {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha,
}

/// One direction's key, IV and next sequence number.
struct Dir {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl Dir {
    fn new(seq: u64, s: ConnectionTrafficSecrets) -> Result<(Dir, Aead), rustls::Error> {
        let (alg, aead, key, iv) = match s {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
                (&aead::AES_128_GCM, Aead::Aes128Gcm, key, iv)
            }
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                (&aead::AES_256_GCM, Aead::Aes256Gcm, key, iv)
            }
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, Aead::ChaCha, key, iv)
            }
            _ => return Err(rustls::Error::General("unsupported TLS cipher".into())),
        };
        let key = UnboundKey::new(alg, key.as_ref())
            .map_err(|_| rustls::Error::General("bad TLS traffic key".into()))?;
        let iv: [u8; 12] = iv
            .as_ref()
            .try_into()
            .map_err(|_| rustls::Error::General("bad TLS IV".into()))?;
        Ok((
            Dir {
                key: LessSafeKey::new(key),
                iv,
                seq,
            },
            aead,
        ))
    }
}

/// The IV xor the sequence number (RFC 8446 §5.3; RFC 7905 for TLS 1.2 ChaCha; and
/// rustls's TLS 1.2 AES-GCM nonce, whose last 8 bytes go on the wire).
fn nonce_for(iv: &[u8; 12], seq: u64) -> [u8; 12] {
    let mut n = *iv;
    for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
        *b ^= s;
    }
    n
}

fn tls12_aad(seq: u64, typ: u8, len: usize) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[..8].copy_from_slice(&seq.to_be_bytes());
    a[8] = typ;
    a[9] = 3;
    a[10] = 3;
    a[11..].copy_from_slice(&(len as u16).to_be_bytes());
    a
}

/// A connection's record layer once the handshake is done.
pub struct Traffic {
    rx: Dir,
    tx: Dir,
    version: Version,
    aead: Aead,
    /// Renew (TLS 1.3) or stop (TLS 1.2) before `tx.seq` reaches this.
    tx_limit: u64,
    /// rustls's key schedule, for TLS 1.3 key updates (`None` on TLS 1.2).
    kernel: Option<Box<KernelConnection<ServerConnectionData>>>,
    peer_closed: bool,
    sent_close: bool,
    failed: bool,
}

/// An error that closes the connection, with the alert the peer gets first.
fn fail(desc: u8, what: &str) -> (u8, rustls::Error) {
    (
        desc,
        rustls::Error::General(format!("TLS record layer: {what}")),
    )
}

impl Traffic {
    pub fn new(
        secrets: ExtractedSecrets,
        kernel: KernelConnection<ServerConnectionData>,
    ) -> Result<Traffic, rustls::Error> {
        let version = match kernel.protocol_version() {
            ProtocolVersion::TLSv1_3 => Version::Tls13,
            ProtocolVersion::TLSv1_2 => Version::Tls12,
            v => return Err(rustls::Error::General(format!("unsupported {v:?}"))),
        };
        let limit = match kernel.negotiated_cipher_suite() {
            SupportedCipherSuite::Tls13(s) => s.common.confidentiality_limit,
            SupportedCipherSuite::Tls12(s) => s.common.confidentiality_limit,
        };
        let (rx, aead) = Dir::new(secrets.rx.0, secrets.rx.1)?;
        let (tx, _) = Dir::new(secrets.tx.0, secrets.tx.1)?;
        Ok(Traffic {
            rx,
            tx,
            version,
            aead,
            // A few records of margin for the key update and a last alert.
            tx_limit: limit.saturating_sub(16),
            kernel: (version == Version::Tls13).then(|| Box::new(kernel)),
            peer_closed: false,
            sent_close: false,
            failed: false,
        })
    }

    /// A record layer on a peer's extracted secrets, without key updates: tests use it
    /// as the client, to send records no real client sends.
    #[cfg(test)]
    pub(super) fn for_test(tls13: bool, secrets: ExtractedSecrets) -> Traffic {
        let (rx, aead) = Dir::new(secrets.rx.0, secrets.rx.1).unwrap();
        let (tx, _) = Dir::new(secrets.tx.0, secrets.tx.1).unwrap();
        Traffic {
            rx,
            tx,
            version: if tls13 {
                Version::Tls13
            } else {
                Version::Tls12
            },
            aead,
            tx_limit: u64::MAX,
            kernel: None,
            peer_closed: false,
            sent_close: false,
            failed: false,
        }
    }

    /// One record of content type `typ`, as it is (tests).
    #[cfg(test)]
    pub(super) fn seal_for_test(&mut self, typ: u8, plain: &[u8], out: &mut Vec<u8>) {
        self.seal_raw(typ, plain, out).unwrap();
    }

    #[cfg(test)]
    pub(super) fn set_tx_limit(&mut self, limit: u64) {
        self.tx_limit = limit;
    }

    #[cfg(test)]
    pub(super) fn tx_seq(&self) -> u64 {
        self.tx.seq
    }

    fn max_ciphertext(&self) -> usize {
        match self.version {
            Version::Tls13 => MAX_PLAINTEXT + 256,
            Version::Tls12 => MAX_PLAINTEXT + 2048,
        }
    }

    /// Decrypts the complete records of `cipher` (consumed; a partial record stays) and
    /// appends their application data to `plain`; what we must send in answer (a key
    /// update, an alert) goes to `pending`.
    pub fn read(
        &mut self,
        cipher: &mut Vec<u8>,
        plain: &mut Vec<u8>,
        pending: &mut Vec<u8>,
    ) -> Result<ReadStatus, rustls::Error> {
        if self.failed {
            return Err(rustls::Error::General("TLS connection failed".into()));
        }
        let mut used = 0usize;
        let r = self.read_records(cipher, &mut used, plain, pending);
        cipher.drain(..used.min(cipher.len()));
        match r {
            Ok(s) => Ok(s),
            Err((desc, e)) => {
                self.failed = true;
                if !self.sent_close && desc != NO_ALERT {
                    let _ = self.seal_raw(CT_ALERT, &[2, desc], pending);
                    self.sent_close = true;
                }
                Err(e)
            }
        }
    }

    fn read_records(
        &mut self,
        cipher: &mut [u8],
        used: &mut usize,
        plain: &mut Vec<u8>,
        pending: &mut Vec<u8>,
    ) -> Result<ReadStatus, (u8, rustls::Error)> {
        if self.peer_closed {
            *used = cipher.len();
            return Ok(ReadStatus::PeerClosed);
        }
        loop {
            let rest = cipher.get_mut(*used..).unwrap_or_default();
            let Some(&[typ, major, _minor, l0, l1]) = rest.get(..HEADER) else {
                return Ok(ReadStatus::More);
            };
            let len = u16::from_be_bytes([l0, l1]) as usize;
            if major != 3 {
                return Err(fail(DECODE_ERROR, "not a TLS record"));
            }
            if len > self.max_ciphertext() {
                return Err(fail(RECORD_OVERFLOW, "record too long"));
            }
            let Some(record) = rest.get_mut(..HEADER + len) else {
                return Ok(ReadStatus::More);
            };
            *used += HEADER + len;
            let (hdr, body) = record.split_at_mut(HEADER);
            let (typ, payload) = self.open(typ, hdr, body)?;
            match typ {
                CT_APPDATA => plain.extend_from_slice(payload),
                CT_ALERT => {
                    let &[level, desc] = payload else {
                        return Err(fail(DECODE_ERROR, "bad alert"));
                    };
                    if desc == CLOSE_NOTIFY {
                        self.peer_closed = true;
                        *used = cipher.len();
                        return Ok(ReadStatus::PeerClosed);
                    }
                    let ignorable = match self.version {
                        Version::Tls13 => desc == USER_CANCELED,
                        Version::Tls12 => level == 1,
                    };
                    if !ignorable {
                        return Err((
                            NO_ALERT,
                            rustls::Error::General(format!("TLS alert {desc} from the peer")),
                        ));
                    }
                }
                CT_HANDSHAKE if self.version == Version::Tls13 => {
                    // One whole KeyUpdate per record: it must end the record (§4.6.3).
                    let &[HS_KEY_UPDATE, 0, 0, 1, req] = payload else {
                        return Err(fail(UNEXPECTED_MESSAGE, "unexpected handshake message"));
                    };
                    if req > 1 {
                        return Err(fail(DECODE_ERROR, "bad KeyUpdate"));
                    }
                    let next = self.kernel_mut()?.update_rx_secret();
                    self.rx = Self::renewed(next)?;
                    if req == 1 {
                        self.update_tx(pending)?;
                    }
                }
                CT_HANDSHAKE => return Err(fail(NO_RENEGOTIATION, "renegotiation refused")),
                _ => return Err(fail(UNEXPECTED_MESSAGE, "unexpected record type")),
            }
        }
    }

    fn kernel_mut(
        &mut self,
    ) -> Result<&mut KernelConnection<ServerConnectionData>, (u8, rustls::Error)> {
        self.kernel
            .as_deref_mut()
            .ok_or_else(|| fail(INTERNAL_ERROR, "no key schedule"))
    }

    fn renewed(
        next: Result<(u64, ConnectionTrafficSecrets), rustls::Error>,
    ) -> Result<Dir, (u8, rustls::Error)> {
        next.and_then(|(seq, s)| Dir::new(seq, s))
            .map(|(d, _)| d)
            .map_err(|e| (INTERNAL_ERROR, e))
    }

    /// TLS 1.3: tells the peer (under the old key) and switches to the next send key.
    fn update_tx(&mut self, out: &mut Vec<u8>) -> Result<(), (u8, rustls::Error)> {
        self.seal_raw(CT_HANDSHAKE, &[HS_KEY_UPDATE, 0, 0, 1, 0], out)?;
        let next = self.kernel_mut()?.update_tx_secret();
        self.tx = Self::renewed(next)?;
        Ok(())
    }

    /// Authenticates and decrypts one record in place: its real content type and
    /// plaintext.
    fn open<'a>(
        &mut self,
        outer: u8,
        hdr: &[u8],
        body: &'a mut [u8],
    ) -> Result<(u8, &'a [u8]), (u8, rustls::Error)> {
        let seq = self.rx.seq;
        self.rx.seq = seq
            .checked_add(1)
            .ok_or_else(|| fail(INTERNAL_ERROR, "sequence numbers used up"))?;
        let bad_mac = || fail(BAD_RECORD_MAC, "record authentication failed");
        match self.version {
            Version::Tls13 => {
                if outer != CT_APPDATA {
                    return Err(fail(UNEXPECTED_MESSAGE, "unencrypted record"));
                }
                let nonce = Nonce::assume_unique_for_key(nonce_for(&self.rx.iv, seq));
                let p = self
                    .rx
                    .key
                    .open_in_place(nonce, Aad::from(hdr), body)
                    .map_err(|_| bad_mac())?;
                // The content type is the last non-zero byte; zeros after it are padding.
                let end = p.iter().rposition(|&b| b != 0);
                let Some(end) = end else {
                    return Err(fail(UNEXPECTED_MESSAGE, "record without a content type"));
                };
                if end > MAX_PLAINTEXT {
                    return Err(fail(RECORD_OVERFLOW, "plaintext too long"));
                }
                let typ = p[end];
                Ok((typ, &p[..end]))
            }
            Version::Tls12 => {
                let (nonce, body) = if self.aead == Aead::ChaCha {
                    (nonce_for(&self.rx.iv, seq), body)
                } else {
                    if body.len() < EXPLICIT_NONCE {
                        return Err(bad_mac());
                    }
                    let (explicit, rest) = body.split_at_mut(EXPLICIT_NONCE);
                    let mut n = self.rx.iv;
                    n[4..].copy_from_slice(explicit);
                    (n, rest)
                };
                let Some(len) = body.len().checked_sub(TAG) else {
                    return Err(bad_mac());
                };
                if len > MAX_PLAINTEXT {
                    return Err(fail(RECORD_OVERFLOW, "plaintext too long"));
                }
                let aad = tls12_aad(seq, outer, len);
                let p = self
                    .rx
                    .key
                    .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
                    .map_err(|_| bad_mac())?;
                Ok((outer, &*p))
            }
        }
    }

    /// Encrypts `plain` as application data, in records of at most 16 KiB, after `out`'s
    /// content.
    pub fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), rustls::Error> {
        if self.sent_close || self.failed {
            return Err(rustls::Error::General("TLS connection closed".into()));
        }
        for chunk in plain.chunks(MAX_PLAINTEXT) {
            self.seal(CT_APPDATA, chunk, out).map_err(|(_, e)| e)?;
        }
        Ok(())
    }

    /// Appends a close_notify alert (once).
    pub fn close_notify(&mut self, out: &mut Vec<u8>) {
        if !self.sent_close && !self.failed {
            let _ = self.seal(CT_ALERT, &[1, CLOSE_NOTIFY], out);
            self.sent_close = true;
        }
    }

    /// One record, renewing the send key first when it is due (TLS 1.3) or refusing once
    /// it is used up (TLS 1.2).
    fn seal(
        &mut self,
        typ: u8,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), (u8, rustls::Error)> {
        if self.tx.seq >= self.tx_limit {
            match self.version {
                Version::Tls13 => self.update_tx(out)?,
                Version::Tls12 => return Err(fail(NO_ALERT, "send key used up")),
            }
        }
        self.seal_raw(typ, plain, out)
    }

    fn seal_raw(
        &mut self,
        typ: u8,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), (u8, rustls::Error)> {
        let seq = self.tx.seq;
        self.tx.seq = seq
            .checked_add(1)
            .ok_or_else(|| fail(INTERNAL_ERROR, "sequence numbers used up"))?;
        let nonce = nonce_for(&self.tx.iv, seq);
        let start = out.len();
        let (outer, body_len) = match self.version {
            Version::Tls13 => (CT_APPDATA, plain.len() + 1 + TAG),
            Version::Tls12 if self.aead == Aead::ChaCha => (typ, plain.len() + TAG),
            Version::Tls12 => (typ, EXPLICIT_NONCE + plain.len() + TAG),
        };
        out.reserve(HEADER + body_len);
        out.extend_from_slice(&[outer, 3, 3]);
        out.extend_from_slice(&(body_len as u16).to_be_bytes());
        let sealed = match self.version {
            Version::Tls13 => {
                out.extend_from_slice(plain);
                out.push(typ);
                let (hdr, body) = out[start..].split_at_mut(HEADER);
                self.tx.key.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&*hdr),
                    body,
                )
            }
            Version::Tls12 => {
                if self.aead != Aead::ChaCha {
                    out.extend_from_slice(&nonce[4..]);
                }
                let from = out.len();
                out.extend_from_slice(plain);
                self.tx.key.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(tls12_aad(seq, typ, plain.len())),
                    &mut out[from..],
                )
            }
        };
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(fail(INTERNAL_ERROR, "encryption failed"))
            }
        }
    }
}
