//! The two framings of XMPP-FTW over one WebSocket text message each:
//! - Socket.IO v5 over Engine.IO v4 (`/socket.io/?EIO=4&transport=websocket`): Engine.IO
//!   packet type first (`0` open, `1` close, `2` ping, `3` pong, `4` message, `6` noop),
//!   then for messages the Socket.IO packet: type (`0` connect, `1` disconnect, `2` event,
//!   `3` ack), optional `/namespace,`, optional ack id, then a JSON array.
//! - primus-emitter (`/ftw`, the original demo's framing): `{"type":0,"data":[event,
//!   payload],"id":N}` for events (`id` when a callback waits), `{"type":1,"id":N,"data":
//!   [...]}` for acks, and primus' own `"primus::ping::<t>"` keepalive strings.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    SocketIo,
    Primus,
}

/// Which framing a request path asks for, if it is one of XMPP-FTW's (`Err`: Engine.IO's
/// own answer to a query it cannot serve: only Engine.IO v4 over WebSocket is served).
pub fn endpoint(cfg: &super::FtwConfig, path: &str, query: &str) -> Result<Option<Proto>, Vec<u8>> {
    if !cfg.enabled {
        return Ok(None);
    }
    if path == cfg.socketio_path || path == cfg.socketio_path.trim_end_matches('/') {
        let param = |k: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v)
        };
        let engine_error = |code: u8, msg: &str| {
            let body = format!("{{\"code\":{code},\"message\":\"{msg}\"}}");
            crate::net::http::respond("400 Bad Request", "application/json", &body)
        };
        if param("EIO") != Some("4") {
            return Err(engine_error(5, "Unsupported protocol version"));
        }
        if param("transport") != Some("websocket") {
            return Err(engine_error(0, "Transport unknown"));
        }
        return Ok(Some(Proto::SocketIo));
    }
    Ok((path == cfg.primus_path).then_some(Proto::Primus))
}

/// One packet from the browser.
#[derive(Debug, PartialEq)]
pub enum Packet {
    /// An event; `ack` is the id its callback waits under.
    Event {
        name: String,
        payload: Value,
        ack: Option<u64>,
    },
    /// Socket.IO namespace connect (`40`, `40/chat,`).
    Connect { nsp: String },
    /// Socket.IO disconnect (`41`) or Engine.IO close (`1`).
    Disconnect,
    /// Engine.IO ping from the client (answered with pong).
    Ping(String),
    /// Engine.IO pong.
    Pong,
    /// primus keepalive `"primus::ping::<t>"`.
    PrimusPing(String),
    /// Nothing to do (noop, upgrade, acks of server events).
    Ignore,
}

/// Why a frame was not understood; the socket is closed.
pub type Malformed = &'static str;

pub fn parse(proto: Proto, text: &str) -> Result<Packet, Malformed> {
    match proto {
        Proto::SocketIo => parse_engine(text),
        Proto::Primus => parse_primus(text),
    }
}

fn parse_engine(text: &str) -> Result<Packet, Malformed> {
    let mut chars = text.chars();
    match chars.next() {
        Some('1') => Ok(Packet::Disconnect),
        Some('2') => Ok(Packet::Ping(chars.as_str().to_string())),
        Some('3') => Ok(Packet::Pong),
        Some('5') | Some('6') => Ok(Packet::Ignore),
        Some('4') => parse_socket(chars.as_str()),
        _ => Err("unknown Engine.IO packet type"),
    }
}

fn parse_socket(s: &str) -> Result<Packet, Malformed> {
    let Some(kind) = s.chars().next() else {
        return Err("empty Socket.IO packet");
    };
    let mut rest = &s[kind.len_utf8()..];
    if kind == '5' || kind == '6' {
        return Err("binary packets are not supported");
    }
    let mut nsp = "/";
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = if digits > 0 {
        Some(
            rest[..digits]
                .parse::<u64>()
                .map_err(|_| "ack id too large")?,
        )
    } else {
        None
    };
    let json = &rest[digits..];
    match kind {
        '0' => {
            if !json.is_empty() {
                let v: Value =
                    serde_json::from_str(json).map_err(|_| "connect payload is not JSON")?;
                if !v.is_object() {
                    return Err("connect payload is not an object");
                }
            }
            Ok(Packet::Connect { nsp: nsp.into() })
        }
        '1' => Ok(Packet::Disconnect),
        '2' => {
            if nsp != "/" {
                return Err("event for a namespace that is not connected");
            }
            let v: Value = serde_json::from_str(json).map_err(|_| "event is not JSON")?;
            event_from_array(v, ack)
        }
        '3' => Ok(Packet::Ignore),
        _ => Err("unknown Socket.IO packet type"),
    }
}

fn event_from_array(v: Value, ack: Option<u64>) -> Result<Packet, Malformed> {
    let Value::Array(mut a) = v else {
        return Err("event is not an array");
    };
    if a.is_empty() {
        return Err("event without a name");
    }
    let Value::String(name) = a.remove(0) else {
        return Err("event name is not a string");
    };
    let payload = if a.is_empty() {
        Value::Null
    } else {
        a.remove(0)
    };
    Ok(Packet::Event { name, payload, ack })
}

