//! The RFC 6120 TCP stream framer (`aoba::xml::framer`): a byte stream cut into reads at
//! places the fuzzer chooses must give the same events and the same verdict as the whole
//! stream in one read, the buffer the caller keeps stays within the unit limits, and every
//! element handed out goes through `Stanza::parse` (which may refuse it: names, entities and
//! characters are its to check).
#![no_main]

use aoba::xml::framer::{DEFAULT_MAX_HEADER_BYTES, Event, FrameLimits, Framer};
use aoba::xml::{Limits, Stanza};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fn limits() -> FrameLimits {
    FrameLimits::new(
        MAX,
        Limits {
            max_depth: 8,
            max_attrs: 8,
        },
    )
}

/// Feeds `data` in reads cut at `cuts` (sorted offsets); returns the events (as owned
/// strings) and the verdict.
fn run(data: &[u8], cuts: &[usize]) -> (Vec<String>, Option<String>) {
    let mut f = Framer::new(limits());
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&data.len())) {
        let to = to.clamp(from, data.len());
        buf.extend_from_slice(&data[from..to]);
        from = to;
        loop {
            match f.next(&buf) {
                Ok(Some(Event::Header { text, .. })) => out.push(format!("H{text}")),
                Ok(Some(Event::Element { text, .. })) => {
                    // The one parse checks names, entities and characters (the framer
                    // leaves them to it): it may refuse, it may not panic.
                    let l = f.limits().xml;
                    let _ = Stanza::parse(text, &l);
                    out.push(format!("E{text}"));
                }
                Ok(Some(Event::End)) => out.push("END".into()),
                Ok(None) => break,
                Err(e) => return (out, Some(e.condition().to_string())),
            }
        }
        let n = f.consumed();
        buf.drain(..n);
        f.consume(n);
        // Bounded: what is kept is one unfinished unit, within its limit.
        assert!(
            buf.len() <= MAX.max(DEFAULT_MAX_HEADER_BYTES),
            "kept {} bytes",
            buf.len()
        );
    }
    (out, None)
}

fuzz_target!(|input: &[u8]| {
    // The first four bytes pick where the reads are cut (a small LCG); the rest is the
    // stream.
    let (seed, data) = input.split_at(input.len().min(4));
    let mut x = seed.iter().fold(0x9e37_79b9u32, |a, &b| a.rotate_left(8) ^ u32::from(b)) | 1;
    let mut cuts = Vec::new();
    let mut at = 0usize;
    while at < data.len() && cuts.len() < 64 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        at += 1 + (x >> 24) as usize % 97;
        cuts.push(at.min(data.len()));
    }
    let whole = run(data, &[]);
    let split = run(data, &cuts);
    assert_eq!(whole, split, "the verdict depends on where the reads were cut");
});
