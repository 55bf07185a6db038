//! `POST /api/reload` through real HTTP, with the real configuration file edited between
//! calls: what changes live is applied at once (the log filter, the admin token file and
//! bounds, the TLS certificates), every other changed key is listed as needing a restart
//! (and stays listed until then), the environment wins over the file, and a file with any
//! error is refused with the error while nothing changes.

mod common;
use common::admin::{TOKEN, call, json};
use common::tls::{TestCa, connect};
use common::*;

fn reload(s: &Server, token: &str) -> (u16, serde_json::Value) {
    let (st, b) = call(s, "POST", "/api/reload", Some(token), "");
    (st, json(&b))
}

fn keys(v: &serde_json::Value, list: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn write(s: &Server, toml: &str) {
    std::fs::write(s.dir.join("aoba.toml"), toml).unwrap();
}

#[test]
fn reload_applies_what_changes_live_and_lists_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let t1 = dir.path().join("token1");
    std::fs::write(&t1, TOKEN).unwrap();
    let base = format!("[admin]\ntoken_file = {:?}\n", t1.to_str().unwrap());
    // AOBA_LOG empty: `log.level` decides the filter.
    let s = Server::start_env(
        &format!("{base}[log]\nlevel = \"info\"\n"),
        1,
        &["--jwt-secret", SECRET],
        &[("AOBA_LOG", "")],
    );
    // Nothing changed.
    let (st, v) = reload(&s, TOKEN);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        serde_json::json!({"applied": [], "restart_required": [], "ignored": []})
    );
    assert!(!s.log().contains("DEBUG"));

    // Live keys and restart keys at once.
    let edited = format!(
        "{base}request_timeout_ms = 3000\nmax_items_per_request = 2\n\
         [log]\nlevel = \"debug\"\n[muc]\nhistory_max = 40\n[server]\nmailbox_capacity = 1024\n"
    );
    write(&s, &edited);
    let (st, v) = reload(&s, TOKEN);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        keys(&v, "applied"),
        [
            "admin.max_items_per_request",
            "admin.request_timeout_ms",
            "log.level"
        ]
    );
    assert_eq!(
        keys(&v, "restart_required"),
        ["muc.history_max", "server.mailbox_capacity"]
    );
    // The filter changed, and it is the one a temporary change reverts to.
    let (_, l) = call(&s, "GET", "/api/log-level", Some(TOKEN), "");
    let l = json(&l);
    assert_eq!(
        (&l["level"], &l["default"]),
        (&"debug".into(), &"debug".into())
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let _c = Client::online(&s, "dora", "r", 0).await;
    });
    assert!(s.log().contains("DEBUG"), "no debug line after the reload");
    // The new bound on items is in force.
    let (st, b) = call(
        &s,
        "PUT",
        "/api/users/dora/roster",
        Some(TOKEN),
        r#"{"items": [{"jid": "a@localhost"}, {"jid": "b@localhost"}, {"jid": "c@localhost"}]}"#,
    );
    assert_eq!(
        (st, json(&b)["error"].as_str()),
        (400, Some("policy-violation"))
    );
    // The same file again: what needs a restart is still listed, nothing more is applied.
    let (_, v) = reload(&s, TOKEN);
    assert!(keys(&v, "applied").is_empty(), "{v}");
    assert_eq!(
        keys(&v, "restart_required"),
        ["muc.history_max", "server.mailbox_capacity"]
    );

    // A file with an error anywhere: 400 with the error, and nothing changes.
    for (bad, why) in [
        (
            format!("{base}[log]\nlevel = \"trace\"\n[limits]\nmax_xml_depth = 1\n"),
            "limits.max_xml_depth",
        ),
        (
            format!("{base}[log]\nlevel = \"trace\"\nlevle = 1\n"),
            "levle",
        ),
        (format!("{base}[log]\nlevel = \"info,[{{\"\n"), "log.level"),
        ("[admin\n".to_string(), "aoba.toml"),
        (
            format!(
                "[admin]\ntoken_file = {:?}\n",
                dir.path().join("none").to_str().unwrap()
            ),
            "admin.token_file",
        ),
    ] {
        write(&s, &bad);
        let (st, v) = reload(&s, TOKEN);
        assert_eq!((st, v["error"].as_str()), (400, Some("bad-request")), "{v}");
        assert!(v["text"].as_str().unwrap().contains(why), "{why}: {v}");
        let (_, l) = call(&s, "GET", "/api/log-level", Some(TOKEN), "");
        assert_eq!(
            json(&l)["level"],
            "debug",
            "the refused file changed nothing"
        );
    }
    // A token file with too short a token is refused too; the token stays.
    let short = dir.path().join("short");
    std::fs::write(&short, "tiny").unwrap();
    write(
        &s,
        &format!("[admin]\ntoken_file = {:?}\n", short.to_str().unwrap()),
    );
    let (st, v) = reload(&s, TOKEN);
    assert_eq!(st, 400, "{v}");
    assert!(v["text"].as_str().unwrap().contains("16 characters"), "{v}");

    // A new token file: the next call needs the new token.
    let t2 = dir.path().join("token2");
    let new_token = "rotated-token-0123456789abcdef";
    std::fs::write(&t2, new_token).unwrap();
    write(
        &s,
        &edited.replace(t1.to_str().unwrap(), t2.to_str().unwrap()),
    );
    let (st, v) = reload(&s, TOKEN);
    assert_eq!(st, 200, "{v}");
    assert_eq!(keys(&v, "applied"), ["admin.token_file"]);
    assert_eq!(call(&s, "GET", "/api/stats", Some(TOKEN), "").0, 401);
    assert_eq!(call(&s, "GET", "/api/stats", Some(new_token), "").0, 200);
    // The same file with a new token in it.
    let third = "third-token-0123456789abcdefgh";
    std::fs::write(&t2, format!("{third}\n")).unwrap();
    let (st, v) = reload(&s, new_token);
    assert_eq!(st, 200, "{v}");
    assert_eq!(keys(&v, "applied"), ["admin.token_file"]);
    assert_eq!(call(&s, "GET", "/api/stats", Some(third), "").0, 200);
    assert_eq!(call(&s, "GET", "/api/stats", Some(new_token), "").0, 401);
    // Only POST.
    assert_eq!(call(&s, "GET", "/api/reload", Some(third), "").0, 405);
}

