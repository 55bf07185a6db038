//! Helpers for XEP-0045 tests: joining, creating and configuring rooms as a client would.

use super::*;

pub const ROOM: &str = "group-123e4567-e89b-12d3-a456-426614174000@conference.localhost";
pub const MUC: &str = "http://jabber.org/protocol/muc";

/// Joins `room` as `nick`; returns everything received up to and including the subject
/// (the last thing a join sends, §7.2.15).
pub async fn join(c: &mut Client, room: &str, nick: &str, extra: &str) -> Vec<String> {
    c.send(&format!(
        "<presence to='{room}/{nick}'><x xmlns='{MUC}'>{extra}</x></presence>"
    ))
    .await;
    let mut got = Vec::new();
    loop {
        let m = c.recv().await;
        let done = m.contains("<subject") || m.contains("type='error'");
        got.push(m);
        if done {
            return got;
        }
    }
}

pub async fn instant_room(c: &mut Client, room: &str) {
    // XEP-0045 §10.1.2, example 156: accept the default configuration.
    c.send(&format!("<iq id='create1' to='{room}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>")).await;
    assert!(c.recv_until("id='create1'").await.contains("type='result'"));
}

pub async fn configure(c: &mut Client, room: &str, fields: &[(&str, &str)]) {
    let f: String = fields
        .iter()
        .map(|(k, v)| format!("<field var='{k}'><value>{v}</value></field>"))
        .collect();
    c.send(&format!("<iq id='cfg' to='{room}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>{f}</x></query></iq>")).await;
    let r = c.recv_until("id='cfg'").await;
    assert!(r.contains("type='result'"), "{r}");
}

pub async fn two(s: &Server) -> (Client, Client) {
    let (a, b) = s.users_apart();
    (
        Client::online(s, &a, "r", 0).await,
        Client::online(s, &b, "r", 0).await,
    )
}

pub fn nick_of(c: &Client) -> String {
    c.jid.split('@').next().unwrap().to_string()
}
