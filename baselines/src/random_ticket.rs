//! Random tickets (methods.md §1.1): `k_l` positions per layer, uniformly without
//! replacement, by a partial Fisher–Yates shuffle on the layer's index range.
//! Frankle & Carbin 2019 (arXiv 1803.03635); Su et al. 2020 (arXiv 2009.11094).

use ticketbench_core::{LayerShape, Mask, Streams, sample_index};

/// A uniformly random mask with exactly `counts[l]` kept entries in layer `l`.
///
/// Layer `l` draws from stream `<purpose>/layer/<l>`; the first `k` picks of one stream are
/// the same for every `k`, so random tickets of one seed are nested across densities.
pub fn random_ticket(
    shapes: &[LayerShape],
    counts: &[usize],
    streams: &Streams,
    purpose: &str,
) -> Mask {
    let layers = shapes
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(l, (shape, &k))| {
            let n = shape.len();
            let k = k.min(n);
            let mut rng = streams.stream(&format!("{purpose}/layer/{l}"));
            let mut index: Vec<u32> = (0..n as u32).collect();
            for i in 0..k {
                let j = i + sample_index(&mut rng, n - i);
                index.swap(i, j);
            }
            let mut keep = vec![false; n];
            for &i in &index[..k] {
                keep[i as usize] = true;
            }
            keep
        })
        .collect();
    Mask::from_layers(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_counts_and_seed_dependence() {
        let shapes = vec![LayerShape::dense(30, 20), LayerShape::dense(20, 5)];
        let a = random_ticket(&shapes, &[60, 7], &Streams::new(1), "random");
        let b = random_ticket(&shapes, &[60, 7], &Streams::new(1), "random");
        let c = random_ticket(&shapes, &[60, 7], &Streams::new(2), "random");
        assert_eq!(a.layer_kept(), vec![60, 7]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Nested across densities for one seed.
        let small = random_ticket(&shapes, &[10, 2], &Streams::new(1), "random");
        assert_eq!(small.intersect(&a), small);
    }

    #[test]
    fn keep_frequency_is_uniform() {
        // methods.md §1.1(e): each position's keep frequency ≈ k/n over many seeds
        // (chi-square over 2000 seeds, 20 positions, 19 dof: p > 1e-3 needs χ² < 43.8).
        let shapes = vec![LayerShape::dense(4, 5)];
        let (n, k, seeds) = (20usize, 5usize, 2000u64);
        let mut freq = vec![0usize; n];
        for s in 0..seeds {
            let m = random_ticket(&shapes, &[k], &Streams::new(s), "random");
            for (i, &b) in m.layer(0).iter().enumerate() {
                freq[i] += b as usize;
            }
        }
        let expected = seeds as f64 * k as f64 / n as f64;
        let chi2: f64 = freq
            .iter()
            .map(|&f| (f as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 43.8, "chi2 {chi2}, freq {freq:?}");
    }
}
