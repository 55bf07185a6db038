//! MUC fan-out cost per recipient, in process: one groupchat message reflected by a room to
//! N occupant sessions on the room's own shard — the room's session list, the per-shard
//! batch, the session lookup and the push of `[header, head, to, tail]` onto each
//! recipient's queue. The body is never copied per recipient, so the cost per recipient
//! should stay flat as N grows.
//!
//! N distinct users, each with one session. The first joins for real; the others are
//! seated directly (a real join is O(N) presences by XEP-0045's design, so building a
//! 10,000-occupant room by joins would take 50 million presences).
//!
//! `muc_join/occupants_N`: one real join, the N-th occupant into a room of N-1 (the room
//! built as above): the N-1 presences to the joiner, the joiner's presence to all N, the
//! subject. Its leave, and the writers' draining, are not timed.
//! `muc_join/occupants_N_moderators_only`: the same join in a room that broadcasts only
//! its moderators' presence (`muc#roomconfig_presencebroadcast`): the joiner gets the
//! owner's presence, its own and the subject, and nobody gets the joiner's, so the cost
//! should not grow with N.
//!
//! `muc_private/occupants_N`: one private message (XEP-0045 §7.5) from the last occupant of
//! a room of N to the first: the room finds the sender by its session and the recipient by
//! its nick, so the cost should not grow with N.
//!
//! Run: `cargo bench --bench fanout`.

use aoba::config::Config;
use aoba::server::Shard;
use aoba::xml::stanza::{Limits, Stanza};
use aoba::xmpp::jid::Jid;
use aoba::xmpp::router::{self, Kind, SType};
use aoba::xmpp::sink::Sink;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::rc::Rc;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROOM: &str = "group-123e4567-e89b-12d3-a456-426614174000@conference.localhost";
const MSG: &str = "<message xmlns='jabber:client' to='group-123e4567-e89b-12d3-a456-426614174000@conference.localhost' type='groupchat' id='g1'><body>Hello everyone! A typical short group chat line of about seventy bytes.</body></message>";

fn setup(n: usize) -> (Rc<Shard>, Vec<Rc<Sink>>, Jid) {
    let mut cfg = Config::default();
    cfg.auth.jwt_secret = "bench".into();
    cfg.muc.auto_create_unlocked = true;
    let shard = Shard::standalone(cfg);
    let service = &shard.muc;
    let limits = Limits {
        max_depth: 32,
        max_attrs: 64,
    };
    let mut ctls = Vec::with_capacity(n);
    for i in 0..n {
        let jid = Jid::parse(&format!("user{i}@localhost/web")).unwrap();
        let ctl = Rc::new(Sink::new(i as u64 + 1, usize::MAX));
        shard
            .sessions
            .borrow_mut()
            .bind(jid.clone(), ctl.clone(), 1)
            .unwrap();
        if i == 0 {
            let join = format!(
                "<presence xmlns='jabber:client' to='{ROOM}/u0'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
            );
            let st = Stanza::parse(&join, &limits).unwrap();
            let to = format!("{ROOM}/u0");
            service.handle(
                &*shard,
                router::stamp(
                    &st,
                    Kind::Presence,
                    SType::Available,
                    jid.as_str(),
                    Some(&to),
                ),
            );
        } else {
            service.seat_for_bench(ROOM, &format!("u{i}"), &jid, 1);
        }
        ctl.out.take_unsent();
        ctls.push(ctl);
    }
    (shard, ctls, Jid::parse("user0@localhost/web").unwrap())
}

