//! The idle-latency kernel: a random cyclic permutation of cache-line slots laid into a
//! buffer (each slot holds the index of the next), and a chase of dependent loads along it.

use std::hint::black_box;
use std::time::Duration;

use super::clock::Stopwatch;

/// Bytes per slot: one cache line on the machines numaperf runs on (x86_64, aarch64,
/// riscv64, powerpc64 all move memory in 64-byte lines or multiples of them).
pub(crate) const SLOT_BYTES: usize = 64;
/// `u64` words per slot; the link is the slot's first word.
const SLOT_WORDS: usize = SLOT_BYTES / 8;
/// Loads per timed batch (the clock is read between batches only).
const BATCH: u64 = 1 << 14;

/// A small seeded generator (splitmix64): the same seed lays the same cycle, so a figure
/// can be reproduced; no crate needed for this.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by the multiply-high method.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// How many slots `words` holds.
pub(crate) fn slots(words: &[u64]) -> usize {
    words.len() / SLOT_WORDS
}

/// Links the slots of `words` into one random cycle through every slot (Sattolo's
/// algorithm: a uniformly random cyclic permutation), in place: slot `i`'s first word
/// becomes the word index of its successor. Fewer than two slots: a slot that points at
/// itself (or nothing at all).
pub(crate) fn link_cycle(words: &mut [u64], seed: u64) {
    let n = slots(words);
    for i in 0..n {
        words[i * SLOT_WORDS] = (i * SLOT_WORDS) as u64;
    }
    let mut rng = SplitMix::new(seed);
    for i in (1..n).rev() {
        let j = rng.below(i);
        words.swap(i * SLOT_WORDS, j * SLOT_WORDS);
    }
}

/// Follows the cycle from slot 0 for at least `budget` (and at least one batch of loads),
/// each load's address depending on the previous load. Returns nanoseconds per load.
/// `words` must have been linked by [`link_cycle`] and hold at least one slot.
pub(crate) fn chase(words: &[u64], budget: Duration) -> f64 {
    let mut at = 0usize;
    // Warm-up: the first batch brings the TLB and the walk to a steady state.
    at = run(words, at, BATCH);
    let start = Stopwatch::start();
    let mut loads = 0u64;
    loop {
        at = run(words, at, BATCH);
        loads += BATCH;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            black_box(at);
            return elapsed.as_nanos() as f64 / loads as f64;
        }
    }
}

/// `n` dependent loads from word `at` (n a multiple of 8); returns where the walk is.
#[inline(never)]
fn run(words: &[u64], mut at: usize, n: u64) -> usize {
    for _ in 0..n / 8 {
        // Eight per iteration so the loop's own cost is small beside a memory load; the
        // bound check is a predicted branch off the dependency chain.
        at = words[at] as usize;
        at = words[at] as usize;
        at = words[at] as usize;
        at = words[at] as usize;
        at = words[at] as usize;
        at = words[at] as usize;
        at = words[at] as usize;
        at = words[at] as usize;
    }
    black_box(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Follows the links from slot 0 and returns how many slots it visits before it is
    /// back at slot 0 (or `None` if it never comes back within `n` steps).
    fn cycle_length(words: &[u64]) -> Option<usize> {
        let n = slots(words);
        let mut at = 0usize;
        for step in 1..=n {
            at = words[at] as usize;
            assert_eq!(at % SLOT_WORDS, 0, "a link points inside a slot");
            if at == 0 {
                return Some(step);
            }
        }
        None
    }

    #[test]
    fn one_cycle_through_every_slot() {
        let mut words = vec![0u64; 4096 * SLOT_WORDS];
        link_cycle(&mut words, 42);
        assert_eq!(cycle_length(&words), Some(4096));
    }

    #[test]
    fn seeds_lay_different_cycles() {
        let mut a = vec![0u64; 64 * SLOT_WORDS];
        let mut b = a.clone();
        link_cycle(&mut a, 1);
        link_cycle(&mut b, 2);
        assert_ne!(a, b);
        let mut c = vec![0u64; 64 * SLOT_WORDS];
        link_cycle(&mut c, 1);
        assert_eq!(a, c, "the same seed lays the same cycle");
    }

    #[test]
    fn chase_measures_something() {
        let mut words = vec![0u64; 1024 * SLOT_WORDS];
        link_cycle(&mut words, 7);
        let ns = chase(&words, Duration::from_millis(1));
        assert!(ns > 0.0 && ns.is_finite(), "{ns}");
    }

    proptest! {
        #[test]
        fn any_size_and_seed_is_one_cycle(n in 1usize..600, seed in any::<u64>(), spare in 0usize..8) {
            let mut words = vec![0u64; n * SLOT_WORDS + spare];
            link_cycle(&mut words, seed);
            prop_assert_eq!(cycle_length(&words), Some(n));
        }
    }
}
