//! Classifying model rows against the stored state. This module does no I/O: it is fed key
//! hashes and fingerprints and answers added / changed / unchanged, then lists what was removed.

use serde::Serialize;

use crate::value::Hash128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Changed,
    Unchanged,
}

/// The key was already seen in this model result.
#[derive(Debug, PartialEq, Eq)]
pub struct Duplicate;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub added: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub removed: u64,
}

/// The top bit of a stored fingerprint marks "the model produced this key this run", so the
/// whole state is one map of two 128-bit hashes per row, built once (fingerprints compare on
/// the other 127 bits: a collision is still a 2^-127 chance).
const SEEN: u128 = 1 << 127;

/// The stored fingerprint of a row whose record was cleared after it left the model
/// (`on_remove = "clear"`): not removed again, and "changed" if the row comes back.
pub const CLEARED: Hash128 = 1;

/// The stored state a diff runs against: every stored (key hash, fingerprint) pair, sorted by
/// key, found through an index of the keys' top bits (about eight pairs per slot, so a probe
/// is one index read and a short binary search). 32 bytes a row: a hash map of the same pairs
/// took 69, and a million inserts to build.
pub struct Stored {
    pairs: Vec<(Hash128, Hash128)>,
    /// `index[b]..index[b + 1]`: the pairs whose key's top bits are `b`.
    index: Vec<u32>,
    /// How far a key shifts right to give its slot (128: a single slot).
    shift: u32,
}

impl Stored {
    /// From pairs with distinct keys, in key order (sorted here if they are not).
    pub fn from_pairs(mut pairs: Vec<(Hash128, Hash128)>) -> Stored {
        if !pairs.is_sorted_by_key(|p| p.0) {
            pairs.sort_unstable_by_key(|p| p.0);
        }
        let bits = (usize::BITS - (pairs.len() / 8).leading_zeros()).min(24);
        let shift = 128 - bits;
        let mut index = Vec::with_capacity((1 << bits) + 1);
        let mut at = 0usize;
        for slot in 0..=(1u128 << bits) {
            while at < pairs.len() && (pairs[at].0.checked_shr(shift).unwrap_or(0)) < slot {
                at += 1;
            }
            index.push(at as u32);
        }
        Stored { pairs, index, shift }
    }

    fn position(&self, key: Hash128) -> Option<usize> {
        let slot = key.checked_shr(self.shift).unwrap_or(0) as usize;
        let (from, to) = (self.index[slot] as usize, self.index[slot + 1] as usize);
        self.pairs[from..to].binary_search_by_key(&key, |p| p.0).ok().map(|i| from + i)
    }

    /// The stored fingerprint of `key`.
    pub fn get(&self, key: Hash128) -> Option<Hash128> {
        self.position(key).map(|i| self.pairs[i].1)
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every pair, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (Hash128, Hash128)> + '_ {
        self.pairs.iter().copied()
    }
}

impl FromIterator<(Hash128, Hash128)> for Stored {
    fn from_iter<I: IntoIterator<Item = (Hash128, Hash128)>>(pairs: I) -> Stored {
        Stored::from_pairs(pairs.into_iter().collect())
    }
}

pub struct Differ {
    /// Stored fingerprint per key, its top bit set once the model produced the key this run.
    prior: Stored,
    /// Keys new this run (not in `prior`), in model order until [`Differ::end_scan`] sorts them
    /// to find duplicates. A list, not a set: a first sync of a million rows would hold a 36 MB
    /// hash set (53 MB while it grows) where the list takes 16 MB.
    added: Vec<Hash128>,
    /// `added` is sorted (the scan ended).
    sorted: bool,
    /// Treat every stored row as changed (`--full-resync`).
    full_resync: bool,
    counts: Counts,
}

impl Differ {
    pub fn new(mut prior: Stored, full_resync: bool) -> Self {
        prior.pairs.iter_mut().for_each(|(_, fp)| *fp &= !SEEN);
        Differ { prior, added: Vec::new(), sorted: false, full_resync, counts: Counts::default() }
    }

