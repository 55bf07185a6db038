//! `aoba ctl`: a client of the admin API (`docs/operations.md`), in the same binary. Human
//! output by default, `--json` for scripts (the API's answer as it is). Exit codes: 0 done,
//! 1 another failure, 2 usage, 3 the server could not be reached, 4 refused (no or a wrong
//! token), 5 not found, 6 bad request.

use std::io::{Read, Write};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Ctl {
    /// The admin listener.
    #[arg(long, default_value = "http://127.0.0.1:8083", env = "AOBA_ADMIN_URL")]
    pub url: String,
    /// The admin API token (or `AOBA_ADMIN_TOKEN`).
    #[arg(long, env = "AOBA_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON answer as it is.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: CtlCmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum CtlCmd {
    /// Sessions, users, connections, logins, rooms, memory.
    Stats,
    /// Online sessions (all of them, or one user's), sorted by JID.
    Sessions {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Sessions per page (1..=1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this JID (the `next` of a previous page).
        #[arg(long)]
        after: Option<String>,
    },
    /// Close a session (full JID) with a policy-violation stream error.
    Kick {
        jid: String,
        #[arg(long, default_value = "closed by the administrator")]
        reason: String,
    },
    /// Send a message, as the server or as one of its users.
    Message {
        to: String,
        body: String,
        #[arg(long)]
        from: Option<String>,
        /// chat, normal, headline or groupchat.
        #[arg(long = "type", default_value = "chat")]
        mtype: String,
    },
    /// A headline message to every online session.
    Announce {
        body: String,
        #[arg(long)]
        from: Option<String>,
    },
    /// The log filter: shown without LEVEL; with it, changed until the revert time.
    LogLevel {
        /// A tracing filter: `debug`, `aoba=trace,info`...
        level: Option<String>,
        /// Back to the start-up filter after this many seconds (0: never).
        #[arg(long, default_value_t = 600)]
        revert_after: u64,
    },
    /// Rooms: list, create or change, delete.
    Rooms {
        #[command(subcommand)]
        cmd: RoomsCmd,
    },
    /// Users: provision (before a first login), show, provision a roster item, delete.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Re-read the configuration file: apply what changes live, list what needs a restart.
    Reload,
}

#[derive(clap::Subcommand, Debug)]
pub enum RoomsCmd {
    /// Every room in memory, sorted.
    List,
    /// Create a room, or change one (options not given keep their value; a new room is
    /// persistent unless `--persistent false`).
    Create {
        /// A room JID, or its localpart (`group-{uuid}`).
        room: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_name = "BOOL")]
        persistent: Option<bool>,
        #[arg(long, value_name = "BOOL")]
        members_only: Option<bool>,
        #[arg(long, value_name = "BOOL")]
        public: Option<bool>,
        /// Messages of history sent on joining.
        #[arg(long, value_name = "N")]
        history_max: Option<usize>,
    },
    /// Destroy a room: its occupants are told, with the reason.
    Delete {
        room: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Set a user's affiliation: owner, admin, member, outcast or none.
    Affiliation {
        room: String,
        jid: String,
        affiliation: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum UserCmd {
    /// Make a user known before its first login.
    Provision { user: String },
    /// Whether a user is known, and its sessions.
    Show { user: String },
    /// Add or change one roster item of a user (with the subscription given), or remove it.
    Roster {
        user: String,
        contact: String,
        /// none, to, from, both, or remove.
        #[arg(long, default_value = "none")]
        subscription: String,
        #[arg(long)]
        name: Option<String>,
        /// A group (repeat for several).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Delete everything stored for a user and close its sessions.
    Delete { user: String },
}

/// Percent-encodes a path segment or query value.
fn enc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// One call: (status, body), or the exit code and why.
fn call(
    ctl: &Ctl,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, String), (i32, String)> {
    let host = ctl
        .url
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .ok_or((2, format!("--url {}: http://HOST:PORT expected", ctl.url)))?;
    let mut c = std::net::TcpStream::connect(host)
        .map_err(|e| (3, format!("cannot reach {}: {e}", ctl.url)))?;
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = ctl
        .token
        .as_deref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes())
        .map_err(|e| (3, format!("{}: {e}", ctl.url)))?;
    let mut out = Vec::new();
    c.read_to_end(&mut out)
        .map_err(|e| (3, format!("{}: {e}", ctl.url)))?;
    let out = String::from_utf8_lossy(&out);
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or((1, "not an HTTP answer".to_string()))?;
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or((1, format!("not an HTTP answer: {head}")))?;
    Ok((status, body.to_string()))
}

/// Runs one command; returns the exit code.
pub fn run(ctl: Ctl) -> i32 {
    match run_inner(&ctl) {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err((code, why)) => {
            eprintln!("aoba ctl: {why}");
            code
        }
    }
}

fn run_inner(ctl: &Ctl) -> Result<String, (i32, String)> {
    let (method, path, body) = match &ctl.cmd {
        CtlCmd::Stats => ("GET", "/api/stats".to_string(), None),
        CtlCmd::Sessions { user, limit, after } => {
            let base = match user {
                Some(u) => format!("/api/users/{}/sessions", enc(u)),
                None => "/api/sessions".into(),
            };
            let mut q = format!("?limit={limit}");
            if let Some(a) = after {
                q.push_str(&format!("&after={}", enc(a)));
            }
            ("GET", base + &q, None)
        }
        CtlCmd::Kick { jid, reason } => (
            "DELETE",
            format!("/api/sessions/{}?reason={}", enc(jid), enc(reason)),
            None,
        ),
        CtlCmd::Message {
            to,
            body,
            from,
            mtype,
        } => {
            let mut m = serde_json::json!({ "to": to, "body": body, "type": mtype });
            if let Some(f) = from {
                m["from"] = f.clone().into();
            }
            ("POST", "/api/messages".into(), Some(m))
        }
        CtlCmd::Announce { body, from } => {
            let mut m = serde_json::json!({ "body": body });
            if let Some(f) = from {
                m["from"] = f.clone().into();
            }
            ("POST", "/api/announce".into(), Some(m))
        }
        CtlCmd::LogLevel {
            level: None,
            revert_after: _,
        } => ("GET", "/api/log-level".into(), None),
        CtlCmd::LogLevel {
            level: Some(l),
            revert_after,
        } => (
            "PUT",
            "/api/log-level".into(),
            Some(serde_json::json!({ "level": l, "revert_after_s": revert_after })),
        ),
        CtlCmd::Rooms { cmd } => match cmd {
            RoomsCmd::List => ("GET", "/api/rooms".into(), None),
            RoomsCmd::Create {
                room,
                name,
                persistent,
                members_only,
                public,
                history_max,
            } => {
                let mut m = serde_json::Map::new();
                let opts = [
                    ("name", name.clone().map(Into::into)),
                    ("persistent", persistent.map(Into::into)),
                    ("members_only", members_only.map(Into::into)),
                    ("public", public.map(Into::into)),
                    ("history_max", history_max.map(Into::into)),
                ];
                for (k, v) in opts {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                let path = format!("/api/rooms/{}", enc(room));
                ("PUT", path, Some(serde_json::Value::Object(m)))
            }
            RoomsCmd::Delete { room, reason } => {
                let mut path = format!("/api/rooms/{}", enc(room));
                if let Some(r) = reason {
                    path.push_str(&format!("?reason={}", enc(r)));
                }
                ("DELETE", path, None)
            }
            RoomsCmd::Affiliation {
                room,
                jid,
                affiliation,
            } => (
                "PUT",
                format!("/api/rooms/{}/affiliations", enc(room)),
                Some(serde_json::json!({
                    "items": [{ "jid": jid, "affiliation": affiliation }]
                })),
            ),
        },
        CtlCmd::User { cmd } => match cmd {
            UserCmd::Provision { user } => ("PUT", format!("/api/users/{}", enc(user)), None),
            UserCmd::Show { user } => ("GET", format!("/api/users/{}", enc(user)), None),
            UserCmd::Delete { user } => ("DELETE", format!("/api/users/{}", enc(user)), None),
            UserCmd::Roster {
                user,
                contact,
                subscription,
                name,
                groups,
            } => {
                let mut item = serde_json::json!({
                    "jid": contact, "subscription": subscription, "groups": groups
                });
                if let Some(n) = name {
                    item["name"] = n.clone().into();
                }
                (
                    "PUT",
                    format!("/api/users/{}/roster", enc(user)),
                    Some(serde_json::json!({ "items": [item] })),
                )
            }
        },
        CtlCmd::Reload => ("POST", "/api/reload".into(), None),
    };
    let (status, text) = call(ctl, method, &path, body.as_ref())?;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if status != 200 {
        let why = format!(
            "{status}: {} ({})",
            v["error"].as_str().unwrap_or("error"),
            v["text"].as_str().unwrap_or(text.trim())
        );
        let code = match status {
            401 | 403 => 4,
            404 => 5,
            400 => 6,
            _ => 1,
        };
        return Err((code, why));
    }
    if ctl.json {
        return Ok(text);
    }
    Ok(match &ctl.cmd {
        CtlCmd::Stats => {
            let mut lines = Vec::new();
            if let Some(o) = v.as_object() {
                for (k, x) in o {
                    match x.as_object() {
                        Some(inner) => {
                            for (k2, y) in inner {
                                lines.push(format!("{k}.{k2}: {y}"));
                            }
                        }
                        None => lines.push(format!(
                            "{k}: {}",
                            x.as_str().map_or(x.to_string(), str::to_string)
                        )),
                    }
                }
            }
            lines.join("\n")
        }
        CtlCmd::Sessions { .. } => {
            let mut lines = Vec::new();
            for s in v["sessions"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "{}  {}  {}  since {}",
                    s["jid"].as_str().unwrap_or(""),
                    s["transport"].as_str().unwrap_or(""),
                    s["peer"].as_str().unwrap_or("-"),
                    s["since"]
                ));
            }
            if let Some(n) = v["next"].as_str() {
                lines.push(format!("(more: --after {n})"));
            }
            if lines.is_empty() {
                "no sessions".into()
            } else {
                lines.join("\n")
            }
        }
        CtlCmd::Kick { jid, .. } => format!("kicked {jid}"),
        CtlCmd::Message { to, .. } => format!("sent to {to}"),
        CtlCmd::Announce { .. } => format!("sent to {} sessions", v["sent"]),
        CtlCmd::LogLevel { .. } => {
            let revert = match v["revert_at"].as_u64() {
                Some(t) => format!(", back to it at {}", unix_time(t)),
                None => String::new(),
            };
            format!(
                "{} (start-up filter: {}{revert})",
                v["level"].as_str().unwrap_or(""),
                v["default"].as_str().unwrap_or("")
            )
        }
        CtlCmd::Rooms { cmd } => rooms_text(cmd, &v),
        CtlCmd::User { cmd } => user_text(cmd, &v),
        CtlCmd::Reload => {
            let list = |k: &str| {
                let l: Vec<&str> = v[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str())
                    .collect();
                if l.is_empty() {
                    "none".to_string()
                } else {
                    l.join(", ")
                }
            };
            format!(
                "applied: {}\nrestart required: {}\nignored (the environment wins): {}",
                list("applied"),
                list("restart_required"),
                list("ignored")
            )
        }
    })
}

/// Seconds since the Unix epoch, as RFC 3339.
fn unix_time(t: u64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_secs(t);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn room_line(r: &serde_json::Value) -> String {
    let flag = |k: &str, yes: &str, no: &str| {
        if r[k] == true {
            yes.to_string()
        } else {
            no.to_string()
        }
    };
    format!(
        "{}  {:?}  {}, {}, {}, history {}, {} occupants",
        r["jid"].as_str().unwrap_or(""),
        r["name"].as_str().unwrap_or(""),
        flag("persistent", "persistent", "temporary"),
        flag("members_only", "members-only", "open"),
        flag("public", "public", "hidden"),
        r["history_max"],
        r["occupants"]
    )
}

fn rooms_text(cmd: &RoomsCmd, v: &serde_json::Value) -> String {
    match cmd {
        RoomsCmd::List => {
            let lines: Vec<String> = v["rooms"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    format!(
                        "{}  {:?}  {}  {} occupants",
                        r["jid"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or(""),
                        if r["persistent"] == true {
                            "persistent"
                        } else {
                            "temporary"
                        },
                        r["occupants"]
                    )
                })
                .collect();
            if lines.is_empty() {
                "no rooms".into()
            } else {
                lines.join("\n")
            }
        }
        RoomsCmd::Create { .. } => format!(
            "{} {}",
            if v["created"] == true {
                "created"
            } else {
                "changed"
            },
            room_line(v)
        ),
        RoomsCmd::Delete { .. } => format!("destroyed {}", v["destroyed"].as_str().unwrap_or("")),
        RoomsCmd::Affiliation { .. } => {
            let mut lines = vec![format!(
                "{} affiliations:",
                v["room"].as_str().unwrap_or("")
            )];
            for a in v["affiliations"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "  {}  {}",
                    a["jid"].as_str().unwrap_or(""),
                    a["affiliation"].as_str().unwrap_or("")
                ));
            }
            lines.join("\n")
        }
    }
}

