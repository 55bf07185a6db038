//! The log level at runtime (`PUT /api/log-level`): the binary installs a setter for its
//! tracing filter at start; a change reverts by itself after the given time.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Setter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

struct State {
    current: String,
    default: String,
    generation: u64,
    revert_at: Option<u64>,
}

struct Control {
    set: Setter,
    state: Mutex<State>,
}

static CONTROL: OnceLock<Control> = OnceLock::new();

/// Called once by the binary: the filter it started with, and how to change it.
pub fn install(default: String, set: Setter) {
    let _ = CONTROL.set(Control {
        set,
        state: Mutex::new(State {
            current: default.clone(),
            default,
            generation: 0,
            revert_at: None,
        }),
    });
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// `{"level", "default", "revert_at"}`, or `None` when no control is installed.
pub fn get() -> Option<serde_json::Value> {
    let c = CONTROL.get()?;
    let s = c.state.lock().unwrap_or_else(|e| e.into_inner());
    Some(serde_json::json!({
        "level": s.current,
        "default": s.default,
        "revert_at": s.revert_at,
    }))
}

/// A new start-up filter (`log.level` changed by a reload): the filter now and the one a
/// change reverts to; a pending revert is cancelled.
pub fn set_default(level: &str) -> Result<(), String> {
    let c = CONTROL
        .get()
        .ok_or("this process cannot change its log level")?;
    tracing_subscriber::EnvFilter::try_new(level).map_err(|e| format!("bad filter: {e}"))?;
    let mut s = c.state.lock().unwrap_or_else(|e| e.into_inner());
    (c.set)(level)?;
    s.current = level.to_string();
    s.default = level.to_string();
    s.generation += 1;
    s.revert_at = None;
    drop(s);
    tracing::warn!(level, "log level changed by a reload");
    Ok(())
}

/// Sets the filter (`info`, `debug`, `aoba=trace,info`…) and, when `revert_after_s` > 0,
/// goes back to the start-up filter after that many seconds.
pub fn set(level: &str, revert_after_s: u64) -> Result<serde_json::Value, String> {
    let c = CONTROL
        .get()
        .ok_or("this process cannot change its log level")?;
    tracing_subscriber::EnvFilter::try_new(level).map_err(|e| format!("bad filter: {e}"))?;
    (c.set)(level)?;
    let generation = {
        let mut s = c.state.lock().unwrap_or_else(|e| e.into_inner());
        s.current = level.to_string();
        s.generation += 1;
        s.revert_at = (revert_after_s > 0).then(|| now_s() + revert_after_s);
        s.generation
    };
    tracing::warn!(level, revert_after_s, "log level changed");
    if revert_after_s > 0 {
        let _ = std::thread::Builder::new()
            .name("log-revert".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_secs(revert_after_s));
                let Some(c) = CONTROL.get() else { return };
                let mut s = c.state.lock().unwrap_or_else(|e| e.into_inner());
                // A later change owns the level (and its own revert).
                if s.generation == generation {
                    let d = s.default.clone();
                    if (c.set)(&d).is_ok() {
                        s.current = d;
                        s.revert_at = None;
                        drop(s);
                        tracing::warn!("log level reverted");
                    }
                }
            });
    }
    get().ok_or_else(|| "no control".to_string())
}
