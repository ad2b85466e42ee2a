//! Rate limits: a fixed window per scope and subject, counted in Redis when `REDIS_URL` is set, so every
//! instance shares the counts, and in memory otherwise.
//!
//! # Layout
//! - [`scope`]: which counter a hit belongs to (one per limited route, and failed logins per user name), with its
//!   variable and default;
//! - [`limit`]: a limit (`3/minute`) and the limit of every scope;
//! - [`subject`]: whose hits are counted, addresses normalised so an attacker cannot multiply them;
//! - [`counter`]: where hits are counted, one trait with a file per place (memory, Redis);
//! - this module: the [`RateLimiter`] that decides. Routes are limited per client by a route layer
//!   (`router::router`), so a route cannot forget its limit.
//!
//! When Redis cannot be reached, the hit is counted in memory instead: the limit still holds per instance, the
//! service stays up, and an error is logged once per outage (and the recovery once).

pub mod counter;
pub mod limit;
pub mod scope;
pub mod subject;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use counter::memory::MemoryCounter;
use counter::redis::RedisCounter;
use counter::{Counter, Window};
pub use limit::{Limit, Limits};
pub use scope::Scope;
pub use subject::{counted_address, Subject};

/// What a hit is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Under the limit.
    Allowed,
    /// Over it; the client may try again after this long (at least one second, for `Retry-After`).
    Limited {
        /// Until the window closes.
        retry_after: Duration,
    },
}

/// Counts hits per scope and client, each scope against its own limit.
pub struct RateLimiter {
    limits: Limits,
    memory: MemoryCounter,
    redis: Option<Redis>,
}

/// The Redis counter, and whether it answered last time (to log an outage once, and the recovery once).
struct Redis {
    counter: RedisCounter,
    healthy: AtomicBool,
}

impl RateLimiter {
    /// In-memory counters only.
    pub fn in_memory(limits: Limits) -> Self {
        Self { limits, memory: MemoryCounter::default(), redis: None }
    }

    /// Counters in Redis at `url` (keys start with `prefix`), in memory while Redis is unreachable. Nothing
    /// connects until the first hit.
    pub fn with_redis(limits: Limits, url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let counter = RedisCounter::new(url, prefix)?;
        Ok(Self {
            limits,
            memory: MemoryCounter::default(),
            redis: Some(Redis { counter, healthy: AtomicBool::new(true) }),
        })
    }

    /// Counts one hit of `subject` on `scope` and says whether it is within the scope's limit.
    pub async fn hit(&self, scope: Scope, subject: Subject<'_>) -> Decision {
        self.count(scope, subject, true).await
    }

    /// Says whether one more hit of `subject` on `scope` would be within the limit, without counting it.
    pub async fn peek(&self, scope: Scope, subject: Subject<'_>) -> Decision {
        self.count(scope, subject, false).await
    }

    async fn count(&self, scope: Scope, subject: Subject<'_>, add: bool) -> Decision {
        let limit = self.limits.get(scope);
        let key = subject.key();
        // A peek sees the count as it would be with this hit, so it says "limited" exactly when a hit would.
        let ahead = |window: Window| if add { window } else { Window { count: window.count + 1, ..window } };
        if let Some(redis) = &self.redis {
            match redis.counter.count(scope, &key, limit, add).await {
                Ok(window) => {
                    if !redis.healthy.swap(true, Ordering::Relaxed) {
                        tracing::info!("rate limiting: Redis answers again; counting there");
                    }
                    return decide(ahead(window), limit);
                }
                Err(e) => {
                    if redis.healthy.swap(false, Ordering::Relaxed) {
                        tracing::error!("rate limiting: Redis is unreachable ({e}); counting in memory meanwhile");
                    }
                }
            }
        }
        decide(ahead(self.memory.count_now(scope, &key, limit, add)), limit)
    }
}

/// What `window` says of a hit against `limit`.
fn decide(window: Window, limit: Limit) -> Decision {
    if window.count <= u64::from(limit.count) {
        Decision::Allowed
    } else {
        // Retry-After is in whole seconds; round up so the client never comes back early.
        let secs = window.remaining.as_millis().div_ceil(1000).max(1) as u64;
        Decision::Limited { retry_after: Duration::from_secs(secs) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[tokio::test]
    async fn memory_counts_per_scope_and_client() {
        let limits = Limits::from_lookup(|_| Some("2/minute".into())).unwrap();
        let limiter = RateLimiter::in_memory(limits);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(limiter.hit(Scope::Login, Subject::Ip(a)).await, Decision::Allowed);
        assert_eq!(limiter.hit(Scope::Login, Subject::Ip(a)).await, Decision::Allowed);
        match limiter.hit(Scope::Login, Subject::Ip(a)).await {
            Decision::Limited { retry_after } => {
                assert!(retry_after >= Duration::from_secs(59) && retry_after <= Duration::from_secs(60))
            }
            other => panic!("third hit: {other:?}"),
        }
        assert_eq!(limiter.hit(Scope::Login, Subject::Ip(b)).await, Decision::Allowed, "another client");
        assert_eq!(limiter.hit(Scope::Protected, Subject::Ip(a)).await, Decision::Allowed, "another scope");
    }

    #[tokio::test]
    async fn a_peek_counts_nothing() {
        let limits = Limits::from_lookup(|_| Some("1/minute".into())).unwrap();
        let limiter = RateLimiter::in_memory(limits);
        let bob = Subject::User("bob");
        assert_eq!(limiter.peek(Scope::LoginFailures, bob).await, Decision::Allowed);
        assert_eq!(limiter.peek(Scope::LoginFailures, bob).await, Decision::Allowed);
        assert_eq!(limiter.hit(Scope::LoginFailures, bob).await, Decision::Allowed);
        assert!(matches!(limiter.peek(Scope::LoginFailures, bob).await, Decision::Limited { .. }));
    }

    #[tokio::test]
    async fn a_window_closes() {
        let limits = Limits::from_lookup(|_| None)
            .unwrap()
            .with(Scope::Login, Limit { count: 1, period: Duration::from_millis(200) });
        let limiter = RateLimiter::in_memory(limits);
        let a: IpAddr = "::1".parse().unwrap();
        assert_eq!(limiter.hit(Scope::Login, Subject::Ip(a)).await, Decision::Allowed);
        assert!(matches!(limiter.hit(Scope::Login, Subject::Ip(a)).await, Decision::Limited { .. }));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(limiter.hit(Scope::Login, Subject::Ip(a)).await, Decision::Allowed);
    }
}
