//! The configuration reference is generated (`aoba config-doc`) and each declared range or
//! check refuses a file that exceeds it, naming the key (`aoba check-config`).

use std::path::Path;
use std::process::{Command, Output};

fn aoba(args: &[&str], file: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aoba"));
    c.args(args);
    if let Some(f) = file {
        c.arg(f);
    }
    c.output().expect("run aoba")
}

fn check_config(dir: &Path, toml: &str) -> Output {
    let f = dir.join("aoba.toml");
    std::fs::write(&f, toml).unwrap();
    aoba(&["check-config"], Some(&f))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_reference_is_the_output_of_config_doc() {
    let out = aoba(&["config-doc"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md")).unwrap();
    if out.stdout != page {
        let (got, want) = (text(&out.stdout), text(&page));
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "docs/configuration.md is not the output of `aoba config-doc` (first difference at \
             line {}); run `cargo run -- config-doc > docs/configuration.md`",
            line + 1
        );
    }
}

/// Every new validation, and the ones that became declared ranges: the file is refused
/// and the message names the key.
#[test]
fn each_check_refuses_a_file_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        // server
        (
            "[server]\nshards = 257\n",
            "server.shards must be 0..=256 (got 257)",
        ),
        (
            "[server]\nuring_entries = 0\n",
            "server.uring_entries must be 1..=32768",
        ),
        (
            "[server]\nuring_entries = 40000\n",
            "server.uring_entries must be 1..=32768",
        ),
        (
            "[server]\nmailbox_capacity = 63\n",
            "server.mailbox_capacity must be >= 64",
        ),
        (
            "[server]\nlisten_backlog = 0\n",
            "server.listen_backlog must be >= 1",
        ),
        (
            "[server]\nlisten_backlog = -1\n",
            "server.listen_backlog must be >= 1",
        ),
        ("[server]\ndomain = \"a b\"\n", "server.domain"),
        // c2s: no TCP listener without TLS, unless plaintext is allowed on purpose
        (
            "[c2s]\nlisten = \"127.0.0.1:0\"\n",
            "c2s.listen without TLS",
        ),
        (
            "[c2s]\nlisten_direct_tls = \"127.0.0.1:0\"\n",
            "c2s.listen_direct_tls needs [tls] certificates",
        ),
        (
            "[server]\nlisten_tls = \"127.0.0.1:0\"\n",
            "server.listen_tls needs [tls] certificates",
        ),
        (
            "[tls]\ncertificates = [{ cert_file = \"/x.pem\", key_file = \"/x.key\" }]\n[c2s]\nlisten = \"127.0.0.1:0\"\nrequire_tls = false\n",
            "c2s.require_tls = false",
        ),
        // tls: a file that does not load is named; the handshake timeout has a floor
        (
            "[tls]\ncertificates = [{ cert_file = \"/nonexistent/aoba.pem\", key_file = \"/x.key\" }]\n",
            "/nonexistent/aoba.pem",
        ),
        (
            "[tls]\nhandshake_timeout_ms = 99\n",
            "tls.handshake_timeout_ms must be >= 100",
        ),
        (
            "[admin]\nmax_request_bytes = 1000\n",
            "admin.max_request_bytes must be >= 1024",
        ),
        (
            "[admin]\nio_timeout_ms = 10\n",
            "admin.io_timeout_ms must be >= 100",
        ),
        (
            "[admin]\nrequest_timeout_ms = 10\n",
            "admin.request_timeout_ms must be >= 100",
        ),
        (
            "[admin]\nmax_items_per_request = 0\n",
            "admin.max_items_per_request must be >= 1",
        ),
        ("[log]\nformat = \"xml\"\n", "log.format must be"),
        ("[log]\nlevel = \"info,[{\"\n", "log.level"),
        // auth
        (
            "[auth]\nmax_auth_failures = 0\n",
            "auth.max_auth_failures must be >= 1",
        ),
        (
            "[auth]\nauth_timeout_ms = 0\n",
            "auth.auth_timeout_ms must be >= 100",
        ),
        (
            "[auth]\njwt_signature_checks_per_sec = 0\n",
            "auth.jwt_signature_checks_per_sec must be >= 1",
        ),
        (
            "[auth]\njwt_username_claim = \"\"\n",
            "auth.jwt_username_claim",
        ),
        ("[auth]\njwt_algorithm = \"none\"\n", "auth.jwt_algorithm"),
        (
            "[auth]\njwt_algorithm = \"RS256\"\n",
            "auth.jwt_public_key_file",
        ),
        // limits
        (
            "[limits]\nmax_stanza_bytes = 10\n",
            "limits.max_stanza_bytes must be 1024..=16777216",
        ),
        (
            "[limits]\nmax_xml_depth = 1001\n",
            "limits.max_xml_depth must be 2..=1000",
        ),
        (
            "[limits]\nstanza_burst = 0\n",
            "limits.stanza_burst must be >= 1",
        ),
        (
            "[limits]\nmax_pending_iqs = 0\n",
            "limits.max_pending_iqs must be >= 1",
        ),
        (
            "[limits]\nmax_sessions_per_user = 0\n",
            "limits.max_sessions_per_user must be >= 1",
        ),
        (
            "[limits]\nmax_stanza_bytes = 65536\noutbound_queue_bytes_max = 65535\n",
            "limits.outbound_queue_bytes_max must be >= limits.max_stanza_bytes",
        ),
        // ping
        (
            "[ping]\nclient_idle_ms = 99\n",
            "ping.client_idle_ms must be >= 100",
        ),
        (
            "[ping]\nclient_ping_timeout_ms = 0\n",
            "ping.client_ping_timeout_ms must be >= 100",
        ),
        // muc
        (
            "[muc]\nmax_occupants = 0\n",
            "muc.max_occupants must be >= 1",
        ),
        (
            "[muc]\nmax_rooms_per_shard = 0\n",
            "muc.max_rooms_per_shard must be >= 1",
        ),
        (
            "[muc]\nhistory_default = 51\n",
            "muc.history_default must be <= muc.history_max",
        ),
        ("[muc]\nsubdomain = \"a b\"\n", "muc.subdomain"),
        (
            "[muc]\ndirectory_page_max = 0\n",
            "muc.directory_page_max must be 1..=1000",
        ),
        (
            "[muc]\ndirectory_page_max = 1001\n",
            "muc.directory_page_max must be 1..=1000",
        ),
        // storage
        (
            "[storage]\nqueue_capacity = 0\n",
            "storage.queue_capacity must be >= 1",
        ),
        (
            "[storage]\nshard_backlog_max = 0\n",
            "storage.shard_backlog_max must be >= 1",
        ),
        (
            "[storage]\nbatch_max = 0\n",
            "storage.batch_max must be >= 1",
        ),
        ("[storage]\nbackend = \"sqlite\"\n", "storage.backend"),
        (
            "[storage]\nbackend = \"postgres\"\n",
            "needs storage.postgres_url",
        ),
        (
            "[storage]\nbackend = \"postgres\"\npostgres_url = \"host=db port=notaport\"\n",
            "storage.postgres_url",
        ),
        (
            "[storage]\npostgres_connect_timeout_ms = 0\n",
            "storage.postgres_connect_timeout_ms must be >= 1",
        ),
        (
            "[storage]\npostgres_reconnect_delay_ms = 0\n",
            "storage.postgres_reconnect_delay_ms must be >= 1",
        ),
        (
            "[storage]\npostgres_replay_max_bytes = 1048575\n",
            "storage.postgres_replay_max_bytes must be >= 1048576",
        ),
        (
            "[storage]\npostgres_prefs_cache_max = 0\n",
            "storage.postgres_prefs_cache_max must be >= 1",
        ),
        (
            "[storage]\nusers_cache_max = 0\n",
            "storage.users_cache_max must be >= 1",
        ),
        (
            "[muc]\nheld_while_loading_max = 0\n",
            "muc.held_while_loading_max must be >= 1",
        ),
        // sm
        (
            "[sm]\nresume_timeout_ms = 0\n",
            "sm.resume_timeout_ms must be >= 100",
        ),
        (
            "[sm]\nrequest_ack_after_stanzas = 0\n",
            "sm.request_ack_after_stanzas must be >= 1",
        ),
        // mam
        ("[mam]\npage_default = 0\n", "mam.page_default must be >= 1"),
        ("[mam]\npage_max = 0\n", "mam.page_max must be >= 1"),
        (
            "[mam]\npage_default = 251\n",
            "mam.page_default must be <= mam.page_max",
        ),
        (
            "[mam]\nretention_s = 18446744073709552\n",
            "mam.retention_s must be 0..=18446744073709551",
        ),
        // ftw
        (
            "[ftw]\nping_interval_ms = 0\n",
            "ftw.ping_interval_ms must be >= 100",
        ),
        (
            "[ftw]\nping_timeout_ms = 99\n",
            "ftw.ping_timeout_ms must be >= 100",
        ),
        (
            "[ftw]\nmax_pending_callbacks = 0\n",
            "ftw.max_pending_callbacks must be >= 1",
        ),
        (
            "[ftw]\nmax_pending_incoming_iqs = 0\n",
            "ftw.max_pending_incoming_iqs must be 1..=4096 (got 0)",
        ),
        (
            "[ftw]\nmax_pending_incoming_iqs = 4097\n",
            "ftw.max_pending_incoming_iqs must be 1..=4096 (got 4097)",
        ),
        (
            "[ftw]\nincoming_iq_timeout_ms = 99\n",
            "ftw.incoming_iq_timeout_ms must be 100..=300000 (got 99)",
        ),
        (
            "[ftw]\nincoming_iq_timeout_ms = 300001\n",
            "ftw.incoming_iq_timeout_ms must be 100..=300000 (got 300001)",
        ),
        (
            "[ftw]\nsocketio_path = \"socket.io/\"\n",
            "ftw.socketio_path",
        ),
        ("[ftw]\nprimus_path = \"ftw\"\n", "ftw.primus_path"),
        // cluster
        (
            "[cluster]\nnode = \"n1\"\n",
            "cluster.node needs cluster.nats_url",
        ),
        (
            "[cluster]\nnode = \"n1\"\nnats_url = \"nats://127.0.0.1:4222\"\n",
            "cluster.node needs storage.backend = \"postgres\"",
        ),
        (
            "[cluster]\nnats_url = \"nats://127.0.0.1:4222\"\n",
            "cluster.nats_url without cluster.node",
        ),
        ("[cluster]\nnode = \"a.b\"\n", "cluster.node \"a.b\""),
        ("[cluster]\nname = \"\"\n", "cluster.name"),
        (
            "[cluster]\nadmin_url = \"https://n1:5281\"\n",
            "cluster.admin_url",
        ),
        (
            "[cluster]\nheartbeat_ms = 9\n",
            "cluster.heartbeat_ms must be >= 10",
        ),
        (
            "[cluster]\nfailure_timeout_ms = 99\n",
            "cluster.failure_timeout_ms must be >= 100",
        ),
        (
            "[cluster]\nheartbeat_ms = 1000\nfailure_timeout_ms = 1999\n",
            "at least twice cluster.heartbeat_ms",
        ),
        (
            "[cluster]\nbus_queue_frames = 15\n",
            "cluster.bus_queue_frames must be >= 16",
        ),
        (
            "[cluster]\nbus_batch_bytes_max = 1048577\n",
            "cluster.bus_batch_bytes_max must be 4096..=1048576",
        ),
        (
            "[cluster]\nconnect_timeout_ms = 99\n",
            "cluster.connect_timeout_ms must be >= 100",
        ),
        (
            "[cluster]\noutbox_bytes_max = 4095\n",
            "cluster.outbox_bytes_max must be >= 4096",
        ),
        (
            "[cluster]\nresend_after_ms = 99\n",
            "cluster.resend_after_ms must be >= 100",
        ),
    ];
    for (toml, want) in cases {
        let out = check_config(dir.path(), toml);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{toml:?} was accepted");
        assert!(err.contains(want), "{toml:?}: expected {want:?} in {err:?}");
    }
}

