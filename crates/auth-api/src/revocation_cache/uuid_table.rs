//! The revoked UUID tokens, near the physical limit: 20 bytes an entry (16 of key, 4 of expiry) in one array,
//! 21.3 to 22.9 bytes an entry with its empty slots, at every size.
//!
//! A `HashMap<[u64; 2], i64>` took 42 to 56 bytes an entry in resident memory (24-byte slots, the table's empty
//! slots and control bytes, and a doubling that needs the old and the new table at once: 1.5x while it copies).
//! Sorted buckets of their own (the design before this one) asked for 21.3 bytes an entry, but the heap kept what
//! growing buckets gave up: 24.4 to 28.5 resident. Here every entry is a 20-byte record in one array of slots
//! ([`region`], a mapping of its own on huge pages), an ordered linear-probing table:
//! - **Where an entry lives.** Its key is the UUID's 128 bits passed through a bijection (`scramble`: two odd
//!   multiplications and two xor-shifts, each invertible, so the stored key is the UUID and the table stays exact),
//!   which spreads keys that are not random (time-ordered UUIDs share their top 48 bits). The key's top bits name its
//!   home slot (`home`), and the entries are kept sorted by key, each at its home or after it with no empty slot
//!   between: a lookup reads from the home slot forward and stops at the key, at a larger one or at an empty slot.
//!   The home slots scale with the key, so the entries sit in key order across the whole array.
//! - **Few empty slots.** The table holds between 80 % and 94 % of its slots (`GROW_AT`, `SPREAD_TO`,
//!   `SHRINK_AT`): a lookup reads a few slots past its home, one or two cache lines.
//! - **Growth without spikes.** At 94 % the table gets 7 % more slots, in place: its mapping is made longer (no
//!   copy), and the entries are moved right to their new places, last first, so that none is overwritten; the
//!   memory at any moment is the new table's, never an old and a new one.
//! - **Expiry gives memory back.** Expired entries are dropped in one pass that moves the rest left; below 80 % the
//!   table shrinks to 88 % the same way and returns the pages to the system.
//!
//! Expiries are whole seconds since the epoch, rounded up, so that an entry never leaves before its time (it may
//! stay up to a second longer: the safe side); `u32::MAX` is "kept for ever" (an entry with no readable expiry, or
//! one past 2106). An expiry of zero marks an empty slot, so an entry's is at least 1 (1970: already expired, it
//! leaves at the next eviction).

mod region;

use region::Region;

/// One revoked token: its scrambled key and its expiry (whole seconds), both little-endian; all zero when empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Slot {
    key: [u8; 16],
    expires: [u8; 4],
}

impl Slot {
    const EMPTY: Slot = Slot { key: [0; 16], expires: [0; 4] };

    fn is_empty(&self) -> bool {
        self.expires == [0; 4]
    }

    fn key(&self) -> u128 {
        u128::from_le_bytes(self.key)
    }
}

/// The table grows when more than 15/16 of its home slots are taken (94 %)...
const GROW_AT: (usize, usize) = (15, 16);
/// ...and shrinks when fewer than 4/5 are (80 %).
const SHRINK_AT: (usize, usize) = (4, 5);
/// After a growth or a shrink: 8 home slots for every 7 entries (87.5 % taken), so that a table just grown holds
/// 22.9 bytes an entry and stays below 24 with the slots past the last home and its last page.
const SPREAD_TO: (usize, usize) = (8, 7);
/// The fewest home slots.
const MIN_HOMES: usize = 64;
/// Slots past the last home, for the entries of the last homes that overflow them (more are added when needed).
const TAIL: usize = 32;
/// Entries whose new places a growth computes ahead of moving them (see `spread`).
const CHUNK: usize = 1024;

/// The revoked UUID tokens: see the module doc.
#[derive(Debug)]
pub struct UuidTable {
    slots: Region,
    homes: usize,
    len: usize,
}

impl Default for UuidTable {
    fn default() -> Self {
        Self { slots: Region::new(), homes: 0, len: 0 }
    }
}

/// `expires_ms` as whole seconds, rounded up; `u32::MAX` (for ever) beyond what 32 bits hold.
fn seconds(expires_ms: i64) -> u32 {
    let seconds = expires_ms.div_euclid(1000) + i64::from(expires_ms.rem_euclid(1000) > 0);
    u32::try_from(seconds.max(0)).unwrap_or(u32::MAX)
}

/// A bijection of the 128-bit keys (see the module doc): a multiplication by an odd number and `x ^= x >> s` are
/// both invertible modulo 2^128.
fn scramble(key: u128) -> u128 {
    let mut h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    h ^= h >> 64;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9_94D0_49BB_1331_11EB);
    h ^ (h >> 61)
}

/// The home slots for `len` entries after a growth or a shrink.
fn homes_for(len: usize) -> usize {
    (len / SPREAD_TO.1 * SPREAD_TO.0 + SPREAD_TO.0).max(MIN_HOMES)
}

