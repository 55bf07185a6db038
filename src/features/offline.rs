//! XEP-0160 offline messages with XEP-0203 delayed delivery, and the user registry that
//! JWT auth needs (there is no account list: a user is known once it has logged in, or
//! once the admin API provisioned it).
//!
//! A chat/normal message nobody available can take is stamped with `<delay/>` and sent to
//! the storage thread; it comes back when the user sends initial presence with a
//! non-negative priority (RFC 6121 §8.5.2.1.1). Receipt requests inside are kept, so the
//! receipt flows back when the recipient's client answers.

use crate::storage::{IfUnknown, Parts, Request};
use crate::xml::ns;
use crate::xml::writer::Elem;
use crate::xmpp::core::Host;
use crate::xmpp::errors::Cond;
use crate::xmpp::jid::Jid;
use crate::xmpp::router::{self, Routed, split_full};
use crate::xmpp::sink::OutFrame;
use bytes::Bytes;
use std::cell::RefCell;

/// What the server's disco#info lists for this module (XEP-0160).
pub const FEATURE: &str = "msgoffline";

/// This module's state on one shard.
#[derive(Default)]
pub struct Offline {
    /// Users (localparts) of this home shard known to be recorded (seen at a login,
    /// provisioned, or learnt from storage): a cache, not the user list. Nothing loads
    /// every user; a user not in it is looked up by storage when it matters (strict mode,
    /// or a sender past its strangers limit). Emptied when it reaches
    /// `storage.users_cache_max`.
    known_users: RefCell<std::collections::HashSet<Box<str>, ahash::RandomState>>,
    /// Never-seen recipients per sender this hour (`storage.max_unknown_recipients_per_hour`).
    stranger_counts: RefCell<StrangerCounts>,
    /// `ask_user` questions waiting for storage, by token (admin requests: few).
    #[allow(clippy::type_complexity)]
    asked: RefCell<std::collections::HashMap<u64, Box<dyn FnOnce(Option<bool>)>>>,
}

impl Offline {
    /// Users remembered as recorded (the metrics).
    pub fn cached_len(&self) -> usize {
        self.known_users.borrow().len()
    }
}

/// Remembers that `local` is recorded.
fn remember<H: Host>(shard: &H, state: &Offline, local: &str) {
    let mut k = state.known_users.borrow_mut();
    if k.len() >= shard.cfg().storage.users_cache_max {
        k.clear();
    }
    k.insert(local.into());
}

/// Storage says `local` is recorded (learnt while storing an offline message for it).
pub fn known<H: Host>(shard: &H, state: &Offline, local: &str) {
    remember(shard, state, local);
}

/// Asks storage whether `local` is recorded (`record`: records it, and answers whether it
/// was new); `then` gets the answer (`None` when storage failed) after the batch's commit.
/// Without storage, from this shard's memory.
pub fn ask_user<H: Host>(
    shard: &H,
    state: &Offline,
    local: &str,
    record: bool,
    then: Box<dyn FnOnce(Option<bool>)>,
) {
    if !shard.has_storage() {
        let known = state.known_users.borrow().contains(local);
        if record {
            remember(shard, state, local);
            return then(Some(!known));
        }
        return then(Some(known));
    }
    if record {
        remember(shard, state, local);
    }
    let token = shard.random();
    state.asked.borrow_mut().insert(token, then);
    shard.storage(Request::User {
        user: local.to_string(),
        record,
        shard: shard.id,
        token,
    });
}

/// The answer to `ask_user`.
pub fn on_user<H: Host>(shard: &H, state: &Offline, token: u64, known: Option<bool>) {
    let _ = shard;
    if let Some(then) = state.asked.borrow_mut().remove(&token) {
        then(known);
    }
}

/// The admin API provisions `local` before its first login (as if it had been seen):
/// messages to it are stored offline in strict mode too, and never count as a stranger's.
/// `then` gets whether it was new (`None`: storage failed), once that is stored.
pub fn provision<H: Host>(
    shard: &H,
    state: &Offline,
    local: &str,
    then: Box<dyn FnOnce(Option<bool>)>,
) {
    ask_user(shard, state, local, true, then);
}

/// A deleted user is not known any more (its stored record goes with its data).
pub fn forget_user(state: &Offline, local: &str) -> bool {
    state.known_users.borrow_mut().remove(local)
}

/// Called at bind: records a user the first time its shard sees it (since it started, or
/// since the cache was emptied; recording again is harmless).
pub fn seen_user<H: Host>(shard: &H, state: &Offline, local: &str) {
    if state.known_users.borrow().contains(local) {
        return;
    }
    remember(shard, state, local);
    shard.storage(Request::RecordUser {
        user: local.to_string(),
    });
}