/// The bounds themselves are allowed.
#[test]
fn values_at_the_bounds_pass() {
    let dir = tempfile::tempdir().unwrap();
    for toml in [
        "[server]\nshards = 256\nuring_entries = 32768\nmailbox_capacity = 64\nlisten_backlog = 1\n",
        "[server]\nuring_entries = 1\n",
        "[admin]\nmax_items_per_request = 1\n[log]\nlevel = \"aoba=trace,warn\"\n",
        "[auth]\nmax_auth_failures = 1\nauth_timeout_ms = 100\n",
        "[limits]\nstanza_burst = 1\nmax_pending_iqs = 1\nmax_directed_presence = 0\n",
        "[limits]\nmax_stanza_bytes = 65536\noutbound_queue_bytes_max = 65536\n",
        "[muc]\nmax_rooms_per_shard = 1\nhistory_max = 0\nhistory_default = 0\n",
        "[storage]\nqueue_capacity = 1\nshard_backlog_max = 1\nbatch_max = 1\noffline_quota = 0\n",
        "[storage]\nbackend = \"postgres\"\npostgres_url = \"postgresql://aoba@127.0.0.1:5432/aoba\"\npostgres_connect_timeout_ms = 1\npostgres_reconnect_delay_ms = 1\npostgres_replay_max_bytes = 1048576\npostgres_prefs_cache_max = 1\npostgres_statement_timeout_ms = 0\n",
        "[sm]\nresume_timeout_ms = 100\nrequest_ack_after_stanzas = 1\n",
        "[mam]\npage_default = 1\npage_max = 1\nretention_s = 18446744073709551\n",
        "[ftw]\nping_interval_ms = 100\nping_timeout_ms = 100\nmax_pending_callbacks = 1\n",
        "[ftw]\nmax_pending_incoming_iqs = 1\nincoming_iq_timeout_ms = 100\n",
        "[ftw]\nmax_pending_incoming_iqs = 4096\nincoming_iq_timeout_ms = 300000\n",
        "[storage]\nbackend = \"postgres\"\npostgres_url = \"host=127.0.0.1\"\n[cluster]\nnode = \"n-1_a\"\nnats_url = \"nats://127.0.0.1:4222\"\nheartbeat_ms = 10\nfailure_timeout_ms = 100\nbus_queue_frames = 16\nbus_batch_bytes_max = 4096\nconnect_timeout_ms = 100\noutbox_bytes_max = 4096\nresend_after_ms = 100\n",
        "[cluster]\nbus_batch_bytes_max = 1048576\n",
    ] {
        let out = check_config(dir.path(), toml);
        assert!(out.status.success(), "{toml:?}: {}", text(&out.stderr));
    }
}

