//! The run loop of one logged-in session: writes what the scenario asks it to, reads and
//! classifies everything the server sends (messages with our stamp, MUC self-presence,
//! iq results, pings, errors), and reports events back.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::stats::Stats;
use crate::transport::{Conn, Frame};
use crate::xml;

pub enum Cmd {
    /// Write this stanza.
    Send(String),
    /// Close the stream (`<close/>` or `</stream:stream>`) and end.
    Close,
}

#[derive(Debug)]
pub enum Event {
    /// Own MUC presence (status 110) arrived; `created` if status 201 was present too.
    Joined { idx: usize, created: bool },
    /// A MUC join was answered with an error presence.
    JoinFailed { idx: usize, reason: String },
    /// An iq result or error for an id we sent.
    Iq { id: String, ok: bool },
}

pub struct SessionCtx {
    pub stats: Arc<Stats>,
    pub events: Option<mpsc::UnboundedSender<Event>>,
}

pub struct Handle {
    pub tx: mpsc::UnboundedSender<Cmd>,
    pub task: tokio::task::JoinHandle<()>,
    pub jid: String,
}

/// Spawn the run loop for session `idx`.
pub fn spawn(idx: usize, conn: Conn, jid: String, ctx: Arc<SessionCtx>) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(idx, conn, rx, ctx));
    Handle { tx, task, jid }
}

async fn run(
    idx: usize,
    mut conn: Conn,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    ctx: Arc<SessionCtx>,
) {
    loop {
        tokio::select! {
            cmd = rx.recv() => {
                let mut close = false;
                let mut batch = 0;
                let mut next = cmd;
                loop {
                    match next {
                        Some(Cmd::Send(s)) => {
                            if let Err(e) = conn.feed(s).await {
                                ctx.stats.errors.add(&format!("write:{}", e.short()));
                                return;
                            }
                            batch += 1;
                        }
                        Some(Cmd::Close) | None => {
                            close = true;
                            break;
                        }
                    }
                    if batch >= 64 {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(c) => next = Some(c),
                        Err(_) => break,
                    }
                }
                if batch > 0
                    && let Err(e) = conn.flush().await
                {
                    ctx.stats.errors.add(&format!("write:{}", e.short()));
                    return;
                }
                if close {
                    conn.close(Duration::from_secs(5)).await;
                    return;
                }
            }
            msg = conn.recv() => {
                let text = match msg {
                    Ok(Some(Frame::Stanza(t))) => t,
                    Ok(Some(Frame::Open(_))) => continue,
                    Ok(Some(Frame::Close)) => {
                        ctx.stats.errors.add("server-close");
                        return;
                    }
                    Ok(None) => {
                        ctx.stats.errors.add("disconnected");
                        return;
                    }
                    Err(e) => {
                        ctx.stats.errors.add(&format!("read:{}", e.short()));
                        return;
                    }
                };
                if let Some(reply) = handle_frame(idx, &text, &ctx) {
                    if reply.is_empty() {
                        return; // stream ended by the server
                    }
                    if let Err(e) = conn.send(reply).await {
                        ctx.stats.errors.add(&format!("write:{}", e.short()));
                        return;
                    }
                }
            }
        }
    }
}

/// Handle one incoming frame. Returns a reply to write, `Some("")` to end the session.
fn handle_frame(idx: usize, f: &str, ctx: &SessionCtx) -> Option<String> {
    // XMPP-FTW sessions (`--ftw`): Engine.IO keepalive and connection errors.
    if f == "2" {
        return Some("3".into());
    }
    if f.starts_with("42[\"xmpp.error\"") {
        ctx.stats.errors.add("ftw:xmpp.error");
        return Some(String::new());
    }
    if let Some(rest) = f.strip_prefix("42[\"xmpp.chat.message\",") {
        match serde_json::from_str::<serde_json::Value>(rest.strip_suffix(']').unwrap_or(rest)) {
            Ok(v) => {
                if let Some(body) = v.get("content").and_then(|c| c.as_str()) {
                    ctx.stats.on_body(idx, body);
                }
            }
            Err(_) => ctx.stats.errors.add("ftw:bad-event"),
        }
        return None;
    }
    if f.starts_with("42[") || f.starts_with("43") {
        return None; // other XMPP-FTW events and acks
    }
    match xml::root_local(f) {
        "message" => {
            if xml::root_attr(f, "type") == Some("error") {
                ctx.stats
                    .errors
                    .add(&format!("message-error:{}", xml::error_condition(f)));
            } else if let Some(body) = xml::child_text(f, "body") {
                ctx.stats.on_body(idx, body);
            }
            None
        }
        "presence" => {
            let ty = xml::root_attr(f, "type");
            if ty == Some("error") {
                if let Some(ev) = &ctx.events {
                    let _ = ev.send(Event::JoinFailed {
                        idx,
                        reason: xml::error_condition(f),
                    });
                }
            } else if ty.is_none() && (f.contains("code='110'") || f.contains("code=\"110\"")) {
                let created = f.contains("code='201'") || f.contains("code=\"201\"");
                if let Some(ev) = &ctx.events {
                    let _ = ev.send(Event::Joined { idx, created });
                }
            }
            None
        }
        "iq" => {
            let ty = xml::root_attr(f, "type").unwrap_or("");
            let id = xml::root_attr(f, "id").unwrap_or("");
            match ty {
                "get" | "set" => {
                    let to = xml::root_attr(f, "from")
                        .map(|v| format!(" to='{v}'"))
                        .unwrap_or_default();
                    if ty == "get" && xml::has_element(f, "ping") {
                        Some(format!(
                            "<iq xmlns='jabber:client' type='result' id='{id}'{to}/>"
                        ))
                    } else {
                        Some(format!(
                            "<iq xmlns='jabber:client' type='error' id='{id}'{to}><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                        ))
                    }
                }
                _ => {
                    if let Some(ev) = &ctx.events {
                        let _ = ev.send(Event::Iq {
                            id: id.to_string(),
                            ok: ty == "result",
                        });
                    }
                    None
                }
            }
        }
        "error" => {
            ctx.stats
                .errors
                .add(&format!("stream-error:{}", xml::error_condition(f)));
            Some(String::new())
        }
        _ => None,
    }
}
