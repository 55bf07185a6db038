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

/// Archive ids carry the node's number in 4 bits: a sixteenth live node is refused with a
/// clear error (nothing of it stays in the table), and joins once one has left. Each view
/// handed over when it changes carries the largest archive id stored (0 with no archive).
#[test]
fn at_most_fifteen_live_nodes_and_each_view_carries_the_archive_floor() {
    let url = pg_test::database();
    let nodes: Vec<Node> = (1..=15).map(|i| join(&url, &format!("n{i:02}"))).collect();
    assert_eq!(nodes[0].m.view().archive_floor, 0, "no archive table yet");
    let Err(e) = Membership::join(cfg(&url, "n16"), Box::new(|_| {}), Box::new(|_| {})) else {
        panic!("a sixteenth node joined");
    };
    assert!(e.contains("at most 15 live nodes"), "{e}");
    let names: Vec<String> = (1..=15).map(|i| format!("n{i:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    sees(&nodes[0], &names);
    // An archive with rows: the next view (n03 leaves) carries its largest id.
    let mut c = pg_test::shared().connect(url.rsplit("dbname=").next().unwrap());
    c.batch_execute(
        "CREATE TABLE archive (owner text, id bigint, PRIMARY KEY (owner, id));
         INSERT INTO archive VALUES ('a', 5), ('b', 77), ('a', 9);",
    )
    .unwrap();
    let mut nodes = nodes;
    nodes.remove(2).m.leave();
    let want = [&names[..2], &names[3..]].concat();
    let v = loop {
        let v = nodes[0]
            .views
            .recv_timeout(Duration::from_secs(20))
            .expect("a view without n03");
        if v.names() == want {
            break v;
        }
    };
    assert_eq!(v.archive_floor, 77, "{v:?}");
    let n16 = join(&url, "n16");
    assert_eq!(n16.m.me().num, 3, "the number left free");
}
