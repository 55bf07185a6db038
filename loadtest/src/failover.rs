//! `failover` (issue 14): in an Aoba cluster, the time from a node's `kill -9` to the
//! first delivery to a user who was homed there. A user V homed on the victim node is
//! connected through a surviving node (relayed); a user S of another node sends V a chat
//! message every 10 ms. The victim is killed; V's connection ends when the cluster drops
//! the node; V logs in again at once (its new home is another node), and the first message
//! it gets after the kill (stored offline meanwhile, or live) is the delivery timed.

use crate::client::{self, ClientCfg};
use crate::opts::FailoverOpts;
use crate::transport::Frame;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(f: &FailoverOpts) -> Result<(), String> {
    let o = &f.opts;
    let nodes = &o.cluster_nodes;
    let victim = nodes
        .iter()
        .position(|n| *n == f.victim)
        .ok_or("--victim must be one of --cluster-nodes")?;
    let live = (0..nodes.len())
        .find(|&i| i != victim)
        .ok_or("the cluster needs a second node")?;
    let home = |u: &str| {
        aoba::cluster::placement::home_of(&format!("{u}@{}", o.domain), nodes)
            .map(|i| nodes[i].clone())
    };
    let pick = |tag: &str, node: &str| {
        (0..100_000)
            .map(|k| format!("{}{tag}{k}", o.users_prefix))
            .find(|u| home(u).as_deref() == Some(node))
    };
    let v_user = pick("fv", &nodes[victim]).ok_or("no user for the victim")?;
    let s_user = pick("fs", &nodes[live]).ok_or("no user for the sender")?;
    let mut cfg: ClientCfg = (*o.client_cfg()).clone();
    cfg.names = Some(Arc::new(vec![v_user.clone(), s_user.clone()]));
    let cfg = Arc::new(cfg);
    let target = cfg.targets[live].clone();
    let login = |n: usize| {
        let cfg = cfg.clone();
        let target = target.clone();
        async move { client::login(&cfg, &target, n, cfg.src_addr(n)).await }
    };
    let mut v = login(1)
        .await
        .map_err(|e| format!("login {v_user}: {e:?}"))?;
    let s = login(2)
        .await
        .map_err(|e| format!("login {s_user}: {e:?}"))?;
    let to = format!("{v_user}@{}", o.domain);
    let sender = tokio::spawn(async move {
        let mut conn = s.conn;
        let mut seq = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            let m = format!(
                "<message to='{to}' type='chat' id='fo{seq}'><body>fo {seq}</body></message>"
            );
            if conn.send(m).await.is_err() {
                return seq;
            }
            seq += 1;
        }
    });
    // Steady state first: V receives.
    let until = Instant::now() + Duration::from_secs(10);
    let mut before = 0u64;
    while before < 20 && Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(5), v.conn.recv()).await {
            Ok(Ok(Some(Frame::Stanza(t)))) if t.contains("<body>fo ") => before += 1,
            Ok(Ok(Some(_))) => {}
            _ => return Err("no messages before the kill".into()),
        }
    }
    let t0 = Instant::now();
    // SAFETY: kill has no memory preconditions; the pid is the caller's to kill.
    unsafe { libc::kill(f.kill_pid as i32, libc::SIGKILL) };
    let bound = t0 + Duration::from_secs_f64(f.bound_s);
    // The old connection ends when the landing node drops the dead home.
    let mut ended = None;
    while Instant::now() < bound {
        match tokio::time::timeout(Duration::from_millis(200), v.conn.recv()).await {
            Ok(Ok(Some(Frame::Stanza(_)))) | Err(_) => {}
            _ => {
                ended = Some(t0.elapsed());
                break;
            }
        }
    }
    let ended = ended.ok_or("the old connection did not end")?;
    let mut relogin = None;
    while relogin.is_none() && Instant::now() < bound {
        match login(1).await {
            Ok(s) => {
                relogin = Some((t0.elapsed(), s));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let (relogin_at, mut v2) = relogin.ok_or("no login again within the bound")?;
    let mut first = None;
    while first.is_none() && Instant::now() < bound {
        match tokio::time::timeout(Duration::from_secs(1), v2.conn.recv()).await {
            Ok(Ok(Some(Frame::Stanza(t)))) if t.contains("<body>fo ") => first = Some(t0.elapsed()),
            Ok(Ok(Some(_))) | Err(_) => {}
            Ok(_) => return Err("the new connection ended".into()),
        }
    }
    sender.abort();
    let first = first.ok_or("no delivery after the kill within the bound")?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "failover: victim {} ({v_user}); old connection ended after {:.0} ms; logged in again after {:.0} ms; first delivery after {:.0} ms",
        f.victim,
        ms(ended),
        ms(relogin_at),
        ms(first)
    );
    Ok(())
}
