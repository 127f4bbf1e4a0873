use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The generator behind every named stream.
pub type StreamRng = ChaCha8Rng;

/// Named, seeded random streams: every random choice in ticketbench comes from one of these.
///
/// A stream is `ChaCha8Rng` seeded with `blake3("ticketbench/stream/v1" ‖ seed ‖ purpose)`, so
/// it depends only on the job's root seed and on the purpose string (e.g. `init/0/w`,
/// `task/circle/train/x`, `random/layer/2`). Adding a job, reordering jobs or drawing from one
/// stream never changes the numbers of another; all methods at one seed share `θ_0` and data,
/// so comparisons are paired by seed. ChaCha8 (never `StdRng`) keeps the bytes stable across
/// rand versions and platforms.
#[derive(Debug, Clone)]
pub struct Streams {
    seed: u64,
    /// Purposes drawn so far, when recording (a result's provenance lists them); shared by
    /// clones, so every part of a job adds to one list.
    used: Option<Arc<Mutex<BTreeSet<String>>>>,
}

impl PartialEq for Streams {
    /// Two `Streams` are equal when they give the same numbers: the recording is no part.
    fn eq(&self, other: &Self) -> bool {
        self.seed == other.seed
    }
}

impl Eq for Streams {}

impl Streams {
    pub fn new(seed: u64) -> Self {
        Streams { seed, used: None }
    }

    /// Like [`Streams::new`], also recording which streams are drawn (see [`Streams::used`]).
    pub fn recording(seed: u64) -> Self {
        Streams {
            seed,
            used: Some(Arc::default()),
        }
    }

    /// The purposes drawn so far (sorted; numeric path parts such as epochs written `#`, so
    /// `train/shuffle/epoch/7` appears once as `train/shuffle/epoch/#`). Empty when not
    /// recording.
    pub fn used(&self) -> Vec<String> {
        self.used.as_ref().map_or_else(Vec::new, |u| {
            u.lock()
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default()
        })
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The stream for `purpose`. Calling it twice gives two identical, independent copies.
    pub fn stream(&self, purpose: &str) -> ChaCha8Rng {
        if let Some(used) = &self.used
            && let Ok(mut set) = used.lock()
        {
            let pattern: Vec<&str> = purpose
                .split('/')
                .map(|part| {
                    if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                        "#"
                    } else {
                        part
                    }
                })
                .collect();
            set.insert(pattern.join("/"));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"ticketbench/stream/v1");
        hasher.update(&self.seed.to_le_bytes());
        hasher.update(purpose.as_bytes());
        ChaCha8Rng::from_seed(*hasher.finalize().as_bytes())
    }
}

/// Uniform f64 in `[lo, hi)` from 53 random bits (portable, no distribution crate involved).
pub fn sample_uniform<R: Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    let unit = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    lo + (hi - lo) * unit
}

/// Uniform integer in `0..n` (unbiased: Lemire's widening multiply with rejection).
pub fn sample_index<R: Rng + ?Sized>(rng: &mut R, n: usize) -> usize {
    assert!(n > 0, "sample_index over an empty range");
    let n = n as u64;
    let threshold = n.wrapping_neg() % n; // (2^64 − n) mod n
    loop {
        let m = rng.next_u64() as u128 * n as u128;
        if (m as u64) >= threshold {
            return (m >> 64) as usize;
        }
    }
}

/// Standard normal draw by the Box–Muller transform (one draw per two uniforms; the second
/// value is discarded so each call consumes a fixed amount of the stream).
pub fn sample_standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // u1 in (0, 1] so ln(u1) is finite.
    let u1 = 1.0 - sample_uniform(rng, 0.0, 1.0);
    let u2 = sample_uniform(rng, 0.0, 1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_named_and_reproducible() {
        let s = Streams::new(7);
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = s.stream("a");
                move |_| r.next_u64()
            })
            .collect();
        let a2: Vec<u64> = (0..4)
            .map({
                let mut r = s.stream("a");
                move |_| r.next_u64()
            })
            .collect();
        let b = s.stream("b").next_u64();
        let other_seed = Streams::new(8).stream("a").next_u64();
        assert_eq!(a, a2);
        assert_ne!(a[0], b);
        assert_ne!(a[0], other_seed);
    }

    /// Golden values: these bytes must never change, or every recorded result changes with them.
    #[test]
    fn golden_first_draws() {
        let mut r = Streams::new(0).stream("golden");
        let first = r.next_u64();
        let u = sample_uniform(&mut Streams::new(0).stream("golden"), 0.0, 1.0);
        assert_eq!(first, GOLDEN_FIRST_U64, "ChaCha8 stream bytes changed");
        assert_eq!(u, (first >> 11) as f64 / (1u64 << 53) as f64);
        let z = sample_standard_normal(&mut Streams::new(0).stream("golden"));
        assert_eq!(
            z.to_bits(),
            GOLDEN_FIRST_NORMAL_BITS,
            "normal sampler changed: {z}"
        );
    }

    const GOLDEN_FIRST_U64: u64 = 3_528_325_786_166_954_009;
    const GOLDEN_FIRST_NORMAL_BITS: u64 = 13_826_740_762_640_013_563; // -0.5765950206139502

    #[test]
    fn sample_index_is_uniform_and_in_range() {
        let mut r = Streams::new(2).stream("index");
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[sample_index(&mut r, 7)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(sample_index(&mut r, 1), 0);
    }

    #[test]
    fn normal_moments() {
        let mut r = Streams::new(1).stream("moments");
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| sample_standard_normal(&mut r)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
    }
}
