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

/// What a complete request asks for, decided from its bytes alone (no shard state).
#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `GET /health`: the answer needs the shard's counters.
    Health,
    /// Send this response and close.
    Respond(Vec<u8>),
    /// A well-formed WebSocket upgrade; `token` is the non-empty `auth_token` cookie, still
    /// to be verified.
    Upgrade {
        key: &'a str,
        token: Option<&'a str>,
        ftw: Option<crate::ftw::transport::Proto>,
    },
}

/// Parses and checks a request from `buf` (httparse, path, method, upgrade headers,
/// cookie) without touching a shard, so it can be fuzzed. `Ok(None)`: incomplete. On
/// success also returns the number of bytes the request took (anything after it is
/// WebSocket data). `Err`: the response to send before closing.
pub fn parse_request<'a>(
    buf: &'a [u8],
    ftw_cfg: &crate::ftw::FtwConfig,
) -> Result<Option<(Request<'a>, usize)>, Vec<u8>> {
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
                Request::Respond(simple("405 Method Not Allowed", "Allow: GET\r\n", "")),
                n,
            )));
        }
        return Ok(Some((Request::Health, n)));
    }
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
            Ok(Some((Request::Respond(resp.into_bytes()), n)))
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
            Request::Respond(simple("404 Not Found", "", "not found\n")),
            n,
        )));
    }
    if method != "GET" {
        return Ok(Some((
            Request::Respond(simple("405 Method Not Allowed", "Allow: GET\r\n", "")),
            n,
        )));
    }
    let bad = |why: &str| {
        Ok(Some((
            Request::Respond(simple("400 Bad Request", "", why)),
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
            Request::Respond(simple(
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
    let token = cookie(headers, "auth_token").filter(|t| !t.is_empty());
    Ok(Some((Request::Upgrade { key, token, ftw }, n)))
}

/// The 101 response accepting the upgrade with `key`.
pub fn upgrade_response(key: &str, ftw: Option<crate::ftw::transport::Proto>) -> Vec<u8> {
    let protocol = if ftw.is_none() {
        "Sec-WebSocket-Protocol: xmpp\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{protocol}\r\n",
        super::websocket::accept_key(key)
    )
    .into_bytes()
}

/// Parses a request from `buf` ([`parse_request`]), then answers `/health` and verifies
/// the `auth_token` cookie of an upgrade with the shard. `Ok(None)`: incomplete. On success
/// also returns the number of bytes the request took (anything after it is WebSocket data).
pub fn handle(shard: &Shard, buf: &[u8]) -> Result<Option<(Outcome, usize)>, Vec<u8>> {
    let Some((req, n)) = parse_request(buf, &shard.cfg().ftw)? else {
        return Ok(None);
    };
    let outcome = match req {
        Request::Respond(resp) => Outcome::Respond(resp),
        Request::Health => {
            let body = format!(
                "{{\"status\":\"ok\",\"shards\":{},\"storage_backlog\":{},\"connections\":{}}}\n",
                shard.shared.shards,
                shard.shared.storage_backlog(),
                shard.shared.total_connections()
            );
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            Outcome::Respond(resp.into_bytes())
        }
        Request::Upgrade { key, token, ftw } => {
            let user = match token {
                None => None,
                Some(token) => match shard.check_token(token) {
                    Ok(local) => Some(local),
                    Err(crate::xmpp::jwt::TokenError::Busy) => {
                        tracing::info!(shard = shard.id, "upgrade deferred: signature checks busy");
                        return Ok(Some((
                            Outcome::Respond(simple(
                                "503 Service Unavailable",
                                "Retry-After: 1\r\n",
                                "too many logins at once: retry\n",
                            )),
                            n,
                        )));
                    }
                    Err(crate::xmpp::jwt::TokenError::Bad(e)) => {
                        tracing::info!(shard = shard.id, error = %e, "upgrade refused: bad auth_token cookie");
                        return Ok(Some((
                            Outcome::Respond(simple(
                                "401 Unauthorized",
                                "",
                                "invalid auth_token\n",
                            )),
                            n,
                        )));
                    }
                },
            };
            Outcome::Upgrade {
                response: upgrade_response(key, ftw),
                user,
                ftw,
            }
        }
    };
    Ok(Some((outcome, n)))
}

/// The response for a request that grew past the limit without ending.
pub fn too_large() -> Vec<u8> {
    simple(
        "431 Request Header Fields Too Large",
        "",
        "request too large\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ftw::FtwConfig;
    use crate::ftw::transport::Proto;

    const UPGRADE: &str = "GET /xmpp HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nCookie: a=b; auth_token=\"tok\"\r\n\r\n";

    fn parse(req: &str) -> Result<Option<(Request<'_>, usize)>, Vec<u8>> {
        parse_request(req.as_bytes(), &FtwConfig::default())
    }

    fn status(r: &Request<'_>) -> String {
        match r {
            Request::Respond(v) => String::from_utf8_lossy(&v[9..12]).into_owned(),
            other => panic!("not a response: {other:?}"),
        }
    }

    #[test]
    fn upgrade_with_cookie() {
        let (r, n) = parse(UPGRADE).unwrap().unwrap();
        assert_eq!(n, UPGRADE.len());
        assert_eq!(
            r,
            Request::Upgrade {
                key: "dGhlIHNhbXBsZSBub25jZQ==",
                token: Some("tok"),
                ftw: None
            }
        );
        let resp = String::from_utf8(upgrade_response("dGhlIHNhbXBsZSBub25jZQ==", None)).unwrap();
        assert!(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(resp.ends_with("Sec-WebSocket-Protocol: xmpp\r\n\r\n"));
    }

    #[test]
    fn partial_and_trailing_data() {
        for cut in [0, 5, UPGRADE.len() - 1] {
            assert_eq!(parse(&UPGRADE[..cut]).unwrap(), None, "cut={cut}");
        }
        let more = format!("{UPGRADE}\u{81}\u{80}");
        assert_eq!(parse(&more).unwrap().unwrap().1, UPGRADE.len());
    }

    #[test]
    fn refusals() {
        assert!(parse("\0\0\r\n\r\n").is_err());
        let (r, _) = parse("GET /health HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(r, Request::Health);
        let (r, _) = parse("POST /health HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(status(&r), "405");
        let (r, _) = parse("GET /nope HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(status(&r), "404");
        let (r, _) = parse("GET /xmpp HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(status(&r), "400");
        let v12 = UPGRADE.replace("Version: 13", "Version: 12");
        let (r, _) = parse(&v12).unwrap().unwrap();
        assert_eq!(status(&r), "426");
        let no_proto = UPGRADE.replace("Protocol: xmpp", "Protocol: chat");
        let (r, _) = parse(&no_proto).unwrap().unwrap();
        assert_eq!(status(&r), "400");
        let many = format!("GET /xmpp HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(40));
        assert!(parse(&many).is_err());
    }

    #[test]
    fn ftw_paths() {
        let sio = UPGRADE
            .replace("/xmpp", "/socket.io/?EIO=4&transport=websocket")
            .replace("Sec-WebSocket-Protocol: xmpp\r\n", "");
        let (r, _) = parse(&sio).unwrap().unwrap();
        assert!(matches!(
            r,
            Request::Upgrade {
                ftw: Some(Proto::SocketIo),
                ..
            }
        ));
        let eio3 = sio.replace("EIO=4", "EIO=3");
        let (r, _) = parse(&eio3).unwrap().unwrap();
        assert_eq!(status(&r), "400");
        let primus = UPGRADE.replace("/xmpp", "/ftw");
        let (r, _) = parse(&primus).unwrap().unwrap();
        assert!(matches!(
            r,
            Request::Upgrade {
                ftw: Some(Proto::Primus),
                ..
            }
        ));
    }
}
