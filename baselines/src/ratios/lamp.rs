use super::{RatioError, RatioRule, RuleInfo, RuleInput};
use ticketbench_core::select::{Keep, top_k_global};
use ticketbench_core::{CoreError, Density, Scores, target_count};

/// Added to every LAMP denominator, as the effective-sparsity reference implementation does.
const DENOMINATOR_EPS: f64 = 1e-8;

/// Layer-Adaptive Magnitude-based Pruning (Lee et al. 2021, arXiv 2010.07611), methods.md §2.7.
/// Weight-dependent: needs [`RuleInput::Network`].
///
/// Within each layer, with the weights sorted ascending by square `w_(1)² ≤ … ≤ w_(n)²`
/// (ties by index), the u-th smallest scores `LAMP(u) = w_(u)² / (Σ_{v ≥ u} w_(v)² + 1e-8)`.
/// Then global exact-k on the LAMP scores (`K = round_half_up(D·N)`, score descending, flat
/// index ascending); the per-layer densities are the kept fractions, and [`RatioRule::counts`]
/// returns the selection's per-layer counts exactly. The largest weight of a layer scores
/// ≈ 1 (≥ 1/2 once `w² ≥ 1e-8`) and every other weight < 1/2, so each layer keeps at least
/// one weight whenever `K ≥ L`. Masked (zero) weights score 0 and leave other scores unchanged.
pub struct Lamp;

pub(super) const INFO: RuleInfo = RuleInfo {
    name: "lamp",
    summary: "global exact-k on LAMP scores w²/Σ_{larger} w² (needs weights); densities = kept fractions",
    citation: "Lee et al. 2021 (LAMP), arXiv 2010.07611",
    build: || Box::new(Lamp),
};

impl Lamp {
    /// LAMP scores of one layer's weights, in the layer's own (row-major) order.
    pub fn layer_scores(weights: &[f32]) -> Vec<f64> {
        let sq: Vec<f64> = weights.iter().map(|&w| f64::from(w).powi(2)).collect();
        let mut order: Vec<usize> = (0..sq.len()).collect();
        order.sort_by(|&a, &b| sq[a].total_cmp(&sq[b]).then(a.cmp(&b)));
        let mut scores = vec![0.0; sq.len()];
        let mut suffix = 0.0;
        for &i in order.iter().rev() {
            suffix += sq[i];
            scores[i] = sq[i] / (suffix + DENOMINATOR_EPS);
        }
        scores
    }

    /// Per-layer counts of the global exact-k selection on LAMP scores.
    fn selection(input: RuleInput<'_>, density: Density) -> Result<Vec<usize>, RatioError> {
        let weights = input
            .weights()
            .ok_or(RatioError::NeedsWeights { rule: INFO.name })?;
        let shapes = input.shapes();
        for (l, (w, s)) in weights.iter().zip(&shapes).enumerate() {
            if w.len() != s.len() {
                return Err(CoreError::ShapeMismatch(format!(
                    "layer {l}: {} weights for shape {s}",
                    w.len()
                ))
                .into());
            }
        }
        let total: usize = shapes.iter().map(|s| s.len()).sum();
        let k = target_count(density, total)?;
        let scores = Scores {
            layers: weights.iter().map(|w| Lamp::layer_scores(w)).collect(),
        };
        Ok(top_k_global(&scores, k, None, Keep::Highest)?.layer_kept())
    }
}

impl RatioRule for Lamp {
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn needs_weights(&self) -> bool {
        true
    }

    fn densities(&self, input: RuleInput<'_>, density: Density) -> Result<Vec<f64>, RatioError> {
        let counts = Lamp::selection(input, density)?;
        Ok(counts
            .iter()
            .zip(input.shapes())
            .map(|(&k, s)| k as f64 / s.len() as f64)
            .collect())
    }

    /// The selection's own per-layer counts, so rounding never disagrees with it.
    fn counts(&self, input: RuleInput<'_>, density: Density) -> Result<Vec<usize>, RatioError> {
        Lamp::selection(input, density)
    }
}

#[cfg(test)]
mod tests {
    use super::super::layer_counts;
    use super::super::tests::{assert_close, lenet};
    use super::*;
    use ticketbench_core::{InitScheme, Layer, LayerShape, Network, Streams};

    fn net(layers: Vec<(LayerShape, Vec<f32>)>) -> Network {
        Network {
            layers: layers
                .into_iter()
                .map(|(shape, weight)| Layer {
                    shape,
                    weight,
                    bias: None,
                    conv: None,
                })
                .collect(),
        }
    }

