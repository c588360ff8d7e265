//! A Bloom filter over the story keys held in memory beside the embedded
//! store, so that a key naming no story (every new item, every new page)
//! costs no B-tree probe. Keys are 64-bit hashes already: the probe
//! positions are taken from the key itself, no hashing needed.
//!
//! It answers "certainly absent" or "maybe present"; a "maybe" goes to the
//! table. A key is never removed (a removed story only costs a probe that
//! finds nothing), and the owner rebuilds it larger from the table when it
//! holds more keys than it was sized for.

/// Bits per key at capacity: about 2% false positives with `PROBES`
/// probes, and 1 byte per key (a story has two or three) at most.
const BITS_PER_KEY: usize = 8;
const PROBES: u64 = 6;
const MIN_KEYS: usize = 1 << 13;

pub(crate) struct KeyFilter {
    words: Vec<u64>,
    bits: u64,
    keys: usize,
    capacity: usize,
}

impl KeyFilter {
    /// An empty filter sized for `keys` keys.
    pub(crate) fn with_capacity(keys: usize) -> Self {
        let capacity = keys.max(MIN_KEYS);
        let words = capacity.saturating_mul(BITS_PER_KEY).div_ceil(64);
        KeyFilter {
            words: vec![0; words],
            bits: words as u64 * 64,
            keys: 0,
            capacity,
        }
    }

    /// True when more keys went in than the filter was sized for: its
    /// false-positive rate has started to climb, time to rebuild it larger.
    pub(crate) fn is_full(&self) -> bool {
        self.keys > self.capacity
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.keys
    }

    pub(crate) fn insert(&mut self, key: u64) {
        for bit in probes(key, self.bits) {
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.keys += 1;
    }

    /// False only when `key` was certainly never inserted.
    pub(crate) fn may_contain(&self, key: u64) -> bool {
        probes(key, self.bits).all(|bit| self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

/// Double hashing (Kirsch-Mitzenmacher) over the key and its halves
/// swapped, each position scaled into `0..bits` by a multiply (Lemire's
/// reduction: no division, any table size).
fn probes(key: u64, bits: u64) -> impl Iterator<Item = u64> {
    let (a, b) = (key, key.rotate_left(32) | 1);
    (0..PROBES).map(move |i| {
        let h = a.wrapping_add(i.wrapping_mul(b));
        ((u128::from(h) * u128::from(bits)) >> 64) as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::hash64;

    fn key(i: u64) -> u64 {
        hash64(&[b"k", &i.to_le_bytes()])
    }

    #[test]
    fn every_inserted_key_is_found_and_few_others_are() {
        let mut f = KeyFilter::with_capacity(100_000);
        for i in 0..100_000 {
            f.insert(key(i));
        }
        assert!(!f.is_full());
        assert!((0..100_000).all(|i| f.may_contain(key(i))));
        let false_positives = (100_000..300_000)
            .filter(|i| f.may_contain(key(*i)))
            .count();
        // ~2% expected at capacity; the bound leaves room for chance.
        assert!(false_positives < 7_000, "{false_positives} of 200000");
    }

    #[test]
    fn an_empty_filter_contains_nothing_and_fills_up() {
        let mut f = KeyFilter::with_capacity(0);
        assert!(!(0..1000).any(|i| f.may_contain(key(i))));
        let room = f.capacity;
        for i in 0..=room as u64 {
            f.insert(key(i));
        }
        assert!(f.is_full());
        assert_eq!(f.keys(), room + 1);
    }
}
