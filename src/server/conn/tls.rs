//! The connection's TLS part: decrypting what was read, the handshake's deadline, and
//! taking the TLS state back from the writer to move it with the connection.

use super::Conn;
use crate::net::outbox::{CloseKind, SharedTls};
use crate::net::tls::{ReadStatus, TlsConn};
use crate::xmpp::stream::Action;
use std::rc::Rc;
use std::time::{Duration, Instant};

impl Conn {
    /// Decrypts the complete records just read into `buf` (a pool buffer, taken if
    /// needed); the TLS bytes it produces (handshake, alerts) go to the writer. `Ok(true)`:
    /// the peer sent close_notify. `Err`: the connection ends (the alert is sent).
    pub(super) fn decrypt(&mut self, t: &SharedTls, buf: &mut Vec<u8>) -> Result<bool, ()> {
        if buf.capacity() == 0 {
            *buf = self.shard.rt.take_read_buf();
        }
        let mut st = t.borrow_mut();
        let was_ready = st.ready();
        let r = st.read(buf);
        let kick = st.has_pending() || (!was_ready && st.ready());
        if st.cipher.is_empty() && st.cipher.capacity() > 0 {
            let c = std::mem::take(&mut st.cipher);
            self.shard.rt.give_read_buf(c);
        }
        if !was_ready && st.ready() {
            tracing::info!(
                shard = self.shard.id,
                conn = self.ctl.id,
                resumed = st.resumed(),
                "TLS handshake done"
            );
        }
        drop(st);
        if kick {
            self.ctl.out.kick();
        }
        match r {
            Ok(ReadStatus::More) => Ok(false),
            Ok(ReadStatus::PeerClosed) => Ok(true),
            Err(e) => {
                tracing::info!(conn = self.ctl.id, peer = %self.peer, error = %e, "TLS error");
                self.ctl.close(CloseKind::Flush, Vec::new());
                self.action = Action::Close;
                Err(())
            }
        }
    }

    /// While the TLS handshake runs: when it must be done.
    pub(super) fn handshake_deadline(&self) -> Option<Instant> {
        let t = self.tls.as_ref()?.borrow();
        if t.ready() {
            return None;
        }
        let ms = self.shard.config.tls.handshake_timeout_ms;
        Some(t.since() + Duration::from_millis(ms))
    }

    /// The TLS state, back from the (finished) writer: `None` if it is still shared.
    pub(super) fn take_tls(&mut self) -> Option<Option<Box<TlsConn>>> {
        match self.tls.take() {
            None => Some(None),
            Some(rc) => Rc::try_unwrap(rc)
                .ok()
                .map(|c| Some(Box::new(c.into_inner()))),
        }
    }
}
