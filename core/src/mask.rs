use crate::{CoreError, LayerShape, Network};
use serde::{Deserialize, Serialize};

/// One keep-bit per prunable weight, per layer, in the layer's row-major order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mask {
    layers: Vec<Vec<bool>>,
}

impl Mask {
    /// The all-ones mask (density 1).
    pub fn dense(shapes: &[LayerShape]) -> Self {
        Mask {
            layers: shapes.iter().map(|s| vec![true; s.len()]).collect(),
        }
    }

    /// The all-zeros mask.
    pub fn empty(shapes: &[LayerShape]) -> Self {
        Mask {
            layers: shapes.iter().map(|s| vec![false; s.len()]).collect(),
        }
    }

    pub fn from_layers(layers: Vec<Vec<bool>>) -> Self {
        Mask { layers }
    }

    pub fn layers(&self) -> &[Vec<bool>] {
        &self.layers
    }

    pub fn layer(&self, l: usize) -> &[bool] {
        &self.layers[l]
    }

    /// Total number of entries N.
    pub fn total(&self) -> usize {
        self.layers.iter().map(Vec::len).sum()
    }

    /// Number of kept entries.
    pub fn kept(&self) -> usize {
        self.layer_kept().iter().sum()
    }

    /// Kept entries per layer, `k_l`.
    pub fn layer_kept(&self) -> Vec<usize> {
        self.layers
            .iter()
            .map(|l| l.iter().filter(|&&b| b).count())
            .collect()
    }

    /// Global density `kept / N`.
    pub fn density(&self) -> f64 {
        self.kept() as f64 / self.total().max(1) as f64
    }

    /// Per-layer densities `d_l = k_l / n_l`.
    pub fn layer_densities(&self) -> Vec<f64> {
        self.layers
            .iter()
            .zip(self.layer_kept())
            .map(|(l, k)| k as f64 / l.len().max(1) as f64)
            .collect()
    }

    /// True when every entry is kept.
    pub fn is_dense(&self) -> bool {
        self.layers.iter().all(|l| l.iter().all(|&b| b))
    }

    /// Checks that the mask has one entry per weight of `shapes`.
    pub fn check_shapes(&self, shapes: &[LayerShape]) -> Result<(), CoreError> {
        if self.layers.len() != shapes.len()
            || self
                .layers
                .iter()
                .zip(shapes)
                .any(|(m, s)| m.len() != s.len())
        {
            return Err(CoreError::ShapeMismatch(format!(
                "mask layer sizes {:?} do not match network layer sizes {:?}",
                self.layers.iter().map(Vec::len).collect::<Vec<_>>(),
                shapes.iter().map(LayerShape::len).collect::<Vec<_>>()
            )));
        }
        Ok(())
    }

    /// Sets every pruned weight of `net` to exactly 0.0 (biases untouched).
    pub fn apply(&self, net: &mut Network) -> Result<(), CoreError> {
        self.check_shapes(&net.shapes())?;
        for (layer, keep) in net.layers.iter_mut().zip(&self.layers) {
            for (w, &k) in layer.weight.iter_mut().zip(keep) {
                if !k {
                    *w = 0.0;
                }
            }
        }
        Ok(())
    }

    /// Elementwise AND (`m ≤ self` and `m ≤ other`).
    pub fn intersect(&self, other: &Mask) -> Mask {
        Mask {
            layers: self
                .layers
                .iter()
                .zip(&other.layers)
                .map(|(a, b)| a.iter().zip(b).map(|(&x, &y)| x && y).collect())
                .collect(),
        }
    }

    /// Number of entries where the two masks differ.
    pub fn hamming(&self, other: &Mask) -> usize {
        self.layers
            .iter()
            .zip(&other.layers)
            .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x != y).count())
            .sum()
    }

    /// Jaccard index |a ∩ b| / |a ∪ b| of the kept sets (1 for two empty masks).
    pub fn jaccard(&self, other: &Mask) -> f64 {
        let both = self.intersect(other).kept();
        let union = self.kept() + other.kept() - both;
        if union == 0 {
            1.0
        } else {
            both as f64 / union as f64
        }
    }

    /// First 16 hex digits of blake3 over the layer sizes and the kept bits (packed LSB
    /// first): a short name that differs between any two different masks in practice.
    pub fn digest(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"ticketbench/mask/v1");
        for layer in &self.layers {
            hasher.update(&(layer.len() as u64).to_le_bytes());
            let packed: Vec<u8> = layer
                .chunks(8)
                .map(|bits| {
                    bits.iter()
                        .enumerate()
                        .fold(0u8, |byte, (i, &b)| byte | ((b as u8) << i))
                })
                .collect();
            hasher.update(&packed);
        }
        hasher.finalize().to_hex()[..16].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InitScheme, Streams};

    #[test]
    fn jaccard_and_digest_tell_masks_apart() {
        let a = Mask::from_layers(vec![vec![true, true, false, false], vec![true]]);
        let b = Mask::from_layers(vec![vec![true, false, true, false], vec![true]]);
        // |a ∩ b| = 2 (first entry, last layer), |a ∪ b| = 4.
        assert_eq!(a.jaccard(&b), 0.5);
        assert_eq!(a.jaccard(&a), 1.0);
        assert_eq!(a.digest(), a.clone().digest());
        assert_ne!(a.digest(), b.digest());
        // Same bits, different layer split: different masks.
        let c = Mask::from_layers(vec![vec![true, true, false], vec![false, true]]);
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.digest().len(), 16);
    }

    #[test]
    fn densities_and_apply() {
        let shapes = vec![LayerShape::dense(2, 2), LayerShape::dense(2, 1)];
        let mask = Mask::from_layers(vec![vec![true, false, false, false], vec![true, true]]);
        assert_eq!(mask.kept(), 3);
        assert_eq!(mask.total(), 6);
        assert_eq!(mask.layer_densities(), vec![0.25, 1.0]);
        assert!((mask.density() - 0.5).abs() < 1e-12);
        let mut net = Network::mlp(
            &[2, 2, 1],
            true,
            InitScheme::KaimingUniform,
            &Streams::new(0),
        )
        .unwrap();
        mask.apply(&mut net).unwrap();
        assert_eq!(&net.layers[0].weight[1..], &[0.0, 0.0, 0.0]);
        assert_ne!(net.layers[0].weight[0], 0.0);
        assert!(Mask::dense(&shapes).is_dense());
        assert_eq!(Mask::empty(&shapes).kept(), 0);
        assert_eq!(mask.hamming(&Mask::dense(&shapes)), 3);
        assert!(Mask::dense(&shapes[..1]).check_shapes(&shapes).is_err());
    }
}
