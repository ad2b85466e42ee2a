//! The revoked UUID tokens, near the physical limit: 20 bytes an entry (16 of key, 4 of expiry), in sorted runs.
//!
//! A `HashMap<[u64; 2], i64>` took 52 to 56 bytes an entry in resident memory (24-byte slots, the table's empty
//! slots and control bytes, and a doubling that needs the old and the new table at once: 1.5x and more while it
//! copies). Here an entry is a 20-byte record (the UUID's 128 bits big-endian, so that byte order is key order, and
//! its expiry in whole seconds, rounded up), kept in buckets chosen by the key's top bits, each a vector sorted by
//! key. Why this shape:
//! - **No empty slots.** A bucket grows by an eighth at a time (a vector's doubling would leave half of it empty),
//!   so at most an eighth of a bucket is unused, and on average a sixteenth; its sizes come from one series
//!   (`capacity_for`), so that the allocator reuses what a growing bucket gives up.
//! - **Few buckets.** The number of buckets follows the entries (64 to 128 each on average): the per-bucket cost (a
//!   24-byte vector header, the allocator's header) is a fraction of a byte per entry at any size, where a fixed
//!   2^16 buckets cost 15 bytes an entry at 100,000 entries.
//! - **Growth without spikes.** When the buckets hold 128 entries on average, each is split in two by the next bit
//!   of the key, one bucket at a time: the extra memory at any moment is one bucket and the bucket headers, never a
//!   second table.
//! - **Exact.** The whole key is stored: a lookup is a short walk in one bucket from where the key's bits say it
//!   lies (`find_in`), and it never answers "maybe".
//!
//! Expiries are whole seconds since the epoch, rounded up, so that an entry never leaves before its time (it may
//! stay up to a second longer: the safe side); `u32::MAX` is "kept for ever" (an entry with no readable expiry, or
//! one past 2106).

/// One revoked token: its key (the UUID's bits, big-endian) and its expiry (whole seconds, little-endian).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Slot {
    key: [u8; 16],
    expires: [u8; 4],
}

/// The fewest and the most key bits that choose a bucket.
const MIN_BITS: u32 = 4;
const MAX_BITS: u32 = 24;
/// Buckets are split in two when they hold this many entries on average (after a split: half as many).
const SPLIT_AT: usize = 128;
/// The most slots a lookup walks from its guessed place before it searches (see `find_in`).
const WALK: usize = 16;

/// The revoked UUID tokens: see the module doc.
#[derive(Debug)]
pub struct UuidTable {
    /// `2^bits` buckets, each sorted by key, bucket `i` holding the keys whose top `bits` bits are `i`.
    buckets: Vec<Vec<Slot>>,
    bits: u32,
    len: usize,
}

impl Default for UuidTable {
    fn default() -> Self {
        Self { buckets: (0..1usize << MIN_BITS).map(|_| Vec::new()).collect(), bits: MIN_BITS, len: 0 }
    }
}

/// `expires_ms` as whole seconds, rounded up; `u32::MAX` (for ever) beyond what 32 bits hold.
fn seconds(expires_ms: i64) -> u32 {
    let seconds = expires_ms.div_euclid(1000) + i64::from(expires_ms.rem_euclid(1000) > 0);
    u32::try_from(seconds.max(0)).unwrap_or(u32::MAX)
}

/// The capacity a bucket of `len` records is given: the smallest of a fixed series of sizes (8, then an eighth
/// more each step) that holds them. Every bucket's allocations come from the same series, so that the block a
/// growing bucket gives up is the size another (a half left by a split, a smaller bucket) asks for next: with
/// sizes of its own (`len + len / 8`), the blocks given up were never reused, and the heap held 25 to 40 % more
/// than the records.
fn capacity_for(len: usize) -> usize {
    let mut capacity = 8;
    while capacity < len {
        capacity += capacity / 8;
    }
    capacity
}

impl UuidTable {
    fn bucket_of(&self, key: u128) -> usize {
        (key >> (128 - self.bits)) as usize
    }

