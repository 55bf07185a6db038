//! What the HTTP listener serves: the paths (`/xmpp` and its aliases for RFC 7395, the
//! XMPP-FTW endpoints, `/health`, the demo page), the `/health` answer, and the JWT check
//! of the `auth_token` cookie during the upgrade.

use super::Shard;
use crate::ftw::FtwConfig;
use crate::ftw::transport::Proto;
use crate::net::http::{Request, Route, parse_request, respond, simple, upgrade_response};

/// The RFC 7395 endpoint and its aliases.
pub const WS_PATHS: [&str; 3] = ["/xmpp", "/ws/xmpp", "/ws"];

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    /// The demo page or its Socket.IO client (`demo.enabled`).
    Demo(super::demo::Asset),
    /// XMPP over WebSocket (RFC 7395).
    Xmpp,
    /// An XMPP-FTW JSON session in this framing.
    Ftw(Proto),
}

/// The paths served, for `net::http::parse_request`.
pub fn route(ftw: &FtwConfig, path: &str, query: &str) -> Route<Endpoint> {
    if path == "/health" {
        return Route::Get(Endpoint::Health);
    }
    if let Some(a) = super::demo::asset(path) {
        return Route::Get(Endpoint::Demo(a));
    }
    match crate::ftw::transport::endpoint(ftw, path, query) {
        Err(resp) => return Route::Respond(resp),
        Ok(Some(p)) => {
            return Route::Ws {
                to: Endpoint::Ftw(p),
                protocol: None,
            };
        }
        Ok(None) => {}
    }
    if WS_PATHS.contains(&path) {
        Route::Ws {
            to: Endpoint::Xmpp,
            protocol: Some("xmpp"),
        }
    } else {
        Route::NotFound
    }
}

pub enum Outcome {
    /// Send the 101 response; `user` is the localpart named by a valid cookie, if any.
    Upgrade {
        response: Vec<u8>,
        user: Option<String>,
        /// An XMPP-FTW JSON session in this framing; `None`: XMPP (RFC 7395).
        ftw: Option<Proto>,
    },
    /// Send the response and close.
    Respond(Vec<u8>),
}

/// Parses a request from `buf`, then answers `/health` and the demo page (404 unless
/// `demo.enabled`) and verifies the `auth_token` cookie of an upgrade with the shard.
/// `Ok(None)`: incomplete. On success also returns the number of bytes the request took
/// (anything after it is WebSocket data).
pub fn handle(shard: &Shard, buf: &[u8]) -> Result<Option<(Outcome, usize)>, Vec<u8>> {
    let config = &shard.config;
    let Some((req, n)) = parse_request(buf, |p, q| match route(&config.ftw, p, q) {
        Route::Get(Endpoint::Demo(_)) if !config.demo.enabled => Route::NotFound,
        r => r,
    })?
    else {
        return Ok(None);
    };
    let outcome = match req {
        Request::Respond(resp) => Outcome::Respond(resp),
        Request::Get(Endpoint::Demo(a)) => {
            Outcome::Respond(super::demo::response(a, shard.domain(), shard.muc.domain()))
        }
        Request::Get(_) => {
            // In a cluster: this node's number, the epoch and the members this shard
            // routes by.
            let cluster = match shard.core.view.borrow().as_ref() {
                Some(v) => format!(
                    ",\"cluster\":{{\"node\":{},\"epoch\":{},\"members\":{}}}",
                    v.me,
                    v.epoch,
                    v.nodes.len()
                ),
                None => String::new(),
            };
            let body = format!(
                "{{\"status\":\"ok\",\"shards\":{},\"storage_backlog\":{},\"connections\":{}{cluster}}}\n",
                shard.shared.shards,
                shard.shared.storage_backlog(),
                shard.shared.total_connections()
            );
            Outcome::Respond(respond("200 OK", "application/json", &body))
        }
        Request::Upgrade {
            key,
            token,
            to,
            protocol,
        } => {
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
                response: upgrade_response(key, protocol),
                user,
                ftw: match to {
                    Endpoint::Ftw(p) => Some(p),
                    _ => None,
                },
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

    const UPGRADE: &str = "GET /xmpp HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n";

    fn parse(req: &str) -> Request<'_, Endpoint> {
        let cfg = FtwConfig::default();
        parse_request(req.as_bytes(), |p, q| route(&cfg, p, q))
            .unwrap()
            .unwrap()
            .0
    }

    fn status(r: &Request<'_, Endpoint>) -> String {
        match r {
            Request::Respond(v) => String::from_utf8_lossy(&v[9..12]).into_owned(),
            other => panic!("not a response: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse("GET /health HTTP/1.1\r\n\r\n"),
            Request::Get(Endpoint::Health)
        );
        assert_eq!(status(&parse("GET /nope HTTP/1.1\r\n\r\n")), "404");
        assert_eq!(
            parse("GET /demo?transport=ftw HTTP/1.1\r\n\r\n"),
            Request::Get(Endpoint::Demo(super::super::demo::Asset::Page))
        );
        assert_eq!(status(&parse("GET /demo/nope.js HTTP/1.1\r\n\r\n")), "404");
        for p in WS_PATHS {
            let req = UPGRADE.replace("/xmpp", p);
            let r = parse(&req);
            assert!(matches!(
                r,
                Request::Upgrade {
                    to: Endpoint::Xmpp,
                    protocol: Some("xmpp"),
                    ..
                }
            ));
        }
    }

    #[test]
    fn ftw_paths() {
        let sio = UPGRADE
            .replace("/xmpp", "/socket.io/?EIO=4&transport=websocket")
            .replace("Sec-WebSocket-Protocol: xmpp\r\n", "");
        assert!(matches!(
            parse(&sio),
            Request::Upgrade {
                to: Endpoint::Ftw(Proto::SocketIo),
                protocol: None,
                ..
            }
        ));
        let eio3 = sio.replace("EIO=4", "EIO=3");
        assert_eq!(status(&parse(&eio3)), "400");
        let polling = sio.replace("transport=websocket", "transport=polling");
        assert_eq!(status(&parse(&polling)), "400");
        let primus = UPGRADE.replace("/xmpp", "/ftw");
        assert!(matches!(
            parse(&primus),
            Request::Upgrade {
                to: Endpoint::Ftw(Proto::Primus),
                ..
            }
        ));
    }
}
