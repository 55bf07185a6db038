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
    })
}
