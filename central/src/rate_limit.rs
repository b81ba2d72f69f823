//! Token buckets per key, in memory: how central slows down a flood of enrollment requests.
//! Enrollment ([`crate::enroll`]) takes one from the peer address's bucket for every
//! request, so a token guesser or a flood of CSRs gets nowhere. (The web interface's sign-in
//! lock counts in the store instead, `store::SignInStore`, so that all centrals share it.)
//!
//! The buckets live in memory, per process: a restart forgets them, and N centrals behind
//! one name each keep their own, so an address gets at most N times the allowance. That is
//! the design (docs/ARCHITECTURE.md): the limit makes guessing slow, it does not count
//! exactly, and a 256-bit token spent once is not guessed at N times a slow rate.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// At most this many keys are tracked. Bounds the memory a caller inventing keys
/// (addresses, account names) can make central spend; what happens when it is reached is
/// [`RateLimiter::make_room`]'s.
const MAX_TRACKED_KEYS: usize = 65_536;

/// A token bucket per key: `capacity` at once, refilled at `capacity` per `period`.
pub(crate) struct RateLimiter<K> {
    capacity: f64,
    per_second: f64,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    available: f64,
    at: Instant,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter allowing `capacity` at once and `capacity` per `period` after that. A
    /// capacity of 0 (or an empty period) allows nothing.
    pub(crate) fn new(capacity: u32, period: Duration) -> RateLimiter<K> {
        Self::tracking(capacity, period, MAX_TRACKED_KEYS)
    }

    /// [`RateLimiter::new`] tracking at most `max_keys` keys (at least one).
    fn tracking(capacity: u32, period: Duration, max_keys: usize) -> RateLimiter<K> {
        let capacity = f64::from(capacity);
        let seconds = period.as_secs_f64();
        RateLimiter {
            capacity,
            per_second: if seconds > 0.0 {
                capacity / seconds
            } else {
                0.0
            },
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one from `key`'s allowance, or says how long until there is one.
    pub(crate) fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let (capacity, per_second) = (self.capacity, self.per_second);
        let never = Duration::from_secs(60);
        if per_second <= 0.0 {
            return Err(never);
        }
        let refilled = |bucket: &Bucket| {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            (bucket.available + elapsed * per_second).min(capacity)
        };
        let wait = |available: f64| Duration::from_secs_f64((1.0 - available) / per_second);
        // Nothing here is left half-updated by a panic, so a poisoned lock is usable.
        let mut buckets = self.buckets.lock();
        let Some(bucket) = buckets.get_mut(key) else {
            if capacity < 1.0 {
                return Err(never);
            }
            if buckets.len() >= self.max_keys {
                self.make_room(&mut buckets, refilled);
            }
            buckets.insert(
                key.clone(),
                Bucket {
                    available: capacity - 1.0,
                    at: now,
                },
            );
            return Ok(());
        };
        let available = refilled(bucket);
        if available < 1.0 {
            *bucket = Bucket { available, at: now };
            return Err(wait(available));
        }
        *bucket = Bucket {
            available: available - 1.0,
            at: now,
        };
        Ok(())
    }

    /// Makes room for a new key in a full map, so a flood of invented keys can never turn
    /// the limiter into a wall that refuses every new key (65,536 failed sign-ins under
    /// made-up names would otherwise lock every operator out). Keys back at their full
    /// allowance go first, as they always could: forgetting them changes no answer. If that
    /// frees too little, an eighth of the map goes, the keys with the most allowance left
    /// first and the longest untouched among equals: a flooder's keys, each with one
    /// failure, go before the spent key of a name under attack, so flooding to free a
    /// locked name costs the flooder that name's whole allowance on tens of thousands of
    /// keys. The eighth keeps the work per new key constant however long the flood lasts.
    fn make_room(&self, buckets: &mut HashMap<K, Bucket>, refilled: impl Fn(&Bucket) -> f64) {
        let capacity = self.capacity;
        buckets.retain(|_, bucket| refilled(bucket) < capacity);
        if buckets.len() < self.max_keys {
            return;
        }
        let evict = (self.max_keys / 8).max(1);
        let mut ranked: Vec<(f64, Instant, K)> = buckets
            .iter()
            .map(|(key, bucket)| (refilled(bucket), bucket.at, key.clone()))
            .collect();
        let first_kept =
            |a: &(f64, Instant, K), b: &(f64, Instant, K)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if evict < ranked.len() {
            ranked.select_nth_unstable_by(evict, first_kept);
            ranked.truncate(evict);
        }
        for (_, _, key) in ranked {
            buckets.remove(&key);
        }
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1, so a client that obeys
/// it never comes back too early.
pub(crate) fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn peer(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_key_gets_its_allowance_at_once_then_one_request_per_refill() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        let start = Instant::now();
        assert!(limiter.check(&peer(1), start).is_ok());
        assert!(limiter.check(&peer(1), start).is_ok());
        let wait = limiter
            .check(&peer(1), start)
            .expect_err("the third request waits");
        assert_eq!(wait.as_secs(), 30);
        assert!(
            limiter.check(&peer(2), start).is_ok(),
            "another key is not held up"
        );
        assert!(limiter
            .check(&peer(1), start + Duration::from_secs(31))
            .is_ok());
        assert!(limiter
            .check(&peer(1), start + Duration::from_secs(32))
            .is_err());
    }

    #[test]
    fn a_full_limiter_still_lets_a_fresh_name_in_and_keeps_the_spent_ones() {
        let limiter = RateLimiter::new(5, Duration::from_secs(75 * 60));
        let start = Instant::now();
        let victim = "kari".to_owned();
        for _ in 0..5 {
            assert!(limiter.check(&victim, start).is_ok());
        }
        assert!(limiter.check(&victim, start).is_err(), "kari is locked");
        for flood in 0..2 * MAX_TRACKED_KEYS {
            let _ = limiter.check(&format!("flood-{flood}"), start);
        }
        assert!(
            limiter.buckets.lock().len() <= MAX_TRACKED_KEYS,
            "memory stays bounded"
        );
        assert!(
            limiter.check(&"ola".to_owned(), start).is_ok(),
            "a key never seen may still try"
        );
        assert!(
            limiter.check(&victim, start).is_err(),
            "the flood did not buy the locked name a new allowance"
        );
    }

    #[test]
    fn a_full_limiter_evicts_the_keys_with_most_allowance_left() {
        let limiter = RateLimiter::tracking(3, Duration::from_secs(60), 8);
        let start = Instant::now();
        for key in 0..8u8 {
            let spend = if key == 3 { 3 } else { 1 };
            for _ in 0..spend {
                assert!(limiter.check(&peer(key), start).is_ok());
            }
        }
        assert!(limiter.check(&peer(100), start).is_ok());
        let buckets = limiter.buckets.lock();
        assert_eq!(buckets.len(), 8, "one key made room for the new one");
        assert!(buckets.contains_key(&peer(3)), "the spent key is kept");
        assert!(buckets.contains_key(&peer(100)));
    }

    #[test]
    fn no_capacity_allows_nothing() {
        let limiter = RateLimiter::new(0, Duration::from_secs(60));
        assert!(limiter.check(&peer(1), Instant::now()).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1_200)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }
}
