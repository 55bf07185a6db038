//! The per-connection rate limit, a token bucket that shapes instead of killing: when it
//! is empty the connection stops reading until a token is back, so the kernel's receive
//! buffer fills and TCP pushes back on the sender (as ejabberd's shapers and Prosody's
//! mod_limits do). Nothing a client sent is dropped for its rate.

use std::time::{Duration, Instant};

/// The bucket of one connection: 24 bytes (every idle connection holds one). The rate and
/// the burst are the same for all, so they are passed in, not stored.
pub struct Shaper {
    tokens: f32,
    last: Instant,
}

impl Shaper {
    /// A full bucket of `burst` tokens.
    pub fn new(burst: u32, now: Instant) -> Shaper {
        Shaper {
            tokens: burst.max(1) as f32,
            last: now,
        }
    }

    /// `Ok` when a token is there; else when the next one will be. The bucket refills at
    /// `per_sec` up to `burst`.
    pub fn ready(&mut self, now: Instant, per_sec: u32, burst: u32) -> Result<(), Instant> {
        let (per_sec, burst) = (per_sec.max(1) as f32, burst.max(1) as f32);
        let dt = now.saturating_duration_since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + dt * per_sec).min(burst);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / per_sec;
            Err(now + Duration::from_secs_f32(wait).max(Duration::from_millis(1)))
        }
    }

    /// Spends one token (after `ready` said there was one).
    pub fn take(&mut self) {
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut s = Shaper::new(3, t0);
        for _ in 0..3 {
            assert!(s.ready(t0, 10, 3).is_ok());
            s.take();
        }
        let next = s.ready(t0, 10, 3).unwrap_err();
        assert!(next > t0 && next <= t0 + Duration::from_millis(101));
        assert!(s.ready(t0 + Duration::from_millis(101), 10, 3).is_ok());
        s.take();
        assert!(s.ready(t0 + Duration::from_millis(101), 10, 3).is_err());
        // Never more than the burst, however long it was idle.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(s.ready(later, 10, 3).is_ok());
            s.take();
        }
        assert!(s.ready(later, 10, 3).is_err());
        assert_eq!(std::mem::size_of::<Shaper>(), 24);
    }
}
