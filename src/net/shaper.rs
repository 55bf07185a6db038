//! The per-connection rate limit, a token bucket that shapes instead of killing: when it
//! is empty the connection stops reading until a token is back, so the kernel's receive
//! buffer fills and TCP pushes back on the sender (as ejabberd's shapers and Prosody's
//! mod_limits do). Nothing a client sent is dropped for its rate.

use std::time::{Duration, Instant};

pub struct Shaper {
    tokens: f64,
    last: Instant,
    per_sec: f64,
    burst: f64,
}

impl Shaper {
    /// A full bucket of `burst` tokens, refilled at `per_sec`.
    pub fn new(per_sec: u32, burst: u32, now: Instant) -> Shaper {
        let burst = f64::from(burst.max(1));
        Shaper {
            tokens: burst,
            last: now,
            per_sec: f64::from(per_sec.max(1)),
            burst,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
    }

    /// `Ok` when a token is there; else when the next one will be.
    pub fn ready(&mut self, now: Instant) -> Result<(), Instant> {
        self.refill(now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.per_sec;
            Err(now + Duration::from_secs_f64(wait).max(Duration::from_millis(1)))
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
        let mut s = Shaper::new(10, 3, t0);
        for _ in 0..3 {
            assert!(s.ready(t0).is_ok());
            s.take();
        }
        let next = s.ready(t0).unwrap_err();
        assert!(next > t0 && next <= t0 + Duration::from_millis(101));
        assert!(s.ready(t0 + Duration::from_millis(100)).is_ok());
        s.take();
        assert!(s.ready(t0 + Duration::from_millis(100)).is_err());
        // Never more than the burst, however long it was idle.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(s.ready(later).is_ok());
            s.take();
        }
        assert!(s.ready(later).is_err());
    }
}
