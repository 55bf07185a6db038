//! Several Aoba nodes as one domain (issue 14): real aoba processes, a real PostgreSQL
//! (`common/postgres.rs`) and a real nats-server (`common/nats.rs`). Clients land on any
//! node: a user's session lives at its home node, and a client that landed elsewhere is
//! relayed there.

mod common;
use common::muc::join;
use common::nats::Nats;
use common::*;
use std::time::Duration;

struct Cluster {
    nodes: Vec<Server>,
    names: Vec<String>,
    nats: Nats,
    /// The database every node stores in.
    db: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A failed test leaves the nodes' logs where `AOBA_TEST_LOGS` says.
        if std::thread::panicking()
            && let Ok(dir) = std::env::var("AOBA_TEST_LOGS")
        {
            for (i, n) in self.nodes.iter().enumerate() {
                let _ = std::fs::write(format!("{dir}/node{i}.log"), n.log());
            }
        }
    }
}

fn config(url: &str, nats: &str, node: &str, extra: &str) -> String {
    format!(
        "[storage]\nbackend = \"postgres\"\npostgres_url = \"{url}\"\n\
         [c2s]\nlisten = \"127.0.0.1:0\"\nallow_plaintext = true\n\
         [cluster]\nnode = \"{node}\"\nnats_url = \"{nats}\"\n{extra}"
    )
}

/// `n` nodes of 2 shards on one fresh database, once every node routes by all of them.
async fn cluster(n: usize) -> Cluster {
    cluster_with(n, "").await
}

/// `cluster`, with `extra` keys of the `[cluster]` section.
async fn cluster_with(n: usize, extra: &str) -> Cluster {
    cluster_env(n, extra, &[]).await
}

/// `cluster_with`, node `i` started with the environment `envs[i]` (the debug-build fault
/// hooks; none past the end of `envs`).
async fn cluster_env(n: usize, extra: &str, envs: &[&[(&str, &str)]]) -> Cluster {
    cluster_by(n, |i, name, pg, nats| {
        let env = envs.get(i).copied().unwrap_or_default();
        Server::start_with_env(&config(pg, nats, name, extra), 2, env)
    })
    .await
}

/// `n` nodes named n1, n2… on one fresh database and nats-server, node `i` started by
/// `start(i, name, postgres_url, nats_url)`, once every node routes by all of them.
async fn cluster_by(n: usize, start: impl Fn(usize, &str, &str, &str) -> Server) -> Cluster {
    let url = pgtest::database();
    let nats = Nats::start();
    let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
    let nodes: Vec<Server> = names
        .iter()
        .enumerate()
        .map(|(i, name)| start(i, name, &url, &nats.url()))
        .collect();
    let c = Cluster {
        nodes,
        names,
        nats,
        db: url,
    };
    c.converged(n).await;
    c
}