/// The message with `<delay xmlns='urn:xmpp:delay'/>` (XEP-0203) as its last child: a
/// part of what is stored (the message's bytes are not copied), except for a message
/// without children (`<message …/>`), which is rewritten.
fn with_delay(r: Routed, domain: &str) -> Routed {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let mut delay = Vec::with_capacity(domain.len() + 96);
    Elem::new(&mut delay, "delay")
        .attr("xmlns", ns::DELAY)
        .attr("from", domain)
        .attr_fmt("stamp", &stamp)
        .text("Offline Storage")
        .end();
    match r.with_last_child(Bytes::from(delay.clone())) {
        Ok(r) => r,
        Err(r) => {
            let p = r.to_vec();
            let mut v = Vec::with_capacity(p.len() + delay.len() + 12);
            match p.strip_suffix(b"/>") {
                Some(open) => {
                    v.extend_from_slice(open);
                    v.push(b'>');
                    v.extend_from_slice(&delay);
                    v.extend_from_slice(b"</message>");
                }
                // An end tag `with_last_child` does not expect (a prefixed name).
                None => {
                    let end = p.windows(2).rposition(|w| w == b"</").unwrap_or(p.len());
                    v.extend_from_slice(&p[..end]);
                    v.extend_from_slice(&delay);
                    v.extend_from_slice(&p[end..]);
                }
            }
            r.with_payload(v)
        }
    }
}

/// Why a message could not be stored.
pub enum NotStored {
    /// Storage off or behind: `service-unavailable`. (A user not recorded in strict mode,
    /// or a sender past its strangers limit, is told by storage: `unknown_user`.)
    Unavailable(Routed),
}

/// Per sender (bare JID, on this recipient shard): the never-seen recipients it left
/// offline messages for in the current hour.
#[derive(Default)]
pub struct StrangerCounts {
    window: Option<std::time::Instant>,
    by_sender: ahash::AHashMap<Box<str>, ahash::AHashSet<Box<str>>>,
}

impl StrangerCounts {
    /// Whether `sender` may leave a message for never-seen `user` (and counts it).
    fn admit(&mut self, sender: &str, user: &str, max: usize) -> bool {
        let now = std::time::Instant::now();
        if self
            .window
            .is_none_or(|w| now.duration_since(w) >= std::time::Duration::from_secs(3600))
        {
            self.window = Some(now);
            self.by_sender.clear();
        }
        let set = self.by_sender.entry(sender.into()).or_default();
        if set.contains(user) {
            return true;
        }
        if set.len() >= max {
            return false;
        }
        set.insert(user.into());
        true
    }
}

/// Stores an undeliverable chat/normal message for its (local) recipient. Gives it back
/// when it cannot be stored: storage off or its queue full, a stranger (never logged in)
/// in strict mode, or a sender past its strangers-per-hour limit.
fn store<H: Host>(shard: &H, state: &Offline, r: Routed) -> Result<(), NotStored> {
    if shard.shared.storage.is_none() {
        return Err(NotStored::Unavailable(r));
    }
    let user = {
        let to = r.to();
        let (bare, _) = split_full(&to);
        match bare.split_once('@') {
            Some((local, d)) if d == shard.domain() => local.to_string(),
            _ => return Err(NotStored::Unavailable(r)),
        }
    };
    let cfg = &shard.cfg().storage;
    // A user this shard does not know may still be recorded: storage looks it up when the
    // answer matters (strict mode, or a sender past its strangers limit).
    let mut if_unknown = IfUnknown::Store;
    if !state.known_users.borrow().contains(user.as_str()) {
        if !cfg.accept_unknown_users {
            if_unknown = IfUnknown::Refuse;
        } else {
            let sender = r.from();
            let sender = split_full(&sender).0;
            let ok = state.stranger_counts.borrow_mut().admit(
                sender,
                &user,
                cfg.max_unknown_recipients_per_hour,
            );
            if !ok {
                if_unknown = IfUnknown::RefuseStranger;
            }
        }
    }
    let uid = r.uid;
    let msg = with_delay(r, shard.domain());
    // Refused (and bounced by the caller) rather than queued when storage is behind.
    shard
        .storage_try(Request::StoreOffline {
            user,
            stanza: Parts(msg.parts().into_iter().collect()),
            shard: shard.id,
            uid,
            if_unknown,
        })
        .map_err(|_| NotStored::Unavailable(msg))
}

/// A chat/normal message nobody available could take (RFC 6121 §8.5.2.1.1): offline
/// storage (XEP-0160), else an error to its sender.
pub fn store_or_bounce<H: Host>(shard: &H, state: &Offline, r: Routed) {
    match store(shard, state, r) {
        Ok(()) => crate::metrics::shard().offline_stored.inc(),
        Err(NotStored::Unavailable(r)) => router::bounce(shard, &r, Cond::ServiceUnavailable),
    }
}

