//! What one JWT check costs on a shard thread, per algorithm: why HS256 runs unbounded
//! and RS256/ES256 are bounded per shard (`auth.jwt_signature_checks_per_sec`).

use aoba::config::Config;
use aoba::xmpp::jwt::JwtVerifier;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn verifier(alg: &str) -> (JwtVerifier, String) {
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
    let mut cfg = Config::default();
    cfg.auth.jwt_algorithm = alg.into();
    let lower = alg.to_lowercase();
    if alg != "HS256" {
        cfg.auth.jwt_public_key_file = Some(keys.join(format!("{lower}-public.pem")));
        cfg.auth.jwt_private_key_file = Some(keys.join(format!("{lower}-private.pem")));
    }
    let secret = (alg == "HS256").then_some("bench-secret-0123456789abcdef");
    let v = JwtVerifier::new(&cfg.auth, &cfg.server.domain, secret).unwrap();
    let token = aoba::xmpp::jwt::mint(&cfg.auth, secret, "alice", 3600).unwrap();
    (v, token)
}

fn bench(c: &mut Criterion) {
    for alg in ["HS256", "RS256", "ES256"] {
        let (v, token) = verifier(alg);
        c.bench_function(&format!("jwt_verify/{alg}"), |b| {
            b.iter(|| v.verify(black_box(&token)).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
