//! The HTTP/1.1 upgrade request: `parse_request` (httparse, path, method, the WebSocket
//! and XMPP headers, the `auth_token` cookie), then the 101 response for an upgrade.
#![no_main]

use aoba::ftw::FtwConfig;
use aoba::net::http::{Request, parse_request, upgrade_response};
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
        match parse_request(data, cfg) {
            Ok(Some((req, n))) => {
                assert!(n <= data.len());
                if let Request::Upgrade { key, token, ftw } = req {
                    assert!(!key.is_empty());
                    assert!(token.is_none_or(|t| !t.is_empty()));
                    assert!(ftw.is_none() || cfg.enabled);
                    let resp = upgrade_response(key, ftw);
                    assert!(resp.starts_with(b"HTTP/1.1 101 "));
                    assert!(resp.ends_with(b"\r\n\r\n"));
                }
            }
            Ok(None) => {}
            Err(resp) => assert!(resp.starts_with(b"HTTP/1.1 4")),
        }
    }
});