/// Initial presence with a non-negative priority: ask for the user's offline messages,
/// for the session of `jid` on connection `conn`.
pub fn flush<H: Host>(shard: &H, jid: &Jid, conn: u64) {
    if let (Some(_), Some(local)) = (&shard.shared.storage, jid.local()) {
        // A page at a time: half the outbound bound, so the flush never trips it.
        let max_bytes = shard.cfg().limits.outbound_queue_bytes_max / 2;
        shard.storage(Request::TakeOffline {
            user: local.to_string(),
            to: jid.as_str().to_string(),
            conn,
            shard: shard.id,
            max_bytes,
        });
    }
}

/// Storage could not keep an offline message (over quota, or a failed write): its
/// sender is told. A cold path: the stanza is parsed again to find whom to tell.
pub fn not_stored<H: Host>(shard: &H, stanza: Bytes) {
    let Some(r) = std::str::from_utf8(&stanza).ok().and_then(router::reparse) else {
        return;
    };
    tracing::info!(shard = shard.id, to = %r.to(), "offline message not stored");
    router::bounce(shard, &r, Cond::ServiceUnavailable);
}

/// Storage did not keep an offline message because its user is not recorded (strict
/// mode, or a sender past its strangers limit): its sender is told.
pub fn unknown_user<H: Host>(shard: &H, stanza: Bytes, stranger: bool) {
    let Some(r) = std::str::from_utf8(&stanza).ok().and_then(router::reparse) else {
        return;
    };
    tracing::info!(shard = shard.id, to = %r.to(), stranger, "offline message for a user never seen: not stored");
    if stranger {
        return bounce_stranger(shard, &r);
    }
    router::bounce(shard, &r, Cond::ServiceUnavailable);
}

fn bounce_stranger<H: Host>(shard: &H, r: &Routed) {
    router::bounce_with(
        shard,
        r,
        Cond::PolicyViolation,
        Some("too many messages to users who never logged in; try again later"),
    );
}

/// A page of stored messages for the session that asked (`flush`).
pub fn deliver_stored<H: Host>(shard: &H, to: &str, conn: u64, stanzas: Vec<Bytes>, more: bool) {
    let jid = Jid::parse(to).ok();
    // Only the session that asked, still available: a page that arrives after it ended
    // must not land on a new session of the same resource that has not asked (it may not
    // have enabled stream management yet, and would never acknowledge it).
    let ctl = jid.as_ref().and_then(|j| {
        shard
            .sessions
            .borrow()
            .resource(j)
            .filter(|r| r.ctl.id == conn && r.available)
            .map(|r| r.ctl.clone())
    });
    let mut sent = 0;
    if let Some(ctl) = &ctl {
        for s in &stanzas {
            if ctl
                .push(OutFrame::text(s.clone()), router::overflow_words)
                .is_err()
            {
                break;
            }
            sent += 1;
        }
    }
    crate::metrics::shard().offline_delivered.add(sent as u64);
    // The session went away meanwhile: back to storage, in front and in order, never dropped.
    let gone = sent < stanzas.len();
    if gone {
        restore(shard, to, &stanzas[sent..]);
    }
    // More pages: ask for the next once this one has been written out.
    if let (true, false, Some(ctl), Some(jid)) = (more, gone, ctl, jid) {
        let limit = shard.cfg().limits.outbound_queue_bytes_max;
        let shard_id = shard.id;
        let storage = shard.shared.storage.clone();
        monoio::spawn(async move {
            while ctl.out.queued_bytes() > limit / 4 && !ctl.is_closing() {
                monoio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            if let (false, Some(s), Some(local)) = (ctl.is_closing(), storage, jid.local()) {
                let mut req = Request::TakeOffline {
                    user: local.to_string(),
                    to: jid.as_str().to_string(),
                    conn,
                    shard: shard_id,
                    max_bytes: limit / 2,
                };
                // A full storage queue delays the next page, never drops the request
                // (the session would otherwise wait for its next login to get the rest).
                while let Err(back) = s.try_send(req) {
                    if ctl.is_closing() {
                        return;
                    }
                    req = back;
                    monoio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        });
    }
}

fn restore<H: Host>(shard: &H, to: &str, stanzas: &[Bytes]) {
    let (bare, _) = split_full(to);
    let Some((local, _)) = bare.split_once('@') else {
        return;
    };
    shard.storage(Request::RestoreOffline {
        user: local.to_string(),
        stanzas: stanzas.iter().map(|s| s.to_vec()).collect(),
    });
}