    /// A stored key seen twice is a duplicate at once; a new key seen twice is `Added` both
    /// times, and reported by [`Differ::end_scan`].
    pub fn classify(&mut self, key: Hash128, fingerprint: Hash128) -> Result<Change, Duplicate> {
        let at = self.prior.position(key);
        self.classify_at(key, fingerprint, at)
    }

    /// Classifies a chunk of (key hash, fingerprint) probes in order, exactly as `classify`
    /// would one by one, into `out`. Every probe's stored pair is found first, in one loop:
    /// with tens of MB of state and random keys each lookup misses the cache, and lookups one
    /// after another overlap their misses, where a lookup between two rows' decoding and
    /// hashing waits alone (it was the largest single cost of a no-change run).
    pub fn classify_chunk(&mut self, probes: &[(Hash128, Hash128)], out: &mut Vec<Result<Change, Duplicate>>) {
        let found: Vec<Option<usize>> = probes.iter().map(|&(key, _)| self.prior.position(key)).collect();
        out.clear();
        out.extend(probes.iter().zip(found).map(|(&(key, fingerprint), at)| self.classify_at(key, fingerprint, at)));
    }

    /// `classify`, with the key's place in `prior` already found.
    fn classify_at(&mut self, key: Hash128, fingerprint: Hash128, at: Option<usize>) -> Result<Change, Duplicate> {
        let stored = at.map(|i| &mut self.prior.pairs[i].1);
        let change = match stored {
            Some(stored) if *stored & SEEN != 0 => return Err(Duplicate),
            Some(stored) => {
                let same = *stored == fingerprint & !SEEN;
                *stored |= SEEN;
                if same && !self.full_resync {
                    Change::Unchanged
                } else {
                    Change::Changed
                }
            }
            None => {
                self.added.push(key);
                Change::Added
            }
        };
        match change {
            Change::Added => self.counts.added += 1,
            Change::Changed => self.counts.changed += 1,
            Change::Unchanged => self.counts.unchanged += 1,
        }
        Ok(change)
    }

    /// Ends the scan: the new keys the model produced more than once, one entry per extra row
    /// (those rows were answered `Added` too).
    pub fn end_scan(&mut self) -> Vec<Hash128> {
        self.added.sort_unstable();
        self.sorted = true;
        self.added.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect()
    }

    /// Whether the model produced `key` (after [`Differ::end_scan`]).
    pub fn seen(&self, key: Hash128) -> bool {
        debug_assert!(self.sorted, "seen() before end_scan()");
        self.prior.get(key).is_some_and(|fp| fp & SEEN != 0) || self.added.binary_search(&key).is_ok()
    }

    /// Ends the diff: the counts, the stored keys the model no longer produced, and (apart) those
    /// of them already cleared (`CLEARED`: not to be cleared again, but to be deleted in mirror).
    pub fn finish(self) -> (Counts, Vec<Hash128>, Vec<Hash128>) {
        let mut counts = self.counts;
        let (mut removed, mut cleared) = (Vec::new(), Vec::new());
        for (key, fp) in self.prior.pairs.into_iter().filter(|(_, fp)| fp & SEEN == 0) {
            if fp == CLEARED {
                cleared.push(key);
            } else {
                removed.push(key);
            }
        }
        counts.removed = removed.len() as u64;
        (counts, removed, cleared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prior(rows: &[(u128, u128)]) -> Stored {
        rows.iter().copied().collect()
    }

    #[test]
    fn every_stored_key_is_found_and_no_other() {
        // Sizes around the index's slot counts, keys spread over all 128 bits and at the edges.
        for n in [0usize, 1, 7, 8, 9, 100, 5000] {
            let keys: Vec<u128> = (1..=n as u128).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) ^ (i << 3)).collect();
            let stored: Stored = keys.iter().map(|&k| (k, !k)).chain([(0, 1), (u128::MAX, 2)]).collect();
            assert!(keys.iter().all(|&k| stored.get(k) == Some(!k)), "n = {n}");
            assert_eq!((stored.get(0), stored.get(u128::MAX)), (Some(1), Some(2)));
            assert_eq!(stored.get(12345), None);
            assert!(keys.iter().all(|&k| stored.get(k ^ 1 << 64).is_none()), "n = {n}: a key not stored is not found");
            assert_eq!(stored.len(), n + 2);
        }
        assert!(Stored::from_pairs(Vec::new()).is_empty());
    }

