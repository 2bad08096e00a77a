//! Per-token rate limiting: a token bucket per token (governor's keyed limiter, lock-free), so
//! one script cannot starve the others. Over the limit a request is answered 429 with
//! `Retry-After`. Limits are per instance.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use licensd_engine::Uuid;

/// How many requests a token may make: a sustained rate and a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    /// 100 requests per second sustained, bursts of 500.
    fn default() -> RateLimit {
        RateLimit {
            per_second: 100,
            burst: 500,
        }
    }
}

/// The limiter shared by every request of this instance.
pub struct RateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<Uuid>>,
    clock: DefaultClock,
}

impl RateLimiter {
    /// `per_second = 0` turns limiting off.
    pub fn new(limit: RateLimit) -> RateLimiter {
        let limiter = NonZeroU32::new(limit.per_second).map(|per_second| {
            let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
            governor::RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        RateLimiter {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when the token is over its limit.
    pub fn check(&self, token_id: Uuid) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&token_id)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_over_its_burst_waits_and_others_do_not() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1,
            burst: 3,
        });
        let busy = Uuid::from_u128(1);
        for _ in 0..3 {
            assert!(limiter.check(busy).is_ok());
        }
        let wait = limiter.check(busy).expect_err("over the burst");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limiter.check(Uuid::from_u128(2)).is_ok());
        let off = RateLimiter::new(RateLimit {
            per_second: 0,
            burst: 0,
        });
        for _ in 0..10_000 {
            assert!(off.check(busy).is_ok());
        }
    }
}
