//! Helpers for the admin API tests: one HTTP call on the admin port, and servers with a
//! token (from the environment, or from a token file that survives a restart).

use super::*;
use std::io::{Read, Write};

pub const TOKEN: &str = "admin-token-0123456789abcdef";

/// One HTTP call on the admin port: (status, body).
pub fn call(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.admin_port.unwrap())).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, body.to_string())
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// A server whose token is in `AOBA_ADMIN_TOKEN`.
pub fn with_token() -> Server {
    Server::start_env(
        "",
        2,
        &["--jwt-secret", SECRET],
        &[("AOBA_ADMIN_TOKEN", TOKEN)],
    )
}

/// A server whose token is in the file `admin.token_file` (kept by `Server::restart`),
/// with `config` after the `[admin]` section's key. The file lives in `dir`.
pub fn with_token_file(dir: &std::path::Path, config: &str, shards: usize) -> Server {
    let f = dir.join("admin-token");
    std::fs::write(&f, format!("{TOKEN}\n")).unwrap();
    Server::start_with(
        &format!("[admin]\ntoken_file = {:?}\n{config}", f.to_str().unwrap()),
        shards,
    )
}

/// The calls of one server, with the token, from an async test.
pub struct Api<'a>(pub &'a Server);

impl Api<'_> {
    pub fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        tokio::task::block_in_place(|| call(self.0, method, path, Some(TOKEN), body))
    }

    /// A call that must answer 200: its JSON.
    pub fn ok(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let (st, b) = self.call(method, path, body);
        assert_eq!(st, 200, "{method} {path}: {b}");
        json(&b)
    }

    /// A call that must be refused with `status` and `cond`: its text.
    pub fn refused(&self, method: &str, path: &str, body: &str, status: u16, cond: &str) -> String {
        let (st, b) = self.call(method, path, body);
        let v = json(&b);
        assert_eq!(
            (st, v["error"].as_str()),
            (status, Some(cond)),
            "{method} {path}: {b}"
        );
        v["text"].as_str().unwrap_or_default().to_string()
    }
}
