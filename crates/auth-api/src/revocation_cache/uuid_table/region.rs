//! The table's memory: a range of address space of its own, reserved once and committed as the table grows.
//!
//! Why not a `Vec`: a vector that grows past its capacity asks the allocator for a new block and copies (twice the
//! memory while it does, and the old block left in the heap). Here the table's slots sit at the start of a large
//! reservation (`PROT_NONE`, which costs neither memory nor commit charge), and growing makes more of it writable:
//! nothing moves and nothing is copied, so the memory at any moment is the slots. A shrink hands the pages past
//! the end back to the system at once (`MADV_DONTNEED`), not to a heap that may keep them.
//!
//! Huge pages: a lookup in a table of hundreds of megabytes misses the TLB on nearly every access with 4 KiB
//! pages. Every whole 2 MiB of the slots is advised `MADV_HUGEPAGE`, so it is faulted in as one huge page; the last,
//! partial 2 MiB stays in small pages (a huge page there would hold up to 2 MiB more than the slots), and when a
//! growth makes it whole, `MADV_COLLAPSE` turns it into one. Both are advice: a kernel without them (or out of
//! huge pages) leaves small pages, and only the speed changes. (A first version grew by `mremap`, which moves
//! the mapping to an address of the kernel's choosing and splits its huge pages: 32 of 220 MB stayed huge.)
//!
//! New pages are zero, and an all-zero slot is an empty one, so growing needs no writes; a shrink zeroes what it
//! keeps of a page past the last slot, so that a later growth finds only zeros there too.

use std::ptr::NonNull;

use super::Slot;

/// Slots at the start of a reservation of their own; every slot past `len` within the committed pages is zero.
pub(super) struct Region {
    /// The reservation (2 MiB aligned), `reserved` bytes long; none yet while `reserved` is 0.
    start: NonNull<Slot>,
    reserved: usize,
    len: usize,
    /// Bytes writable from `start` (whole pages).
    committed: usize,
}

// SAFETY: a `Region` owns its mapping alone, as a `Vec` owns its buffer; `Slot` is plain bytes.
unsafe impl Send for Region {}
// SAFETY: shared references only read through `Deref`.
unsafe impl Sync for Region {}

const PAGE: usize = 4096;
const HUGE_PAGE: usize = 2 << 20;
/// Linux's `MADV_COLLAPSE` (6.1 and later; not in the libc crate yet).
const MADV_COLLAPSE: libc::c_int = 25;
/// The reservations tried, largest first (64 GiB is 3.4 billion slots); a smaller one where the address space is
/// limited.
const RESERVATIONS: [usize; 3] = [1 << 36, 1 << 32, 1 << 28];

fn out_of_memory(bytes: usize) -> ! {
    std::alloc::handle_alloc_error(
        std::alloc::Layout::from_size_align(bytes, PAGE).unwrap_or(std::alloc::Layout::new::<Slot>()),
    )
}

impl Region {
    pub(super) fn new() -> Self {
        Self { start: NonNull::dangling(), reserved: 0, len: 0, committed: 0 }
    }

    /// The bytes committed.
    pub(super) fn mapped_bytes(&self) -> usize {
        self.committed
    }

    fn base(&self) -> *mut u8 {
        self.start.as_ptr().cast()
    }

    /// Makes it `len` slots long: new slots are empty (zero); slots past `len` are dropped.
    pub(super) fn resize(&mut self, len: usize) {
        let bytes = len.checked_mul(std::mem::size_of::<Slot>()).unwrap_or_else(|| out_of_memory(usize::MAX));
        let committed = bytes.div_ceil(PAGE) * PAGE;
        if len < self.len {
            // What stays committed past the new end must be zero (see the type's invariant).
            let kept = (committed / std::mem::size_of::<Slot>()).min(self.len);
            self[len..kept].fill(Slot::EMPTY);
        }
        self.len = len.min(self.len);
        if committed > self.committed {
            self.commit(committed);
        } else if committed < self.committed {
            self.release(committed);
        }
        self.len = len;
    }