/// The reference's sections and keys: `## [section]`, then one `` ### `key` `` each.
fn documented_keys() -> Vec<(String, String)> {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let mut section = None;
    let mut keys = Vec::new();
    for line in page.lines() {
        if let Some(s) = line.strip_prefix("## [").and_then(|l| l.strip_suffix(']')) {
            section = Some(s.to_string());
        } else if let Some(k) = line.strip_prefix("### `").and_then(|l| l.strip_suffix('`')) {
            let s = section.clone().expect("a key before any section");
            keys.push((s, k.to_string()));
        }
    }
    keys
}

#[test]
fn the_default_config_passes_and_lists_every_documented_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = check_config(dir.path(), "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let effective = text(&out.stdout);
    let keys = documented_keys();
    assert!(keys.len() > 50, "too few keys documented: {keys:?}");
    for (section, key) in &keys {
        let body = effective
            .split(&format!("[{section}]\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no [{section}] in {effective}"));
        let body = body.split("\n[").next().unwrap();
        assert!(
            body.lines()
                .any(|l| l.starts_with(&format!("{key} = ")) || l == format!("# {key} is not set")),
            "{section}.{key} is documented but not in check-config's output:\n{effective}"
        );
    }
    // The effective configuration is itself a valid file, with the same effect.
    let again = check_config(dir.path(), &effective);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), effective);
}