impl Cluster {
    /// Waits (bounded) until every node's every shard routes by `n` members.
    async fn converged(&self, n: usize) {
        for s in &self.nodes {
            let want = format!("\"members\":{n}}}");
            let mut seen = String::new();
            for _ in 0..200 {
                // /health is answered by whichever shard accepts: ask a few times.
                let mut all = true;
                for _ in 0..4 {
                    seen = s.http_get("/health").await;
                    all &= seen.contains(&want);
                }
                if all {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                seen.contains(&want),
                "no view of {n} members: {seen}\n{}",
                s.log()
            );
        }
    }

    /// Waits (bounded, past the failure timeout) until node `i` routes by `n` members.
    async fn converged_on(&self, i: usize, n: usize) {
        let want = format!("\"members\":{n}}}");
        let mut seen = String::new();
        for _ in 0..300 {
            seen = self.nodes[i].http_get("/health").await;
            if seen.contains(&want) {
                let mut all = true;
                for _ in 0..4 {
                    all &= self.nodes[i].http_get("/health").await.contains(&want);
                }
                if all {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("node {i}: no view of {n} members: {seen}");
    }

    /// The index of `user`'s home node, as every node computes it.
    fn home(&self, user: &str) -> usize {
        let key = if user.contains('@') {
            user.to_string()
        } else {
            format!("{user}@{DOMAIN}")
        };
        aoba::cluster::placement::home_of(&key, &self.names).unwrap()
    }

    /// A user whose home is node `i` now and stays node `i` in a cluster of `names` too
    /// (a node about to join must not take it over).
    fn user_staying_on(&self, i: usize, prefix: &str, names: &[&str]) -> String {
        (0..1000)
            .map(|k| format!("{prefix}{k}"))
            .find(|u| {
                let key = format!("{u}@{DOMAIN}");
                self.home(u) == i && aoba::cluster::placement::home_of(&key, names) == Some(i)
            })
            .expect("a user for every node")
    }

    /// A user whose home is node `i` (with `prefix` in its name).
    fn user_on(&self, i: usize, prefix: &str) -> String {
        (0..1000)
            .map(|k| format!("{prefix}{k}"))
            .find(|u| self.home(u) == i)
            .expect("a user for every node")
    }
}

/// Runs `node scenarios.mjs NAME` (`tests/ftw`) with users `a` and `b`: the JSON client on
/// node 1, the XML client on node 2; panics with its output and the nodes' logs unless it
/// passes.
fn ftw_scenario(c: &Cluster, name: &str, a: &str, b: &str, tokens: serde_json::Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ftw");
    common::tools::npm_ci(&dir, &["socket.io-client", "ws"]).expect("npm ci");
    let mut child = std::process::Command::new("node")
        .arg("scenarios.mjs")
        .arg(name)
        .current_dir(&dir)
        .env("AOBA_PORT", c.nodes[0].port.to_string())
        .env("AOBA_XML_PORT", c.nodes[1].port.to_string())
        .env("AOBA_DOMAIN", DOMAIN)
        .env("AOBA_TOKENS", tokens.to_string())
        .env("AOBA_APART", format!("{a},{b}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    let bound = Duration::from_secs(90);
    let (status, out, err) = common::tools::wait_bounded(&mut child, bound);
    let logs = format!("{}\n{}", c.nodes[0].log(), c.nodes[1].log());
    if let Err(e) = common::tools::node_verdict(status, bound, &out, &err, &logs) {
        panic!("{name} across nodes: {e}");
    }
}

/// Asks for an XEP-0198 ack and waits (bounded, past a failover) for `<a h='n'/>`.
async fn acked(c: &mut Client, n: usize) {
    c.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let a = c
        .recv_until_within(&format!("h='{n}'"), Duration::from_secs(60))
        .await;
    assert!(a.contains("<a xmlns='urn:xmpp:sm:3'"), "{a}");
}

async fn sm_enable(c: &mut Client) -> String {
    c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let e = c.recv_until("<enabled").await;
    between(&e, "id='", "'").to_string()
}

/// 1:1 chat with receipts between users of different nodes, each landing on the other's
/// node (relayed both ways) or on its own; the sender's `<a h/>` comes after the
/// recipient's node stored the message, which the recipient then finds in its archive.
#[tokio::test]
async fn chat_with_receipts_and_acks_across_nodes_wherever_clients_land() {
    let c = cluster(2).await;
    let (a, b) = (c.user_on(0, "alice"), c.user_on(1, "bob"));
    // Alice lands on Bob's node and Bob on Alice's: both relayed.
    let mut alice = Client::online(&c.nodes[1], &a, "phone", 1).await;
    let mut bob = Client::online(&c.nodes[0], &b, "desk", 1).await;
    sm_enable(&mut alice).await;
    for i in 0..20 {
        alice
            .send(&format!("<message to='{b}@localhost' type='chat' id='m{i}'><body>hello {i} &amp; more</body><request xmlns='urn:xmpp:receipts'/></message>"))
            .await;
    }
    alice.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let ack = alice.recv_until("<a xmlns='urn:xmpp:sm:3'").await;
    assert!(ack.contains("h='20'"), "20 messages handled: {ack}");
    for i in 0..20 {
        let m = bob.recv_until("<message").await;
        assert!(
            m.contains(&format!("id='m{i}'"))
                && m.contains(&format!("from='{a}@localhost/phone'"))
                && m.contains(&format!("hello {i} &amp; more")),
            "in order and intact: {m}"
        );
        bob.send(&format!("<message to='{a}@localhost/phone' id='r{i}'><received xmlns='urn:xmpp:receipts' id='m{i}'/></message>")).await;
    }
    for i in 0..20 {
        let r = alice.recv_until("<received").await;
        assert!(r.contains(&format!("id='m{i}'")), "{r}");
    }
    // Bob's archive (kept by his home node, in PostgreSQL) has all 20.
    bob.send("<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='x'><set xmlns='http://jabber.org/protocol/rsm'><max>50</max></set></query></iq>").await;
    let mut found = 0;
    loop {
        let m = bob.recv().await;
        if m.contains("id='q1'") {
            assert!(m.contains("type='result'"), "{m}");
            break;
        }
        if m.contains("<result xmlns='urn:xmpp:mam:2'") && m.contains("hello") {
            found += 1;
        }
    }
    assert_eq!(found, 20);
    // Each node counts the connection it relays.
    for n in &c.nodes {
        let m = n.metrics();
        assert!(m.contains("aoba_relayed_connections 1"), "{m}");
    }
}

/// A user with resources on both nodes gets a message to its bare JID on the resource
/// of highest priority and one to each full JID, wherever each landed; a resource on
/// the home node directly and one relayed are the same to the sender.
#[tokio::test]
async fn resources_of_one_user_on_different_nodes_and_presence_subscriptions() {
    let c = cluster(2).await;
    let (a, b) = (c.user_on(0, "ann"), c.user_on(1, "ben"));
    let mut ann = Client::online(&c.nodes[0], &a, "one", 0).await;
    let mut ben_home = Client::online(&c.nodes[1], &b, "home", 5).await;
    let mut ben_away = Client::online(&c.nodes[0], &b, "away", 1).await;
    // Ben's resources see each other's presence (RFC 6121 §4.2.2).
    ben_home.recv_until("/away'").await;
    // Presence subscription both ways (RFC 6121 §3).
    ann.send(&format!("<presence to='{b}@localhost' type='subscribe'/>"))
        .await;
    let req = ben_away.recv_until("type='subscribe'").await;
    assert!(req.contains(&format!("from='{a}@localhost'")), "{req}");
    ben_away
        .send(&format!("<presence to='{a}@localhost' type='subscribed'/>"))
        .await;
    // The approval and both of Ben's presences, in whatever order they come.
    let (mut subscribed, mut home, mut away) = (false, false, false);
    while !(subscribed && home && away) {
        let m = ann.recv().await;
        if !m.contains(&format!("from='{b}@localhost")) {
            continue;
        }
        subscribed |= m.contains("type='subscribed'");
        home |= m.contains("/home'") && m.contains("<presence");
        away |= m.contains("/away'") && m.contains("<presence");
    }
    // Bare JID: the highest priority (home, 5). Full JID: that resource.
    ann.send(&format!(
        "<message to='{b}@localhost' type='chat' id='bare'><body>x</body></message>"
    ))
    .await;
    assert!(ben_home.recv_until("<message").await.contains("id='bare'"));
    ann.send(&format!(
        "<message to='{b}@localhost/away' type='chat' id='full'><body>y</body></message>"
    ))
    .await;
    assert!(ben_away.recv_until("<message").await.contains("id='full'"));
    // Replies come back to Ann from both.
    ben_away
        .send(&format!(
            "<message to='{a}@localhost/one' type='chat' id='back'><body>z</body></message>"
        ))
        .await;
    assert!(ann.recv_until("<message").await.contains("id='back'"));
}

/// A room whose home is one node, with occupants landing on every node: each gets the
/// others' presence and every groupchat message, in the room's order.
#[tokio::test]
async fn muc_with_occupants_on_every_node() {
    let c = cluster(3).await;
    let room = format!(
        "group-7d1e8f00-0000-4000-8000-00000000000{}@conference.localhost",
        1
    );
    let users: Vec<String> = (0..3).map(|i| c.user_on(i, "occ")).collect();
    let mut clients = Vec::new();
    for (i, u) in users.iter().enumerate() {
        // Each lands on the next node: relayed to its home.
        clients.push(Client::online(&c.nodes[(i + 1) % 3], u, "r", 0).await);
    }
    for (i, cl) in clients.iter_mut().enumerate() {
        let got = join(cl, &room, &format!("nick{i}"), "").await;
        assert!(got.iter().any(|m| m.contains("<subject")), "{got:?}");
        if i == 0 {
            common::muc::instant_room(cl, &room).await;
        }
    }
    // Everyone sees everyone's presence.
    for cl in clients.iter_mut().take(2) {
        cl.recv_until("/nick2'").await;
    }
    for k in 0..10 {
        let from = k % 3;
        clients[from]
            .send(&format!(
                "<message to='{room}' type='groupchat' id='g{k}'><body>msg {k}</body></message>"
            ))
            .await;
        for cl in clients.iter_mut() {
            let m = cl.recv_until("type='groupchat'").await;
            assert!(
                m.contains(&format!("msg {k}")) && m.contains(&format!("{room}/nick{from}")),
                "{m}"
            );
        }
    }
}

/// Offline storage and XEP-0198 across nodes: a message to a user who is away is kept by
/// its home and delivered when it comes back through another node; a dropped session
/// resumes through a different landing node, with what it had not acknowledged.
#[tokio::test]
async fn offline_delivery_and_resumption_through_another_node() {
    let c = cluster(2).await;
    let (a, b) = (c.user_on(0, "carl"), c.user_on(1, "dora"));
    let mut carl = Client::online(&c.nodes[0], &a, "r", 0).await;
    // Dora was never online: her home keeps it (accept_unknown_users defaults to true).
    carl.send(&format!("<message to='{b}@localhost' type='chat' id='off1'><body>while you were out</body></message>")).await;
    carl.send("<iq type='get' id='sync1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    carl.recv_until("id='sync1'").await;
    let mut dora = Client::login(&c.nodes[0], &b, Some("d")).await;
    let id = sm_enable(&mut dora).await;
    dora.send("<presence/>").await;
    let m = dora.recv_until("id='off1'").await;
    assert!(m.contains("<delay xmlns='urn:xmpp:delay'"), "{m}");
    // Two messages she never acknowledges, then her connection drops.
    for i in 0..2 {
        carl.send(&format!(
            "<message to='{b}@localhost/d' type='chat' id='u{i}'><body>{i}</body></message>"
        ))
        .await;
        dora.recv_until(&format!("id='u{i}'")).await;
    }
    drop(dora);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // She resumes through the other node (her home directly this time).
    let mut dora = Client::connect(&c.nodes[1], Some(&c.nodes[1].token(&b))).await;
    dora.jid = format!("{b}@localhost");
    dora.open().await;
    assert!(dora.auth_plain(&b, "").await.contains("<success"));
    dora.open().await;
    dora.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' h='0' previd='{id}'/>"
    ))
    .await;
    let r = dora.recv_until("<resumed").await;
    assert!(r.contains(&format!("previd='{id}'")), "{r}");
    let mut again = Vec::new();
    while again.len() < 3 {
        let m = dora.recv_until("<message").await;
        again.push(m);
    }
    assert!(
        again[0].contains("id='off1'")
            && again[1].contains("id='u0'")
            && again[2].contains("id='u1'"),
        "{again:?}"
    );
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(WAIT)).ok()?;
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    Some(out)
}

/// `deploy/local-cluster.sh` starts PostgreSQL, nats-server and two nodes that form one
/// cluster, and on SIGTERM stops everything it started.
#[test]
fn the_local_cluster_script_starts_a_cluster_and_stops_everything() {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let errlog = temp_dir().join("local-cluster.err");
    let mut child = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/local-cluster.sh"
        ))
        .args(["2", "120"])
        .env("AOBA_BIN", bin())
        .env("AOBA_PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&errlog).unwrap())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut nodes = Vec::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        if let Some(rest) = l.strip_prefix("node ") {
            let ws = rest.split(' ').nth(1).unwrap();
            nodes.push(
                ws.trim_start_matches("ws://")
                    .trim_end_matches("/xmpp")
                    .to_string(),
            );
        }
        if l == "cluster ready" {
            break;
        }
    }
    assert_eq!(
        nodes.len(),
        2,
        "{nodes:?}: {}",
        std::fs::read_to_string(&errlog).unwrap_or_default()
    );
    for n in &nodes {
        let mut seen = String::new();
        for _ in 0..100 {
            seen = http_get(n, "/health").unwrap_or_default();
            if seen.contains("\"members\":2}") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(seen.contains("\"members\":2}"), "{n}: {seen}");
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(
        rest.iter().any(|l| l == "cluster stopped"),
        "{rest:?} {status:?}"
    );
    for n in &nodes {
        assert!(
            std::net::TcpStream::connect(n).is_err(),
            "{n} still listening"
        );
    }
}

/// Reads `ws` until it ends or stays silent for `idle`; the ids (`PREFIX…`) of what came.
fn live_ids(
    mut c: Client,
    prefix: &'static str,
    idle: Duration,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut got = Vec::new();
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(idle, futures_util::StreamExt::next(&mut c.ws)).await
        {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                got.extend(ids(&t, prefix));
            }
        }
        got
    })
}

