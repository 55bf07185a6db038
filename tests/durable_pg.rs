//! The kill -9 durability tests on the PostgreSQL backend (issue 14): a server on
//! `storage.backend = "postgres"` answers (an iq result, an XEP-0198 `<a/>`), is killed
//! with SIGKILL at once, restarts on the same database, and everything answered is there:
//! roster, MAM preferences, the archive (queried with MAM), offline messages, a persistent
//! room. And when PostgreSQL goes away under a running server: nothing is acknowledged
//! that was not committed, nothing panics, and once PostgreSQL is back it works again.
//!
//! PostgreSQL is real: `common/postgres.rs` runs one server per test binary (a database
//! per test) and a private one for the test that stops it.

mod common;
use common::muc::*;
use common::pgtest::PgServer;
use common::*;

const KILLS: usize = 3;

fn pg_config(url: &str) -> String {
    format!(
        "[storage]\nbackend = \"postgres\"\npostgres_url = \"{url}\"\npostgres_reconnect_delay_ms = 100\n"
    )
}

fn pg_server() -> Server {
    Server::start_with(&pg_config(&common::pgtest::database()), 2)
}

async fn roster_get(c: &mut Client, id: &str) -> String {
    c.send(&format!(
        "<iq id='{id}' type='get'><query xmlns='jabber:iq:roster'/></iq>"
    ))
    .await;
    c.recv_until(&format!("id='{id}'")).await
}

async fn roster_set(c: &mut Client, id: &str, jid: &str) -> String {
    c.send(&format!(
        "<iq id='{id}' type='set'><query xmlns='jabber:iq:roster'><item jid='{jid}'/></query></iq>"
    ))
    .await;
    c.recv_until(&format!("id='{id}'")).await
}

async fn enable_sm(c: &mut Client) {
    c.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    assert!(c.recv_until("urn:xmpp:sm:3").await.contains("<enabled"));
}

async fn acked(c: &mut Client, n: u32) {
    c.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let a = c.recv_until("<a xmlns='urn:xmpp:sm:3'").await;
    assert!(a.contains(&format!("h='{n}'")), "{a}");
}

#[tokio::test]
async fn roster_changes_and_mam_preferences_survive_kill_9_on_postgres() {
    let mut s = pg_server();
    for i in 0..KILLS {
        let mut c = Client::login(&s, "juliet", Some("r")).await;
        let r = roster_set(&mut c, &format!("add{i}"), &format!("friend{i}@localhost")).await;
        assert!(r.contains("type='result'"), "{r}");
        if i > 0 {
            let p = i - 1;
            c.send(&format!("<iq id='rm{i}' type='set'><query xmlns='jabber:iq:roster'><item jid='friend{p}@localhost' subscription='remove'/></query></iq>")).await;
            let r = c.recv_until(&format!("id='rm{i}'")).await;
            assert!(r.contains("type='result'"), "{r}");
        }
        c.send(&format!("<iq type='set' id='p{i}'><prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>friend{i}@localhost</jid></always><never/></prefs></iq>")).await;
        let r = c.recv_until(&format!("id='p{i}'")).await;
        assert!(r.contains("type='result'"), "{r}");
        s.restart(true); // SIGKILL at once
        let mut c = Client::login(&s, "juliet", Some("r")).await;
        let r = roster_get(&mut c, "get").await;
        assert!(
            r.contains(&format!("jid='friend{i}@localhost'")),
            "kill {i}: the added item is gone: {r}"
        );
        if i > 0 {
            assert!(
                !r.contains(&format!("jid='friend{}@localhost'", i - 1)),
                "kill {i}: the removed item is back: {r}"
            );
        }
        c.send("<iq type='get' id='g'><prefs xmlns='urn:xmpp:mam:2'/></iq>")
            .await;
        let r = c.recv_until("id='g'").await;
        assert!(
            r.contains(&format!("<jid>friend{i}@localhost</jid>")) && r.contains("default='never'"),
            "kill {i}: {r}"
        );
    }
}

/// Acknowledged messages to an offline user: in the recipient's offline store (in order,
/// once) and in the sender's archive (MAM), after kill -9.
#[tokio::test]
async fn acknowledged_messages_are_in_offline_storage_and_the_archive_after_kill_9() {
    let mut s = pg_server();
    let (a, b) = s.users_apart();
    drop(Client::login(&s, &b, Some("once")).await);
    let mut alice = Client::online(&s, &a, "a", 0).await;
    enable_sm(&mut alice).await;
    let n = 30;
    for i in 0..n {
        alice
            .send(&format!(
                "<message to='{b}@localhost' type='chat' id='k{i}'><body>n{i}</body></message>"
            ))
            .await;
    }
    acked(&mut alice, n).await;
    s.restart(true); // kill -9
    let mut bob = Client::login(&s, &b, Some("r")).await;
    bob.send("<presence/>").await;
    let mut got = Vec::new();
    while got.len() < n as usize {
        let m = bob.recv().await;
        if m.starts_with("<message") {
            got.push(m);
        }
    }
    for (i, m) in got.iter().enumerate() {
        assert!(
            m.contains(&format!("id='k{i}'")) && m.contains("<delay xmlns='urn:xmpp:delay'"),
            "#{i}: {m}"
        );
    }
    bob.send(&format!(
        "<message to='{b}@localhost/r' type='chat' id='mark'><body>.</body></message>"
    ))
    .await;
    assert!(
        bob.recv_until("<message").await.contains("id='mark'"),
        "no duplicates after the {n}"
    );
    let mut alice = Client::online(&s, &a, "a", 0).await;
    alice
        .send("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2' queryid='q1'><set xmlns='http://jabber.org/protocol/rsm'><max>100</max></set></query></iq>")
        .await;
    let mut bodies = Vec::new();
    loop {
        let m = alice.recv().await;
        if m.contains("queryid='q1'") {
            bodies.push(between(&m, "<body>", "</body>").to_string());
        } else if m.contains("id='q'") {
            assert!(m.contains("complete='true'"), "{m}");
            break;
        }
    }
    let want: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    assert_eq!(bodies, want, "the sender's archive, each once, in order");
}

