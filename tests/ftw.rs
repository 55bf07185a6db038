//! XMPP-FTW (the JSON event API over Socket.IO and /ftw) driven by real browser-side
//! libraries: each test starts its own server and runs one scenario of
//! `tests/ftw/scenarios.mjs` with Node.js (socket.io-client and ws from `tests/ftw`'s
//! package-lock.json). The scenario's exit status is the verdict; on failure its output and
//! the tail of the server log are printed. Needs `node` and `npm` on PATH.

mod common;
use common::tools::{node_verdict, wait_bounded};
use common::*;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Rooms are created unlocked, as an application that manages groups from its backend has them.
const CONFIG: &str = "[muc]\nauto_create_unlocked = true\n";

/// Bounds one node run (the scenario bounds itself at 30 s; this is the backstop).
const NODE_BOUND: Duration = Duration::from_secs(90);

fn ftw_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("ftw")
}

/// `npm ci` once per test binary, unless node_modules is already at least as new as the lock.
fn npm_ready() -> &'static Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY.get_or_init(|| common::tools::npm_ci(&ftw_dir(), &["socket.io-client", "ws"]))
}

/// Starts a server and runs `node scenarios.mjs <name>` against it; panics with the
/// scenario's output and the server log's tail unless it exits 0.
fn scenario(name: &str) {
    scenario_with(name, "");
}

/// A scenario against a server with `extra` appended to the shared configuration.
fn scenario_with(name: &str, extra: &str) {
    scenario_config(name, &format!("{CONFIG}{extra}"));
}

/// A scenario against a server with rooms created locked, as XEP-0045 §10.1 has them (the
/// default, without the shared configuration's `auto_create_unlocked`).
fn scenario_locked_rooms(name: &str) {
    scenario_config(name, "");
}

/// A scenario against a server with configuration `config` (TOML).
fn scenario_config(name: &str, config: &str) {
    if let Err(e) = npm_ready() {
        panic!("{e}");
    }
    let s = Server::start_with(config, 2);
    let (a, b) = s.users_apart();
    let mut tokens = serde_json::Map::new();
    for u in [a.as_str(), b.as_str(), "carol", "dave"] {
        tokens.insert(u.to_string(), json!(s.token(u)));
    }
    tokens.insert(
        "bad".into(),
        json!(token_claims(
            json!({"sub": a, "exp": now() + 3600}),
            "not-the-server-secret-0123456789"
        )),
    );
    let mut child = Command::new("node")
        .arg("scenarios.mjs")
        .arg(name)
        .current_dir(ftw_dir())
        .env("AOBA_PORT", s.port.to_string())
        .env("AOBA_DOMAIN", DOMAIN)
        .env("AOBA_TOKENS", serde_json::Value::Object(tokens).to_string())
        .env("AOBA_APART", format!("{a},{b}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (Node.js must be on PATH): {e}"));
    let (status, out, err) = wait_bounded(&mut child, NODE_BOUND);
    if let Err(e) = node_verdict(status, NODE_BOUND, &out, &err, &s.log()) {
        panic!("FTW scenario {name} failed: {e}");
    }
}

#[test]
fn engine_io() {
    scenario("engine_io");
}

#[test]
fn login_cookie() {
    scenario("login_cookie");
}

#[test]
fn login_password() {
    scenario("login_password");
}

#[test]
fn bad_cookie() {
    scenario("bad_cookie");
}

#[test]
fn not_connected() {
    scenario("not_connected");
}

#[test]
fn polling_refused() {
    scenario("polling_refused");
}

#[test]
fn primus() {
    scenario("primus");
}

#[test]
fn chat_with_xml() {
    scenario("chat_with_xml");
}

#[test]
fn receipts() {
    scenario("receipts");
}

#[test]
fn chat_state_and_correction() {
    scenario("chat_state_and_correction");
}

#[test]
fn presence() {
    scenario("presence");
}

#[test]
fn roster() {
    scenario("roster");
}

#[test]
fn muc() {
    scenario("muc");
}

#[test]
fn muc_invite_and_errors() {
    scenario("muc_invite_and_errors");
}

#[test]
fn muc_nick_change() {
    scenario("muc_nick_change");
}

#[test]
fn muc_create() {
    scenario_locked_rooms("muc_create");
}

#[test]
fn muc_create_unlocked() {
    scenario("muc_create_unlocked");
}

#[test]
fn muc_register() {
    scenario("muc_register");
}

#[test]
fn muc_voice_and_roles() {
    scenario("muc_voice_and_roles");
}

#[test]
fn muc_room_config() {
    scenario("muc_room_config");
}

#[test]
fn presence_error() {
    scenario_with("presence_error", "[limits]\nmax_directed_presence = 1\n");
}

#[test]
fn disco() {
    scenario("disco");
}

/// The room directory in pages of two (XEP-0059 through `xmpp.discover.items`'s `rsm`).
#[test]
fn disco_rsm() {
    // Appended to CONFIG, whose last table is [muc].
    scenario_with("disco_rsm", "directory_page_max = 2\n");
}

#[test]
fn ping() {
    scenario("ping");
}

#[test]
fn ping_pong() {
    scenario_with("ping_pong", "[ftw]\nmax_pending_incoming_iqs = 2\n");
}

#[test]
fn discover_client() {
    scenario("discover_client");
}

#[test]
fn incoming_iq_timeout() {
    scenario_with(
        "incoming_iq_timeout",
        "[ftw]\nincoming_iq_timeout_ms = 200\n",
    );
}

#[test]
fn caps() {
    scenario("caps");
}

#[test]
fn xhtml() {
    scenario("xhtml");
}

#[test]
fn not_allowed() {
    scenario("not_allowed");
}

#[test]
fn mam() {
    scenario("mam");
}

#[test]
fn client_errors() {
    scenario("client_errors");
}

#[test]
fn malformed_frame() {
    scenario("malformed_frame");
}
