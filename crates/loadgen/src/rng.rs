//! A small seeded pseudo-random generator (SplitMix64) for choosing and
//! shuffling deliveries: reproducible with `--seed`, no dependency, and not
//! for anything that needs unpredictability.

/// SplitMix64: 64 bits of state, passes BigCrush, plenty for a shuffle.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound` > 0), without modulo bias worth
    /// mentioning for the bounds a load run uses (Lemire's multiply-shift).
    pub fn below(&mut self, bound: usize) -> usize {
        assert!(bound > 0, "an empty range has no value");
        let wide = u128::from(self.next_u64()) * bound as u128;
        usize::try_from(wide >> 64).expect("less than bound, which is a usize")
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for last in (1..items.len()).rev() {
            let other = self.below(last + 1);
            items.swap(last, other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_values_in_range() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..1000 {
            let value = a.below(7);
            assert_eq!(value, b.below(7));
            assert!(value < 7);
        }
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut items: Vec<usize> = (0..500).collect();
        SplitMix64::new(7).shuffle(&mut items);
        assert_ne!(items, (0..500).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..500).collect::<Vec<_>>());
    }
}
