//! What stands before the token lookup, so that requests with made-up tokens cost a map lookup
//! and a 429, not a database query: a token bucket of failed (or not yet vetted)
//! authentications per client address, a negative cache of token ids the store does not know,
//! and the set of token ids verified recently, whose requests skip the address's bucket. This
//! is no cache of valid tokens: it only decides which requests may reach the store (or the
//! [`super::TokenCache`], which answers only for a token's exact secret and only for a few
//! seconds after the store verified it; a failure is never cached there).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use licensd_engine::Uuid;

use super::RateLimit;

/// How long an unknown token id is answered 401 without asking the store.
pub const UNKNOWN_TOKEN_MEMORY: Duration = Duration::from_secs(60);
/// How long a verified token id skips the address's bucket after its last success.
pub const VERIFIED_TOKEN_MEMORY: Duration = Duration::from_secs(600);
/// The most ids each set remembers (when full, expired entries go, then the oldest half).
pub const MAX_REMEMBERED_TOKENS: usize = 10_000;

/// Token ids with the instant each was last seen; bounded in size and age.
struct Remembered {
    ids: Mutex<HashMap<Uuid, Instant>>,
    memory: Duration,
}

impl Remembered {
    fn new(memory: Duration) -> Remembered {
        Remembered {
            ids: Mutex::new(HashMap::new()),
            memory,
        }
    }

    fn contains(&self, id: Uuid) -> bool {
        self.ids
            .lock()
            .map(|ids| ids.get(&id).is_some_and(|at| at.elapsed() < self.memory))
            .unwrap_or(false)
    }

    fn insert(&self, id: Uuid) {
        let Ok(mut ids) = self.ids.lock() else {
            return;
        };
        if ids.len() >= MAX_REMEMBERED_TOKENS && !ids.contains_key(&id) {
            ids.retain(|_, at| at.elapsed() < self.memory);
            if ids.len() >= MAX_REMEMBERED_TOKENS {
                let mut ages: Vec<Instant> = ids.values().copied().collect();
                ages.sort_unstable();
                let cutoff = ages[ages.len() / 2];
                ids.retain(|_, at| *at > cutoff);
            }
        }
        ids.insert(id, Instant::now());
    }

    fn remove(&self, id: Uuid) -> bool {
        self.ids
            .lock()
            .map(|mut ids| ids.remove(&id).is_some())
            .unwrap_or(false)
    }
}

/// Shared by every request of this instance.
pub struct AuthenticationGuard {
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    unknown: Remembered,
    verified: Remembered,
}

impl AuthenticationGuard {
    /// `limit.per_second = 0` turns the per-address bucket off (the negative cache stays).
    pub fn new(limit: RateLimit) -> AuthenticationGuard {
        let failures = NonZeroU32::new(limit.per_second).map(|per_second| {
            let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
            governor::RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        AuthenticationGuard {
            failures,
            clock: DefaultClock::default(),
            unknown: Remembered::new(UNKNOWN_TOKEN_MEMORY),
            verified: Remembered::new(VERIFIED_TOKEN_MEMORY),
        }
    }

    /// Takes one attempt from the address's bucket: `Err(wait)` when it is empty.
    pub fn charge(&self, address: IpAddr) -> Result<(), Duration> {
        let Some(failures) = &self.failures else {
            return Ok(());
        };
        failures
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Whether the store was found not to know this token id recently.
    pub fn is_known_unknown(&self, token_id: Uuid) -> bool {
        self.unknown.contains(token_id)
    }

    pub fn remember_unknown(&self, token_id: Uuid) {
        self.unknown.insert(token_id);
    }

    /// Whether this token id was verified recently (its requests skip the address's bucket).
    pub fn recently_verified(&self, token_id: Uuid) -> bool {
        self.verified.contains(token_id)
    }

    pub fn remember_verified(&self, token_id: Uuid) {
        self.verified.insert(token_id);
    }

    /// Forgets a verified id (its check failed); true when it was remembered.
    pub fn forget_verified(&self, token_id: Uuid) -> bool {
        self.verified.remove(token_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_bucket_waits_and_the_sets_remember_ids() {
        let guard = AuthenticationGuard::new(RateLimit {
            per_second: 1,
            burst: 2,
        });
        let address: IpAddr = [192, 0, 2, 1].into();
        assert!(guard.charge(address).is_ok());
        assert!(guard.charge(address).is_ok());
        assert!(guard.charge(address).is_err());
        assert!(guard.charge([192, 0, 2, 2].into()).is_ok());
        let id = Uuid::from_u128(7);
        assert!(!guard.is_known_unknown(id));
        guard.remember_unknown(id);
        assert!(guard.is_known_unknown(id));
        guard.remember_verified(id);
        assert!(guard.recently_verified(id));
        assert!(guard.forget_verified(id));
        assert!(!guard.recently_verified(id));
        for index in 0..(MAX_REMEMBERED_TOKENS as u128 + 10) {
            guard.remember_unknown(Uuid::from_u128(1_000 + index));
        }
        assert!(guard.unknown.ids.lock().expect("lock").len() <= MAX_REMEMBERED_TOKENS);
    }
}