    #[test]
    fn classifies_every_row_and_finds_removals() {
        let mut d = Differ::new(prior(&[(1, 10), (2, 20), (3, 30)]), false);
        assert_eq!(d.classify(1, 10), Ok(Change::Unchanged));
        assert_eq!(d.classify(2, 21), Ok(Change::Changed));
        assert_eq!(d.classify(4, 40), Ok(Change::Added));
        let (counts, removed, _) = d.finish();
        assert_eq!(counts, Counts { added: 1, changed: 1, unchanged: 1, removed: 1 });
        assert_eq!(removed, vec![3]);
    }

    #[test]
    fn duplicates_are_caught_for_new_and_stored_keys() {
        let mut d = Differ::new(prior(&[(1, 10)]), false);
        assert_eq!(d.classify(1, 10), Ok(Change::Unchanged));
        assert_eq!(d.classify(1, 11), Err(Duplicate));
        assert_eq!(d.classify(5, 50), Ok(Change::Added));
        assert_eq!(d.classify(7, 70), Ok(Change::Added));
        assert_eq!(d.classify(5, 51), Ok(Change::Added));
        assert_eq!(d.classify(5, 52), Ok(Change::Added));
        assert_eq!(d.end_scan(), vec![5, 5], "a new key seen three times: two extra rows");
        assert!(d.seen(5) && d.seen(7) && d.seen(1) && !d.seen(2));
    }

    #[test]
    fn fingerprints_with_the_top_bit_set_still_compare() {
        let high = u128::MAX;
        let mut d = Differ::new(prior(&[(1, high), (2, high)]), false);
        assert_eq!(d.classify(1, high), Ok(Change::Unchanged));
        assert_eq!(d.classify(2, high ^ 1), Ok(Change::Changed));
        assert_eq!(d.classify(1, high), Err(Duplicate));
        assert_eq!(d.finish().1, Vec::<u128>::new());
    }

    #[test]
    fn a_chunk_classifies_as_its_rows_do_one_by_one() {
        // Unchanged, changed, added, a stored key twice and a new key twice in one chunk, and a
        // stored key again in the next chunk: the answers, counts and removals of a row-by-row
        // diff.
        let stored: Vec<(u128, u128)> = (0..50u128).map(|k| (k * 7919, k)).collect();
        let chunks: [&[(u128, u128)]; 2] =
            [&[(0, 0), (7919, 5), (3, 3), (7919, 1), (3, 4), (15838, 2)], &[(15838, 2), (23757, 3), (99, 9)]];
        let (mut one, mut many) =
            (Differ::new(stored.iter().copied().collect(), false), Differ::new(stored.iter().copied().collect(), false));
        let mut out = Vec::new();
        for chunk in chunks {
            many.classify_chunk(chunk, &mut out);
            let expected: Vec<_> = chunk.iter().map(|&(k, fp)| one.classify(k, fp)).collect();
            assert_eq!(out, expected);
        }
        assert!(out.contains(&Err(Duplicate)), "the case is covered");
        assert_eq!(many.end_scan(), one.end_scan());
        assert_eq!(many.finish(), one.finish());
    }

    #[test]
    fn full_resync_marks_stored_rows_changed() {
        let mut d = Differ::new(prior(&[(1, 10)]), true);
        assert_eq!(d.classify(1, 10), Ok(Change::Changed));
        assert_eq!(d.finish().0.changed, 1);
    }
}
