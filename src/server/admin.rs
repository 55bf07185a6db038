//! The admin listener (`admin.listen`, a private port): `GET /metrics` in the Prometheus
//! text format (`?per_shard=1`: a series per shard instead of the sums), and the admin API
//! (`/api/…`, JSON, `Authorization: Bearer TOKEN`), whose requests reach the shards through
//! their mailboxes and wait for the answers with a deadline. One thread, blocking I/O, one
//! request per connection: it serves scrapes and operators, never the stanza path.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// What the admin thread needs.
pub struct Admin {
    pub cfg: crate::config::AdminConfig,
    /// The API's bearer token; `None`: every API call answers 403.
    pub token: Option<String>,
    pub depths: Arc<crate::metrics::Depths>,
    pub api: super::admin_api::Api,
    /// What `POST /api/reload` needs: the file, the configuration running.
    pub reload: super::admin_reload::Reload,
}

/// Serves `listener` on its own thread until the process ends.
pub fn start(listener: TcpListener, mut admin: Admin) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            for c in listener.incoming() {
                match c {
                    Ok(c) => serve(c, &mut admin),
                    Err(e) => tracing::warn!(error = %e, "admin: accept"),
                }
            }
        })
        .map(|_| ())
}

/// A `<message/>` built by the server (escaped), for the admin API.
pub fn message_stanza(from: &str, to: &str, mtype: &str, body: &str) -> String {
    use crate::xml::writer::Elem;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = format!(
        "admin-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut v = Vec::with_capacity(128 + body.len());
    let mut m = Elem::new(&mut v, "message")
        .attr("xmlns", crate::xml::ns::CLIENT)
        .attr("from", from)
        .attr("to", to)
        .attr("type", mtype)
        .attr("id", &id);
    m.child("body").text(body).end();
    m.end();
    String::from_utf8(v).unwrap_or_default()
}

/// Bearer check: `Err` is the refusal to send.
fn authorize(admin: &Admin, header: Option<&str>) -> Result<(), (u16, String)> {
    let Some(token) = &admin.token else {
        return Err((
            403,
            super::admin_api::error_json(
                "forbidden",
                "the admin API is off: set admin.token_file (a file holding the token) or AOBA_ADMIN_TOKEN, then send Authorization: Bearer TOKEN",
            ),
        ));
    };
    let given = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("")
        .as_bytes();
    // Constant time in the token's length.
    let want = token.as_bytes();
    let mut diff = (given.len() != want.len()) as u8;
    for (i, b) in want.iter().enumerate() {
        diff |= b ^ given.get(i).copied().unwrap_or(0);
    }
    if diff == 0 {
        Ok(())
    } else {
        Err((
            401,
            super::admin_api::error_json(
                "not-authorized",
                "a valid Authorization: Bearer token is required",
            ),
        ))
    }
}

fn serve(mut c: TcpStream, admin: &mut Admin) {
    // Read now: a reload served by this very request may change them.
    let max_request_bytes = admin.cfg.max_request_bytes;
    let timeout = Duration::from_millis(admin.cfg.io_timeout_ms);
    let _ = c.set_read_timeout(Some(timeout));
    let _ = c.set_write_timeout(Some(timeout));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let (method, path, auth, body_start, length, forwarded) = loop {
        let n = match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(at)) => {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .map(str::to_string)
                };
                let length = header("content-length")
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (
                    req.method.unwrap_or("").to_string(),
                    req.path.unwrap_or("").to_string(),
                    header("authorization"),
                    at,
                    length,
                    header(super::admin_forward::FORWARDED),
                );
            }
            Ok(httparse::Status::Partial) if buf.len() < max_request_bytes => continue,
            _ => {
                respond(&mut c, 400, "text/plain", "bad request\n");
                return;
            }
        }
    };
    // Saturating: a Content-Length near usize::MAX must not wrap around.
    let end = body_start.saturating_add(length);
    if end > max_request_bytes {
        respond(&mut c, 400, "text/plain", "request too large\n");
        return;
    }
    while buf.len() < end {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = &buf[body_start..end];
    let (route, query) = path.split_once('?').unwrap_or((&path, ""));
    match (method.as_str(), route) {
        ("GET", "/metrics") => {
            let per_shard = query.split('&').any(|q| q == "per_shard=1");
            let text = crate::metrics::render(per_shard, &*admin.depths);
            respond(
                &mut c,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &text,
            );
        }
        ("GET", "/health") => respond(&mut c, 200, "application/json", "{\"status\":\"ok\"}"),
        (_, "/metrics" | "/health") => respond(&mut c, 405, "text/plain", "method not allowed\n"),
        (_, r) if r.starts_with("/api/") => {
            let (status, json) = match authorize(admin, auth.as_deref()) {
                Err(e) => e,
                // It changes the admin listener's own state (token, bounds).
                Ok(()) if (method.as_str(), r) == ("POST", "/api/reload") => {
                    super::admin_reload::reload(admin)
                }
                Ok(()) => admin.api.call(
                    &method,
                    r,
                    query,
                    body,
                    auth.as_deref(),
                    forwarded.as_deref(),
                ),
            };
            respond(&mut c, status, "application/json", &json);
        }
        _ => respond(&mut c, 404, "text/plain", "not found\n"),
    }
}

fn respond(c: &mut TcpStream, status: u16, ctype: &str, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = c.write_all(head.as_bytes());
    let _ = c.write_all(body.as_bytes());
    // A lingering close: what the client still sends is read and dropped (bounded), so the
    // answer is not lost to a reset when the request was refused before its end.
    let _ = c.shutdown(std::net::Shutdown::Write);
    let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 4096];
    for _ in 0..64 {
        match c.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}
