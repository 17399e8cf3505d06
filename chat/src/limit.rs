//! The per-connection flood guard: a token bucket.

use std::time::Instant;

/// Allows `burst` messages at once and `rate` per second after that.
#[derive(Debug, Clone)]
pub struct RateLimit {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket.
    pub fn new(burst: u32, now: Instant) -> RateLimit {
        RateLimit {
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// True when the bucket has filled up again since its last use: the
    /// limit would let `burst` through, as a new one would.
    pub fn is_full(&self, rate: f64, burst: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * rate >= f64::from(burst)
    }

    /// Takes one token; false when the bucket is empty.
    pub fn allow(&mut self, rate: f64, burst: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(3, t0);
        assert!((0..3).all(|_| limit.allow(2.0, 3, t0)));
        assert!(!limit.allow(2.0, 3, t0));
        assert!(limit.allow(2.0, 3, t0 + Duration::from_millis(500)));
        assert!(!limit.allow(2.0, 3, t0 + Duration::from_millis(500)));
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| limit.allow(2.0, 3, later)));
        assert!(!limit.allow(2.0, 3, later));
    }
}
