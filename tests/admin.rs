//! The admin API through real HTTP on the admin listener: 403 without a configured token
//! (saying how to configure one), 401 with a wrong one; stats; paged sessions; one user's
//! sessions; a kick that really closes the session with `policy-violation` and its reason;
//! messages as the server and as a user; an announcement to every online session; bad JSON,
//! unknown sessions and calls; the OpenAPI description.

mod common;
use common::*;

use common::admin::{TOKEN, call, json, with_token};

#[test]
fn without_a_token_the_api_answers_403_and_says_how() {
    let s = Server::start();
    let (st, b) = call(&s, "GET", "/api/stats", None, "");
    assert_eq!(st, 403, "{b}");
    let b = json(&b);
    assert_eq!(b["error"], "forbidden");
    assert!(
        b["text"].as_str().unwrap().contains("admin.token_file"),
        "{b}"
    );
    // Even with a token sent: none is configured.
    assert_eq!(call(&s, "GET", "/api/stats", Some(TOKEN), "").0, 403);
    // Metrics need none.
    assert_eq!(call(&s, "GET", "/metrics", None, "").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api() {
    let s = with_token();
    let get = |path: &str| tokio::task::block_in_place(|| call(&s, "GET", path, Some(TOKEN), ""));
    assert_eq!(
        tokio::task::block_in_place(|| call(&s, "GET", "/api/stats", Some("wrong"), "")).0,
        401
    );
    assert_eq!(
        tokio::task::block_in_place(|| call(&s, "GET", "/api/stats", None, "")).0,
        401
    );
    let mut a = Client::online(&s, "alice", "phone", 0).await;
    let mut b = Client::online(&s, "bob", "web", 0).await;
    let mut c = Client::online(&s, "carol", "desk", 0).await;
    let (st, stats) = get("/api/stats");
    assert_eq!(st, 200);
    let stats = json(&stats);
    assert_eq!(stats["sessions"], 3, "{stats}");
    assert_eq!(stats["connections"]["ws"], 3, "{stats}");

    // Sessions, two per page, in JID order.
    let (st, p1) = get("/api/sessions?limit=2");
    assert_eq!(st, 200, "{p1}");
    let p1 = json(&p1);
    let jids: Vec<&str> = p1["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["jid"].as_str().unwrap())
        .collect();
    assert_eq!(jids, [a.jid.as_str(), b.jid.as_str()], "{p1}");
    let first = &p1["sessions"][0];
    assert_eq!(first["transport"], "ws");
    assert!(first["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(first["since"].as_u64().unwrap() > 1_700_000_000);
    let next = p1["next"].as_str().unwrap().to_string();
    let (_, p2) = get(&format!(
        "/api/sessions?limit=2&after={}",
        next.replace('/', "%2F")
    ));
    let p2 = json(&p2);
    assert_eq!(p2["sessions"].as_array().unwrap().len(), 1, "{p2}");
    assert_eq!(p2["sessions"][0]["jid"], c.jid.as_str());
    assert!(p2["next"].is_null());
    assert_eq!(get("/api/sessions?limit=0").0, 400);
    // One user's.
    let (st, u) = get("/api/users/bob/sessions");
    assert_eq!(st, 200);
    let u = json(&u);
    assert_eq!(u["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(u["sessions"][0]["jid"], b.jid.as_str());

    // A message as the server, and one as bob.
    let post = |path: &str, body: &str| {
        tokio::task::block_in_place(|| call(&s, "POST", path, Some(TOKEN), body))
    };
    let (st, r) = post(
        "/api/messages",
        r#"{"to": "alice@localhost", "body": "from the admin <&>"}"#,
    );
    assert_eq!(st, 200, "{r}");
    let m = a.recv_until("from the admin").await;
    assert!(
        m.contains("from='localhost'") && m.contains("type='chat'") && m.contains("&lt;&amp;&gt;"),
        "{m}"
    );
    let (st, _) = post(
        "/api/messages",
        r#"{"to": "alice@localhost", "from": "bob@localhost", "type": "normal", "body": "as bob"}"#,
    );
    assert_eq!(st, 200);
    let m = a.recv_until("as bob").await;
    assert!(
        m.contains("from='bob@localhost'") && m.contains("type='normal'"),
        "{m}"
    );
    // Bad requests.
    let (st, e) = post("/api/messages", "{not json");
    assert_eq!(
        (st, json(&e)["error"].as_str().unwrap()),
        (400, "bad-request")
    );
    let (st, _) = post(
        "/api/messages",
        r#"{"to": "alice@localhost", "body": "x", "color": 1}"#,
    );
    assert_eq!(st, 400);
    let (st, _) = post(
        "/api/messages",
        r#"{"to": "alice@localhost", "body": "x", "type": "error"}"#,
    );
    assert_eq!(st, 400);
    let (st, _) = post(
        "/api/messages",
        r#"{"to": "alice@localhost", "body": "x", "from": "mallory@elsewhere.example"}"#,
    );
    assert_eq!(st, 400, "a sender of another domain is refused");

    // An announcement reaches every online session.
    let (st, r) = post("/api/announce", r#"{"body": "maintenance at noon"}"#);
    assert_eq!(st, 200);
    assert_eq!(json(&r)["sent"], 3);
    for x in [&mut a, &mut b, &mut c] {
        let m = x.recv_until("maintenance at noon").await;
        assert!(
            m.contains("type='headline'") && m.contains("from='localhost'"),
            "{m}"
        );
    }

    // A kick closes the session with policy-violation and the reason.
    let path = format!(
        "/api/sessions/{}?reason=account+suspended",
        c.jid.replace('/', "%2F")
    );
    let (st, r) = tokio::task::block_in_place(|| call(&s, "DELETE", &path, Some(TOKEN), ""));
    assert_eq!(st, 200, "{r}");
    let e = c.expect_stream_error("policy-violation").await;
    assert!(e.contains("account suspended"), "{e}");
    let (st, r) = tokio::task::block_in_place(|| call(&s, "DELETE", &path, Some(TOKEN), ""));
    assert_eq!(
        (st, json(&r)["error"].as_str().unwrap()),
        (404, "item-not-found")
    );
    let (st, _) = tokio::task::block_in_place(|| {
        call(
            &s,
            "DELETE",
            "/api/sessions/carol@localhost",
            Some(TOKEN),
            "",
        )
    });
    assert_eq!(st, 400, "a bare JID is not a session");
    let (st, u) = get("/api/users/carol/sessions");
    assert_eq!(st, 200);
    assert!(json(&u)["sessions"].as_array().unwrap().is_empty(), "{u}");

    // The description and unknown calls.
    let (st, d) = get("/api/openapi.json");
    assert_eq!(st, 200);
    let d = json(&d);
    for p in [
        "/api/stats",
        "/api/sessions",
        "/api/sessions/{jid}",
        "/api/messages",
        "/api/announce",
        "/api/rooms/{room}",
        "/api/rooms/{room}/affiliations",
        "/api/users/{user}",
        "/api/users/{user}/roster",
        "/api/users/{user}/affiliations",
        "/api/reload",
    ] {
        assert!(d["paths"][p].is_object(), "{p} not described");
    }
    assert_eq!(get("/api/nope").0, 404);
    // Paths that are only the prefix and suffix of a call: no panic, an answer.
    assert_eq!(get("/api/users/sessions").0, 404);
    assert_eq!(get("/api/users//sessions").0, 400);
    assert_eq!(get("/api/rooms/occupants").0, 404);
    assert_eq!(get("/api/rooms//occupants").0, 400);
    assert_eq!(get("/api/stats").0, 200, "the server is still up");
    assert_eq!(
        tokio::task::block_in_place(|| call(&s, "PUT", "/api/stats", Some(TOKEN), "")).0,
        405
    );
    drop((a, b));
}

/// `aoba ctl` against the same API: human and JSON output, and exit codes that say what
/// failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aoba_ctl() {
    let s = with_token();
    let url = format!("http://127.0.0.1:{}", s.admin_port.unwrap());
    let ctl = |args: &[&str], token: &str| {
        let out = std::process::Command::new(bin())
            .arg("ctl")
            .args(["--url", &url, "--token", token])
            .args(args)
            .env_remove("AOBA_ADMIN_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let run = |args: &'static [&'static str], token: &'static str| {
        tokio::task::block_in_place(|| ctl(args, token))
    };
    let mut a = Client::online(&s, "alice", "phone", 0).await;
    let (code, out, err) = run(&["stats"], TOKEN);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l == "sessions: 1"), "{out}");
    let (code, out, _) = run(&["sessions"], TOKEN);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("alice@localhost/phone  ws  127.0.0.1:"),
        "{out}"
    );
    let (code, out, _) = run(&["--json", "sessions", "--user", "alice"], TOKEN);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["sessions"][0]["jid"], "alice@localhost/phone");
    let (code, out, _) = run(&["message", "alice@localhost", "hello from ctl"], TOKEN);
    assert_eq!((code, out.trim()), (0, "sent to alice@localhost"));
    a.recv_until("hello from ctl").await;
    let (code, out, _) = run(&["announce", "all hands"], TOKEN);
    assert_eq!((code, out.trim()), (0, "sent to 1 sessions"));
    a.recv_until("all hands").await;
    let (code, _, err) = run(
        &["message", "alice@localhost", "x", "--type", "error"],
        TOKEN,
    );
    assert_eq!(code, 6, "{err}");
    let (code, _, err) = run(&["stats"], "wrong-token-0123456789");
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("401"), "{err}");
    let (code, out, _) = run(
        &["kick", "alice@localhost/phone", "--reason", "bye now"],
        TOKEN,
    );
    assert_eq!((code, out.trim()), (0, "kicked alice@localhost/phone"));
    let e = a.expect_stream_error("policy-violation").await;
    assert!(e.contains("bye now"), "{e}");
    let (code, _, err) = run(&["kick", "alice@localhost/phone"], TOKEN);
    assert_eq!(code, 5, "{err}");
    // Nothing listens there.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let out = std::process::Command::new(bin())
        .args(["ctl", "--url", &dead, "--token", TOKEN, "stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

/// `AOBA_LOG_FORMAT=json`: one JSON object per log line. `PUT /api/log-level` changes the
/// filter at once and it reverts by itself after `revert_after_s`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_the_log_level_at_runtime() {
    let s = Server::start_env(
        "",
        1,
        &["--jwt-secret", SECRET],
        &[("AOBA_ADMIN_TOKEN", TOKEN), ("AOBA_LOG_FORMAT", "json")],
    );
    let api = |m: &str, p: &str, b: &str| {
        let (m, p, b) = (m.to_string(), p.to_string(), b.to_string());
        tokio::task::block_in_place(|| call(&s, &m, &p, Some(TOKEN), &b))
    };
    let log = s.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{log}");
    for l in &lines {
        let v = json(l);
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    let (st, b) = api("GET", "/api/log-level", "");
    assert_eq!(st, 200);
    assert_eq!(json(&b)["level"], "info");
    assert_eq!(
        api("PUT", "/api/log-level", r#"{"level": "info,[{"}"#).0,
        400
    );
    let (st, b) = api(
        "PUT",
        "/api/log-level",
        r#"{"level": "debug", "revert_after_s": 1}"#,
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(json(&b)["level"], "debug");
    // A connection now logs its debug line ("accepted").
    let _c = Client::online(&s, "dora", "r", 0).await;
    let has_debug = |log: &str| {
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["level"] == "DEBUG")
    };
    assert!(has_debug(&s.log()), "no debug line after the change");
    // And back to info by itself.
    let until = std::time::Instant::now() + WAIT;
    loop {
        let (_, b) = api("GET", "/api/log-level", "");
        if json(&b)["level"] == "info" {
            assert!(json(&b)["revert_at"].is_null());
            break;
        }
        assert!(std::time::Instant::now() < until, "not reverted: {b}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let before = s.log().lines().count();
    let _d = Client::online(&s, "dina", "r", 0).await;
    let after: Vec<String> = s.log().lines().skip(before).map(String::from).collect();
    assert!(
        !has_debug(&after.join("\n")),
        "debug lines after the revert"
    );
}

/// `GET /api/rooms` and `GET /api/rooms/{room}/occupants`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_their_occupants() {
    use common::muc::{instant_room, join};
    let s = with_token();
    let get = |path: &str| tokio::task::block_in_place(|| call(&s, "GET", path, Some(TOKEN), ""));
    let room = "group-00000000-0000-4000-8000-0000000000ad@conference.localhost";
    let mut a = Client::online(&s, "olga", "r", 0).await;
    let mut b = Client::online(&s, "pete", "r", 0).await;
    join(&mut a, room, "Olga", "").await;
    instant_room(&mut a, room).await;
    join(&mut b, room, "Pete", "").await;
    let (st, r) = get("/api/rooms");
    assert_eq!(st, 200, "{r}");
    let r = json(&r);
    let mine = r["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["jid"] == room)
        .unwrap_or_else(|| panic!("{r}"))
        .clone();
    assert_eq!(mine["occupants"], 2, "{mine}");
    let (st, o) = get(&format!("/api/rooms/{room}/occupants"));
    assert_eq!(st, 200, "{o}");
    let o = json(&o);
    let occ = o["occupants"].as_array().unwrap();
    assert_eq!(occ.len(), 2, "{o}");
    let olga = occ.iter().find(|x| x["nick"] == "Olga").unwrap();
    assert_eq!(olga["jid"], "olga@localhost");
    assert_eq!(olga["role"], "moderator");
    assert_eq!(olga["affiliation"], "owner");
    let pete = occ.iter().find(|x| x["nick"] == "Pete").unwrap();
    assert_eq!(pete["affiliation"], "none");
    let missing = "group-00000000-0000-4000-8000-0000000000ff@conference.localhost";
    assert_eq!(get(&format!("/api/rooms/{missing}/occupants")).0, 404);
    assert_eq!(get("/api/rooms/not%20a%20jid/occupants").0, 400);
    drop((a, b));
}

/// A kicked session is ended, not kept for XEP-0198 resumption: resuming it fails, and
/// what it had not acknowledged is not lost (offline, delivered at the next login).
#[tokio::test(flavor = "multi_thread")]
async fn a_kicked_session_cannot_be_resumed_and_loses_nothing() {
    let s = with_token();
    let mut alice = Client::connect(&s, Some(&s.token("alice"))).await;
    alice.jid = "alice@localhost".into();
    alice.open().await;
    assert!(alice.auth_plain("alice", "").await.contains("<success"));
    alice.open().await;
    alice.bind(Some("phone")).await;
    alice.send("<presence/>").await;
    alice
        .send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let e = alice.recv_until("<enabled").await;
    let id = between(&e, "id='", "'").to_string();
    let mut bob = Client::online(&s, "bob", "desk", 0).await;
    bob.send(
        "<message to='alice@localhost/phone' type='chat' id='k1'><body>unacked</body></message>",
    )
    .await;
    assert!(alice.recv_until("<message").await.contains("id='k1'"));
    // Not acknowledged; then the operator kicks her.
    let path = "/api/sessions/alice@localhost%2Fphone?reason=bye";
    let (st, r) = tokio::task::block_in_place(|| call(&s, "DELETE", path, Some(TOKEN), ""));
    assert_eq!(st, 200, "{r}");
    alice.expect_stream_error("policy-violation").await;
    let mut again = Client::connect(&s, Some(&s.token("alice"))).await;
    again.jid = "alice@localhost".into();
    again.open().await;
    assert!(again.auth_plain("alice", "").await.contains("<success"));
    again.open().await;
    again
        .send(&format!(
            "<resume xmlns='urn:xmpp:sm:3' h='0' previd='{id}'/>"
        ))
        .await;
    let f = again.recv_until("<failed").await;
    assert!(f.contains("<item-not-found"), "{f}");
    // What she had not acknowledged waits for her.
    again.bind(Some("phone")).await;
    again.send("<presence/>").await;
    let m = again.recv_until("<message").await;
    assert!(m.contains("unacked") && m.contains("<delay"), "{m}");
}
