//! The web interface's sign-in lock as the store keeps it: a token bucket of failed sign-ins
//! per account name, read and written in one transaction per attempt, so every central
//! process on one database counts the same failures and a restart forgets none; and the
//! [`SignInStore`] trait the backends implement in their `sign_in.rs`.
//!
//! In the data flow it sits behind `POST /login` (`crate::ui::auth`), which takes one
//! attempt before it checks a password, asks whether one is left after a failure (to lock
//! the name with an audit line), and forgets the name's failures on success. The policy
//! (how many, how long) is `crate::accounts`'; the bucket arithmetic is here, once, so the
//! backends only read and write the row. A row whose bucket has refilled says nothing a
//! missing row does not, so each attempt drops those: the table holds only names with
//! recent failures.

use std::time::Duration;

use super::error::StoreFuture;
use super::timestamp::Timestamp;

/// How many failed sign-ins a name may have: `capacity` at once, refilled at `capacity`
/// per `period` (one per `period / capacity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInAllowance {
    pub capacity: u32,
    pub period: Duration,
}

/// A name's stored bucket: attempts left at `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    pub available: f64,
    pub at: Timestamp,
}

impl SignInAllowance {
    fn period_ms(self) -> f64 {
        self.period.as_millis() as f64
    }

    /// Attempts left at `now`; a name without a row has its whole allowance.
    fn refilled(self, bucket: Option<Bucket>, now: Timestamp) -> f64 {
        let capacity = f64::from(self.capacity);
        bucket.map_or(capacity, |bucket| {
            // Multiplied before divided, so whole refills come out exact.
            let elapsed = now.0.saturating_sub(bucket.at.0).max(0) as f64;
            let refill = if self.period_ms() > 0.0 {
                elapsed * capacity / self.period_ms()
            } else {
                0.0
            };
            (bucket.available + refill).min(capacity)
        })
    }

    /// How long until one attempt is back, with `available` left now.
    fn wait(self, available: f64) -> Duration {
        if self.capacity == 0 || self.period_ms() <= 0.0 {
            return Duration::from_secs(60);
        }
        let ms = (1.0 - available).max(0.0) * self.period_ms() / f64::from(self.capacity);
        Duration::from_millis(ms.ceil() as u64)
    }

    /// Takes one attempt: the bucket to store and `None`, or (nothing left) the bucket to
    /// store and how long until there is one.
    pub(crate) fn take(self, bucket: Option<Bucket>, now: Timestamp) -> (Bucket, Option<Duration>) {
        let available = self.refilled(bucket, now);
        if available < 1.0 {
            return (Bucket { available, at: now }, Some(self.wait(available)));
        }
        (
            Bucket {
                available: available - 1.0,
                at: now,
            },
            None,
        )
    }

    /// Whether one attempt is left, without taking it: `None`, or how long until one is.
    pub(crate) fn ready(self, bucket: Option<Bucket>, now: Timestamp) -> Option<Duration> {
        let available = self.refilled(bucket, now);
        (available < 1.0).then(|| self.wait(available))
    }

    /// Rows last written before this time have refilled whole and can go.
    pub(crate) fn refilled_before(self, now: Timestamp) -> Timestamp {
        let period = i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX);
        Timestamp(now.0.saturating_sub(period))
    }
}

/// Failed sign-ins per account name, shared by every central on the store.
pub trait SignInStore: Send + Sync {
    /// Takes one attempt from `name`'s allowance at `now`. `None` when it was there; else
    /// how long until the next one (the name is locked, and nothing was taken).
    fn take_sign_in<'a>(
        &'a self,
        name: &'a str,
        allowance: SignInAllowance,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Duration>>;

    /// Whether `name` has an attempt left at `now`, taking none: `None`, or how long until
    /// it has.
    fn sign_in_ready<'a>(
        &'a self,
        name: &'a str,
        allowance: SignInAllowance,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Duration>>;

    /// Gives `name` its whole allowance back (it signed in).
    fn forget_sign_ins<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWANCE: SignInAllowance = SignInAllowance {
        capacity: 5,
        period: Duration::from_secs(75 * 60),
    };

    #[test]
    fn a_name_gets_its_allowance_at_once_then_one_attempt_per_refill() {
        let mut bucket = None;
        for _ in 0..5 {
            let (next, wait) = ALLOWANCE.take(bucket, Timestamp(0));
            assert_eq!(wait, None);
            bucket = Some(next);
        }
        let (next, wait) = ALLOWANCE.take(bucket, Timestamp(0));
        assert_eq!(wait.map(|wait| wait.as_secs()), Some(15 * 60));
        assert_eq!(ALLOWANCE.ready(Some(next), Timestamp(0)), wait);
        let later = Timestamp(15 * 60 * 1000);
        assert_eq!(ALLOWANCE.ready(Some(next), later), None);
        let (next, wait) = ALLOWANCE.take(Some(next), later);
        assert_eq!(wait, None, "one more attempt");
        assert!(
            ALLOWANCE.take(Some(next), later).1.is_some(),
            "and only one"
        );
    }

    #[test]
    fn a_clock_set_back_refills_nothing_and_breaks_nothing() {
        let (bucket, _) = ALLOWANCE.take(None, Timestamp(10_000));
        let (_, wait) = ALLOWANCE.take(Some(bucket), Timestamp(0));
        assert_eq!(wait, None);
        assert_eq!(ALLOWANCE.refilled(Some(bucket), Timestamp(0)), 4.0);
    }

    #[test]
    fn no_capacity_allows_nothing() {
        let none = SignInAllowance {
            capacity: 0,
            period: Duration::from_secs(60),
        };
        assert!(none.take(None, Timestamp(0)).1.is_some());
    }
}
