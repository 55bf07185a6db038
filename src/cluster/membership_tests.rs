//! Membership against a real PostgreSQL (the tests' shared server, a database per test).

use super::*;
use crate::storage::pg_test;
use std::sync::mpsc::{Receiver, channel};

fn cfg(url: &str, node: &str) -> MembershipConfig {
    MembershipConfig {
        heartbeat_ms: 50,
        failure_timeout_ms: 3000,
        ..MembershipConfig::new(url, node)
    }
}

struct Node {
    m: Membership,
    views: Receiver<View>,
    fenced: Receiver<Fenced>,
}

fn join(url: &str, node: &str) -> Node {
    let (vt, views) = channel();
    let (ft, fenced) = channel();
    let m = Membership::join(
        cfg(url, node),
        Box::new(move |v| {
            let _ = vt.send(v.clone());
        }),
        Box::new(move |f| {
            let _ = ft.send(f);
        }),
    )
    .unwrap();
    Node { m, views, fenced }
}

/// Waits until `n`'s current view is exactly `names`; also checks that `on_view` was given
/// that view.
fn sees(n: &Node, names: &[&str]) -> View {
    let until = Instant::now() + Duration::from_secs(20);
    let mut v = n.m.view();
    while v.names() != names && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
        v = n.m.view();
    }
    assert_eq!(v.names(), names, "{v:?}");
    let given: Vec<View> = n.views.try_iter().collect();
    assert!(
        given.is_empty() || given.contains(&v),
        "on_view had {v:?}: {given:?}"
    );
    v
}

#[test]
fn members_join_see_each_other_and_leave() {
    let url = pg_test::database();
    let a = join(&url, "a");
    let b = join(&url, "b");
    let c = join(&url, "c");
    let va = sees(&a, &["a", "b", "c"]);
    let vb = sees(&b, &["a", "b", "c"]);
    let vc = sees(&c, &["a", "b", "c"]);
    assert_eq!(va.epoch, vc.epoch);
    assert_eq!(va, vb);
    let nums: Vec<i32> = va.members.iter().map(|m| m.num).collect();
    assert_eq!(nums, [1, 2, 3], "small distinct numbers");
    // A clean leave: the others see it at once (next heartbeat), with a new epoch.
    b.m.leave();
    let after = sees(&a, &["a", "c"]);
    assert!(after.epoch > va.epoch);
    sees(&c, &["a", "c"]);
    // Its number is free again; its name joins with a new incarnation.
    let b2 = join(&url, "b");
    assert_eq!(b2.m.me().num, 2);
    assert_eq!(b2.m.me().incarnation, 1, "its row was deleted on leave");
    sees(&a, &["a", "b", "c"]);
    assert!(a.fenced.try_recv().is_err() && c.fenced.try_recv().is_err());
}

#[test]
fn a_name_held_by_a_live_node_is_refused() {
    let url = pg_test::database();
    let _a = join(&url, "a");
    let e = Membership::join(cfg(&url, "a"), Box::new(|_| {}), Box::new(|_| {}))
        .err()
        .unwrap();
    assert!(e.contains("held by another live process"), "{e}");
    let e = Membership::join(cfg(&url, "a.b"), Box::new(|_| {}), Box::new(|_| {}))
        .err()
        .unwrap();
    assert!(e.contains("node name"), "{e}");
}

/// A node stalled longer than the failure timeout (like SIGSTOP) is removed by the others,
/// its session terminated; when it wakes it fences itself and writes nothing.
#[test]
fn a_stalled_node_is_removed_and_fences_itself_on_waking() {
    let url = pg_test::database();
    let a = join(&url, "a");
    let b = join(&url, "b");
    let before = sees(&a, &["a", "b"]);
    *b.m.pause.lock().unwrap() = Some(Duration::from_millis(6000));
    let after = sees(&a, &["a"]);
    assert!(after.epoch > before.epoch);
    // Fenced: for its silence when it wakes (or, if it was starved before the stall
    // began, because its session was terminated under it).
    let f = b.fenced.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(matches!(f, Fenced::Silent(_) | Fenced::Lost(_)), "{f:?}");
    // It wrote nothing after: still only "a", and the epoch did not move.
    std::thread::sleep(Duration::from_millis(300));
    let mut db = postgres::Client::connect(&url, NoTls).unwrap();
    let rows: i64 = db
        .query_one("SELECT COUNT(*) FROM cluster_node WHERE name = 'b'", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    assert_eq!(a.m.view().epoch, after.epoch);
    // Its name is free: a new process can take it.
    let b2 = join(&url, "b");
    assert_eq!(b2.m.me().incarnation, 1);
    sees(&a, &["a", "b"]);
}

/// A node whose PostgreSQL session ends (a crashed process: the row stays, the lock goes)
/// is removed after the failure timeout; one whose session is terminated under it fences.
#[test]
fn a_dead_session_is_removed_and_a_terminated_one_fences() {
    let url = pg_test::database();
    let a = join(&url, "a");
    let b = join(&url, "b");
    sees(&a, &["a", "b"]);
    let mut db = postgres::Client::connect(&url, NoTls).unwrap();
    // This test's database only: the tests run side by side on one server, and another's
    // node "b" must not be hit.
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'aoba-member-b' AND datname = current_database()",
        &[],
    )
    .unwrap();
    let f = b.fenced.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(matches!(f, Fenced::Lost(_)), "{f:?}");
    // Its row stays until the failure timeout, then the others remove it.
    sees(&a, &["a"]);
    drop(b);
}
