//! Storage throughput and latency (figures in docs/durability.md):
//! - `archive_insert_via_writer`: messages/s through the storage thread — a batch of 1,000
//!   archive appends plus a barrier, made durable by group commit (fsync), as the server
//!   does it (fjall in a temporary directory on this machine's disk); `/postgres`: the
//!   same on a throwaway PostgreSQL 15 on loopback (`tests/common/postgres.rs`).
//! - `mam_page_query`: one XEP-0313 page (50 newest, and 50 filtered by `with`) out of a
//!   100,000-message archive, straight on the backend (µs).
//!
//! Run: `cargo bench --bench storage`.

use aoba::runtime::mailbox;
use aoba::storage::Reply;
use aoba::storage::{
    ArchiveItem, ArchiveQuery, Backend, Request, StorageConfig, fjall::FjallBackend, pg::PgBackend,
};

#[path = "../tests/common/postgres.rs"]
mod pgtest;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STANZA: &[u8] = b"<message xmlns='jabber:client' to='bob@localhost' from='alice@localhost/web' type='chat' id='a1b2c3'><body>A typical chat line of about seventy bytes, give or take.</body></message>";

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("aoba-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Through the storage thread, replies to a mailbox we drain.
fn via_writer(
    g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    name: &str,
    backend: Box<dyn Backend>,
) {
    let (tx, rx) = mailbox::mailbox::<Reply>(1024);
    #[allow(clippy::result_large_err)]
    let reply_to: aoba::storage::ReplyTo = std::sync::Arc::new(move |_, r| tx.try_send(r));
    let (handle, thread) = aoba::storage::start(backend, &StorageConfig::default(), 0, 1, reply_to);
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    let batch = 1000u64;
    let mut next_id = 1u64 << 40;
    let mut token = 0u64;
    g.throughput(Throughput::Elements(batch));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                for _ in 0..batch {
                    next_id += 1;
                    let item = ArchiveItem {
                        id: next_id,
                        with: "bob@localhost".into(),
                        stanza: aoba::storage::Parts::one(STANZA.to_vec()),
                        // Messages from clients carry their id (the unique index is work).
                        uid: next_id,
                    };
                    let mut req = Request::ArchiveAppend {
                        owner: format!("user{}", next_id % 100),
                        item,
                    };
                    while let Err(back) = handle.try_send(req) {
                        req = back;
                        std::thread::yield_now();
                    }
                }
                token += 1;
                let mut req = Request::Sync { shard: 0, token };
                while let Err(back) = handle.try_send(req) {
                    req = back;
                }
                // Wait for the barrier: everything before it is durable.
                rt.block_on(async {
                    let mut got = Vec::new();
                    loop {
                        rx.recv_batch(&mut got, 64).await;
                        if got
                            .drain(..)
                            .any(|m| matches!(m, Reply::Synced { token: t, .. } if t == token))
                        {
                            break;
                        }
                    }
                });
            }
            t.elapsed()
        })
    });
    handle.stop();
    let _ = thread.join();
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("storage");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);

    let d = dir("writer");
    via_writer(
        &mut g,
        "archive_insert_via_writer",
        Box::new(FjallBackend::open(&d).unwrap()),
    );
    let _ = std::fs::remove_dir_all(&d);
    // The same on PostgreSQL 15 (a throwaway server on loopback, fsync and
    // synchronous_commit on: one transaction and one WAL flush per batch).
    let pg = pgtest::PgServer::start();
    let opts = StorageConfig {
        backend: "postgres".into(),
        postgres_url: pg.create_database(),
        ..StorageConfig::default()
    }
    .pg_options();
    via_writer(
        &mut g,
        "archive_insert_via_writer/postgres",
        Box::new(PgBackend::open(opts).unwrap()),
    );
    drop(pg);

    // Page queries on a 100,000-message archive.
    let d = dir("query");
    let mut be = FjallBackend::open(&d).unwrap();
    for i in 0..100_000u64 {
        let with = if i % 10 == 0 {
            "carol@localhost"
        } else {
            "bob@localhost"
        };
        be.archive_append(
            "alice",
            &ArchiveItem {
                id: (1 << 40) + i,
                with: with.into(),
                stanza: aoba::storage::Parts::one(STANZA.to_vec()),
                uid: (1 << 40) + i,
            },
        )
        .unwrap();
    }
    be.commit().unwrap();
    g.throughput(Throughput::Elements(1));
    let newest = ArchiveQuery {
        max: 50,
        from_end: true,
        ..Default::default()
    };
    g.bench_function("mam_page_query/newest_50", |b| {
        b.iter(|| be.archive_query("alice", &newest).unwrap().items.len())
    });
    let with = ArchiveQuery {
        max: 50,
        with: Some("carol@localhost".into()),
        after_id: Some((1 << 40) + 50_000),
        ..Default::default()
    };
    g.bench_function("mam_page_query/with_filter_50", |b| {
        b.iter(|| be.archive_query("alice", &with).unwrap().items.len())
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&d);
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