    /// Where `key` is in its bucket (or would go). UUID keys are uniformly random, so the key's bits below the
    /// bucket's prefix say where in the bucket it lies: the search walks from that guess towards the key, slot by
    /// slot. The guess is off by about the square root of the bucket's size over two (4 slots at 64 entries), so the
    /// walk stays within the one or two cache lines of the guess, which the first read brings in; a binary search
    /// of the same bucket touched about seven lines, each a wait on memory at ten million entries. A walk longer
    /// than [`WALK`] (keys that are not random) finishes with a binary search of the side left.
    fn find_in(bits: u32, bucket: &[Slot], key: u128) -> Result<usize, usize> {
        let len = bucket.len();
        if len == 0 {
            return Err(0);
        }
        let key_at = |i: usize| u128::from_be_bytes(bucket[i].key);
        let below = (key << bits) >> 64;
        let mut at = (((below * len as u128) >> 64) as usize).min(len - 1);
        if key_at(at) < key {
            // Right: the last slot at or below the key.
            for _ in 0..WALK {
                if at + 1 == len || key_at(at + 1) > key {
                    return if key_at(at) == key { Ok(at) } else { Err(at + 1) };
                }
                at += 1;
            }
            let rest = &bucket[at..];
            return rest.binary_search_by(|s| u128::from_be_bytes(s.key).cmp(&key)).map(|i| i + at).map_err(|i| i + at);
        }
        // Left: the first slot at or above the key.
        for _ in 0..WALK {
            if at == 0 || key_at(at - 1) < key {
                return if key_at(at) == key { Ok(at) } else { Err(at) };
            }
            at -= 1;
        }
        bucket[..=at].binary_search_by(|s| u128::from_be_bytes(s.key).cmp(&key))
    }

    /// Adds `key` until `expires_ms` (or moves its expiry, when it is there).
    pub fn insert(&mut self, key: u128, expires_ms: i64) {
        let index = self.bucket_of(key);
        let bytes = key.to_be_bytes();
        let expires = seconds(expires_ms).to_le_bytes();
        let bucket = &mut self.buckets[index];
        match Self::find_in(self.bits, bucket, key) {
            Ok(at) => bucket[at].expires = expires,
            Err(at) => {
                if bucket.len() == bucket.capacity() {
                    bucket.reserve_exact(capacity_for(bucket.len() + 1) - bucket.len());
                }
                bucket.insert(at, Slot { key: bytes, expires });
                self.len += 1;
                if self.len > self.buckets.len() * SPLIT_AT && self.bits < MAX_BITS {
                    self.split();
                }
            }
        }
    }

    /// Whether `key` is in the table.
    pub fn contains(&self, key: u128) -> bool {
        Self::find_in(self.bits, &self.buckets[self.bucket_of(key)], key).is_ok()
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: u128) -> bool {
        let index = self.bucket_of(key);
        let bucket = &mut self.buckets[index];
        let Ok(at) = Self::find_in(self.bits, bucket, key) else { return false };
        bucket.remove(at);
        shrink(bucket);
        self.len -= 1;
        true
    }

    /// Drops every entry expired by `now_ms` (its expiry, in whole seconds, at or before it); returns how many. The
    /// memory they held is given back, bucket by bucket.
    pub fn evict_expired(&mut self, now_ms: i64) -> usize {
        let before = self.len;
        for bucket in &mut self.buckets {
            bucket.retain(|slot| i64::from(u32::from_le_bytes(slot.expires)) * 1000 > now_ms);
            shrink(bucket);
        }
        self.len = self.buckets.iter().map(Vec::len).sum();
        before - self.len
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes it asked the allocator for: the buckets' capacities and the bucket headers.
    pub fn allocated_bytes(&self) -> usize {
        let records: usize = self.buckets.iter().map(Vec::capacity).sum();
        records * std::mem::size_of::<Slot>() + self.buckets.capacity() * std::mem::size_of::<Vec<Slot>>()
    }

    /// Every bucket split in two by the next bit of the key, one at a time (see the module doc).
    fn split(&mut self) {
        let bit = 1u128 << (127 - self.bits);
        let old = std::mem::take(&mut self.buckets);
        let mut next = Vec::with_capacity(old.len() * 2);
        for bucket in old {
            let cut = bucket.partition_point(|slot| u128::from_be_bytes(slot.key) & bit == 0);
            for half in [&bucket[..cut], &bucket[cut..]] {
                let mut own = Vec::with_capacity(if half.is_empty() { 0 } else { capacity_for(half.len()) });
                own.extend_from_slice(half);
                next.push(own);
            }
        }
        self.buckets = next;
        self.bits += 1;
    }
}

/// Gives memory back when a bucket's capacity is two sizes above what it needs.
fn shrink(bucket: &mut Vec<Slot>) {
    let fits = capacity_for(bucket.len());
    if bucket.is_empty() {
        *bucket = Vec::new();
    } else if bucket.capacity() > capacity_for(fits + 1) {
        let mut smaller = Vec::with_capacity(fits);
        smaller.extend_from_slice(bucket);
        *bucket = smaller;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_record_is_twenty_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 20);
        assert_eq!(std::mem::align_of::<Slot>(), 1);
    }