#[tokio::test]
async fn a_persistent_room_survives_kill_9_on_postgres() {
    let mut s = pg_server();
    let (a, b) = s.users_apart();
    let mut alice = Client::online(&s, &a, "a", 0).await;
    join(&mut alice, ROOM, "alice", "").await;
    instant_room(&mut alice, ROOM).await;
    configure(
        &mut alice,
        ROOM,
        &[
            ("muc#roomconfig_persistentroom", "1"),
            ("muc#roomconfig_roomname", "Coven"),
        ],
    )
    .await;
    alice.send(&format!("<message to='{ROOM}' type='groupchat' id='s'><subject>Double, double toil</subject></message>")).await;
    alice.recv_until("id='s'").await;
    enable_sm(&mut alice).await;
    alice.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    alice.recv_until("<a xmlns").await;
    drop(alice);
    s.restart(true); // kill -9
    let mut bob = Client::online(&s, &b, "b", 0).await;
    let got = join(&mut bob, ROOM, "bob", "").await;
    assert!(
        got.last()
            .unwrap()
            .contains("<subject>Double, double toil</subject>"),
        "{got:?}"
    );
    bob.send(&format!("<iq id='ri' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")).await;
    let d = bob.recv_until("id='ri'").await;
    assert!(
        d.contains("name='Coven'") && d.contains("muc_persistent"),
        "{d}"
    );
}

/// `--postgres URL` selects the backend: what the server stores is in that database.
#[tokio::test]
async fn the_postgres_flag_stores_in_that_database() {
    let url = common::pgtest::database();
    let s = Server::start_args("", 1, &["--jwt-secret", SECRET, "--postgres", &url]);
    let mut c = Client::login(&s, "romeo", Some("r")).await;
    let r = roster_set(&mut c, "a", "juliet@localhost").await;
    assert!(r.contains("type='result'"), "{r}");
    let n = common::pgtest::shared().query_i64(
        url.rsplit("dbname=").next().unwrap(),
        "SELECT count(*) FROM roster_items WHERE username = 'romeo' AND jid = 'juliet@localhost'",
    );
    assert_eq!(n, 1);
}

/// PostgreSQL stops under a running server: answers that need a commit become errors
/// (an iq error; no `<a/>`, the stream ends instead), the server stays up; once PostgreSQL
/// is back the server reconnects by itself, and what it answered is there after kill -9.
#[tokio::test]
async fn postgres_going_away_is_never_acknowledged_and_the_server_recovers() {
    let pg = PgServer::start();
    let url = pg.create_database();
    let mut s = Server::start_with(&pg_config(&url), 2);
    let mut c = Client::login(&s, "juliet", Some("r")).await;
    let r = roster_set(&mut c, "a", "before@localhost").await;
    assert!(r.contains("type='result'"), "{r}");
    pg.stop();
    let r = roster_set(&mut c, "b", "during@localhost").await;
    assert!(
        r.contains("type='error'") && r.contains("<internal-server-error"),
        "answered without PostgreSQL: {r}"
    );
    enable_sm(&mut c).await;
    c.send("<message to='nobody@localhost' type='chat' id='m'><body>x</body></message>")
        .await;
    c.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    loop {
        let m = c.recv().await;
        assert!(
            !m.starts_with("<a xmlns"),
            "acknowledged what was not stored: {m}"
        );
        if m.contains("<stream:error") {
            assert!(m.contains("<internal-server-error"), "{m}");
            break;
        }
    }
    pg.start_again();
    let mut c = Client::login(&s, "juliet", Some("r")).await;
    let r = roster_set(&mut c, "c", "after@localhost").await;
    assert!(r.contains("type='result'"), "not recovered: {r}");
    s.restart(true); // kill -9
    let mut c = Client::login(&s, "juliet", Some("r")).await;
    let r = roster_get(&mut c, "g").await;
    assert!(
        r.contains("jid='before@localhost'") && r.contains("jid='after@localhost'"),
        "{r}"
    );
    // The write answered with an error was kept and committed once PostgreSQL was back
    // (a lost batch is replayed): an error never hides a half-done change.
    assert!(r.contains("jid='during@localhost'"), "{r}");
    assert!(s.log().contains("postgres: reconnected"), "{}", s.log());
}