    fn lenet_net() -> Network {
        Network::mlp(
            &[784, 300, 100, 10],
            false,
            InitScheme::KaimingNormal,
            &Streams::new(0),
        )
        .unwrap()
    }

    #[test]
    fn worked_scores() {
        // methods.md §2.7: w = (0.1, −0.2, 0.3, 0.4) → (0.033333, 0.137931, 0.36, 1.0).
        let s = Lamp::layer_scores(&[0.1, -0.2, 0.3, 0.4]);
        assert_close(&s, &[0.033333, 0.137931, 0.36, 1.0], 1e-6);
        // Order inside the layer does not matter; masked zeros score 0 and change nothing.
        let s = Lamp::layer_scores(&[0.4, 0.0, -0.2, 0.1, 0.0, 0.3]);
        assert_close(&s, &[1.0, 0.0, 0.137931, 0.033333, 0.0, 0.36], 1e-6);
    }

    #[test]
    fn needs_weights() {
        let shapes = lenet();
        let d = Density::new(0.1).unwrap();
        assert!(Lamp.needs_weights());
        for r in [
            Lamp.densities(RuleInput::Shapes(&shapes), d).map(|_| ()),
            Lamp.counts(RuleInput::Shapes(&shapes), d).map(|_| ()),
        ] {
            let err = r.unwrap_err();
            assert_eq!(err, RatioError::NeedsWeights { rule: "lamp" });
            let msg = err.to_string();
            assert!(
                msg.contains("`lamp`") && msg.contains("needs a network"),
                "{msg}"
            );
        }
    }

    #[test]
    fn keeps_a_weight_in_every_layer_when_k_at_least_l() {
        // Layers on wildly different scales: global magnitude would keep only the first.
        let scaled = |l: usize, scale: f32| {
            let w: Vec<f32> = (0..20)
                .map(|i| scale * (1.0 + ((i * 7 + l) % 20) as f32))
                .collect();
            (LayerShape::dense(4, 5), w)
        };
        let n = net(vec![scaled(0, 100.0), scaled(1, 1.0), scaled(2, 1e-3)]);
        let input = RuleInput::Network(&n);
        // K = round_half_up(D·60) = 3 = L.
        let counts = Lamp
            .counts(input, Density::new(3.0 / 60.0).unwrap())
            .unwrap();
        assert_eq!(counts, vec![1, 1, 1]);
        let d = Lamp
            .densities(input, Density::new(3.0 / 60.0).unwrap())
            .unwrap();
        assert_close(&d, &[0.05, 0.05, 0.05], 1e-12);
        // LeNet-300-100 at θ_0, K = 3 and K = 10.
        let lenet = lenet_net();
        for k in [3.0, 10.0] {
            let c = Lamp
                .counts(
                    RuleInput::Network(&lenet),
                    Density::new(k / 266_200.0).unwrap(),
                )
                .unwrap();
            assert!(c.iter().all(|&c| c >= 1), "{c:?}");
            assert_eq!(c.iter().sum::<usize>(), k as usize);
        }
    }

    #[test]
    fn selection_counts_and_densities_agree() {
        let net = lenet_net();
        let input = RuleInput::Network(&net);
        let shapes = net.shapes();
        for x in [0.5, 0.1, 0.02, 0.001] {
            let density = Density::new(x).unwrap();
            let counts = Lamp.counts(input, density).unwrap();
            assert_eq!(
                counts.iter().sum::<usize>(),
                target_count(density, 266_200).unwrap()
            );
            let d = Lamp.densities(input, density).unwrap();
            for ((k, d), s) in counts.iter().zip(&d).zip(&shapes) {
                assert_eq!(*d, *k as f64 / s.len() as f64);
            }
            // §2.9 rounding of these densities reproduces the selection.
            assert_eq!(layer_counts(&shapes, &d, density).unwrap(), counts);
            // The selection is exactly the top-k of the LAMP scores.
            let scores = Scores {
                layers: net
                    .layers
                    .iter()
                    .map(|l| Lamp::layer_scores(&l.weight))
                    .collect(),
            };
            let mask = top_k_global(&scores, counts.iter().sum(), None, Keep::Highest).unwrap();
            assert_eq!(mask.layer_kept(), counts);
        }
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let bad = net(vec![(LayerShape::dense(2, 2), vec![1.0, 2.0, 3.0])]);
        let r = Lamp.counts(RuleInput::Network(&bad), Density::new(0.5).unwrap());
        assert!(
            matches!(r, Err(RatioError::Core(CoreError::ShapeMismatch(_)))),
            "{r:?}"
        );
    }
}
