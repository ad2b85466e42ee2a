//! argon2's working memory, kept warm between verifications and given back after a burst.
//!
//! Every verification fills 19 MiB of memory blocks (argon2id's default `m = 19456` KiB). Allocated fresh each
//! time, with glibc's mmap threshold pinned so that the memory goes back to the system when freed (`main.rs`),
//! each verification first faults in thousands of zeroed pages, and a burst of failed logins took about 40 % longer
//! than when glibc kept the blocks (and grew by hundreds of megabytes). This pool keeps the blocks:
//! one set per verification in flight (the verification permits bound that: two per core), taken and put back
//! around each verification, and all dropped once none has been used for `keep` (default 1 s, the
//! `PASSWORD_MEMORY_KEEP_MS` setting; 0 turns the pool off), so a burst is served from warm memory and its memory
//! is back with the system about a second after it ends. Figures: BENCHMARKS.md, `scripts/bench auth-memory`.
//!
//! Reusing blocks is sound: argon2 (version 0x13) writes every block of the first pass before reading it, so
//! what an earlier verification left there never reaches a result (a test checks a hash verified on reused
//! memory, right and wrong passwords interleaved).

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// How often the pool looks for idle blocks to drop.
const TRIM_EVERY: Duration = Duration::from_millis(250);

/// Memory blocks for argon2, reused.
#[derive(Debug)]
pub struct BlockPool {
    keep: Duration,
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    free: Vec<Vec<Block>>,
    last_used: Instant,
}

impl BlockPool {
    /// A pool that drops its blocks after `keep` without use (a thread checks every 250 ms while the pool lives);
    /// `keep` zero: no pool, every verification allocates its own blocks.
    pub fn new(keep: Duration) -> Arc<Self> {
        let pool =
            Arc::new(Self { keep, state: Mutex::new(PoolState { free: Vec::new(), last_used: Instant::now() }) });
        if !keep.is_zero() {
            let weak = Arc::downgrade(&pool);
            // A plain thread: verifications run on the blocking pool, and the pool outlives no runtime.
            let spawned = std::thread::Builder::new().name("argon2-trim".into()).spawn(move || trim_while_alive(&weak));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "argon2 memory is not trimmed: no thread for it");
            }
        }
        pool
    }

    /// Blocks pooled now (for tests and `/health`-style checks).
    pub fn pooled(&self) -> usize {
        self.lock().free.len()
    }

    /// True when `password` matches the parsed PHC `hash`; false for a wrong password or a hash this cannot
    /// verify. Runs argon2 here: call it on the blocking pool.
    pub fn verify(&self, password: &[u8], hash: &PasswordHash<'_>) -> bool {
        let Some((argon2, salt, expected)) = parts(hash) else { return false };
        let blocks = argon2.params().block_count();
        let mut memory = self.take(blocks);
        let mut out = vec![0u8; expected.len()];
        let computed = argon2.hash_password_into_with_memory(password, &salt, &mut out, &mut memory[..]);
        self.give(memory);
        // `Output`'s equality is constant-time.
        computed.is_ok() && Output::new(&out).is_ok_and(|out| out == expected)
    }

    fn take(&self, blocks: usize) -> Vec<Block> {
        if !self.keep.is_zero() {
            let mut state = self.lock();
            if let Some(at) = state.free.iter().position(|memory| memory.len() == blocks) {
                return state.free.swap_remove(at);
            }
        }
        vec![Block::default(); blocks]
    }

    fn give(&self, memory: Vec<Block>) {
        if self.keep.is_zero() {
            return;
        }
        let mut state = self.lock();
        state.free.push(memory);
        state.last_used = Instant::now();
    }

    /// Drops every pooled block when none has been used for `keep`.
    fn trim(&self) {
        let dropped = {
            let mut state = self.lock();
            if state.free.is_empty() || state.last_used.elapsed() < self.keep {
                return;
            }
            std::mem::take(&mut state.free)
        };
        // Freed outside the lock: unmapping 19 MiB a set is not free.
        drop(dropped);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // The state is a list and an instant: whatever a panicking holder left is still valid.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn trim_while_alive(pool: &Weak<BlockPool>) {
    loop {
        std::thread::sleep(TRIM_EVERY);
        match pool.upgrade() {
            Some(pool) => pool.trim(),
            None => return,
        }
    }
}

/// The hasher, the salt and the expected output a PHC string describes; `None` when it is not an argon2 hash
/// this crate can compute.
fn parts(hash: &PasswordHash<'_>) -> Option<(Argon2<'static>, Vec<u8>, Output)> {
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = hash.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
    let params = Params::try_from(hash).ok()?;
    let mut salt = [0u8; 64];
    let salt = hash.salt?.decode_b64(&mut salt).ok()?.to_vec();
    let expected = hash.hash?;
    Some((Argon2::new(algorithm, version, params), salt, expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    fn hash(password: &str) -> String {
        let salt = SaltString::encode_b64(b"sixteen byte slt").expect("salt");
        Argon2::default().hash_password(password.as_bytes(), &salt).expect("hash").to_string()
    }

    #[test]
    fn reused_memory_verifies_like_fresh_memory() {
        let pool = BlockPool::new(Duration::from_secs(60));
        let (right, other) = (hash("correct horse"), hash("battery staple"));
        let (right, other) = (PasswordHash::new(&right).expect("phc"), PasswordHash::new(&other).expect("phc"));
        for _ in 0..3 {
            assert!(pool.verify(b"correct horse", &right));
            assert!(!pool.verify(b"correct horse!", &right));
            assert!(pool.verify(b"battery staple", &other));
            assert!(!pool.verify(b"correct horse", &other));
        }
        assert_eq!(pool.pooled(), 1, "one verification at a time needs one set of blocks");
    }

    #[test]
    fn idle_blocks_are_dropped_and_a_zero_keep_pools_nothing() {
        let pool = BlockPool::new(Duration::from_millis(100));
        let right = hash("correct horse");
        let right = PasswordHash::new(&right).expect("phc");
        assert!(pool.verify(b"correct horse", &right));
        assert_eq!(pool.pooled(), 1);
        let waited = Instant::now();
        while pool.pooled() > 0 {
            assert!(waited.elapsed() < Duration::from_secs(10), "the idle blocks were never dropped");
            std::thread::sleep(Duration::from_millis(50));
        }

        let off = BlockPool::new(Duration::ZERO);
        assert!(off.verify(b"correct horse", &right));
        assert_eq!(off.pooled(), 0);
    }

    #[test]
    fn hashes_it_cannot_compute_do_not_verify() {
        let pool = BlockPool::new(Duration::ZERO);
        let scrypt = "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(!pool.verify(b"x", &PasswordHash::new(scrypt).expect("phc")));
    }
}
