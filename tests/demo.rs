//! The demo page (`GET /demo`) in a real browser: each browser test starts its own server
//! and runs one scenario of `tests/demo/demo.mjs` with Node.js, which drives Debian's
//! `chromium` through `playwright-core` (from `tests/demo`'s package-lock.json; no browser
//! is downloaded). Two browser contexts log in as two users and chat, see each other's
//! receipts and share a room, with the XML page, the XMPP-FTW page, and one of each; the
//! paste-a-token path has its own scenario. The scenario's exit status is the verdict; its
//! output is printed either way. Needs `node` and `npm`; installs `chromium` with apt-get
//! when it is missing. The plain HTTP tests (the page's headers, the vendored Socket.IO
//! bundle, `demo.enabled = false`, HTTPS) need neither.

mod common;
use common::tls::{TestCa, connect, read_to_end, send};
use common::tools::{node_verdict, wait_bounded};
use common::*;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Backstop on one node run (each wait in the scenario is bounded by itself).
const NODE_BOUND: Duration = Duration::from_secs(240);

const CHROMIUM: &str = "/usr/bin/chromium";

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("demo")
}

/// Debian's chromium, installed with apt-get if it is missing.
fn chromium_ready() -> &'static Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY.get_or_init(|| {
        if common::tools::apt_ensure("chromium", || Path::new(CHROMIUM).exists()) {
            Ok(())
        } else {
            Err(format!(
                "{CHROMIUM} is missing and apt-get could not install chromium"
            ))
        }
    })
}

/// `npm ci` once per test binary, unless node_modules is already at least as new as the lock.
fn npm_ready() -> &'static Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY.get_or_init(|| common::tools::npm_ci(&demo_dir(), &["playwright-core"]))
}

/// Starts a server and runs `node demo.mjs <name>` against it; prints the scenario's
/// output, and panics with it and the server log's tail unless it exits 0.
fn scenario(name: &str) {
    // One browser at a time: the machine has two cores.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = chromium_ready() {
        panic!("{e}");
    }
    if let Err(e) = npm_ready() {
        panic!("{e}");
    }
    let s = Server::start_with("", 2);
    let (a, b) = s.users_apart();
    let tokens = json!({
        a.as_str(): s.token(&a),
        b.as_str(): s.token(&b),
        "bad": token_claims(
            json!({"sub": a, "exp": now() + 3600}),
            "not-the-server-secret-0123456789"
        ),
    });
    let mut child = Command::new("node")
        .arg("demo.mjs")
        .arg(name)
        .current_dir(demo_dir())
        .env("AOBA_PORT", s.port.to_string())
        .env("AOBA_DOMAIN", DOMAIN)
        .env("AOBA_MUC", format!("conference.{DOMAIN}"))
        .env("AOBA_TOKENS", tokens.to_string())
        .env("AOBA_USERS", format!("{a},{b}"))
        .env("AOBA_CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (Node.js must be on PATH): {e}"));
    let (status, out, err) = wait_bounded(&mut child, NODE_BOUND);
    if let Err(e) = node_verdict(status, NODE_BOUND, &out, &err, &s.log()) {
        panic!("demo scenario {name} failed: {e}");
    }
    println!("--- node demo.mjs {name} ---\n{out}{err}");
}

/// Two users on the XML page (`/demo`, XMPP over `/xmpp`).
#[test]
fn browser_xml_with_xml() {
    scenario("xml");
}

/// Two users on the XMPP-FTW page (`/demo?transport=ftw`, Socket.IO).
#[test]
fn browser_ftw_with_ftw() {
    scenario("ftw");
}

/// One user on each page: they chat, see each other's receipts and share a room.
#[test]
fn browser_xml_with_ftw() {
    scenario("mixed");
}

/// No cookie: the page asks for a token; a bad one is refused, a good one is kept as the
/// cookie (both pages).
#[test]
fn browser_paste_a_token() {
    scenario("paste");
}

