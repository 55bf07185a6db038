//! The HTTP/1.1 side of a connection: the WebSocket upgrade at `/xmpp` (aliases `/ws/xmpp`
//! and `/ws`) with the JWT check from the `auth_token` cookie, and `GET /health`.

use crate::shard::Shard;

pub const WS_PATHS: [&str; 3] = ["/xmpp", "/ws/xmpp", "/ws"];

pub enum Outcome {
    /// Send the 101 response; `user` is the localpart named by a valid cookie, if any.
    Upgrade {
        response: Vec<u8>,
        user: Option<String>,
        /// An XMPP-FTW JSON session in this framing; `None`: XMPP (RFC 7395).
        ftw: Option<crate::ftw::transport::Proto>,
    },
    /// Send the response and close.
    Respond(Vec<u8>),
}

fn simple(status: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The value of cookie `name` among all `Cookie` headers.
fn cookie<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

fn header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::trim)
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Parses a request from `buf`. `Ok(None)`: incomplete. On success also returns the
/// number of bytes the request took (anything after it is WebSocket data).
pub fn handle(shard: &Shard, buf: &[u8]) -> Result<Option<(Outcome, usize)>, Vec<u8>> {
    let mut hs = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut hs);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(simple(
                "431 Request Header Fields Too Large",
                "",
                "too many headers\n",
            ));
        }
        Err(_) => return Err(simple("400 Bad Request", "", "malformed request\n")),
    };
    let method = req.method.unwrap_or("");
    let full_path = req.path.unwrap_or("");
    let path = full_path.split('?').next().unwrap_or(full_path);
    let headers = req.headers;
    if path == "/health" {
        if method != "GET" {
            return Ok(Some((
                Outcome::Respond(simple("405 Method Not Allowed", "Allow: GET\r\n", "")),
                n,
            )));
        }
        let body = format!(
            "{{\"status\":\"ok\",\"shards\":{},\"connections\":{}}}\n",
            shard.shared.shards,
            shard.shared.total_connections()
        );
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return Ok(Some((Outcome::Respond(resp.into_bytes()), n)));
    }
    let ftw_cfg = &shard.cfg().ftw;
    let ftw = if !ftw_cfg.enabled {
        None
    } else if path == ftw_cfg.socketio_path || path == ftw_cfg.socketio_path.trim_end_matches('/') {
        // Engine.IO v4 over WebSocket only: anything else gets Engine.IO's own error.
        let query = full_path.split_once('?').map(|(_, q)| q).unwrap_or("");
        let param = |k: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v)
        };
        let engine_error = |code: u8, msg: &str| {
            let body = format!("{{\"code\":{code},\"message\":\"{msg}\"}}");
            let resp = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            Ok(Some((Outcome::Respond(resp.into_bytes()), n)))
        };
        if param("EIO") != Some("4") {
            return engine_error(5, "Unsupported protocol version");
        }
        if param("transport") != Some("websocket") {
            return engine_error(0, "Transport unknown");
        }
        Some(crate::ftw::transport::Proto::SocketIo)
    } else if path == ftw_cfg.primus_path {
        Some(crate::ftw::transport::Proto::Primus)
    } else {
        None
    };
    if ftw.is_none() && !WS_PATHS.contains(&path) {
        return Ok(Some((
            Outcome::Respond(simple("404 Not Found", "", "not found\n")),
            n,
        )));
    }
    if method != "GET" {
        return Ok(Some((
            Outcome::Respond(simple("405 Method Not Allowed", "Allow: GET\r\n", "")),
            n,
        )));
    }
    let bad = |why: &str| {
        Ok(Some((
            Outcome::Respond(simple("400 Bad Request", "", why)),
            n,
        )))
    };
    if !has_token(header(headers, "upgrade"), "websocket")
        || !has_token(header(headers, "connection"), "upgrade")
    {
        return bad("expected a WebSocket upgrade (RFC 6455)\n");
    }
    if header(headers, "sec-websocket-version") != Some("13") {
        return Ok(Some((
            Outcome::Respond(simple(
                "426 Upgrade Required",
                "Sec-WebSocket-Version: 13\r\n",
                "WebSocket version 13 required\n",
            )),
            n,
        )));
    }
    let Some(key) = header(headers, "sec-websocket-key").filter(|k| !k.is_empty()) else {
        return bad("missing Sec-WebSocket-Key\n");
    };
    let protocols = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"));
    let xmpp = protocols
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .any(|v| v.split(',').any(|t| t.trim() == "xmpp"));
    if !xmpp && ftw.is_none() {
        return bad("Sec-WebSocket-Protocol must include xmpp (RFC 7395)\n");
    }
    let user = match cookie(headers, "auth_token") {
        None | Some("") => None,
        Some(token) => match shard.shared.verifier.verify(token) {
            Ok(local) => Some(local),
            Err(e) => {
                tracing::info!(shard = shard.id, error = %e, "upgrade refused: bad auth_token cookie");
                return Ok(Some((
                    Outcome::Respond(simple("401 Unauthorized", "", "invalid auth_token\n")),
                    n,
                )));
            }
        },
    };
    let protocol = if ftw.is_none() {
        "Sec-WebSocket-Protocol: xmpp\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{protocol}\r\n",
        super::websocket::accept_key(key)
    );
    Ok(Some((
        Outcome::Upgrade {
            response: response.into_bytes(),
            user,
            ftw,
        },
        n,
    )))
}

/// The response for a request that grew past the limit without ending.
pub fn too_large() -> Vec<u8> {
    simple(
        "431 Request Header Fields Too Large",
        "",
        "request too large\n",
    )
}
