//! The demo page (`GET /demo`, `demo.enabled`): one self-contained HTML page, embedded in
//! the binary, that logs in with the `auth_token` cookie and shows presence, 1:1 chat with
//! delivery receipts, a group room and the raw stanzas; `/demo?transport=ftw` runs the same
//! page on the XMPP-FTW JSON events over Socket.IO, with the socket.io-client browser
//! bundle served next to it (vendored unchanged from the npm package `socket.io-client`
//! 4.8.4, `dist/socket.io.min.js`, MIT: `demo/socket.io-client.LICENSE`). No build step, no
//! external resource: the page's CSP allows only this origin.

use crate::net::http::respond_with;
use crate::xml::escape::escape_attr_to_string;

/// What the demo serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// `/demo` (either transport: the page reads its own query).
    Page,
    /// `/demo/socket.io.min.js`.
    SocketIo,
}

const PAGE: &str = include_str!("demo/page.html");
const SOCKET_IO: &str = include_str!("demo/socket.io.min.js");

/// Where the page's `<meta>` tags get the server's domain and its MUC service's.
const DOMAIN_SLOT: &str = "{{AOBA_DOMAIN}}";
const MUC_SLOT: &str = "{{AOBA_MUC}}";

/// Only this origin: inline script and style (the page is one file), scripts and
/// connections (WebSocket, Socket.IO) to the server itself, nothing else.
const HEADERS: &str = "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n\
Content-Security-Policy: default-src 'none'; script-src 'self' 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'\r\n";

/// The asset at `path`, if it is one.
pub fn asset(path: &str) -> Option<Asset> {
    match path {
        "/demo" | "/demo/" => Some(Asset::Page),
        "/demo/socket.io.min.js" => Some(Asset::SocketIo),
        _ => None,
    }
}

/// The whole response for `asset` on a server of `domain` whose MUC service is `muc`.
pub fn response(asset: Asset, domain: &str, muc: &str) -> Vec<u8> {
    match asset {
        Asset::Page => {
            let page = PAGE
                .replace(DOMAIN_SLOT, &escape_attr_to_string(domain))
                .replace(MUC_SLOT, &escape_attr_to_string(muc));
            respond_with(
                "200 OK",
                "text/html; charset=utf-8",
                HEADERS,
                page.as_bytes(),
            )
        }
        Asset::SocketIo => respond_with(
            "200 OK",
            "text/javascript; charset=utf-8",
            HEADERS,
            SOCKET_IO.as_bytes(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_domains_once_filled_in() {
        assert_eq!(PAGE.matches(DOMAIN_SLOT).count(), 1);
        assert_eq!(PAGE.matches(MUC_SLOT).count(), 1);
        let r = String::from_utf8(response(Asset::Page, "chat.example", "rooms.chat.example"));
        let r = r.unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("<meta name=\"xmpp-domain\" content=\"chat.example\">"));
        assert!(r.contains("<meta name=\"xmpp-muc\" content=\"rooms.chat.example\">"));
        assert!(!r.contains("{{"));
        let r = String::from_utf8(response(Asset::Page, "a\"<b>", "m")).unwrap();
        assert!(r.contains("content=\"a&quot;&lt;b&gt;\""), "escaped");
    }

    #[test]
    fn the_bundle_is_the_vendored_file_with_its_license_header() {
        assert!(SOCKET_IO.starts_with("/*!\n * Socket.IO v4.8.4\n"));
        assert!(SOCKET_IO.contains("Released under the MIT License."));
        let r = response(Asset::SocketIo, "x", "y");
        assert!(r.ends_with(SOCKET_IO.as_bytes()));
        let head = String::from_utf8_lossy(&r[..r.len() - SOCKET_IO.len()]);
        assert!(head.contains(&format!("Content-Length: {}\r\n", SOCKET_IO.len())));
        assert!(head.contains("Content-Type: text/javascript"));
    }

    #[test]
    fn paths() {
        assert_eq!(asset("/demo"), Some(Asset::Page));
        assert_eq!(asset("/demo/socket.io.min.js"), Some(Asset::SocketIo));
        assert_eq!(asset("/demo/socket.io.min.js.map"), None);
        assert_eq!(asset("/demos"), None);
    }
}