/// Every id `id='PREFIX…'` of a message in `s`.
fn ids(s: &str, prefix: &str) -> Vec<String> {
    let pat = format!("id='{prefix}");
    s.match_indices(&pat)
        .map(|(i, _)| {
            let rest = &s[i + 4..];
            rest[..rest.find('\'').unwrap()].to_string()
        })
        .collect()
}

/// The ids of every message in `c`'s archive (XEP-0313, pages of 100).
async fn archived(c: &mut Client, prefix: &str) -> Vec<String> {
    archived_at(c, None, prefix).await
}

/// `archived`, of the archive at `to` (a room's, XEP-0313 §5) when given.
async fn archived_at(c: &mut Client, to: Option<&str>, prefix: &str) -> Vec<String> {
    let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let set = if after.is_empty() {
            "<max>100</max>".to_string()
        } else {
            format!("<max>100</max><after>{after}</after>")
        };
        c.send(&format!("<iq type='set' id='mam'{to}><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>{set}</set></query></iq>")).await;
        let mut n = 0;
        loop {
            let m = c.recv().await;
            if m.contains("id='mam'") && m.contains("<fin") {
                let complete = m.contains("complete='true'");
                if let Some(i) = m.find("<last>") {
                    after = m[i + 6..m.find("</last>").unwrap()].to_string();
                }
                if complete || n == 0 {
                    return out;
                }
                break;
            }
            if m.contains("<result xmlns='urn:xmpp:mam:2'") {
                n += 1;
                out.extend(ids(&m, prefix));
            }
        }
    }
}

/// `kill -9` of one of three nodes in the middle of a chat load whose recipients live on
/// it: every message a sender got `<a h/>` for was delivered live or is in the
/// recipient's archive afterwards (at the recipient's new home), and the senders' acks
/// resume once the cluster has dropped the dead node (what it had not confirmed is
/// routed to the new homes). Default timeouts: the failure is noticed after 5 s.
#[tokio::test]
async fn kill_9_of_a_node_in_a_chat_load_loses_nothing_acknowledged() {
    node_stops_in_a_chat_load(true).await;
}

/// The same load, with the node stopped cleanly (SIGTERM): it leaves the cluster, its
/// clients are told `system-shutdown`, and every acknowledged message is delivered or
/// archived at the recipients' new home.
#[tokio::test]
async fn a_clean_stop_of_a_node_in_a_chat_load_loses_nothing_acknowledged() {
    node_stops_in_a_chat_load(false).await;
}

async fn node_stops_in_a_chat_load(kill: bool) {
    let mut c = cluster(3).await;
    const SENDERS: usize = 4;
    const PER: usize = 60;
    let senders: Vec<String> = (0..SENDERS)
        .map(|i| c.user_on(0, &format!("snd{i}x")))
        .collect();
    let rcpts: Vec<String> = (0..SENDERS)
        .map(|i| c.user_on(2, &format!("rcv{i}x")))
        .collect();
    // Recipients on the node that dies; each records what it got live.
    let mut live = Vec::new();
    for r in &rcpts {
        let cl = Client::online(&c.nodes[2], r, "r", 0).await;
        live.push(live_ids(cl, "s", Duration::from_secs(60)));
    }
    let mut tx = Vec::new();
    for (i, s) in senders.iter().enumerate() {
        let mut cl = Client::online(&c.nodes[0], s, "s", 0).await;
        sm_enable(&mut cl).await;
        tx.push((cl, rcpts[i].clone(), i));
    }
    // The first third, acknowledged.
    for (cl, to, i) in tx.iter_mut() {
        for k in 0..PER / 3 {
            cl.send(&format!("<message to='{to}@localhost' type='chat' id='s{i}-{k}'><body>m {i} {k}</body></message>")).await;
        }
        cl.send("<r xmlns='urn:xmpp:sm:3'/>").await;
        let a = cl.recv_until("<a xmlns='urn:xmpp:sm:3'").await;
        assert!(a.contains(&format!("h='{}'", PER / 3)), "{a}");
    }
    // The second third goes out, then node 3 dies with it in flight.
    for (cl, to, i) in tx.iter_mut() {
        for k in PER / 3..2 * PER / 3 {
            cl.send(&format!("<message to='{to}@localhost' type='chat' id='s{i}-{k}'><body>m {i} {k}</body></message>")).await;
        }
    }
    if kill {
        c.nodes[2].kill9();
    } else {
        let st = c.nodes[2].terminate();
        assert!(st.is_some_and(|s| s.success()), "{st:?}");
    }
    // The last third while the cluster notices.
    let mut acked_n = [0usize; SENDERS];
    for (cl, to, i) in tx.iter_mut() {
        for k in 2 * PER / 3..PER {
            cl.send(&format!("<message to='{to}@localhost' type='chat' id='s{i}-{k}'><body>m {i} {k}</body></message>")).await;
        }
        acked(cl, PER).await;
        acked_n[*i] = PER;
    }
    let mut live_ids = std::collections::HashSet::new();
    for l in live {
        live_ids.extend(l.await.unwrap());
    }
    // Every recipient, back through node 1, finds the rest in its archive.
    let mut lost = Vec::new();
    let mut dups = 0;
    for (i, r) in rcpts.iter().enumerate() {
        let mut cl = Client::login(&c.nodes[0], r, Some("again")).await;
        let all = archived(&mut cl, "s").await;
        let arch: std::collections::HashSet<String> = all.iter().cloned().collect();
        // Stored once, even what was routed again after the node's death.
        dups += all.len() - arch.len();
        for k in 0..acked_n[i] {
            let id = format!("s{i}-{k}");
            if !live_ids.contains(&id) && !arch.contains(&id) {
                lost.push(id);
            }
        }
    }
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    assert_eq!(dups, 0, "messages archived twice");
}

