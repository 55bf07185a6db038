//! Admin calls between the nodes of a cluster (issue 14): a call for a user or room homed
//! on another node is sent on to that node's admin API (`cluster.admin_url`), with the
//! caller's token and a header that stops it from being sent on again; a user's deletion
//! asks every other node to remove the user's affiliations from its rooms. Plain HTTP/1.1
//! on the admin thread, bounded by `admin.request_timeout_ms`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The header that marks a call another node sent on (its value: that node's name).
pub const FORWARDED: &str = "x-aoba-forwarded";

/// A path segment with everything but unreserved characters and `@` percent-encoded.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `method path_q` on the admin API at `base` (`http://HOST:PORT`): its status and body;
/// 502 `remote-server-not-found` when it cannot be asked, 504 when it does not answer.
pub fn forward(
    base: &str,
    from: &str,
    method: &str,
    path_q: &str,
    auth: Option<&str>,
    body: &[u8],
    timeout: Duration,
) -> (u16, String) {
    let unreachable = |why: &str| {
        let text = format!("the home node's admin API ({base}) could not be asked: {why}");
        (
            502,
            super::admin_api::error_json("remote-server-not-found", &text),
        )
    };
    let Some(host) = base
        .strip_prefix("http://")
        .map(|h| h.split('/').next().unwrap_or(h))
    else {
        return unreachable("cluster.admin_url must be http://HOST:PORT");
    };
    let Some(addr) = host.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return unreachable("no such address");
    };
    let mut c = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(c) => c,
        Err(e) => return unreachable(&e.to_string()),
    };
    let _ = c.set_read_timeout(Some(timeout));
    let _ = c.set_write_timeout(Some(timeout));
    let mut req = format!(
        "{method} {path_q} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{FORWARDED}: {from}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    if let Err(e) = c.write_all(&bytes) {
        return unreachable(&e.to_string());
    }
    let mut buf = Vec::new();
    if let Err(e) = c.read_to_end(&mut buf)
        && buf.is_empty()
    {
        return (
            504,
            super::admin_api::error_json(
                "remote-server-timeout",
                &format!("the home node's admin API ({base}) did not answer: {e}"),
            ),
        );
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&buf) {
        Ok(httparse::Status::Complete(at)) => (
            resp.code.unwrap_or(502),
            String::from_utf8_lossy(&buf[at..]).into_owned(),
        ),
        _ => unreachable("its answer does not parse"),
    }
}