    #[test]
    fn expiries_round_up_to_whole_seconds() {
        assert_eq!(seconds(1000), 1);
        assert_eq!(seconds(1001), 2);
        assert_eq!(seconds(0), 0);
        assert_eq!(seconds(-5), 0);
        assert_eq!(seconds(i64::MAX), u32::MAX);
        let mut table = UuidTable::default();
        table.insert(7, 10_500);
        assert_eq!(table.evict_expired(10_999), 0, "kept until its second is over");
        assert_eq!(table.evict_expired(11_000), 1);
    }

    #[test]
    fn keys_that_are_not_random_are_still_found_past_the_walk() {
        // Every key shares its top 64 bits: the guess is the same slot for all, so most lookups walk past WALK and
        // finish with a binary search, on both sides of the guess.
        let mut table = UuidTable::default();
        let key = |i: u128| (0xdead_beef_u128 << 64) | (i * 7);
        for i in 0..3000 {
            table.insert(key(i), 4_000_000_000_000);
        }
        assert!((0..3000).all(|i| table.contains(key(i))));
        assert!((0..3000).all(|i| !table.contains(key(i) + 1)));
        for i in (0..3000).step_by(2) {
            assert!(table.remove(key(i)));
        }
        assert!((0..3000).all(|i| table.contains(key(i)) == (i % 2 == 1)));
        assert_eq!(table.len(), 1500);
    }

    #[test]
    fn buckets_split_as_the_table_grows_and_lookups_stay_exact() {
        let mut table = UuidTable::default();
        let keys: Vec<u128> =
            (0..20_000u128).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)).collect();
        for &key in &keys {
            table.insert(key, i64::MAX);
        }
        assert_eq!(table.len(), keys.len());
        assert!(table.bits > MIN_BITS, "split: {} bits", table.bits);
        assert!(table.buckets.iter().all(|b| b.windows(2).all(|w| w[0].key < w[1].key)), "every bucket sorted");
        assert!(keys.iter().all(|&k| table.contains(k)));
        assert!(!table.contains(1));
    }

    proptest! {
        /// Random inserts, removals, evictions and lookups, against a reference map, across splits.
        #[test]
        fn agrees_with_a_reference_map(
            ops in prop::collection::vec((0u8..20, 0u64..20_000, 0i64..5000), 1..9000),
            spread in prop::sample::select(vec![1u128, 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835u128]),
        ) {
            let mut table = UuidTable::default();
            let mut reference: HashMap<u128, i64> = HashMap::new();
            let mut now = 0i64;
            for (op, n, t) in ops {
                let key = u128::from(n).wrapping_mul(spread);
                let expires_ms = (now / 1000 + t) * 1000;
                match op {
                    0..=17 => {
                        table.insert(key, expires_ms);
                        reference.insert(key, expires_ms);
                    }
                    18 => prop_assert_eq!(table.remove(key), reference.remove(&key).is_some()),
                    _ => {
                        now += 7_000;
                        let evicted = table.evict_expired(now);
                        let before = reference.len();
                        reference.retain(|_, e| *e > now);
                        prop_assert_eq!(evicted, before - reference.len());
                    }
                }
                prop_assert_eq!(table.contains(key), reference.contains_key(&key));
                prop_assert_eq!(table.len(), reference.len());
            }
            for &key in reference.keys() {
                prop_assert!(table.contains(key));
            }
        }
    }
}