/// `cluster.outbox_bytes_max`, exceeded many times over: the sender's shard stops reading
/// until the other node confirms what it holds, and nothing is lost or reordered.
#[tokio::test]
async fn a_small_outbox_shapes_the_sender_and_loses_nothing() {
    let c = cluster_with(2, "outbox_bytes_max = 4096\n").await;
    let (a, b) = (c.user_on(0, "fast"), c.user_on(1, "far"));
    let mut bob = Client::online(&c.nodes[1], &b, "r", 0).await;
    let mut alice = Client::online(&c.nodes[0], &a, "r", 0).await;
    sm_enable(&mut alice).await;
    let pad = "x".repeat(300);
    const N: usize = 300;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < N {
            let m = bob.recv_until("<message").await;
            got.extend(ids(&m, "o"));
        }
        got
    });
    for k in 0..N {
        alice
            .send(&format!(
                "<message to='{b}@localhost' type='chat' id='o{k}'><body>{pad}</body></message>"
            ))
            .await;
    }
    acked(&mut alice, N).await;
    let got = reader.await.unwrap();
    let want: Vec<String> = (0..N).map(|k| format!("o{k}")).collect();
    assert_eq!(got, want);
}

/// A node stopped (SIGSTOP) longer than the failure timeout is removed by the others;
/// when it wakes (SIGCONT) it is fenced: it exits, and what its clients sent while it was
/// stopped is never committed by it (its storage checks its membership in the same
/// transaction). Its users are served by the other node meanwhile.
#[tokio::test]
async fn a_stopped_node_is_removed_and_fenced_when_it_wakes() {
    let mut c = cluster(2).await;
    let (x, y) = (c.user_on(1, "stx"), c.user_on(0, "sty"));
    let mut xc = Client::online(&c.nodes[1], &x, "r", 0).await;
    let pid = c.nodes[1].pid() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // Sent while its node is stopped: these wait in the kernel's socket buffer.
    for k in 0..5 {
        xc.send(&format!("<message to='{y}@localhost' type='chat' id='stop-{k}'><body>zombie {k}</body></message>")).await;
    }
    // Node 1 removes it after the failure timeout (5 s by default).
    c.converged_on(0, 1).await;
    // Meanwhile its users are homed on node 1, which serves them.
    let mut xd = Client::online(&c.nodes[0], &x, "new", 0).await;
    let mut yc = Client::online(&c.nodes[0], &y, "r", 0).await;
    xd.send(&format!(
        "<message to='{y}@localhost' type='chat' id='alive'><body>served</body></message>"
    ))
    .await;
    assert!(yc.recv_until("<message").await.contains("id='alive'"));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let status = c.nodes[1].wait_exit().expect("the fenced node exits");
    assert_eq!(status.code(), Some(3), "{}", c.nodes[1].log());
    drop(xc);
    // Nothing it read after waking was stored by it.
    let mut arch = Client::login(&c.nodes[0], &x, Some("check")).await;
    let got = archived(&mut arch, "stop-").await;
    assert!(got.is_empty(), "the fenced node committed {got:?}");
    assert!(c.nodes[1].log().contains("fenced"), "{}", c.nodes[1].log());
}

/// A node whose membership row is gone (removed by the others, say after a partition that
/// left its own PostgreSQL session up) commits nothing more: its storage checks the row in
/// every batch's transaction, and it exits instead of committing.
#[tokio::test]
async fn a_node_removed_from_the_cluster_commits_nothing_more() {
    let mut c = cluster(2).await;
    let (x, y) = (c.user_on(1, "rmx"), c.user_on(0, "rmy"));
    let mut xc = Client::online(&c.nodes[1], &x, "r", 0).await;
    let db = c.db.clone();
    pgtest::off_runtime(move || {
        let mut pg = postgres::Client::connect(&db, postgres::NoTls).unwrap();
        pg.execute("DELETE FROM cluster_node WHERE name = 'n2'", &[])
            .unwrap();
    });
    // Its sent-message archive copy is a write: refused at COMMIT.
    xc.send(&format!(
        "<message to='{y}@localhost' type='chat' id='gone-1'><body>after removal</body></message>"
    ))
    .await;
    let status = c.nodes[1].wait_exit().expect("the removed node exits");
    assert_eq!(status.code(), Some(3), "{}", c.nodes[1].log());
    c.converged_on(0, 1).await;
    let mut arch = Client::login(&c.nodes[0], &x, Some("check")).await;
    let got = archived(&mut arch, "gone-").await;
    assert!(got.is_empty(), "the removed node committed {got:?}");
}

/// nats-server restarts in the middle of a chat load between two nodes: what was in
/// flight is lost by the bus, acknowledgements stall meanwhile (none is false), then the
/// senders' nodes send again what was not confirmed: every acknowledged message is
/// delivered live or archived.
#[tokio::test]
async fn a_nats_restart_mid_load_stalls_acks_but_loses_nothing() {
    let mut c = cluster(2).await;
    const N: usize = 60;
    let (a, b) = (c.user_on(0, "natsa"), c.user_on(1, "natsb"));
    let bob = Client::online(&c.nodes[1], &b, "r", 0).await;
    let live = live_ids(bob, "n", Duration::from_secs(15));
    let mut alice = Client::online(&c.nodes[0], &a, "r", 0).await;
    sm_enable(&mut alice).await;
    for k in 0..N {
        if k == N / 2 {
            c.nats.restart();
        }
        alice
            .send(&format!(
                "<message to='{b}@localhost' type='chat' id='n{k}'><body>{k}</body></message>"
            ))
            .await;
    }
    acked(&mut alice, N).await;
    let live: std::collections::HashSet<String> = live.await.unwrap().into_iter().collect();
    let mut bob = Client::login(&c.nodes[1], &b, Some("check")).await;
    let arch: std::collections::HashSet<String> =
        archived(&mut bob, "n").await.into_iter().collect();
    let lost: Vec<String> = (0..N)
        .map(|k| format!("n{k}"))
        .filter(|id| !live.contains(id) && !arch.contains(id))
        .collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
}

