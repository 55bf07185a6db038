//! The HTTP/1.1 upgrade request: `parse_request` with the server's routes (httparse, path, method, the WebSocket
//! and XMPP headers, the `auth_token` cookie), then the 101 response for an upgrade.
#![no_main]

use aoba::ftw::FtwConfig;
use aoba::net::http::{Request, parse_request, upgrade_response};
use aoba::server::http::{Endpoint, route};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn configs() -> &'static [FtwConfig; 2] {
    static C: OnceLock<[FtwConfig; 2]> = OnceLock::new();
    C.get_or_init(|| {
        let on = FtwConfig::default();
        let off = FtwConfig {
            enabled: false,
            ..FtwConfig::default()
        };
        [on, off]
    })
}

fuzz_target!(|data: &[u8]| {
    for cfg in configs() {
        match parse_request(data, |p, q| route(cfg, p, q)) {
            Ok(Some((req, n))) => {
                assert!(n <= data.len());
                if let Request::Upgrade {
                    key,
                    token,
                    to,
                    protocol,
                } = req
                {
                    assert!(!key.is_empty());
                    assert!(token.is_none_or(|t| !t.is_empty()));
                    assert!(matches!(to, Endpoint::Xmpp) || cfg.enabled);
                    assert_eq!(protocol.is_some(), matches!(to, Endpoint::Xmpp));
                    let resp = upgrade_response(key, protocol);
                    assert!(resp.starts_with(b"HTTP/1.1 101 "));
                    assert!(resp.ends_with(b"\r\n\r\n"));
                }
            }
            Ok(None) => {}
            Err(resp) => assert!(resp.starts_with(b"HTTP/1.1 4")),
        }
    }
});