    fn reserve() -> (NonNull<Slot>, usize) {
        for size in RESERVATIONS {
            // SAFETY: a new private anonymous mapping, inaccessible until committed; the result is checked.
            let at = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    size + HUGE_PAGE,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if at == libc::MAP_FAILED {
                continue;
            }
            // Aligned to 2 MiB, so that whole 2 MiB of slots are whole huge pages; the ends cut off are unmapped.
            let head = (at as usize).next_multiple_of(HUGE_PAGE) - at as usize;
            // SAFETY: both ranges lie in the mapping just made, outside the part kept.
            unsafe {
                if head > 0 {
                    libc::munmap(at, head);
                }
                libc::munmap(at.cast::<u8>().add(head + size).cast(), HUGE_PAGE - head);
            }
            // SAFETY: `head` is within the mapping.
            let start = unsafe { at.cast::<u8>().add(head) };
            return (NonNull::new(start.cast()).unwrap_or_else(|| out_of_memory(size)), size);
        }
        out_of_memory(RESERVATIONS[RESERVATIONS.len() - 1])
    }

    fn commit(&mut self, committed: usize) {
        if self.reserved == 0 {
            (self.start, self.reserved) = Self::reserve();
        }
        if committed > self.reserved {
            out_of_memory(committed);
        }
        let base = self.base();
        // SAFETY: the range lies in this region's reservation, past every slot in use.
        let made = unsafe {
            libc::mprotect(
                base.add(self.committed).cast(),
                committed - self.committed,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if made != 0 {
            out_of_memory(committed);
        }
        let (was, whole) = (self.committed / HUGE_PAGE * HUGE_PAGE, committed / HUGE_PAGE * HUGE_PAGE);
        if whole > was {
            // SAFETY: advice on this region's own committed pages; it changes no content, and a refusal changes
            // nothing.
            unsafe {
                libc::madvise(base.add(was).cast(), whole - was, libc::MADV_HUGEPAGE);
                if self.committed > was {
                    // The 2 MiB that was partial (small pages) is whole now.
                    libc::madvise(base.add(was).cast(), HUGE_PAGE, MADV_COLLAPSE);
                }
            }
        }
        self.committed = committed;
    }

    fn release(&mut self, committed: usize) {
        let base = self.base();
        // SAFETY: the range lies in this region's committed pages, past every slot kept; its contents are dropped
        // (read back as zero) and the pages go back to the system.
        unsafe {
            let gone = base.add(committed).cast();
            libc::madvise(gone, self.committed - committed, libc::MADV_DONTNEED);
            libc::mprotect(gone, self.committed - committed, libc::PROT_NONE);
        }
        self.committed = committed;
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.reserved > 0 {
            // SAFETY: the reservation is this region's alone and is not used after this.
            unsafe { libc::munmap(self.base().cast(), self.reserved) };
        }
    }
}

impl std::ops::Deref for Region {
    type Target = [Slot];
    fn deref(&self) -> &[Slot] {
        // SAFETY: `len` slots are committed and initialised (zero or written), and `Slot` is valid for any bytes.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Region {
    fn deref_mut(&mut self) -> &mut [Slot] {
        // SAFETY: as for `deref`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.start.as_ptr(), self.len) }
    }
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("slots", &self.len).field("committed", &self.committed).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_survive_growth_and_a_shrink_leaves_zeros_behind() {
        let mut region = Region::new();
        region.resize(10);
        assert!(region.iter().all(|s| *s == Slot::EMPTY), "new slots are empty");
        region[9] = Slot { key: [7; 16], expires: [1; 4] };
        region.resize(300_000);
        assert_eq!(region[9].key, [7; 16], "kept across a move");
        region[299_999] = Slot { key: [9; 16], expires: [2; 4] };
        region[5] = Slot { key: [3; 16], expires: [3; 4] };
        region.resize(6);
        assert_eq!(region.mapped_bytes(), PAGE);
        region.resize(300_000);
        assert_eq!(region[5].key, [3; 16]);
        assert!(region[6..].iter().all(|s| *s == Slot::EMPTY), "what a shrink dropped comes back empty");
        region.resize(0);
        assert_eq!(region.mapped_bytes(), 0);
        assert!(region.is_empty());
    }
}