/// XMPP-FTW across nodes: `tests/ftw/scenarios.mjs chat_with_xml` (socket.io-client and an
/// XML client) with the JSON session landing on one node and the XML one on the other,
/// both relayed to their users' homes on the opposite nodes.
#[tokio::test]
async fn xmpp_ftw_to_xml_across_nodes() {
    let c = cluster(2).await;
    // A (JSON) lives on node 2 and lands on node 1; B (XML) the other way round.
    let (a, b) = (c.user_on(1, "ftwa"), c.user_on(0, "ftwb"));
    let tokens =
        serde_json::json!({ a.clone(): c.nodes[0].token(&a), b.clone(): c.nodes[0].token(&b) });
    ftw_scenario(&c, "chat_with_xml", &a, &b, tokens);
    // Both sessions were relayed: each node relayed one to the other.
    for n in &c.nodes {
        assert!(
            n.log().contains("relayed to the user's node"),
            "{}",
            n.log()
        );
        assert!(
            n.log().contains("relayed connection at its home"),
            "{}",
            n.log()
        );
    }
}

/// A new persistent room named `name`, created by "alpha" (a user of node 1) and joined by
/// "beta" (a user of node 2), each on its home node.
async fn persistent_room_of_two(
    c: &Cluster,
    room: &str,
    prefix: &str,
    name: &str,
) -> (Client, Client) {
    // Users of nodes 1 and 2 that stay there when a third node joins.
    let three = ["n1", "n2", "n3"];
    let u1 = c.user_staying_on(0, &format!("{prefix}a"), &three);
    let u2 = c.user_staying_on(1, &format!("{prefix}b"), &three);
    let mut a = Client::online(&c.nodes[0], &u1, "r", 0).await;
    let mut b = Client::online(&c.nodes[1], &u2, "r", 0).await;
    let got = join(&mut a, room, "alpha", "").await;
    assert!(
        got.iter().any(|m| m.contains("code='201'")),
        "created: {got:?}"
    );
    common::muc::configure(
        &mut a,
        room,
        &[
            ("muc#roomconfig_persistentroom", "1"),
            ("muc#roomconfig_roomname", name),
        ],
    )
    .await;
    join(&mut b, room, "beta", "").await;
    a.recv_until("/beta'").await;
    (a, b)
}

/// `kill -9` of the node a room lives on: its occupants, on the other nodes, are told
/// they left the room (status 110 and 332), join again, and the room works at its new
/// home.
#[tokio::test]
async fn occupants_of_a_room_whose_node_dies_are_told_and_rejoin() {
    let mut c = cluster(3).await;
    let room = (0..1000)
        .map(|k| format!("group-5a1e8f00-0000-4000-8000-{k:012}@conference.localhost"))
        .find(|r| c.home(r) == 2)
        .unwrap();
    let (mut a, mut b) = persistent_room_of_two(&c, &room, "roo", "Survives").await;
    c.nodes[2].kill9();
    for (cl, nick) in [(&mut a, "alpha"), (&mut b, "beta")] {
        let p = cl
            .recv_until_within("code='332'", Duration::from_secs(40))
            .await;
        assert!(
            p.contains(&format!("from='{room}/{nick}'"))
                && p.contains("type='unavailable'")
                && p.contains("code='110'"),
            "{p}"
        );
    }
    // Both join again: the new home loaded the stored room (not a new one).
    let got = join(&mut a, &room, "alpha", "").await;
    assert!(got.iter().any(|m| m.contains("<subject")), "{got:?}");
    assert!(
        !got.iter().any(|m| m.contains("code='201'")),
        "the room exists: {got:?}"
    );
    a.send(&format!("<iq type='get' id='ri' to='{room}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")).await;
    let info = a.recv_until("id='ri'").await;
    assert!(info.contains("name='Survives'"), "{info}");
    join(&mut b, &room, "beta", "").await;
    a.send(&format!(
        "<message to='{room}' type='groupchat' id='after'><body>back</body></message>"
    ))
    .await;
    for cl in [&mut a, &mut b] {
        let m = cl.recv_until("<body>back</body>").await;
        assert!(m.contains(&format!("from='{room}/alpha'")), "{m}");
    }
}

/// A native client over RFC 6120 TCP lands on a node that is not its user's home: SASL
/// there, then the restarted stream is relayed home; it chats with a WebSocket user who is
/// relayed the other way, and ends its stream.
#[tokio::test]
async fn a_tcp_client_on_another_node_is_relayed_home() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = cluster(2).await;
    let (t_user, w_user) = (c.user_on(1, "tcpu"), c.user_on(0, "wsu"));
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", c.nodes[0].c2s_port.unwrap()))
        .await
        .unwrap();
    let mut have = String::new();
    async fn until(s: &mut tokio::net::TcpStream, have: &mut String, pat: &str) -> String {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = have.find(pat) {
                let rest = have.split_off(i + pat.len());
                return std::mem::replace(have, rest);
            }
            let n = tokio::time::timeout(WAIT, s.read(&mut buf))
                .await
                .expect("in time")
                .unwrap();
            assert!(n > 0, "closed while waiting for {pat}: {have}");
            have.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
    }
    let header = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    s.write_all(header.as_bytes()).await.unwrap();
    until(&mut s, &mut have, "</stream:features>").await;
    let creds = b64(&format!("\0{t_user}\0{}", c.nodes[0].token(&t_user)));
    s.write_all(
        format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>")
            .as_bytes(),
    )
    .await
    .unwrap();
    until(&mut s, &mut have, "<success").await;
    // The restart and the bind are the home's (node 2).
    s.write_all(header.as_bytes()).await.unwrap();
    let f = until(&mut s, &mut have, "</stream:features>").await;
    assert!(
        f.contains("<stream:stream") && f.contains("urn:ietf:params:xml:ns:xmpp-bind"),
        "{f}"
    );
    s.write_all(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>gajim</resource></bind></iq><presence/>").await.unwrap();
    let b = until(&mut s, &mut have, "</iq>").await;
    assert!(
        b.contains(&format!("<jid>{t_user}@localhost/gajim</jid>")),
        "{b}"
    );
    // The WebSocket user lands on node 2 and lives on node 1.
    let mut w = Client::online(&c.nodes[1], &w_user, "web", 0).await;
    s.write_all(format!("<message to='{w_user}@localhost' type='chat' id='t1'><body>h\u{e9}llo from tcp</body></message>").as_bytes()).await.unwrap();
    let m = w.recv_until("id='t1'").await;
    assert!(
        m.contains("h\u{e9}llo from tcp")
            && m.contains(&format!("from='{t_user}@localhost/gajim'")),
        "{m}"
    );
    w.send(&format!(
        "<message to='{t_user}@localhost/gajim' type='chat' id='w1'><body>back</body></message>"
    ))
    .await;
    let back = until(&mut s, &mut have, "</message>").await;
    assert!(
        back.contains("id='w1'") && !back.contains('\u{81}'),
        "no WebSocket framing: {back:?}"
    );
    s.write_all(b"</stream:stream>").await.unwrap();
    let mut rest = have.clone();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(WAIT, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(rest.trim_end().ends_with("</stream:stream>"), "{rest}");
}

/// XEP-0198 when the session's home dies: the client, relayed through a node that lives,
/// loses its connection; its `<resume/>` through the live node gets `<failed/>` (the
/// state died with its home), it binds again and finds what it was sent in its archive.
#[tokio::test]
async fn a_session_whose_home_died_fails_to_resume_and_recovers_from_its_archive() {
    let mut c = cluster(3).await;
    let (u, s) = (c.user_on(2, "doomed"), c.user_on(0, "steady"));
    let mut uc = Client::online(&c.nodes[0], &u, "r", 0).await;
    let id = sm_enable(&mut uc).await;
    let mut sc = Client::online(&c.nodes[0], &s, "r", 0).await;
    sm_enable(&mut sc).await;
    for k in 0..3 {
        sc.send(&format!(
            "<message to='{u}@localhost' type='chat' id='d{k}'><body>{k}</body></message>"
        ))
        .await;
        uc.recv_until(&format!("id='d{k}'")).await;
    }
    sc.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    sc.recv_until("<a xmlns='urn:xmpp:sm:3'").await;
    c.nodes[2].kill9();
    // Node 1 ends the relayed connection once the view drops node 3.
    let end = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            match futures_util::StreamExt::next(&mut uc.ws).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))
                    if t.contains("system-shutdown") =>
                {
                    return true;
                }
                Some(Ok(_)) => {}
                _ => return false,
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "the relayed connection ends after its home died"
    );
    let mut again = Client::connect(&c.nodes[0], Some(&c.nodes[0].token(&u))).await;
    again.jid = format!("{u}@localhost");
    again.open().await;
    assert!(again.auth_plain(&u, "").await.contains("<success"));
    again.open().await;
    again
        .send(&format!(
            "<resume xmlns='urn:xmpp:sm:3' h='3' previd='{id}'/>"
        ))
        .await;
    let f = again.recv_until("<failed").await;
    assert!(f.contains("item-not-found"), "{f}");
    let b = again.bind(Some("new")).await;
    assert!(b.contains("type='result'"), "{b}");
    let got = archived(&mut again, "d").await;
    for k in 0..3 {
        assert!(got.contains(&format!("d{k}")), "{got:?}");
    }
}

