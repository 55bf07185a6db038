//! HTTP/1.1 on a fresh connection: one request, parsed with httparse, answered at once or
//! upgraded to WebSocket (RFC 6455). Which paths exist is decided by the layer above (a
//! `route` function); this file knows methods, headers, the upgrade handshake and the
//! `auth_token` cookie, nothing of what is spoken after the upgrade.

/// Where a path goes (the layer above decides).
pub enum Route<T> {
    /// Not served here: 404.
    NotFound,
    /// Answer at once (e.g. an endpoint's own error) and close.
    Respond(Vec<u8>),
    /// `GET` only, answered by the layer above without an upgrade (e.g. `/health`).
    Get(T),
    /// A WebSocket endpoint. `protocol`: the subprotocol the client must offer and the
    /// 101 response names, if any.
    Ws {
        to: T,
        protocol: Option<&'static str>,
    },
}

/// What a complete request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a, T> {
    /// A `GET` the route answers itself.
    Get(T),
    /// Send this response and close.
    Respond(Vec<u8>),
    /// A well-formed WebSocket upgrade to `to`; `token` is the non-empty `auth_token`
    /// cookie, still to be verified; `protocol` the subprotocol agreed on.
    Upgrade {
        key: &'a str,
        token: Option<&'a str>,
        to: T,
        protocol: Option<&'static str>,
    },
}

/// A short plain-text response that closes the connection.
pub fn simple(status: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A response with a body of `content_type` that closes the connection.
pub fn respond(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    respond_with(status, content_type, "", body.as_bytes())
}

/// `respond` with `extra_headers` (each ending in CRLF) and a body of any bytes.
pub fn respond_with(status: &str, content_type: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
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

/// Parses and checks a request from `buf` (httparse, method, upgrade headers, cookie);
/// `route` says where its path (and query) goes. Touches no shard, so it can be fuzzed.
/// `Ok(None)`: incomplete. On success also returns the number of bytes the request took
/// (anything after it is WebSocket data). `Err`: the response to send before closing.
pub fn parse_request<'a, T>(
    buf: &'a [u8],
    route: impl FnOnce(&str, &str) -> Route<T>,
) -> Result<Option<(Request<'a, T>, usize)>, Vec<u8>> {
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
    let query = full_path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let headers = req.headers;
    let (to, protocol) = match route(path, query) {
        Route::NotFound => {
            return Ok(Some((
                Request::Respond(simple("404 Not Found", "", "not found\n")),
                n,
            )));
        }
        Route::Respond(r) => return Ok(Some((Request::Respond(r), n))),
        Route::Get(to) => {
            if method != "GET" {
                return Ok(Some((
                    Request::Respond(simple("405 Method Not Allowed", "Allow: GET\r\n", "")),
                    n,
                )));
            }
            return Ok(Some((Request::Get(to), n)));
        }
        Route::Ws { to, protocol } => (to, protocol),
    };
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
    if let Some(p) = protocol {
        let offered = headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .any(|v| v.split(',').any(|t| t.trim() == p));
        if !offered {
            return bad(&format!("Sec-WebSocket-Protocol must include {p}\n"));
        }
    }
    let token = cookie(headers, "auth_token").filter(|t| !t.is_empty());
    Ok(Some((
        Request::Upgrade {
            key,
            token,
            to,
            protocol,
        },
        n,
    )))
}

/// The 101 response accepting the upgrade with `key`, naming `protocol` if any.
pub fn upgrade_response(key: &str, protocol: Option<&str>) -> Vec<u8> {
    let protocol = protocol
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{protocol}\r\n",
        super::websocket::accept_key(key)
    )
    .into_bytes()
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

    const UPGRADE: &str = "GET /xmpp HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nCookie: a=b; auth_token=\"tok\"\r\n\r\n";

    #[derive(Debug, PartialEq, Eq)]
    enum To {
        Health,
        Xmpp,
        Plain,
    }

    fn route(path: &str, query: &str) -> Route<To> {
        match path {
            "/health" => Route::Get(To::Health),
            "/xmpp" => Route::Ws {
                to: To::Xmpp,
                protocol: Some("xmpp"),
            },
            "/plain" if query == "ok=1" => Route::Ws {
                to: To::Plain,
                protocol: None,
            },
            "/plain" => Route::Respond(simple("418 I'm a teapot", "", "")),
            _ => Route::NotFound,
        }
    }

    fn parse(req: &str) -> Result<Option<(Request<'_, To>, usize)>, Vec<u8>> {
        parse_request(req.as_bytes(), route)
    }

    fn status(r: &Request<'_, To>) -> String {
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
                to: To::Xmpp,
                protocol: Some("xmpp"),
            }
        );
        let resp =
            String::from_utf8(upgrade_response("dGhlIHNhbXBsZSBub25jZQ==", Some("xmpp"))).unwrap();
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
        assert_eq!(r, Request::Get(To::Health));
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
    fn the_route_decides_on_path_and_query() {
        let plain = UPGRADE
            .replace("/xmpp", "/plain?ok=1")
            .replace("Sec-WebSocket-Protocol: xmpp\r\n", "");
        let (r, _) = parse(&plain).unwrap().unwrap();
        assert!(matches!(
            r,
            Request::Upgrade {
                to: To::Plain,
                protocol: None,
                ..
            }
        ));
        let refused = plain.replace("ok=1", "ok=2");
        let (r, _) = parse(&refused).unwrap().unwrap();
        assert_eq!(status(&r), "418");
        assert!(
            !String::from_utf8(upgrade_response("k", None))
                .unwrap()
                .contains("Sec-WebSocket-Protocol")
        );
    }
}