/// Sends `from`'s available (join) or unavailable (leave) presence to `ROOM/nick`.
fn presence(service: &aoba::muc::Service, shard: &Shard, from: &Jid, nick: &str, join: bool) {
    let limits = Limits {
        max_depth: 32,
        max_attrs: 64,
    };
    let to = format!("{ROOM}/{nick}");
    let text = if join {
        format!(
            "<presence xmlns='jabber:client' to='{to}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        )
    } else {
        format!("<presence xmlns='jabber:client' to='{to}' type='unavailable'/>")
    };
    let st = Stanza::parse(&text, &limits).unwrap();
    let stype = if join {
        SType::Available
    } else {
        SType::Unavailable
    };
    service.handle(
        shard,
        router::stamp(&st, Kind::Presence, stype, from.as_str(), Some(&to)),
    );
}

/// The owner (`user0`, the room's creator) has the room broadcast only moderators' presence.
fn moderators_only(shard: &Shard, owner: &Jid) {
    let text = format!(
        "<iq xmlns='jabber:client' type='set' id='pb' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_presencebroadcast'><value>moderator</value></field></x></query></iq>"
    );
    let st = Stanza::parse(&text, &Limits::default()).unwrap();
    shard.muc.handle(
        shard,
        router::stamp(&st, Kind::Iq, SType::Set, owner.as_str(), Some(ROOM)),
    );
}

fn join_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("muc_join");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    for (n, only_moderators) in [
        (1000usize, false),
        (10_000, false),
        (1000, true),
        (10_000, true),
    ] {
        // The room of N with the last one seated, who leaves: a room of N-1 and its joiner.
        let (shard, ctls, owner) = setup(n);
        if only_moderators {
            moderators_only(&shard, &owner);
        }
        let service = &shard.muc;
        let joiner = Jid::parse(&format!("user{}@localhost/web", n - 1)).unwrap();
        let nick = format!("u{}", n - 1);
        presence(service, &shard, &joiner, &nick, false);
        for c in &ctls {
            c.out.take_unsent();
        }
        g.throughput(Throughput::Elements(n as u64));
        let name = if only_moderators {
            format!("occupants_{n}_moderators_only")
        } else {
            format!("occupants_{n}")
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    presence(service, &shard, &joiner, &nick, true);
                    total += t.elapsed();
                    presence(service, &shard, &joiner, &nick, false);
                    for c in &ctls {
                        c.out.take_unsent();
                    }
                }
                total
            })
        });
    }
    g.finish();
}

fn private_benches(c: &mut Criterion) {
    let limits = Limits {
        max_depth: 32,
        max_attrs: 64,
    };
    let mut g = c.benchmark_group("muc_private");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    let to = format!("{ROOM}/u0");
    let msg = format!(
        "<message xmlns='jabber:client' to='{to}' type='chat' id='p1'><body>Hello there!</body></message>"
    );
    for n in [10usize, 1000, 10_000] {
        let (shard, ctls, _) = setup(n);
        let service = &shard.muc;
        let sender = Jid::parse(&format!("user{}@localhost/web", n - 1)).unwrap();
        g.bench_function(format!("occupants_{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(32);
                    let t = Instant::now();
                    for _ in 0..k {
                        let st = Stanza::parse(&msg, &limits).unwrap();
                        service.handle(
                            &*shard,
                            router::stamp(
                                &st,
                                Kind::Message,
                                SType::Chat,
                                sender.as_str(),
                                Some(&to),
                            ),
                        );
                    }
                    total += t.elapsed();
                    ctls[0].out.take_unsent(); // what the writer does, not timed
                    left -= k;
                }
                total
            })
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let limits = Limits {
        max_depth: 32,
        max_attrs: 64,
    };
    let mut g = c.benchmark_group("muc_fanout");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    for n in [10usize, 100, 1000, 10_000] {
        let (shard, ctls, sender) = setup(n);
        let service = &shard.muc;
        for c in &ctls {
            c.out.take_unsent();
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("occupants_{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(32);
                    let t = Instant::now();
                    for _ in 0..k {
                        let st = Stanza::parse(MSG, &limits).unwrap();
                        service.handle(
                            &*shard,
                            router::stamp(
                                &st,
                                Kind::Message,
                                SType::Groupchat,
                                sender.as_str(),
                                Some(ROOM),
                            ),
                        );
                    }
                    total += t.elapsed();
                    for c in &ctls {
                        c.out.take_unsent(); // what the writers do, not timed
                    }
                    left -= k;
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches_group, benches, join_benches, private_benches);
criterion_main!(benches_group);