fn parse_primus(text: &str) -> Result<Packet, Malformed> {
    let v: Value = serde_json::from_str(text).map_err(|_| "frame is not JSON")?;
    match v {
        Value::String(s) => match s.strip_prefix("primus::ping::") {
            Some(t) => Ok(Packet::PrimusPing(t.to_string())),
            None => Ok(Packet::Ignore),
        },
        Value::Object(mut o) => match o.get("type").and_then(Value::as_u64) {
            Some(0) => {
                let ack = match o.get("id") {
                    None | Some(Value::Null) => None,
                    Some(i) => Some(i.as_u64().ok_or("packet id is not a number")?),
                };
                event_from_array(o.remove("data").unwrap_or(Value::Null), ack)
            }
            Some(1) => Ok(Packet::Ignore),
            _ => Err("unknown primus-emitter packet type"),
        },
        _ => Err("frame is not a primus-emitter packet"),
    }
}

/// The Engine.IO open packet.
pub fn open(sid: &str, ping_interval_ms: u64, ping_timeout_ms: u64, max_payload: usize) -> String {
    format!(
        "0{{\"sid\":\"{sid}\",\"upgrades\":[],\"pingInterval\":{ping_interval_ms},\"pingTimeout\":{ping_timeout_ms},\"maxPayload\":{max_payload}}}"
    )
}

/// The Socket.IO connect reply for the main namespace.
pub fn connected(sid: &str) -> String {
    format!("40{{\"sid\":\"{sid}\"}}")
}

/// A refused namespace.
pub fn connect_error(nsp: &str) -> String {
    format!("44{nsp},{{\"message\":\"Invalid namespace\"}}")
}

/// An event to the browser.
pub fn event(proto: Proto, name: &str, payload: &Value) -> String {
    // Written straight into one string: no copy of the payload into an array first.
    let mut s = String::with_capacity(64 + name.len());
    s.push_str(match proto {
        Proto::SocketIo => "42[",
        Proto::Primus => "{\"type\":0,\"data\":[",
    });
    let mut w = std::mem::take(&mut s).into_bytes();
    let _ = serde_json::to_writer(&mut w, name);
    w.push(b',');
    let _ = serde_json::to_writer(&mut w, payload);
    w.push(b']');
    if proto == Proto::Primus {
        w.push(b'}');
    }
    // serde_json writes valid UTF-8.
    String::from_utf8(w).unwrap_or_default()
}

/// The arguments for the callback waiting under `id`.
pub fn ack(proto: Proto, id: u64, args: &[Value]) -> String {
    let data = Value::Array(args.to_vec());
    match proto {
        Proto::SocketIo => format!("43{id}{data}"),
        Proto::Primus => format!("{{\"type\":1,\"id\":{id},\"data\":{data}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn socket_io_packets() {
        let p = |s| parse(Proto::SocketIo, s);
        assert_eq!(p("40"), Ok(Packet::Connect { nsp: "/".into() }));
        assert_eq!(
            p("40/admin,{\"token\":\"x\"}"),
            Ok(Packet::Connect {
                nsp: "/admin".into()
            })
        );
        assert_eq!(
            p("42[\"xmpp.ping\",{}]"),
            Ok(Packet::Event {
                name: "xmpp.ping".into(),
                payload: json!({}),
                ack: None
            })
        );
        assert_eq!(
            p("4212[\"xmpp.ping\"]"),
            Ok(Packet::Event {
                name: "xmpp.ping".into(),
                payload: Value::Null,
                ack: Some(12)
            })
        );
        assert_eq!(p("3"), Ok(Packet::Pong));
        assert_eq!(p("41"), Ok(Packet::Disconnect));
        assert_eq!(p("431[]"), Ok(Packet::Ignore));
        assert!(p("42[\"xmpp.chat.message\",{").is_err());
        assert!(p("42{}").is_err());
        assert!(p("42[1]").is_err());
        assert!(p("451-[\"x\",{\"_placeholder\":true,\"num\":0}]").is_err());
        assert!(p("9").is_err());
        assert!(p("").is_err());
    }

    #[test]
    fn primus_packets() {
        let p = |s| parse(Proto::Primus, s);
        assert_eq!(
            p("{\"type\":0,\"data\":[\"xmpp.login\",{\"jid\":\"a\"}],\"id\":3}"),
            Ok(Packet::Event {
                name: "xmpp.login".into(),
                payload: json!({"jid": "a"}),
                ack: Some(3)
            })
        );
        assert_eq!(
            p("\"primus::ping::1700\""),
            Ok(Packet::PrimusPing("1700".into()))
        );
        assert!(p("{\"type\":7}").is_err());
        assert!(p("nope").is_err());
    }

    #[test]
    fn encodings() {
        assert_eq!(
            event(
                Proto::SocketIo,
                "xmpp.connection",
                &json!({"status": "online"})
            ),
            "42[\"xmpp.connection\",{\"status\":\"online\"}]"
        );
        assert_eq!(
            ack(Proto::SocketIo, 7, &[Value::Null, json!(true)]),
            "437[null,true]"
        );
        assert_eq!(
            ack(Proto::Primus, 7, &[Value::Null, json!(true)]),
            "{\"type\":1,\"id\":7,\"data\":[null,true]}"
        );
        assert_eq!(
            event(Proto::Primus, "e", &json!(1)),
            "{\"type\":0,\"data\":[\"e\",1]}"
        );
    }

    /// Found by fuzz/fuzz_targets/ftw.rs: a Socket.IO packet type that is not ASCII made
    /// `parse_socket` slice inside a UTF-8 character and panic.
    #[test]
    fn fuzz_multibyte_socket_io_packet_type() {
        assert!(parse(Proto::SocketIo, "4\u{164}[\"xmpp.ping\",{}]").is_err());
        assert!(parse(Proto::SocketIo, "4\u{e9}").is_err());
        assert!(parse(Proto::SocketIo, "4\u{1f600}/chat,").is_err());
    }
}