fn user_text(cmd: &UserCmd, v: &serde_json::Value) -> String {
    let user = v["user"].as_str().unwrap_or("");
    match cmd {
        UserCmd::Provision { .. } => format!(
            "provisioned {user} ({})",
            if v["created"] == true {
                "new"
            } else {
                "already known"
            }
        ),
        UserCmd::Show { .. } => format!(
            "{user}: {}, {} sessions",
            if v["known"] == true {
                "known"
            } else {
                "not known (online without a record)"
            },
            v["sessions"]
        ),
        UserCmd::Roster { .. } => {
            let mut lines = vec![format!("{user}'s roster:")];
            for i in v["roster"].as_array().into_iter().flatten() {
                let groups: Vec<&str> = i["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g.as_str())
                    .collect();
                lines.push(format!(
                    "  {}  {}  {:?}  [{}]",
                    i["jid"].as_str().unwrap_or(""),
                    i["subscription"].as_str().unwrap_or(""),
                    i["name"].as_str().unwrap_or(""),
                    groups.join(", ")
                ));
            }
            lines.join("\n")
        }
        UserCmd::Delete { .. } => {
            let d = &v["deleted"];
            format!(
                "deleted {user}: {} sessions closed, {} roster items, {} offline messages, \
                 {} archived messages, {} room affiliations",
                d["sessions"], d["roster"], d["offline"], d["archive"], d["affiliations"]
            )
        }
    }
}
