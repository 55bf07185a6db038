//! The contract every storage backend must pass (run against fjall and memory).

use super::Backend;

pub fn contract(mut b: Box<dyn Backend>, reopen: Option<&dyn Fn() -> Box<dyn Backend>>) {
    // Users.
    assert!(b.record_user("alice").unwrap());
    assert!(!b.record_user("alice").unwrap());
    assert!(b.record_user("bob").unwrap());
    let mut u = b.users().unwrap();
    u.sort();
    assert_eq!(u, ["alice", "bob"]);
    assert!(b.user_known("alice").unwrap() && b.user_known("bob").unwrap());
    assert!(!b.user_known("al").unwrap() && !b.user_known("carol").unwrap());
    // Offline: order kept, per user, quota, take empties.
    for i in 0..3 {
        assert!(
            b.offline_push("alice", format!("m{i}").as_bytes(), 3)
                .unwrap()
        );
    }
    assert!(!b.offline_push("alice", b"m3", 3).unwrap(), "quota");
    assert!(b.offline_push("bob", b"b0", 3).unwrap());
    // A user whose name is a prefix of another's must not see its messages.
    assert!(b.offline_push("al", b"x", 3).unwrap());
    b.commit().unwrap();
    if let Some(reopen) = reopen {
        drop(b);
        b = reopen();
    }
    // Paged by bytes: at least one, oldest first, and whether more are left.
    let two = (vec![b"m0".to_vec(), b"m1".to_vec()], true);
    assert_eq!(b.offline_take("alice", 4).unwrap(), two);
    assert_eq!(
        b.offline_take("alice", 1).unwrap(),
        (vec![b"m2".to_vec()], false)
    );
    assert_eq!(b.offline_take("alice", 100).unwrap(), (vec![], false));
    assert_eq!(
        b.offline_take("bob", 100).unwrap(),
        (vec![b"b0".to_vec()], false)
    );
    assert_eq!(
        b.offline_take("al", 100).unwrap(),
        (vec![b"x".to_vec()], false)
    );
    // Taken messages put back go in front of newer ones, in their order.
    for i in 0..3 {
        assert!(
            b.offline_push("bob", format!("r{i}").as_bytes(), 10)
                .unwrap()
        );
    }
    let (first, more) = b.offline_take("bob", 4).unwrap();
    assert_eq!(
        (first.clone(), more),
        (vec![b"r0".to_vec(), b"r1".to_vec()], true)
    );
    assert!(b.offline_push("bob", b"r3", 10).unwrap());
    b.offline_restore("bob", &first).unwrap();
    b.commit().unwrap();
    assert_eq!(
        b.offline_take("bob", usize::MAX).unwrap().0,
        vec![
            b"r0".to_vec(),
            b"r1".to_vec(),
            b"r2".to_vec(),
            b"r3".to_vec()
        ]
    );
    // Into an empty queue too.
    b.offline_restore("bob", &first).unwrap();
    assert_eq!(b.offline_take("bob", usize::MAX).unwrap().0, first);
    // After a take, the quota is free again and order restarts after the old ones.
    for i in 0..3 {
        assert!(
            b.offline_push("alice", format!("n{i}").as_bytes(), 3)
                .unwrap()
        );
    }
    b.commit().unwrap();
    assert_eq!(
        b.offline_take("alice", usize::MAX).unwrap().0,
        vec![b"n0".to_vec(), b"n1".to_vec(), b"n2".to_vec()]
    );
    let mut u = b.users().unwrap();
    u.sort();
    assert_eq!(u, ["alice", "bob"], "users survive");
    // Rosters: per user, versioned, items replaced and removed.
    use super::{RosterItem, Subscription};
    assert_eq!(b.roster("alice").unwrap(), (0, vec![]));
    let mut item = RosterItem {
        jid: "bob@x".into(),
        name: Some("Bob".into()),
        listed: true,
        ..Default::default()
    };
    b.roster_set("alice", &item, 1).unwrap();
    item.subscription = Subscription::Both;
    item.groups = vec!["Friends".into()];
    b.roster_set("alice", &item, 2).unwrap();
    let carol = RosterItem {
        jid: "carol@x".into(),
        pending_in: true,
        ..Default::default()
    };
    b.roster_set("alice", &carol, 3).unwrap();
    b.roster_set("al", &carol, 7).unwrap();
    b.commit().unwrap();
    if let Some(reopen) = reopen {
        drop(b);
        b = reopen();
    }
    let (v, mut items) = b.roster("alice").unwrap();
    items.sort_by(|a, b| a.jid.cmp(&b.jid));
    assert_eq!((v, items), (3, vec![item.clone(), carol.clone()]));
    b.roster_remove("alice", "carol@x", 4).unwrap();
    assert_eq!(b.roster("alice").unwrap(), (4, vec![item]));
    assert_eq!(b.roster("al").unwrap(), (7, vec![carol]));
    // Archive: time-ordered ids, `with`, exclusive id bounds, pages from either end.
    use super::{ArchiveItem, ArchiveQuery};
    let item = |id: u64, with: &str| ArchiveItem {
        id,
        with: with.into(),
        stanza: super::Parts::one(format!("<m{id}/>")),
        uid: 0,
    };
    // One at a time, then several at once (the writer's batches): the same archive.
    for (id, w) in [(10, "bob@x"), (20, "carol@x")] {
        b.archive_append("alice", &item(id, w)).unwrap();
    }
    b.archive_append_many(&[
        ("alice".into(), item(30, "bob@x")),
        ("alic".into(), item(15, "bob@x")),
        ("alice".into(), item(40, "bob@x")),
    ])
    .unwrap();
    b.commit().unwrap();
    let ids =
        |p: super::ArchivePage| (p.items.iter().map(|i| i.id).collect::<Vec<_>>(), p.complete);
    let q = |max| ArchiveQuery {
        max,
        ..Default::default()
    };
    assert_eq!(
        ids(b.archive_query("alice", &q(10)).unwrap()),
        (vec![10, 20, 30, 40], true)
    );
    assert_eq!(
        ids(b.archive_query("alice", &q(2)).unwrap()),
        (vec![10, 20], false)
    );
    assert_eq!(
        ids(b
            .archive_query(
                "alice",
                &ArchiveQuery {
                    with: Some("bob@x".into()),
                    ..q(10)
                }
            )
            .unwrap()),
        (vec![10, 30, 40], true)
    );
    assert_eq!(
        ids(b
            .archive_query(
                "alice",
                &ArchiveQuery {
                    after_id: Some(20),
                    ..q(10)
                }
            )
            .unwrap()),
        (vec![30, 40], true)
    );
    assert_eq!(
        ids(b
            .archive_query(
                "alice",
                &ArchiveQuery {
                    before_id: Some(30),
                    ..q(10)
                }
            )
            .unwrap()),
        (vec![10, 20], true)
    );
    assert_eq!(
        ids(b
            .archive_query(
                "alice",
                &ArchiveQuery {
                    from_end: true,
                    ..q(2)
                }
            )
            .unwrap()),
        (vec![30, 40], false)
    );
    assert_eq!(
        ids(b
            .archive_query(
                "alice",
                &ArchiveQuery {
                    from_end: true,
                    before_id: Some(30),
                    ..q(5)
                }
            )
            .unwrap()),
        (vec![10, 20], true)
    );
    assert_eq!(
        ids(b.archive_query("alic", &q(10)).unwrap()),
        (vec![15], true)
    );
    assert_eq!(b.archive_expire(25).unwrap(), 3);
    // Preferences.
    use super::ArchivePrefs;
    assert_eq!(b.archive_prefs("alice").unwrap(), ArchivePrefs::default());
    let p = ArchivePrefs {
        default_always: false,
        always: vec!["bob@x".into()],
        never: vec![],
    };
    b.set_archive_prefs("alice", &p).unwrap();
    b.commit().unwrap();
    assert_eq!(b.archive_prefs("alice").unwrap(), p);
    assert!(p.archives("bob@x/phone") && !p.archives("carol@x"));
    // Persistent rooms.
    b.room_put("r1@conf", b"one").unwrap();
    b.room_put("r2@conf", b"two").unwrap();
    b.room_put("r1@conf", b"uno").unwrap();
    b.room_remove("r2@conf").unwrap();
    b.commit().unwrap();
    assert_eq!(
        b.rooms().unwrap(),
        vec![("r1@conf".to_string(), b"uno".to_vec())]
    );
    assert_eq!(
        ids(b.archive_query("alice", &q(10)).unwrap()),
        (vec![30, 40], true)
    );
    // Deleting a user: everything of its own, nothing of a user whose name it prefixes.
    assert!(b.offline_push("alice", b"o1", 10).unwrap());
    assert!(b.offline_push("al", b"o2", 10).unwrap());
    b.archive_append("al@x", &item(50, "bob@x")).unwrap();
    b.archive_append("alice@x", &item(51, "bob@x")).unwrap();
    b.archive_append("alice@x", &item(52, "bob@x")).unwrap();
    b.set_archive_prefs("alice@x", &p).unwrap();
    b.commit().unwrap();
    let d = b.delete_user("alice", "alice@x").unwrap();
    assert_eq!(
        d,
        super::Deleted {
            user: true,
            roster: 1,
            offline: 1,
            archive: 2
        }
    );
    b.commit().unwrap();
    if let Some(reopen) = reopen {
        drop(b);
        b = reopen();
    }
    assert_eq!(b.users().unwrap(), ["bob"]);
    assert!(!b.user_known("alice").unwrap(), "deleted");
    let (v, items) = b.roster("alice").unwrap();
    assert!(items.is_empty() && v > 4, "the version moves on: {v}");
    assert_eq!(b.offline_take("alice", 100).unwrap(), (vec![], false));
    assert_eq!(
        ids(b.archive_query("alice@x", &q(10)).unwrap()),
        (vec![], true)
    );
    assert_eq!(b.archive_prefs("alice@x").unwrap(), ArchivePrefs::default());
    assert_eq!(b.roster("al").unwrap().1.len(), 1);
    assert_eq!(b.offline_take("al", 100).unwrap().0, vec![b"o2".to_vec()]);
    assert_eq!(
        ids(b.archive_query("al@x", &q(10)).unwrap()),
        (vec![50], true)
    );
    assert_eq!(
        b.delete_user("nobody", "nobody@x").unwrap(),
        super::Deleted::default()
    );
}