/// A node joins and becomes the home of a persistent room that lived on another node: the
/// occupants are told (332) by the old home, join again, and find the room at the new
/// home with its stored configuration (it is not created anew).
#[tokio::test]
async fn a_joining_node_takes_over_a_room_with_its_configuration() {
    let mut c = cluster(2).await;
    let room = (0..10_000)
        .map(|k| format!("group-6b2e8f00-0000-4000-8000-{k:012}@conference.localhost"))
        .find(|r| {
            c.home(r) == 1 && aoba::cluster::placement::home_of(r, &["n1", "n2", "n3"]) == Some(2)
        })
        .unwrap();
    let (mut a, mut b) = persistent_room_of_two(&c, &room, "jo", "Kept").await;
    // Node 3 joins: the room's home moves to it.
    let url = c.db.clone();
    let nats = c.nats.url();
    c.nodes
        .push(Server::start_with(&config(&url, &nats, "n3", ""), 2));
    c.names.push("n3".into());
    c.converged(3).await;
    for (cl, nick) in [(&mut a, "alpha"), (&mut b, "beta")] {
        let p = cl
            .recv_until_within("code='332'", Duration::from_secs(20))
            .await;
        assert!(
            p.contains(&format!("from='{room}/{nick}'")) && p.contains("type='unavailable'"),
            "{p}"
        );
    }
    // Joining again reaches node 3, which loaded the stored room: not a new room.
    let got = join(&mut a, &room, "alpha", "").await;
    assert!(
        !got.iter().any(|m| m.contains("code='201'")),
        "the room exists: {got:?}"
    );
    a.send(&format!("<iq type='get' id='ri' to='{room}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")).await;
    let info = a.recv_until("id='ri'").await;
    assert!(
        info.contains("name='Kept'") && info.contains("muc_persistent"),
        "{info}"
    );
    join(&mut b, &room, "beta", "").await;
    a.send(&format!(
        "<message to='{room}' type='groupchat' id='n3'><body>on three</body></message>"
    ))
    .await;
    for cl in [&mut a, &mut b] {
        cl.recv_until("<body>on three</body>").await;
    }
}

/// `cluster.redirect`: a WebSocket client whose cookie names a user of another node gets
/// `<open/>` then `<close see-other-uri/>` with that node's `advertise_url` (RFC 7395
/// §3.6.1), and logs in there, where it is served directly.
#[tokio::test]
async fn redirect_sends_a_client_to_its_home_node() {
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let c = cluster_by(2, |i, name, pg, nats| {
        let extra = format!(
            "redirect = true\nadvertise_url = \"ws://127.0.0.1:{}/xmpp\"\n",
            ports[i]
        );
        Server::start_listen(
            &config(pg, nats, name, &extra),
            2,
            &format!("127.0.0.1:{}", ports[i]),
        )
    })
    .await;
    let user = c.user_on(1, "redir");
    let mut cl = Client::connect(&c.nodes[0], Some(&c.nodes[0].token(&user))).await;
    cl.send(OPEN).await;
    let open = cl.recv().await;
    assert!(
        open.starts_with("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'"),
        "{open}"
    );
    let close = cl.recv().await;
    let want = format!("see-other-uri='ws://127.0.0.1:{}/xmpp'", ports[1]);
    assert!(
        close.starts_with("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'")
            && close.contains(&want),
        "{close}"
    );
    cl.expect_end().await;
    // At its home it logs in as usual, with nothing relayed.
    let mut home = Client::online(&c.nodes[1], &user, "r", 0).await;
    home.ping_server("p1").await;
    assert!(c.nodes[0].log().contains("sent to the user's node"));
    assert!(!c.nodes[1].log().contains("relayed connection at its home"));
}

/// `kill -9` of the node a persistent room lives on, in the middle of a groupchat load
/// from occupants on the other two nodes: every groupchat message a sender got `<a h/>`
/// for is in the room's archive afterwards (served by the room's new home).
#[tokio::test]
async fn kill_9_of_a_rooms_node_in_a_groupchat_load_loses_nothing_acknowledged() {
    let mut c = cluster(3).await;
    let room = (0..1000)
        .map(|k| format!("group-7c3e8f00-0000-4000-8000-{k:012}@conference.localhost"))
        .find(|r| c.home(r) == 2)
        .unwrap();
    let users = [c.user_on(0, "gka"), c.user_on(1, "gkb")];
    let mut cls = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let mut cl = Client::online(&c.nodes[i], u, "r", 0).await;
        join(&mut cl, &room, &format!("k{i}"), "").await;
        if i == 0 {
            common::muc::configure(&mut cl, &room, &[("muc#roomconfig_persistentroom", "1")]).await;
        }
        sm_enable(&mut cl).await;
        cls.push(cl);
    }
    const PER: usize = 30;
    // The first half acknowledged; the second half sent, then the room's node dies.
    for (i, cl) in cls.iter_mut().enumerate() {
        for k in 0..PER / 2 {
            cl.send(&format!(
                "<message to='{room}' type='groupchat' id='g{i}-{k}'><body>{i} {k}</body></message>"
            ))
            .await;
        }
        acked(cl, PER / 2).await;
    }
    for (i, cl) in cls.iter_mut().enumerate() {
        for k in PER / 2..PER {
            cl.send(&format!(
                "<message to='{room}' type='groupchat' id='g{i}-{k}'><body>{i} {k}</body></message>"
            ))
            .await;
        }
        cl.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    }
    c.nodes[2].kill9();
    // Whatever h each sender gets now covers messages that are in the room's archive or
    // came back to it as errors (a message the dead node had not confirmed reaches the
    // room at its new home, where the sender is no occupant: refused, and the sender is
    // told before the ack); each is also told it left the room (332).
    let mut acked_h = Vec::new();
    let mut refused = std::collections::HashSet::new();
    for cl in cls.iter_mut() {
        let (mut h, mut told) = (None, false);
        while h.is_none() || !told {
            let m = cl.recv().await;
            if m.starts_with("<a xmlns='urn:xmpp:sm:3'") {
                h = between(&m, "h='", "'").parse::<usize>().ok();
            }
            if m.starts_with("<message") && m.contains("type='error'") {
                refused.extend(ids(&m, "g"));
            }
            told |= m.contains("code='332'");
        }
        acked_h.push(h.unwrap_or(0));
    }
    // The room is at its new home, loaded from storage; a new occupant reads its archive.
    let mut reader = Client::online(&c.nodes[0], &c.user_on(0, "gkr"), "r", 0).await;
    join(&mut reader, &room, "reader", "").await;
    let got: std::collections::HashSet<String> = archived_at(&mut reader, Some(&room), "g")
        .await
        .into_iter()
        .collect();
    let mut lost = Vec::new();
    for (i, h) in acked_h.iter().enumerate() {
        for k in 0..*h {
            let id = format!("g{i}-{k}");
            if !got.contains(&id) && !refused.contains(&id) {
                lost.push(id);
            }
        }
    }
    assert!(acked_h.iter().all(|h| *h >= PER / 2), "{acked_h:?}");
    assert!(
        lost.is_empty(),
        "acknowledged, not in the room's archive, and not refused: {lost:?}"
    );
    // The first half was committed by the room's first home before its death.
    for i in 0..2 {
        for k in 0..PER / 2 {
            assert!(got.contains(&format!("g{i}-{k}")), "g{i}-{k}: {got:?}");
        }
    }
}

