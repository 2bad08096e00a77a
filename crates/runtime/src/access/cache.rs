//! The positive token cache: tokens the store verified recently, so that a request with a
//! token in use costs a hash and a map lookup, not a database round trip. It is only trusted
//! while it is kept up to date:
//!
//! - **Keyed so made-up tokens never hit.** An entry is found by the token's id, and is a hit
//!   only if the presented secret hashes to the stored hash (constant-time comparison), the
//!   token is not revoked and its expiry is later than the request's time (the same test the
//!   store path makes, so expiry is exact). Anything else goes to the store, as without a cache,
//!   where failures are counted against the client's address ([`super::AuthenticationGuard`]).
//!   Only successes are remembered: a refusal is never cached here.
//! - **Revocation reaches every instance at once.** A revocation through this instance forgets
//!   the token before it is answered ([`TokenCache::forget`]); on PostgreSQL the revoking
//!   transaction also sends a notice on the channel the tenants' writes use, and every
//!   instance's watcher forgets the token when it hears it (milliseconds).
//! - **A lost notice is bounded.** Every [`crate::processor::VERSION_CHECK_INTERVAL`] the
//!   watcher re-reads every remembered token from the store on its own connection and forgets
//!   those that changed or are gone ([`TokenCache::revalidate`]); this also covers revocations
//!   that send no notice (SQLite, written by another process). The cache answers only while
//!   that check keeps succeeding: when none succeeded for [`CONFIRMATION_WINDOW`] (watcher
//!   disconnected, busy, or not running) every request goes to the store.
//! - **Bounded in age and size.** An entry is used for at most [`TOKEN_CACHE_MEMORY`] after
//!   the store verified it, then the token is checked against the store again; at most
//!   [`MAX_CACHED_TOKENS`] entries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use licensd_engine::Uuid;
use licensd_store::AccessTokenRecord;

use super::token::IssuedToken;
use super::Role;

/// How long after the store verified a token its entry answers: a few seconds, so a token in
/// use costs one store lookup per few seconds instead of one per request, while an entry
/// outlives neither its token's expiry (checked on every hit) nor, should every propagation
/// path fail unnoticed, this age.
pub const TOKEN_CACHE_MEMORY: Duration = Duration::from_secs(5);

/// How recently the watcher must have re-read the remembered tokens for the cache to answer:
/// two check intervals, so one slow check does not switch the cache off but a watcher that lost
/// its connection or stopped does within this time.
pub const CONFIRMATION_WINDOW: Duration = Duration::from_secs(2);

/// The most tokens remembered (beyond, new tokens are checked against the store each time
/// until entries age out).
pub const MAX_CACHED_TOKENS: usize = 10_000;

/// A verified token: its stored record and role, and when the store said so.
struct Entry {
    record: AccessTokenRecord,
    role: Role,
    verified: Instant,
}

/// A lookup in progress: remember what it finds only if nothing was forgotten meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheTicket(u64);

/// Tokens verified recently, shared by every request of the instance and its watcher.
pub struct TokenCache {
    entries: RwLock<HashMap<Uuid, Entry>>,
    /// Bumped by every forgetting and every revalidation: a store lookup that started before
    /// may have read what was just found stale, so its result is not remembered.
    generation: AtomicU64,
    /// When the last successful revalidation read the store, as nanoseconds after `epoch`
    /// (0: never).
    confirmed: AtomicU64,
    epoch: Instant,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new()
    }
}

impl TokenCache {
    pub fn new() -> TokenCache {
        TokenCache::with_epoch(Instant::now())
    }

    fn with_epoch(epoch: Instant) -> TokenCache {
        TokenCache {
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            epoch,
        }
    }

    /// Nanoseconds from `epoch` to `instant`, at least 1 (0 means never).
    fn since_epoch(&self, instant: Instant) -> u64 {
        (instant.saturating_duration_since(self.epoch).as_nanos() as u64).max(1)
    }

    /// Whether the watcher confirmed the entries recently enough for them to answer.
    pub fn is_confirmed(&self) -> bool {
        let confirmed = self.confirmed.load(Ordering::Acquire);
        confirmed != 0
            && self.since_epoch(Instant::now()).saturating_sub(confirmed)
                < CONFIRMATION_WINDOW.as_nanos() as u64
    }

