//! The admin API's room calls through real HTTP, checked from real XMPP clients: `PUT
//! /api/rooms/{room}` creates a room clients then find configured (disco#info, joining,
//! members-only refusing a non-member) and changes it (the occupants see it: status 104,
//! non-members removed with 322); `PUT /api/rooms/{room}/affiliations` admits members and
//! refuses outcasts; `DELETE /api/rooms/{room}` sends the XEP-0045 destroy presence. Every
//! change answered is durable: it survives `kill -9` right after the answer. Bad JSON, bad
//! room names, unknown rooms and the limits are refused with their conditions.

mod common;
use common::admin::{Api, with_token_file};
use common::muc::join;
use common::*;

const ROOM: &str = "group-7d1f1c1e-0b7a-4b8e-9a51-2f0e4a7c9d01@conference.localhost";
const LOCAL: &str = "group-7d1f1c1e-0b7a-4b8e-9a51-2f0e4a7c9d01";

async fn disco_info(c: &mut Client, room: &str) -> String {
    c.send(&format!(
        "<iq id='ri' to='{room}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    ))
    .await;
    c.recv_until("id='ri'").await
}

/// The last stanza of a join (the subject) or its error.
async fn try_join(c: &mut Client, room: &str, nick: &str) -> String {
    join(c, room, nick, "").await.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_created_and_changed_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_token_file(dir.path(), "", 2);
    let api = Api(&s);
    // Created: persistent by default, unlocked, with the given options.
    let v = api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}"),
        r#"{"name": "Team <&>", "history_max": 5, "public": true}"#,
    );
    assert_eq!(v["created"], true, "{v}");
    assert_eq!(
        (
            &v["jid"],
            &v["name"],
            &v["persistent"],
            &v["members_only"],
            &v["history_max"]
        ),
        (
            &ROOM.into(),
            &"Team <&>".into(),
            &true.into(),
            &false.into(),
            &5.into()
        ),
        "{v}"
    );
    let mut a = Client::online(&s, "alice", "r", 0).await;
    let info = disco_info(&mut a, ROOM).await;
    assert!(info.contains("type='result'"), "{info}");
    assert!(info.contains("name='Team &lt;&amp;&gt;'"), "{info}");
    for f in ["muc_persistent", "muc_open", "muc_public"] {
        assert!(info.contains(&format!("var='{f}'")), "{f}: {info}");
    }
    // Open: anyone joins (no owner was needed to unlock it), as a plain participant.
    let last = try_join(&mut a, ROOM, "Alice").await;
    assert!(last.contains("<subject"), "{last}");
    let (st, occ) = api.call("GET", &format!("/api/rooms/{LOCAL}/occupants"), "");
    assert_eq!(st, 200, "{occ}");
    assert!(occ.contains(r#""affiliation":"none""#), "{occ}");

    // Changed to members-only: the occupant is told (104), then removed as a non-member
    // (322); a non-member is refused from now on.
    let v = api.ok(
        "PUT",
        &format!("/api/rooms/{LOCAL}"),
        r#"{"members_only": true}"#,
    );
    assert_eq!(
        (&v["created"], &v["members_only"], &v["name"]),
        (&false.into(), &true.into(), &"Team <&>".into()),
        "{v}"
    );
    let gone = a.recv_until("type='unavailable'").await;
    assert!(gone.contains("code='322'"), "{gone}");
    let refused = try_join(&mut a, ROOM, "Alice").await;
    assert!(refused.contains("<registration-required"), "{refused}");
    let info = disco_info(&mut a, ROOM).await;
    assert!(info.contains("var='muc_membersonly'"), "{info}");

    // Affiliations: a member is admitted, an outcast refused, anyone else still refused.
    let v = api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}/affiliations"),
        r#"{"items": [{"jid": "bob@localhost", "affiliation": "member"},
                      {"jid": "carol@localhost", "affiliation": "outcast"},
                      {"jid": "dave@localhost", "affiliation": "owner"}]}"#,
    );
    let list = v["affiliations"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{v}");
    assert_eq!(list[0]["jid"], "bob@localhost");
    assert_eq!(list[0]["affiliation"], "member");
    let mut b = Client::online(&s, "bob", "r", 0).await;
    let mut c = Client::online(&s, "carol", "r", 0).await;
    let last = try_join(&mut b, ROOM, "Bob").await;
    assert!(last.contains("<subject"), "a member joins: {last}");
    let last = try_join(&mut c, ROOM, "Carol").await;
    assert!(last.contains("<forbidden"), "an outcast is refused: {last}");
    let last = try_join(&mut a, ROOM, "Alice").await;
    assert!(last.contains("<registration-required"), "{last}");
    // Open again: alice joins; carol is still banned.
    api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}"),
        r#"{"members_only": false}"#,
    );
    b.recv_until("code='104'").await;
    assert!(try_join(&mut a, ROOM, "Alice").await.contains("<subject"));
    assert!(try_join(&mut c, ROOM, "Carol").await.contains("<forbidden"));
    // Membership taken away in a members-only room removes the member (321).
    api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}"),
        r#"{"members_only": true}"#,
    );
    api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}/affiliations"),
        r#"{"items": [{"jid": "bob@localhost", "affiliation": "none"}]}"#,
    );
    let m = b.recv_until("code='321'").await;
    assert!(m.contains("type='unavailable'"), "{m}");
    api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}/affiliations"),
        r#"{"items": [{"jid": "bob@localhost", "affiliation": "member"}]}"#,
    );

    // A last change, then kill -9 right after its answer: all of it survives.
    api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}"),
        r#"{"history_max": 6}"#,
    );
    drop((a, b, c));
    s.restart(true);
    let api = Api(&s);
    // Rooms load on demand: listed from storage before anything loads it.
    let list = api.ok("GET", "/api/rooms", "");
    let listed: Vec<_> = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["jid"] == ROOM)
        .collect();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(
        (
            &listed[0]["persistent"],
            &listed[0]["loaded"],
            &listed[0]["name"]
        ),
        (&true.into(), &false.into(), &"Team <&>".into()),
        "{list}"
    );
    let v = api.ok("GET", &format!("/api/rooms/{ROOM}"), "");
    assert_eq!(
        (&v["members_only"], &v["name"], &v["history_max"]),
        (&true.into(), &"Team <&>".into(), &6.into()),
        "{v}"
    );
    let aff: Vec<(String, String)> = v["affiliations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["jid"].as_str().unwrap().to_string(),
                x["affiliation"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let list = api.ok("GET", "/api/rooms", "");
    assert_eq!(list.to_string().matches(ROOM).count(), 1, "{list}");
    assert!(list.to_string().contains("\"loaded\":true"), "{list}");
    assert_eq!(
        aff,
        [
            ("bob@localhost".to_string(), "member".to_string()),
            ("carol@localhost".into(), "outcast".into()),
            ("dave@localhost".into(), "owner".into())
        ]
    );
    let mut b = Client::online(&s, "bob", "r", 0).await;
    assert!(try_join(&mut b, ROOM, "Bob").await.contains("<subject"));
    let mut c = Client::online(&s, "carol", "r", 0).await;
    assert!(try_join(&mut c, ROOM, "Carol").await.contains("<forbidden"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_destroyed_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_token_file(dir.path(), "", 2);
    let api = Api(&s);
    api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}"),
        r#"{"name": "Doomed"}"#,
    );
    // Created durably: there after kill -9 right after the answer.
    s.restart(true);
    let api = Api(&s);
    let v = api.ok("GET", &format!("/api/rooms/{ROOM}"), "");
    assert_eq!(
        (&v["name"], &v["persistent"]),
        (&"Doomed".into(), &true.into())
    );
    let (mut a, mut b) = common::muc::two(&s).await;
    assert!(try_join(&mut a, ROOM, "A").await.contains("<subject"));
    assert!(try_join(&mut b, ROOM, "B").await.contains("<subject"));
    let v = api.ok(
        "DELETE",
        &format!("/api/rooms/{ROOM}?reason=moved+to+%3Cnew%3E"),
        "",
    );
    assert_eq!(v["destroyed"], ROOM);
    // §10.9: each occupant gets its own unavailable presence with <destroy/> and the reason.
    for c in [&mut a, &mut b] {
        let p = c.recv_until("<destroy").await;
        assert!(p.contains("type='unavailable'"), "{p}");
        assert!(
            p.contains("<destroy><reason>moved to &lt;new&gt;</reason></destroy>"),
            "{p}"
        );
    }
    api.refused(
        "DELETE",
        &format!("/api/rooms/{ROOM}"),
        "",
        404,
        "item-not-found",
    );
    api.refused(
        "GET",
        &format!("/api/rooms/{ROOM}"),
        "",
        404,
        "item-not-found",
    );
    let rooms = api.ok("GET", "/api/rooms", "");
    assert!(!rooms.to_string().contains(LOCAL), "{rooms}");
    // Gone from storage too: not back after kill -9 (a join would create it afresh, locked).
    drop((a, b));
    s.restart(true);
    let api = Api(&s);
    api.refused(
        "GET",
        &format!("/api/rooms/{ROOM}"),
        "",
        404,
        "item-not-found",
    );
    let rooms = api.ok("GET", "/api/rooms", "");
    assert!(!rooms.to_string().contains(LOCAL), "{rooms}");
}

/// A room that is not persistent lives in memory only, until its last occupant leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_room_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_token_file(dir.path(), "", 2);
    let api = Api(&s);
    let v = api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}"),
        r#"{"persistent": false}"#,
    );
    assert_eq!(v["persistent"], false);
    let mut a = Client::online(&s, "alice", "r", 0).await;
    let info = disco_info(&mut a, ROOM).await;
    assert!(info.contains("var='muc_temporary'"), "{info}");
    assert!(try_join(&mut a, ROOM, "A").await.contains("<subject"));
    a.send(&format!("<presence to='{ROOM}/A' type='unavailable'/>"))
        .await;
    a.recv_until("type='unavailable'").await;
    api.refused(
        "GET",
        &format!("/api/rooms/{ROOM}"),
        "",
        404,
        "item-not-found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_room_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_token_file(
        dir.path(),
        "max_items_per_request = 3\n[muc]\nrequire_group_uuid_names = true\nhistory_max = 30\n",
        2,
    );
    let api = Api(&s);
    let path = format!("/api/rooms/{ROOM}");
    api.refused("PUT", &path, "{not json", 400, "bad-request");
    api.refused("PUT", &path, r#"{"color": "red"}"#, 400, "bad-request");
    api.refused("PUT", &path, r#"{"persistent": "yes"}"#, 400, "bad-request");
    api.refused("PUT", &path, r#"{"history_max": -1}"#, 400, "bad-request");
    let t = api.refused("PUT", &path, r#"{"history_max": 31}"#, 400, "bad-request");
    assert!(t.contains("muc.history_max"), "{t}");
    // Bad names: not a JID, another service, a resource, a name the service refuses.
    api.refused("PUT", "/api/rooms/a%20b", "{}", 400, "jid-malformed");
    api.refused("PUT", "/api/rooms/", "{}", 400, "bad-request");
    api.refused(
        "PUT",
        "/api/rooms/x@elsewhere.example",
        "{}",
        400,
        "bad-request",
    );
    api.refused("PUT", "/api/rooms/x@localhost", "{}", 400, "bad-request");
    api.refused("PUT", &format!("{path}%2Fnick"), "{}", 400, "jid-malformed");
    let t = api.refused("PUT", "/api/rooms/coven", "{}", 400, "not-allowed");
    assert!(t.contains("group-{uuid}"), "{t}");
    // Nothing was created by the refusals.
    api.refused("GET", &path, "", 404, "item-not-found");
    // Affiliations: of an unknown room, bad JSON, bad items, too many items.
    let aff = format!("{path}/affiliations");
    let one = r#"{"items": [{"jid": "bob@localhost", "affiliation": "member"}]}"#;
    api.refused("PUT", &aff, one, 404, "item-not-found");
    api.ok("PUT", &path, "{}");
    api.refused("PUT", &aff, "[1,", 400, "bad-request");
    api.refused("PUT", &aff, "{}", 400, "bad-request");
    api.refused(
        "PUT",
        &aff,
        r#"{"items": [{"jid": "bob@localhost", "affiliation": "king"}]}"#,
        400,
        "bad-request",
    );
    api.refused(
        "PUT",
        &aff,
        r#"{"items": [{"jid": "bob@localhost/phone", "affiliation": "member"}]}"#,
        400,
        "jid-malformed",
    );
    let four: Vec<String> = (0..4)
        .map(|i| format!(r#"{{"jid": "u{i}@localhost", "affiliation": "member"}}"#))
        .collect();
    let t = api.refused(
        "PUT",
        &aff,
        &format!(r#"{{"items": [{}]}}"#, four.join(",")),
        400,
        "policy-violation",
    );
    assert!(t.contains("admin.max_items_per_request"), "{t}");
    // At the limit it passes.
    let three = &four[..3];
    let v = api.ok(
        "PUT",
        &aff,
        &format!(r#"{{"items": [{}]}}"#, three.join(",")),
    );
    assert_eq!(v["affiliations"].as_array().unwrap().len(), 3, "{v}");
    // Methods and calls that do not exist.
    assert_eq!(api.call("POST", &path, "{}").0, 405);
    assert_eq!(api.call("GET", &aff, "").0, 405);
    assert_eq!(api.call("GET", &format!("{path}/nope"), "").0, 404);
}

/// With the MUC off, the calls say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_with_the_muc_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_token_file(dir.path(), "[muc]\nenabled = false\n", 1);
    let t = Api(&s).refused(
        "PUT",
        &format!("/api/rooms/{ROOM}"),
        "{}",
        503,
        "service-unavailable",
    );
    assert!(t.contains("muc.enabled"), "{t}");
}

/// A room whose read from storage fails is never replaced by a new one: with every room
/// read failing (a debug-build hook), the admin API answers 503 for the stored room (a
/// change would have created it anew over the stored one) and a join gets
/// `internal-server-error`; once reads work again the room is there as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_cannot_be_read_is_not_created_anew() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_token_file(dir.path(), "", 2);
    let api = Api(&s);
    api.ok(
        "PUT",
        &format!("/api/rooms/{ROOM}"),
        r#"{"name": "Stored"}"#,
    );
    s.restart_env(false, &[("AOBA_FAULT_FAIL_ROOM_READS", "1")]);
    let api = Api(&s);
    api.refused(
        "PUT",
        &format!("/api/rooms/{ROOM}"),
        r#"{"name": "Overwritten"}"#,
        503,
        "internal-server-error",
    );
    api.refused(
        "GET",
        &format!("/api/rooms/{ROOM}"),
        "",
        503,
        "internal-server-error",
    );
    let (mut a, _b) = common::muc::two(&s).await;
    let last = common::muc::join(&mut a, ROOM, "A", "")
        .await
        .pop()
        .unwrap();
    assert!(last.contains("<internal-server-error"), "{last}");
    drop(a);
    s.restart(false);
    let api = Api(&s);
    let v = api.ok("GET", &format!("/api/rooms/{ROOM}"), "");
    assert_eq!(v["name"], "Stored", "{v}");
}