/// Archive ids keep increasing per owner when the owner's home moves to a node whose
/// clock is behind (an hour here, a debug-build hook): at every change of view a node
/// raises its ids above the largest stored, so a MAM client paging "after the last id it
/// saw" misses nothing. Before, the new home's ids sorted its messages before the old
/// home's (the archive read `ord5..ord9, ord0..ord4`).
#[tokio::test]
async fn archive_ids_keep_increasing_when_a_home_moves_to_a_node_whose_clock_is_behind() {
    let mut c = cluster_env(2, "", &[&[], &[("AOBA_FAULT_CLOCK_SKEW_MS", "-3600000")]]).await;
    let owner = c.user_on(0, "owner");
    let sender = c.user_on(1, "sender");
    let mut s = Client::online(&c.nodes[1], &sender, "s", 0).await;
    sm_enable(&mut s).await;
    let send = |k: usize| {
        format!(
            "<message to='{owner}@localhost' type='chat' id='ord{k}'><body>{k}</body></message>"
        )
    };
    for k in 0..5 {
        s.send(&send(k)).await;
    }
    acked(&mut s, 5).await;
    // The owner's home leaves cleanly; the node an hour behind is its home now.
    let st = c.nodes[0].terminate();
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
    c.converged_on(1, 1).await;
    for k in 5..10 {
        s.send(&send(k)).await;
    }
    acked(&mut s, 10).await;
    let mut o = Client::login(&c.nodes[1], &owner, Some("o")).await;
    let got = archived(&mut o, "ord").await;
    let want: Vec<String> = (0..10).map(|k| format!("ord{k}")).collect();
    assert_eq!(got, want, "archive order");
}

/// A node's storage caches archive preferences; a user whose home moves away and back
/// must not be archived by stale ones: node 3 joins and becomes the user's home, the user
/// turns archiving off there, node 3 leaves, and back at node 1 the user's next message
/// is not archived (every node drops its cached preferences when the view changes).
#[tokio::test]
async fn archive_preferences_changed_at_another_home_are_followed_when_the_home_comes_back() {
    let mut c = cluster(2).await;
    let three = ["n1", "n2", "n3"];
    let user = (0..1000)
        .map(|k| format!("pref{k}"))
        .find(|u| {
            let key = format!("{u}@{DOMAIN}");
            c.home(u) == 0 && aoba::cluster::placement::home_of(&key, &three) == Some(2)
        })
        .unwrap();
    let peer = c.user_staying_on(1, "peer", &three);
    let msg = |k: usize| {
        format!("<message to='{peer}@localhost' type='chat' id='pf{k}'><body>{k}</body></message>")
    };
    let mut u = Client::online(&c.nodes[0], &user, "u", 0).await;
    sm_enable(&mut u).await;
    u.send(&msg(0)).await;
    acked(&mut u, 1).await; // archived at node 1, its preferences cached there
    drop(u);
    let (url, nats) = (c.db.clone(), c.nats.url());
    c.nodes
        .push(Server::start_with(&config(&url, &nats, "n3", ""), 2));
    c.names.push("n3".into());
    c.converged(3).await;
    let mut u = Client::online(&c.nodes[2], &user, "u", 0).await;
    u.send("<iq type='set' id='off'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>")
        .await;
    assert!(u.recv_until("id='off'").await.contains("type='result'"));
    drop(u);
    let st = c.nodes[2].terminate();
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
    c.converged_on(0, 2).await;
    let mut u = Client::online(&c.nodes[0], &user, "u", 0).await;
    sm_enable(&mut u).await;
    u.send(&msg(1)).await;
    acked(&mut u, 1).await;
    let got = archived(&mut u, "pf").await;
    assert_eq!(got, ["pf0"], "archived against the user's preferences");
}

/// XMPP-FTW logins that carry the token in the JSON (no cookie), on a node that is not the
/// user's home: the login event is relayed there with the session, the home checks the
/// token and answers it; a bad token is refused where the client landed. Socket.IO and
/// Primus, then chat with an XML client of the other node (before, such a login was
/// refused with a stream error asking for the cookie).
#[tokio::test]
async fn xmpp_ftw_logins_with_the_token_in_json_are_relayed_home() {
    let c = cluster(2).await;
    // A (JSON) lives on node 2 and lands on node 1; B (XML) lives on node 1, lands on 2.
    let (a, b) = (c.user_on(1, "jsona"), c.user_on(0, "xmlb"));
    let bad = token_claims(
        serde_json::json!({"sub": a, "exp": now() + 3600}),
        "not-the-server-secret-0123456789",
    );
    let tokens = serde_json::json!({
        a.clone(): c.nodes[0].token(&a), b.clone(): c.nodes[0].token(&b), "bad": bad
    });
    ftw_scenario(&c, "login_in_json_relayed", &a, &b, tokens);
    assert_eq!(
        c.nodes[0]
            .log()
            .matches("an XMPP-FTW login for a user of another node: relayed")
            .count(),
        2,
        "{}",
        c.nodes[0].log()
    );
}