impl UuidTable {
    /// The home slot of a (scrambled) key: its top bits scaled to the home slots, so homes follow key order.
    fn home(&self, key: u128) -> usize {
        ((u128::from((key >> 64) as u64) * self.homes as u128) >> 64) as usize
    }

    /// Where `key` (scrambled) is (`Ok`), or where it would go (`Err`): from its home, past the smaller keys.
    fn find(&self, key: u128) -> Result<usize, usize> {
        let mut at = self.home(key);
        while let Some(slot) = self.slots.get(at) {
            if slot.is_empty() {
                return Err(at);
            }
            let here = slot.key();
            if here >= key {
                return if here == key { Ok(at) } else { Err(at) };
            }
            at += 1;
        }
        Err(at)
    }

    /// Adds `key` until `expires_ms` (or moves its expiry, when it is there).
    pub fn insert(&mut self, key: u128, expires_ms: i64) {
        let key = scramble(key);
        let expires = seconds(expires_ms).max(1).to_le_bytes();
        if let Ok(at) = self.find(key) {
            self.slots[at].expires = expires;
            return;
        }
        if (self.len + 1) * GROW_AT.1 > self.homes * GROW_AT.0 {
            self.spread(homes_for(self.len + 1).max(self.homes));
        }
        let (Ok(at) | Err(at)) = self.find(key);
        // The entries from `at` to the first empty slot move one right (each stays past its home, in order).
        let end = match self.slots[at..].iter().position(Slot::is_empty) {
            Some(empty) => at + empty,
            None => {
                let end = self.slots.len();
                self.slots.resize(end + TAIL);
                end
            }
        };
        self.slots.copy_within(at..end, at + 1);
        self.slots[at] = Slot { key: key.to_le_bytes(), expires };
        self.len += 1;
    }

    /// Whether `key` is in the table.
    pub fn contains(&self, key: u128) -> bool {
        self.find(scramble(key)).is_ok()
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: u128) -> bool {
        let Ok(at) = self.find(scramble(key)) else { return false };
        // The entries after it that are past their home move one left, up to an empty slot or one at its home.
        let mut end = at + 1;
        while end < self.slots.len() && !self.slots[end].is_empty() && self.home(self.slots[end].key()) < end {
            end += 1;
        }
        self.slots.copy_within(at + 1..end, at);
        self.slots[end - 1] = Slot::EMPTY;
        self.len -= 1;
        self.shrink_if_sparse();
        true
    }