    /// The verified token `token` is, if remembered and still valid at `at` (milliseconds since
    /// the epoch, as the store path compares expiry); `None` sends the request to the store.
    pub fn lookup(&self, token: &IssuedToken, at: i64) -> Option<(AccessTokenRecord, Role)> {
        if !self.is_confirmed() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let entry = entries.get(&token.token_id)?;
        let valid = entry.verified.elapsed() < TOKEN_CACHE_MEMORY
            && entry.record.revoked_at.is_none()
            && !entry.record.expires_at.is_some_and(|expires_at| expires_at <= at)
            && token.matches(&entry.record.secret_hash);
        valid.then(|| (entry.record.clone(), entry.role))
    }

    /// Call before asking the store, and hand the ticket to [`TokenCache::remember`].
    pub fn ticket(&self) -> CacheTicket {
        CacheTicket(self.generation.load(Ordering::Acquire))
    }

    /// Remembers a token the store just verified, unless something was forgotten since
    /// `ticket` was taken (the lookup may have read a token just revoked) or the cache is full.
    pub fn remember(&self, ticket: CacheTicket, record: &AccessTokenRecord, role: Role) {
        if record.revoked_at.is_some() {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        // Checked under the write lock: forgetting bumps the generation under it too.
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if entries.len() >= MAX_CACHED_TOKENS && !entries.contains_key(&record.token_id) {
            entries.retain(|_, entry| entry.verified.elapsed() < TOKEN_CACHE_MEMORY);
            if entries.len() >= MAX_CACHED_TOKENS {
                return;
            }
        }
        entries.insert(
            record.token_id,
            Entry {
                record: record.clone(),
                role,
                verified: Instant::now(),
            },
        );
    }

    /// Forgets a token (revoked, or its record changed): its next request goes to the store.
    pub fn forget(&self, token_id: Uuid) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.remove(&token_id);
        }
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.entries.read().map(|entries| entries.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The watcher's check: re-reads every remembered token with `stored` (the store's records
    /// of the ids it is given) and forgets those whose record changed or is gone; on success the
    /// cache is confirmed as of the moment before the read. On failure nothing is confirmed, so
    /// the cache stops answering once [`CONFIRMATION_WINDOW`] has passed.
    pub fn revalidate<E>(
        &self,
        stored: impl FnOnce(&[Uuid]) -> Result<Vec<AccessTokenRecord>, E>,
    ) -> Result<(), E> {
        let started = Instant::now();
        let ids: Vec<Uuid> = {
            let Ok(mut entries) = self.entries.write() else {
                return Ok(());
            };
            // Lookups in flight read the store before this check did: their results are not
            // remembered, so after this check every entry was read after `started`.
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.retain(|_, entry| entry.verified.elapsed() < TOKEN_CACHE_MEMORY);
            entries.keys().copied().collect()
        };
        let records = if ids.is_empty() { Vec::new() } else { stored(&ids)? };
        let current: HashMap<Uuid, AccessTokenRecord> = records
            .into_iter()
            .map(|record| (record.token_id, record))
            .collect();
        if let Ok(mut entries) = self.entries.write() {
            let before = entries.len();
            entries.retain(|id, entry| current.get(id) == Some(&entry.record));
            if entries.len() != before {
                self.generation.fetch_add(1, Ordering::AcqRel);
                tracing::debug!(
                    forgotten = before - entries.len(),
                    "forgot remembered tokens the store changed"
                );
            }
        }
        self.confirmed.store(self.since_epoch(started), Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(token: &IssuedToken, expires_at: Option<i64>) -> AccessTokenRecord {
        AccessTokenRecord {
            token_id: token.token_id,
            tenant_id: Uuid::from_u128(1),
            display_name: "Reader".to_string(),
            role: Role::GlobalReader.as_str().to_string(),
            secret_hash: token.secret_hash(),
            created_at: 0,
            created_by: "test".to_string(),
            expires_at,
            revoked_at: None,
        }
    }

    fn confirmed(cache: &TokenCache, stored: &[AccessTokenRecord]) {
        cache
            .revalidate(|ids| {
                Ok::<_, ()>(
                    stored
                        .iter()
                        .filter(|record| ids.contains(&record.token_id))
                        .cloned()
                        .collect(),
                )
            })
            .expect("revalidates");
    }

    #[test]
    fn a_remembered_token_answers_only_with_its_own_secret_and_only_while_confirmed() {
        let cache = TokenCache::new();
        let token = IssuedToken::generate().expect("randomness");
        let stored = record(&token, None);
        cache.remember(cache.ticket(), &stored, Role::GlobalReader);
        // Never confirmed by a watcher: the store is asked.
        assert_eq!(cache.lookup(&token, 0), None);
        confirmed(&cache, std::slice::from_ref(&stored));
        assert!(cache.is_confirmed());
        let (found, role) = cache.lookup(&token, 0).expect("a hit");
        assert_eq!(found, stored);
        assert_eq!(role, Role::GlobalReader);
        // The same id with another secret (a made-up token) never hits.
        let mut forged = IssuedToken::generate().expect("randomness");
        forged.token_id = token.token_id;
        assert_eq!(cache.lookup(&forged, 0), None);
        // Nor does a token never verified.
        let other = IssuedToken::generate().expect("randomness");
        assert_eq!(cache.lookup(&other, 0), None);
        // A revoked record is never remembered.
        let mut revoked = record(&other, None);
        revoked.revoked_at = Some(1);
        cache.remember(cache.ticket(), &revoked, Role::GlobalReader);
        assert_eq!(cache.lookup(&other, 0), None);
    }

    #[test]
    fn expiry_is_exact_whatever_the_entry_s_age() {
        let cache = TokenCache::new();
        let token = IssuedToken::generate().expect("randomness");
        let stored = record(&token, Some(1_000));
        cache.remember(cache.ticket(), &stored, Role::GlobalReader);
        confirmed(&cache, std::slice::from_ref(&stored));
        assert!(cache.lookup(&token, 999).is_some());
        assert_eq!(cache.lookup(&token, 1_000), None);
        assert_eq!(cache.lookup(&token, 5_000), None);
    }

    #[test]
    fn forgetting_and_revalidation_drop_entries_and_stale_lookups_are_not_remembered() {
        let cache = TokenCache::new();
        let first = IssuedToken::generate().expect("randomness");
        let second = IssuedToken::generate().expect("randomness");
        let third = IssuedToken::generate().expect("randomness");
        let records = [record(&first, None), record(&second, None), record(&third, None)];
        for stored in &records {
            cache.remember(cache.ticket(), stored, Role::GlobalReader);
        }
        confirmed(&cache, &records);
        assert_eq!(cache.len(), 3);

        // Revoked through this instance or announced by another: gone at once.
        cache.forget(first.token_id);
        assert_eq!(cache.lookup(&first, 0), None);
        assert!(cache.lookup(&second, 0).is_some());

        // A lookup that started before a forgetting does not put the token back.
        let ticket = cache.ticket();
        cache.forget(first.token_id);
        cache.remember(ticket, &records[0], Role::GlobalReader);
        assert_eq!(cache.lookup(&first, 0), None);

        // The periodic check: `second` was revoked without a notice, `third` is gone.
        let mut revoked = records[1].clone();
        revoked.revoked_at = Some(5);
        confirmed(&cache, &[revoked]);
        assert_eq!(cache.lookup(&second, 0), None);
        assert_eq!(cache.lookup(&third, 0), None);
        assert!(cache.is_empty());

        // A lookup in flight during a check is not remembered either.
        let ticket = cache.ticket();
        confirmed(&cache, &records);
        cache.remember(ticket, &records[1], Role::GlobalReader);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_failed_check_confirms_nothing_and_old_confirmations_and_entries_expire() {
        let ago = |duration: Duration| {
            Instant::now()
                .checked_sub(duration)
                .expect("an uptime of seconds")
        };
        let cache = TokenCache::with_epoch(ago(Duration::from_secs(10)));
        let token = IssuedToken::generate().expect("randomness");
        let stored = record(&token, None);
        cache.remember(cache.ticket(), &stored, Role::GlobalReader);
        assert_eq!(
            cache.revalidate(|_| Err("the database is gone")),
            Err("the database is gone")
        );
        assert!(!cache.is_confirmed());
        assert_eq!(cache.lookup(&token, 0), None);
        // A confirmation older than the window answers no more, nor does an entry older than
        // its memory (both backdated: the clock cannot be moved).
        confirmed(&cache, std::slice::from_ref(&stored));
        assert!(cache.lookup(&token, 0).is_some());
        let stale = cache.since_epoch(ago(CONFIRMATION_WINDOW + Duration::from_millis(10)));
        cache.confirmed.store(stale, Ordering::Release);
        assert!(!cache.is_confirmed());
        assert_eq!(cache.lookup(&token, 0), None);
        confirmed(&cache, std::slice::from_ref(&stored));
        if let Some(entry) = cache.entries.write().expect("lock").get_mut(&token.token_id) {
            entry.verified = ago(TOKEN_CACHE_MEMORY);
        }
        assert_eq!(cache.lookup(&token, 0), None);
    }
}