/// Two nodes' views differ for a while (node 2 learns every view 4 s late, a debug-build
/// hook): node 3 joins and becomes a room's home; node 1 knows, node 2 does not yet. A
/// join from a client of node 2 goes to node 1 by node 2's old view; node 1's newer view
/// sends it on to node 3, where the room is. So both occupants, one joining through each
/// node, are in the same room and hear each other. (Before, node 1 loaded the room again
/// and seated the joiner in a second copy nobody else was in.)
#[tokio::test]
async fn a_room_stanza_routed_by_an_older_view_reaches_the_rooms_home_by_the_newer() {
    let mut c = cluster_env(2, "", &[&[], &[("AOBA_FAULT_VIEW_DELAY_MS", "4000")]]).await;
    let room = (0..10_000)
        .map(|k| format!("group-7c3e9f00-0000-4000-8000-{k:012}@conference.localhost"))
        .find(|r| {
            c.home(r) == 0 && aoba::cluster::placement::home_of(r, &["n1", "n2", "n3"]) == Some(2)
        })
        .unwrap();
    let three = ["n1", "n2", "n3"];
    let (ua, ub) = (
        c.user_staying_on(1, "lagj", &three),
        c.user_staying_on(0, "upj", &three),
    );
    let mut b = Client::online(&c.nodes[0], &ub, "r", 0).await;
    join(&mut b, &room, "beta", "").await;
    common::muc::configure(
        &mut b,
        &room,
        &[
            ("muc#roomconfig_persistentroom", "1"),
            ("muc#roomconfig_roomname", "Moving"),
        ],
    )
    .await;
    // Node 3 joins: nodes 1 and 3 route by three members, node 2 still by two.
    let (url, nats) = (c.db.clone(), c.nats.url());
    c.nodes
        .push(Server::start_with(&config(&url, &nats, "n3", ""), 2));
    c.names.push("n3".into());
    c.converged_on(0, 3).await;
    c.converged_on(2, 3).await;
    let h = c.nodes[1].http_get("/health").await;
    assert!(
        h.contains("\"members\":2}"),
        "node 2 learnt the view too early: {h}"
    );
    b.recv_until_within("code='332'", Duration::from_secs(20))
        .await;
    // A joins through node 2 (old view: the room is on node 1), B again through node 1.
    let mut a = Client::online(&c.nodes[1], &ua, "r", 0).await;
    let got = join(&mut a, &room, "alpha", "").await;
    assert!(
        !got.iter().any(|m| m.contains("code='201'"))
            && got.iter().any(|m| m.contains("code='110'")),
        "{got:?}"
    );
    join(&mut b, &room, "beta", "").await;
    b.send(&format!(
        "<message to='{room}' type='groupchat' id='same'><body>one room</body></message>"
    ))
    .await;
    let m = a.recv_until("<body>one room</body>").await;
    assert!(m.contains(&format!("from='{room}/beta'")), "{m}");
    assert!(
        c.nodes[0]
            .log()
            .contains("routed by an older view: sent on"),
        "{}",
        c.nodes[0].log()
    );
}

/// The admin API across nodes. Without `cluster.admin_url`, a call for a user or room homed
/// on another node is answered 421 `redirect` naming that node (its shards do not hold
/// it, and changing it there would fork it). With it, the call is forwarded to the home
/// node's admin API and answered from there; and a user's deletion removes its
/// affiliations from the rooms homed on every node (before, only on the node that ran it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_forwards_calls_to_the_home_node_or_names_it() {
    use common::admin::Api;
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("admin-token");
    std::fs::write(&tok, format!("{}\n", common::admin::TOKEN)).unwrap();
    // n1 and n2 can be asked by the others; n3 cannot (no admin_url).
    let c = cluster_by(3, |_, name, pg, nats| {
        let admin = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let mut extra = format!("advertise_url = \"ws://{name}.example/xmpp\"\n");
        if name != "n3" {
            extra.push_str(&format!("admin_url = \"http://{admin}\"\n"));
        }
        let cfg = format!(
            "[admin]\ntoken_file = {:?}\n{}",
            tok.to_str().unwrap(),
            config(pg, nats, name, &extra)
        );
        Server::start_admin_at(&cfg, 2, &admin)
    })
    .await;
    let (on2, on3) = (c.user_on(1, "adm"), c.user_on(2, "adm"));
    let api = Api(&c.nodes[0]);
    // Forwarded to n2, answered there.
    let v = api.ok("PUT", &format!("/api/users/{on2}"), "");
    assert_eq!(v["created"], true, "{v}");
    let v = api.ok("GET", &format!("/api/users/{on2}"), "");
    assert_eq!(v["known"], true, "{v}");
    // n3 has no admin URL: named instead.
    let text = api.refused("PUT", &format!("/api/users/{on3}"), "", 421, "redirect");
    assert!(
        text.contains("node n3") && text.contains("ws://n3.example/xmpp"),
        "{text}"
    );
    // Rooms homed on n1 and on n2, both naming the user of n2 as a member; created
    // through n1's admin API (the one on n2 forwarded).
    let room_on = |i: usize| {
        (0..1000)
            .map(|k| format!("group-8d4e0f00-0000-4000-8000-{k:012}@conference.localhost"))
            .find(|r| c.home(r) == i)
            .unwrap()
    };
    let member = format!(r#"{{"items": [{{"jid": "{on2}@localhost", "affiliation": "member"}}]}}"#);
    for i in [0, 1] {
        let room = room_on(i);
        api.ok("PUT", &format!("/api/rooms/{room}"), "{}");
        api.ok("PUT", &format!("/api/rooms/{room}/affiliations"), &member);
    }
    // The deletion runs on n2 (forwarded) and reaches n1's room too.
    let v = api.ok("DELETE", &format!("/api/users/{on2}"), "");
    assert_eq!(v["deleted"]["affiliations"], 2, "{v}");
    for i in [0, 1] {
        let room = api.ok("GET", &format!("/api/rooms/{}", room_on(i)), "");
        assert_eq!(room["affiliations"], serde_json::json!([]), "{room}");
    }
    // The same deletion asked of the home node itself: it asks n1 for n1's room.
    let other = c.user_on(1, "adx");
    let member =
        format!(r#"{{"items": [{{"jid": "{other}@localhost", "affiliation": "member"}}]}}"#);
    api.ok("PUT", &format!("/api/users/{other}"), "");
    api.ok(
        "PUT",
        &format!("/api/rooms/{}/affiliations", room_on(0)),
        &member,
    );
    let v = Api(&c.nodes[1]).ok("DELETE", &format!("/api/users/{other}"), "");
    assert_eq!(v["deleted"]["affiliations"], 1, "{v}");
    let room = api.ok("GET", &format!("/api/rooms/{}", room_on(0)), "");
    assert_eq!(room["affiliations"], serde_json::json!([]), "{room}");
}

/// XEP-0280 carbons across nodes: a user's two devices land on different nodes (both
/// sessions live at its home); a message it sends from one reaches the other as `<sent/>`,
/// and a message to the first from a user of the other node reaches the second as
/// `<received/>`.
#[tokio::test]
async fn carbons_across_nodes() {
    let c = cluster(2).await;
    let (a, b) = (c.user_on(0, "carba"), c.user_on(1, "carbb"));
    let mut a1 = Client::online(&c.nodes[0], &a, "one", 0).await;
    let mut a2 = Client::online(&c.nodes[1], &a, "two", 0).await;
    let mut b1 = Client::online(&c.nodes[0], &b, "bee", 0).await;
    for cl in [&mut a1, &mut a2] {
        cl.send("<iq id='cb' type='set'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
            .await;
        assert!(cl.recv_until("id='cb'").await.contains("type='result'"));
    }
    a1.send(&format!(
        "<message to='{b}@localhost/bee' type='chat' id='out1'><body>sent</body></message>"
    ))
    .await;
    assert!(
        b1.recv_until("id='out1'")
            .await
            .contains("<body>sent</body>")
    );
    let s = a2.recv_until("id='out1'").await;
    assert!(s.contains("<sent xmlns='urn:xmpp:carbons:2'>"), "{s}");
    b1.send(&format!(
        "<message to='{a}@localhost/one' type='chat' id='in1'><body>back</body></message>"
    ))
    .await;
    assert!(
        a1.recv_until("id='in1'")
            .await
            .contains("<body>back</body>")
    );
    let r = a2.recv_until("id='in1'").await;
    assert!(r.contains("<received xmlns='urn:xmpp:carbons:2'>"), "{r}");
}
