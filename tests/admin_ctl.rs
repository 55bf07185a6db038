//! `aoba ctl` (the real binary) for the log level, rooms, users and reload: human output,
//! `--json`, and the exit codes (0 done, 5 not found, 6 bad request, 2 usage).

mod common;
use common::admin::{TOKEN, json, with_token};
use common::*;

const ROOM: &str = "group-5e1f0c2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f";
const ROOM_JID: &str = "group-5e1f0c2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f@conference.localhost";

struct Ctl(String);

impl Ctl {
    /// (exit code, stdout, stderr)
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = std::process::Command::new(bin())
            .arg("ctl")
            .args(["--url", &self.0, "--token", TOKEN])
            .args(args)
            .env_remove("AOBA_ADMIN_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Must succeed: its output.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    }

    fn code(&self, args: &[&str]) -> i32 {
        self.run(args).0
    }
}

#[test]
fn ctl_log_level_rooms_users_and_reload() {
    let s = with_token();
    let ctl = Ctl(format!("http://127.0.0.1:{}", s.admin_port.unwrap()));

    // The log level: shown, changed with a revert time, refused when it is no filter.
    assert_eq!(ctl.ok(&["log-level"]), "info (start-up filter: info)");
    let out = ctl.ok(&["log-level", "debug", "--revert-after", "600"]);
    assert!(
        out.starts_with("debug (start-up filter: info, back to it at 20"),
        "{out}"
    );
    let v = json(&ctl.ok(&["--json", "log-level"]));
    assert_eq!(
        (&v["level"], &v["default"]),
        (&"debug".into(), &"info".into())
    );
    assert!(v["revert_at"].as_u64().is_some(), "{v}");
    assert_eq!(ctl.code(&["log-level", "info,[{"]), 6);
    assert_eq!(
        ctl.ok(&["log-level", "info", "--revert-after", "0"]),
        "info (start-up filter: info)"
    );

    // Rooms.
    let out = ctl.ok(&[
        "rooms",
        "create",
        ROOM,
        "--name",
        "Team",
        "--members-only",
        "true",
        "--history-max",
        "5",
    ]);
    assert_eq!(
        out,
        format!(
            "created {ROOM_JID}  \"Team\"  persistent, members-only, public, history 5, 0 occupants"
        )
    );
    let out = ctl.ok(&["rooms", "create", ROOM_JID, "--public", "false"]);
    assert!(
        out.starts_with("changed ") && out.contains("hidden"),
        "{out}"
    );
    let v = json(&ctl.ok(&["--json", "rooms", "create", ROOM]));
    assert_eq!(
        (&v["created"], &v["public"]),
        (&false.into(), &false.into())
    );
    assert_eq!(
        ctl.ok(&["rooms", "list"]),
        format!("{ROOM_JID}  \"Team\"  persistent  0 occupants")
    );
    assert_eq!(
        ctl.ok(&["rooms", "affiliation", ROOM, "bob@localhost", "member"]),
        format!("{ROOM_JID} affiliations:\n  bob@localhost  member")
    );
    assert_eq!(
        ctl.code(&["rooms", "affiliation", ROOM, "bob@localhost", "king"]),
        6
    );
    assert_eq!(ctl.code(&["rooms", "create", "a b"]), 6);
    assert_eq!(
        ctl.code(&["rooms", "create", ROOM, "--persistent", "maybe"]),
        2
    );
    assert_eq!(
        ctl.ok(&["rooms", "delete", ROOM, "--reason", "done"]),
        format!("destroyed {ROOM_JID}")
    );
    assert_eq!(ctl.code(&["rooms", "delete", ROOM]), 5);
    assert_eq!(ctl.ok(&["rooms", "list"]), "no rooms");

    // Users.
    assert_eq!(
        ctl.ok(&["user", "provision", "zoe"]),
        "provisioned zoe@localhost (new)"
    );
    assert_eq!(
        ctl.ok(&["user", "provision", "zoe@localhost"]),
        "provisioned zoe@localhost (already known)"
    );
    assert_eq!(
        ctl.ok(&["user", "show", "zoe"]),
        "zoe@localhost: known, 0 sessions"
    );
    assert_eq!(ctl.code(&["user", "show", "nobody"]), 5);
    let out = ctl.ok(&[
        "user",
        "roster",
        "zoe",
        "bob@localhost",
        "--subscription",
        "both",
        "--name",
        "Bob",
        "--group",
        "Friends",
        "--group",
        "Work",
    ]);
    assert_eq!(
        out,
        "zoe@localhost's roster:\n  bob@localhost  both  \"Bob\"  [Friends, Work]"
    );
    assert_eq!(
        ctl.code(&[
            "user",
            "roster",
            "zoe",
            "bob@localhost",
            "--subscription",
            "mutual"
        ]),
        6
    );
    assert_eq!(
        ctl.ok(&["user", "delete", "zoe"]),
        "deleted zoe@localhost: 0 sessions closed, 1 roster items, 0 offline messages, \
         0 archived messages, 0 room affiliations"
    );
    assert_eq!(ctl.code(&["user", "delete", "zoe"]), 5);
    assert_eq!(ctl.code(&["--json", "user", "show", "zoe"]), 5);

    // Reload: the file the server started with, edited.
    assert_eq!(
        ctl.ok(&["reload"]),
        "applied: none\nrestart required: none\nignored (the environment wins): none"
    );
    std::fs::write(s.dir.join("aoba.toml"), "[muc]\nhistory_max = 40\n").unwrap();
    assert_eq!(
        ctl.ok(&["reload"]),
        "applied: none\nrestart required: muc.history_max\nignored (the environment wins): none"
    );
    let v = json(&ctl.ok(&["--json", "reload"]));
    assert_eq!(
        v["restart_required"],
        serde_json::json!(["muc.history_max"])
    );
    std::fs::write(s.dir.join("aoba.toml"), "[muc]\nhistory_max = 0\n").unwrap();
    let (code, _, err) = ctl.run(&["reload"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("muc.history_default"), "{err}");
}
