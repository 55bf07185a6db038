//! "Done" means durable (issue 10, finding 3): every answer that reports a stored change is
//! sent only after the storage commit. Each test waits for the answer, kills the server
//! with SIGKILL at once, restarts it on the same data and checks the change is there.
//! The race this guards against lost the change in one run of three, so each test runs
//! its kill several times.
//!
//! And when the commit itself fails (injected with `AOBA_FAULT_FAIL_COMMITS`, a debug-build
//! hook), nothing waits forever: an ack's stream ends with `internal-server-error`, an iq
//! gets its error.

mod common;
use common::*;

const KILLS: usize = 5;

async fn roster_get(c: &mut Client, id: &str) -> String {
    c.send(&format!(
        "<iq id='{id}' type='get'><query xmlns='jabber:iq:roster'/></iq>"
    ))
    .await;
    c.recv_until(&format!("id='{id}'")).await
}

#[tokio::test]
async fn roster_set_and_remove_survive_kill_9_right_after_the_result() {
    let mut s = Server::start();
    for i in 0..KILLS {
        let mut c = Client::login(&s, "juliet", Some("r")).await;
        c.send(&format!("<iq id='add{i}' type='set'><query xmlns='jabber:iq:roster'><item jid='friend{i}@localhost' name='F{i}'/></query></iq>")).await;
        let r = c.recv_until(&format!("id='add{i}'")).await;
        assert!(r.contains("type='result'"), "{r}");
        if i > 0 {
            let p = i - 1;
            c.send(&format!("<iq id='rm{i}' type='set'><query xmlns='jabber:iq:roster'><item jid='friend{p}@localhost' subscription='remove'/></query></iq>")).await;
            let r = c.recv_until(&format!("id='rm{i}'")).await;
            assert!(r.contains("type='result'"), "{r}");
        }
        s.restart(true); // SIGKILL at once
        let mut c = Client::login(&s, "juliet", Some("r")).await;
        let r = roster_get(&mut c, "get").await;
        assert!(
            r.contains(&format!("jid='friend{i}@localhost' name='F{i}'")),
            "kill {i}: the added item is gone: {r}"
        );
        if i > 0 {
            assert!(
                !r.contains(&format!("jid='friend{}@localhost'", i - 1)),
                "kill {i}: the removed item is back: {r}"
            );
        }
    }
}

#[tokio::test]
async fn subscription_state_survives_kill_9_right_after_the_push() {
    let mut s = Server::start();
    let (a, b) = s.users_apart();
    for i in 0..KILLS {
        // A fresh pair of contacts each round: alice{i} asks bob{i}, bob{i} approves.
        let (a, b) = (format!("{a}x{i}"), format!("{b}y{i}"));
        let mut alice = Client::login(&s, &a, Some("a")).await;
        roster_get(&mut alice, "r0").await;
        let mut bob = Client::login(&s, &b, Some("b")).await;
        roster_get(&mut bob, "r0").await;
        bob.send("<presence/>").await;
        alice
            .send(&format!("<presence to='{b}@localhost' type='subscribe'/>"))
            .await;
        bob.recv_until("type='subscribe'").await;
        bob.send(&format!("<presence to='{a}@localhost' type='subscribed'/>"))
            .await;
        // Both pushes report stored subscription states.
        bob.recv_until("subscription='from'").await;
        alice.recv_until("subscription='to'").await;
        s.restart(true);
        let mut alice = Client::login(&s, &a, Some("a")).await;
        let r = roster_get(&mut alice, "g").await;
        assert!(
            r.contains(&format!("jid='{b}@localhost' subscription='to'")),
            "kill {i}: {r}"
        );
        let mut bob = Client::login(&s, &b, Some("b")).await;
        let r = roster_get(&mut bob, "g").await;
        assert!(
            r.contains(&format!("jid='{a}@localhost' subscription='from'")),
            "kill {i}: {r}"
        );
    }
}

