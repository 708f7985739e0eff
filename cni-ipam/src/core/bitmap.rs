//! A hierarchical bitmap: one bit per address, plus summary levels that say which words are full.
//!
//! Level 0 holds one bit per slot (1 = used). In level `k + 1`, bit `j` is 1 exactly when word `j`
//! of level `k` is all ones. Padding bits past the end are kept at 1 so they are never "free".
//! Finding the first free slot at or after a position therefore touches one word per level, even
//! when the range is 99% full: for 2^20 slots that is four levels (16384, 256, 4 and 1 words).

/// A fixed-size set of slots with O(levels) "first free at or after".
#[derive(Debug, Clone)]
pub struct Bitmap {
    len: u32,
    used: u32,
    /// `levels[0]` is the slot level; the last level has exactly one word.
    levels: Vec<Vec<u64>>,
}

const WORD: u32 = 64;

impl Bitmap {
    /// A bitmap of `len` free slots.
    pub fn new(len: u32) -> Self {
        let mut levels = Vec::new();
        let mut bits = len;
        loop {
            let words = bits.div_ceil(WORD).max(1);
            let mut level = vec![0u64; words as usize];
            // Set padding bits past `bits` so that they never look free.
            let tail = bits % WORD;
            if let Some(last) = level.last_mut() {
                if bits == 0 {
                    *last = u64::MAX;
                } else if tail != 0 {
                    *last = !((1u64 << tail) - 1);
                }
            }
            levels.push(level);
            if words == 1 {
                break;
            }
            bits = words;
        }
        // Padding never fills a word on its own (a partial word keeps `tail` zero bits), so no
        // summary bit needs setting here.
        Self {
            len,
            used: 0,
            levels,
        }
    }

    /// Number of slots.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when the bitmap has no slots at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of used slots.
    pub fn count_used(&self) -> u32 {
        self.used
    }

    /// Whether slot `i` is used. Slots past the end count as used.
    pub fn is_used(&self, i: u32) -> bool {
        if i >= self.len {
            return true;
        }
        self.levels[0][(i / WORD) as usize] & (1u64 << (i % WORD)) != 0
    }

    /// Marks slot `i` used; returns false if it was already used or is out of range.
    pub fn set(&mut self, i: u32) -> bool {
        if self.is_used(i) {
            return false;
        }
        let mut idx = i;
        for level in &mut self.levels {
            let word = &mut level[(idx / WORD) as usize];
            *word |= 1u64 << (idx % WORD);
            if *word != u64::MAX {
                break;
            }
            idx /= WORD;
        }
        self.used += 1;
        true
    }

    /// Marks slot `i` free; returns false if it was already free or is out of range.
    pub fn clear(&mut self, i: u32) -> bool {
        if i >= self.len || !self.is_used(i) {
            return false;
        }
        let mut idx = i;
        for level in &mut self.levels {
            let word = &mut level[(idx / WORD) as usize];
            let was_full = *word == u64::MAX;
            *word &= !(1u64 << (idx % WORD));
            if !was_full {
                break;
            }
            idx /= WORD;
        }
        self.used -= 1;
        true
    }

    /// The first free slot at or after `from`, if any (no wrap-around).
    pub fn first_free_from(&self, from: u32) -> Option<u32> {
        if from >= self.len {
            return None;
        }
        self.find(0, from as usize).map(|i| i as u32)
    }

    /// The first free slot at or after `from`, wrapping around to the start.
    pub fn next_free(&self, from: u32) -> Option<u32> {
        self.first_free_from(from)
            .or_else(|| self.first_free_from(0))
    }

    fn find(&self, level: usize, pos: usize) -> Option<usize> {
        let words = self.levels.get(level)?;
        let w = pos / WORD as usize;
        let word = *words.get(w)?;
        let below = (1u64 << (pos % WORD as usize)) - 1;
        let masked = word | below;
        if masked != u64::MAX {
            return Some(w * WORD as usize + (!masked).trailing_zeros() as usize);
        }
        // The word at `w` has nothing free at or after `pos`: ask the summary level for the next
        // word that is not full, then pick its first free bit.
        let next_w = self.find(level + 1, w + 1)?;
        let word = *words.get(next_w)?;
        Some(next_w * WORD as usize + (!word).trailing_zeros() as usize)
    }

    /// Heap bytes held by the bitmap (all levels).
    pub fn heap_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.capacity() * 8).sum::<usize>()
            + self.levels.capacity() * std::mem::size_of::<Vec<u64>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_bitmap_hands_out_slots_in_order() {
        let mut b = Bitmap::new(130);
        for i in 0..130 {
            let s = b.next_free(0).unwrap();
            assert_eq!(s, i);
            assert!(b.set(s));
        }
        assert_eq!(b.next_free(0), None);
        assert_eq!(b.count_used(), 130);
    }

    #[test]
    fn padding_is_never_free() {
        for len in [1u32, 63, 64, 65, 4095, 4096, 4097, 262_145] {
            let mut b = Bitmap::new(len);
            for i in 0..len {
                assert!(b.set(i));
            }
            assert_eq!(b.next_free(0), None, "len {len}");
            assert!(!b.set(len));
        }
    }

    #[test]
    fn empty_bitmap_has_no_free_slot() {
        let b = Bitmap::new(0);
        assert!(b.is_empty());
        assert_eq!(b.next_free(0), None);
    }

    #[test]
    fn a_freed_slot_is_found_from_anywhere_by_wrapping() {
        let len = 1 << 20;
        let mut b = Bitmap::new(len);
        for i in 0..len {
            b.set(i);
        }
        assert!(b.clear(777_777));
        assert_eq!(b.next_free(900_000), Some(777_777));
        assert_eq!(b.next_free(0), Some(777_777));
        assert_eq!(b.first_free_from(777_778), None);
        assert!(!b.clear(777_777));
    }

    #[test]
    fn search_skips_full_words_through_the_summary() {
        let mut b = Bitmap::new(10_000);
        for i in 0..9_000 {
            b.set(i);
        }
        assert_eq!(b.first_free_from(5), Some(9_000));
        b.clear(64 * 70 + 3);
        assert_eq!(b.first_free_from(5), Some(64 * 70 + 3));
        assert_eq!(b.first_free_from(64 * 70 + 4), Some(9_000));
    }

    #[test]
    fn bitmap_matches_a_naive_model_under_random_operations() {
        let len = 5_000u32;
        let mut b = Bitmap::new(len);
        let mut model = vec![false; len as usize];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % u64::from(len)) as u32;
            if x & (1 << 40) != 0 {
                assert_eq!(b.set(i), !model[i as usize]);
                model[i as usize] = true;
            } else {
                assert_eq!(b.clear(i), model[i as usize]);
                model[i as usize] = false;
            }
            let from = ((x >> 20) % u64::from(len)) as u32;
            let want = (from..len).find(|&j| !model[j as usize]);
            assert_eq!(b.first_free_from(from), want);
        }
    }
}
