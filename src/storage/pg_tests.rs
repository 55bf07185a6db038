//! The PostgreSQL backend against a real server (`tests/common/postgres.rs` starts one per
//! test binary and stops it at exit): the contract every backend passes, the migrations,
//! idempotent retries, and a connection lost in the middle of a batch.

use super::{PgBackend, PgOptions};
use crate::storage::pg_test;
use crate::storage::{ArchiveItem, ArchiveQuery, Backend, Parts, RosterItem};

fn opts(url: &str) -> PgOptions {
    PgOptions {
        url: url.to_string(),
        connect_timeout_ms: 5000,
        statement_timeout_ms: 30000,
        reconnect_delay_ms: 50,
        replay_max_bytes: 64 << 20,
        prefs_cache_max: 1000,
    }
}

fn dbname(url: &str) -> String {
    url.rsplit("dbname=").next().unwrap_or_default().to_string()
}

/// Ends Aoba's connections to the database (as an operator or a failover would) and
/// waits until they are gone.
fn terminate_backends(url: &str) {
    let mut admin = pg_test::shared().connect("postgres");
    let db = dbname(url);
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'aoba'",
            &[&db],
        )
        .unwrap();
    for _ in 0..500 {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'aoba'",
                &[&db],
            )
            .unwrap()
            .get(0);
        if n == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("aoba's connection was not terminated");
}

fn item(id: u64, with: &str) -> ArchiveItem {
    ArchiveItem {
        id,
        with: with.into(),
        stanza: Parts::one(format!("<m{id}/>")),
        uid: 0,
    }
}

fn archive_ids(b: &dyn Backend, owner: &str) -> Vec<u64> {
    let q = ArchiveQuery {
        max: 100,
        ..Default::default()
    };
    let p = b.archive_query(owner, &q).unwrap();
    p.items.iter().map(|i| i.id).collect()
}

#[test]
fn passes_the_storage_contract_and_survives_reopening() {
    let url = pg_test::database();
    let reopen = || -> Box<dyn Backend> { Box::new(PgBackend::open(opts(&url)).unwrap()) };
    crate::storage::contract_tests::contract(reopen(), Some(&reopen));
}

#[test]
fn migrations_are_applied_once_and_a_newer_schema_is_refused() {
    let url = pg_test::database();
    drop(PgBackend::open(opts(&url)).unwrap());
    drop(PgBackend::open(opts(&url)).unwrap()); // a restart: nothing to do
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let versions: Vec<i32> = c
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let all: Vec<i32> = super::MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(versions, all);
    c.execute("INSERT INTO schema_version (version) VALUES (9999)", &[])
        .unwrap();
    let e = PgBackend::open(opts(&url))
        .err()
        .expect("a newer schema is refused");
    assert!(e.0.contains("newer than this Aoba"), "{e}");
}

#[test]
fn a_retried_archive_write_is_stored_once() {
    let url = pg_test::database();
    let mut b = PgBackend::open(opts(&url)).unwrap();
    b.archive_append("alice@x", &item(7, "bob@x")).unwrap();
    b.commit().unwrap();
    b.archive_append_many(&[
        ("alice@x".into(), item(7, "bob@x")),
        ("alice@x".into(), item(8, "bob@x")),
    ])
    .unwrap();
    b.commit().unwrap();
    assert_eq!(archive_ids(&b, "alice@x"), [7, 8]);
}

/// A message routed again after a node's failure gets a new archive id at its new home,
/// with the same cluster-unique id: stored once per owner (any owner may have it once).
#[test]
fn a_message_archived_again_under_a_new_id_is_stored_once() {
    let url = pg_test::database();
    let mut b = PgBackend::open(opts(&url)).unwrap();
    let with_uid = |id: u64, uid: u64| ArchiveItem {
        uid,
        ..item(id, "bob@x")
    };
    b.archive_append("alice@x", &with_uid(7, 42)).unwrap();
    b.commit().unwrap();
    b.archive_append_many(&[
        ("alice@x".into(), with_uid(9, 42)),
        ("alice@x".into(), with_uid(10, 43)),
        ("alice@x".into(), with_uid(11, 43)),
        ("bob@x".into(), with_uid(12, 42)),
        ("alice@x".into(), with_uid(13, 0)),
        ("alice@x".into(), with_uid(14, 0)),
    ])
    .unwrap();
    b.commit().unwrap();
    assert_eq!(archive_ids(&b, "alice@x"), [7, 10, 13, 14]);
    assert_eq!(archive_ids(&b, "bob@x"), [12]);
}