/// The header and body of an HTTP response.
fn split(resp: &str) -> (&str, &str) {
    resp.split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {resp:?}"))
}

/// The socket.io-client version in tests/ftw's lockfile (what the FTW tests run).
fn socket_io_client_version() -> String {
    let lock = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ftw/package-lock.json"),
    )
    .unwrap();
    let lock: serde_json::Value = serde_json::from_str(&lock).unwrap();
    lock["packages"]["node_modules/socket.io-client"]["version"]
        .as_str()
        .expect("socket.io-client in tests/ftw/package-lock.json")
        .to_string()
}

/// The page and the Socket.IO bundle, with their headers; the bundle is the vendored
/// socket.io-client of the version the FTW tests use, license header included. It comes
/// whole although it is larger than the configured outbound bound.
#[tokio::test]
async fn serves_the_page_and_the_socket_io_client() {
    let s = Server::start_with(
        "[server]\ndomain = \"Chat.Example\"\n\
         [limits]\nmax_stanza_bytes = 16384\noutbound_queue_bytes_max = 16384\n",
        1,
    );
    let page = s.http_get("/demo?transport=ftw").await;
    let (head, body) = split(&page);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Content-Security-Policy: default-src 'none';"),
        "{head}"
    );
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    assert!(body.contains("<meta name=\"xmpp-domain\" content=\"chat.example\">"));
    assert!(body.contains("<meta name=\"xmpp-muc\" content=\"conference.chat.example\">"));
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "url(",
        "@import",
    ] {
        assert!(!body.contains(external), "the page loads {external}…");
    }
    let js = s.http_get("/demo/socket.io.min.js").await;
    let (head, body) = split(&js);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/javascript"), "{head}");
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    let version = socket_io_client_version();
    assert!(
        body.starts_with(&format!(
            "/*!\n * Socket.IO v{version}\n * (c) 2014-2026 Guillermo Rauch\n * Released under the MIT License.\n */\n"
        )),
        "the bundle is not socket.io-client {version}: {}",
        &body[..body.len().min(200)]
    );
    assert!(
        body.len() > 40_000,
        "the whole bundle: {} bytes",
        body.len()
    );
    for path in ["/demo/socket.io.min.js.map", "/demo/other", "/demos"] {
        let r = s.http_get(path).await;
        assert!(r.starts_with("HTTP/1.1 404 "), "{path}: {r}");
    }
    let post = s.http_request("POST", "/demo").await;
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
}

/// `demo.enabled = false`: both paths answer 404; the rest is served as before.
#[tokio::test]
async fn disabled_demo_is_not_found() {
    let s = Server::start_with("[demo]\nenabled = false\n", 1);
    for path in ["/demo", "/demo?transport=ftw", "/demo/socket.io.min.js"] {
        let r = s.http_get(path).await;
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{path}: {r}");
    }
    assert!(s.http_get("/health").await.starts_with("HTTP/1.1 200 "));
    let mut c = Client::login(&s, "alice", None).await;
    c.ping_server("p1").await;
}

/// The HTTPS listener serves the same page; a response larger than a TLS record (the
/// Socket.IO bundle) arrives whole.
#[test]
fn served_over_https() {
    let ca = TestCa::new();
    let s = Server::start_args(
        &ca.config(),
        1,
        &["--jwt-secret", SECRET, "--listen-tls", "127.0.0.1:0"],
    );
    let port = s.tls_port.expect("an HTTPS listener");
    let get = |path: &str| {
        let mut t = connect(&ca.client(&[b"http/1.1"]), port).unwrap();
        send(
            &mut t,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        );
        read_to_end(&mut t)
    };
    let page = get("/demo");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.ends_with("</html>\n"), "the whole page");
    let js = get("/demo/socket.io.min.js");
    let (head, body) = split(&js);
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    assert!(body.len() > 40_000, "{} bytes", body.len());
}
