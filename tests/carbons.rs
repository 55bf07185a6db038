//! XEP-0280 Message Carbons between real clients on two shards.

mod common;
use common::*;

async fn enable(c: &mut Client) {
    // XEP-0280 §4, example 3.
    c.send(&format!("<iq xmlns='jabber:client' from='{}' id='enable1' type='set'><enable xmlns='urn:xmpp:carbons:2'/></iq>", c.jid)).await;
    assert!(c.recv_until("id='enable1'").await.contains("type='result'"));
}

#[tokio::test]
async fn sent_and_received_copies_reach_the_other_devices() {
    let s = Server::start();
    let (a, b) = s.users_apart();
    let mut a1 = Client::online(&s, &a, "garden", 0).await;
    let mut a2 = Client::online(&s, &a, "home", 0).await;
    let mut b1 = Client::online(&s, &b, "balcony", 0).await;
    let mut b2 = Client::online(&s, &b, "chamber", 0).await;
    for c in [&mut a1, &mut a2, &mut b1] {
        enable(c).await;
    }
    a1.send(&format!("<message to='{b}@localhost/chamber' type='chat' id='c1'><body>Wherefore art thou?</body></message>")).await;
    assert!(b2.recv_until("<message").await.contains("id='c1'"));
    // The sender's other device gets <sent/> with the whole message inside (§7).
    let sent = a2.recv_until("<message").await;
    assert!(
        sent.contains(
            "<sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message"
        ),
        "{sent}"
    );
    assert!(
        sent.contains("id='c1'")
            && sent.contains("<body>Wherefore art thou?</body>")
            && sent.contains(&format!("from='{a}@localhost'")),
        "{sent}"
    );
    // The recipient's other device (carbons on) gets <received/> (§6).
    let rec = b1.recv_until("<message").await;
    assert!(
        rec.contains("<received xmlns='urn:xmpp:carbons:2'>")
            && rec.contains("id='c1'")
            && rec.contains(&format!("to='{}'", b1.jid)),
        "{rec}"
    );
    // <private/> opts out (§8); a device with carbons off gets nothing.
    a1.send(&format!("<message to='{b}@localhost/chamber' type='chat' id='p1'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/></message>")).await;
    assert!(b2.recv_until("<message").await.contains("id='p1'"));
    a1.send(&format!(
        "<message to='{a}@localhost/home' type='chat' id='mark'><body>.</body></message>"
    ))
    .await;
    assert!(
        a2.recv_until("<message").await.contains("id='mark'"),
        "no carbon of a private message"
    );
    // Disable (§5), and the server advertises the feature.
    a2.send("<iq id='dis' type='set'><disable xmlns='urn:xmpp:carbons:2'/></iq>")
        .await;
    assert!(a2.recv_until("id='dis'").await.contains("type='result'"));
    a2.send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    assert!(
        a2.recv_until("id='d1'")
            .await
            .contains("<feature var='urn:xmpp:carbons:2'/>")
    );
}