/// `AOBA_LOG` and `AOBA_ADMIN_TOKEN` win over the file, at a reload too.
#[test]
fn the_environment_wins_over_the_file() {
    let s = Server::start_env(
        "",
        1,
        &["--jwt-secret", SECRET],
        &[("AOBA_ADMIN_TOKEN", TOKEN)],
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("token");
    std::fs::write(&f, "another-token-0123456789abcdef").unwrap();
    write(
        &s,
        &format!(
            "[log]\nlevel = \"debug\"\n[admin]\ntoken_file = {:?}\n",
            f.to_str().unwrap()
        ),
    );
    let (st, v) = reload(&s, TOKEN);
    assert_eq!(st, 200, "{v}");
    assert!(keys(&v, "applied").is_empty(), "{v}");
    assert_eq!(keys(&v, "ignored"), ["admin.token_file", "log.level"]);
    assert_eq!(call(&s, "GET", "/api/stats", Some(TOKEN), "").0, 200);
    let (_, l) = call(&s, "GET", "/api/log-level", Some(TOKEN), "");
    assert_eq!(json(&l)["level"], "info");
}

/// The certificates are re-read at every reload (renewed files), and a new list of files
/// is served at once; a key that does not load refuses the reload and the served
/// certificate stays.
#[test]
fn reload_serves_new_certificates() {
    let mut ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("token");
    std::fs::write(&tf, TOKEN).unwrap();
    let admin = format!("[admin]\ntoken_file = {:?}\n", tf.to_str().unwrap());
    let c2s = "[c2s]\nlisten_direct_tls = \"127.0.0.1:0\"\n";
    let s = Server::start_with(&format!("{admin}{}{c2s}", ca.config()), 1);
    let port = s.direct_tls_port.unwrap();
    let cfg = ca.client(&[]);
    let served = || {
        connect(&cfg, port)
            .unwrap()
            .conn
            .peer_certificates()
            .unwrap()[0]
            .clone()
    };
    let first = ca.leaf_der.clone();
    assert_eq!(served(), first);
    // Renewed in place.
    ca.issue(&["localhost"]);
    let second = ca.leaf_der.clone();
    let (st, v) = reload(&s, TOKEN);
    assert_eq!(st, 200, "{v}");
    assert_eq!(keys(&v, "applied"), ["tls.certificates"]);
    assert!(keys(&v, "restart_required").is_empty(), "{v}");
    assert_eq!(served(), second);
    // Other files: copies of the second certificate, while the old files get a third.
    let (cert2, key2) = (dir.path().join("b.crt"), dir.path().join("b.key"));
    std::fs::copy(&ca.cert_file, &cert2).unwrap();
    std::fs::copy(&ca.key_file, &key2).unwrap();
    ca.issue(&["localhost"]);
    write(
        &s,
        &format!(
            "{admin}[tls]\ncertificates = [{{ cert_file = {cert2:?}, key_file = {key2:?} }}]\n{c2s}"
        ),
    );
    let (st, v) = reload(&s, TOKEN);
    assert_eq!(st, 200, "{v}");
    assert_eq!(keys(&v, "applied"), ["tls.certificates"]);
    assert_eq!(served(), second);
    // A key that does not load: refused, the served certificate stays.
    std::fs::write(&key2, "garbage").unwrap();
    let (st, v) = reload(&s, TOKEN);
    assert_eq!(st, 400, "{v}");
    assert!(v["text"].as_str().unwrap().contains("b.key"), "{v}");
    assert_eq!(served(), second);
}
