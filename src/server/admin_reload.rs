//! `POST /api/reload`: re-reads the configuration file the server was started with (the
//! command line's flags still over it), checks all of it first — every key, the TLS
//! certificate files, the admin token file — and changes nothing if anything is wrong.
//! Then it applies what can change while the server runs and lists the rest.
//!
//! What applies live is what lives outside the shards: the log filter (`log.level`), the
//! TLS certificates (`tls.certificates`, re-read on every reload as on SIGHUP, and a new
//! list of files too), and the admin listener's own settings (its token file and bounds).
//! The shards share an immutable configuration (DESIGN invariant 1: no lock on the stanza
//! path), so every other key that changed needs a restart; it stays listed until then.

use super::Config;
use super::admin::Admin;
use super::admin_api::error_json;
use crate::net::tls::Tls;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// What a reload needs: where the configuration came from, the configuration running
/// (with what earlier reloads applied), and the TLS to swap certificates in.
pub struct Reload {
    pub source: super::ConfigSource,
    pub running: Config,
    pub net: Arc<super::Net>,
}

/// The keys a reload can apply while the server runs.
const LIVE: &[&str] = &[
    "log.level",
    "tls.certificates",
    "admin.token_file",
    "admin.request_timeout_ms",
    "admin.io_timeout_ms",
    "admin.max_request_bytes",
    "admin.max_items_per_request",
];

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// `POST /api/reload`: `{"applied", "restart_required", "ignored"}`, or 400 with why the
/// file was refused (nothing changed then).
pub fn reload(admin: &mut Admin) -> (u16, String) {
    match reload_inner(admin) {
        Ok(v) => (200, v.to_string()),
        Err(e) => {
            tracing::warn!(error = %e, "reload refused: nothing changed");
            (400, error_json("bad-request", &e))
        }
    }
}

/// Every `section.key` whose value differs, sorted.
fn changed_keys(old: &Config, new: &Config) -> Result<Vec<String>, String> {
    let (a, b) = (
        serde_json::to_value(old).map_err(|e| e.to_string())?,
        serde_json::to_value(new).map_err(|e| e.to_string())?,
    );
    let mut keys = Vec::new();
    for (section, values) in b.as_object().into_iter().flatten() {
        for (key, v) in values.as_object().into_iter().flatten() {
            if a[section.as_str()][key.as_str()] != *v {
                keys.push(format!("{section}.{key}"));
            }
        }
    }
    keys.sort();
    Ok(keys)
}

fn reload_inner(admin: &mut Admin) -> Result<Value, String> {
    let r = &admin.reload;
    let path = r
        .source
        .path
        .as_ref()
        .ok_or("the server was started without --config: there is no file to re-read")?;
    // 1. Read and check everything before changing anything.
    let mut new = Config::load(path)?;
    (r.source.overrides)(&mut new);
    new.validate()?;
    let token = super::admin_token(&new.admin)?;
    let certs = match (&r.net.tls, new.tls.certificates.is_empty()) {
        (Some(_), false) => Some(Tls::prepare(&new.tls.certificates)?),
        _ => None,
    };
    let log_control = crate::logctl::get().is_some();
    // 2. Sort what changed.
    let (mut applied, mut restart, mut ignored) = (Vec::new(), Vec::new(), Vec::new());
    for k in changed_keys(&r.running, &new)? {
        match k.as_str() {
            // The environment wins over the file, at start and at a reload.
            "log.level" if env_set("AOBA_LOG") => ignored.push(k),
            "admin.token_file" if env_set("AOBA_ADMIN_TOKEN") => ignored.push(k),
            "log.level" if !log_control => restart.push(k),
            // TLS that was off at start needs its listeners set up: a restart.
            "tls.certificates" if certs.is_none() => restart.push(k),
            live if LIVE.contains(&live) => applied.push(k),
            _ => restart.push(k),
        }
    }
    // 3. Apply (nothing below can fail on what was checked above).
    let has = |v: &[String], k: &str| v.iter().any(|x| x == k);
    if has(&applied, "log.level") {
        crate::logctl::set_default(&new.log.level)?;
        admin.reload.running.log.level = new.log.level.clone();
    }
    if let (Some(tls), Some(set)) = (&admin.reload.net.tls, certs) {
        let n = tls.install(set)?;
        tracing::info!(certificates = n, "reload: TLS certificates re-read");
        admin.reload.running.tls.certificates = new.tls.certificates.clone();
        // The files were re-read even when their names did not change (renewed files).
        if !has(&applied, "tls.certificates") {
            applied.push("tls.certificates".into());
        }
    }
    if token != admin.token && !has(&applied, "admin.token_file") {
        // The same file with a new token in it.
        applied.push("admin.token_file".into());
    }
    admin.token = token;
    let a = &new.admin;
    let c = &mut admin.cfg;
    (c.token_file, c.request_timeout_ms, c.io_timeout_ms) =
        (a.token_file.clone(), a.request_timeout_ms, a.io_timeout_ms);
    (c.max_request_bytes, c.max_items_per_request) = (a.max_request_bytes, a.max_items_per_request);
    admin.api.deadline = Duration::from_millis(a.request_timeout_ms);
    admin.api.max_items = a.max_items_per_request;
    let running = &mut admin.reload.running.admin;
    (
        running.token_file,
        running.request_timeout_ms,
        running.io_timeout_ms,
    ) = (a.token_file.clone(), a.request_timeout_ms, a.io_timeout_ms);
    (running.max_request_bytes, running.max_items_per_request) =
        (a.max_request_bytes, a.max_items_per_request);
    applied.sort();
    tracing::warn!(?applied, restart_required = ?restart, ?ignored, "configuration reloaded");
    Ok(json!({ "applied": applied, "restart_required": restart, "ignored": ignored }))
}
