//! Revocation checks off the request path: every instance keeps the unexpired revocations in memory ([`set`]; its
//! UUID tokens at 20 bytes each in [`uuid_table`]), loaded at start and kept current by a change stream on the
//! blacklist, or by polling where change streams are unavailable ([`watcher`]), with a stated bound on how stale
//! the set may be.
//!
//! `REVOCATION_MAX_STALENESS_MS` (default 1000) is the longest the set may go without proof that it is current:
//! an answer from the server, either an empty change-stream batch (a getMore that came back after its await time
//! proves that nothing changed until it was sent) or a completed poll. Within the bound, a check is a memory
//! lookup; past it, the check goes to the database as without the set, and fails closed (503) if the database
//! cannot answer. A revocation written by this instance is in its own set before `/logout` answers.
//!
//! Deletes: a delete event names only the `_id`. Every entry auth-api writes has its jti as `_id` (and a user
//! entry `user:NAME`), so deleting one (un-revoking by hand) reaches every set. An entry written by another service
//! with an ObjectId `_id` stays in force here until it expires or the instance restarts (the safe side: a refusal,
//! never a pass); keeping an `_id` map for those would double the memory per entry. An entry whose expiry is
//! neither a date nor a number is kept until restart.

pub mod set;
pub mod uuid_table;
pub mod watcher;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::tokens::Claims;
use set::{Entry, RevokedSet};

/// How the set is kept current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not loaded yet (or reloading): checks go to the database.
    Loading,
    /// A change stream on the blacklist.
    ChangeStream,
    /// Polling by write time, every `REVOCATION_POLL_MS` (a standalone server has no change streams).
    Polling,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Loading => "loading",
            Mode::ChangeStream => "change_stream",
            Mode::Polling => "polling",
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => Mode::ChangeStream,
            2 => Mode::Polling,
            _ => Mode::Loading,
        }
    }
}

/// What the set says of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Revoked.
    Revoked,
    /// Not revoked, as of a proof within the bound.
    NotRevoked,
    /// The set cannot vouch (not loaded, or past the bound): ask the database.
    Stale,
}

/// The settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// `REVOCATION_CACHE` (default true); false keeps the per-request lookup.
    pub enabled: bool,
    /// `REVOCATION_MAX_STALENESS_MS` (default 1000).
    pub max_staleness: Duration,
    /// `REVOCATION_POLL_MS` (default 250), where change streams are unavailable.
    pub poll: Duration,
    /// `REVOCATION_EVICT_SECONDS` (default 30): how often expired entries leave the set.
    pub evict: Duration,
}

/// Milliseconds on a monotonic clock (since the first call in this process). Staleness is measured on it, never on
/// the wall clock: after the wall clock stepped forward and back, an instance cut off from the database claimed
/// `staleness_ms: 0` and accepted a revoked token.
pub fn mono_ms() -> i64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    i64::try_from(base.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// The set, its mode and its last proof of being current.
pub struct RevocationCache {
    set: RwLock<RevokedSet>,
    /// When the last proof was sent, on [`mono_ms`]'s clock (`i64::MIN`: never).
    proof_ms: AtomicI64,
    mode: AtomicU8,
    loaded: AtomicBool,
    max_staleness_ms: i64,
}

impl RevocationCache {
    /// An empty cache with the staleness bound of `settings`.
    pub fn new(settings: &CacheSettings) -> Self {
        Self {
            set: RwLock::new(RevokedSet::default()),
            proof_ms: AtomicI64::new(i64::MIN),
            mode: AtomicU8::new(0),
            loaded: AtomicBool::new(false),
            max_staleness_ms: i64::try_from(settings.max_staleness.as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// What the set says of `claims`, now.
    pub fn check(&self, claims: &Claims) -> Check {
        if !self.is_current(mono_ms()) {
            return Check::Stale;
        }
        let set = self.set.read().unwrap_or_else(PoisonError::into_inner);
        if set.is_revoked(claims) {
            Check::Revoked
        } else {
            Check::NotRevoked
        }
    }

    fn is_current(&self, now_ms: i64) -> bool {
        self.loaded.load(Ordering::Acquire)
            && now_ms.saturating_sub(self.proof_ms.load(Ordering::Acquire)) <= self.max_staleness_ms
    }

    /// Adds an entry this instance (or the watcher) learnt of.
    pub fn insert(&self, entry: Entry) {
        self.set.write().unwrap_or_else(PoisonError::into_inner).insert(entry, Self::now_ms());
    }

    /// Removes the revocation `jti` names (its entry was deleted).
    pub fn remove(&self, jti: &str) {
        self.set.write().unwrap_or_else(PoisonError::into_inner).remove(jti);
    }

    /// Replaces the whole set (a load), proven current as of `proof_ms`.
    fn replace(&self, set: RevokedSet, proof_ms: i64, mode: Mode) {
        *self.set.write().unwrap_or_else(PoisonError::into_inner) = set;
        self.proved(proof_ms);
        self.mode.store(mode as u8, Ordering::Release);
        self.loaded.store(true, Ordering::Release);
    }

    /// The set was current when a request sent at `sent_ms` ([`mono_ms`]) was answered.
    fn proved(&self, sent_ms: i64) {
        self.proof_ms.fetch_max(sent_ms, Ordering::AcqRel);
    }

    fn evict_expired(&self) -> usize {
        self.set.write().unwrap_or_else(PoisonError::into_inner).evict_expired(Self::now_ms())
    }

    /// True once the first load is done.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// `{"mode", "size", "staleness_ms", "max_staleness_ms", "degraded"}` for `/health`.
    pub fn health(&self) -> Value {
        let now = mono_ms();
        let proof = self.proof_ms.load(Ordering::Acquire);
        let staleness = (proof != i64::MIN).then(|| now.saturating_sub(proof).max(0));
        let size = self.set.read().unwrap_or_else(PoisonError::into_inner).len();
        json!({
            "mode": Mode::from_u8(self.mode.load(Ordering::Acquire)).as_str(),
            "size": size,
            "staleness_ms": staleness,
            "max_staleness_ms": self.max_staleness_ms,
            "degraded": !self.is_current(now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_runs_on_the_monotonic_clock() {
        let cache = RevocationCache::new(&CacheSettings {
            enabled: true,
            max_staleness: Duration::from_millis(50),
            poll: Duration::from_millis(10),
            evict: Duration::from_secs(30),
        });
        let sent = mono_ms();
        cache.replace(RevokedSet::default(), sent, Mode::Polling);
        assert!(cache.is_current(sent + 50) && !cache.is_current(sent + 51));
        // Whatever the wall clock does meanwhile, the bound runs out 50 ms after the proof on this clock.
        std::thread::sleep(Duration::from_millis(120));
        assert!(!cache.is_current(mono_ms()));
        assert_eq!(cache.health()["degraded"], true);
    }
}
