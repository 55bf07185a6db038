//! Fault injection for the tests, compiled into debug builds only (a release build reads
//! no variable and pays nothing): the crash-only and failed-commit paths must be shown to
//! work by tests that can fail, and no client input may reach them otherwise.
//!
//! - `AOBA_FAULT_PANIC_ON=TEXT`: a shard panics on a client element containing TEXT.
//! - `AOBA_FAULT_FAIL_COMMITS=1`: every storage commit fails.
//! - `AOBA_FAULT_SLOW_COMMIT_MS=N`: every storage commit takes N ms more (a slow disk).
//! - `AOBA_FAULT_SLOW_READ_MS=N`: every storage read (roster load, archive page, a room's
//!   load) takes N ms more.
//! - `AOBA_FAULT_FAIL_ROOM_READS=1`: every read of one room (a room's first stanza since
//!   start) fails.
//! - `AOBA_FAULT_VIEW_DELAY_MS=N`: a cluster node's shards learn each view after its
//!   first N ms late (a node whose view lags).
//! - `AOBA_FAULT_CLOCK_SKEW_MS=N`: the clock archive ids are made from runs N ms off
//!   (negative: behind), like a node whose clock drifted.
//! - `AOBA_FAULT_STALL_ON=TEXT` with `AOBA_FAULT_STALL_FILE=PATH`: a shard blocks on a client
//!   element containing TEXT while PATH exists (at most 30 s): a stuck shard.

#[cfg(debug_assertions)]
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Panics when `text` holds the configured trigger (debug builds only).
#[inline]
pub fn panic_on(text: &str) {
    #[cfg(debug_assertions)]
    {
        static T: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        if let Some(t) = T.get_or_init(|| var("AOBA_FAULT_PANIC_ON"))
            && text.contains(t.as_str())
        {
            panic!("injected panic (AOBA_FAULT_PANIC_ON)");
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = text;
}

/// Blocks the calling shard while the stall file exists, when `text` holds the configured
/// trigger (debug builds only).
#[inline]
pub fn stall_on(text: &str) {
    #[cfg(debug_assertions)]
    {
        static T: std::sync::OnceLock<Option<(String, String)>> = std::sync::OnceLock::new();
        if let Some((t, file)) =
            T.get_or_init(|| Some((var("AOBA_FAULT_STALL_ON")?, var("AOBA_FAULT_STALL_FILE")?)))
            && text.contains(t.as_str())
        {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while std::path::Path::new(file).exists() && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = text;
}

/// Whether every read of one room is to fail (debug builds only).
pub fn fail_room_reads() -> bool {
    #[cfg(debug_assertions)]
    {
        var("AOBA_FAULT_FAIL_ROOM_READS").is_some()
    }
    #[cfg(not(debug_assertions))]
    false
}

/// Whether every storage commit is to fail (debug builds only).
pub fn fail_commits() -> bool {
    #[cfg(debug_assertions)]
    {
        var("AOBA_FAULT_FAIL_COMMITS").is_some()
    }
    #[cfg(not(debug_assertions))]
    false
}

/// How much slower every storage commit is to be (debug builds only).
pub fn commit_delay() -> Option<std::time::Duration> {
    delay("AOBA_FAULT_SLOW_COMMIT_MS")
}

/// How much later a cluster node's shards learn each view after its first (debug builds
/// only): a node whose view lags the others'.
pub fn view_delay() -> Option<std::time::Duration> {
    delay("AOBA_FAULT_VIEW_DELAY_MS")
}

/// How much slower every storage read is to be (debug builds only).
pub fn read_delay() -> Option<std::time::Duration> {
    delay("AOBA_FAULT_SLOW_READ_MS")
}

fn delay(name: &str) -> Option<std::time::Duration> {
    #[cfg(debug_assertions)]
    {
        var(name)
            .and_then(|v| v.parse().ok())
            .map(std::time::Duration::from_millis)
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        None
    }
}

/// How far off the clock of archive ids runs, in ms (debug builds only; 0 otherwise).
pub fn clock_skew_ms() -> i64 {
    #[cfg(debug_assertions)]
    {
        static T: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
        *T.get_or_init(|| {
            var("AOBA_FAULT_CLOCK_SKEW_MS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        })
    }
    #[cfg(not(debug_assertions))]
    0
}
