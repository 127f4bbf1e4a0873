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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InitScheme, Streams};

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