/// The same for offline storage: a message stored again under its message id (a node
/// died before confirming it, the sender's node routed it again) is stored once and
/// counts as stored; the quota still refuses a new one; messages without an id are
/// stored every time.
#[test]
fn a_message_stored_offline_again_under_its_id_is_stored_once() {
    let url = pg_test::database();
    let mut b = PgBackend::open(opts(&url)).unwrap();
    assert!(b.offline_push_once("bob", b"m1", 3, 42).unwrap());
    b.commit().unwrap();
    assert!(b.offline_push_once("bob", b"m1", 3, 42).unwrap(), "stored");
    assert!(b.offline_push_once("bob", b"m2", 3, 43).unwrap());
    assert!(b.offline_push_once("carol", b"m1", 3, 42).unwrap());
    assert!(b.offline_push_once("bob", b"m3", 3, 0).unwrap());
    assert!(!b.offline_push_once("bob", b"m4", 3, 44).unwrap(), "quota");
    assert!(b.offline_push_once("bob", b"m2", 3, 43).unwrap(), "stored");
    b.commit().unwrap();
    let (got, more) = b.offline_take("bob", usize::MAX).unwrap();
    assert_eq!(got, [b"m1".to_vec(), b"m2".to_vec(), b"m3".to_vec()]);
    assert!(!more);
    b.commit().unwrap();
}

/// The connection dies with the batch's transaction open: the commit fails (so nothing of
/// the batch is acknowledged), nothing panics, and the next commit reconnects and
/// replays the batch: every write is there once, the offline message too.
#[test]
fn a_lost_connection_fails_the_commit_and_the_next_one_replays_the_batch() {
    let url = pg_test::database();
    let mut b = PgBackend::open(opts(&url)).unwrap();
    let friend = RosterItem {
        jid: "friend@x".into(),
        listed: true,
        ..Default::default()
    };
    b.roster_set("alice", &friend, 1).unwrap();
    assert!(b.offline_push("bob", b"hello", 10).unwrap());
    b.archive_append("alice@x", &item(1, "bob@x")).unwrap();
    terminate_backends(&url);
    assert!(
        b.commit().is_err(),
        "a commit on a dead connection succeeded"
    );
    assert_eq!(b.journal_len(), 3, "the lost writes are kept for replay");
    b.commit().expect("reconnected and replayed");
    assert_eq!(b.journal_len(), 0);
    let check = PgBackend::open(opts(&url)).unwrap();
    assert_eq!(check.roster("alice").unwrap(), (1, vec![friend.clone()]));
    assert_eq!(archive_ids(&check, "alice@x"), [1]);
    drop(check);
    let mut check = PgBackend::open(opts(&url)).unwrap();
    assert_eq!(
        check.offline_take("bob", usize::MAX).unwrap(),
        (vec![b"hello".to_vec()], false),
        "stored once"
    );
}

/// Writes after the connection died fail at once (no stall per write), are kept, and
/// are committed by the first commit that can reach the server again.
#[test]
fn writes_after_a_lost_connection_fail_fast_and_are_committed_later() {
    let url = pg_test::database();
    let mut b = PgBackend::open(opts(&url)).unwrap();
    b.record_user("carol").unwrap();
    b.commit().unwrap();
    terminate_backends(&url);
    let r1 = RosterItem {
        jid: "one@x".into(),
        ..Default::default()
    };
    let r2 = RosterItem {
        jid: "two@x".into(),
        ..Default::default()
    };
    assert!(b.roster_set("carol", &r1, 1).is_err());
    assert!(b.roster_set("carol", &r2, 2).is_err());
    assert!(b.room_put("r@conf", b"cfg").is_err());
    // An offline message is not kept when it fails: its sender gets it back.
    assert!(b.offline_push("carol", b"m", 10).is_err());
    assert!(b.commit().is_err());
    b.commit().expect("reconnected and replayed");
    let mut check = PgBackend::open(opts(&url)).unwrap();
    let (v, items) = check.roster("carol").unwrap();
    assert_eq!((v, items.len()), (2, 2));
    assert_eq!(
        check.rooms().unwrap(),
        vec![("r@conf".into(), b"cfg".to_vec())]
    );
    assert_eq!(check.offline_take("carol", 100).unwrap(), (vec![], false));
    assert_eq!(check.users().unwrap(), ["carol"]);
}
