//! The admin listener (`admin.listen`, a private port): `GET /metrics` in the Prometheus
//! text format (`?per_shard=1`: a series per shard instead of the sums). One thread,
//! blocking I/O, one request per connection: it serves scrapes and operators, never the
//! stanza path.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Serves `listener` on its own thread until the process ends.
pub fn start(
    listener: TcpListener,
    cfg: crate::config::AdminConfig,
    depths: Arc<crate::metrics::Depths>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            for c in listener.incoming() {
                match c {
                    Ok(c) => serve(c, &cfg, &*depths),
                    Err(e) => tracing::warn!(error = %e, "admin: accept"),
                }
            }
        })
        .map(|_| ())
}

fn serve(mut c: TcpStream, cfg: &crate::config::AdminConfig, depths: &crate::metrics::Depths) {
    let timeout = Duration::from_millis(cfg.io_timeout_ms);
    let _ = c.set_read_timeout(Some(timeout));
    let _ = c.set_write_timeout(Some(timeout));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let (method, path) = loop {
        let n = match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    req.method.unwrap_or("").to_string(),
                    req.path.unwrap_or("").to_string(),
                );
            }
            Ok(httparse::Status::Partial) if buf.len() < cfg.max_request_bytes => continue,
            _ => {
                respond(&mut c, 400, "text/plain", "bad request\n");
                return;
            }
        }
    };
    let (route, query) = path.split_once('?').unwrap_or((&path, ""));
    match (method.as_str(), route) {
        ("GET", "/metrics") => {
            let per_shard = query.split('&').any(|q| q == "per_shard=1");
            let body = crate::metrics::render(per_shard, depths);
            respond(
                &mut c,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            );
        }
        ("GET", "/health") => respond(&mut c, 200, "application/json", "{\"status\":\"ok\"}"),
        (_, "/metrics" | "/health") => respond(&mut c, 405, "text/plain", "method not allowed\n"),
        _ => respond(&mut c, 404, "text/plain", "not found\n"),
    }
}

fn respond(c: &mut TcpStream, status: u16, ctype: &str, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
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