#[tokio::test]
async fn mam_preferences_survive_kill_9_right_after_the_result() {
    let mut s = Server::start();
    for i in 0..KILLS {
        let mut c = Client::login(&s, "romeo", Some("r")).await;
        c.send(&format!("<iq type='set' id='p{i}'><prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>friend{i}@localhost</jid></always><never/></prefs></iq>")).await;
        let r = c.recv_until(&format!("id='p{i}'")).await;
        assert!(r.contains("type='result'"), "{r}");
        s.restart(true);
        let mut c = Client::login(&s, "romeo", Some("r")).await;
        c.send("<iq type='get' id='g'><prefs xmlns='urn:xmpp:mam:2'/></iq>")
            .await;
        let r = c.recv_until("id='g'").await;
        assert!(
            r.contains(&format!("<jid>friend{i}@localhost</jid>")) && r.contains("default='never'"),
            "kill {i}: {r}"
        );
    }
}

#[tokio::test]
async fn a_failed_commit_answers_with_errors_instead_of_waiting_forever() {
    let s = Server::start_with_env("", 2, &[("AOBA_FAULT_FAIL_COMMITS", "1")]);
    let mut c = Client::login(&s, "juliet", Some("r")).await;
    c.send("<iq id='add' type='set'><query xmlns='jabber:iq:roster'><item jid='romeo@localhost'/></query></iq>").await;
    let r = c.recv_until("id='add'").await;
    assert!(
        r.contains("type='error'") && r.contains("<internal-server-error"),
        "{r}"
    );
    c.send("<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>")
        .await;
    let r = c.recv_until("id='p'").await;
    assert!(
        r.contains("type='error'") && r.contains("<internal-server-error"),
        "{r}"
    );
    // XEP-0198: a message to an offline user is stored, but the store is not durable:
    // no ack for it; the stream ends so the client knows to resend.
    c.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    c.recv_until("<enabled").await;
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
}

/// The backup `docs/operations.md` describes: stop the server (SIGTERM), copy its data
/// directory, start a server on the copy: the roster, the archive and the offline message
/// are all there. And a data directory in a newer format than the binary's (after a
/// downgrade) is refused at start with an error that says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_servers_copied_data_restores_everything_and_a_newer_format_is_refused() {
    let mut s = Server::start();
    let mut j = Client::login(&s, "juliet", Some("r")).await;
    j.send("<iq id='add' type='set'><query xmlns='jabber:iq:roster'><item jid='romeo@localhost' name='Romeo'/></query></iq>").await;
    assert!(j.recv_until("id='add'").await.contains("type='result'"));
    j.send("<message to='romeo@localhost' type='chat' id='b1'><body>kept in the backup</body></message>").await;
    j.ping_server("sync").await;
    drop(j);
    let data = s.dir.join("data");
    let status = tokio::task::block_in_place(|| s.terminate());
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
    let mut r = s.start_on_copy(&data);
    let mut j = Client::login(&r, "juliet", Some("r")).await;
    let roster = roster_get(&mut j, "get").await;
    assert!(
        roster.contains("jid='romeo@localhost' name='Romeo'"),
        "{roster}"
    );
    j.send("<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='q1'/></iq>")
        .await;
    let mut page = String::new();
    while !page.contains("<fin") {
        page.push_str(&j.recv().await);
    }
    assert!(page.contains("kept in the backup"), "{page}");
    let mut romeo = Client::login(&r, "romeo", Some("r")).await;
    romeo.send("<presence/>").await;
    let m = romeo.recv_until("<message").await;
    assert!(
        m.contains("kept in the backup") && m.contains("<delay"),
        "{m}"
    );
    drop((j, romeo));
    // A newer format than this build's: refused, with the reason.
    let copy = r.dir.join("data");
    assert!(tokio::task::block_in_place(|| r.terminate()).is_some_and(|st| st.success()));
    {
        let db = fjall::Database::builder(copy.join("db")).open().unwrap();
        let meta = db
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        assert_eq!(
            meta.get("format").unwrap().as_deref(),
            Some(&1u32.to_be_bytes()[..]),
            "the marker is written"
        );
        meta.insert("format", 99u32.to_be_bytes()).unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--jwt-secret", "x"])
        .args(["--admin-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&copy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("format 99"), "{err}");
}