    /// Drops every entry expired by `now_ms` (its expiry, in whole seconds, at or before it); returns how many. The
    /// memory they held is reused, or given back when the table shrinks.
    pub fn evict_expired(&mut self, now_ms: i64) -> usize {
        let before = self.len;
        self.pack(self.homes, |slot| i64::from(u32::from_le_bytes(slot.expires)) * 1000 > now_ms);
        self.shrink_if_sparse();
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

    /// The bytes it holds: its mapping.
    pub fn allocated_bytes(&self) -> usize {
        self.slots.mapped_bytes()
    }

    fn shrink_if_sparse(&mut self) {
        let homes = homes_for(self.len).min(self.homes);
        if homes < self.homes && self.len * SHRINK_AT.1 < self.homes * SHRINK_AT.0 {
            self.pack(homes, |_| true);
        }
    }

    /// Keeps the entries `keep` accepts, on `homes` home slots (no more than today's): each entry's place moves
    /// left or stays, so one pass from the left moves each into place (its new place is free: every entry before
    /// it is placed before it). The slots left behind are emptied, and the region ends after the last entry.
    fn pack(&mut self, homes: usize, keep: impl Fn(&Slot) -> bool) {
        debug_assert!(homes <= self.homes);
        self.homes = homes;
        let (mut next, mut len) = (0, 0);
        for from in 0..self.slots.len() {
            let slot = self.slots[from];
            if slot.is_empty() {
                continue;
            }
            if !keep(&slot) {
                self.slots[from] = Slot::EMPTY;
                continue;
            }
            let to = self.home(slot.key()).max(next);
            if to != from {
                self.slots[to] = slot;
                self.slots[from] = Slot::EMPTY;
            }
            next = to + 1;
            len += 1;
        }
        self.len = len;
        self.slots.resize((homes + TAIL).max(next));
    }

    /// Spreads the entries over `homes` home slots (more than today's). Each entry's place moves right or stays,
    /// so they are moved from the right, last first; an entry's new place depends on the entries before it, so a
    /// first pass from the left computes where every `CHUNK`-th entry's run starts, and each chunk's places are
    /// computed again, from its mark, just before its entries move. The extra memory is a mark per `CHUNK` entries
    /// and one chunk's places.
    fn spread(&mut self, homes: usize) {
        debug_assert!(homes >= self.homes);
        self.homes = homes;
        let old = self.slots.len();
        let (mut marks, mut next, mut count) = (Vec::new(), 0, 0);
        for from in 0..old {
            let slot = &self.slots[from];
            if slot.is_empty() {
                continue;
            }
            if count % CHUNK == 0 {
                marks.push((from, next));
            }
            next = self.home(slot.key()).max(next) + 1;
            count += 1;
        }
        self.slots.resize((homes + TAIL).max(next));
        let (mut moves, mut end) = (Vec::with_capacity(CHUNK), old);
        for &(start, mut next) in marks.iter().rev() {
            moves.clear();
            for from in start..end {
                let slot = &self.slots[from];
                if !slot.is_empty() {
                    let to = self.home(slot.key()).max(next);
                    moves.push((from, to));
                    next = to + 1;
                }
            }
            for &(from, to) in moves.iter().rev() {
                if to != from {
                    self.slots[to] = self.slots[from];
                    self.slots[from] = Slot::EMPTY;
                }
            }
            end = start;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// The table's invariants: entries sorted by key, each at or past its home with no empty slot between.
    fn check(table: &UuidTable) {
        let mut last = None;
        let mut count = 0;
        for (at, slot) in table.slots.iter().enumerate() {
            if slot.is_empty() {
                continue;
            }
            count += 1;
            let key = slot.key();
            assert!(last < Some(key), "sorted at {at}");
            let home = table.home(key);
            assert!(home <= at, "at or past its home at {at}");
            assert!(table.slots[home..at].iter().all(|s| !s.is_empty()), "no empty slot before {at}");
            last = Some(key);
        }
        assert_eq!(count, table.len);
    }

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
        table.insert(8, -3_000);
        assert!(table.contains(8), "an expiry before 1970 is an entry, not an empty slot");
        assert_eq!(table.evict_expired(1_000), 1);
    }

    #[test]
    fn keys_that_are_not_random_are_spread() {
        // Every key shares its top 64 bits (as time-ordered UUIDs share their top 48): scrambled, they still spread
        // over the homes, and lookups stay short and exact.
        let mut table = UuidTable::default();
        let key = |i: u128| (0xdead_beef_u128 << 64) | (i * 7);
        for i in 0..3000 {
            table.insert(key(i), 4_000_000_000_000);
        }
        check(&table);
        assert!((0..3000).all(|i| table.contains(key(i))));
        assert!((0..3000).all(|i| !table.contains(key(i) + 1)));
        let longest = (0..3000).map(|i| table.find(scramble(key(i))).unwrap() - table.home(scramble(key(i)))).max();
        assert!(longest < Some(200), "spread: the farthest entry is {longest:?} slots from its home");
        for i in (0..3000).step_by(2) {
            assert!(table.remove(key(i)));
        }
        check(&table);
        assert!((0..3000).all(|i| table.contains(key(i)) == (i % 2 == 1)));
        assert_eq!(table.len(), 1500);
    }

    #[test]
    fn the_table_grows_and_shrinks_in_place_and_stays_exact() {
        let mut table = UuidTable::default();
        let keys: Vec<u128> = (0..50_000u128).map(|i| i.wrapping_mul(0x2545_F491_4F6C_DD1D_0000_0001)).collect();
        for (i, &key) in keys.iter().enumerate() {
            table.insert(key, 1_000 * (1 + i as i64 % 10));
        }
        check(&table);
        assert_eq!(table.len(), keys.len());
        let taken = table.len() as f64 / table.homes as f64;
        assert!((0.8..=0.94).contains(&taken), "{taken} of the homes taken");
        assert!(keys.iter().all(|&k| table.contains(k)));
        assert!(!table.contains(1));
        let grown = table.allocated_bytes();
        // Half expire: the rest move left, the table shrinks and its pages go back.
        assert_eq!(table.evict_expired(5_000), keys.len() / 2);
        check(&table);
        assert!(table.allocated_bytes() < grown * 6 / 10, "{} of {grown} bytes kept", table.allocated_bytes());
        assert!(keys.iter().enumerate().all(|(i, &k)| table.contains(k) == (i % 10 >= 5)));
        for (i, &key) in keys.iter().enumerate() {
            assert_eq!(table.remove(key), i % 10 >= 5);
        }
        check(&table);
        assert!(table.is_empty());
        assert_eq!(table.homes, MIN_HOMES);
    }

    proptest! {
        /// Random inserts, removals, evictions and lookups, against a reference map, across growths and shrinks.
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
                    0..=16 => {
                        table.insert(key, expires_ms);
                        reference.insert(key, expires_ms);
                    }
                    17..=18 => prop_assert_eq!(table.remove(key), reference.remove(&key).is_some()),
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
            check(&table);
            for &key in reference.keys() {
                prop_assert!(table.contains(key));
            }
        }
    }
}
